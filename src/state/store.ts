import { Database } from "bun:sqlite";
import { existsSync, renameSync } from "node:fs";
import type { SessionSnapshot } from "../sessions/table.ts";

/** Bumped when the schema changes; a file with another version is set aside, not misread. */
const FORMAT_VERSION = "1";

export class StateFileError extends Error {
  override name = "StateFileError";
}

export interface SavedState {
  /** Wall-clock milliseconds of the save. */
  savedAtMs: number;
  sessions: SessionSnapshot[];
}

/**
 * The session table on disk: one SQLite file, replaced wholesale in one transaction per save, so a
 * crash mid-save leaves the previous save intact.
 */
export class StateStore {
  private db: Database;

  private constructor(
    readonly path: string,
    db: Database,
  ) {
    this.db = db;
  }

  /**
   * Opens or creates the file. A file that is not a database is set aside (see load) and replaced;
   * throws StateFileError if no file can be opened at all (missing directory, permissions).
   */
  static open(path: string): { store: StateStore; setAside?: string } {
    try {
      return { store: StateStore.openOnce(path) };
    } catch (first) {
      if (!existsSync(path)) throw new StateFileError(`cannot open state file ${path}: ${(first as Error).message}`);
      const aside = `${path}.unreadable-${Date.now()}`;
      try {
        renameSync(path, aside);
        return { store: StateStore.openOnce(path), setAside: `${aside} (${(first as Error).message})` };
      } catch (error) {
        throw new StateFileError(`cannot open state file ${path}: ${(error as Error).message}`);
      }
    }
  }

  private static openOnce(path: string): StateStore {
    const db = new Database(path, { create: true, strict: true });
    const store = new StateStore(path, db);
    try {
      store.migrate();
    } catch (error) {
      db.close();
      throw error;
    }
    return store;
  }

  /**
   * The last save, or undefined when there is none. A file that cannot be read as a state file is
   * renamed to `<path>.unreadable-<time>` and replaced by an empty one; `setAside` names it.
   */
  load(): { state: SavedState | undefined; setAside?: string } {
    try {
      const meta = this.db.query("SELECT value FROM meta WHERE key = $key");
      const version = (meta.get({ key: "format_version" }) as { value: string } | null)?.value;
      const savedAt = (meta.get({ key: "saved_at_ms" }) as { value: string } | null)?.value;
      if (version !== FORMAT_VERSION) throw new StateFileError(`format version ${version ?? "missing"}`);
      if (savedAt === undefined) return { state: undefined };
      const rows = this.db.query("SELECT id, idle_ms, peers FROM sessions").all() as { id: string; idle_ms: number; peers: string }[];
      const sessions = rows.map((r) => ({ id: r.id, idleMs: r.idle_ms, peers: JSON.parse(r.peers) as SessionSnapshot["peers"] }));
      return { state: { savedAtMs: Number(savedAt), sessions } };
    } catch (error) {
      const setAside = `${this.path}.unreadable-${Date.now()}`;
      this.db.close();
      renameSync(this.path, setAside);
      this.db = new Database(this.path, { create: true, strict: true });
      this.migrate();
      return { state: undefined, setAside: `${setAside} (${(error as Error).message})` };
    }
  }

  save(sessions: readonly SessionSnapshot[], savedAtMs = Date.now()): void {
    const insert = this.db.query("INSERT INTO sessions (id, idle_ms, peers) VALUES ($id, $idle, $peers)");
    const setMeta = this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES ($key, $value)");
    this.db.transaction(() => {
      this.db.run("DELETE FROM sessions");
      for (const s of sessions) insert.run({ id: s.id, idle: s.idleMs, peers: JSON.stringify(s.peers) });
      setMeta.run({ key: "saved_at_ms", value: String(savedAtMs) });
    })();
  }

  close(): void {
    this.db.close();
  }

  private migrate(): void {
    this.db.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.db.run("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, idle_ms REAL NOT NULL, peers TEXT NOT NULL)");
    this.db.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)", [FORMAT_VERSION]);
  }
}

/** Sessions as they should be restored now: the time the relay was down counts as idle time. */
export function withDowntime(state: SavedState, nowMs = Date.now()): SessionSnapshot[] {
  const down = Math.max(0, nowMs - state.savedAtMs);
  return state.sessions.map((s) => ({ ...s, idleMs: s.idleMs + down, peers: s.peers.map((p) => ({ ...p, idleMs: p.idleMs + down })) }));
}
