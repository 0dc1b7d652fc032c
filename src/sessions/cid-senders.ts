import { KeySlots, SLOT_CHUNK, SLOT_CHUNK_BITS } from "../collections/key-slots.ts";
import { CID_KEYS } from "./cid-key.ts";

const IN_CHUNK = SLOT_CHUNK - 1;
/** In the ref column: the sender is an object, kept in `objects`. */
const OBJECT = -1;
const MAX_REF = 0x7fffffff;

/**
 * The connection-ID index's map from an ID to its sender: a peer as an object (its session is
 * expanded) or the ref of a compact session's peer, a non-negative integer. IDs get slots in a
 * KeySlots (packed, no string kept), refs live in an Int32Array column of slots, and only the
 * object senders, which are few (sessions stay expanded for a moment after they change), in a Map
 * by slot. At a million QUIC sessions the index holds millions of IDs: kept as Map keys, each new
 * ID made the collector walk all of them again (bench/id-index-gc.ts).
 */
export class CidSenders<P extends object> {
  private readonly keys = new KeySlots(CID_KEYS);
  private readonly refs: Int32Array[] = [];
  private readonly objects = new Map<number, P>();

  get size(): number {
    return this.keys.size;
  }

  /** IDs whose sender is an object: for leak checks. */
  get objectCount(): number {
    return this.objects.size;
  }

  get(cid: string): P | number | undefined {
    const slot = this.keys.find(cid);
    return slot < 0 ? undefined : this.at(slot);
  }

  set(cid: string, sender: P | number): void {
    checkRef(sender);
    this.put(this.keys.slotOf(cid), sender);
  }

  /** Names the sender of `cid`, if it has one, as `to(sender)`: one lookup. */
  update(cid: string, to: (sender: P | number) => P | number): void {
    const slot = this.keys.find(cid);
    if (slot < 0) return;
    const sender = to(this.at(slot));
    checkRef(sender);
    this.put(slot, sender);
  }

  delete(cid: string): boolean {
    const slot = this.keys.find(cid);
    if (slot < 0) return false;
    this.objects.delete(slot);
    this.keys.release(slot);
    return true;
  }

  private at(slot: number): P | number {
    const ref = this.refs[slot >>> SLOT_CHUNK_BITS]![slot & IN_CHUNK]!;
    return ref === OBJECT ? this.objects.get(slot)! : ref;
  }

  private put(slot: number, sender: P | number): void {
    while (slot >>> SLOT_CHUNK_BITS >= this.refs.length) this.refs.push(new Int32Array(SLOT_CHUNK));
    const column = this.refs[slot >>> SLOT_CHUNK_BITS]!;
    if (typeof sender === "number") {
      column[slot & IN_CHUNK] = sender;
      this.objects.delete(slot);
    } else {
      column[slot & IN_CHUNK] = OBJECT;
      this.objects.set(slot, sender);
    }
  }
}

/** A RangeError for a ref the column cannot hold: checked before any slot is taken. */
function checkRef(sender: object | number): void {
  if (typeof sender === "number" && !(Number.isInteger(sender) && sender >= 0 && sender <= MAX_REF)) {
    throw new RangeError(`a compact peer's ref is an integer from 0 to ${MAX_REF}, got ${sender}`);
  }
}
