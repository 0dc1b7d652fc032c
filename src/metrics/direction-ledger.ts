import type { DataPlane, DataPlaneCounters } from "../dataplane/types.ts";
import type { Endpoint } from "../net/address.ts";

/** Which peer of a session sent the forwarded datagrams: `first` is the peer that created it. */
export type Direction = "first_to_second" | "second_to_first";
export const DIRECTIONS: readonly Direction[] = ["first_to_second", "second_to_first"];

export interface Totals {
  packets: number;
  bytes: number;
}

/**
 * A data plane wrapper that keeps forwarding totals per direction. The planes count per route and
 * reset a route's counters when it is replaced or deleted, so the ledger banks a route's counts just
 * before that happens. Only route changes and scrapes pass through here, never forwarded datagrams.
 */
export class DirectionLedger implements DataPlane {
  /**
   * Direction of each live route, indexed by route id (ids are small dense integers). Nothing else per route: at 100k sessions every byte here counts.
   * The session table never installs a route over another live route's source (an address leaves
   * its old peer, which is unrouted, before it is routed again), so banking by id is enough.
   */
  private readonly live: (Direction | undefined)[] = [];
  private readonly banked: Record<Direction, Totals> = {
    first_to_second: { packets: 0, bytes: 0 },
    second_to_first: { packets: 0, bytes: 0 },
  };
  /** Tells which direction a route id (a peer id) forwards; set once the session table exists. */
  directionOf: (routeId: number) => Direction | undefined = () => undefined;

  constructor(readonly inner: DataPlane) {}

  get kind() {
    return this.inner.kind;
  }
  get local(): Endpoint {
    return this.inner.local;
  }
  start(onControl: Parameters<DataPlane["start"]>[0]): Promise<void> {
    return this.inner.start(onControl);
  }
  send(data: Uint8Array, to: Endpoint): void {
    this.inner.send(data, to);
  }

  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit = 0): void {
    this.bank(id);
    this.inner.setRoute(id, from, to, observeBudget, unansweredLimit);
    this.live[id] = this.directionOf(id) ?? "first_to_second";
  }

  deleteRoute(id: number): void {
    this.bank(id);
    this.inner.deleteRoute(id);
  }

  drainActivity(): number[] {
    return this.inner.drainActivity();
  }
  routeCounters(id: number): Totals | undefined {
    return this.inner.routeCounters(id);
  }
  counters(): DataPlaneCounters {
    return this.inner.counters();
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  /** Datagrams and bytes forwarded by routes so far, per direction. */
  totals(): Record<Direction, Totals> {
    const out = {
      first_to_second: { ...this.banked.first_to_second },
      second_to_first: { ...this.banked.second_to_first },
    };
    for (let id = 0; id < this.live.length; id++) {
      const direction = this.live[id];
      if (direction === undefined) continue;
      const c = this.inner.routeCounters(id);
      if (!c) continue;
      out[direction].packets += c.packets;
      out[direction].bytes += c.bytes;
    }
    return out;
  }

  private bank(id: number): void {
    const direction = this.live[id];
    if (!direction) return;
    const c = this.inner.routeCounters(id);
    if (c) {
      this.banked[direction].packets += c.packets;
      this.banked[direction].bytes += c.bytes;
    }
    this.live[id] = undefined;
  }
}
