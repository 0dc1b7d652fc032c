/** What the order links: an item with a time of last activity and two link fields of its own. */
export interface Ordered<T> {
  lastActivity: number;
  /** The next older / newer item of the order it is in (undefined at the ends, or in none). */
  older: T | undefined;
  newer: T | undefined;
}

/**
 * Items in order of last activity, oldest first: a list linked through the items themselves, so
 * moving one to the newest end is two pointer updates (a Map kept in order by deleting and
 * setting again churns, and rehashes every entry now and then). An item is in one order at most.
 */
export class ActivityOrder<T extends Ordered<T>> {
  private head: T | undefined;
  private tail: T | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }
  /** The item idle longest. */
  get oldest(): T | undefined {
    return this.head;
  }

  /** Adds an item that is in no order, as the newest. */
  append(item: T): void {
    item.older = this.tail;
    item.newer = undefined;
    if (this.tail) this.tail.newer = item;
    else this.head = item;
    this.tail = item;
    this.count++;
  }

  /** An item of this order was active: it becomes the newest. */
  touch(item: T): void {
    if (this.tail !== item && this.unlink(item)) this.append(item);
  }

  /** Takes an item out of this order (nothing happens when it is not in it). */
  remove(item: T): void {
    if (!this.unlink(item)) return;
    item.older = undefined;
    item.newer = undefined;
  }

  /** False when `item` is not in this order (an end of the list that is not this list's). */
  private unlink(item: T): boolean {
    if ((item.older === undefined && this.head !== item) || (item.newer === undefined && this.tail !== item)) return false;
    if (item.older) item.older.newer = item.newer;
    else this.head = item.newer;
    if (item.newer) item.newer.older = item.older;
    else this.tail = item.older;
    this.count--;
    return true;
  }
}
