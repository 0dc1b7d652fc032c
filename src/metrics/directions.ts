import type { DataPlaneCounters } from "../dataplane/types.ts";
import type { Direction } from "../sessions/types.ts";

export type { Direction };
export const DIRECTIONS: readonly Direction[] = ["first_to_second", "second_to_first"];

export interface Totals {
  packets: number;
  bytes: number;
}

/**
 * Forwarding totals per direction from a data plane's counters: the planes count what every
 * route forwards, and separately what the second-to-first routes forward, so the split costs
 * nothing per route and a scrape reads it in O(1), whatever the number of sessions.
 */
export function planeDirections(c: DataPlaneCounters): Record<Direction, Totals> {
  return {
    first_to_second: { packets: c.forwardedPackets - c.secondToFirstPackets, bytes: c.forwardedBytes - c.secondToFirstBytes },
    second_to_first: { packets: c.secondToFirstPackets, bytes: c.secondToFirstBytes },
  };
}

/** `a` plus `b`, direction by direction. */
export function addDirections(a: Record<Direction, Totals>, b: Record<Direction, Totals>): Record<Direction, Totals> {
  const sum = (x: Totals, y: Totals): Totals => ({ packets: x.packets + y.packets, bytes: x.bytes + y.bytes });
  return { first_to_second: sum(a.first_to_second, b.first_to_second), second_to_first: sum(a.second_to_first, b.second_to_first) };
}
