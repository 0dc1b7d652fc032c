/** One token bucket: `ratePerSec` tokens a second up to `burst`. Time in milliseconds, monotonic. */
export class TokenBucket {
  private tokens: number;
  private last = -Infinity;

  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(nowMs: number): boolean {
    const elapsed = nowMs - this.last;
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
    this.last = Math.max(this.last, nowMs);
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}
