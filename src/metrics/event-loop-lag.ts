import type { HistogramSnapshot } from "./exposition.ts";

/**
 * Upper bounds (seconds) of the lag histogram's buckets. The lowest is about a timer's own
 * slack; 100 ms and more means REG replies and control-plane forwarding wait that long.
 */
export const EVENT_LOOP_LAG_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** What the monitor needs of time: a monotonic clock in ms and one-shot timers. Injected in tests. */
export interface LagTimers {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** performance.now() and unref'd timers: the monitor never keeps a process alive. */
export const systemLagTimers: LagTimers = {
  now: () => performance.now(),
  setTimeout(callback, ms) {
    const handle = setTimeout(callback, ms);
    (handle as { unref?: () => void }).unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface EventLoopLagOptions {
  /** How often a sample is taken (ms). A stall shorter than this may go unseen. Default 20. */
  resolutionMs?: number;
  /** The max gauge covers this much recent time (ms), in `WINDOW_SLOTS` steps. Default 60 000. */
  windowMs?: number;
  timers?: LagTimers;
}

export interface EventLoopLagSnapshot {
  /** Largest lag seen within the last window, in seconds (0 when none). */
  maxSeconds: number;
  /** Length of that window, in seconds. */
  windowSeconds: number;
  /** Every sample since start, in EVENT_LOOP_LAG_BUCKETS. */
  histogram: HistogramSnapshot;
}

/** The max gauge's window is kept as this many slots, each the largest lag of its stretch. */
const WINDOW_SLOTS = 12;

/**
 * Event-loop lag, timer-based: a one-shot timer is set `resolutionMs` ahead, and how late it fires
 * is the lag (everything else the JS thread did in between: control batches, REG handling, GC,
 * scrapes). The timer is re-armed from its callback, so a long stall yields one large sample,
 * not a burst. Cost: one timer callback per `resolutionMs`, a few comparisons each; nothing on the
 * forwarding path. The values are read at scrape time (`snapshot()`).
 */
export class EventLoopLagMonitor {
  readonly resolutionMs: number;
  readonly windowMs: number;
  private readonly timers: LagTimers;
  private readonly slotMs: number;
  /** Per slot: its number (time / slotMs) and the largest lag (seconds) recorded in it. */
  private readonly slotIds: number[] = new Array(WINDOW_SLOTS).fill(-1);
  private readonly slotMax: number[] = new Array(WINDOW_SLOTS).fill(0);
  /** Per bucket (not cumulative); the last one is above the largest bound. */
  private readonly bucketCounts: number[] = new Array(EVENT_LOOP_LAG_BUCKETS.length + 1).fill(0);
  private sum = 0;
  private count = 0;
  private handle: unknown;
  private dueAt = 0;
  private running = false;

  constructor(options: EventLoopLagOptions = {}) {
    this.resolutionMs = Math.max(1, options.resolutionMs ?? 20);
    this.windowMs = Math.max(this.resolutionMs, options.windowMs ?? 60_000);
    this.slotMs = this.windowMs / WINDOW_SLOTS;
    this.timers = options.timers ?? systemLagTimers;
  }

  /** Starts sampling. Idempotent. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    this.arm();
    return this;
  }

  /** Stops sampling; what was recorded stays readable. Idempotent. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.timers.clearTimeout(this.handle);
    this.handle = undefined;
  }

  get samples(): number {
    return this.count;
  }

  snapshot(): EventLoopLagSnapshot {
    const current = Math.floor(this.timers.now() / this.slotMs);
    let max = 0;
    for (let i = 0; i < WINDOW_SLOTS; i++) {
      if (current - this.slotIds[i]! < WINDOW_SLOTS && this.slotMax[i]! > max) max = this.slotMax[i]!;
    }
    return {
      maxSeconds: max,
      windowSeconds: this.windowMs / 1000,
      histogram: { bounds: EVENT_LOOP_LAG_BUCKETS, counts: [...this.bucketCounts], sum: this.sum, count: this.count },
    };
  }

  private arm(): void {
    this.dueAt = this.timers.now() + this.resolutionMs;
    this.handle = this.timers.setTimeout(this.tick, this.resolutionMs);
  }

  private readonly tick = (): void => {
    if (!this.running) return;
    const now = this.timers.now();
    this.record(Math.max(0, now - this.dueAt) / 1000, now);
    this.arm();
  };

  private record(lagSeconds: number, now: number): void {
    this.count++;
    this.sum += lagSeconds;
    let bucket = 0;
    while (bucket < EVENT_LOOP_LAG_BUCKETS.length && lagSeconds > EVENT_LOOP_LAG_BUCKETS[bucket]!) bucket++;
    this.bucketCounts[bucket]!++;
    const slot = Math.floor(now / this.slotMs);
    const at = slot % WINDOW_SLOTS;
    if (this.slotIds[at] !== slot) {
      this.slotIds[at] = slot;
      this.slotMax[at] = 0;
    }
    if (lagSeconds > this.slotMax[at]!) this.slotMax[at] = lagSeconds;
  }
}
