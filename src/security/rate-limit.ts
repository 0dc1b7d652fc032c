import { hostOf } from "../sessions/address.ts";

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
    const slot = hashString(sourceKey(address), this.seed) & this.mask;
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

/**
 * What one source is, for rate limiting: the IPv4 address, or the /64 prefix of an IPv6 address
 * (one subscriber or site usually holds a whole /64 and could rotate through it freely).
 */
export function sourceKey(address: string): string {
  const host = hostOf(address);
  if (!host.includes(":")) return host;
  return ipv6Prefix64(host) ?? host;
}

/** First four groups of an IPv6 address, expanded (`2001:db8::1` -> `2001:db8:0:0`). */
export function ipv6Prefix64(address: string): string | undefined {
  const zone = address.indexOf("%");
  const text = zone >= 0 ? address.slice(0, zone) : address;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  // An embedded IPv4 tail counts as two groups.
  const tailGroups = tail.length > 0 && tail[tail.length - 1]!.includes(".") ? tail.length + 1 : tail.length;
  const missing = 8 - head.length - tailGroups;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const prefix = groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, ""));
  return prefix.every((g) => /^[0-9a-f]{1,4}$/.test(g)) ? prefix.join(":") : undefined;
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
