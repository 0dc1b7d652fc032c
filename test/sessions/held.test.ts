import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { sourceGroup } from "../../src/net/address.ts";
import { HELD_ENTRY_OVERHEAD as O, HeldQueue } from "../../src/sessions/held.ts";
import { SessionTable } from "../../src/sessions/table.ts";
import { defaultSessionLimits, NONE_HELD, type Session, type SessionLimits, type SessionStats } from "../../src/sessions/types.ts";
import { type Effect, FakeClock, RecordingSink, setup } from "./fixtures.ts";

const forwards = (effects: Effect[]) => effects.flatMap((e) => (e.kind === "forward" ? [e.data] : []));
const early = (table: { stats: SessionStats }) => ({
  overflow: table.stats.drops["early-overflow"] ?? 0,
  expired: table.stats.drops["early-expired"] ?? 0,
  evicted: table.stats.drops["early-evicted"] ?? 0,
});

describe("held datagrams: what they cost", () => {
  it("counts the entry overhead with every datagram, in the session, the host and the total", () => {
    const { table, reg, data } = setup({ heldMaxBytes: 2 * (10 + O) });
    reg("s", "10.0.0.1:1");
    data("10.0.0.1:1", "0123456789");
    expect(table.session("s")!.heldBytes).toBe(10 + O);
    expect(table.indexSizes().heldBytes).toBe(10 + O);
    data("10.0.0.1:1", "0123456789");
    data("10.0.0.1:1", "x"); // 1 byte, but one more entry than the session's bytes allow
    expect(early(table).overflow).toBe(1);
    expect(table.indexSizes().heldBytes).toBe(2 * (10 + O));
  });

  it("a million one-byte holds across many sessions stay within the cap in entries", () => {
    const hosts = 1250;
    const addresses = Array.from({ length: 125_000 }, (_, i) => `10.${(i % hosts) >> 8}.${i % hosts & 255}.1`);
    const { queue, stats, sessions } = queueHarness({}, addresses);
    const one = new Uint8Array([0]);
    for (let round = 0; round < 8; round++) for (const session of sessions) queue.hold(session, one, 0);
    const entries = Math.floor(defaultSessionLimits.heldMaxTotalBytes / (1 + O));
    expect(queue.entryCount).toBe(entries); // the whole budget is used, and no more
    expect(queue.totalBytes).toBe(entries * (1 + O));
    const evicted = stats.drops["early-evicted"] ?? 0;
    expect(stats.heldAccepted + (stats.drops["early-overflow"] ?? 0)).toBe(1_000_000);
    expect(stats.heldAccepted - evicted).toBe(entries);
    queue.expire(defaultSessionLimits.heldMaxAgeMs + 1);
    expect({ total: queue.totalBytes, hosts: queue.hostCount, entries: queue.entryCount, slots: queue.queueLength }).toEqual({
      total: 0,
      hosts: 0,
      entries: 0,
      slots: 0,
    });
    expect(stats.drops["early-expired"]).toBe(entries);
  }, 20_000);
});

describe("held datagrams: a fair share per source host", () => {
  it("caps what one host's sessions hold together, grouping IPv6 by /64", () => {
    const { table, reg, data } = setup({ heldMaxHostBytes: 3 * (100 + O) });
    const payload = "p".repeat(100);
    for (let i = 1; i <= 4; i++) {
      reg(`v6-${i}`, `2001:db8:1:1::${i}:1000`);
      data(`2001:db8:1:1::${i}:1000`, payload);
    }
    expect(early(table).overflow).toBe(1);
    reg("other-64", "2001:db8:1:2::1:1000");
    data("2001:db8:1:2::1:1000", payload);
    // An IPv4 host and its IPv4-mapped form are one host.
    for (const [i, from] of ["10.0.0.1:1", "::ffff:10.0.0.1:2", "10.0.0.1:3", "::ffff:10.0.0.1:4"].entries()) {
      reg(`v4-${i}`, from);
      data(from, payload);
    }
    expect(early(table).overflow).toBe(2);
    expect(table.indexSizes().heldBytes).toBe(7 * (100 + O));
  });

  it("lets a host take room from the host holding the oldest datagrams when the total is full", () => {
    const { table, reg, data, sink } = setup({ heldMaxTotalBytes: 10 * (1000 + O) });
    const kb = (tag: string) => tag.padEnd(1000, ".");
    for (let i = 0; i < 10; i++) {
      reg(`a${i}`, `10.0.0.1:${100 + i}`);
      data(`10.0.0.1:${100 + i}`, kb(`a${i}`));
    }
    reg("a10", "10.0.0.1:110");
    data("10.0.0.1:110", kb("a10")); // the oldest are its own host's: no room
    expect(early(table)).toEqual({ overflow: 1, expired: 0, evicted: 0 });

    reg("b", "10.0.0.2:1");
    data("10.0.0.2:1", kb("b1"));
    data("10.0.0.2:1", kb("b2"));
    expect(early(table)).toEqual({ overflow: 1, expired: 0, evicted: 2 });
    expect(table.indexSizes().heldBytes).toBe(10 * (1000 + O));
    sink.take();
    reg("b", "10.0.0.3:1");
    const effects = sink.take();
    expect(effects[0]).toEqual({ kind: "reply", to: "10.0.0.3:1", data: "ACK\n" });
    expect(forwards(effects).map((d) => d.slice(0, 2))).toEqual(["b1", "b2"]);
    // The oldest two of the other host went; the rest are still delivered.
    reg("a0", "10.0.0.4:1");
    reg("a1", "10.0.0.4:2");
    reg("a2", "10.0.0.4:3");
    expect(forwards(sink.take()).map((d) => d.slice(0, 2))).toEqual(["a2"]);
    expect(table.stats.heldDelivered).toBe(3);
  });

  it("stops at a host holding no more than the sender, and drops the new datagram as early-overflow", () => {
    const { table, reg, data } = setup({ heldMaxTotalBytes: 4 * (100 + O) });
    const payload = "p".repeat(100);
    reg("a", "10.0.0.1:1");
    reg("b", "10.0.0.2:1");
    data("10.0.0.1:1", payload);
    data("10.0.0.2:1", payload);
    data("10.0.0.1:1", payload);
    data("10.0.0.2:1", payload);
    data("10.0.0.2:1", payload); // the oldest is a's host, which holds as much as b's
    expect(early(table)).toEqual({ overflow: 1, expired: 0, evicted: 0 });
    // A host holding nothing takes room from the oldest one's host, one datagram's worth.
    reg("c", "10.0.0.3:1");
    data("10.0.0.3:1", payload);
    expect(early(table)).toEqual({ overflow: 1, expired: 0, evicted: 1 });
    // The oldest is now b's (b holds 2, c 1): c takes it; then the oldest is a's (1, c 2): dropped.
    data("10.0.0.3:1", payload);
    data("10.0.0.3:1", payload);
    expect(early(table)).toEqual({ overflow: 2, expired: 0, evicted: 2 });
  });

  it("passes over delivered, discarded and aged datagrams before evicting anything", () => {
    const { queue, stats, sessions } = queueHarness(
      { heldMaxTotalBytes: 8 * (100 + O), heldMaxAgeMs: 10_000 },
      ["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"],
    );
    const [a0, a1, a2, a3, a4, a5, b, c] = sessions as [Session, Session, Session, Session, Session, Session, Session, Session];
    const tagged = (tag: string) => new TextEncoder().encode(tag.padEnd(100, "."));
    const tags = (out: Uint8Array[]) => out.map((d) => new TextDecoder().decode(d.subarray(0, 4)));
    for (const [i, s] of [a0, a1, a2].entries()) queue.hold(s, tagged(`a${i}`), 0);
    queue.hold(a3, tagged("a3"), 6_000);
    queue.hold(a4, tagged("a4"), 6_000);
    for (const n of [1, 2, 3]) queue.hold(a5, tagged(`a5-${n}`), 6_000);
    expect(tags(queue.take(a3, 6_000))).toEqual(["a3.."]);
    queue.discard(a4);
    const early = () => ({ expired: stats.drops["early-expired"] ?? 0, evicted: stats.drops["early-evicted"] ?? 0 });
    expect(early()).toEqual({ expired: 1, evicted: 0 });
    // At 11 s a0..a2 are stale: b's five datagrams fit in two free places and the three they leave.
    for (let i = 0; i < 5; i++) queue.hold(b, tagged(`b${i}`), 11_000);
    expect(early()).toEqual({ expired: 4, evicted: 0 });
    // The oldest live entry is a5's first: its host holds three, c's nothing.
    queue.hold(c, tagged("c"), 11_000);
    expect(early()).toEqual({ expired: 4, evicted: 1 });
    expect(queue.totalBytes).toBe(8 * (100 + O));
    expect(tags(queue.take(a5, 11_000))).toEqual(["a5-2", "a5-3"]);
    expect(tags(queue.take(b, 11_000))).toEqual(["b0..", "b1..", "b2..", "b3..", "b4.."]);
    expect(tags(queue.take(c, 11_000))).toEqual(["c..."]);
    expect({ total: queue.totalBytes, hosts: queue.hostCount, entries: queue.entryCount, slots: queue.queueLength }).toEqual({
      total: 0,
      hosts: 0,
      entries: 0,
      slots: 0,
    });
  });
});

describe("held datagrams: nothing left behind", () => {
  it("take, discard and expiry empty every index", () => {
    const { table, reg, data, clock } = setup({ timeoutMs: 60_000, heldMaxAgeMs: 10_000 });
    const senders = ["10.0.0.1:1", "::ffff:10.0.0.1:2", "2001:db8::1:1", "2001:db8::2:1", "2001:db8:0:1::1:1"];
    const hold = (i: number) => {
      reg(`s${i}`, senders[i]!);
      data(senders[i]!, `held-${i}`);
      data(senders[i]!, `more-${i}`);
    };
    hold(2);
    clock.advance(55_000);
    for (const i of [0, 1, 3, 4]) hold(i);
    clock.advance(5_000);
    table.expire(); // s2 expires: what it held is discarded
    expect(table.session("s2")).toBeUndefined();
    reg("s0", "10.0.0.7:1"); // take
    expect(table.stats.heldDelivered).toBe(2);
    clock.advance(10_001);
    table.expire(); // age: s1, s3, s4
    expect(table.indexSizes().heldBytes).toBe(0);
    expect(early(table)).toEqual({ overflow: 0, expired: 8, evicted: 0 });
    for (const i of [0, 1, 3, 4]) expect(table.session(`s${i}`)!.held).toBe(NONE_HELD);
    clock.advance(60_000);
    table.expire();
    expect(table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
  });
});

/** A HeldQueue with hand-made unpaired sessions, to see its own indexes. */
function queueHarness(limits: Partial<SessionLimits>, addresses: string[]) {
  const stats = new SessionTable(new FakeClock(), new RecordingSink()).stats; // counters of the table's shape
  const queue = new HeldQueue({ ...defaultSessionLimits, ...limits }, stats);
  const sessions = addresses.map((address, i) => {
    const session: Session = { id: `s${i}`, peers: [], lastActivity: 0, held: NONE_HELD, heldBytes: 0, cids: [], slot: 0 };
    const holder = { id: i + 1, session, endpoint: { address, port: 1000 + i }, lastSeen: 0, proven: false, cids: undefined, identity: undefined };
    session.peers.push(holder);
    return session;
  });
  return { queue, stats, sessions };
}

type Op =
  | { kind: "hold"; session: number; size: number }
  | { kind: "take"; session: number }
  | { kind: "discard"; session: number }
  | { kind: "advance"; ms: number }
  | { kind: "expire" };

const ADDRESSES = ["10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2", "2001:db8:0:1::a", "2001:db8:0:1::b", "2001:db8:0:2::a", "10.0.0.3"];
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant("hold" as const), session: fc.nat(ADDRESSES.length - 1), size: fc.integer({ min: 4, max: 1500 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("take" as const), session: fc.nat(ADDRESSES.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("discard" as const), session: fc.nat(ADDRESSES.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(100, 2_000, 6_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const) }) },
);

describe("HeldQueue properties", () => {
  it("keeps every cap and account consistent, delivers in order, and empties completely", () => {
    const limits = { heldMaxCount: 4, heldMaxBytes: 4 * (800 + O), heldMaxHostBytes: 6 * (600 + O), heldMaxTotalBytes: 10 * (500 + O), heldMaxAgeMs: 10_000 };
    let evictions = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 200, size: "max" }), (ops) => {
        const { queue, stats, sessions } = queueHarness(limits, ADDRESSES);
        /** Model: tags each session accepted since it last delivered or discarded, in order. */
        const accepted = sessions.map(() => [] as number[]);
        let now = 0;
        let tag = 0;
        let delivered = 0;
        for (const op of ops) {
          if (op.kind === "hold") {
            const data = new Uint8Array(op.size);
            new DataView(data.buffer).setUint32(0, ++tag);
            const before = { accepted: stats.heldAccepted, evicted: stats.drops["early-evicted"] ?? 0 };
            queue.hold(sessions[op.session]!, data, now);
            if (stats.heldAccepted > before.accepted) accepted[op.session]!.push(tag);
            // Evicts only while there is no room: the last eviction left less than one entry's room.
            if ((stats.drops["early-evicted"] ?? 0) > before.evicted) {
              expect(queue.totalBytes).toBeGreaterThan(limits.heldMaxTotalBytes - (1500 + O));
            }
          } else if (op.kind === "take") {
            const out = queue.take(sessions[op.session]!, now);
            const tags = out.map((d) => new DataView(d.buffer, d.byteOffset).getUint32(0));
            // Whatever was lost went oldest first: what is left is the newest, in order.
            const model = accepted[op.session]!;
            expect(tags).toEqual(model.slice(model.length - tags.length));
            delivered += out.length;
            accepted[op.session] = [];
          } else if (op.kind === "discard") {
            queue.discard(sessions[op.session]!);
            accepted[op.session] = [];
          } else if (op.kind === "advance") {
            now += op.ms;
          } else {
            queue.expire(now);
          }
          checkAccounts(queue, sessions, limits);
          const lost = (stats.drops["early-expired"] ?? 0) + (stats.drops["early-evicted"] ?? 0);
          expect(stats.heldAccepted).toBe(delivered + lost + queue.entryCount);
        }
        evictions += stats.drops["early-evicted"] ?? 0;
        for (const s of sessions) queue.discard(s);
        expect({ total: queue.totalBytes, hosts: queue.hostCount, entries: queue.entryCount, slots: queue.queueLength }).toEqual({
          total: 0,
          hosts: 0,
          entries: 0,
          slots: 0,
        });
        for (const s of sessions) expect({ held: s.held, bytes: s.heldBytes }).toEqual({ held: NONE_HELD, bytes: 0 });
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
    expect(evictions).toBeGreaterThan(0);
  });

  it("keeps its arrival queue proportional to what it holds while sessions churn", () => {
    const { queue, sessions } = queueHarness({ heldMaxAgeMs: 10_000 }, ["10.0.0.1", "10.0.0.2"]);
    const [long, churn] = sessions as [Session, Session];
    queue.hold(long, new Uint8Array(1), 0); // stays at the head of the queue
    for (let i = 0; i < 100_000; i++) {
      queue.hold(churn, new Uint8Array(1), 1);
      queue.take(churn, 1);
    }
    expect(queue.entryCount).toBe(1);
    expect(queue.queueLength).toBeLessThanOrEqual(2 + 64);
    queue.expire(10_002);
    expect({ entries: queue.entryCount, slots: queue.queueLength, hosts: queue.hostCount }).toEqual({ entries: 0, slots: 0, hosts: 0 });
  });
});

function checkAccounts(queue: HeldQueue, sessions: Session[], limits: Pick<SessionLimits, "heldMaxCount" | "heldMaxBytes" | "heldMaxHostBytes" | "heldMaxTotalBytes">): void {
  const byHost = new Map<string, number>();
  let total = 0;
  let entries = 0;
  for (const s of sessions) {
    const bytes = s.held.reduce((n, h) => n + h.data.length + O, 0);
    expect(s.heldBytes).toBe(bytes);
    expect(s.held.length).toBeLessThanOrEqual(limits.heldMaxCount);
    expect(bytes).toBeLessThanOrEqual(limits.heldMaxBytes);
    if (s.held.length === 0) expect(s.held).toBe(NONE_HELD);
    const group = sourceGroup(s.peers[0]!.endpoint.address);
    if (bytes > 0) byHost.set(group, (byHost.get(group) ?? 0) + bytes);
    total += bytes;
    entries += s.held.length;
  }
  expect(queue.totalBytes).toBe(total);
  expect(total).toBeLessThanOrEqual(limits.heldMaxTotalBytes);
  expect(queue.entryCount).toBe(entries);
  expect(queue.hostCount).toBe(byHost.size);
  for (const [group, bytes] of byHost) {
    expect(queue.hostBytes(group)).toBe(bytes);
    expect(bytes).toBeLessThanOrEqual(limits.heldMaxHostBytes);
  }
  expect(queue.queueLength).toBeLessThanOrEqual(entries + Math.max(64, entries));
}
