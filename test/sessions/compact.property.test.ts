import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { type Endpoint, sourceGroup } from "../../src/net/address.ts";
import { RefusalCode } from "../../src/protocol/errors.ts";
import { SessionTable } from "../../src/sessions/table.ts";
import type { RegProof, SessionLimits } from "../../src/sessions/types.ts";
import { FakeClock, RecordingSink } from "./fixtures.ts";

/**
 * The compact store against the table that keeps every session expanded (the oracle): the same
 * random operations on both, one packing every settled session after each operation, must ask
 * for the same effects (replies, forwards, routes, events), keep the same counts and export the
 * same sessions. Hosts in three forms (IPv4, IPv4-mapped, IPv6), ids short and long, probes'
 * sessions, many peers on one address (more than the store packs per address), connection IDs
 * (which keep a session expanded), admission by source group, and traffic on routes (which a
 * compact session takes without expanding).
 */

const HOSTS = ["10.0.0.1", "10.0.0.2", "::ffff:10.0.0.1", "2001:db8::1", "2001:db8::2", "2001:db8:0:1::5"];
const PORTS = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010];
const SESSIONS = [
  "s1",
  "s2",
  "s3",
  "0badc0de-0000-4000-8000-000000000001",
  "0badc0de-0000-4000-8000-000000000002-and-more-than-forty-bytes",
  "probe-0badc0de-0000-4000-8000-000000000003",
];
const CIDS = [1, 2, 3].map((n) => [n, n, n, n, 0xa0 + n, 0xb0 + n, 0xc0 + n, 0xd0 + n]);
const TIMEOUT_MS = 20_000;

type Command =
  | { kind: "reg"; session: string; from: Endpoint; proof: RegProof }
  | { kind: "data"; from: Endpoint; form: "plain" | "long" | "short"; cid: number }
  | { kind: "line"; from: Endpoint }
  | { kind: "lookup"; session: string }
  | { kind: "advance"; ms: number }
  | { kind: "expire"; budget: number };

const endpointArb = fc.record({ address: fc.constantFrom(...HOSTS), port: fc.constantFrom(...PORTS) });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("reg" as const),
      session: fc.constantFrom(...SESSIONS),
      from: endpointArb,
      proof: fc.constantFrom<RegProof>("none", "none", "valid", "invalid"),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("data" as const),
      from: endpointArb,
      form: fc.constantFrom("plain" as const, "plain" as const, "long" as const, "short" as const),
      cid: fc.nat(CIDS.length - 1),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("line" as const), from: endpointArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("lookup" as const), session: fc.constantFrom(...SESSIONS) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(10, 400, 1500, 6000, TIMEOUT_MS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const), budget: fc.constantFrom(1, 2, 100) }) },
);

/** Every run starts with a session whose first peer's connection ID is confirmed, so packing meets learnt IDs. */
const CONFIRMED_START: Command[] = [
  { kind: "reg", session: "s1", from: { address: "10.0.0.1", port: 1000 }, proof: "none" },
  { kind: "reg", session: "s1", from: { address: "10.0.0.2", port: 1000 }, proof: "none" },
  { kind: "data", from: { address: "10.0.0.2", port: 1000 }, form: "long", cid: 1 },
  { kind: "data", from: { address: "10.0.0.1", port: 1000 }, form: "short", cid: 1 },
  { kind: "advance", ms: 10 },
  { kind: "data", from: { address: "10.0.0.2", port: 1000 }, form: "plain", cid: 0 },
  { kind: "data", from: { address: "10.0.0.1", port: 1000 }, form: "plain", cid: 0 },
];

function datagram(c: Extract<Command, { kind: "data" }>, tag: number): Uint8Array {
  const t = [tag & 255];
  const id = CIDS[c.cid]!;
  if (c.form === "plain") return new Uint8Array([0x00, ...t]);
  if (c.form === "short") return new Uint8Array([0x41, ...id, ...t]);
  return new Uint8Array([0xc0, 0, 0, 0, 1, id.length, ...id, id.length, ...id, ...t]);
}

/** Refuses a new session when its source group holds three peers: admission reads the group counts. */
const admit = (_id: string, from: Endpoint, _raw: Uint8Array, view: { peersInGroup(group: string): number }) =>
  view.peersInGroup(sourceGroup(from.address)) >= 3 ? RefusalCode.Limit : undefined;

function makeTable(compactAfterMs: number) {
  const clock = new FakeClock();
  const sink = new RecordingSink();
  const limits: Partial<SessionLimits> = { timeoutMs: TIMEOUT_MS, probeTimeoutMs: 5_000, cidAnswerMs: 0, rebindQuietMs: 1000, compactAfterMs };
  const table = new SessionTable(clock, sink, limits, admit);
  // What a state file would save is the same too (takeChanged, snapshot).
  table.trackChanges();
  return { clock, sink, table };
}

/** What packing did over all runs, so the test shows it reached the paths that matter. */
const coverage = { packed: 0, compactTouched: 0, expandedByRules: 0, expiredCompact: 0, packedWithIds: 0, idRebindOfCompact: 0 };

function run(commands: Command[], compactAfterMs: number): void {
  const oracle = makeTable(-1);
  const packed = makeTable(compactAfterMs);
  let tag = 0;
  const step = (apply: (t: ReturnType<typeof makeTable>) => void) => {
    apply(oracle);
    apply(packed);
  };
  for (const c of commands) {
    const compactBefore = packed.table.compactSessionCount;
    if (c.kind === "reg") {
      const raw = new TextEncoder().encode(`REG:${c.session}${c.proof === "none" ? "" : " AAAAAAAAAAAAAAAA"}\n`);
      step(({ table }) => table.register(c.session, c.from, raw, c.proof));
    } else if (c.kind === "data") {
      const d = datagram(c, ++tag);
      const route = [...oracle.sink.routes.entries()].find(([, r]) => r.from === `${c.from.address}:${c.from.port}`);
      if (route) {
        // The data plane forwards by itself, reports the route active and copies up QUIC headers.
        const [peerId] = route;
        const wasCompact = packed.table.compactSessionCount;
        step(({ table }) => {
          table.activity([peerId]);
          if (c.form !== "plain") table.observed(peerId, d);
        });
        if (c.form === "plain" && wasCompact > 0 && packed.table.compactSessionCount === wasCompact) coverage.compactTouched++;
      } else {
        const moved = packed.table.stats.rebinds.cid;
        step(({ table }) => table.datagram(c.from, d));
        if (packed.table.stats.rebinds.cid > moved && packed.table.compactSessionCount < compactBefore) coverage.idRebindOfCompact++;
      }
    } else if (c.kind === "line") {
      step(({ table }) => table.relayLine(c.from));
    } else if (c.kind === "lookup") {
      expect(packed.table.session(c.session)?.id).toEqual(oracle.table.session(c.session)?.id);
    } else if (c.kind === "advance") {
      step(({ clock }) => clock.advance(c.ms));
    } else {
      const before = packed.table.compactSessionCount;
      step(({ table }) => table.expire(c.budget));
      if (packed.table.compactSessionCount < before) coverage.expiredCompact++;
    }
    if (c.kind !== "expire" && packed.table.compactSessionCount < compactBefore) coverage.expandedByRules++;
    coverage.packed += packed.table.compact();
    if (packed.table.indexSizes().cids! > 0 && packed.table.compactSessionCount === packed.table.sessionCount) coverage.packedWithIds++;
    compare(oracle, packed);
  }
  // However it ended, a full timeout later both are empty and nothing leaked in either.
  step(({ clock }) => clock.advance(TIMEOUT_MS + 1));
  step(({ table }) => table.expire());
  compare(oracle, packed);
  expect(packed.table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
}

function compare(a: ReturnType<typeof makeTable>, b: ReturnType<typeof makeTable>): void {
  expect(b.sink.take()).toEqual(a.sink.take());
  expect(b.sink.events.splice(0)).toEqual(a.sink.events.splice(0));
  expect(b.table.exportSessions()).toEqual(a.table.exportSessions());
  expect(b.table.stats).toEqual(a.table.stats);
  const counts = (t: SessionTable) => [t.sessionCount, t.peerCount, t.pairedCount, t.probeSessionCount];
  expect(counts(b.table)).toEqual(counts(a.table));
  for (const host of HOSTS) expect(b.table.peersInGroup(sourceGroup(host))).toBe(a.table.peersInGroup(sourceGroup(host)));
  expect([...b.table.sessionIds()].sort()).toEqual([...a.table.sessionIds()].sort());
  const changed = [...a.table.takeChanged()].sort();
  expect([...b.table.takeChanged()].sort()).toEqual(changed);
  for (const id of changed) expect(b.table.snapshot(id)).toEqual(a.table.snapshot(id));
}

describe("compact session store against the expanded table", () => {
  it("asks for the same effects, keeps the same counts and exports the same sessions, for any operations", () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 20, maxLength: 150, size: "max" }), fc.constantFrom(0, 0, 1000), (commands, after) => run([...CONFIRMED_START, ...commands], after)),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
    for (const [path, n] of Object.entries(coverage)) expect({ path, n: n > 0 }).toEqual({ path, n: true });
    if (process.env.PROPERTY_VERBOSE) console.log(coverage);
  });

  it("packs many peers on one address only up to the bound, and finds every one of them", () => {
    const oracle = makeTable(-1);
    const packed = makeTable(0);
    for (const t of [oracle, packed]) {
      // No admission limit here: twelve sessions from one address, each with a partner elsewhere.
      const table = new SessionTable(t.clock, t.sink, { timeoutMs: TIMEOUT_MS, compactAfterMs: t === packed ? 0 : -1 });
      for (let i = 0; i < 12; i++) {
        table.register(`n${i}`, { address: "10.9.9.9", port: 2000 + i }, new Uint8Array(16));
        table.register(`n${i}`, { address: `10.8.0.${i + 1}`, port: 3000 }, new Uint8Array(16));
      }
      table.compact();
      if (t === packed) {
        expect(table.compactSessionCount).toBe(8);
        expect(table.peersInGroup("10.9.9.9")).toBe(12);
      }
      for (let i = 0; i < 12; i++) table.datagram({ address: "10.9.9.9", port: 2000 + i }, new Uint8Array([i]));
      for (let i = 0; i < 12; i++) expect(table.peerAt({ address: "10.9.9.9", port: 2000 + i })?.session.id).toBe(`n${i}`);
      t.table = table;
    }
    expect(packed.sink.take()).toEqual(oracle.sink.take());
    expect(packed.table.exportSessions()).toEqual(oracle.table.exportSessions());
  });
});

describe("restoring saved sessions", () => {
  it("packs what it restores at once and ends as the expanded table does", () => {
    const saved = [
      { id: "r1", idleMs: 5000, peers: [{ address: "10.0.0.1", port: 1, idleMs: 5000, proven: true }, { address: "2001:db8::7", port: 2, idleMs: 6000, proven: false }] },
      { id: "r2", idleMs: 100, peers: [{ address: "::ffff:10.0.0.3", port: 3, idleMs: 100, proven: false }] },
      { id: "probe-0badc0de-0000-4000-8000-000000000009", idleMs: 10, peers: [{ address: "10.0.0.4", port: 4, idleMs: 10, proven: false }] },
      { id: "r4", idleMs: 10, peers: [{ address: "10.0.0.5", port: 5, idleMs: 10 }, { address: "relay:elsewhere", port: 6, idleMs: 10 }] },
    ];
    const oracle = makeTable(-1);
    const packed = makeTable(1000);
    expect(packed.table.restoreSessions(saved)).toBe(oracle.table.restoreSessions(saved));
    // The probe's id and the address that is no IP address do not pack.
    expect(packed.table.compactSessionCount).toBe(2);
    compare(oracle, packed);
    step2(oracle, packed, (t) => t.datagram({ address: "10.0.0.1", port: 1 }, new Uint8Array([1])));
    step2(oracle, packed, (t) => t.register("r2", { address: "10.0.0.8", port: 8 }, new Uint8Array(16)));
    compare(oracle, packed);
  });
});

function step2(a: ReturnType<typeof makeTable>, b: ReturnType<typeof makeTable>, apply: (t: SessionTable) => void): void {
  apply(a.table);
  apply(b.table);
}
