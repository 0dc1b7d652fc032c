import { Database } from "bun:sqlite";
import { renameSync } from "node:fs";
import type { SessionSnapshot } from "../sessions/table.ts";
import { type Checkpointer, WorkerCheckpointer } from "./checkpointer.ts";
import { StateFileError } from "./errors.ts";
import { createPrivateFile, type ModeNote, restrictToOwner } from "./file-mode.ts";
import { readLegacyRows } from "./format-v1.ts";
import { RowIndex } from "./row-index.ts";
import { ANY_SOCKET, instantTimes, type ProblemCounts, RowChecker, type RowRules, type StoredRow } from "./rows.ts";
import { createTables, FORMAT_VERSION, fileVersion, foreignSchema, LEGACY_VERSION } from "./schema.ts";

/** Side files SQLite keeps next to a database in WAL mode; moved with it when it is set aside. */
const WAL_FILES = ["-wal", "-shm"];

/** Highest row number read: a relay appending a million rows a second takes a century to get there. */
const MAX_SEQ = 2 ** 52;

/** Rows read at a time when a file is loaded. */
const READ_BATCH = 10_000;

/** The write-ahead log is cut back to this size after a checkpoint emptied it. */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

export { StateFileError };

export interface SavedState {
  /** Wall-clock milliseconds of the last commit to the file (0 if it does not say). */
  savedAtMs: number;
  /** The sessions that passed the checks of rows.ts, oldest activity first, idle times as of the load. */
  sessions: SessionSnapshot[];
  /** `rows[i]` is the seq of the row `sessions[i]` was read from; 0: it is in no file (see migrate). */
  rows: number[];
}

export interface LoadResult {
  state: SavedState | undefined;
  /** Rows not restored because they break the rules of rows.ts, by problem. */
  malformed: ProblemCounts;
  /**
   * Each id's newest row in the file as it is after the load (restorable, refused or removal), for
   * the saves that follow. Empty when the file holds no rows, or was set aside.
   */
  index: RowIndex;
  /**
   * Ids whose newest row is a session that was refused as malformed: the next save records their
   * removal, so that the file stops holding them.
   */
  refused: string[];
  /** The file could not be read as a state file: why, and where it was moved (unless that failed). */
  unreadable?: { reason: string; movedTo?: string };
  /** The file was of format 1 and is now of this format: its rows that passed the checks, rewritten. */
  migrated?: { from: string; rows: number };
}

/** A session row as format 2 stores it. */
export interface SessionRow {
  id: string;
  /** Wall-clock milliseconds of the session's last activity. */
  activeAtMs: number;
  /** JSON: `[{ address, port, seenAtMs, proven? }]`. */
  peers: string;
}

/** The oldest rows of the file, as compaction reads them. */
export interface TailRow {
  seq: number;
  id: unknown;
  /** A removal row (its peers are NULL). */
  removal: boolean;
}

/** What one transaction of a save may do; see incremental-save.ts. */
export interface RowWriter {
  /** Appends a session's row; returns its seq. */
  append(row: SessionRow): number;
  /** Appends the removal of `id`; returns its seq. */
  appendRemoval(id: string): number;
  /** Up to `limit` of the oldest rows with a seq above `after`, oldest first. */
  oldest(after: number, limit: number): TailRow[];
  /** Appends a copy of row `seq` as it is; returns the copy's seq. */
  copy(seq: number): number;
  /** Deletes row `seq`. */
  drop(seq: number): void;
}

export interface StoreOptions {
  /** Who checkpoints the write-ahead log (default: a worker thread, WorkerCheckpointer). */
  checkpointer?: (path: string) => Checkpointer;
}

/**
 * A session as a format-2 row, its idle times turned into instants of the wall clock `nowMs`.
 * The peers' JSON is written out directly (no intermediate objects: a save of a million
 * sessions makes that much less garbage); it reads back as `[{ address, port, seenAtMs, proven? }]`.
 */
export function sessionRow(s: SessionSnapshot, nowMs: number): SessionRow {
  let peers = "[";
  for (const p of s.peers) {
    if (peers.length > 1) peers += ",";
    peers += `{"address":${JSON.stringify(p.address)},"port":${JSON.stringify(p.port)},"seenAtMs":${Math.round(nowMs - p.idleMs)}`;
    peers += p.proven === undefined ? "}" : `,"proven":${p.proven === true}}`;
  }
  return { id: s.id, activeAtMs: Math.round(nowMs - s.idleMs), peers: `${peers}]` };
}

/**
 * The session table on disk: one SQLite file in WAL mode, format 2 (schema.ts). Saves append rows
 * in short transactions (one per chunk of a save), and every committed state is a consistent file:
 * each session's newest row is that session as it was when its chunk was written. A crash at any
 * moment leaves the last committed chunk. The file and its side files are private (0600).
 */
export class StateStore {
  /** Rows in the `sessions` table (sessions, removals and older rows not dropped yet). */
  rowCount = 0;
  private readonly checkpointer: Checkpointer;
  /** SQLite checkpoints on this thread (the checkpointer could not). */
  private inlineCheckpoints = false;

  private constructor(
    readonly path: string,
    private db: Database,
    options: StoreOptions,
  ) {
    this.checkpointer = (options.checkpointer ?? ((p) => new WorkerCheckpointer(p)))(path);
  }

  /**
   * Opens the file, creating it 0600 if it does not exist. Throws StateFileError, and changes
   * nothing on disk, when it cannot be opened (missing directory, permissions) or is not a state
   * file of this relay (not SQLite, another application's tables). `modes` tells which files
   * were open to other users. A file of format 1 is left as it is until `load` migrates it.
   */
  static open(path: string, options: StoreOptions = {}): { store: StateStore; modes: ModeNote[] } {
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
    const store = new StateStore(path, db, options);
    try {
      store.prepare();
    } catch (error) {
      db.close();
      throw new StateFileError(`cannot open state file ${path}: ${(error as Error).message}`);
    }
    return { store, modes };
  }

  /**
   * The saved sessions (state undefined when nothing was ever saved), with their rows checked by
   * `rules` and idle times as of the wall-clock `nowMs`. A file of format 1 is migrated first.
   * Never throws for the file's content: a file of an unknown format version, or one that fails
   * while being read, is renamed to `<path>.unreadable-<time>` and replaced by an empty one.
   */
  load(rules: RowRules = ANY_SOCKET, nowMs = Date.now()): LoadResult {
    try {
      const version = this.meta("format_version");
      if (version === LEGACY_VERSION) return this.migrate(rules, nowMs);
      if (version !== FORMAT_VERSION) throw new StateFileError(`format version ${String(version ?? "missing")}`);
      this.checkSeqRange();
      const savedAt = this.meta("saved_at_ms");
      const loaded = this.readRows(rules, nowMs, savedAt === undefined ? 0 : savedAtOf(savedAt));
      // Never saved: a new file, unless someone wrote rows into it.
      return savedAt === undefined && this.rowCount === 0 ? { ...loaded, state: undefined } : loaded;
    } catch (error) {
      return { ...nothing(), unreadable: this.setAside((error as Error).message) };
    }
  }

  /**
   * Replaces every row with `sessions`, idle times as of the wall-clock `savedAtMs` (one
   * transaction, no pause). For tools and tests; the relay saves incrementally (incremental-save.ts).
   */
  save(sessions: readonly SessionSnapshot[], savedAtMs = Date.now()): void {
    this.commit((rows) => {
      this.db.run("DELETE FROM sessions");
      this.rowCount = 0;
      for (const s of sessions) rows.append(sessionRow(s, savedAtMs));
    }, savedAtMs);
  }

  /**
   * Runs `work` in one transaction that also records `savedAtMs`, and commits it; on a throw
   * everything it did is rolled back and the error passes on. Returns what `work` returned. The
   * checkpointer is asked to copy the commit into the file.
   */
  transact<T>(work: (rows: RowWriter) => T, savedAtMs: number): T {
    const result = this.commit(work, savedAtMs);
    // Committed: nothing after this may throw (the caller takes a throw for a rolled-back chunk).
    if (!this.inlineCheckpoints && !this.checkpointer.requested()) {
      this.inlineCheckpoints = true;
      try {
        this.db.run("PRAGMA wal_autocheckpoint = 1000");
      } catch {
        // The log grows until the next open folds it in; the saves themselves go on.
      }
    }
    return result;
  }

  private commit<T>(work: (rows: RowWriter) => T, savedAtMs: number): T {
    const before = this.rowCount;
    let added = 0;
    const append = this.db.query("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?1, ?2, ?3)");
    const copy = this.db.query("INSERT INTO sessions (id, active_at_ms, peers) SELECT id, active_at_ms, peers FROM sessions WHERE seq = ?1");
    const drop = this.db.query("DELETE FROM sessions WHERE seq = ?1");
    const oldest = this.db.query("SELECT seq, id, peers IS NULL AS removal FROM sessions WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    const writer: RowWriter = {
      append: (row) => (added++, Number(append.run(row.id, row.activeAtMs, row.peers).lastInsertRowid)),
      appendRemoval: (id) => (added++, Number(append.run(id, null, null).lastInsertRowid)),
      oldest: (after, limit) => (oldest.all(after, limit) as { seq: number; id: unknown; removal: number }[]).map((r) => ({ seq: r.seq, id: r.id, removal: r.removal === 1 })),
      copy: (seq) => {
        const { changes, lastInsertRowid } = copy.run(seq);
        added += changes;
        return changes === 1 ? Number(lastInsertRowid) : 0;
      },
      drop: (seq) => void (added -= drop.run(seq).changes),
    };
    try {
      const result = this.db
        .transaction(() => {
          const out = work(writer);
          this.setMeta("saved_at_ms", String(savedAtMs));
          return out;
        })
        .immediate();
      this.rowCount += added;
      return result;
    } catch (error) {
      this.rowCount = before;
      throw error;
    }
  }

  /** Closes the file; the promise ends when the checkpoint worker has closed its connection too. */
  close(): Promise<void> {
    this.db.close();
    return this.checkpointer.close();
  }

  private prepare(): void {
    const version = fileVersion(this.db);
    // A file of another version is left as it is: load migrates it or sets it aside.
    if (version !== undefined && version !== FORMAT_VERSION) return;
    this.useWal();
    createTables(this.db);
  }

  /** WAL: a commit appends to the log, checkpoints copy it into the file (checkpointer.ts). */
  private useWal(): void {
    this.db.run("PRAGMA journal_mode = WAL");
    // In WAL mode NORMAL syncs at checkpoints only: a power cut may lose the last commits, never
    // the file's consistency.
    this.db.run("PRAGMA synchronous = NORMAL");
    this.db.run(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT}`);
    if (this.checkpointer.offThread) this.db.run("PRAGMA wal_autocheckpoint = 0");
  }

  /**
   * Reads a format-2 file: first each id's newest row (seq and kind only), then the newest rows'
   * content, checked. Two passes over the rows in seq order; what is kept per older row is its seq
   * (a sorted list the second pass walks along), so that pass looks nothing up by id.
   */
  private readRows(rules: RowRules, nowMs: number, savedAtMs: number): LoadResult & { state: SavedState } {
    const index = new RowIndex();
    const older: number[] = [];
    let rowCount = 0;
    for (const row of this.inSeqOrder<{ seq: number; id: unknown; removal: number }>("seq, id, peers IS NULL AS removal")) {
      rowCount++;
      if (typeof row.id !== "string") continue;
      const replaced = row.removal === 1 ? index.removal(row.id, row.seq) : index.session(row.id, row.seq);
      if (replaced !== undefined) older.push(replaced);
    }
    this.rowCount = rowCount;
    older.sort((a, b) => a - b);
    const checker = new RowChecker(rules, instantTimes(nowMs));
    const sessions: SessionSnapshot[] = [];
    const rows: number[] = [];
    const refused: string[] = [];
    let next = 0;
    for (const row of this.inSeqOrder<StoredRow & { seq: number }>("seq, id, active_at_ms AS time, peers")) {
      while (next < older.length && older[next]! < row.seq) next++;
      // Older rows of an id are history, removals restore nothing; rows with an id of another
      // type are checked (and refused).
      if (row.peers === null || older[next] === row.seq) continue;
      const session = checker.check(row);
      if (session) {
        sessions.push(session);
        rows.push(row.seq);
      } else if (typeof row.id === "string") {
        refused.push(row.id);
      }
    }
    const order = oldestFirst(sessions);
    return {
      state: { savedAtMs, sessions: order.map((i) => sessions[i]!), rows: order.map((i) => rows[i]!) },
      malformed: checker.malformed,
      index,
      refused,
    };
  }

  /** The `columns` of every row in seq order, read a batch at a time (faster than row by row). */
  private *inSeqOrder<T extends { seq: number }>(columns: string): Generator<T> {
    const batch = this.db.query(`SELECT ${columns} FROM sessions WHERE seq > ?1 ORDER BY seq LIMIT ${READ_BATCH}`);
    for (let after = Number.NEGATIVE_INFINITY; ; ) {
      const rows = batch.all(after) as T[];
      yield* rows;
      if (rows.length < READ_BATCH) return;
      after = rows[rows.length - 1]!.seq;
    }
  }

  /**
   * Format 1 to format 2 in one transaction: the rows that pass the checks (idle times plus the
   * time since that save) are written as format-2 rows, the others are counted and left behind,
   * and the version changes. A crash in between leaves the format-1 file as it was. When the
   * rewrite fails the file is set aside and the sessions are still returned (not in any file:
   * the persister has the next save write them).
   */
  private migrate(rules: RowRules, nowMs: number): LoadResult {
    const { savedAtMs, sessions, malformed } = readLegacyRows(this.db, rules, nowMs);
    const order = oldestFirst(sessions);
    const ordered = order.map((i) => sessions[i]!);
    const index = new RowIndex();
    const rows: number[] = [];
    try {
      this.useWal();
      this.db
        .transaction(() => {
          this.db.run("DROP TABLE sessions");
          createTables(this.db);
          this.setMeta("format_version", FORMAT_VERSION);
          this.setMeta("saved_at_ms", String(nowMs));
          const append = this.db.query("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?1, ?2, ?3)");
          for (const s of ordered) {
            const row = sessionRow(s, nowMs);
            rows.push(Number(append.run(row.id, row.activeAtMs, row.peers).lastInsertRowid));
          }
        })
        .immediate();
    } catch (error) {
      const unreadable = this.setAside(`migrating format ${LEGACY_VERSION} failed: ${(error as Error).message}`);
      const state = savedAtMs === undefined ? undefined : { savedAtMs, sessions: ordered, rows: ordered.map(() => 0) };
      return { state, malformed, index: new RowIndex(), refused: [], unreadable };
    }
    for (let i = 0; i < ordered.length; i++) index.session(ordered[i]!.id, rows[i]!);
    this.rowCount = rows.length;
    const state = savedAtMs === undefined ? undefined : { savedAtMs, sessions: ordered, rows };
    return { state, malformed, index, refused: [], migrated: { from: LEGACY_VERSION, rows: rows.length } };
  }

  /**
   * A relay numbers rows from 1 up, one per append: a seq below 1 or beyond what a double holds
   * exactly comes from elsewhere, and would break the row index (StateFileError: set aside).
   */
  private checkSeqRange(): void {
    const { low, high } = this.db.query("SELECT min(seq) AS low, max(seq) AS high FROM sessions").get() as { low: number | null; high: number | null };
    if (low !== null && (low < 1 || high! > MAX_SEQ)) throw new StateFileError(`row numbers out of range: ${low}..${high}`);
  }

  private meta(key: string): unknown {
    return (this.db.query("SELECT value FROM meta WHERE key = ?1").get(key) as { value: unknown } | null)?.value;
  }

  private setMeta(key: string, value: string): void {
    this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)").run(key, value);
  }

  /**
   * Moves the file (with its WAL side files) away and starts an empty one; when the move fails,
   * the file stays in use. Closed first, so that SQLite folds its log into it.
   */
  private setAside(reason: string): { reason: string; movedTo?: string } {
    const movedTo = `${this.path}.unreadable-${Date.now()}`;
    try {
      this.db.close();
    } catch {
      // A damaged file may fail to checkpoint: its log moves with it.
    }
    let moved = true;
    try {
      renameSync(this.path, movedTo);
      for (const suffix of WAL_FILES) renameIfPresent(this.path + suffix, movedTo + suffix);
    } catch (error) {
      moved = false;
      reason = `${reason}; not set aside: ${(error as Error).message}`;
    }
    createPrivateFile(this.path);
    this.db = new Database(this.path, { strict: true });
    this.rowCount = 0;
    if (moved) this.prepare();
    return moved ? { reason, movedTo } : { reason };
  }
}

function nothing(): LoadResult {
  return { state: undefined, malformed: {}, index: new RowIndex(), refused: [] };
}

function savedAtOf(value: unknown): number {
  const savedAtMs = Number(value);
  if (!Number.isFinite(savedAtMs)) throw new StateFileError(`saved_at_ms is not a number: ${String(value).slice(0, 40)}`);
  return savedAtMs;
}

/** Positions of `sessions` in the order the table restores them: longest idle first. */
function oldestFirst(sessions: readonly SessionSnapshot[]): number[] {
  return Array.from(sessions.keys()).sort((a, b) => sessions[b]!.idleMs - sessions[a]!.idleMs);
}

function renameIfPresent(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}
