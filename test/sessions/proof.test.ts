import { describe, expect, it } from "bun:test";
import { DropReason, RefusalCode } from "../../src/protocol/errors.ts";
import { at, setup } from "./fixtures.ts";

const A = "10.0.0.1:1000";
const B = "10.0.0.2:2000";
const A2 = "10.0.0.1:1001";
const SESSION = "a-session-id-long-enough";

describe("return routability (verified mode)", () => {
  it("answers a REG without a cookie with a challenge and keeps no state", () => {
    const { table, sink, reg } = setup({ requireProof: true });
    const before = table.indexSizes();
    reg(SESSION, A);
    expect(sink.take()).toEqual([{ kind: "challenge", to: A, session: SESSION }]);
    expect(table.indexSizes()).toEqual(before);
    expect(table.stats.challenges).toBe(1);
  });

  it("refuses with ERR short a REG too short to be answered with a RETRY", () => {
    const { table, sink, reg } = setup({ requireProof: true });
    reg("short", A);
    expect(sink.take()).toEqual([{ kind: "reply", to: A, data: "ERR short\n" }]);
    reg("x", A);
    expect(sink.take()).toEqual([{ kind: "reply", to: A, data: "ERR\n" }]);
    expect(table.stats.refusals[RefusalCode.Short]).toBe(2);
    expect(table.sessionCount).toBe(0);
  });

  it("registers and pairs proven peers, whose routes need no bound", () => {
    const { table, sink, reg } = setup({ requireProof: true });
    reg(SESSION, A, "valid");
    reg(SESSION, B, "valid");
    const routes = sink.take().filter((e) => e.kind === "route");
    expect(routes.map((r) => r.kind === "route" && r.proven)).toEqual([true, true]);
    expect(table.session(SESSION)!.peers.every((p) => p.proven)).toBe(true);
  });

  it("answers a member's keepalive without a cookie, and challenges a move without one", () => {
    const { table, sink, reg } = setup({ requireProof: true });
    reg(SESSION, A, "valid");
    reg(SESSION, B, "valid");
    sink.take();
    reg(SESSION, A);
    expect(sink.take()).toEqual([{ kind: "reply", to: A, data: "ACK\n" }]);
    // A REG from a new port of A's host would move A (rule 1): not without proof.
    reg(SESSION, A2);
    expect(sink.take()).toEqual([{ kind: "challenge", to: A2, session: SESSION }]);
    expect(table.session(SESSION)!.peers.map((p) => p.endpoint)).toEqual([at(A), at(B)]);
    reg(SESSION, A2, "valid");
    expect(table.session(SESSION)!.peers.map((p) => p.endpoint)).toEqual([at(A2), at(B)]);
    expect(table.stats.rebinds.reg).toBe(1);
  });

  it("challenges an invalid cookie in plain mode too (the client asked for proof)", () => {
    const { sink, reg } = setup();
    reg(SESSION, A, "invalid");
    expect(sink.take()).toEqual([{ kind: "challenge", to: A, session: SESSION }]);
  });

  it("lifts the bound on a plain member that proves its address later", () => {
    const { sink, reg } = setup();
    reg(SESSION, A);
    reg(SESSION, B);
    sink.take();
    reg(SESSION, A, "valid");
    // The route changes before the ACK goes out: whatever the partner sends next meets the new route.
    expect(sink.take()).toEqual([
      { kind: "route", from: B, to: A, peer: 2, proven: true, cidLength: 0 },
      { kind: "reply", to: A, data: "ACK\n" },
    ]);
  });
});

describe("relay-protocol speakers (forwarding loops)", () => {
  const R1 = "192.0.2.1:4433";
  const R2 = "192.0.2.2:4433";

  it("never pairs two addresses that sent relay lines", () => {
    const { table, sink, reg } = setup();
    table.relayLine(at(R1));
    table.relayLine(at(R2));
    reg(SESSION, R1);
    reg(SESSION, R2);
    expect(sink.take()).toEqual([{ kind: "reply", to: R1, data: "ACK\n" }]);
    expect(table.session(SESSION)!.peers.length).toBe(1);
    expect(table.stats.drops[DropReason.RelayPair]).toBe(1);
    expect(table.stats.drops[DropReason.RelayLine]).toBe(2);
  });

  it("removes a pairing once both of its peers turn out to speak the relay protocol", () => {
    const { table, sink, reg } = setup();
    reg(SESSION, R1);
    reg(SESSION, R2);
    sink.take();
    table.relayLine(at(R1));
    expect(table.session(SESSION)!.peers.length).toBe(2); // one forged line cannot end a session
    table.relayLine(at(R2));
    expect(table.session(SESSION)).toBeUndefined();
    expect(sink.routes.size).toBe(0);
    expect(sink.events.at(-1)).toMatchObject({ kind: "relay-pair", session: SESSION });
  });

  it("ignores relay lines forged from a proven peer's address", () => {
    const { table, reg } = setup();
    reg(SESSION, R1, "valid");
    reg(SESSION, R2, "valid");
    table.relayLine(at(R1));
    table.relayLine(at(R2));
    expect(table.session(SESSION)!.peers.length).toBe(2);
    expect(table.stats.drops[DropReason.RelayPair]).toBeUndefined();
  });

  it("forgets speakers after their time to live", () => {
    const { table, clock, reg } = setup();
    table.relayLine(at(R1));
    table.relayLine(at(R2));
    clock.advance(600_000);
    table.expire();
    reg(SESSION, R1);
    reg(SESSION, R2);
    expect(table.session(SESSION)!.peers.length).toBe(2);
  });
});
