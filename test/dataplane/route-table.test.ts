/**
 * RouteTable (the TS plane's routes in columns) against a plain model of Maps and objects, through
 * its interface only: random adds (as setRoute makes them: the route with the id and the one from
 * the source go first), removes, arrivals (the route found, the route back answered), carries
 * (forwarded where to, dropped over the unanswered limit, copied up for observation), counters and
 * activity. Ids dense and odd (negative, fractional, past 2^31); sources in IPv4, IPv4-mapped and
 * IPv6 form, which this layer keeps apart as the strings they are; more routes than one chunk; more
 * sources than the recent-sources cache holds.
 */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { RouteTable } from "../../src/dataplane/route-table.ts";
import { emptyCounters, MAX_OBSERVE_BUDGET } from "../../src/dataplane/types.ts";
import type { Endpoint } from "../../src/net/address.ts";

interface ModelRoute {
  id: number;
  slot: number;
  from: Endpoint;
  to: Endpoint;
  limit: number;
  /** Bytes forwarded since `to` last sent from there (with a route back). */
  unanswered: number;
  packets: number;
  bytes: number;
  observe: number;
  cidLength: number;
  lastDcid: string | undefined;
  secondToFirst: boolean;
  forwardedSinceDrain: boolean;
}

interface Datagram {
  size: number;
  long: boolean;
  dcid: number;
}

const key = (e: Endpoint) => `${e.port} ${e.address}`;
const numeric = (ids: number[]) => [...ids].sort((a, b) => a - b);
/** Two DCIDs that differ only in their last byte, and a third. */
const DCIDS = [
  [1, 2, 3, 4, 5, 6, 7, 8],
  [1, 2, 3, 4, 5, 6, 7, 9],
  [9, 9, 9, 9, 9, 9, 9, 9],
];

function datagram(d: Datagram): Uint8Array {
  const data = new Uint8Array(d.size);
  if (d.size > 0) data[0] = d.long ? 0xc3 : 0x43;
  for (let i = 1; i < Math.min(d.size, 9); i++) data[i] = DCIDS[d.dcid]![i - 1]!;
  return data;
}

/** Paths the random operations must reach, counted over all runs: the first test asserts each was reached. */
const reached = { drops: 0, passedOnlyAnswered: 0, longCopies: 0, dcidCopies: 0, oddIds: 0, drained: 0, replaced: 0 };

class Model {
  readonly byId = new Map<number, ModelRoute>();
  readonly bySource = new Map<string, ModelRoute>();
  readonly slots = new Set<number>();
  readonly stats = emptyCounters();
  /** The most routes at once: freed slots are reused, so no slot is past it. */
  peak = 0;

  add(r: ModelRoute): void {
    this.byId.set(r.id, r);
    this.bySource.set(key(r.from), r);
    this.slots.add(r.slot);
    this.peak = Math.max(this.peak, this.byId.size);
  }

  remove(r: ModelRoute): void {
    this.byId.delete(r.id);
    this.bySource.delete(key(r.from));
    this.slots.delete(r.slot);
  }

  /** The route from `r`'s destination back to its source, if there is one. */
  back(r: ModelRoute): ModelRoute | undefined {
    const b = this.bySource.get(key(r.to));
    return b !== undefined && key(b.to) === key(r.from) ? b : undefined;
  }

  /** Anything from a route's source answers the route back, whether or not it is forwarded. */
  arrive(from: Endpoint): ModelRoute | undefined {
    const r = this.bySource.get(key(from));
    const b = r && this.back(r);
    if (b !== undefined) b.unanswered = 0;
    return r;
  }

  carry(r: ModelRoute, data: Uint8Array): { forwarded: boolean; copy: boolean } {
    if (r.limit > 0 && r.unanswered + data.length > r.limit) {
      this.stats.unansweredDrops++;
      reached.drops++;
      return { forwarded: false, copy: false };
    }
    if (r.limit > 0) r.unanswered += data.length;
    // Over the limit but for an answer since the route was added.
    if (r.limit > 0 && r.bytes + data.length > r.limit) reached.passedOnlyAnswered++;
    r.packets++;
    r.bytes += data.length;
    r.forwardedSinceDrain = true;
    this.stats.forwardedPackets++;
    this.stats.forwardedBytes += data.length;
    if (r.secondToFirst) {
      this.stats.secondToFirstPackets++;
      this.stats.secondToFirstBytes += data.length;
    }
    return { forwarded: true, copy: this.takesCopy(r, data) };
  }

  /** A long header, or a short header with a new DCID, while the budget lasts (the DCID is watched only then). */
  private takesCopy(r: ModelRoute, data: Uint8Array): boolean {
    if (r.observe <= 0) return false;
    if (data.length > 0 && (data[0]! & 0x80) !== 0) reached.longCopies++;
    else {
      if (r.cidLength === 0 || data.length < 1 + r.cidLength) return false;
      const dcid = data.subarray(1, 1 + r.cidLength).join(",");
      if (dcid === r.lastDcid) return false;
      r.lastDcid = dcid;
      reached.dcidCopies++;
    }
    r.observe--;
    return true;
  }

  drain(): number[] {
    const ids = [...this.byId.values()].filter((r) => r.forwardedSinceDrain).map((r) => r.id);
    for (const r of this.byId.values()) r.forwardedSinceDrain = false;
    if (ids.length > 0) reached.drained++;
    return ids;
  }
}

/** A RouteTable and the model, driven together; every step compares what the table reports. */
class Harness {
  readonly stats = emptyCounters();
  readonly table = new RouteTable(this.stats);
  readonly model = new Model();

  /** `ids` and `sources`: what check() also expects to find nothing under when no route has them. */
  constructor(
    private readonly ids: number[] = [],
    private readonly sources: Endpoint[] = [],
  ) {}

  add(id: number, from: Endpoint, to: Endpoint, budget = 0, limit = 0, cidLength = 0, secondToFirst = false): void {
    const sameId = this.model.byId.get(id);
    expect(this.table.slotOf(id)).toBe(sameId?.slot ?? -1);
    if (sameId !== undefined) this.remove(sameId);
    const sameSource = this.model.bySource.get(key(from));
    expect(this.table.find(from.address, from.port)).toBe(sameSource?.slot ?? -1);
    if (sameSource !== undefined) this.remove(sameSource);
    if (sameId !== undefined || sameSource !== undefined) reached.replaced++;
    // The table keeps the addresses and ports, not the objects: changing them later changes nothing.
    const [f, t] = [{ ...from }, { ...to }];
    const slot = this.table.add(id, f, t, budget, limit, cidLength, secondToFirst);
    f.port = t.port = 7;
    f.address = t.address = "mutated";
    expect(Number.isInteger(slot) && slot >= 0 && !this.model.slots.has(slot)).toBe(true);
    const observe = Math.min(MAX_OBSERVE_BUDGET, Math.max(0, Math.floor(budget)));
    this.model.add({ id, slot, from, to, limit, unanswered: 0, packets: 0, bytes: 0, observe, cidLength, lastDcid: undefined, secondToFirst, forwardedSinceDrain: false });
    expect(slot).toBeLessThan(this.model.peak);
    if (!Number.isInteger(id) || id < 0 || id > 0x7fff_ffff) reached.oddIds++;
  }

  remove(r: ModelRoute): void {
    this.table.remove(r.slot);
    this.model.remove(r);
    expect(this.table.slotOf(r.id)).toBe(-1);
    expect(this.table.find(r.from.address, r.from.port)).toBe(-1);
  }

  /** A datagram from `from`: looked up (answering the route back), and carried when `carried` (not a REG or relay line). */
  arrive(from: Endpoint, d: Datagram, carried = true): void {
    const r = this.model.arrive(from);
    expect(this.table.arrive(from.address, from.port)).toBe(r?.slot ?? -1);
    if (r !== undefined && carried) this.carry(r, d);
  }

  /** Carried without arriving, as the plane's hand-over does: no answer. */
  carry(r: ModelRoute, d: Datagram): void {
    const data = datagram(d);
    const queue: (Uint8Array | number | string)[] = ["queued before"];
    const copy = this.table.carry(r.slot, data, queue);
    const want = this.model.carry(r, data);
    expect(copy).toBe(want.copy);
    expect(queue.length).toBe(want.forwarded ? 4 : 1);
    if (want.forwarded) expect([queue[1] === data, queue[2], queue[3]]).toEqual([true, r.to.port, r.to.address]);
    expect(this.table.counters(r.slot)).toEqual({ observeLeft: r.observe });
    expect(this.stats).toEqual(this.model.stats);
  }

  drain(): void {
    expect(numeric(this.table.drainActivity())).toEqual(numeric(this.model.drain()));
  }

  check(): void {
    const routes = [...this.model.byId.values()];
    const t = this.table;
    const seen = routes.map((r) => [t.idOf(r.slot), t.slotOf(r.id), t.find(r.from.address, r.from.port), t.fromAddress(r.slot), t.fromPort(r.slot), t.counters(r.slot)]);
    expect(seen).toEqual(routes.map((r) => [r.id, r.slot, r.slot, r.from.address, r.from.port, { observeLeft: r.observe }]));
    const strayIds = this.ids.filter((id) => !this.model.byId.has(id) && t.slotOf(id) !== -1);
    const straySources = this.sources.filter((s) => !this.model.bySource.has(key(s)) && t.find(s.address, s.port) !== -1);
    expect({ strayIds, straySources }).toEqual({ strayIds: [], straySources: [] });
    expect(this.stats).toEqual(this.model.stats);
  }
}

type Op =
  | { kind: "add"; id: number; from: number; to: number; budget: number; limit: number; cidLength: number; secondToFirst: boolean }
  | { kind: "remove"; pick: number }
  | { kind: "arrive"; from: number; d: Datagram; carried: boolean }
  | { kind: "carry"; pick: number; d: Datagram }
  | { kind: "drain" };

const datagramArb: fc.Arbitrary<Datagram> = fc.record({
  size: fc.oneof(fc.constantFrom(0, 1, 8, 9, 10), fc.integer({ min: 0, max: 1400 })),
  long: fc.boolean(),
  dcid: fc.nat(DCIDS.length - 1),
});

/** `endpoint` picks a route's source (an index of the endpoints), `source` a datagram's (endpoints, then strangers). */
function opArb(endpoint: fc.Arbitrary<number>, endpoints: number, source: fc.Arbitrary<number>, id: fc.Arbitrary<number>): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("add" as const),
        id,
        from: endpoint,
        // 0: the endpoint paired with `from`, else that far on: never `from` itself.
        to: fc.oneof(fc.constant(0), fc.nat(endpoints - 1)),
        budget: fc.constantFrom(0, 1, 2, 5, 2.7, -3, 1e6),
        limit: fc.constantFrom(0, 0, 100, 700, 2000),
        cidLength: fc.constantFrom(0, 8),
        secondToFirst: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }) },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant("arrive" as const), from: source, d: datagramArb, carried: fc.oneof(fc.constant(true), fc.boolean()) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("carry" as const), pick: fc.nat(), d: datagramArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("drain" as const) }) },
  );
}

/** `partner(i)`: the endpoint a route from endpoint i goes back to when the op's `to` is 0. */
function apply(h: Harness, op: Op, endpoints: Endpoint[], sources: Endpoint[], partner: (i: number) => number): void {
  const live = [...h.model.byId.values()];
  if (op.kind === "add") {
    const to = op.to === 0 ? partner(op.from) : (op.from + op.to) % endpoints.length;
    h.add(op.id, endpoints[op.from]!, endpoints[to]!, op.budget, op.limit, op.cidLength, op.secondToFirst);
  } else if (op.kind === "remove") {
    if (live.length > 0) h.remove(live[op.pick % live.length]!);
  } else if (op.kind === "arrive") h.arrive(sources[op.from]!, op.d, op.carried);
  else if (op.kind === "carry") {
    if (live.length > 0) h.carry(live[op.pick % live.length]!, op.d);
  } else h.drain();
}

const ADDRESSES = ["192.0.2.1", "::ffff:192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"];
const PORTS = [443, 4433, 65535];
const ENDPOINTS = ADDRESSES.flatMap((address) => PORTS.map((port) => ({ address, port })));
/** Sources no route is from: unknown addresses, a known address at another port. */
const STRANGERS = [
  { address: "198.51.100.7", port: 443 },
  { address: "::ffff:198.51.100.7", port: 443 },
  { address: "192.0.2.1", port: 1 },
];
const ODD_IDS = [-1, -7, 0.5, 3.25, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER, 0x7fff_ffff, 4096, 123_456];
const idArb = fc.oneof({ weight: 3, arbitrary: fc.nat(7) }, { weight: 1, arbitrary: fc.constantFrom(...ODD_IDS) });

describe("RouteTable against a model", () => {
  it("finds, forwards, limits, copies up and reports routes as the model does, for any operations", () => {
    const sources = [...ENDPOINTS, ...STRANGERS];
    const ids = [0, 1, 2, 3, 4, 5, 6, 7, ...ODD_IDS];
    // Mostly the first four endpoints (two pairs), so routes meet their routes back and their answers.
    const ops = opArb(
      fc.oneof({ weight: 3, arbitrary: fc.nat(3) }, { weight: 1, arbitrary: fc.nat(ENDPOINTS.length - 1) }),
      ENDPOINTS.length,
      fc.oneof({ weight: 3, arbitrary: fc.nat(3) }, { weight: 1, arbitrary: fc.nat(sources.length - 1) }),
      idArb,
    );
    fc.assert(
      fc.property(fc.array(ops, { minLength: 10, maxLength: 300, size: "max" }), (run) => {
        const h = new Harness(ids, sources);
        for (const op of run) {
          apply(h, op, ENDPOINTS, sources, (i) => (i ^ 1) % ENDPOINTS.length);
          h.check();
        }
        h.drain();
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
    for (const [path, n] of Object.entries(reached)) expect({ path, n: n > 0 }).toEqual({ path, n: true });
    if (process.env.PROPERTY_VERBOSE) console.log(reached);
  });

  it("does the same with more routes than a chunk holds, pairs split between chunks", () => {
    // Endpoints i and i + pairs are partners: routes from the first `pairs` take the first slots, their routes back the next.
    const a = (i: number) => ({ address: i % 2 ? `10.0.${i >> 8}.${i & 255}` : `::ffff:10.1.${i >> 8}.${i & 255}`, port: 1000 + (i % 3) });
    const b = (i: number) => ({ address: `2001:db8::${i.toString(16)}`, port: 443 });
    /** Route i's id: i, but for every 101st an odd one. */
    const idOf = (pairs: number, i: number) => (i % 101 === pairs % 101 ? [-(i + 1), i + 0.5, 2 ** 32 + i][(i + pairs) % 3]! : i);
    /** Routes near the first chunk's end and their partners. */
    const near = (pairs: number) => [0, 1, 4095 - pairs, 4096 - pairs, pairs - 1].flatMap((i) => [i, i + pairs]);
    const runArb = fc.integer({ min: 2049, max: 2400 }).chain((pairs) => {
      const endpoint = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...near(pairs)) }, { weight: 1, arbitrary: fc.nat(2 * pairs - 1) });
      const id = fc.oneof(fc.constantFrom(...near(pairs).map((i) => idOf(pairs, i))), fc.nat(2 * pairs + 50), fc.constantFrom(...ODD_IDS));
      return fc.tuple(fc.constant(pairs), fc.array(opArb(endpoint, 2 * pairs, endpoint, id), { minLength: 50, maxLength: 200, size: "max" }));
    });
    fc.assert(
      fc.property(runArb, ([pairs, run]) => {
        const endpoints = [...Array.from({ length: pairs }, (_, i) => a(i)), ...Array.from({ length: pairs }, (_, i) => b(i))];
        const partner = (i: number) => (i + pairs) % (2 * pairs);
        const h = new Harness();
        for (let i = 0; i < 2 * pairs; i++) h.add(idOf(pairs, i), endpoints[i]!, endpoints[partner(i)]!, i % 4, [0, 1500, 3000][i % 3]!, (i % 2) * 8, i >= pairs);
        expect(h.model.peak).toBeGreaterThan(4096);
        h.check();
        for (const op of run) apply(h, op, endpoints, endpoints, partner);
        h.check();
        h.drain();
      }),
      { numRuns: 8 },
    );
  });

  it("finds every source past the recent-sources cache (65,536 addresses), after removals and re-adds", () => {
    const COUNT = 70_000;
    const source = (i: number, port = 5000) => ({ address: i % 2 ? `2001:db8:1::${i.toString(16)}` : `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port });
    const hub = { address: "::ffff:203.0.113.1", port: 9 };
    const h = new Harness([0, COUNT, 2 * COUNT], [source(0), source(3), source(1, 5001)]);
    const d = { size: 100, long: false, dcid: 0 };
    for (let i = 0; i < COUNT; i++) h.add(i, source(i), hub, 1, 0, 8);
    h.add(COUNT, hub, source(1), 0, 250); // pairs with route 1: its datagrams answer the hub's route
    for (let i = 0; i < COUNT; i++) h.arrive(source(i), d);
    for (let i = 0; i < COUNT; i++) h.arrive(source(i, 5001), d);
    for (let i = 0; i < 4; i++) h.carry(h.model.byId.get(COUNT)!, d); // the 3rd and 4th are dropped
    h.arrive(source(1), d);
    h.carry(h.model.byId.get(COUNT)!, d);
    h.drain();
    // Removed routes' sources (some remembered before the cache was cleared, some after) find nothing.
    for (let i = 0; i < COUNT; i += 3) h.remove(h.model.byId.get(i)!);
    for (let i = 0; i < COUNT; i++) h.arrive(source(i), d, i % 2 === 0);
    // Re-added at another port, in freed slots, under new ids.
    for (let i = 0; i < COUNT; i += 3) h.add(COUNT + 1 + i, source(i, 5001), hub, 0, 0, 0, true);
    for (let i = 0; i < COUNT; i++) {
      h.arrive(source(i, 5001), d);
      h.arrive(source(i), d);
    }
    expect(h.model.peak).toBe(COUNT + 1);
    h.check();
    h.drain();
  });
});
