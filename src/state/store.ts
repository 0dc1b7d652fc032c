import { Database } from "bun:sqlite";
import { renameSync } from "node:fs";
import type { SessionSnapshot } from "../sessions/table.ts";
import { createPrivateFile, type ModeNote, restrictToOwner } from "./file-mode.ts";
import { ANY_SOCKET, checkRows, type ProblemCounts, type RowRules, type StoredRow } from "./rows.ts";

/** Bumped when the schema changes; a file with another version is set aside, not misread. */
const FORMAT_VERSION = "1";

/** The tables of this format and their columns, in order. */
const SCHEMA = new Map([
  ["meta", ["key", "value"]],
  ["sessions", ["id", "idle_ms", "peers"]],
]);

/** Rows written between two pauses of a chunked save: a few milliseconds of work. */
export const DEFAULT_CHUNK_ROWS = 2000;

export interface ChunkedSaveOptions {
  /** Rows per chunk (default DEFAULT_CHUNK_ROWS). */
  chunkRows?: number;
  /** Awaited between chunks (default: one turn of the event loop, so I/O is served). */
  pause?: () => Promise<void>;
  /** Asked after each pause: true abandons the save (rolled back). */
  aborted?: () => boolean;
}

/** A macrotask: timers and sockets get their turn before the next chunk is written. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class StateFileError extends Error {
  override name = "StateFileError";
}

export interface SavedState {
  /** Wall-clock milliseconds of the save. */
  savedAtMs: number;
  /** The rows that passed the checks of rows.ts. */
  sessions: SessionSnapshot[];
}

export interface LoadResult {
  state: SavedState | undefined;
  /** Rows not restored because they break the rules of rows.ts, by problem. */
  malformed: ProblemCounts;
  /** The file could not be read as a state file: why, and where it was moved (unless that failed). */
  unreadable?: { reason: string; movedTo?: string };
}

/**
 * The session table on disk: one SQLite file, replaced wholesale in one transaction per save, so a
 * crash mid-save leaves the previous save intact (the transaction of a chunked save spans its pauses). The file and its side files are private (0600).
 */
export class StateStore {
  private constructor(
    readonly path: string,
    private db: Database,
  ) {}

  /**
   * Opens the file, creating it 0600 if it does not exist. Throws StateFileError, and changes
   * nothing on disk, when it cannot be opened (missing directory, permissions) or is not a state
   * file of this relay (not SQLite, another application's tables). `modes` tells which files
   * were open to other users.
   */
  static open(path: string): { store: StateStore; modes: ModeNote[] } {
    const unusable = (why: string) =>
      new StateFileError(`${path} is not a usable quic-relay state file (${why}); it was left untouched: move it away or choose another --state-file`);
    let db: Database | undefined;
    try {
      createPrivateFile(path);
      db = new Database(path, { strict: true });
      const foreign = foreignSchema(db);
      if (foreign) throw unusable(foreign);
    } catch (error) {
      db?.close();
      if (error instanceof StateFileError) throw error;
      const { code, message } = error as { code?: string; message: string };
      // SQLite finds out that a file is no database (or a damaged one) when it first reads it.
      if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") throw unusable(message);
      throw new StateFileError(`cannot open state file ${path}: ${message}`);
    }
    const modes = restrictToOwner(path);
    const store = new StateStore(path, db);
    try {
      store.migrate();
    } catch (error) {
      db.close();
      throw new StateFileError(`cannot open state file ${path}: ${(error as Error).message}`);
    }
    return { store, modes };
  }

  /**
   * The last save (undefined when there is none), with its rows checked by `rules`. Never throws
   * for the file's content: a file of another format version, or one that fails while being read,
   * is renamed to `<path>.unreadable-<time>` and replaced by an empty one.
   */
  load(rules: RowRules = ANY_SOCKET): LoadResult {
    try {
      const meta = this.db.query("SELECT value FROM meta WHERE key = $key");
      const version = (meta.get({ key: "format_version" }) as { value: unknown } | null)?.value;
      const savedAt = (meta.get({ key: "saved_at_ms" }) as { value: unknown } | null)?.value;
      if (version !== FORMAT_VERSION) throw new StateFileError(`format version ${String(version ?? "missing")}`);
      if (savedAt === undefined) return { state: undefined, malformed: {} };
      const savedAtMs = Number(savedAt);
      if (!Number.isFinite(savedAtMs)) throw new StateFileError(`saved_at_ms is not a number: ${String(savedAt).slice(0, 40)}`);
      const rows = this.db.query("SELECT id, idle_ms, peers FROM sessions").iterate() as IterableIterator<StoredRow>;
      const { sessions, malformed } = checkRows(rows, rules);
      return { state: { savedAtMs, sessions }, malformed };
    } catch (error) {
      return { state: undefined, malformed: {}, unreadable: this.setAside((error as Error).message) };
    }
  }

  /** Replaces the saved sessions in one go (one transaction, no pause). */
  save(sessions: readonly SessionSnapshot[], savedAtMs = Date.now()): void {
    const insert = this.insertRow();
    this.db.transaction(() => {
      this.db.run("DELETE FROM sessions");
      for (const s of sessions) insert(s);
      this.setSavedAt(savedAtMs);
    })();
  }

  /**
   * Replaces the saved sessions like `save`, in one transaction, but writes `chunkRows` rows at a
   * time and awaits `pause` between chunks, so the process keeps answering (its health endpoint,
   * its timers) during a save of many sessions. The file changes only at the commit: a crash, an
   * error or an abort in between leaves the previous save as it was (SQLite rolls the transaction
   * back). `aborted` is asked after each pause; when it says true the transaction is rolled back
   * and false is returned. No other use of this store may start before the promise settles.
   */
  async saveInChunks(sessions: readonly SessionSnapshot[], savedAtMs = Date.now(), options: ChunkedSaveOptions = {}): Promise<boolean> {
    const chunkRows = Math.max(1, options.chunkRows ?? DEFAULT_CHUNK_ROWS);
    const pause = options.pause ?? nextTurn;
    const insert = this.insertRow();
    const db = this.db;
    db.run("BEGIN IMMEDIATE");
    try {
      db.run("DELETE FROM sessions");
      for (let start = 0; start < sessions.length; start += chunkRows) {
        if (start > 0) {
          await pause();
          if (options.aborted?.()) {
            db.run("ROLLBACK");
            return false;
          }
        }
        const end = Math.min(sessions.length, start + chunkRows);
        for (let i = start; i < end; i++) insert(sessions[i]!);
      }
      this.setSavedAt(savedAtMs);
      db.run("COMMIT");
      return true;
    } catch (error) {
      if (db.inTransaction) db.run("ROLLBACK");
      throw error;
    }
  }

  private insertRow(): (s: SessionSnapshot) => void {
    const insert = this.db.query("INSERT INTO sessions (id, idle_ms, peers) VALUES ($id, $idle, $peers)");
    return (s) => void insert.run({ id: s.id, idle: s.idleMs, peers: JSON.stringify(s.peers) });
  }

  private setSavedAt(savedAtMs: number): void {
    this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES ($key, $value)").run({ key: "saved_at_ms", value: String(savedAtMs) });
  }

  close(): void {
    this.db.close();
  }

  /** Moves the file away and starts an empty one; when the move fails, the file stays in use. */
  private setAside(reason: string): { reason: string; movedTo?: string } {
    const movedTo = `${this.path}.unreadable-${Date.now()}`;
    try {
      // Renamed while still open: if the rename fails, the store goes on with the same file.
      renameSync(this.path, movedTo);
    } catch (error) {
      return { reason: `${reason}; not set aside: ${(error as Error).message}` };
    }
    this.db.close();
    createPrivateFile(this.path);
    this.db = new Database(this.path, { strict: true });
    this.migrate();
    return { reason, movedTo };
  }

  private migrate(): void {
    this.db.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.db.run("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, idle_ms REAL NOT NULL, peers TEXT NOT NULL)");
    this.db.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)", [FORMAT_VERSION]);
  }
}

/**
 * Why `db` is not a state file of this relay, or undefined: it is empty (new), has this format's
 * tables, or says it is a state file of another format version (load sets that one aside).
 */
function foreignSchema(db: Database): string | undefined {
  const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all() as { name: string }[]).map((t) => t.name);
  const columns = (table: string) => (db.query(`PRAGMA table_info("${table}")`).all() as { name: string }[]).map((c) => c.name).join(",");
  if (tables.includes("meta") && columns("meta") === SCHEMA.get("meta")!.join(",")) {
    const version = db.query("SELECT value FROM meta WHERE key = 'format_version'").get() as { value: unknown } | null;
    if (version && version.value !== FORMAT_VERSION) return undefined;
  }
  for (const table of tables) {
    const expected = SCHEMA.get(table);
    if (!expected) return `unknown table ${JSON.stringify(table.slice(0, 40))}`;
    const found = columns(table);
    if (found !== expected.join(",")) return `table '${table}' has columns (${found}), expected (${expected.join(",")})`;
  }
  return undefined;
}

/** Sessions as they should be restored now: the time the relay was down counts as idle time. */
export function withDowntime(state: SavedState, nowMs = Date.now()): SessionSnapshot[] {
  const down = Math.max(0, nowMs - state.savedAtMs);
  return state.sessions.map((s) => ({ ...s, idleMs: s.idleMs + down, peers: s.peers.map((p) => ({ ...p, idleMs: p.idleMs + down })) }));
}
