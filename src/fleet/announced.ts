import { IntDeque } from "../collections/int-deque.ts";
import { KeySlots, SLOT_CHUNK, SLOT_CHUNK_BITS } from "../collections/key-slots.ts";
import { SESSION_IDS } from "../sessions/compact-id.ts";

const IN_CHUNK = SLOT_CHUNK - 1;

/** What this relay last wrote of a session in the directory. */
export interface AnnouncedEntry {
  localPeers: number;
  /** The identity of the one local peer, as last written. */
  identity: string | undefined;
  /** When it was written (Date.now()). */
  at: number;
}

class Columns {
  readonly localPeers = new Uint8Array(SLOT_CHUNK);
  readonly at = new Float64Array(SLOT_CHUNK);
  /** Bumped by every write of the slot, whoever holds it: a queued write is current while it matches. */
  readonly version = new Int32Array(SLOT_CHUNK);
  /** Identities are strings, and few (peers with tokens): undefined in most slots. */
  readonly identity: (string | undefined)[] = new Array<string | undefined>(SLOT_CHUNK).fill(undefined);
}

/**
 * The fleet coordinator's directory entries: per session it entered, what it last wrote, and every
 * write in the order made, so that the front of that queue is the next entry due for renewal
 * (a write superseded since, or withdrawn, is passed over there). Columns of typed arrays by the
 * session id's slot (KeySlots), the queue as pairs of integers: at a million sessions no object,
 * string or Map entry per session, nothing for the collector to walk (an object per entry in a Map
 * of ids made each collection walk the whole Map again while entries were written).
 */
export class AnnouncedEntries {
  private readonly ids = new KeySlots(SESSION_IDS);
  private readonly columns: Columns[] = [];
  /** Every write, oldest first: its slot and the slot's version then. */
  private readonly dueSlots = new IntDeque();
  private readonly dueVersions = new IntDeque();

  get size(): number {
    return this.ids.size;
  }

  /** What was last written of session `id`, or undefined when it is not entered. */
  get(id: string): AnnouncedEntry | undefined {
    const slot = this.ids.find(id);
    if (slot < 0) return undefined;
    const c = this.columns[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return { localPeers: c.localPeers[i]!, identity: c.identity[i], at: c.at[i]! };
  }

  /**
   * Session `id` was written as `entry`: it replaces what was written before, and is queued for
   * renewal. Returns the write's token: current(token) says whether it is still the latest.
   */
  set(id: string, entry: AnnouncedEntry): number {
    const slot = this.ids.slotOf(id);
    if (slot >>> SLOT_CHUNK_BITS === this.columns.length) this.columns.push(new Columns());
    const c = this.columns[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    c.localPeers[i] = Math.min(255, entry.localPeers);
    c.at[i] = entry.at;
    if (c.identity[i] !== entry.identity) c.identity[i] = entry.identity;
    const version = (c.version[i]! + 1) | 0;
    c.version[i] = version;
    this.dueSlots.push(slot);
    this.dueVersions.push(version);
    return tokenOf(slot, version);
  }

  /** Session `id` is no longer entered. False when it was not. */
  delete(id: string): boolean {
    const slot = this.ids.find(id);
    if (slot < 0) return false;
    // Its queued writes are passed over: the slot is free, and a later holder's first write bumps its version past them.
    this.columns[slot >>> SLOT_CHUNK_BITS]!.identity[slot & IN_CHUNK] = undefined;
    this.ids.release(slot);
    return true;
  }

  /** Whether the write of `token` (from set) is still the latest of its session. */
  current(token: number): boolean {
    const slot = Math.floor(token / VERSIONS);
    const c = this.columns[slot >>> SLOT_CHUNK_BITS];
    return c !== undefined && this.ids.inUse(slot) && tokenOf(slot, c.version[slot & IN_CHUNK]!) === token;
  }

  /**
   * The front of the queue of writes, if it was made at or before `dueBy`; it leaves the queue.
   * Its session id when it is still the latest write of a session, else null (superseded or
   * withdrawn: passed over); undefined when the queue is empty or its front is not due yet. One
   * write a call, so that a caller's time-bounded pass bounds the walk over superseded writes too.
   */
  takeDue(dueBy: number): string | null | undefined {
    const slot = this.dueSlots.peek();
    if (slot === undefined) return undefined;
    const c = this.columns[slot >>> SLOT_CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    const version = this.dueVersions.peek()!;
    const current = this.ids.inUse(slot) && c.version[i] === version;
    if (current && c.at[i]! > dueBy) return undefined;
    this.dueSlots.shift();
    this.dueVersions.shift();
    return current ? this.ids.keyOf(slot) : null;
  }

  /** The ids of every entered session, as they are when the iteration reaches them. */
  *sessionIds(): IterableIterator<string> {
    for (let slot = 0; slot < this.ids.bound; slot++) if (this.ids.inUse(slot)) yield this.ids.keyOf(slot);
  }
}

/** Versions a token tells apart per slot (a write is current while no newer one came). */
const VERSIONS = 2 ** 21;

function tokenOf(slot: number, version: number): number {
  return slot * VERSIONS + (version & (VERSIONS - 1));
}
