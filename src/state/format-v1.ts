/**
 * Reading a state file of format 1, written by earlier relays: one row per session, `idle_ms` and
 * the peers' `idleMs` relative to the save at `meta.saved_at_ms`. The time since that save counts
 * as idle time, as those relays restored it. The store then rewrites the rows in format 2.
 */
import type { Database } from "bun:sqlite";
import type { SessionSnapshot } from "../sessions/table.ts";
import { idleTimes, type ProblemCounts, RowChecker, type RowRules, type StoredRow } from "./rows.ts";
import { StateFileError } from "./errors.ts";

export interface LegacyRows {
  /** When the file was saved; undefined when it never was (it holds no sessions then). */
  savedAtMs: number | undefined;
  /** Sessions that passed the checks, idle times as of the wall-clock `nowMs`. */
  sessions: SessionSnapshot[];
  malformed: ProblemCounts;
}

export function readLegacyRows(db: Database, rules: RowRules, nowMs: number): LegacyRows {
  const savedAt = (db.query("SELECT value FROM meta WHERE key = 'saved_at_ms'").get() as { value: unknown } | null)?.value;
  if (savedAt === undefined) return { savedAtMs: undefined, sessions: [], malformed: {} };
  const savedAtMs = Number(savedAt);
  if (!Number.isFinite(savedAtMs)) throw new StateFileError(`saved_at_ms is not a number: ${String(savedAt).slice(0, 40)}`);
  const checker = new RowChecker(rules, idleTimes(Math.max(0, nowMs - savedAtMs)));
  const sessions: SessionSnapshot[] = [];
  for (const row of db.query("SELECT id, idle_ms AS time, peers FROM sessions").iterate() as IterableIterator<StoredRow>) {
    const session = checker.check(row);
    if (session) sessions.push(session);
  }
  return { savedAtMs, sessions, malformed: checker.malformed };
}
