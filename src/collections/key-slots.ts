import { randomBytes } from "node:crypto";
import { IntDeque } from "./int-deque.ts";
import { OpenIndex } from "./open-index.ts";
import { hashPacked, NO_KEY, samePacked, type KeyCodec } from "./packed-key.ts";

/** Slots per chunk of keys: a power of two. Users keep their own columns in chunks of the same size. */
export const SLOT_CHUNK_BITS = 12;
export const SLOT_CHUNK = 1 << SLOT_CHUNK_BITS;
const IN_CHUNK = SLOT_CHUNK - 1;

/** Codes beside a codec's own: a slot not in use, and a slot whose key does not pack (kept as a string). */
const FREE = 0xff;
const UNPACKED = 0xfe;

class Chunk {
  readonly key: Uint8Array;
  readonly code = new Uint8Array(SLOT_CHUNK).fill(FREE);
  constructor(bytes: number) {
    this.key = new Uint8Array(SLOT_CHUNK * bytes);
  }
}

/**
 * Keys (session ids, QUIC connection IDs) as small integers ("slots") for indexes that keep a value
 * or a few per key in typed-array columns of their own (the state file's row index, the fleet's
 * directory entries, the connection-ID index). Keys are packed as their codec packs them
 * (packed-key.ts) in chunks that are never copied, and found through an OpenIndex by a hash keyed
 * with a random seed (keys are chosen by clients); freed slots are reused first. No string and no
 * Map entry per key: a Map of a million string keys is a million cells the collector walks, and
 * each new key makes it walk the whole Map again at its next collection (bench/id-index-gc.ts). A
 * key that does not pack (rare: see the codec) is kept as a string in a Map of its own.
 */
export class KeySlots {
  private readonly chunks: Chunk[] = [];
  private readonly bytes: number;
  /** Slots handed out at least once: every slot in use is below. */
  private handedOut = 0;
  private readonly free = new IntDeque();
  private readonly seed = randomBytes(4).readUInt32LE(0);
  private readonly index = new OpenIndex((slot) => this.hashAt(slot));
  private readonly unpacked = new Map<string, number>();
  private readonly unpackedKeys = new Map<number, string>();
  /** The key last looked up by find(), packed. */
  private readonly want: Uint8Array;
  private wantCode = NO_KEY;
  private readonly matchWant = (slot: number): boolean => {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return samePacked(c.key, i * this.bytes, c.code[i]!, this.want, 0, this.wantCode, this.codec.length(this.wantCode));
  };

  constructor(private readonly codec: KeyCodec) {
    this.bytes = codec.bytes;
    this.want = new Uint8Array(codec.bytes);
  }

  /** Keys held. */
  get size(): number {
    return this.index.size + this.unpacked.size;
  }

  /** Every slot in use is below this. */
  get bound(): number {
    return this.handedOut;
  }

  /** The slot of `key`, or -1. */
  find(key: string): number {
    const code = this.codec.code(key);
    this.wantCode = code;
    if (code === NO_KEY) return this.unpacked.get(key) ?? -1;
    this.codec.write(key, code, this.want, 0);
    return this.index.find(hashPacked(this.seed, this.want, 0, code, this.codec.length(code)), this.matchWant);
  }

  /** The slot of `key`, given one if it has none. */
  slotOf(key: string): number {
    const found = this.find(key);
    if (found >= 0) return found;
    const slot = this.free.pop() ?? this.handedOut++;
    if (slot >>> SLOT_CHUNK_BITS === this.chunks.length) this.chunks.push(new Chunk(this.bytes));
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    if (this.wantCode === NO_KEY) {
      c.code[i] = UNPACKED;
      this.unpacked.set(key, slot);
      this.unpackedKeys.set(slot, key);
    } else {
      c.key.set(this.want, i * this.bytes);
      c.code[i] = this.wantCode;
      this.index.add(slot, this.hashAt(slot));
    }
    return slot;
  }

  /** Frees `slot` (in use): its key is no longer held, and the slot may be handed out again. */
  release(slot: number): void {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    if (c.code[i] === UNPACKED) {
      this.unpacked.delete(this.unpackedKeys.get(slot)!);
      this.unpackedKeys.delete(slot);
    } else {
      this.index.remove(slot, this.hashAt(slot));
    }
    c.code[i] = FREE;
    this.free.push(slot);
  }

  /** Whether `slot` holds a key. */
  inUse(slot: number): boolean {
    return slot < this.handedOut && this.chunks[slot >>> SLOT_CHUNK_BITS]!.code[slot & IN_CHUNK] !== FREE;
  }

  /** The key in `slot` (in use). */
  keyOf(slot: number): string {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    const code = c.code[i]!;
    return code === UNPACKED ? this.unpackedKeys.get(slot)! : this.codec.read(c.key, i * this.bytes, code);
  }

  private hashAt(slot: number): number {
    const c = this.chunks[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    const code = c.code[i]!;
    return hashPacked(this.seed, c.key, i * this.bytes, code, this.codec.length(code));
  }
}
