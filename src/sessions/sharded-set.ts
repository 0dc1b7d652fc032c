import { SHARDS, shardOf } from "./sharded-map.ts";

/**
 * A Set of strings split over SHARDS smaller Sets, for the same reason as ShardedMap: a JS Set
 * grows by rehashing every entry at once (Bun 1.4.5: 22 ms at 98,304 entries, 198 ms at 786,432),
 * so one `add` would hold the thread that long. Iteration order is by shard, not insertion.
 */
export class ShardedSet implements Iterable<string> {
  private readonly shards: Set<string>[] = Array.from({ length: SHARDS }, () => new Set());
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(key: string): boolean {
    return this.shards[shardOf(key)]!.has(key);
  }

  add(key: string): this {
    const shard = this.shards[shardOf(key)]!;
    const before = shard.size;
    shard.add(key);
    this.count += shard.size - before;
    return this;
  }

  delete(key: string): boolean {
    if (!this.shards[shardOf(key)]!.delete(key)) return false;
    this.count--;
    return true;
  }

  *values(): IterableIterator<string> {
    for (const shard of this.shards) yield* shard.values();
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.values();
  }
}
