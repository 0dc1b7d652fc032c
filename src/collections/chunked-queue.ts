/**
 * Values of any kind in first-in first-out order, held in fixed chunks of arrays: growing adds a
 * chunk and draining drops one, so nothing held is ever copied (see int-deque.ts for why a JS
 * array of a million entries must not be). A taken value's place is cleared at once: the queue
 * never keeps alive what it gave back.
 */
const BITS = 12;
const SIZE = 1 << BITS;
const MASK = SIZE - 1;

export class ChunkedQueue<T> {
  private chunks: (T | undefined)[][] = [];
  /** Positions of the first entry and past the last, counted from the start of chunks[0]. */
  private head = 0;
  private tail = 0;

  get length(): number {
    return this.tail - this.head;
  }

  push(value: T): void {
    const c = this.tail >>> BITS;
    (this.chunks[c] ??= new Array<T | undefined>(SIZE).fill(undefined))[this.tail & MASK] = value;
    this.tail++;
  }

  /** The first entry, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.tail === this.head ? undefined : this.chunks[this.head >>> BITS]![this.head & MASK];
  }

  /** The first entry, removed; undefined when empty. */
  shift(): T | undefined {
    if (this.tail === this.head) return undefined;
    const chunk = this.chunks[this.head >>> BITS]!;
    const value = chunk[this.head & MASK];
    chunk[this.head & MASK] = undefined;
    this.head++;
    if (this.tail === this.head) {
      this.head = 0;
      this.tail = 0;
      // The first chunk stays for reuse (all its places are cleared).
      if (this.chunks.length > 1) this.chunks.length = 1;
    } else if ((this.head & MASK) === 0) {
      // The chunk before `head` is spent: it goes, and positions count from the next one.
      this.chunks.shift();
      this.head -= SIZE;
      this.tail -= SIZE;
    }
    return value;
  }
}
