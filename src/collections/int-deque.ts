/**
 * Integers (int32) in fixed chunks of typed arrays, taken from either end: a stack with push and
 * pop, a queue with push and shift. Growing adds a chunk and shrinking drops one; nothing held is
 * ever copied. A JavaScript array of a million entries is reallocated and copied whole when it
 * grows, and on this VM that copy into fresh pages held the event loop for 50-70 ms in the middle
 * of a mass expiry.
 */
const BITS = 14;
const SIZE = 1 << BITS;
const MASK = SIZE - 1;

export class IntDeque {
  private chunks: (Int32Array | undefined)[] = [];
  /** Positions of the first entry and past the last, counted from the start of chunks[0]. */
  private head = 0;
  private tail = 0;

  get length(): number {
    return this.tail - this.head;
  }

  push(value: number): void {
    const c = this.tail >>> BITS;
    (this.chunks[c] ??= new Int32Array(SIZE))[this.tail & MASK] = value;
    this.tail++;
  }

  /** The last entry, removed; undefined when empty. */
  pop(): number | undefined {
    if (this.tail === this.head) return undefined;
    this.tail--;
    const value = this.chunks[this.tail >>> BITS]![this.tail & MASK]!;
    if (this.tail === this.head) this.reset();
    // A chunk left empty at the end goes (one spare stays, so a push and pop at a boundary do not churn).
    else if ((this.tail & MASK) === 0 && this.chunks.length > (this.tail >>> BITS) + 1) this.chunks.length = (this.tail >>> BITS) + 1;
    return value;
  }

  /** The first entry, left in place; undefined when empty. */
  peek(): number | undefined {
    return this.tail === this.head ? undefined : this.chunks[this.head >>> BITS]![this.head & MASK]!;
  }

  /** The first entry, removed; undefined when empty. */
  shift(): number | undefined {
    if (this.tail === this.head) return undefined;
    const value = this.chunks[this.head >>> BITS]![this.head & MASK]!;
    this.head++;
    if (this.tail === this.head) this.reset();
    else if ((this.head & MASK) === 0) this.dropFront();
    return value;
  }

  private reset(): void {
    this.head = 0;
    this.tail = 0;
    // Keeps the first chunk for reuse.
    if (this.chunks.length > 1) this.chunks.length = 1;
  }

  /** The chunk before `head` is spent: it goes, and positions count from the next one. */
  private dropFront(): void {
    this.chunks.shift();
    this.head -= SIZE;
    this.tail -= SIZE;
  }
}
