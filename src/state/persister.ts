import type { Logger } from "../log.ts";
import type { OperationsCounters } from "../metrics/relay-metrics.ts";
import type { SessionTable } from "../sessions/table.ts";
import type { ModeNote } from "./file-mode.ts";
import { countOf, type ProblemCounts, type RestoreContext, RowProblem, rowRules } from "./rows.ts";
import { StateStore, withDowntime } from "./store.ts";

/** A save under way; `abort` makes it roll back at its next pause. */
interface SaveRun {
  abort: boolean;
  done: Promise<boolean>;
}

export interface PersisterOptions {
  /** Rows written between two pauses of a save (default DEFAULT_CHUNK_ROWS). */
  chunkRows?: number;
}

/**
 * Keeps the session table in the state file: restores it once at startup, saves it every
 * interval and once more on shutdown. A failed save is logged and counted; the relay goes on. Saves
 * write in chunks and yield to the event loop between them: they never hold the process for long.
 */
export class StatePersister {
  /** Rows of the file not restored because they were malformed, by problem (see rows.ts). */
  readonly malformedRows: ProblemCounts = {};
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The save under way, if any. */
  private current: SaveRun | undefined;
  private closing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly store: StateStore,
    private readonly table: SessionTable,
    private readonly logger: Logger,
    private readonly counters: OperationsCounters,
    private readonly options: PersisterOptions,
  ) {}

  /** Opens the file; throws StateFileError when it cannot be opened or is not a state file. */
  static open(path: string, table: SessionTable, logger: Logger, counters: OperationsCounters, options: PersisterOptions = {}): StatePersister {
    const { store, modes } = StateStore.open(path);
    for (const note of modes) logModeNote(logger, note);
    return new StatePersister(store, table, logger, counters, options);
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
    const { state, malformed, unreadable } = this.store.load(rowRules(context));
    if (unreadable?.movedTo) {
      this.logger.warn("state file unreadable, set aside; starting with an empty table", { file: unreadable.movedTo, reason: unreadable.reason });
    } else if (unreadable) {
      this.logger.warn("state file unreadable; starting with an empty table", { file: this.store.path, reason: unreadable.reason });
    }
    if (!state) return 0;
    const problems: ProblemCounts = { ...malformed };
    let planeError: string | undefined;
    let restored = 0;
    // One at a time, oldest activity first as the table orders them: a row the data plane refuses
    // when its routes go in costs that row only.
    for (const snapshot of withDowntime(state).sort((a, b) => b.idleMs - a.idleMs)) {
      try {
        restored += this.table.restoreSessions([snapshot]);
      } catch (error) {
        problems[RowProblem.PlaneRefused] = (problems[RowProblem.PlaneRefused] ?? 0) + 1;
        planeError ??= (error as Error).message;
      }
    }
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
      saved_s_ago: Math.round((Date.now() - state.savedAtMs) / 1000),
    });
    return restored;
  }

  startPeriodic(intervalMs: number): void {
    this.timer = setInterval(() => void this.save(), intervalMs);
    this.timer.unref?.();
  }

  /**
   * Saves the table as it is now. The rows are taken at once (a consistent snapshot) and written in
   * chunks with pauses between them (StateStore.saveInChunks), so the process keeps answering its
   * health endpoint during a save of many sessions. A save already under way is not doubled: its
   * promise is returned. Resolves false when the save failed (logged, counted) or was abandoned.
   */
  save(): Promise<boolean> {
    if (this.closed || this.closing) return Promise.resolve(false);
    return this.current?.done ?? this.startSave();
  }

  private startSave(): Promise<boolean> {
    const run: SaveRun = { abort: false, done: Promise.resolve(false) };
    this.current = run;
    run.done = this.write(run);
    return run.done;
  }

  private async write(run: SaveRun): Promise<boolean> {
    try {
      const sessions = this.table.exportSessions();
      const saved = await this.store.saveInChunks(sessions, Date.now(), { chunkRows: this.options.chunkRows, aborted: () => run.abort });
      if (!saved) return false;
      this.counters.stateSaves.ok++;
      this.counters.stateLastSaveSeconds = Date.now() / 1000;
      return true;
    } catch (error) {
      this.counters.stateSaves.error++;
      this.logger.error("saving state failed", { file: this.store.path, error: (error as Error).message });
      return false;
    } finally {
      if (this.current === run) this.current = undefined;
    }
  }

  /**
   * The final save (unless `save` is false), then the file is closed. A periodic save under way is
   * abandoned first (its rows would be older). The final save pauses between chunks like the
   * others: the metrics port, still open, keeps answering. Idempotent.
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
      ok = await this.startSave();
    }
    this.closed = true;
    this.store.close();
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
