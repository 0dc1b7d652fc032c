import { describe, expect, it } from "bun:test";
import { RefusalCode } from "../../src/protocol/errors.ts";
import { HELD_ENTRY_OVERHEAD } from "../../src/sessions/held.ts";
import { at, setup } from "./fixtures.ts";

const A = "10.0.0.1:1000";
const B = "10.0.0.2:2000";

describe("registration", () => {
  it("answers REG with ACK and creates the session", () => {
    const { table, sink, reg } = setup();
    reg("s", A);
    expect(sink.take()).toEqual([{ kind: "reply", to: A, data: "ACK\n" }]);
    expect(table.sessionCount).toBe(1);
    expect(sink.events[0]).toMatchObject({ kind: "created", session: "s" });
  });

  it("re-REG from a member is idempotent", () => {
    const { table, sink, reg } = setup();
    reg("s", A);
    reg("s", A);
    reg("s", A);
    expect(sink.take().map((e) => e.kind)).toEqual(["reply", "reply", "reply"]);
    expect(table.indexSizes()).toMatchObject({ sessions: 1, peersByKey: 1 });
  });

  it("pairs the second address and routes both ways", () => {
    const { table, sink, reg } = setup();
    reg("s", A);
    sink.take();
    reg("s", B);
    expect(sink.take()[0]).toEqual({ kind: "reply", to: B, data: "ACK\n" });
    expect(sink.routeFrom(A)).toBe(B);
    expect(sink.routeFrom(B)).toBe(A);
    expect(table.pairedCount).toBe(1);
  });

  it("refuses a third host with ERR full, without touching the pair", () => {
    const { sink, reg } = setup();
    reg("session-1", A);
    reg("session-1", B);
    sink.take();
    reg("session-1", "10.0.0.9:9");
    expect(sink.take()).toEqual([{ kind: "reply", to: "10.0.0.9:9", data: "ERR full\n" }]);
    expect(sink.routeFrom(A)).toBe(B);
    expect(sink.routeFrom(B)).toBe(A);
  });

  it("answers a request too short for the reason with a bare ERR of no more bytes", () => {
    const { sink, table, reg } = setup();
    table.malformedReg(RefusalCode.EmptyId, at(A), new TextEncoder().encode("REG:"));
    expect(sink.take()).toEqual([{ kind: "reply", to: A, data: "ERR\n" }]);
    reg("s", A);
    reg("s", B);
    sink.take();
    reg("s", "10.0.0.9:9"); // 6-byte request: "ERR full\n" would be 9
    expect(sink.take()).toEqual([{ kind: "reply", to: "10.0.0.9:9", data: "ERR\n" }]);
    expect(table.stats.refusals).toEqual({ [RefusalCode.EmptyId]: 1, [RefusalCode.Full]: 1 });
  });

  it("treats a malformed REG from a paired member as data", () => {
    const { sink, table, reg } = setup();
    reg("s", A);
    reg("s", B);
    sink.take();
    table.malformedReg(RefusalCode.BadId, at(A), new TextEncoder().encode("REG:\x00\x01binary"));
    expect(sink.take()).toEqual([{ kind: "forward", to: B, data: "REG:\x00\x01binary" }]);
  });

  it("moves an address that registers another session once its own session is quiet", () => {
    const { table, sink, reg, clock } = setup({ memberHoldMs: 30_000 });
    reg("s1", A);
    reg("s1", B);
    sink.take();
    // Within the hold window, a REG without proof cannot pull a live member out (a forged one would),
    // and is not answered: the answer would land in the live peer's socket.
    reg("session-2", A);
    expect(sink.take()).toEqual([]);
    expect(table.stats.refusals.busy).toBe(1);
    expect(table.session("s1")!.peers.length).toBe(2);
    expect(table.session("session-2")).toBeUndefined();
    clock.advance(30_000);
    reg("session-2", A);
    expect(table.session("s1")!.peers.map((p) => p.endpoint)).toEqual([at(B)]);
    expect(table.session("session-2")!.peers.length).toBe(1);
    expect(sink.routeFrom(A)).toBeUndefined();
    expect(sink.routeFrom(B)).toBeUndefined();
  });

  it("moves a live member at once when its REG proves the address", () => {
    const { table, reg } = setup();
    reg("s1", A);
    reg("s1", B);
    reg("session-2", A, "valid");
    expect(table.session("s1")!.peers.map((p) => p.endpoint)).toEqual([at(B)]);
    expect(table.session("session-2")!.peers[0]!.proven).toBe(true);
  });

  it("consults the admission check only for new sessions", () => {
    let calls = 0;
    const { sink, reg } = setup({}, () => (++calls > 1 ? RefusalCode.Limit : undefined));
    reg("s", A);
    reg("s", B); // joins an existing session: not an admission
    reg("session-t", "10.0.0.3:3");
    expect(calls).toBe(2);
    expect(sink.take().pop()).toEqual({ kind: "reply", to: "10.0.0.3:3", data: "ERR limit\n" });
  });
});

describe("forwarding and early datagrams", () => {
  it("drops datagrams from unknown sources without creating state", () => {
    const { table, sink, data } = setup();
    const before = table.indexSizes();
    for (let i = 0; i < 100; i++) data(`10.1.${i}.1:${i + 1}`, "junk");
    expect(sink.take()).toEqual([]);
    expect(table.indexSizes()).toEqual(before);
    expect(table.stats.drops["unknown-source"]).toBe(100);
  });

  it("holds early datagrams and delivers them after the partner's ACK", () => {
    const { sink, reg, data } = setup();
    reg("s", A);
    data(A, "initial-1");
    data(A, "initial-2");
    sink.take();
    reg("s", B);
    const effects = sink.take();
    expect(effects[0]).toEqual({ kind: "reply", to: B, data: "ACK\n" });
    expect(effects.filter((e) => e.kind === "forward")).toEqual([
      { kind: "forward", to: B, data: "initial-1" },
      { kind: "forward", to: B, data: "initial-2" },
    ]);
  });

  it("bounds held datagrams by count, bytes and age", () => {
    const { table, sink, reg, data, clock } = setup({ heldMaxCount: 3, heldMaxBytes: 1000 + HELD_ENTRY_OVERHEAD, heldMaxAgeMs: 5000 });
    reg("s", A);
    for (let i = 0; i < 5; i++) data(A, `d${i}`);
    expect(table.stats.drops["early-overflow"]).toBe(2);
    clock.advance(6000);
    data(A, "x".repeat(900));
    data(A, "y".repeat(200)); // over the byte bound
    expect(table.stats.drops["early-expired"]).toBe(3);
    expect(table.stats.drops["early-overflow"]).toBe(3);
    sink.take();
    reg("s", B);
    expect(sink.take().filter((e) => e.kind === "forward").map((e) => (e as { data: string }).data.length)).toEqual([900]);
  });

  it("bounds held bytes across sessions", () => {
    // Each datagram also costs HELD_ENTRY_OVERHEAD; both sessions on one host, so neither evicts the other.
    const { table, reg, data } = setup({ heldMaxTotalBytes: 100 + HELD_ENTRY_OVERHEAD });
    reg("s1", A);
    reg("s2", "10.0.0.1:1001");
    data(A, "a".repeat(60));
    data("10.0.0.1:1001", "b".repeat(60));
    expect(table.stats.drops["early-overflow"]).toBe(1);
    expect(table.indexSizes().heldBytes).toBe(60 + HELD_ENTRY_OVERHEAD);
  });

  it("forwards a paired peer's datagram that reached the control plane", () => {
    const { sink, reg, data } = setup();
    reg("s", A);
    reg("s", B);
    sink.take();
    data(B, "hello");
    expect(sink.take()).toEqual([{ kind: "forward", to: A, data: "hello" }]);
  });
});

describe("expiry", () => {
  it("expires an idle session after the timeout and removes every index entry", () => {
    const { table, sink, reg, data, clock } = setup({ timeoutMs: 10_000 });
    reg("s", A);
    data(A, "held");
    reg("s", B);
    reg("t", "10.0.0.3:3");
    data("10.0.0.3:3", "held");
    clock.advance(9_999);
    expect(table.expire()).toBe(0);
    clock.advance(1);
    expect(table.expire()).toBe(2);
    expect(table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
    expect(sink.routes.size).toBe(0);
  });

  it("keeps a session alive while either route carries traffic", () => {
    const { table, reg, clock } = setup({ timeoutMs: 10_000 });
    reg("s", A);
    reg("s", B);
    const b = table.peerAt(at(B))!;
    for (let i = 0; i < 5; i++) {
      clock.advance(6_000);
      table.activity([b.id]);
      expect(table.expire()).toBe(0);
    }
    clock.advance(10_000);
    expect(table.expire()).toBe(1);
  });

  it("expires in activity order and stops at the first live session", () => {
    const { table, reg, clock } = setup({ timeoutMs: 1000 });
    reg("old", A);
    clock.advance(500);
    reg("new", B);
    clock.advance(500);
    expect(table.expire()).toBe(1);
    expect(table.session("old")).toBeUndefined();
    expect(table.session("new")).toBeDefined();
  });
});

describe("peek", () => {
  it("gives a session's object, a packed session's peer count without unpacking it, and nothing for an unknown id", () => {
    const { clock, table, reg } = setup({ compactAfterMs: 0 });
    reg("packed", A);
    reg("packed", B);
    reg("alone", "10.0.0.3:3000");
    clock.advance(1);
    table.compact();
    expect(table.compactSessionCount).toBe(2);
    expect(table.peek("packed")).toBe(2);
    expect(table.peek("alone")).toBe(1);
    expect(table.compactSessionCount).toBe(2);
    expect(table.peek("nobody")).toBeUndefined();
    // Touched by a rule, a session is an object again, and peek gives that object.
    const session = table.session("packed");
    expect(session?.peers).toHaveLength(2);
    expect(table.peek("packed")).toBe(session);
    expect(table.compactSessionCount).toBe(1);
  });
});
