/**
 * How many datagrams the next control batch takes, on both planes. A batch is handled in one
 * event-loop turn, so its size is what a stall lasts under a flood: the next batch is sized from
 * what the last one cost a datagram, to take about BATCH_MS. A REG costs some microseconds at a
 * small table and several times that at a million sessions (or when the thread shares its core),
 * so no fixed count fits both.
 */

/** The most a batch takes (a turn of cheap datagrams: a few milliseconds at most). */
export const MAX_BATCH_DATAGRAMS = 256;

/** The least a batch takes, however slow: each turn costs its own overhead (one wake-up, one route update). */
export const MIN_BATCH_DATAGRAMS = 16;

/** Work time a batch aims at, in milliseconds: well under the 10 ms a stall may last. */
export const BATCH_MS = 3;

export class BatchSize {
  private size = MAX_BATCH_DATAGRAMS;

  /** `workClock`: milliseconds of work (default performance.now). */
  constructor(private readonly workClock: () => number = () => performance.now()) {}

  /** Datagrams the next batch may take. */
  get next(): number {
    return this.size;
  }

  /** Runs `handle` for a batch of `count` datagrams and sizes the next batch from its cost. */
  measure(count: number, handle: () => void): void {
    const start = this.workClock();
    try {
      handle();
    } finally {
      this.learn(count, this.workClock() - start);
    }
  }

  /**
   * A batch of `count` took `ms`: the next one takes what fits in BATCH_MS at that cost. It
   * shrinks at once (the stall is what this prevents) and grows by half at most per batch (one
   * cheap batch of keepalives says little of the REG flood around it).
   */
  learn(count: number, ms: number): void {
    if (count <= 0) return;
    const fits = ms > 0 ? Math.floor((BATCH_MS * count) / ms) : MAX_BATCH_DATAGRAMS;
    const grown = Math.ceil(this.size * 1.5);
    this.size = Math.max(MIN_BATCH_DATAGRAMS, Math.min(MAX_BATCH_DATAGRAMS, fits, grown));
  }
}
