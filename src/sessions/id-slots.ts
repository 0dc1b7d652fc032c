import { randomBytes } from "node:crypto";
import { IntDeque } from "../collections/int-deque.ts";
import { OpenIndex } from "../collections/open-index.ts";
import { hashId, ID_BYTES, idCode, NO_ID, readId, sameId, writeId } from "./compact-id.ts";

/** Slots per chunk of ids: a power of two. Users keep their own columns in chunks of the same size. */
export const SLOT_CHUNK_BITS = 12;
export const SLOT_CHUNK = 1 << SLOT_CHUNK_BITS;
const IN_CHUNK = SLOT_CHUNK - 1;

/** Codes beside compact-id's: a slot not in use, and a slot whose id does not pack (kept as a string). */
const FREE = 0xff;
const UNPACKED = 0xfe;

class Chunk {
  readonly id = new Uint8Array(SLOT_CHUNK * ID_BYTES);
  readonly code = new Uint8Array(SLOT_CHUNK).fill(FREE);
}

/**
 * Session ids as small integers ("slots") for indexes that keep a value or a few per session in
 * typed-array columns of their own (the state file's row index, the fleet's directory entries).
 * Ids are packed as the compact store packs them (compact-id.ts) in chunks that are never copied,
 * and found through an OpenIndex by a hash keyed with a random seed (ids are chosen by clients);
 * freed slots are reused first. No string and no Map entry per id: a Map of a million string keys
 * is a million cells the collector walks, and each new key makes it walk the whole Map again at
 * its next collection (bench/id-index-gc.ts). An id that does not pack (not a canonical UUID,
 * longer than ID_BYTES: rare) is kept as a string in a Map of its own.
 */
export class IdSlots {
  private readonly chunks: Chunk[] = [];
  /** Slots handed out at least once: every slot in use is below. */
  private handedOut = 0;
  private readonly free = new IntDeque();
  private readonly seed = randomBytes(4).readUInt32LE(0);
  private readonly index = new OpenIndex((slot) => this.hashAt(slot));
  private readonly unpacked = new Map<string, number>();
  private readonly unpackedIds = new Map<number, string>();
  /** The id last looked up by find(), packed. */
  private readonly want = new Uint8Array(ID_BYTES);
  private wantCode = NO_ID;
  private readonly matchWant = (slot: number): boolean => {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return sameId(c.id, i * ID_BYTES, c.code[i]!, this.want, 0, this.wantCode);
  };

  /** Ids held. */
  get size(): number {
    return this.index.size + this.unpacked.size;
  }

  /** Every slot in use is below this. */
  get bound(): number {
    return this.handedOut;
  }

  /** The slot of `id`, or -1. */
  find(id: string): number {
    const code = idCode(id);
    this.wantCode = code;
    if (code === NO_ID) return this.unpacked.get(id) ?? -1;
    writeId(id, code, this.want, 0);
    return this.index.find(hashId(this.seed, this.want, 0, code), this.matchWant);
  }

  /** The slot of `id`, given one if it has none. */
  slotOf(id: string): number {
    const found = this.find(id);
    if (found >= 0) return found;
    const slot = this.free.pop() ?? this.handedOut++;
    if (slot >>> SLOT_CHUNK_BITS === this.chunks.length) this.chunks.push(new Chunk());
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    if (this.wantCode === NO_ID) {
      c.code[i] = UNPACKED;
      this.unpacked.set(id, slot);
      this.unpackedIds.set(slot, id);
    } else {
      c.id.set(this.want, i * ID_BYTES);
      c.code[i] = this.wantCode;
      this.index.add(slot, this.hashAt(slot));
    }
    return slot;
  }

  /** Frees `slot` (in use): its id is no longer held, and the slot may be handed out again. */
  release(slot: number): void {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    if (c.code[i] === UNPACKED) {
      this.unpacked.delete(this.unpackedIds.get(slot)!);
      this.unpackedIds.delete(slot);
    } else {
      this.index.remove(slot, this.hashAt(slot));
    }
    c.code[i] = FREE;
    this.free.push(slot);
  }

  /** Whether `slot` holds an id. */
  inUse(slot: number): boolean {
    return slot < this.handedOut && this.chunks[slot >>> SLOT_CHUNK_BITS]!.code[slot & IN_CHUNK] !== FREE;
  }

  /** The id in `slot` (in use). */
  idOf(slot: number): string {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    const code = c.code[i]!;
    return code === UNPACKED ? this.unpackedIds.get(slot)! : readId(c.id, i * ID_BYTES, code);
  }

  private hashAt(slot: number): number {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return hashId(this.seed, c.id, i * ID_BYTES, c.code[i]!);
  }
}
