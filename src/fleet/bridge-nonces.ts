/**
 * Where a bridge codec gets the nonces it sends under and records the nonces it has accepted.
 *
 * A nonce is (epoch, counter): epoch a u48 (ms), counter a u32. A sender must never use one nonce
 * twice towards one receiver, because a frame's tag key belongs to the directed pair and the nonce
 * is its GMAC IV (see bridge-codec.ts). A receiver accepts each nonce from one sender at most once.
 *
 * LocalNonces keeps both in this process. Another implementation can keep them where a second data
 * plane (one that makes and verifies frames itself) shares them.
 */
import { ReplayWindow } from "./replay-window.ts";

/** Counters per epoch: a sequence that used all of them continues at a later epoch. */
export const NONCE_COUNTER_LIMIT = 2 ** 32;

export interface BridgeNonces {
  /** The next nonce for frames to relay `to`: never handed out before for `to` (a new epoch after `forget`, on counter rollover, or after a restart). */
  next(to: string): { epoch: number; counter: number };
  /** Records nonce (epoch, counter) of an authentic frame from relay `from`: false when it was seen before or is too far behind (replayed). */
  admit(from: string, epoch: number, counter: number): boolean;
  /** Drops what is kept about relay `peer`; a later sequence towards it starts at a later epoch. */
  forget(peer: string): void;
}

/** The nonce sequence used towards one receiver. */
interface Sequence {
  epoch: number;
  counter: number;
}

/**
 * Nonces kept in memory: one sequence per receiver, starting at the clock (ms) and never below an
 * epoch an earlier sequence of this instance used, and one ReplayWindow per sender.
 */
export class LocalNonces implements BridgeNonces {
  private readonly clock: () => number;
  private readonly startCounter: number;
  private readonly sequences = new Map<string, Sequence>();
  private readonly windows = new Map<string, ReplayWindow>();
  /** Lowest epoch a new sequence may take, so one started after `forget` supersedes the old one. */
  private epochFloor: number;

  /**
   * `clock`: ms since the epoch, default Date.now. `startCounter` (testing only): the counter a new
   * sequence starts at, to reach the 2^32 rollover quickly; default 0. Throws RangeError when it is
   * not an integer in 0..2^32-1.
   */
  constructor(options: { clock?: () => number; startCounter?: number } = {}) {
    const startCounter = options.startCounter ?? 0;
    if (!Number.isInteger(startCounter) || startCounter < 0 || startCounter >= NONCE_COUNTER_LIMIT) throw new RangeError(`start counter ${startCounter} is not in 0..2^32-1`);
    this.clock = options.clock ?? Date.now;
    this.startCounter = startCounter;
    this.epochFloor = Math.floor(this.clock());
  }

  next(to: string): { epoch: number; counter: number } {
    const now = Math.floor(this.clock());
    let sequence = this.sequences.get(to);
    if (!sequence) {
      sequence = { epoch: Math.max(now, this.epochFloor), counter: this.startCounter };
      this.sequences.set(to, sequence);
    }
    if (sequence.counter >= NONCE_COUNTER_LIMIT) {
      sequence.epoch = Math.max(now, sequence.epoch + 1);
      sequence.counter = 0;
    }
    return { epoch: sequence.epoch, counter: sequence.counter++ };
  }

  admit(from: string, epoch: number, counter: number): boolean {
    let window = this.windows.get(from);
    if (!window) {
      window = new ReplayWindow();
      this.windows.set(from, window);
    }
    return window.admit(epoch, counter) === "ok";
  }

  forget(peer: string): void {
    this.windows.delete(peer);
    const sequence = this.sequences.get(peer);
    if (sequence) this.epochFloor = Math.max(this.epochFloor, sequence.epoch + 1);
    this.sequences.delete(peer);
  }
}
