/**
 * A compact session keeps its times in 4 bytes each: its last activity as whole milliseconds
 * modulo 2^32, read back against the present, and each peer's as a gap before it. These check that
 * they come back as an expanded session keeps them (the expanded table is the oracle) where the
 * packing has edges: a clock far past 2^32 ms, times before the clock's origin (sessions restored
 * from a state file just after start), a peer active after its session's time, a peer quiet for
 * longer than a gap can say, and route traffic that moves the session's time under the other
 * peer's gap.
 */
import { describe, expect, it } from "bun:test";

import type { SessionSnapshot } from "../../src/sessions/table.ts";
import { setup } from "./fixtures.ts";

const DAY = 86_400_000;

/** Two tables driven alike: one packs settled sessions at once, the other never does. */
function pair(start: number) {
  const limits = { timeoutMs: 30 * DAY, probeTimeoutMs: 10_000 };
  const packed = setup({ ...limits, compactAfterMs: 0 });
  const expanded = setup({ ...limits, compactAfterMs: -1 });
  for (const t of [packed, expanded]) t.clock.t = start;
  const both = (f: (t: typeof packed) => void) => {
    f(packed);
    f(expanded);
    packed.table.compact();
  };
  return { packed, expanded, both };
}

function routeIdOf(t: ReturnType<typeof setup>, from: string): number {
  for (const [id, r] of t.sink.routes) if (r.from === from) return id;
  throw new Error(`no route from ${from}`);
}

describe("compact session times", () => {
  it("come back exact with the clock far past 2^32 ms, through route traffic of either peer", () => {
    const { packed, expanded, both } = pair(3 * 2 ** 32 + 12_345);
    both((t) => t.reg("s-far", "10.0.0.1:1000"));
    both((t) => t.clock.advance(250));
    both((t) => t.reg("s-far", "10.0.0.2:2000"));
    both((t) => t.clock.advance(90_000));
    expect(packed.table.compactSessionCount).toBe(1);
    expect(packed.table.snapshot("s-far")).toEqual(expanded.table.snapshot("s-far"));
    both((t) => t.table.activity([routeIdOf(t, "10.0.0.2:2000")]));
    both((t) => t.clock.advance(3 * DAY + 17));
    both((t) => t.table.activity([routeIdOf(t, "10.0.0.1:1000")]));
    both((t) => t.clock.advance(4321));
    expect(packed.table.compactSessionCount).toBe(1);
    const want = expanded.table.snapshot("s-far")!;
    expect(want.peers.map((p) => p.idleMs)).toEqual([4321, 3 * DAY + 17 + 4321]);
    expect(packed.table.snapshot("s-far")).toEqual(want);
  });

  it("come back exact for sessions restored idle since before the clock's origin, a peer newer than its session included", () => {
    const { packed, expanded, both } = pair(1_000);
    const saved: SessionSnapshot = {
      id: "s-old",
      idleMs: 250_000,
      peers: [
        { address: "10.0.0.3", port: 3000, idleMs: 260_000, proven: false },
        { address: "10.0.0.4", port: 4000, idleMs: 240_000, proven: true },
      ],
    };
    both((t) => expect(t.table.restoreSessions([saved])).toBe(1));
    expect(packed.table.compactSessionCount).toBe(1);
    both((t) => t.clock.advance(5));
    expect(packed.table.snapshot("s-old")).toEqual(expanded.table.snapshot("s-old"));
    expect(packed.table.snapshot("s-old")!.peers.map((p) => p.idleMs)).toEqual([260_005, 240_005]);
  });

  it("read a peer quiet for longer than a gap holds as quiet for about 24.8 days, and leave its partner exact", () => {
    const { packed } = pair(40 * DAY);
    const saved: SessionSnapshot = {
      id: "s-quiet",
      idleMs: 1_000,
      peers: [
        { address: "10.0.0.5", port: 5000, idleMs: 1_000 },
        { address: "10.0.0.6", port: 6000, idleMs: 39 * DAY },
      ],
    };
    expect(packed.table.restoreSessions([saved])).toBe(1);
    expect(packed.table.compactSessionCount).toBe(1);
    const [active, quiet] = packed.table.snapshot("s-quiet")!.peers;
    expect(active!.idleMs).toBe(1_000);
    expect(quiet!.idleMs).toBe(1_000 + 0x7fff_ffff);
  });
});
