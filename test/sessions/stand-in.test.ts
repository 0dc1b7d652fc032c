/**
 * A session paired with a stand-in for a peer on another relay (fleet): when that relay is gone,
 * the peer registering here takes the stand-in's place; while it is being checked, the REG waits;
 * while it is alive, the REG is refused as any third host's.
 */
import { describe, expect, it } from "bun:test";
import { SessionTable } from "../../src/sessions/table.ts";
import type { Endpoint } from "../../src/net/address.ts";
import type { StandInVerdict } from "../../src/sessions/types.ts";
import { at, ep, FakeClock, RecordingSink } from "./fixtures.ts";

const REMOTE = at("fleet:10.0.0.9:4433:1");

function setup(verdict: StandInVerdict) {
  const clock = new FakeClock();
  const sink = new RecordingSink();
  const asked: { session: string; standIn: string; from: string }[] = [];
  const standIns = {
    isStandIn: (e: Endpoint) => e.address.startsWith("fleet:"),
    check: (session: string, standIn: Endpoint, from: Endpoint) => {
      asked.push({ session, standIn: ep(standIn), from: ep(from) });
      return verdict;
    },
  };
  const table = new SessionTable(clock, sink, { timeoutMs: 300_000 }, undefined, standIns);
  const reg = (session: string, from: string) => table.register(session, at(from), new TextEncoder().encode(`REG:${session}\n`));
  reg("session-one", "10.0.0.2:5000");
  expect(table.attachRemote("session-one", REMOTE)).toBe(true);
  sink.take();
  return { table, sink, asked, reg };
}

describe("stand-ins for peers on other relays", () => {
  it("gone: the registrant takes the stand-in's place and the session pairs locally", () => {
    const { table, sink, asked, reg } = setup("gone");
    reg("session-one", "10.0.0.7:6000");
    expect(asked).toEqual([{ session: "session-one", standIn: ep(REMOTE), from: "10.0.0.7:6000" }]);
    expect(sink.effects.filter((e) => e.kind === "reply")).toEqual([{ kind: "reply", to: "10.0.0.7:6000", data: "ACK\n" }]);
    expect(table.session("session-one")!.peers.map((p) => ep(p.endpoint))).toEqual(["10.0.0.2:5000", "10.0.0.7:6000"]);
    expect(table.peerAt(REMOTE)).toBeUndefined();
    expect(sink.routeFrom("10.0.0.2:5000")).toBe("10.0.0.7:6000");
    expect(sink.routeFrom("10.0.0.7:6000")).toBe("10.0.0.2:5000");
    expect(table.stats.standInsReplaced).toBe(1);
    expect(table.pairedCount).toBe(1);
    expect(table.indexSizes().peersByKey).toBe(2);
  });

  it("checking: no reply, nothing changes, the REG is counted as waiting", () => {
    const { table, sink, reg } = setup("checking");
    reg("session-one", "10.0.0.7:6000");
    expect(sink.take()).toEqual([]);
    expect(table.stats.drops["stand-in-check"]).toBe(1);
    expect(table.peerAt(REMOTE)).toBeDefined();
    expect(table.peerAt(at("10.0.0.7:6000"))).toBeUndefined();
  });

  it("live: refused as full, the stand-in stays", () => {
    const { table, sink, reg } = setup("live");
    reg("session-one", "10.0.0.7:6000");
    expect(sink.take()).toEqual([{ kind: "reply", to: "10.0.0.7:6000", data: "ERR full\n" }]);
    expect(table.peerAt(REMOTE)).toBeDefined();
    expect(table.stats.standInsReplaced).toBe(0);
  });

  it("a REG from the local peer's host still rebinds that peer; the stand-in is not asked", () => {
    const { table, asked, reg } = setup("gone");
    reg("session-one", "10.0.0.2:5001");
    expect(asked).toEqual([]);
    expect(table.session("session-one")!.peers.map((p) => ep(p.endpoint)).sort()).toEqual(["10.0.0.2:5001", ep(REMOTE)].sort());
  });

  it("a full session of two local peers never asks", () => {
    const clock = new FakeClock();
    const sink = new RecordingSink();
    let asked = 0;
    const table = new SessionTable(clock, sink, { timeoutMs: 300_000 }, undefined, { isStandIn: (e) => e.address.startsWith("fleet:"), check: () => (asked++, "gone") });
    for (const from of ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"]) table.register("session-one", at(from), new TextEncoder().encode("REG:session-one\n"));
    expect(asked).toBe(0);
    expect(table.stats.refusals.full).toBe(1);
  });
});

describe("a peer that left for another relay", () => {
  it("leaves by its identity; a session left with only a stand-in goes; other identities change nothing", () => {
    const clock = new FakeClock();
    const sink = new RecordingSink();
    const table = new SessionTable(clock, sink, { timeoutMs: 300_000 }, undefined, { isStandIn: (e) => e.address.startsWith("fleet:"), check: () => "live" });
    table.register("session-one", at("10.0.0.2:5000"), new TextEncoder().encode("REG:session-one\n"), "none", "id-a");
    expect(table.attachRemote("session-one", REMOTE)).toBe(true);
    expect(table.leave("session-one", "id-b")).toBe(false);
    expect(table.leave("other-session", "id-a")).toBe(false);
    expect(table.session("session-one")!.peers).toHaveLength(2);
    expect(table.leave("session-one", "id-a")).toBe(true);
    expect(table.session("session-one")).toBeUndefined();
    expect(table.peerAt(REMOTE)).toBeUndefined();
    expect(table.indexSizes().peersByKey).toBe(0);
    expect(table.pairedCount).toBe(0);
    // Two local peers: the one that left goes, the other stays and waits.
    table.register("session-two", at("10.0.0.2:5001"), new TextEncoder().encode("REG:session-two\n"), "none", "id-c");
    table.register("session-two", at("10.0.0.3:5001"), new TextEncoder().encode("REG:session-two\n"), "none", "id-d");
    expect(table.leave("session-two", "id-c")).toBe(true);
    expect(table.session("session-two")!.peers.map((p) => ep(p.endpoint))).toEqual(["10.0.0.3:5001"]);
  });

  it("a keepalive with a token gives a peer without one its identity", () => {
    const table = new SessionTable(new FakeClock(), new RecordingSink(), { timeoutMs: 300_000 });
    table.register("session-one", at("10.0.0.2:5000"), new TextEncoder().encode("REG:session-one\n"));
    table.register("session-one", at("10.0.0.2:5000"), new TextEncoder().encode("REG:session-one\n"), "none", "id-a");
    expect(table.peerAt(at("10.0.0.2:5000"))!.identity).toBe("id-a");
  });
});
