/**
 * The same seeded random traffic through both data planes, with the same routes, must give the
 * same deliveries: per destination and per flow, the same datagrams in the same order; the same
 * control datagrams; the same counters. In CI a missing native plane fails (planesUnderTest);
 * elsewhere, with one plane there is nothing to compare and the suite is skipped, visibly.
 */
import { describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlaneKind, InboundDatagram, RouteCounters } from "../../src/dataplane/types.ts";
import { planesUnderTest } from "../utils.ts";
import { planeOptions, udpPeer, until, type TestPeer } from "./native-helpers.ts";
import { mulberry32 } from "../support/prng.ts";

const planes = planesUnderTest();
if (planes.length < 2) console.warn(`differential test skipped: only the ${planes.join(", ")} plane is available`);


const PEERS = 6;
const MAX = 1200;
/** [from, to, observeBudget]: a pair, a one-way route, an observed route; peer 4 has none. */
const ROUTES: Array<[number, number, number]> = [
  [0, 1, 0],
  [1, 0, 2],
  [2, 3, 0],
  [5, 2, 3],
];

interface Planned {
  from: number;
  data: Uint8Array;
}

/** Random datagrams, each tagged at its end with sender and sequence number. */
function plan(seed: number, count: number): Planned[] {
  const rand = mulberry32(seed);
  const out: Planned[] = [];
  const seq = new Array(PEERS).fill(0);
  for (let i = 0; i < count; i++) {
    const from = Math.floor(rand() * PEERS);
    const kind = rand();
    const length = kind < 0.05 ? MAX + 1 + Math.floor(rand() * 200) : 8 + Math.floor(rand() * (MAX - 8));
    const data = new Uint8Array(length);
    for (let k = 0; k < length; k++) data[k] = Math.floor(rand() * 256);
    if (kind >= 0.05 && kind < 0.15) data.set([0x52, 0x45, 0x47, 0x3a]); // "REG:"
    else if (kind < 0.5) data[0] |= 0x80; // QUIC long header
    else data[0] &= 0x7f;
    const n = seq[from]++;
    data.set([from, n >> 8, n & 0xff], length - 3);
    out.push({ from, data });
  }
  return out;
}

interface Outcome {
  /** destination index -> sender index -> payloads (hex) in arrival order */
  delivered: Record<number, Record<number, string[]>>;
  control: Array<{ from: number; routeId: number; observed: boolean; data: string }>;
  counters: Record<string, number>;
  routeCounters: Array<RouteCounters | undefined>;
}

const hex = (d: Uint8Array): string => Buffer.from(d).toString("hex");
const END = "REG:end-of-differential-traffic";
const isEnd = (d: Uint8Array): boolean => d.length === END.length && new TextDecoder().decode(d) === END;

async function run(kind: DataPlaneKind, host: string, traffic: Planned[], workers = 1): Promise<Outcome> {
  const { plane } = createDataPlane(kind, planeOptions({ host, maxDatagramSize: MAX, workers }));
  const control: InboundDatagram[] = [];
  await plane.start((batch) => control.push(...batch));
  const peers: TestPeer[] = [];
  try {
    for (let i = 0; i < PEERS; i++) peers.push(await udpPeer(`127.0.0.${i + 2}`));
    const seen = (a: string) => (host === "::" ? `::ffff:${a}` : a);
    const indexOf = (address: string, port: number) => peers.findIndex((p) => seen(p.address) === address && p.port === port);
    ROUTES.forEach(([from, to, budget], id) =>
      plane.setRoute(
        id,
        { address: seen(peers[from]!.address), port: peers[from]!.port },
        { address: seen(peers[to]!.address), port: peers[to]!.port },
        budget,
      ),
    );
    /** Every datagram sent so far was handled by the plane, and everything it forwarded arrived. */
    const settled = (sent: number) => () => {
      const c = plane.counters();
      const handled = c.forwardedPackets + c.oversize + control.filter((d) => !d.observed).length;
      const received = peers.reduce((s, p) => s + p.received.length, 0);
      return handled === sent && received === c.forwardedPackets;
    };
    for (let i = 0; i < traffic.length; i++) {
      const t = traffic[i]!;
      peers[t.from]!.send(t.data, plane.local.port, "127.0.0.1");
      // Flow control: loopback must not drop, or the comparison means nothing.
      if (i % 25 === 24) await until(settled(i + 1), 10_000, `${kind} plane to handle ${i + 1} datagrams`);
    }
    await until(settled(traffic.length), 10_000, `${kind} plane to handle all traffic`);
    // A REG from every peer goes up behind whatever that peer's datagrams caused (observed copies
    // included), so the control list is complete once all of them are in.
    for (const p of peers) p.send(END, plane.local.port, "127.0.0.1");
    await until(() => control.filter((d) => isEnd(d.data)).length === PEERS, 10_000, `${kind} plane to hand up the end markers`);
    const delivered: Outcome["delivered"] = {};
    peers.forEach((p, to) => {
      for (const r of p.received) {
        const from = r.data[r.data.length - 3]!;
        ((delivered[to] ??= {})[from] ??= []).push(hex(r.data));
      }
    });
    const { controlPackets: _ignored, ...counters } = plane.counters();
    return {
      delivered,
      control: control
        .filter((d) => !isEnd(d.data))
        .map((d) => ({ from: indexOf(d.address, d.port), routeId: d.routeId, observed: d.observed, data: hex(d.data) })),
      counters,
      routeCounters: ROUTES.map((_, id) => plane.routeCounters(id)),
    };
  } finally {
    for (const p of peers) p.close();
    await plane.close();
  }
}

describe.skipIf(planes.length < 2).each(["127.0.0.1", "::"])("differential: planes agree (host %s)", (host) => {
  it.each([1, 2, 3])("seed %d", async (seed) => {
    const traffic = plan(seed * 7919 + (host === "::" ? 1 : 0), 400);
    const outcomes = new Map<DataPlaneKind | "native-2-workers", Outcome>();
    for (const kind of planes) outcomes.set(kind, await run(kind, host, traffic));
    // Two forwarding threads (SO_REUSEPORT) must not change what is delivered either.
    outcomes.set("native-2-workers", await run("native", host, traffic, 2));
    expect([...outcomes.keys()].sort()).toEqual(["native", "native-2-workers", "ts"]);
    const reference = outcomes.get("ts")!;
    // The traffic exercises every rule: control, observation, oversize, forwarding.
    expect(reference.control.some((c) => c.observed)).toBe(true);
    expect(reference.control.some((c) => c.routeId === -1)).toBe(true);
    expect(reference.counters.oversize).toBeGreaterThan(0);
    expect(Object.keys(reference.delivered).length).toBe(4);
    for (const [kind, outcome] of outcomes) {
      if (kind === "ts") continue;
      expect(outcome.counters).toEqual(reference.counters);
      expect(outcome.routeCounters).toEqual(reference.routeCounters);
      expect(outcome.delivered).toEqual(reference.delivered);
      // Control datagrams: the same per source, in order (sources interleave differently across planes' batching).
      const bySource = (o: Outcome) => Object.groupBy(o.control, (c) => String(c.from));
      expect(bySource(outcome)).toEqual(bySource(reference));
    }
  });
});
