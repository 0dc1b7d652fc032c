import type { Logger } from "../log.ts";
import type { OperationsCounters } from "../metrics/relay-metrics.ts";
import type { SessionTable } from "../sessions/table.ts";
import { StateStore, withDowntime } from "./store.ts";

/**
 * Keeps the session table in the state file: restores it once at startup, saves it every
 * interval and once more on shutdown. A failed save is logged and counted; the relay goes on.
 */
export class StatePersister {
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  private constructor(
    private readonly store: StateStore,
    private readonly table: SessionTable,
    private readonly logger: Logger,
    private readonly counters: OperationsCounters,
  ) {}

  /** Opens the file; throws StateFileError when it cannot be opened. */
  static open(path: string, table: SessionTable, logger: Logger, counters: OperationsCounters): StatePersister {
    const { store, setAside } = StateStore.open(path);
    if (setAside) logger.warn("state file unreadable, set aside; starting with an empty table", { file: setAside });
    return new StatePersister(store, table, logger, counters);
  }

  /** Puts the saved sessions back into the table (call right after the data plane started). */
  restore(): number {
    const { state, setAside } = this.store.load();
    if (setAside) this.logger.warn("state file unreadable, set aside; starting with an empty table", { file: setAside });
    if (!state) return 0;
    const saved = state.sessions.length;
    const restored = this.table.restoreSessions(withDowntime(state));
    this.counters.sessionsRestored += restored;
    this.logger.info("sessions restored from state file", {
      file: this.store.path,
      restored,
      skipped: saved - restored,
      saved_s_ago: Math.round((Date.now() - state.savedAtMs) / 1000),
    });
    return restored;
  }

  startPeriodic(intervalMs: number): void {
    this.timer = setInterval(() => this.save(), intervalMs);
    this.timer.unref?.();
  }

  save(): boolean {
    if (this.closed) return false;
    try {
      this.store.save(this.table.exportSessions());
      this.counters.stateSaves.ok++;
      this.counters.stateLastSaveSeconds = Date.now() / 1000;
      return true;
    } catch (error) {
      this.counters.stateSaves.error++;
      this.logger.error("saving state failed", { file: this.store.path, error: (error as Error).message });
      return false;
    }
  }

  /** The final save (unless `save` is false), then the file is closed. Idempotent. */
  close(save = true): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    const ok = save && this.save();
    this.closed = true;
    this.store.close();
    if (ok) this.logger.info("state saved", { file: this.store.path, sessions: this.table.sessionCount });
  }
}
