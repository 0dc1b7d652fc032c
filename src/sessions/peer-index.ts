import { hostOf } from "./address.ts";
import type { Peer } from "./types.ts";

/**
 * Where to find a peer: by transport address, by route id, by host. Built to stay small at
 * 100k sessions: no per-peer key strings (address -> port -> peer), and a host with one peer
 * (the common case) maps straight to it instead of to a set.
 */
const REUSE_DELAY = 4096;

export class PeerIndex {
  private readonly byAddress = new Map<string, Map<number, Peer>>();
  /** Peers by id (= data-plane route id): a dense array is a tenth of a Map's size per entry. */
  private readonly byId: (Peer | undefined)[] = [undefined];
  private ids = 0;
  /** Released ids, reused oldest first and only after many others were released (see allocateId). */
  private readonly freeIds: number[] = [];
  private freeHead = 0;
  private readonly byHost = new Map<string, Peer | Set<Peer>>();
  private addresses = 0;

  /** Indexed transport addresses (one per peer). */
  get size(): number {
    return this.addresses;
  }
  get idCount(): number {
    return this.ids;
  }

  /**
   * A route id for a new peer. Ids are reused so the array stays dense, but only after
   * REUSE_DELAY other ids were released: a datagram or activity report still naming an old id
   * (handed up in the same batch as the removal) can never reach the id's next owner.
   */
  allocateId(): number {
    if (this.freeIds.length - this.freeHead > REUSE_DELAY) {
      const id = this.freeIds[this.freeHead++]!;
      if (this.freeHead > 65_536) {
        this.freeIds.splice(0, this.freeHead);
        this.freeHead = 0;
      }
      return id;
    }
    this.byId.push(undefined);
    return this.byId.length - 1;
  }

  releaseId(id: number): void {
    this.freeIds.push(id);
  }
  get hostCount(): number {
    return this.byHost.size;
  }

  at(address: string, port: number): Peer | undefined {
    return this.byAddress.get(address)?.get(port);
  }

  byRoute(id: number): Peer | undefined {
    return id > 0 ? this.byId[id] : undefined;
  }

  /** Peers on this host, across all sessions. */
  countOnHost(host: string): number {
    const entry = this.byHost.get(host);
    return entry === undefined ? 0 : entry instanceof Set ? entry.size : 1;
  }

  /** The peer on this host if it is the only one. */
  soleOnHost(host: string): Peer | undefined {
    const entry = this.byHost.get(host);
    return entry === undefined || entry instanceof Set ? undefined : entry;
  }

  add(peer: Peer): void {
    const { address, port } = peer.endpoint;
    let ports = this.byAddress.get(address);
    if (!ports) this.byAddress.set(address, (ports = new Map()));
    if (!ports.has(port)) this.addresses++;
    ports.set(port, peer);
    if (this.byId[peer.id] === undefined) this.ids++;
    this.byId[peer.id] = peer;
    const host = hostOf(address);
    const entry = this.byHost.get(host);
    if (entry === undefined) this.byHost.set(host, peer);
    else if (entry instanceof Set) entry.add(peer);
    else if (entry !== peer) this.byHost.set(host, new Set([entry, peer]));
  }

  remove(peer: Peer): void {
    const { address, port } = peer.endpoint;
    const ports = this.byAddress.get(address);
    if (ports?.get(port) === peer) {
      ports.delete(port);
      this.addresses--;
      if (ports.size === 0) this.byAddress.delete(address);
    }
    if (this.byId[peer.id] === peer) {
      this.byId[peer.id] = undefined;
      this.ids--;
    }
    const host = hostOf(address);
    const entry = this.byHost.get(host);
    if (entry === peer) this.byHost.delete(host);
    else if (entry instanceof Set) {
      entry.delete(peer);
      if (entry.size === 1) this.byHost.set(host, entry.values().next().value!);
    }
  }
}
