import { KeySlots, SLOT_CHUNK, SLOT_CHUNK_BITS } from "../collections/key-slots.ts";
import { SESSION_IDS } from "../sessions/compact-id.ts";

/**
 * Where each session's newest row is in a format-2 state file, kept in memory so that a save
 * appends without reading the file and the oldest rows can be dropped without an index on the
 * file: a row is still needed only if it is the newest of its id. One entry per session in the
 * file, nothing per older row: the id's slot (KeySlots) and a number in a column of slots. With a
 * million ids and a save under way, the Map of id strings this replaced held the thread 10-70 ms
 * at a time in garbage collections (bench/id-index-gc.ts).
 */
export class RowIndex {
  private readonly ids = new KeySlots(SESSION_IDS);
  /** Per slot, chunks of SLOT_CHUNK: seq of the id's newest row, positive for a session, negative for a removal. */
  private readonly values: Float64Array[] = [];

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
    return this.ids.size;
  }

  /** The file holds a row of `id` that a restore would take as a session. */
  holdsSession(id: string): boolean {
    return (this.get(id) ?? 0) > 0;
  }

  /** The row `seq` is the newest of its id and a session: dropping it needs a copy first. */
  isNewestSession(id: unknown, seq: number): boolean {
    return typeof id === "string" && this.get(id) === seq;
  }

  /** The row `seq` is the newest of its id and a removal: nothing older is left once it is dropped. */
  isNewestRemoval(id: unknown, seq: number): boolean {
    return typeof id === "string" && this.get(id) === -seq;
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
    this.undoIds = undefined;
    for (let i = ids.length - 1; i >= 0; i--) this.set(ids[i]!, this.undoValues[i]);
    this.sessionRows = this.sessionRowsBefore;
  }

  private put(id: string, value: number | undefined): number | undefined {
    const slot = this.ids.find(id);
    const was = slot < 0 ? undefined : this.values[slot >>> SLOT_CHUNK_BITS]![slot & (SLOT_CHUNK - 1)];
    if (this.undoIds) {
      this.undoIds.push(id);
      this.undoValues.push(was);
    }
    if ((was ?? 0) > 0) this.sessionRows--;
    if ((value ?? 0) > 0) this.sessionRows++;
    this.set(id, value, slot);
    return was === undefined ? undefined : Math.abs(was);
  }

  private get(id: string): number | undefined {
    const slot = this.ids.find(id);
    return slot < 0 ? undefined : this.values[slot >>> SLOT_CHUNK_BITS]![slot & (SLOT_CHUNK - 1)];
  }

  /** Sets (a number) or removes (undefined) the entry of `id`, whose slot is `slot` (-1: none yet). */
  private set(id: string, value: number | undefined, slot = this.ids.find(id)): void {
    if (value === undefined) {
      if (slot >= 0) this.ids.release(slot);
      return;
    }
    if (slot < 0) slot = this.ids.slotOf(id);
    if (slot >>> SLOT_CHUNK_BITS === this.values.length) this.values.push(new Float64Array(SLOT_CHUNK));
    this.values[slot >>> SLOT_CHUNK_BITS]![slot & (SLOT_CHUNK - 1)] = value;
  }
}
