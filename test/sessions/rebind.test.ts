import { describe, expect, it } from "bun:test";
import { longHeader, shortHeader } from "../utils.ts";
import { at, setup } from "./fixtures.ts";

const A = "10.0.0.1:1000";
const A2 = "10.0.0.1:1001";
const B = "10.0.0.2:2000";

const CLIENT_CID = [1, 2, 3, 4, 5, 6, 7, 8];
const SERVER_CID = [9, 9, 9, 9, 8, 8, 8, 8];

/** A (client) and B (server) paired, with a handshake observed: A's Initial and B's reply. */
function handshakeSeen(s = setup()) {
  s.reg("s", A);
  s.reg("s", B);
  const a = s.table.peerAt(at(A))!;
  const b = s.table.peerAt(at(B))!;
  s.table.observed(a.id, longHeader([0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77], CLIENT_CID));
  s.table.observed(b.id, longHeader(CLIENT_CID, SERVER_CID));
  s.sink.take();
  return s;
}

describe("rebinding by REG", () => {
  it("follows a REG from a new port of a peer's IP", () => {
    const { table, sink, reg } = setup();
    reg("s", A);
    reg("s", B);
    sink.take();
    reg("s", A2);
    // The routes switch before the ACK, so nothing the partner sends after it goes to the old port.
    expect(sink.effects.map((e) => e.kind)).toEqual(["route", "route", "reply"]);
    expect(sink.effects[2]).toEqual({ kind: "reply", to: A2, data: "ACK\n" });
    expect(sink.routeFrom(A2)).toBe(B);
    expect(sink.routeFrom(B)).toBe(A2);
    expect(sink.routeFrom(A)).toBeUndefined();
    expect(table.stats.rebinds.reg).toBe(1);
    expect(table.indexSizes()).toMatchObject({ peersByKey: 2, peersById: 2 });
  });

  it("with both peers on one IP, replaces the one heard from least recently", () => {
    const { table, sink, reg, clock } = setup();
    const P1 = "10.0.0.5:1";
    const P2 = "10.0.0.5:2";
    const P3 = "10.0.0.5:3";
    reg("s", P1);
    clock.advance(10);
    reg("s", P2);
    clock.advance(10);
    table.activity([table.peerAt(at(P1))!.id]); // P1 just spoke, P2 has been quiet longer
    reg("s", P3);
    expect(sink.routeFrom(P1)).toBe(P3);
    expect(sink.routeFrom(P3)).toBe(P1);
    expect(sink.routeFrom(P2)).toBeUndefined();
  });

  it("with two sessions on one IP, a REG rebinds only within its own session", () => {
    const { sink, reg } = setup();
    const X1 = "10.0.0.7:1";
    const Y1 = "10.0.0.7:2";
    reg("s1", X1);
    reg("s1", "10.0.0.8:1");
    reg("s2", Y1);
    reg("s2", "10.0.0.9:1");
    reg("s2", "10.0.0.7:3");
    expect(sink.routeFrom("10.0.0.9:1")).toBe("10.0.0.7:3");
    expect(sink.routeFrom("10.0.0.8:1")).toBe(X1);
    expect(sink.routeFrom(X1)).toBe("10.0.0.8:1");
  });

  it("treats IPv4-mapped and plain IPv4 forms of an address as one host", () => {
    const { sink, reg } = setup();
    reg("s", "::ffff:10.0.0.1:1000");
    reg("s", "::ffff:10.0.0.2:2000");
    reg("s", "::ffff:10.0.0.1:1001");
    expect(sink.routeFrom("::ffff:10.0.0.2:2000")).toBe("::ffff:10.0.0.1:1001");
  });
});

describe("rebinding by data", () => {
  it("does not follow bare data from a new port while the peer is still talking", () => {
    const { table, sink, reg, data, clock } = setup({ rebindQuietMs: 1000 });
    reg("s", A);
    reg("s", B);
    sink.take();
    clock.advance(999);
    data(A2, "stray datagram");
    expect(sink.take()).toEqual([]);
    expect(sink.routeFrom(B)).toBe(A);
    expect(table.stats.drops["unknown-source"]).toBe(1);
  });

  it("follows bare data from a new port once the only peer on that host has gone quiet", () => {
    const { table, sink, reg, data, clock } = setup({ rebindQuietMs: 1000 });
    reg("s", A);
    reg("s", B);
    sink.take();
    clock.advance(1000);
    data(A2, "after the NAT moved me");
    expect(sink.take()).toContainEqual({ kind: "forward", to: B, data: "after the NAT moved me" });
    expect(sink.routeFrom(B)).toBe(A2);
    expect(sink.routeFrom(A)).toBeUndefined();
    expect(table.stats.rebinds.quiet).toBe(1);
  });

  it("does not follow bare data when the host has peers in two sessions", () => {
    const { sink, reg, data, clock } = setup({ rebindQuietMs: 1000 });
    reg("s", A);
    reg("s", B);
    reg("t", "10.0.0.1:1500");
    reg("t", "10.0.0.3:3000");
    sink.take();
    clock.advance(60_000);
    data(A2, "whose is this?");
    expect(sink.take()).toEqual([]);
  });

  it("does not follow bare data when both peers of the session are on that host", () => {
    const { sink, reg, data, clock } = setup({ rebindQuietMs: 1000 });
    reg("s", "10.0.0.5:1");
    reg("s", "10.0.0.5:2");
    sink.take();
    clock.advance(60_000);
    data("10.0.0.5:3", "which one am I?");
    expect(sink.take()).toEqual([]);
  });

  it("does not follow bare data into an unpaired session", () => {
    const { sink, reg, data, clock } = setup({ rebindQuietMs: 1000 });
    reg("s", A);
    sink.take();
    clock.advance(60_000);
    data(A2, "nobody to deliver to");
    expect(sink.take()).toEqual([]);
  });

  it("can be turned off: then only REG and connection IDs move a peer", () => {
    const { sink, reg, data, clock } = setup({ rebindQuietMs: -1 });
    reg("s", A);
    reg("s", B);
    sink.take();
    clock.advance(3_600_000);
    data(A2, "no evidence");
    expect(sink.take()).toEqual([]);
    expect(sink.routeFrom(B)).toBe(A);
  });

  it("follows a short-header packet whose DCID the relay saw this peer use", () => {
    const s = handshakeSeen();
    s.data(A2, shortHeader(SERVER_CID));
    expect(s.sink.effects).toContainEqual({ kind: "forward", to: B, data: new TextDecoder().decode(shortHeader(SERVER_CID)) });
    expect(s.sink.routeFrom(B)).toBe(A2);
    expect(s.sink.routeFrom(A2)).toBe(B);
    expect(s.table.stats.rebinds.cid).toBe(1);
  });

  it("follows the server side too (DCID learned from the client's SCID)", () => {
    const s = handshakeSeen();
    const B2 = "10.0.0.2:2001";
    s.data(B2, shortHeader(CLIENT_CID));
    expect(s.sink.routeFrom(A)).toBe(B2);
  });

  it("ignores a known DCID sent from another host", () => {
    const s = handshakeSeen();
    s.data("10.0.0.66:1000", shortHeader(SERVER_CID));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A);
  });

  it("ignores an unknown DCID from the peer's host", () => {
    const s = handshakeSeen();
    s.data(A2, shortHeader([5, 5, 5, 5, 5, 5, 5, 5]));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A);
  });

  it("forgets a connection ID seen in two sessions", () => {
    const s = handshakeSeen();
    const C = "10.0.0.1:3000"; // same host as A, other session
    const D = "10.0.0.4:4000";
    s.reg("t", C);
    s.reg("t", D);
    s.table.observed(s.table.peerAt(at(C))!.id, longHeader(SERVER_CID, [4, 4, 4, 4, 4, 4, 4, 4]));
    s.sink.take();
    s.data(A2, shortHeader(SERVER_CID));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A);
    expect(s.sink.routeFrom(D)).toBe(C);
  });

  it("drops connection IDs when the session expires", () => {
    const s = handshakeSeen(setup({ timeoutMs: 1000 }));
    expect(s.table.indexSizes().cids).toBeGreaterThan(0);
    s.clock.advance(1000);
    s.table.expire();
    expect(s.table.indexSizes().cids).toBe(0);
  });

  it("remembers at most maxCidsPerSession connection IDs", () => {
    const s = setup({ maxCidsPerSession: 2 });
    s.reg("s", A);
    s.reg("s", B);
    const a = s.table.peerAt(at(A))!;
    for (let i = 0; i < 10; i++) s.table.observed(a.id, longHeader([i, i, i, i, i, i, i, i], [i, 1, 1, 1, 1, 1, 1, 1]));
    expect(s.table.indexSizes().cids).toBe(2);
  });
});
