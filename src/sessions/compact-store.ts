import { randomBytes } from "node:crypto";
import { sourceGroup } from "../net/address.ts";
import { AddressForm, readAddress, writeAddress } from "./compact-address.ts";
import { hashId, ID_BYTES, idCode, NO_ID, readId, sameId, writeId } from "./compact-id.ts";
import { IntDeque } from "../collections/int-deque.ts";
import { mix32 } from "../collections/mix32.ts";
import { OpenIndex } from "../collections/open-index.ts";
import type { SessionSnapshot } from "./table.ts";
import type { Session } from "./types.ts";
import { NO_CIDS, NONE_HELD } from "./types.ts";
import { ShardedMap } from "./sharded-map.ts";

/** Slots per chunk of columns: a power of two. Columns grow a chunk at a time, never copied. */
const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const IN_CHUNK = CHUNK - 1;
/** IPv6 addresses per chunk of their own store. */
const V6_CHUNK_BITS = 14;
const V6_IN_CHUNK = (1 << V6_CHUNK_BITS) - 1;

/**
 * Compact peers on one address at most: a lookup of an address walks all of its compact peers,
 * so a host with more (a NAT with many clients) keeps the rest expanded, indexed by port.
 */
export const MAX_COMPACT_PER_ADDRESS = 8;

/** The two orders of last activity: sessions of `quic-relay probe` apart, as they expire sooner. */
export const REGULAR = 0;
export const PROBES = 1;

const FREE = 0;
const EXPANDED = 1;
const COMPACT = 2;

interface Chunk {
  /** Neighbours in the slot's order of last activity (-1 at the ends). */
  older: Int32Array;
  newer: Int32Array;
  state: Uint8Array;
  /** Waiting in the compaction queue. */
  queued: Uint8Array;
  /** The session's time of last activity (packTime). */
  lastActivity: Uint32Array;
  peerCount: Uint8Array;
  /** How the id is kept (compact-id.ts: a UUID's value, or the id as it is and its length). */
  idCode: Uint8Array;
  /** ID_BYTES a slot. */
  id: Uint8Array;
  // Per peer: index 2 × slot + k, k the peer's place in its session.
  form: Uint8Array;
  proven: Uint8Array;
  port: Uint16Array;
  /** The peer's time of last activity as milliseconds before its session's (packGap). */
  seenGap: Int32Array;
  routeId: Int32Array;
  /** The IPv4 address (forms V4 and Mapped), or the entry of the IPv6 address in the V6 words. */
  address: Uint32Array;
  /** The session object of an expanded session, what the table keeps with a compact one. */
  objects: unknown[];
}

function newChunk(): Chunk {
  return {
    older: new Int32Array(CHUNK),
    newer: new Int32Array(CHUNK),
    state: new Uint8Array(CHUNK),
    queued: new Uint8Array(CHUNK),
    lastActivity: new Uint32Array(CHUNK),
    peerCount: new Uint8Array(CHUNK),
    idCode: new Uint8Array(CHUNK),
    id: new Uint8Array(CHUNK * ID_BYTES),
    form: new Uint8Array(2 * CHUNK),
    proven: new Uint8Array(2 * CHUNK),
    port: new Uint16Array(2 * CHUNK),
    seenGap: new Int32Array(2 * CHUNK),
    routeId: new Int32Array(2 * CHUNK),
    address: new Uint32Array(2 * CHUNK),
    objects: new Array<unknown>(CHUNK).fill(undefined),
  };
}

interface List {
  head: number;
  tail: number;
  count: number;
}

/**
 * Every session of the table has a slot here. A slot holds the session's place in its order of
 * last activity, and either the session object (expanded: what the table's rules work on) or,
 * for a settled session (no held datagrams, no peer token, an id and addresses that pack), the
 * session itself packed into columns of typed arrays (compact: about 160 bytes with its index
 * entries, no JS object for the garbage collector to walk), with whatever the table keeps beside
 * it (its connection IDs, if it learnt any). A compact session is expanded again, exactly as it
 * was, whenever a rule needs it; touched by traffic (`touchPeer`) it stays compact.
 *
 * Which sessions may be compact, and when, is the table's decision (table.ts); this class only
 * keeps slots, orders and indexes: by id and by address for compact sessions, by route id for
 * every peer. Refs name a peer as 2 × slot + its place in its session.
 */
export class CompactStore {
  private readonly chunks: Chunk[] = [];
  private highWater = 0;
  private readonly freeSlots = new IntDeque();
  private readonly lists: List[] = [
    { head: -1, tail: -1, count: 0 },
    { head: -1, tail: -1, count: 0 },
  ];
  private readonly seed = randomBytes(4).readUInt32LE(0);
  private readonly byId = new OpenIndex((slot) => this.idHashAt(slot));
  /** Compact peers by address (port left out of the hash: a host's peers share a probe run). */
  private readonly byAddress = new OpenIndex((ref) => this.addressHashAt(ref));
  /** IPv6 addresses of compact peers, four words an entry, in chunks; entries reused. */
  private readonly v6Words: Uint32Array[] = [];
  private v6HighWater = 0;
  private readonly v6Free: number[] = [];
  /** Every peer's slot by its route id, as slot + 1 (0: none), in chunks. */
  private readonly byRoute: Int32Array[] = [];
  /** Compact peers per IPv6 /64 (sourceGroup). */
  private readonly v6Groups = new ShardedMap<number>();
  private compactSessions = 0;
  /** Compact peers whose address is IPv4-mapped IPv6: none unless the socket is dual-stack. */
  private mappedPeers = 0;
  /** Route ids with a slot (one per peer of the table). */
  private routes = 0;
  private compactPeers = 0;
  /** The address (and port, -1: any) the bound matchers below compare with: no closure per lookup. */
  private readonly words = new Uint32Array(4);
  /** compact(): the forms and words of the session's (at most two) peer addresses. */
  private readonly packForms = new Uint8Array(2);
  private readonly packWords = new Uint32Array(8);
  private wantForm = 0;
  private wantPort = -1;
  /** The id findId looks for, as compact-id.ts writes it. */
  private readonly wantId = new Uint8Array(ID_BYTES);
  private wantIdCode = NO_ID;
  private readonly matchAddress = (ref: number): boolean =>
    (this.wantPort < 0 || this.portAt(ref) === this.wantPort) && this.addressIs(ref, this.wantForm, this.words);
  private readonly matchId = (slot: number): boolean => this.idIs(slot);

  /** `now`: the table's clock (milliseconds), which compact times are read back against. */
  constructor(private readonly now: () => number) {}

  /** Sessions held compact, and their peers. */
  get sessionCount(): number {
    return this.compactSessions;
  }
  get peerCount(): number {
    return this.compactPeers;
  }
  /** Entries of the compact indexes, for leak checks. */
  get indexSizes(): { ids: number; addresses: number; routes: number } {
    return { ids: this.byId.size, addresses: this.byAddress.size, routes: this.routes };
  }

  /** A slot for a new, expanded session. */
  allocate(session: Session): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.highWater++;
      if (slot >>> CHUNK_BITS === this.chunks.length) this.chunks.push(newChunk());
    }
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    c.state[i] = EXPANDED;
    c.older[i] = c.newer[i] = -1;
    c.objects[i] = session;
    return slot;
  }

  /** Frees the slot of an expanded session that left the table (taken out of its order first). */
  release(slot: number): void {
    const c = this.chunkOf(slot);
    c.state[slot & IN_CHUNK] = FREE;
    c.queued[slot & IN_CHUNK] = 0;
    c.objects[slot & IN_CHUNK] = undefined;
    this.freeSlots.push(slot);
  }

  /** The expanded session in `slot`, undefined when it is compact. */
  expandedAt(slot: number): Session | undefined {
    return this.isCompact(slot) ? undefined : (this.chunkOf(slot).objects[slot & IN_CHUNK] as Session | undefined);
  }

  /** What the table keeps with the compact session in `slot` (given to compact()), if anything. */
  extraOf(slot: number): unknown {
    return this.isCompact(slot) ? this.chunkOf(slot).objects[slot & IN_CHUNK] : undefined;
  }

  isCompact(slot: number): boolean {
    return this.chunkOf(slot).state[slot & IN_CHUNK] === COMPACT;
  }

  lastActivityOf(slot: number): number {
    return this.expandedAt(slot)?.lastActivity ?? unpackTime(this.chunkOf(slot).lastActivity[slot & IN_CHUNK]!, this.now());
  }

  /** Marks the slot as queued for compaction; false when it was already. */
  markQueued(slot: number): boolean {
    const q = this.chunkOf(slot).queued;
    if (q[slot & IN_CHUNK]) return false;
    q[slot & IN_CHUNK] = 1;
    return true;
  }

  /** Takes the queued mark off; false when the slot was not queued (freed since). */
  takeQueued(slot: number): boolean {
    const q = this.chunkOf(slot).queued;
    if (!q[slot & IN_CHUNK]) return false;
    q[slot & IN_CHUNK] = 0;
    return true;
  }

  // Orders of last activity, linked through the slots.

  oldest(list: number): number {
    return this.lists[list]!.head;
  }
  newerThan(slot: number): number {
    return this.chunkOf(slot).newer[slot & IN_CHUNK]!;
  }
  listSize(list: number): number {
    return this.lists[list]!.count;
  }

  append(list: number, slot: number): void {
    const l = this.lists[list]!;
    const c = this.chunkOf(slot);
    c.older[slot & IN_CHUNK] = l.tail;
    c.newer[slot & IN_CHUNK] = -1;
    if (l.tail >= 0) this.chunkOf(l.tail).newer[l.tail & IN_CHUNK] = slot;
    else l.head = slot;
    l.tail = slot;
    l.count++;
  }

  /** The slot was active: it becomes the newest of its order. */
  touch(list: number, slot: number): void {
    if (this.lists[list]!.tail === slot) return;
    this.unlink(list, slot);
    this.append(list, slot);
  }

  unlink(list: number, slot: number): void {
    const l = this.lists[list]!;
    const c = this.chunkOf(slot);
    const older = c.older[slot & IN_CHUNK]!;
    const newer = c.newer[slot & IN_CHUNK]!;
    if (older >= 0) this.chunkOf(older).newer[older & IN_CHUNK] = newer;
    else l.head = newer;
    if (newer >= 0) this.chunkOf(newer).older[newer & IN_CHUNK] = older;
    else l.tail = older;
    c.older[slot & IN_CHUNK] = c.newer[slot & IN_CHUNK] = -1;
    l.count--;
  }

  // Compact sessions.

  /**
   * Packs an expanded session into its slot and indexes it, with `extra` (kept as it is, see
   * extraOf); the caller takes it out of its own indexes. False (nothing changed) when the id or an address does not pack, or an address has
   * MAX_COMPACT_PER_ADDRESS compact peers already.
   */
  compact(session: Session, extra?: unknown): boolean {
    const slot = session.slot;
    const id = session.id;
    const code = idCode(id);
    if (code === NO_ID || session.peers.length === 0) return false;
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    const n = session.peers.length;
    // Each address is read once: its form and words are kept for the writes below.
    const forms = this.packForms;
    for (let k = 0; k < n; k++) {
      const form = readAddress(session.peers[k]!.endpoint.address, this.words);
      if (form === AddressForm.None) return false;
      if (this.countAt(form) >= MAX_COMPACT_PER_ADDRESS) return false;
      forms[k] = form;
      const w = this.words;
      const into = this.packWords;
      into[4 * k] = w[0]!;
      into[4 * k + 1] = w[1]!;
      into[4 * k + 2] = w[2]!;
      into[4 * k + 3] = w[3]!;
    }
    writeId(id, code, c.id, i * ID_BYTES);
    c.idCode[i] = code;
    c.lastActivity[i] = packTime(session.lastActivity);
    c.peerCount[i] = session.peers.length;
    c.state[i] = COMPACT;
    this.chunkOf(slot).objects[slot & IN_CHUNK] = extra;
    this.byId.add(slot, this.idHashAt(slot));
    for (let k = 0; k < n; k++) {
      const peer = session.peers[k]!;
      const ref = 2 * slot + k;
      const form = forms[k]!;
      c.proven[2 * i + k] = peer.proven ? 1 : 0;
      c.port[2 * i + k] = peer.endpoint.port;
      c.seenGap[2 * i + k] = packGap(session.lastActivity, peer.lastSeen);
      c.routeId[2 * i + k] = peer.id;
      c.form[2 * i + k] = form;
      c.address[2 * i + k] = form === AddressForm.V6 ? this.storeV6(this.packWords.subarray(4 * k, 4 * k + 4)) : this.packWords[4 * k + 3]!;
      this.byAddress.add(ref, this.addressHashAt(ref));
      this.countGroup(peer.endpoint.address, form, 1);
    }
    this.compactSessions++;
    this.compactPeers += n;
    return true;
  }

  /** Unpacks a compact session into objects, as it was, and takes it out of the compact indexes. */
  expand(slot: number): Session {
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    const lastActivity = unpackTime(c.lastActivity[i]!, this.now());
    const session: Session = {
      id: this.idOf(slot),
      peers: [],
      lastActivity,
      held: NONE_HELD,
      heldBytes: 0,
      cids: NO_CIDS,
      slot,
    };
    const n = c.peerCount[i]!;
    for (let k = 0; k < n; k++) {
      const ref = 2 * slot + k;
      session.peers.push({
        id: c.routeId[2 * i + k]!,
        session,
        endpoint: { address: this.addressOf(ref), port: c.port[2 * i + k]! },
        lastSeen: lastActivity - c.seenGap[2 * i + k]!,
        proven: c.proven[2 * i + k] === 1,
        cids: undefined,
        identity: undefined,
      });
    }
    this.unindex(slot);
    c.state[i] = EXPANDED;
    c.objects[i] = session;
    return session;
  }

  /**
   * Takes the compact session in `slot` out of the compact indexes and frees the slot (taken out
   * of its order first): expand() and release() without building its objects.
   */
  removeCompact(slot: number): void {
    this.unindex(slot);
    this.release(slot);
  }

  /** Takes the compact session in `slot` out of the compact indexes and counts; its columns are left as they are. */
  private unindex(slot: number): void {
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    this.byId.remove(slot, this.idHashAt(slot));
    const n = c.peerCount[i]!;
    for (let k = 0; k < n; k++) {
      const ref = 2 * slot + k;
      const form = c.form[2 * i + k]!;
      // An IPv6 peer's /64 is counted by its address, read before its words are freed.
      const address = form === AddressForm.V6 ? this.addressOf(ref) : "";
      this.byAddress.remove(ref, this.addressHashAt(ref));
      if (form === AddressForm.V6) this.v6Free.push(c.address[2 * i + k]!);
      this.countGroup(address, form, -1);
    }
    this.compactSessions--;
    this.compactPeers -= n;
  }

  /** Peers of the compact session in `slot`. */
  peerCountOf(slot: number): number {
    return this.chunkOf(slot).peerCount[slot & IN_CHUNK]!;
  }

  /** The route id of the compact peer `ref`. */
  routeIdAt(ref: number): number {
    return this.chunkOf(ref >>> 1).routeId[ref & (2 * CHUNK - 1)]!;
  }

  /** The compact session with this id, or -1. */
  findId(id: string): number {
    const code = idCode(id);
    if (code === NO_ID) return -1;
    writeId(id, code, this.wantId, 0);
    this.wantIdCode = code;
    return this.byId.find(this.hashId(this.wantId, 0, code), this.matchId);
  }

  /** The compact peer at this address and port, or -1. */
  peerAt(address: string, port: number): number {
    const form = readAddress(address, this.words);
    if (form === AddressForm.None) return -1;
    this.wantForm = form;
    this.wantPort = port;
    return this.byAddress.find(this.hashOfWords(form), this.matchAddress);
  }

  /** The slot of the session of the peer with this route id, or -1. */
  slotOfRoute(routeId: number): number {
    if (!(routeId > 0 && routeId <= 0x7fff_ffff)) return -1;
    const chunk = this.byRoute[routeId >>> CHUNK_BITS];
    return chunk === undefined ? -1 : chunk[routeId & IN_CHUNK]! - 1;
  }

  /** The peer `routeId` of a session: in `slot` from now on, or in none (-1). */
  setRouteSlot(routeId: number, slot: number): void {
    while (routeId >>> CHUNK_BITS >= this.byRoute.length) this.byRoute.push(new Int32Array(CHUNK));
    const chunk = this.byRoute[routeId >>> CHUNK_BITS]!;
    this.routes += (slot >= 0 ? 1 : 0) - (chunk[routeId & IN_CHUNK] !== 0 ? 1 : 0);
    chunk[routeId & IN_CHUNK] = slot + 1;
  }

  /** The ref of the peer with this route id in the compact session in `slot`. */
  refOfRoute(slot: number, routeId: number): number {
    return 2 * slot + (this.chunkOf(slot).routeId[2 * (slot & IN_CHUNK)] === routeId ? 0 : 1);
  }

  /** Compact peers on this host (hostOf form: an IPv4 host counts its IPv4-mapped form too). */
  countOnHost(host: string): number {
    const form = readAddress(host, this.words);
    if (form === AddressForm.None) return 0;
    const n = this.countAt(form);
    // The mapped form is looked up only when some compact peer has one (an IPv4 socket never reports it).
    return form === AddressForm.V4 && this.mappedPeers > 0 ? n + this.countAt(AddressForm.Mapped) : n;
  }

  /** A compact peer on this host (hostOf form), or -1: the only one when countOnHost says 1. */
  anyOnHost(host: string): number {
    const form = readAddress(host, this.words);
    if (form === AddressForm.None) return -1;
    this.wantForm = form;
    this.wantPort = -1;
    const found = this.byAddress.find(this.hashOfWords(form), this.matchAddress);
    if (found >= 0 || form !== AddressForm.V4) return found;
    this.wantForm = AddressForm.Mapped;
    return this.byAddress.find(this.hashOfWords(AddressForm.Mapped), this.matchAddress);
  }

  /** Compact peers with an address string exactly this one. */
  countOnAddress(address: string): number {
    const form = readAddress(address, this.words);
    return form === AddressForm.None ? 0 : this.countAt(form);
  }

  /** Compact IPv6 peers in this /64 (sourceGroup form). */
  countInV6Group(group: string): number {
    return this.v6Groups.get(group) ?? 0;
  }

  /**
   * Traffic of a compact peer: its time of last activity and its session's, which becomes the
   * newest of its order (compact sessions are never probes'). Stays compact.
   */
  touchPeer(ref: number, now: number): void {
    const slot = ref >>> 1;
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    // Each peer's gap is to the session's time, which moves: the other peer's grows.
    const before = unpackTime(c.lastActivity[i]!, now);
    for (let k = 0; k < c.peerCount[i]!; k++) {
      c.seenGap[2 * i + k] = k === (ref & 1) ? 0 : packGap(now, before - c.seenGap[2 * i + k]!);
    }
    c.lastActivity[i] = packTime(now);
    this.touch(REGULAR, slot);
  }

  idOf(slot: number): string {
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    return readId(c.id, i * ID_BYTES, c.idCode[i]!);
  }

  /** A compact session as the table exports it (times as milliseconds idle). */
  snapshot(slot: number, now: number): SessionSnapshot {
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    const lastActivity = unpackTime(c.lastActivity[i]!, now);
    const peers = [];
    for (let k = 0; k < c.peerCount[i]!; k++) {
      peers.push({ address: this.addressOf(2 * slot + k), port: c.port[2 * i + k]!, idleMs: now - (lastActivity - c.seenGap[2 * i + k]!), proven: c.proven[2 * i + k] === 1 });
    }
    return { id: this.idOf(slot), idleMs: now - lastActivity, peers };
  }

  private chunkOf(slot: number): Chunk {
    return this.chunks[slot >>> CHUNK_BITS]!;
  }

  private countGroup(address: string, form: number, delta: number): void {
    if (form === AddressForm.Mapped) this.mappedPeers += delta;
    if (form !== AddressForm.V6) return;
    const group = sourceGroup(address);
    const n = (this.v6Groups.get(group) ?? 0) + delta;
    if (n === 0) this.v6Groups.delete(group);
    else this.v6Groups.set(group, n);
  }

  /** Compact peers at the address in `this.words`, of this form. */
  private countAt(form: number): number {
    this.wantForm = form;
    this.wantPort = -1;
    return this.byAddress.count(this.hashOfWords(form), this.matchAddress);
  }

  private portAt(ref: number): number {
    const slot = ref >>> 1;
    return this.chunkOf(slot).port[2 * (slot & IN_CHUNK) + (ref & 1)]!;
  }

  private addressIs(ref: number, form: number, w: Uint32Array): boolean {
    const slot = ref >>> 1;
    const c = this.chunkOf(slot);
    const p = 2 * (slot & IN_CHUNK) + (ref & 1);
    if (c.form[p] !== form) return false;
    const a = c.address[p]!;
    if (form !== AddressForm.V6) return a === w[3];
    const words = this.v6Words[a >>> V6_CHUNK_BITS]!;
    const at = 4 * (a & V6_IN_CHUNK);
    return words[at + 3] === w[3] && words[at] === w[0] && words[at + 1] === w[1] && words[at + 2] === w[2];
  }

  /** The address of the compact peer `ref`, as its socket wrote it. */
  addressOf(ref: number): string {
    const slot = ref >>> 1;
    const c = this.chunkOf(slot);
    const p = 2 * (slot & IN_CHUNK) + (ref & 1);
    const form = c.form[p] as AddressForm;
    const a = c.address[p]!;
    if (form !== AddressForm.V6) return writeAddress(form, [0, 0, 0, a]);
    const at = 4 * (a & V6_IN_CHUNK);
    return writeAddress(form, this.v6Words[a >>> V6_CHUNK_BITS]!.subarray(at, at + 4));
  }

  private addressHashAt(ref: number): number {
    const slot = ref >>> 1;
    const c = this.chunkOf(slot);
    const p = 2 * (slot & IN_CHUNK) + (ref & 1);
    const form = c.form[p]!;
    const a = c.address[p]!;
    if (form !== AddressForm.V6) return this.addressHash(form, 0, 0, 0, a);
    const words = this.v6Words[a >>> V6_CHUNK_BITS]!;
    const at = 4 * (a & V6_IN_CHUNK);
    return this.addressHash(form, words[at]!, words[at + 1]!, words[at + 2]!, words[at + 3]!);
  }

  /** Hash of an address: its form and its four words (IPv4 in the last). */
  private addressHash(form: number, w0: number, w1: number, w2: number, w3: number): number {
    return mix32(mix32(mix32(this.seed ^ form ^ w3) ^ w2) ^ Math.imul(w0, 0x9e3779b1) ^ w1);
  }

  private hashOfWords(form: number): number {
    const w = this.words;
    return this.addressHash(form, w[0]!, w[1]!, w[2]!, w[3]!);
  }

  /** Keeps an IPv6 address (four words) and returns its entry. */
  private storeV6(w: Uint32Array): number {
    let entry = this.v6Free.pop();
    if (entry === undefined) {
      entry = this.v6HighWater++;
      if (entry >>> V6_CHUNK_BITS === this.v6Words.length) this.v6Words.push(new Uint32Array(4 << V6_CHUNK_BITS));
    }
    const words = this.v6Words[entry >>> V6_CHUNK_BITS]!;
    const at = 4 * (entry & V6_IN_CHUNK);
    for (let k = 0; k < 4; k++) words[at + k] = w[k]!;
    return entry;
  }

  /** Whether the compact session in `slot` has the id findId looks for. */
  private idIs(slot: number): boolean {
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    return sameId(c.id, i * ID_BYTES, c.idCode[i]!, this.wantId, 0, this.wantIdCode);
  }

  /**
   * The hash of the compact session's id, from its packed bytes: not kept (4 bytes a session), as
   * an index part's growth rehashes only a 64th of the ids, a few thousand at a million sessions.
   */
  private idHashAt(slot: number): number {
    const c = this.chunkOf(slot);
    const i = slot & IN_CHUNK;
    return this.hashId(c.id, i * ID_BYTES, c.idCode[i]!);
  }

  /** The hash of the id packed at `at` with `code` (compact-id.ts), keyed by this store's seed. */
  private hashId(bytes: Uint8Array, at: number, code: number): number {
    return hashId(this.seed, bytes, at, code);
  }
}

/**
 * A compact session's time (the table's clock: milliseconds, fractions allowed, negative for a
 * session restored idle since before the process started) in 4 bytes instead of 8: its whole
 * milliseconds modulo 2^32. Read back against the present (unpackTime), so it comes back exact
 * (to the millisecond below) for any time less than 2^32 ms (49.7 days) before now: a compact
 * session's last activity is younger than its timeout, at most 30 days (config.ts).
 */
function packTime(t: number): number {
  return Math.floor(t) >>> 0;
}

function unpackTime(packed: number, now: number): number {
  const base = Math.floor(now);
  return base - ((base - packed) >>> 0);
}

/** Gaps between a peer's last activity and its session's, in an Int32Array: beyond ±24.8 days, cut. */
const MAX_GAP = 0x7fff_ffff;

/**
 * How many whole milliseconds the peer's last activity (`seen`) is before its session's
 * (`session`): negative when after it (a restored state file may say so). A peer quiet for longer
 * than MAX_GAP reads as quiet for MAX_GAP, as long for every rule.
 */
function packGap(session: number, seen: number): number {
  return Math.max(-MAX_GAP, Math.min(MAX_GAP, Math.floor(session) - Math.floor(seen)));
}

