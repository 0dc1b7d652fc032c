/** Shards of a ShardedMap or ShardedSet: a power of two, 2^(32 - SHARD_SHIFT). */
export const SHARDS = 64;
const SHARD_SHIFT = 26;

/**
 * A Map from strings, split over SHARDS smaller Maps by a few characters of the key. A JS Map
 * grows and shrinks by rehashing every entry at once: at a million entries one `set` that crosses
 * a size boundary holds the thread for about 190 ms, one `delete` that shrinks it about 70 ms
 * (Bun 1.4.5, measured on the test VM). Split 64 ways, each rehash moves a 64th of the entries.
 * Keys whose chosen characters agree (ids an attacker picks) share a shard: no worse than one Map.
 * Iteration order is by shard, not insertion.
 */
export class ShardedMap<V> {
  private readonly shards: Map<string, V>[] = Array.from({ length: SHARDS }, () => new Map());
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    return this.shards[shardOf(key)]!.get(key);
  }

  has(key: string): boolean {
    return this.shards[shardOf(key)]!.has(key);
  }

  set(key: string, value: V): void {
    const shard = this.shards[shardOf(key)]!;
    const before = shard.size;
    shard.set(key, value);
    this.count += shard.size - before;
  }

  delete(key: string): boolean {
    if (!this.shards[shardOf(key)]!.delete(key)) return false;
    this.count--;
    return true;
  }

  *values(): IterableIterator<V> {
    for (const shard of this.shards) yield* shard.values();
  }
}

/**
 * The shard of a key: its last four characters and three from its middle, multiplied through so
 * every bit counts, top bits taken. Session ids (UUIDs, with or without a prefix), IPv4 and IPv6
 * addresses all vary there. (Out-of-range characters read as NaN, which bit operations take as 0.)
 */
export function shardOf(key: string): number {
  const n = key.length;
  const m = n >> 1;
  const tail = key.charCodeAt(n - 1) | (key.charCodeAt(n - 2) << 8) | (key.charCodeAt(n - 3) << 16) | (key.charCodeAt(n - 4) << 24);
  const middle = key.charCodeAt(m) | (key.charCodeAt(m + 1) << 8) | (key.charCodeAt(m - 1) << 16) | (n << 24);
  return Math.imul(tail ^ Math.imul(middle, 0x85ebca6b), 0x9e3779b1) >>> SHARD_SHIFT;
}
