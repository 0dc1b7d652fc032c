import { sourceGroup, V4_MAPPED_PREFIX as MAPPED_PREFIX } from "../net/address.ts";
import { IntDeque } from "../collections/int-deque.ts";
import { ShardedMap } from "./sharded-map.ts";
import type { Peer } from "./types.ts";

const REUSE_DELAY = 4096;

/** One peer on an address (the usual case), or several by port. */
type AddressEntry = Peer | Map<number, Peer>;

/**
 * Where to find an expanded peer: by transport address, by host; and the route ids peers get
 * (the table's store finds a peer by its id). Built to stay small: an address with one peer maps
 * straight to it (no per-address Map), and hosts are found through the address map (a socket
 * reports one host always in one form; IPv4 on a dual-stack socket as `::ffff:a.b.c.d`). Source
 * groups (an IPv4 host, or an IPv6 /64) are counted for admission limits: IPv4 through the address
 * map, IPv6 in a map of their own, so IPv4 peers cost nothing extra.
 */
export class PeerIndex {
  /** Sharded: at a million peers one Map's rehash would hold the thread for a long time. */
  private readonly byAddress = new ShardedMap<AddressEntry>();
  /** Peers per IPv6 /64 (sourceGroup); no entry at zero. */
  private readonly byV6Group = new ShardedMap<number>();
  /** Ids handed out so far (0 is never one); peers are found by id through the table's store. */
  private nextId = 1;
  private addresses = 0;
  /** Indexed addresses in IPv4-mapped IPv6 form: none unless the socket is dual-stack. */
  private mapped = 0;
  /** Released ids, reused oldest first and only after many others were released (see allocateId). */
  private readonly freeIds = new IntDeque();

  /** Indexed transport addresses (one per peer). */
  get size(): number {
    return this.addresses;
  }
  /** Distinct host addresses with at least one peer. */
  get hostCount(): number {
    return this.byAddress.size;
  }
  /** Distinct IPv6 /64 groups with at least one peer. */
  get v6GroupCount(): number {
    return this.byV6Group.size;
  }

  /**
   * A route id for a new peer. Ids are reused so the array stays dense, but only after
   * REUSE_DELAY other ids were released: a datagram or activity report still naming an old id
   * (handed up in the same batch as the removal) can never reach the id's next owner.
   */
  allocateId(): number {
    if (this.freeIds.length > REUSE_DELAY) return this.freeIds.shift()!;
    return this.nextId++;
  }

  releaseId(id: number): void {
    this.freeIds.push(id);
  }

  at(address: string, port: number): Peer | undefined {
    const entry = this.byAddress.get(address);
    if (entry === undefined) return undefined;
    if (entry instanceof Map) return entry.get(port);
    return entry.endpoint.port === port ? entry : undefined;
  }

  /** Any peer at this address (host, in the form the socket reports it), on any port. */
  hasAddress(address: string): boolean {
    return this.byAddress.has(address);
  }

  /** Peers on this host (as hostOf gives it), across all sessions. */
  countOnHost(host: string): number {
    let n = sizeOf(this.byAddress.get(host));
    if (this.mapped > 0 && isIpv4(host)) n += sizeOf(this.byAddress.get(`${MAPPED_PREFIX}${host}`));
    return n;
  }

  /** Peers whose address is in this source group (sourceGroup: an IPv4 host, or an IPv6 /64). */
  countInGroup(group: string): number {
    return isIpv4(group) ? this.countOnHost(group) : (this.byV6Group.get(group) ?? 0);
  }

  /** The peer on this host if it is the only one. */
  soleOnHost(host: string): Peer | undefined {
    if (this.countOnHost(host) !== 1) return undefined;
    const entry = this.byAddress.get(host) ?? this.byAddress.get(`${MAPPED_PREFIX}${host}`);
    return entry instanceof Map ? entry.values().next().value : entry;
  }

  add(peer: Peer): void {
    const { address, port } = peer.endpoint;
    const entry = this.byAddress.get(address);
    if (entry === undefined) {
      this.byAddress.set(address, peer);
      this.countAddress(address, 1);
    } else if (entry instanceof Map) {
      if (!entry.has(port)) this.countAddress(address, 1);
      entry.set(port, peer);
    } else if (entry.endpoint.port === port) {
      this.byAddress.set(address, peer);
    } else {
      this.byAddress.set(address, new Map([[entry.endpoint.port, entry], [port, peer]]));
      this.countAddress(address, 1);
    }
  }

  remove(peer: Peer): void {
    const { address, port } = peer.endpoint;
    const entry = this.byAddress.get(address);
    if (entry === peer) {
      this.byAddress.delete(address);
      this.countAddress(address, -1);
    } else if (entry instanceof Map && entry.get(port) === peer) {
      entry.delete(port);
      this.countAddress(address, -1);
      if (entry.size === 1) this.byAddress.set(address, entry.values().next().value!);
    }
  }

  /** One transport address more or less: the total, and its /64 when it is IPv6 (not IPv4-mapped). */
  private countAddress(address: string, delta: 1 | -1): void {
    this.addresses += delta;
    if (isIpv4(address)) return;
    if (address.startsWith(MAPPED_PREFIX)) this.mapped += delta;
    const group = sourceGroup(address);
    if (isIpv4(group)) return;
    const n = (this.byV6Group.get(group) ?? 0) + delta;
    if (n === 0) this.byV6Group.delete(group);
    else this.byV6Group.set(group, n);
  }
}

function sizeOf(entry: AddressEntry | undefined): number {
  return entry === undefined ? 0 : entry instanceof Map ? entry.size : 1;
}

function isIpv4(host: string): boolean {
  return !host.includes(":");
}
