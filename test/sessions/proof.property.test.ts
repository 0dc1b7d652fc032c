import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { type Endpoint, endpointKey } from "../../src/net/address.ts";
import { SessionTable } from "../../src/sessions/table.ts";
import type { Peer, RegProof, SessionEvent, SessionSink } from "../../src/sessions/types.ts";
import { FakeClock } from "./fixtures.ts";

/**
 * Verified mode against an off-path forger: random interleavings of honest registrations (which
 * answer the relay's challenge, as only a host receiving at its address can), forged REGs from
 * any address with no cookie or a wrong one, honest and forged data, forged relay lines, clock
 * advances and expiry. Property: nothing is ever forwarded, held for, or routed to an address
 * that did not itself complete a cookie exchange.
 */

const RUNS = Number(process.env.PROPERTY_RUNS ?? 500);
const HONEST = ["10.0.0.1|1000", "10.0.0.1|1001", "10.0.0.2|2000", "::ffff:10.0.0.3|3000"];
/** The attacker's own address: it receives there, so it can answer challenges there. */
const ATTACKER = "10.0.0.9|9000";
/** Addresses the attacker can only forge: nobody answers there (victims that never asked). */
const VICTIMS = ["10.0.0.1|1002", "10.0.0.2|2001", "10.0.0.7|7000"];
const ALL = [...HONEST, ATTACKER, ...VICTIMS];
const SESSIONS = ["session-one-0123456789", "session-two-0123456789", "session-three-01234567"];

const endpoint = (key: string): Endpoint => {
  const [address, port] = key.split("|");
  return { address: address!, port: Number(port) };
};
const keyOf = (e: Endpoint) => endpointKey(e.address, e.port);

type Command =
  | { kind: "honest-reg"; at: string; session: string }
  | { kind: "forged-reg"; at: string; session: string; proof: RegProof }
  | { kind: "data"; at: string; bytes: number[] }
  | { kind: "relay-line"; at: string }
  | { kind: "advance"; ms: number }
  | { kind: "expire" };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("honest-reg" as const), at: fc.constantFrom(...HONEST, ATTACKER), session: fc.constantFrom(...SESSIONS) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("forged-reg" as const),
      at: fc.constantFrom(...ALL),
      session: fc.constantFrom(...SESSIONS),
      proof: fc.constantFrom<RegProof>("none", "invalid"),
    }),
  },
  // No long headers: planting connection IDs is the rebinding suite's subject, not this one's.
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("data" as const), at: fc.constantFrom(...ALL), bytes: fc.array(fc.integer({ min: 0, max: 0x7f }), { minLength: 1, maxLength: 24 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("relay-line" as const), at: fc.constantFrom(...ALL) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(10, 1000, 20_000, 60_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const) }) },
);

class CheckingSink implements SessionSink {
  /** Addresses that completed a cookie exchange: the only ones anything may be sent to. */
  readonly proven = new Set<string>();
  readonly violations: string[] = [];
  readonly challenges: string[] = [];
  readonly routes = new Map<number, { from: string; to: string }>();
  reply() {}
  forward(to: Endpoint) {
    if (!this.proven.has(keyOf(to))) this.violations.push(`forward to ${keyOf(to)}`);
  }
  route(peer: Peer, to: Peer) {
    if (!this.proven.has(keyOf(to.endpoint)) || !to.proven) this.violations.push(`route to ${keyOf(to.endpoint)}`);
    this.routes.set(peer.id, { from: keyOf(peer.endpoint), to: keyOf(to.endpoint) });
  }
  unroute(peer: number) {
    this.routes.delete(peer);
  }
  observing() {
    return true;
  }
  challenge(to: Endpoint) {
    this.challenges.push(keyOf(to));
  }
  event(_e: SessionEvent) {}
}

describe("verified mode against forged sources (property)", () => {
  it("delivers only to addresses that proved they receive there", () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 1, maxLength: 80, size: "max" }), (commands) => {
        const clock = new FakeClock();
        const sink = new CheckingSink();
        const table = new SessionTable(clock, sink, { timeoutMs: 300_000, requireProof: true, rebindQuietMs: -1 });
        const raw = (session: string, cookie: boolean) => new TextEncoder().encode(`REG:${session}${cookie ? " AAAAAAAAAAAAAAAA" : ""}\n`);
        for (const c of commands) {
          switch (c.kind) {
            case "honest-reg": {
              // The challenge reaches the real host, which repeats its REG with the cookie.
              sink.challenges.length = 0;
              table.register(c.session, endpoint(c.at), raw(c.session, false), "none");
              if (sink.challenges.includes(c.at)) {
                sink.proven.add(c.at);
                table.register(c.session, endpoint(c.at), raw(c.session, true), "valid");
              }
              break;
            }
            case "forged-reg":
              table.register(c.session, endpoint(c.at), raw(c.session, c.proof === "invalid"), c.proof);
              break;
            case "data": {
              // Through the routes a data plane would hold, else up to the table.
              const routed = [...sink.routes.values()].find((r) => r.from === c.at);
              if (routed) sink.forward(endpoint(routed.to));
              else table.datagram(endpoint(c.at), new Uint8Array(c.bytes));
              break;
            }
            case "relay-line":
              table.relayLine(endpoint(c.at));
              break;
            case "advance":
              clock.advance(c.ms);
              break;
            case "expire":
              table.expire();
              break;
          }
          expect(sink.violations).toEqual([]);
        }
        // No peer of any session sits at an address that proved nothing.
        for (const id of SESSIONS) for (const p of table.session(id)?.peers ?? []) expect(sink.proven.has(keyOf(p.endpoint))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});
