/**
 * State files of format 1, as relays before format 2 wrote them: the same tables and statements,
 * rollback journal, idle times relative to `saved_at_ms`. For migration tests.
 */
import { Database } from "bun:sqlite";
import { chmodSync } from "node:fs";
import type { SessionSnapshot } from "../../src/sessions/table.ts";

type Cell = string | number | Uint8Array | null;
/** A format-1 row as stored: id, idle_ms, peers (JSON of `{ address, port, idleMs, proven? }`). */
export type V1Row = [Cell, Cell, Cell];

export function v1Row(s: SessionSnapshot): V1Row {
  return [s.id, s.idleMs, JSON.stringify(s.peers)];
}

/** Writes a format-1 file at `path` (0600), saved at `savedAtMs` (none: never saved). */
export function writeV1StateFile(path: string, rows: V1Row[], savedAtMs?: number): void {
  const db = new Database(path, { create: true });
  db.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  db.run("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, idle_ms REAL NOT NULL, peers TEXT NOT NULL)");
  db.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)", ["1"]);
  const insert = db.prepare("INSERT INTO sessions (id, idle_ms, peers) VALUES (?, ?, ?)");
  db.transaction(() => {
    for (const r of rows) insert.run(...r);
    if (savedAtMs !== undefined) db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('saved_at_ms', ?)", [String(savedAtMs)]);
  })();
  db.close();
  chmodSync(path, 0o600);
}
