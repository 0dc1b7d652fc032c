/**
 * One save of the session table into a format-2 state file: only the sessions that changed since
 * the previous save, in chunks bounded by time, each chunk one committed transaction, with a turn
 * of the event loop before each.
 *
 * For each changed id the save appends the session's row, or, when the session is gone and the
 * file holds it, a removal row. Then it compacts: while the file holds more than twice as many
 * rows as sessions (plus some slack), the oldest row goes; if it is still the newest row of a
 * session it is copied to the end first, in the same transaction. Appends and drops touch the two
 * ends of the table's b-tree, so a chunk dirties a few pages however the changed sessions are
 * spread over the file.
 *
 * Every commit leaves a consistent file: a session's newest row is the session as it was when its
 * chunk was written, older rows are history a restore passes over. A crash loses what was not
 * committed yet, as a crash before the save would have. Ids not committed when a save fails or is
 * stopped go back into the table's changed set, for the next save.
 */
import type { SessionSnapshot } from "../sessions/table.ts";
import type { RowIndex } from "./row-index.ts";
import { type RowWriter, type StateStore, sessionRow, type TailRow } from "./store.ts";

/** Work in one chunk, in milliseconds, before the save pauses: the commit comes on top (under a millisecond). */
export const DEFAULT_CHUNK_MS = 3;

/** Rows beyond twice the sessions' that the file may hold before compaction starts. */
export const COMPACT_SLACK = 1024;

/** Oldest rows read at a time by compaction. */
const TAIL_BATCH = 256;

/** What a save needs of the session table (SessionTable has it). */
export interface ChangedSessions {
  takeChanged(): { values(): IterableIterator<string> };
  markChanged(ids: Iterable<string>): void;
  snapshot(id: string): SessionSnapshot | undefined;
}

export interface SaveOptions {
  /** Work per chunk before the save pauses, in milliseconds of `workClock` (default DEFAULT_CHUNK_MS). */
  chunkMs?: number;
  /** At most this many rows appended or dropped per chunk (default: bounded by time only). */
  chunkRows?: number;
  /** Awaited before each chunk (default: one macrotask, so timers and sockets are served). */
  pause?: () => Promise<void>;
  /** Asked after each pause: true stops the save there; what was committed stays. */
  aborted?: () => boolean;
  /** Drop rows no session needs (default true; the final save skips it to end sooner). */
  compact?: boolean;
  /** See COMPACT_SLACK. */
  compactSlack?: number;
  /** Wall clock for the instants stored (default Date.now). */
  wallClock?: () => number;
  /** Clock that measures a chunk's work (default performance.now). */
  workClock?: () => number;
}

/** What one save did. */
export interface SaveReport {
  /** It wrote every changed session (false: stopped by `aborted`). */
  complete: boolean;
  /** Session rows appended (sessions created or changed). */
  written: number;
  /** Removal rows appended (sessions removed or expired, rows refused at restore). */
  removed: number;
  /** Rows copied to the end by compaction. */
  copied: number;
  /** Rows dropped by compaction. */
  dropped: number;
  chunks: number;
  /** From the start of the save to its end, pauses included. */
  durationMs: number;
  /** The longest chunk: time the event loop was held by this save at once (commit included). */
  longestChunkMs: number;
}

/** A macrotask: timers and sockets get their turn before the next chunk is written. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Saves what changed in `table` into `store`. `index` is where the file's newest rows are (from
 * the load); without it nothing is known of the file's rows: removals are written for every gone
 * session and nothing is compacted. No other write to the store may start before this settles.
 * Throws what the store threw, after putting back the ids it did not commit.
 */
export function saveChanges(store: StateStore, index: RowIndex | undefined, table: ChangedSessions, options: SaveOptions = {}): Promise<SaveReport> {
  return new SaveRun(store, index, table, options).run();
}

/** Per-chunk tallies, added to the report when the chunk commits. */
interface ChunkCounts {
  written: number;
  removed: number;
  copied: number;
  dropped: number;
  /** Rows added to the table (appends and copies less drops). */
  added: number;
}

class SaveRun {
  private readonly chunkMs: number;
  private readonly chunkRows: number;
  private readonly wall: () => number;
  private readonly work: () => number;
  private readonly compact: boolean;
  private readonly slack: number;
  private readonly report: SaveReport = { complete: false, written: 0, removed: 0, copied: 0, dropped: 0, chunks: 0, durationMs: 0, longestChunkMs: 0 };
  /** The changed ids not written yet. */
  private pending: Iterator<string> & Iterable<string> = [].values();
  /** Ids written in the chunk under way: back to the table if it does not commit. */
  private inChunk: string[] = [];
  private readonly tail = new Tail();

  constructor(
    private readonly store: StateStore,
    private readonly index: RowIndex | undefined,
    private readonly table: ChangedSessions,
    private readonly options: SaveOptions,
  ) {
    this.chunkMs = options.chunkMs ?? DEFAULT_CHUNK_MS;
    this.chunkRows = Math.max(1, options.chunkRows ?? Number.POSITIVE_INFINITY);
    this.wall = options.wallClock ?? Date.now;
    this.work = options.workClock ?? (() => performance.now());
    this.compact = options.compact !== false && index !== undefined;
    this.slack = options.compactSlack ?? COMPACT_SLACK;
  }

  async run(): Promise<SaveReport> {
    const pause = this.options.pause ?? nextTurn;
    const started = this.work();
    this.pending = this.table.takeChanged().values();
    try {
      for (let more = true; more; ) {
        await pause();
        if (this.options.aborted?.()) {
          this.table.markChanged(this.pending);
          this.report.durationMs = this.work() - started;
          return this.report;
        }
        more = this.chunk();
      }
    } catch (error) {
      this.index?.rollback();
      this.table.markChanged(this.inChunk);
      this.table.markChanged(this.pending);
      throw error;
    }
    this.report.complete = true;
    this.report.durationMs = this.work() - started;
    return this.report;
  }

  /** Writes and commits one chunk; false when the save has nothing left to do. */
  private chunk(): boolean {
    const start = this.work();
    const counts: ChunkCounts = { written: 0, removed: 0, copied: 0, dropped: 0, added: 0 };
    let more = true;
    this.index?.begin();
    this.store.transact((rows) => {
      for (let n = 0; ; n++) {
        if (n > 0 && (n >= this.chunkRows || this.work() - start >= this.chunkMs)) return;
        const next = this.pending.next();
        if (!next.done) {
          this.inChunk.push(next.value);
          this.writeSession(rows, next.value, counts);
        } else if (!this.compactOne(rows, counts)) {
          more = false;
          return;
        }
      }
    }, this.wall());
    this.index?.commit();
    this.inChunk = [];
    const r = this.report;
    r.written += counts.written;
    r.removed += counts.removed;
    r.copied += counts.copied;
    r.dropped += counts.dropped;
    r.chunks++;
    r.longestChunkMs = Math.max(r.longestChunkMs, this.work() - start);
    return more;
  }

  /** The session's row, or its removal when it is gone and the file may hold it. */
  private writeSession(rows: RowWriter, id: string, counts: ChunkCounts): void {
    const snapshot = this.table.snapshot(id);
    if (snapshot) {
      const seq = rows.append(sessionRow(snapshot, this.wall()));
      this.index?.session(id, seq);
      counts.written++;
      counts.added++;
    } else if (!this.index || this.index.holdsSession(id)) {
      const seq = rows.appendRemoval(id);
      this.index?.removal(id, seq);
      counts.removed++;
      counts.added++;
    }
  }

  /**
   * Drops the oldest row while the file holds more than twice the sessions' rows (plus slack),
   * copied to the end first if it is a session's newest. False when there is nothing to drop.
   */
  private compactOne(rows: RowWriter, counts: ChunkCounts): boolean {
    const index = this.index;
    if (!this.compact || !index || this.store.rowCount + counts.added <= 2 * index.sessions + this.slack) return false;
    const row = this.tail.next(rows);
    if (!row) return false;
    if (index.isNewestSession(row.id, row.seq)) {
      index.session(row.id as string, rows.copy(row.seq));
      counts.copied++;
      counts.added++;
    } else if (index.isNewestRemoval(row.id, row.seq)) {
      // Nothing older of this id is left: the removal has done its work.
      index.forget(row.id as string);
    }
    rows.drop(row.seq);
    counts.dropped++;
    counts.added--;
    return true;
  }
}

/** The oldest rows, read a batch at a time, in order. */
class Tail {
  private batch: TailRow[] = [];
  private at = 0;
  private after = 0;

  next(rows: RowWriter): TailRow | undefined {
    if (this.at === this.batch.length) {
      this.batch = rows.oldest(this.after, TAIL_BATCH);
      this.at = 0;
    }
    const row = this.batch[this.at++];
    if (row) this.after = row.seq;
    return row;
  }
}
