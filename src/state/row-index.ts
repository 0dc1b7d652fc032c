import { ShardedMap } from "../sessions/sharded-map.ts";

/**
 * Where each session's newest row is in a format-2 state file, kept in memory so that a save
 * appends without reading the file and the oldest rows can be dropped without an index on the
 * file: a row is still needed only if it is the newest of its id. One map entry per session in
 * the file (a number), nothing per older row.
 */
export class RowIndex {
  /**
   * id → seq of its newest row: positive for a session, negative for a removal. Sharded: one Map
   * of a million ids held a save's chunk 140 ms in one insert, rehashing them all at once.
   */
  private readonly newest = new ShardedMap<number>();
  private sessionRows = 0;
  /** While a transaction is open: how to undo its changes (ids and their values before, oldest first). */
  private undoIds: string[] | undefined;
  private undoValues: (number | undefined)[] = [];
  private sessionRowsBefore = 0;

  /** Ids whose newest row is a session (not a removal). */
  get sessions(): number {
    return this.sessionRows;
  }

  /** Ids with a newest row of either kind. */
  get size(): number {
    return this.newest.size;
  }

  /** The file holds a row of `id` that a restore would take as a session. */
  holdsSession(id: string): boolean {
    return (this.newest.get(id) ?? 0) > 0;
  }

  /** The row `seq` is the newest of its id and a session: dropping it needs a copy first. */
  isNewestSession(id: unknown, seq: number): boolean {
    return typeof id === "string" && this.newest.get(id) === seq;
  }

  /** The row `seq` is the newest of its id and a removal: nothing older is left once it is dropped. */
  isNewestRemoval(id: unknown, seq: number): boolean {
    return typeof id === "string" && this.newest.get(id) === -seq;
  }

  /** `seq` is now the newest row of `id`, a session's. Returns the seq of the row it replaces. */
  session(id: string, seq: number): number | undefined {
    return this.put(id, seq);
  }

  /** `seq` is now the newest row of `id`, a removal. Returns the seq of the row it replaces. */
  removal(id: string, seq: number): number | undefined {
    return this.put(id, -seq);
  }

  /** No row of `id` is left. */
  forget(id: string): void {
    this.put(id, undefined);
  }

  /** Changes from here on follow the file's transaction: kept by commit(), undone by rollback(). */
  begin(): void {
    this.undoIds = [];
    this.undoValues = [];
    this.sessionRowsBefore = this.sessionRows;
  }

  commit(): void {
    this.undoIds = undefined;
  }

  rollback(): void {
    const ids = this.undoIds;
    if (!ids) return;
    for (let i = ids.length - 1; i >= 0; i--) {
      const value = this.undoValues[i];
      if (value === undefined) this.newest.delete(ids[i]!);
      else this.newest.set(ids[i]!, value);
    }
    this.sessionRows = this.sessionRowsBefore;
    this.undoIds = undefined;
  }

  private put(id: string, value: number | undefined): number | undefined {
    const was = this.newest.get(id);
    if (this.undoIds) {
      this.undoIds.push(id);
      this.undoValues.push(was);
    }
    if ((was ?? 0) > 0) this.sessionRows--;
    if ((value ?? 0) > 0) this.sessionRows++;
    if (value === undefined) this.newest.delete(id);
    else this.newest.set(id, value);
    return was === undefined ? undefined : Math.abs(was);
  }
}
