import type { Logger } from "../log.ts";
import type { OperationsCounters } from "../metrics/relay-metrics.ts";
import type { SessionTable } from "../sessions/table.ts";
import type { ModeNote } from "./file-mode.ts";
import { type SaveOptions, type SaveReport, saveChanges } from "./incremental-save.ts";
import type { RowIndex } from "./row-index.ts";
import { countOf, type ProblemCounts, type RestoreContext, RowProblem, rowRules } from "./rows.ts";
import { StateStore, type StoreOptions } from "./store.ts";

/** A save under way; `abort` makes it stop at its next pause. */
interface SaveRun {
  abort: boolean;
  done: Promise<boolean>;
}

export interface PersisterOptions extends Pick<SaveOptions, "chunkMs" | "chunkRows" | "pause" | "compactSlack" | "workClock"> {
  /** Wall clock for the instants in the file and the idle times read back (default Date.now). */
  wallClock?: () => number;
  /** How the file is opened (its checkpointer). */
  store?: StoreOptions;
}

/**
 * Keeps the session table in the state file: restores it once at startup, then saves what changed
 * every interval and once more on shutdown. A failed save is logged and counted; the relay goes
 * on, and the next save writes what it did not. Saves write in chunks of a few milliseconds and
 * yield to the event loop before each (incremental-save.ts): they never hold the process for long.
 */
export class StatePersister {
  /** Rows of the file not restored because they were malformed, by problem (see rows.ts). */
  readonly malformedRows: ProblemCounts = {};
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The save under way, if any. */
  private current: SaveRun | undefined;
  private closing: Promise<void> | undefined;
  private closed = false;
  /** Where the file's newest rows are; known once restore() read the file. */
  private index: RowIndex | undefined;
  private last: SaveReport | undefined;
  private readonly wall: () => number;

  private constructor(
    private readonly store: StateStore,
    private readonly table: SessionTable,
    private readonly logger: Logger,
    private readonly counters: OperationsCounters,
    private readonly options: PersisterOptions,
  ) {
    this.wall = options.wallClock ?? Date.now;
    // From here on the table records what changed; what it holds already goes into the first save.
    table.trackChanges();
    table.markChanged(table.sessionIds());
  }

  /** Opens the file; throws StateFileError when it cannot be opened or is not a state file. */
  static open(path: string, table: SessionTable, logger: Logger, counters: OperationsCounters, options: PersisterOptions = {}): StatePersister {
    const { store, modes } = StateStore.open(path, options.store);
    for (const note of modes) logModeNote(logger, note);
    return new StatePersister(store, table, logger, counters, options);
  }

  /**
   * What the last save that ended did: rows written, removed, copied and dropped, chunks, its
   * duration and longest chunk (whether it completed or was stopped). Undefined before the first,
   * and after a save that failed.
   */
  get lastSave(): SaveReport | undefined {
    return this.last;
  }

  /** Rows in the file: sessions, removals and older rows that compaction has not dropped yet. */
  get fileRows(): number {
    return this.store.rowCount;
  }

  /**
   * Puts the saved sessions back into the table (call right after the data plane started). Rows
   * that break the rules of rows.ts are skipped and counted, with one warning. `context` names the
   * socket and fleet membership; without it the address family of peers is not checked. Never throws.
   */
  restore(context?: RestoreContext): number {
    try {
      return this.restoreRows(context);
    } catch (error) {
      this.logger.error("restoring the state file failed; going on with what was restored", {
        file: this.store.path,
        error: (error as Error).message,
      });
      return 0;
    }
  }

  private restoreRows(context: RestoreContext | undefined): number {
    const now = this.wall();
    const { state, malformed, unreadable, migrated, index, refused } = this.store.load(rowRules(context), now);
    this.index = index;
    if (unreadable?.movedTo) {
      this.logger.warn("state file unreadable, set aside; starting with an empty table", { file: unreadable.movedTo, reason: unreadable.reason });
    } else if (unreadable) {
      this.logger.warn("state file unreadable; starting with an empty table", { file: this.store.path, reason: unreadable.reason });
    }
    if (migrated) this.logger.info("state file migrated", { file: this.store.path, from_version: migrated.from, rows: migrated.rows });
    // Rows refused now are removed from the file by the next save.
    this.table.markChanged(refused);
    if (!state) return 0;
    const problems: ProblemCounts = { ...malformed };
    let planeError: string | undefined;
    let restored = 0;
    /** Sessions whose row must be written or removed by the next save. */
    const rewrite: string[] = [];
    // One at a time, oldest activity first as the table orders them: a row the data plane refuses
    // when its routes go in costs that row only.
    for (let i = 0; i < state.sessions.length; i++) {
      const snapshot = state.sessions[i]!;
      let n = 0;
      try {
        n = this.table.restoreSessions([snapshot]);
      } catch (error) {
        problems[RowProblem.PlaneRefused] = (problems[RowProblem.PlaneRefused] ?? 0) + 1;
        planeError ??= (error as Error).message;
      }
      restored += n;
      // Not restored (expired, colliding, refused): removed from the file. Restored but in no
      // file (a format-1 file that could not be rewritten): written.
      if (n === 0 || state.rows[i] === 0) rewrite.push(snapshot.id);
    }
    this.table.markChanged(rewrite);
    const malformedCount = countOf(problems);
    for (const [problem, n] of Object.entries(problems) as [RowProblem, number][]) {
      this.malformedRows[problem] = (this.malformedRows[problem] ?? 0) + n;
    }
    if (malformedCount > 0) {
      this.logger.warn("state file rows skipped as malformed", {
        file: this.store.path,
        malformed: malformedCount,
        reasons: problems,
        ...(planeError ? { plane_error: planeError } : {}),
      });
    }
    this.counters.sessionsRestored += restored;
    this.logger.info("sessions restored from state file", {
      file: this.store.path,
      restored,
      skipped: state.sessions.length + countOf(malformed) - restored,
      malformed: malformedCount,
      ...(state.savedAtMs > 0 ? { saved_s_ago: Math.round((now - state.savedAtMs) / 1000) } : {}),
    });
    return restored;
  }

  startPeriodic(intervalMs: number): void {
    this.timer = setInterval(() => void this.save(), intervalMs);
    this.timer.unref?.();
  }

  /**
   * Saves what changed since the last save (incremental-save.ts): chunks of a few milliseconds,
   * each committed, with a turn of the event loop before each, so the process keeps answering its
   * health endpoint during a save of many sessions. A save already under way is not doubled: its
   * promise is returned. Resolves false when the save failed (logged, counted) or was stopped;
   * what it did not write is written by the next one.
   */
  save(): Promise<boolean> {
    if (this.closed || this.closing) return Promise.resolve(false);
    return this.current?.done ?? this.startSave(false);
  }

  private startSave(final: boolean): Promise<boolean> {
    const run: SaveRun = { abort: false, done: Promise.resolve(false) };
    this.current = run;
    run.done = this.write(run, final);
    return run.done;
  }

  private async write(run: SaveRun, final: boolean): Promise<boolean> {
    const { chunkMs, chunkRows, pause, compactSlack, workClock } = this.options;
    try {
      const report = await saveChanges(this.store, this.index, this.table, {
        chunkMs,
        chunkRows,
        pause,
        compactSlack,
        workClock,
        wallClock: this.wall,
        aborted: () => run.abort,
        // The final save writes what changed and ends: dropping old rows can wait for the next start.
        compact: !final,
      });
      this.last = report;
      if (!report.complete) return false;
      this.counters.stateSaves.ok++;
      this.counters.stateLastSaveSeconds = this.wall() / 1000;
      return true;
    } catch (error) {
      this.last = undefined;
      this.counters.stateSaves.error++;
      this.logger.error("saving state failed", { file: this.store.path, error: (error as Error).message });
      return false;
    } finally {
      if (this.current === run) this.current = undefined;
    }
  }

  /**
   * The final save (unless `save` is false), then the file is closed. A periodic save under way is
   * stopped first, at its next pause (what it did not write is in the final save). The final save
   * pauses between chunks like the others: the metrics port, still open, keeps answering. Idempotent.
   */
  close(save = true): Promise<void> {
    this.closing ??= this.finish(save);
    return this.closing;
  }

  private async finish(save: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const running = this.current;
    if (running) {
      running.abort = true;
      await running.done;
    }
    let ok = false;
    if (save) {
      this.logger.info("saving state", { file: this.store.path, sessions: this.table.sessionCount });
      ok = await this.startSave(true);
    }
    this.closed = true;
    await this.store.close();
    if (ok) this.logger.info("state saved", { file: this.store.path, sessions: this.table.sessionCount });
  }
}

function logModeNote(logger: Logger, note: ModeNote): void {
  if (note.restricted) {
    logger.warn("state file was open to other users; restricted to 0600 (it holds session ids)", { file: note.file, was: note.was });
  } else {
    logger.warn("state file is open to other users and could not be restricted; it holds session ids, credentials when authentication is off", {
      file: note.file,
      mode: note.mode,
      reason: note.reason,
    });
  }
}
