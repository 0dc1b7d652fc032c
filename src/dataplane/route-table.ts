/**
 * The TS plane's routes in columns: a route is an integer slot, its fields typed-array columns in
 * chunks of CHUNK slots that are added as routes arrive and never copied (no pause to grow), freed
 * slots are reused. Beside the columns: slots by source (SourceIndex, with a cache of the sources
 * that sent lately in front) and by route id. No object per route, and nothing of the Endpoints
 * given to setRoute but their addresses and ports.
 */
import type { Endpoint } from "../net/address.ts";
import { type ObserveColumns, observeAt, takesCopyAt } from "./observe.ts";
import { SourceIndex } from "./source-index.ts";
import type { DataPlaneCounters, RouteCounters } from "./types.ts";

/** Slots per chunk: a power of two, small enough that a relay with a few routes pays little. */
const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;
const IN_CHUNK = CHUNK - 1;

// A route's integers, a row of INTS a slot (a datagram reads most of a route's fields: rows share cache lines).
/** The source's hash in the index: probes and rehashes compare and move routes without reading strings. */
const HASH = 0;
/** The route back, from `to` to `from`, or -1: a datagram from `from` answers it. A free slot's: the next free slot. */
const REVERSE = 1;
/** fromPort << 16 | toPort, read back with `>> 16 & 0xffff` (an unsigned `>>> 16` makes the JIT compare doubles: 10 ns a lookup). */
const PORTS = 2;
/** The route id, or -1 for an id kept in RouteTable.otherIds. */
const ID = 3;
/** Bytes the route may forward to `to` unanswered (at most MAX_LIMIT); 0: no limit. */
const LIMIT = 4;
/** Bytes forwarded since `to` last sent (counted only when LIMIT > 0; never above LIMIT). */
const UNANSWERED = 5;
const INTS = 6;

/** The largest unanswered limit a route keeps (an int32 column); larger ones are cut to it. */
const MAX_LIMIT = 0x7fff_ffff;

/** Route flags. */
const ACTIVE = 1;
const SECOND_TO_FIRST = 2;

/** Entries of the cache of sources that sent lately (RouteTable.recent): about 3.5 MB at most. */
const RECENT = 1 << 16;

class RouteChunk implements ObserveColumns {
  readonly ints = new Int32Array(CHUNK * INTS);
  /** Source and destination address, a pair a slot. */
  readonly addresses: string[] = new Array<string>(2 * CHUNK).fill("");
  readonly flags = new Uint8Array(CHUNK);
  readonly observe = new Int16Array(CHUNK);
  readonly cidLength = new Uint8Array(CHUNK);
  dcids: Uint8Array | undefined = undefined;
}

/** Ids that index a page of slots: peer ids are small dense integers; any other id goes to a Map. */
function isPagedId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id <= 0x7fff_ffff;
}

export class RouteTable {
  private readonly chunks: RouteChunk[] = [];
  /** Slots handed out at least once. */
  private used = 0;
  private freeHead = -1;
  private readonly index = new SourceIndex((slot) => this.chunks[slot >>> CHUNK_BITS]!.ints[(slot & IN_CHUNK) * INTS + HASH]!);
  /** Slot by route id, pages of CHUNK ids (-1: no route). */
  private readonly slotPages: (Int32Array | undefined)[] = [];
  private readonly otherSlots = new Map<number, number>();
  private readonly otherIds = new Map<number, number>();
  /**
   * Sources that sent lately -> slot, in front of the index: JSC's Map hashes the socket's fresh
   * address string natively, about twice as fast as hashOf, and the few active sources fit in it
   * while the idle routes stay out. At most one entry an address (the first port seen); every entry
   * names a live route from that address; cleared when full.
   */
  private readonly recent = new Map<string, number>();
  /** Ids of routes that forwarded since drainActivity, once each while marked ACTIVE. */
  private active: number[] = [];

  /** `stats`: the plane's counters, where what routes forward and drop is counted. */
  constructor(private readonly stats: DataPlaneCounters) {}

  /** The slot of the route from `address`:`port`, or -1. Allocates nothing. */
  find(address: string, port: number): number {
    const hash = this.index.hashOf(address, port);
    const entries = this.index.entriesOf(hash);
    const mask = entries.length - 1;
    for (let e = hash & mask; ; e = (e + 1) & mask) {
      const v = entries[e]!;
      if (v === 0) return -1;
      const c = this.chunks[(v - 1) >>> CHUNK_BITS]!;
      const i = (v - 1) & IN_CHUNK;
      if (c.ints[i * INTS + HASH] === hash && ((c.ints[i * INTS + PORTS]! >> 16) & 0xffff) === port && c.addresses[2 * i] === address) return v - 1;
    }
  }

  /** The slot of route `id`, or -1. */
  slotOf(id: number): number {
    if (!isPagedId(id)) return this.otherSlots.get(id) ?? -1;
    const page = this.slotPages[id >>> CHUNK_BITS];
    return page === undefined ? -1 : page[id & IN_CHUNK]!;
  }

  /**
   * Adds a route; no route has its id or its source. It pairs with the route back from `to` to
   * `from`, if there is one (that route's old partner was the route from `from`, removed before).
   */
  add(id: number, from: Endpoint, to: Endpoint, observeBudget: number, limit: number, cidLength: number, secondToFirst: boolean): number {
    const back = this.find(to.address, to.port);
    const slot = this.allocate();
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    c.addresses[2 * i] = from.address;
    c.addresses[2 * i + 1] = to.address;
    c.ints[i * INTS + PORTS] = ((from.port & 0xffff) << 16) | (to.port & 0xffff);
    c.ints[i * INTS + REVERSE] = -1;
    if (back >= 0) {
      const b = this.chunks[back >>> CHUNK_BITS]!;
      const j = back & IN_CHUNK;
      if ((b.ints[j * INTS + PORTS]! & 0xffff) === from.port && b.addresses[2 * j + 1] === from.address) {
        // Both routes of a pair hold the same two strings, whatever copies the caller passed.
        c.addresses[2 * i] = b.addresses[2 * j + 1]!;
        c.addresses[2 * i + 1] = b.addresses[2 * j]!;
        c.ints[i * INTS + REVERSE] = back;
        b.ints[j * INTS + REVERSE] = slot;
      }
    }
    c.ints[i * INTS + LIMIT] = Math.min(limit, MAX_LIMIT);
    c.ints[i * INTS + UNANSWERED] = 0;
    c.flags[i] = secondToFirst ? SECOND_TO_FIRST : 0;
    observeAt(c, i, observeBudget, cidLength);
    this.setId(slot, id);
    const hash = this.index.hashOf(c.addresses[2 * i]!, from.port & 0xffff);
    c.ints[i * INTS + HASH] = hash;
    this.index.add(slot, hash);
    return slot;
  }

  remove(slot: number): void {
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    const back = c.ints[i * INTS + REVERSE]!;
    if (back >= 0) this.chunks[back >>> CHUNK_BITS]!.ints[(back & IN_CHUNK) * INTS + REVERSE] = -1;
    if (this.recent.get(c.addresses[2 * i]!) === slot) this.recent.delete(c.addresses[2 * i]!);
    this.index.remove(slot, c.ints[i * INTS + HASH]!);
    this.clearId(slot);
    c.addresses[2 * i] = "";
    c.addresses[2 * i + 1] = "";
    c.flags[i] = 0;
    c.ints[i * INTS + REVERSE] = this.freeHead;
    this.freeHead = slot;
  }

  idOf(slot: number): number {
    const id = this.chunks[slot >>> CHUNK_BITS]!.ints[(slot & IN_CHUNK) * INTS + ID]!;
    return id >= 0 ? id : this.otherIds.get(slot)!;
  }

  fromAddress(slot: number): string {
    return this.chunks[slot >>> CHUNK_BITS]!.addresses[2 * (slot & IN_CHUNK)]!;
  }

  fromPort(slot: number): number {
    return (this.chunks[slot >>> CHUNK_BITS]!.ints[(slot & IN_CHUNK) * INTS + PORTS]! >> 16) & 0xffff;
  }

  /**
   * The route of a datagram arriving from `address`:`port`, or -1. The datagram answers the route
   * back: its unanswered bytes start again.
   */
  arrive(address: string, port: number): number {
    let slot = this.recent.get(address) ?? -1;
    if (slot < 0 || this.fromPort(slot) !== port) slot = this.findRecent(address, port, slot < 0);
    if (slot < 0) return -1;
    const back = this.chunks[slot >>> CHUNK_BITS]!.ints[(slot & IN_CHUNK) * INTS + REVERSE]!;
    if (back >= 0) {
      const ints = this.chunks[back >>> CHUNK_BITS]!.ints;
      const at = (back & IN_CHUNK) * INTS + UNANSWERED;
      if (ints[at] !== 0) ints[at] = 0;
    }
    return slot;
  }

  /** find, and the slot found goes into `recent` when `remember` (its address has no entry there). */
  private findRecent(address: string, port: number, remember: boolean): number {
    const slot = this.find(address, port);
    if (slot >= 0 && remember) {
      if (this.recent.size >= RECENT) this.recent.clear();
      this.recent.set(this.fromAddress(slot), slot);
    }
    return slot;
  }

  /**
   * Forwards `data` along the route: queued as sendMany takes it (data, port, address) and
   * counted, or dropped and counted when it would pass the route's unanswered limit. True when the
   * forwarded datagram is also to be copied up for observation (takesCopy in observe.ts).
   * One call a datagram, one chunk looked up: this is the plane's hot path.
   */
  carry(slot: number, data: Uint8Array, queue: (Uint8Array | number | string)[]): boolean {
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    const ints = c.ints;
    const row = i * INTS;
    const length = data.length;
    const stats = this.stats;
    const limit = ints[row + LIMIT]!;
    if (limit > 0) {
      const unanswered = ints[row + UNANSWERED]! + length;
      if (unanswered > limit) {
        stats.unansweredDrops++;
        return false;
      }
      ints[row + UNANSWERED] = unanswered;
    }
    queue.push(data, ints[row + PORTS]! & 0xffff, c.addresses[2 * i + 1]!);
    stats.forwardedPackets++;
    stats.forwardedBytes += length;
    const flags = c.flags[i]!;
    if ((flags & SECOND_TO_FIRST) !== 0) {
      stats.secondToFirstPackets++;
      stats.secondToFirstBytes += length;
    }
    if ((flags & ACTIVE) === 0) {
      c.flags[i] = flags | ACTIVE;
      this.active.push(this.idOf(slot));
    }
    return takesCopyAt(c, i, data);
  }

  /**
   * Ids of the routes that forwarded since the previous call. Routes deleted since they forwarded
   * are left out, and so is a new route under such an id until it forwards.
   */
  drainActivity(): number[] {
    const ids = this.active;
    this.active = [];
    const live: number[] = [];
    for (const id of ids) {
      const slot = this.slotOf(id);
      if (slot < 0) continue;
      const c = this.chunks[slot >>> CHUNK_BITS]!;
      const flags = c.flags[slot & IN_CHUNK]!;
      if ((flags & ACTIVE) === 0) continue;
      c.flags[slot & IN_CHUNK] = flags & ~ACTIVE;
      live.push(id);
    }
    return live;
  }

  counters(slot: number): RouteCounters {
    const c = this.chunks[slot >>> CHUNK_BITS]!;
    const i = slot & IN_CHUNK;
    return { observeLeft: Math.max(0, c.observe[i]!) };
  }

  private allocate(): number {
    const slot = this.freeHead;
    if (slot >= 0) {
      this.freeHead = this.chunks[slot >>> CHUNK_BITS]!.ints[(slot & IN_CHUNK) * INTS + REVERSE]!;
      return slot;
    }
    if (this.used === this.chunks.length * CHUNK) this.chunks.push(new RouteChunk());
    return this.used++;
  }

  private setId(slot: number, id: number): void {
    const ints = this.chunks[slot >>> CHUNK_BITS]!.ints;
    if (isPagedId(id)) {
      ints[(slot & IN_CHUNK) * INTS + ID] = id;
      (this.slotPages[id >>> CHUNK_BITS] ??= new Int32Array(CHUNK).fill(-1))[id & IN_CHUNK] = slot;
    } else {
      ints[(slot & IN_CHUNK) * INTS + ID] = -1;
      this.otherSlots.set(id, slot);
      this.otherIds.set(slot, id);
    }
  }

  private clearId(slot: number): void {
    const id = this.idOf(slot);
    if (isPagedId(id)) this.slotPages[id >>> CHUNK_BITS]![id & IN_CHUNK] = -1;
    else {
      this.otherSlots.delete(id);
      this.otherIds.delete(slot);
    }
  }
}
