import { sourceGroup } from "../net/address.ts";

/**
 * Per-source token buckets in a fixed-size table indexed by a seeded hash of the source:
 * memory is allocated once, so a flood from millions of spoofed addresses cannot grow it.
 * Sources whose hashes collide share a bucket. That only ever makes the limit stricter for
 * them, and an attacker gains nothing from aiming at a victim's slot that spoofing the victim's
 * own address would not give it, so the hash need not resist collisions.
 */
export class RegRateLimiter {
  private readonly tokens: Float64Array;
  private readonly last: Float64Array;
  private readonly mask: number;
  private readonly seed: number;

  /**
   * @param ratePerSec tokens added per second per source
   * @param burst bucket capacity (and the allowance of a source never seen)
   * @param slots table size, rounded up to a power of two
   */
  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
    slots = 65_536,
    seed = (Math.random() * 0x1_0000_0000) >>> 0,
  ) {
    if (!(ratePerSec > 0) || !(burst >= 1)) throw new RangeError("rate must be > 0 and burst >= 1");
    let size = 1;
    while (size < slots) size <<= 1;
    this.mask = size - 1;
    this.tokens = new Float64Array(size).fill(burst);
    // -Infinity: an untouched slot refills to a full bucket on first use.
    this.last = new Float64Array(size).fill(-Infinity);
    this.seed = seed;
  }

  /** Bytes held by the table; constant for the limiter's life. */
  get memoryBytes(): number {
    return this.tokens.byteLength + this.last.byteLength;
  }

  get slots(): number {
    return this.mask + 1;
  }

  /** Takes a token for `address` at `nowMs` (monotonic). False when the source is over its rate. */
  allow(address: string, nowMs: number): boolean {
    const slot = hashString(sourceGroup(address), this.seed) & this.mask;
    const elapsed = nowMs - this.last[slot]!;
    let tokens = this.tokens[slot]!;
    if (elapsed > 0) tokens = Math.min(this.burst, tokens + (elapsed * this.ratePerSec) / 1000);
    this.last[slot] = Math.max(nowMs, this.last[slot]!);
    if (tokens < 1) {
      this.tokens[slot] = tokens;
      return false;
    }
    this.tokens[slot] = tokens - 1;
    return true;
  }
}


/** FNV-1a over UTF-16 code units, mixed with a seed and finalised (murmur3 fmix32). */
function hashString(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
