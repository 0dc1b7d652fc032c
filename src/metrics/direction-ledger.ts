import type { Direction } from "../sessions/types.ts";

export type { Direction };
export const DIRECTIONS: readonly Direction[] = ["first_to_second", "second_to_first"];

export interface Totals {
  packets: number;
  bytes: number;
}

/**
 * Forwarding totals per direction. The planes count per route and reset a route's counters when
 * it is replaced or deleted, so the relay tells the ledger about each route change just before it
 * makes it, and the ledger banks the route's counts. Never on the per-datagram path.
 */
export class DirectionLedger {
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

  /** `countersOf` reads a live route's counts since it was installed. */
  constructor(private readonly countersOf: (routeId: number) => Totals | undefined) {}

  /** Route `id` is about to be installed or replaced, carrying `direction`. */
  routing(id: number, direction: Direction): void {
    this.bank(id);
    this.live[id] = direction;
  }

  /** Route `id` is about to be deleted. */
  unrouting(id: number): void {
    this.bank(id);
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
      const c = this.countersOf(id);
      if (!c) continue;
      out[direction].packets += c.packets;
      out[direction].bytes += c.bytes;
    }
    return out;
  }

  private bank(id: number): void {
    const direction = this.live[id];
    if (!direction) return;
    const c = this.countersOf(id);
    if (c) {
      this.banked[direction].packets += c.packets;
      this.banked[direction].bytes += c.bytes;
    }
    this.live[id] = undefined;
  }
}
