import { randomBytes } from "node:crypto";
import { IntDeque } from "../collections/int-deque.ts";
import { OpenIndex } from "../collections/open-index.ts";
import { hashId, ID_BYTES, idCode, NO_ID, sameId, writeId } from "../sessions/compact-id.ts";

/** Entries per chunk of columns: a power of two. */
const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;
const IN_CHUNK = CHUNK - 1;

class Chunk {
  /** Each entry's id, packed (compact-id.ts): ID_BYTES an entry. */
  readonly id = new Uint8Array(CHUNK * ID_BYTES);
  readonly code = new Uint8Array(CHUNK);
  /** Seq of the id's newest row: positive for a session, negative for a removal. */
  readonly value = new Float64Array(CHUNK);
}

/**
 * Where each session's newest row is in a format-2 state file, kept in memory so that a save
 * appends without reading the file and the oldest rows can be dropped without an index on the
 * file: a row is still needed only if it is the newest of its id. One entry per session in the
 * file, nothing per older row.
 *
 * Entries are columns of typed arrays in chunks that are never copied, found through an OpenIndex
 * by a keyed hash of the packed id: no string and no Map entry per id. A Map of a million string
 * keys is a million cells the collector walks, and each new key makes it walk the whole Map (its
 * shard) again at the next collection: with a million ids and a save under way, collections held
 * the thread 10-28 ms at a time (bench/row-index-gc.ts). Ids that do not pack (not a canonical
 * UUID, longer than ID_BYTES: rare) are kept in a Map of their own.
 */
export class RowIndex {
  private readonly chunks: Chunk[] = [];
  /** Entries handed out at least once; freed ones are reused first. */
  private slots = 0;
  private readonly free = new IntDeque();
  private readonly seed = randomBytes(4).readUInt32LE(0);
  private readonly index = new OpenIndex((slot) => this.hashAt(slot));
  /** Ids that do not pack, and their newest row as in Chunk.value. */
  private readonly others = new Map<string, number>();
  /** The id looked up, packed. */
  private readonly want = new Uint8Array(ID_BYTES);
  private wantCode = NO_ID;
  private readonly matchWant = (slot: number): boolean => {
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return sameId(c.id, i * ID_BYTES, c.code[i]!, this.want, 0, this.wantCode);
  };

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
    return this.index.size + this.others.size;
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
    const was = this.get(id);
    if (this.undoIds) {
      this.undoIds.push(id);
      this.undoValues.push(was);
    }
    if ((was ?? 0) > 0) this.sessionRows--;
    if ((value ?? 0) > 0) this.sessionRows++;
    this.set(id, value);
    return was === undefined ? undefined : Math.abs(was);
  }

  private get(id: string): number | undefined {
    const slot = this.find(id);
    if (slot === -2) return this.others.get(id);
    return slot < 0 ? undefined : this.chunks[slot >>> CHUNK_BITS]!.value[slot & IN_CHUNK];
  }

  /** Sets (a number) or removes (undefined) the entry of `id`. */
  private set(id: string, value: number | undefined): void {
    const slot = this.find(id);
    if (slot === -2) {
      if (value === undefined) this.others.delete(id);
      else this.others.set(id, value);
    } else if (slot >= 0) {
      if (value !== undefined) {
        this.chunks[slot >>> CHUNK_BITS]!.value[slot & IN_CHUNK] = value;
      } else {
        this.index.remove(slot, this.hashAt(slot));
        this.free.push(slot);
      }
    } else if (value !== undefined) {
      this.add(value);
    }
  }

  /**
   * The entry of `id`, which is left packed in `want`: its slot, -1 when there is none, or -2 when
   * the id does not pack (look in `others`).
   */
  private find(id: string): number {
    const code = idCode(id);
    if (code === NO_ID) return -2;
    writeId(id, code, this.want, 0);
    this.wantCode = code;
    return this.index.find(hashId(this.seed, this.want, 0, code), this.matchWant);
  }

  /** A new entry for the id packed in `want` (find() just missed it). */
  private add(value: number): void {
    const slot = this.free.pop() ?? this.slots++;
    if (slot >>> CHUNK_BITS === this.chunks.length) this.chunks.push(new Chunk());
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    c.id.set(this.want, i * ID_BYTES);
    c.code[i] = this.wantCode;
    c.value[i] = value;
    this.index.add(slot, this.hashAt(slot));
  }

  private hashAt(slot: number): number {
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return hashId(this.seed, c.id, i * ID_BYTES, c.code[i]!);
  }
}
