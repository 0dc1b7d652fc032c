import { describe, expect, it } from "bun:test";
import { CLIENT_CID, longHeader, SERVER_CID, shortHeader } from "../utils.ts";
import { at, setup } from "./fixtures.ts";

const A = "10.0.0.1:1000";
const A2 = "10.0.0.1:1001";
const B = "10.0.0.2:2000";

const ORIGINAL_DCID = [0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77];
/** A client-issued ID the server switches to after the handshake: it only ever travels encrypted. */
const ISSUED_CID = [6, 6, 6, 6, 5, 5, 5, 5];

/** A (client) and B (server) paired, with a handshake observed: A's Initial and B's reply. */
function handshakeSeen(s = setup()) {
  s.reg("s", A);
  s.reg("s", B);
  const a = s.table.peerAt(at(A))!;
  const b = s.table.peerAt(at(B))!;
  s.table.observed(a.id, longHeader(ORIGINAL_DCID, CLIENT_CID));
  s.table.observed(b.id, longHeader(CLIENT_CID, SERVER_CID));
  s.sink.take();
  return { ...s, a, b };
}

/** Both peers keep talking for `ms` (activity every 10 ms, as the relay drains it). */
function talk(s: ReturnType<typeof handshakeSeen>, ms: number, who = [s.a, s.b]) {
  for (let t = 0; t < ms; t += 10) {
    s.clock.advance(10);
    s.table.activity(who.map((p) => p.id));
  }
}

/** After the handshake, A's short headers carry SERVER_CID and B's carry ISSUED_CID, for a while. */
function confirmed(s = setup()) {
  const h = handshakeSeen(s);
  h.table.observed(h.a.id, shortHeader(SERVER_CID));
  h.table.observed(h.b.id, shortHeader(ISSUED_CID));
  talk(h, 600);
  h.sink.take();
  return h;
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

  it("says so when the new port was a peer of another session: that session loses it (a move)", () => {
    const { table, sink, reg, clock } = setup();
    reg("s", A);
    reg("s", B);
    reg("t", A2); // the NAT's next port, first handed to another session of the host
    clock.advance(31_000); // t idle past the hold that keeps a live member where it is
    sink.events.length = 0;
    reg("s", A2);
    expect(sink.routeFrom(B)).toBe(A2);
    expect(table.session("t")).toBeUndefined();
    expect(sink.events.filter((e) => e.kind === "moved")).toEqual([{ kind: "moved", from: "t", to: "s", peer: at(A2) }]);
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

  it("follows the client on its first packet from a new port, once its ID is confirmed", () => {
    const s = confirmed();
    s.data(A2, shortHeader(SERVER_CID));
    expect(s.sink.effects).toContainEqual({ kind: "forward", to: B, data: new TextDecoder().decode(shortHeader(SERVER_CID)) });
    expect(s.sink.routeFrom(B)).toBe(A2);
    expect(s.sink.routeFrom(A2)).toBe(B);
    expect(s.table.stats.rebinds.cid).toBe(1);
  });

  it("follows the server on an ID seen only in short headers (a client-issued ID, sent encrypted)", () => {
    const s = confirmed();
    const B2 = "10.0.0.2:2001";
    s.data(B2, shortHeader(ISSUED_CID));
    expect(s.sink.routeFrom(A)).toBe(B2);
    expect(s.table.stats.rebinds.cid).toBe(1);
  });

  it("tells the data plane which bytes of each side's short headers to watch", () => {
    const s = handshakeSeen();
    // Routes were reinstalled once each side's ID length was known from its long-header SCID.
    expect(s.table.peerAt(at(A))!.cids!.ownLength).toBe(8);
    const s2 = setup();
    s2.reg("s", A);
    s2.reg("s", B);
    s2.table.observed(s2.table.peerAt(at(B))!.id, longHeader(CLIENT_CID, [1, 2, 3, 4, 5]));
    expect(s2.sink.take()).toContainEqual({ kind: "route", from: A, to: B, peer: 1, proven: false, cidLength: 5 });
  });

  it("does not count an ID before the partner answered, nor before the peer kept it for cidAnswerMs", () => {
    const s = handshakeSeen();
    s.table.observed(s.a.id, shortHeader(SERVER_CID));
    talk(s, 400, [s.a]); // the partner silent: no answer
    s.data(A2, shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe(A);
    talk(s, 10, [s.b]); // the answer
    talk(s, 490, [s.a]); // not yet cidAnswerMs after it
    s.data("10.0.0.1:1002", shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe(A);
    talk(s, 20, [s.a]);
    s.data("10.0.0.1:1003", shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe("10.0.0.1:1003");
  });

  it("does not count an ID the data plane may not have reported every change of", () => {
    const s = handshakeSeen();
    s.sink.watching = false;
    s.table.observed(s.a.id, shortHeader(SERVER_CID));
    talk(s, 1000);
    s.data(A2, shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe(A);
  });

  it("does not learn from a forged long header (the DCID planted from the peer's address)", () => {
    const s = confirmed();
    const PLANTED = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
    s.table.observed(s.a.id, longHeader(PLANTED, [0xdd, 0xdd, 0xdd, 0xdd]));
    talk(s, 2000);
    s.data("10.0.0.1:6666", shortHeader(PLANTED));
    expect(s.sink.routeFrom(B)).toBe(A);
    // Nor does it change the ID length the peer's partner is watched with.
    expect(s.a.cids!.ownLength).toBe(8);
  });

  it("does not count a forged short-header ID while the real peer keeps sending its own", () => {
    const s = confirmed();
    const PLANTED = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
    for (let i = 0; i < 100; i++) {
      // A burst of forged datagrams from A's address, each followed by one of A's own (a change both ways).
      s.table.observed(s.a.id, shortHeader(PLANTED));
      talk(s, 10);
      s.table.observed(s.a.id, shortHeader(SERVER_CID));
      talk(s, 10);
    }
    s.data("10.0.0.1:6666", shortHeader(PLANTED));
    expect(s.sink.routeFrom(B)).toBe(A);
    expect(s.table.stats.rebinds.cid).toBe(0);
  });

  it("a planted ID that moved an idle peer is undone by the peer's next datagram, and the ID moves stop", () => {
    const s = confirmed();
    const PLANTED = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
    const NEIGHBOUR = "10.0.0.1:6666";
    // A idle; forged datagrams from A's address carry PLANTED while B keeps sending, unanswered.
    s.clock.advance(5000);
    s.table.observed(s.a.id, shortHeader(PLANTED));
    talk(s, 600);
    s.data(NEIGHBOUR, shortHeader(PLANTED));
    expect(s.sink.routeFrom(B)).toBe(NEIGHBOUR);
    // A speaks again from its own address with its own (older) ID: A wins, PLANTED is forgotten.
    s.sink.take();
    s.data(A, shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe(A);
    expect(s.sink.take()).toContainEqual({ kind: "forward", to: B, data: new TextDecoder().decode(shortHeader(SERVER_CID)) });
    expect(s.sink.events).toContainEqual({ kind: "cid-dispute", session: "s", kept: at(A), refused: at(NEIGHBOUR) });
    s.data(NEIGHBOUR, shortHeader(PLANTED));
    s.data("10.0.0.1:7777", shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe(A);
    expect(s.table.stats.drops["cid-disputed"]).toBe(1);
    expect(s.table.stats.drops["unknown-source"]).toBe(1);
  });

  it("drops a late datagram from the port a peer just left, with the ID that moved it (reordering), without a dispute", () => {
    const s = confirmed();
    s.data(A2, shortHeader(SERVER_CID));
    s.sink.take();
    s.data(A, shortHeader(SERVER_CID));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A2);
    expect(s.sink.events.some((e) => e.kind === "cid-dispute")).toBe(false);
    // And it keeps following: the next NAT move is followed too.
    s.data("10.0.0.1:1009", shortHeader(SERVER_CID));
    expect(s.sink.routeFrom(B)).toBe("10.0.0.1:1009");
  });

  it("ignores a known DCID sent from another host", () => {
    const s = confirmed();
    s.data("10.0.0.66:1000", shortHeader(SERVER_CID));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A);
  });

  it("ignores an unknown DCID from the peer's host", () => {
    const s = confirmed();
    s.data(A2, shortHeader([5, 5, 5, 5, 5, 5, 5, 5]));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A);
  });

  it("forgets a connection ID confirmed in two sessions", () => {
    const s = confirmed();
    const C = "10.0.0.1:3000"; // same host as A, other session
    const D = "10.0.0.4:4000";
    s.reg("t", C);
    s.reg("t", D);
    const c = s.table.peerAt(at(C))!;
    const d = s.table.peerAt(at(D))!;
    s.table.observed(d.id, longHeader([1, 1, 1, 1], [3, 3, 3, 3, 3, 3, 3, 3]));
    s.table.observed(c.id, shortHeader(SERVER_CID.slice(0, 8)));
    talk({ ...s, a: c, b: d }, 600);
    s.sink.take();
    s.data(A2, shortHeader(SERVER_CID));
    expect(s.sink.take()).toEqual([]);
    expect(s.sink.routeFrom(B)).toBe(A);
    expect(s.sink.routeFrom(D)).toBe(C);
  });

  it("drops connection IDs when the session expires", () => {
    const s = confirmed(setup({ timeoutMs: 1000 }));
    expect(s.table.indexSizes().cids).toBe(2);
    s.clock.advance(1000);
    s.table.expire();
    expect(s.table.indexSizes().cids).toBe(0);
  });

  it("remembers at most maxCidsPerSession confirmed connection IDs, and a few per peer", () => {
    const s = handshakeSeen(setup({ maxCidsPerSession: 3 }));
    for (let i = 0; i < 10; i++) {
      s.table.observed(s.a.id, shortHeader([i, i, i, i, 1, 1, 1, 1]));
      s.table.observed(s.b.id, shortHeader([i, i, i, i, 2, 2, 2, 2]));
      talk(s, 600);
    }
    expect(s.table.indexSizes().cids).toBe(3);
    const t = handshakeSeen(setup({ maxCidsPerSession: 100 }));
    for (let i = 0; i < 10; i++) {
      t.table.observed(t.a.id, shortHeader([i, i, i, i, 1, 1, 1, 1]));
      talk(t, 600);
    }
    expect(t.a.cids!.confirmed).toHaveLength(4);
    expect(t.table.indexSizes().cids).toBe(4);
  });
});
