/**
 * Which nonces one sender has already used, so a captured bridge frame is delivered at most once.
 *
 * A nonce is (epoch, counter): the epoch is when the sender's sequence began, the counter counts up
 * from 0 within it. The window keeps the sender's current epoch, the highest counter seen in it, and
 * one bit for each of the REPLAY_WINDOW_SIZE counters ending at that highest one, in a ring indexed by
 * `counter % REPLAY_WINDOW_SIZE`. Frames may arrive out of order by up to that many counters.
 *
 * Pure state, no clock: the caller verifies a frame's tag first and only then calls `admit`, so a
 * forged frame can never move the window.
 */

/** Counters remembered behind the highest one seen (including it). A multiple of 32. */
export const REPLAY_WINDOW_SIZE = 1024;
const RING_MASK = REPLAY_WINDOW_SIZE - 1;

export type ReplayVerdict = "ok" | "replayed";

/** The nonces seen from one sender. */
export class ReplayWindow {
  /** -1 until the first frame: a fresh window takes whatever epoch comes first. */
  private epoch = -1;
  private top = 0;
  private readonly seen = new Uint32Array(REPLAY_WINDOW_SIZE / 32);

  /**
   * Records the nonce and says "ok" if it was not used before, else "replayed" and records nothing.
   * `epoch` is a non-negative integer (ms, u48), `counter` an integer in 0..2^32-1.
   */
  admit(epoch: number, counter: number): ReplayVerdict {
    if (epoch > this.epoch) {
      // The sender started a new sequence (it restarted, or its counter rolled over).
      this.epoch = epoch;
      this.top = counter;
      this.seen.fill(0);
      this.mark(counter);
      return "ok";
    }
    if (epoch < this.epoch) return "replayed";
    if (counter > this.top) {
      this.slideTo(counter);
      this.mark(counter);
      return "ok";
    }
    if (this.top - counter >= REPLAY_WINDOW_SIZE || this.isMarked(counter)) return "replayed";
    this.mark(counter);
    return "ok";
  }

  /** Moves the top to `counter`, forgetting the ring slots the counters in between will use. */
  private slideTo(counter: number): void {
    if (counter - this.top >= REPLAY_WINDOW_SIZE) {
      this.seen.fill(0);
    } else {
      let c = this.top + 1;
      while (c <= counter) {
        const slot = c & RING_MASK;
        if ((slot & 31) === 0 && counter - c >= 31) {
          this.seen[slot >>> 5] = 0;
          c += 32;
        } else {
          this.seen[slot >>> 5]! &= ~(1 << (slot & 31));
          c++;
        }
      }
    }
    this.top = counter;
  }

  private mark(counter: number): void {
    const slot = counter & RING_MASK;
    this.seen[slot >>> 5]! |= 1 << (slot & 31);
  }

  private isMarked(counter: number): boolean {
    const slot = counter & RING_MASK;
    return (this.seen[slot >>> 5]! & (1 << (slot & 31))) !== 0;
  }
}
