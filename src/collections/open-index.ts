/** Shards of an OpenIndex: a power of two. */
const SHARD_BITS = 8;
const SHARDS = 1 << SHARD_BITS;
/** Slots of a new shard: a power of two. */
const FIRST_CAPACITY = 64;
/**
 * The share of its slots a shard fills before it doubles: from FILL_LOW for the first shard to
 * FILL_HIGH for the last. Shards of an index fill evenly, so with one limit for all they would all
 * double within a few hundred adds of each other (at a million entries, 64 shards' rehashes in a
 * row held the thread for about 100 ms); spread like this, the doublings of one round are spread
 * over 40 % of the index's growth, one shard's at a time.
 */
const FILL_LOW = 0.5;
const FILL_HIGH = 0.7;
const FILL = Float64Array.from({ length: SHARDS }, (_, s) => FILL_LOW + ((FILL_HIGH - FILL_LOW) * s) / (SHARDS - 1));

/**
 * A hash index of non-negative integers ("refs": slots of a struct-of-arrays store) that keeps no
 * keys: the store hashes a ref's key and compares keys itself (the compact session store, the TS
 * plane's routes by source). Open addressing with linear
 * probing in Int32Arrays (4 bytes a slot, no object per entry), deletion by backward shift (no
 * tombstones), at most 70 % full. Split 256 ways by the hash's top bits, each shard growing on
 * its own and at its own fill (FILL): at a million entries a shard's rehash moves 1/256 of them
 * (about a millisecond: each entry's hash is read back from the store, a cache miss or two), never
 * all, and never many shards in a row.
 * Several refs may share a hash, even a key: lookups walk every ref of the probe run.
 */
export class OpenIndex {
  private readonly shards: Int32Array[] = Array.from({ length: SHARDS }, () => new Int32Array(FIRST_CAPACITY));
  private readonly counts = new Int32Array(SHARDS);
  private total = 0;

  /** `hashAt(ref)` must give the hash the ref was added with, for as long as it is in the index. */
  constructor(private readonly hashAt: (ref: number) => number) {}

  get size(): number {
    return this.total;
  }

  /** Slots of all shards (4 bytes each): what the index takes, whatever it holds. */
  get slotCount(): number {
    let n = 0;
    for (const slots of this.shards) n += slots.length;
    return n;
  }

  add(ref: number, hash: number): void {
    const s = hash >>> (32 - SHARD_BITS);
    if (this.counts[s]! + 1 > this.shards[s]!.length * FILL[s]!) this.grow(s);
    place(this.shards[s]!, ref, hash);
    this.counts[s]!++;
    this.total++;
  }

  /**
   * The entries `hash` is probed in (ref + 1 each, 0: empty), from `hash & (length - 1)` on until
   * an empty one: for a hot path that compares keys inline instead of through a callback.
   */
  entriesOf(hash: number): Int32Array {
    return this.shards[hash >>> (32 - SHARD_BITS)]!;
  }

  /** The first ref under `hash` that `matches`, or -1. */
  find(hash: number, matches: (ref: number) => boolean): number {
    const slots = this.shards[hash >>> (32 - SHARD_BITS)]!;
    const mask = slots.length - 1;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const v = slots[i]!;
      if (v === 0) return -1;
      if (matches(v - 1)) return v - 1;
    }
  }

  /** How many refs under `hash` match. */
  count(hash: number, matches: (ref: number) => boolean): number {
    const slots = this.shards[hash >>> (32 - SHARD_BITS)]!;
    const mask = slots.length - 1;
    let n = 0;
    for (let i = hash & mask; slots[i] !== 0; i = (i + 1) & mask) if (matches(slots[i]! - 1)) n++;
    return n;
  }

  /** Removes `ref` (added under `hash`); false when it is not there. */
  remove(ref: number, hash: number): boolean {
    const s = hash >>> (32 - SHARD_BITS);
    const slots = this.shards[s]!;
    const mask = slots.length - 1;
    let i = hash & mask;
    for (; ; i = (i + 1) & mask) {
      const v = slots[i]!;
      if (v === 0) return false;
      if (v === ref + 1) break;
    }
    // Backward shift: later entries of the run whose home is not between the hole and themselves move into it.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const v = slots[j]!;
      if (v === 0) break;
      const home = this.hashAt(v - 1) & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        slots[i] = v;
        i = j;
      }
    }
    slots[i] = 0;
    this.counts[s]!--;
    this.total--;
    return true;
  }

  private grow(s: number): void {
    const old = this.shards[s]!;
    const slots = new Int32Array(old.length * 2);
    for (let i = 0; i < old.length; i++) {
      const v = old[i]!;
      if (v !== 0) place(slots, v - 1, this.hashAt(v - 1));
    }
    this.shards[s] = slots;
  }
}

function place(slots: Int32Array, ref: number, hash: number): void {
  const mask = slots.length - 1;
  let i = hash & mask;
  while (slots[i] !== 0) i = (i + 1) & mask;
  slots[i] = ref + 1;
}
