import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import type { Endpoint } from "../../src/net/address.ts";
import { SessionTable } from "../../src/sessions/table.ts";
import type { Peer, SessionEvent, SessionSink } from "../../src/sessions/types.ts";
import { FakeClock } from "./fixtures.ts";

/**
 * Random sequences of REG, data (plain, QUIC long and short headers), clock advances and expiry
 * from a few ports on a few hosts, run against the table with a data plane emulated from the
 * routes it installs. A simple model of who registered what checks each delivery.
 */

const HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "::ffff:10.0.0.1"];
const PORTS = [1000, 1001, 1002];
const SESSIONS = ["s1", "s2", "s3"];
const CIDS = [1, 2, 3, 4].map((n) => [n, n, n, n, 0xa0 + n, 0xb0 + n, 0xc0 + n, 0xd0 + n]);
const TIMEOUT_MS = 10_000;
const host = (address: string) => (address.startsWith("::ffff:") ? address.slice(7) : address);
const key = (e: Endpoint) => `${e.address}|${e.port}`;

type Command =
  | { kind: "reg"; session: string; from: Endpoint }
  | { kind: "data"; from: Endpoint; form: "plain" | "long" | "short"; dcid: number; scid: number }
  | { kind: "advance"; ms: number }
  | { kind: "expire" };

const endpointArb = fc.record({ address: fc.constantFrom(...HOSTS), port: fc.constantFrom(...PORTS) });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("reg" as const), session: fc.constantFrom(...SESSIONS), from: endpointArb }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("data" as const),
      from: endpointArb,
      form: fc.constantFrom("plain" as const, "long" as const, "short" as const),
      dcid: fc.nat(CIDS.length - 1),
      scid: fc.nat(CIDS.length - 1),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(10, 500, 1500, 4000, TIMEOUT_MS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const) }) },
);

/**
 * Every run starts with a session whose first peer's connection ID is confirmed (the partner's
 * handshake seen, an answer, the peer heard again), so random commands reach ID moves and disputes.
 */
const CONFIRMED_START: Command[] = [
  { kind: "reg", session: "s1", from: { address: "10.0.0.1", port: 1000 } },
  { kind: "reg", session: "s1", from: { address: "10.0.0.2", port: 1000 } },
  { kind: "data", from: { address: "10.0.0.2", port: 1000 }, form: "long", dcid: 0, scid: 1 },
  { kind: "data", from: { address: "10.0.0.1", port: 1000 }, form: "short", dcid: 1, scid: 0 },
  { kind: "advance", ms: 10 },
  { kind: "data", from: { address: "10.0.0.2", port: 1000 }, form: "plain", dcid: 0, scid: 0 },
  { kind: "data", from: { address: "10.0.0.1", port: 1000 }, form: "plain", dcid: 0, scid: 0 },
];

/** Captures effects as bytes and keeps the routes a data plane would hold. */
class BytesSink implements SessionSink {
  replies: { to: Endpoint; data: Uint8Array }[] = [];
  forwards: { to: Endpoint; data: Uint8Array }[] = [];
  routes = new Map<number, { from: string; to: Endpoint }>();
  reply(to: Endpoint, data: Uint8Array) {
    this.replies.push({ to, data });
  }
  forward(to: Endpoint, data: Uint8Array) {
    this.forwards.push({ to, data: data.slice() });
  }
  route(peer: Peer, to: Peer) {
    this.routes.set(peer.id, { from: key(peer.endpoint), to: to.endpoint });
  }
  challenge() {}
  observing() {
    return true;
  }
  unroute(peer: number) {
    this.routes.delete(peer);
  }
  event(_event: SessionEvent) {}
}

function datagram(c: Extract<Command, { kind: "data" }>, tag: number): Uint8Array {
  const t = [(tag >>> 24) & 255, (tag >>> 16) & 255, (tag >>> 8) & 255, tag & 255];
  if (c.form === "plain") return new Uint8Array([0x00, ...t]);
  if (c.form === "short") return new Uint8Array([0x41, ...CIDS[c.dcid]!, ...t]);
  const d = CIDS[c.dcid]!;
  const s = CIDS[c.scid]!;
  return new Uint8Array([0xc0, 0, 0, 0, 1, d.length, ...d, s.length, ...s, ...t]);
}
const tagOf = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset + d.length - 4).getUint32(0);

/** What the runs exercised, summed, so the test can show it reached the interesting paths. */
const coverage = { forwards: 0, held: 0, reg: 0, cid: 0, quiet: 0, expired: 0 };

function run(commands: Command[]): void {
  const clock = new FakeClock();
  const sink = new BytesSink();
  // cidAnswerMs 0: random runs reach connection-ID moves often; the timing rule has its own tests (rebind.test.ts).
  const table = new SessionTable(clock, sink, { timeoutMs: TIMEOUT_MS, rebindQuietMs: 1000, cidAnswerMs: 0 });
  /** Model: sessions someone on each host was acknowledged into. */
  const claims = new Map<string, Set<string>>();
  /** Session each tagged datagram entered (held or forwarded), as the table saw it when sent. */
  const entered = new Map<number, string>();
  let tag = 0;

  const checkDeliveries = (fromSession: Map<number, string>) => {
    for (const f of sink.forwards.splice(0)) {
      coverage.forwards++;
      const t = tagOf(f.data);
      const session = fromSession.get(t) ?? entered.get(t);
      const receiver = table.peerAt(f.to);
      // Delivered only to a current member of the session the datagram was sent in...
      expect(session).toBeDefined();
      expect(receiver?.session.id).toBe(session!);
      // ...which the receiver's host registered for.
      expect(claims.get(host(f.to.address))?.has(session!)).toBe(true);
    }
  };

  for (const c of commands) {
    if (c.kind === "reg") {
      const raw = new TextEncoder().encode(`REG:${c.session}\n`);
      const busy = table.stats.refusals.busy ?? 0;
      table.register(c.session, c.from, raw);
      const reply = sink.replies.splice(0);
      // Every REG is answered, except one that would pull a live member out (refused silently).
      if (reply.length === 0) expect(table.stats.refusals.busy).toBe(busy + 1);
      else expect(reply[0]!.data.length).toBeLessThanOrEqual(raw.length);
      if (reply.length > 0 && new TextDecoder().decode(reply[0]!.data) === "ACK\n") {
        const h = host(c.from.address);
        if (!claims.has(h)) claims.set(h, new Set());
        claims.get(h)!.add(c.session);
      }
      checkDeliveries(new Map());
    } else if (c.kind === "data") {
      const t = ++tag;
      const d = datagram(c, t);
      const route = [...sink.routes.entries()].find(([, r]) => r.from === key(c.from));
      const sentIn = new Map<number, string>();
      if (route) {
        // The data plane forwards by itself...
        const [peerId, r] = route;
        const sender = table.peerById(peerId)!;
        sentIn.set(t, sender.session.id);
        sink.forward(r.to, d);
        table.activity([peerId]);
        // ...and copies up long headers and short headers whose destination ID changed (a repeat is a no-op).
        if (c.form !== "plain") table.observed(peerId, d);
      } else {
        table.datagram(c.from, d);
        const sender = table.peerAt(c.from);
        if (sender) {
          entered.set(t, sender.session.id);
          // Whoever sent it is on a host that registered for that session (rebinds never cross).
          expect(claims.get(host(c.from.address))?.has(sender.session.id)).toBe(true);
        }
      }
      checkDeliveries(sentIn);
    } else if (c.kind === "advance") {
      clock.advance(c.ms);
    } else {
      table.expire();
    }
    checkIndexes(table, sink);
  }
  coverage.held += table.stats.heldDelivered;
  coverage.reg += table.stats.rebinds.reg;
  coverage.cid += table.stats.rebinds.cid;
  coverage.quiet += table.stats.rebinds.quiet;
  coverage.expired += table.stats.sessionsExpired;
  // However it ended, a full timeout later nothing is left anywhere.
  clock.advance(TIMEOUT_MS + 1);
  table.expire();
  expect(table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
  expect(sink.routes.size).toBe(0);
}

function checkIndexes(table: SessionTable, sink: BytesSink): void {
  const sizes = table.indexSizes();
  expect(sizes.peersByKey).toBe(table.peerCount);
  expect(sizes.peersById).toBe(sizes.peersByKey);
  expect(sizes.hosts).toBeLessThanOrEqual(sizes.peersByKey);
  expect(sizes.cids).toBeLessThanOrEqual(8 * sizes.sessions);
  // Every paired peer has exactly one route, from its current address to its partner's.
  expect(sink.routes.size).toBe(2 * table.pairedCount);
  for (const [id, r] of sink.routes) {
    const peer = table.peerById(id);
    expect(peer).toBeDefined();
    expect(key(peer!.endpoint)).toBe(r.from);
    const partner = peer!.session.peers.find((p) => p !== peer)!;
    expect(key(partner.endpoint)).toBe(key(r.to));
  }
}

describe("session table properties", () => {
  it("never delivers across sessions, keeps indexes consistent, and leaks nothing after expiry", () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 20, maxLength: 120, size: "max" }), (commands) => run([...CONFIRMED_START, ...commands])),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
    for (const [path, n] of Object.entries(coverage)) expect({ path, n: n > 0 }).toEqual({ path, n: true });
    if (process.env.PROPERTY_VERBOSE) console.log(coverage);
  });
});
