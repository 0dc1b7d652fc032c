import { describe, expect, it } from "bun:test";
import { FakeClock } from "../sessions/fixtures.ts";
import { CLIENT_CID, eventually, planesUnderTest, quicHandshake, register, relayHarness, SERVER_CID, shortHeader } from "../utils.ts";

describe.each(planesUnderTest())("sessions on the %s plane", (plane) => {
  const h = relayHarness(plane);
  const open = h.open;

  it("refuses a third host with ERR full and keeps the pair working", async () => {
    const relay = await h.start();
    const { a, b, session } = await h.pair();
    const c = await open("127.0.0.4");
    expect(await register(c, relay.port, session)).toBe("ERR full\n");
    a.send("still here", relay.port);
    expect(await b.nextText()).toBe("still here");
    expect(relay.relay.table.stats.refusals.full).toBe(1);
  });

  it("a relay without a fleet takes the move flag as a plain REG: ACK, and the peers pair", async () => {
    const relay = await h.start();
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    a.send("REG:meet-here move\n", relay.port);
    expect(await a.nextText()).toBe("ACK\n");
    b.send("REG:meet-here\n", relay.port);
    expect(await b.nextText()).toBe("ACK\n");
    a.send("hello", relay.port);
    expect(await b.nextText()).toBe("hello");
    expect(relay.relay.table.session("meet-here")?.peers).toHaveLength(2);
  });

  it.each([
    ["REG:\n", "ERR\n"],
    ["REG:bad id with spaces\n", "ERR bad-id\n"],
    [`REG:${"x".repeat(200)}\n`, "ERR long-id\n"],
  ])("refuses %j with %j", async (request, reply) => {
    const relay = await h.start();
    const a = await open("127.0.0.2");
    a.send(request, relay.port);
    expect(await a.nextText()).toBe(reply);
    expect(relay.relay.table.sessionCount).toBe(0);
  });

  it("follows a REG from a new port of a peer's host", async () => {
    const relay = await h.start();
    const { a, b, session } = await h.pair();
    const a2 = await open("127.0.0.2");
    expect(await register(a2, relay.port, session)).toBe("ACK\n");
    b.send("to the new port", relay.port);
    expect(await a2.nextText()).toBe("to the new port");
    a2.send("from the new port", relay.port);
    expect(await b.nextText()).toBe("from the new port");
    // B's datagram reached A's new port; a route has one destination, so the old port got nothing.
    expect(a.inbox).toEqual([]);
  });

  it("does not let bare data from a new port of a peer's host take the session", async () => {
    // On a clock that stands still A never goes quiet, however slow the machine.
    const relay = await h.start({ clock: new FakeClock() });
    const { a, b } = await h.pair();
    const neighbour = await open("127.0.0.2"); // same IP as A: a CGNAT neighbour
    neighbour.send("let me in", relay.port);
    await eventually(() => relay.relay.table.stats.drops["unknown-source"] === 1);
    b.send("for A only", relay.port);
    expect(await a.nextText()).toBe("for A only");
    expect(neighbour.inbox).toEqual([]);
    expect(relay.relay.table.stats.rebinds).toEqual({ reg: 0, cid: 0, quiet: 0 });
  });

  it("follows bare data from a new port once the peer's old address has gone quiet", async () => {
    const clock = new FakeClock();
    const relay = await h.start({ limits: { rebindQuietMs: 300 }, clock });
    const { a, b } = await h.pair();
    a.send("from the old port", relay.port);
    expect(await b.nextText()).toBe("from the old port");
    relay.relay.sweep(); // A's forwarding is taken into account now, before the clock moves
    a.close(); // the NAT forgets A's mapping; A's next datagrams come from a new port
    const moved = await open("127.0.0.2");
    clock.advance(299);
    moved.send("too soon", relay.port);
    await eventually(() => relay.relay.table.stats.drops["unknown-source"] === 1);
    clock.advance(1);
    moved.send("from the new port", relay.port);
    // The next datagram B gets: "too soon" was dropped, not forwarded late.
    expect(await b.nextText()).toBe("from the new port");
    b.send("back to the new port", relay.port);
    expect(await moved.nextText()).toBe("back to the new port");
    expect(relay.relay.table.stats.rebinds.quiet).toBe(1);
  });

  it("follows a QUIC peer whose NAT moved it, by connection ID", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    await quicHandshake(relay, a, b);
    // A's NAT binding changes: same host, new port, short header to the server's CID.
    const moved = await open("127.0.0.2");
    moved.send(shortHeader(SERVER_CID), relay.port);
    expect((await b.next()).data).toEqual(shortHeader(SERVER_CID));
    b.send(shortHeader(CLIENT_CID), relay.port);
    expect((await moved.next()).data).toEqual(shortHeader(CLIENT_CID));
    expect(relay.relay.table.stats.rebinds.cid).toBe(1);
  });

  it("does not accept a known connection ID from another host", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    await quicHandshake(relay, a, b);
    const elsewhere = await open("127.0.0.8");
    elsewhere.send(shortHeader(SERVER_CID), relay.port);
    // Dropped in the control plane (counted), so nothing was forwarded for it.
    await eventually(() => relay.relay.table.stats.drops["unknown-source"] === 1);
    expect(b.inbox).toEqual([]);
    expect(relay.relay.table.stats.rebinds.cid).toBe(0);
    b.send("still A", relay.port);
    expect(await a.nextText()).toBe("still A");
  });

  it("with two sessions on one host, a rebinding REG stays in its own session", async () => {
    const relay = await h.start();
    const one = await h.pair(["127.0.0.2", "127.0.0.3"]);
    const two = await h.pair(["127.0.0.2", "127.0.0.4"]);
    const moved = await open("127.0.0.2");
    expect(await register(moved, relay.port, two.session)).toBe("ACK\n");
    two.b.send("two", relay.port);
    one.b.send("one", relay.port);
    expect(await moved.nextText()).toBe("two");
    expect(await one.a.nextText()).toBe("one");
  });

  it("pairs two peers on one host and follows a rebinding REG from that host", async () => {
    const clock = new FakeClock();
    const relay = await h.start({ clock });
    const { a, b, session } = await h.pair(["127.0.0.5", "127.0.0.5"]);
    clock.advance(300);
    a.send("a->b", relay.port);
    expect(await b.nextText()).toBe("a->b");
    relay.relay.sweep(); // A spoke last; B has been quiet longer
    clock.advance(300);
    a.send("a again", relay.port);
    expect(await b.nextText()).toBe("a again");
    relay.relay.sweep();
    clock.advance(300);
    const b2 = await open("127.0.0.5");
    expect(await register(b2, relay.port, session)).toBe("ACK\n");
    a.send("to the new B", relay.port);
    expect(await b2.nextText()).toBe("to the new B");
  });

  it("expires idle sessions at the timeout, removing all state", async () => {
    const clock = new FakeClock();
    const relay = await h.start({ config: { sessionTimeoutSecs: 0.5 }, clock });
    const { a, b, session } = await h.pair();
    clock.advance(499);
    relay.relay.sweep();
    expect(relay.relay.table.sessionCount).toBe(1);
    clock.advance(1);
    relay.relay.sweep();
    expect(relay.relay.table.sessionCount).toBe(0);
    expect(relay.relay.table.stats.sessionsExpired).toBe(1);
    expect(relay.relay.table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
    // The routes went with the session: A's datagram reaches the control plane and is dropped there.
    a.send("after expiry", relay.port);
    await eventually(() => relay.relay.table.stats.drops["unknown-source"] === 1);
    expect(b.inbox).toEqual([]);
    expect(await register(a, relay.port, session)).toBe("ACK\n");
  });

  it("expires an idle session while another session is under load, and keeps the busy one", async () => {
    const clock = new FakeClock();
    const relay = await h.start({ config: { sessionTimeoutSecs: 0.5 }, clock });
    const busy = await h.pair(["127.0.0.2", "127.0.0.3"]);
    const idle = await h.pair(["127.0.0.4", "127.0.0.5"]);
    const payload = new Uint8Array(1000);
    let sent = 0;
    let steps = 0;
    // How soon the sweep timer runs under load is a figure for the bench; here: only the idle one goes.
    while (relay.relay.table.session(idle.session) !== undefined) {
      clock.advance(100);
      steps++;
      for (let i = 0; i < 200; i++) busy.a.send(payload, relay.port);
      sent += 200;
      await eventually(() => busy.b.inbox.length === sent, 10_000); // forwarded by the data plane alone
      busy.b.send("ack", relay.port); // the receiver answers, as a QUIC receiver does
      await busy.a.next();
      relay.relay.sweep();
    }
    expect(steps).toBe(5);
    expect(relay.relay.table.session(busy.session)).toBeDefined();
  });

  it("keeps a session with traffic alive past the timeout", async () => {
    const clock = new FakeClock();
    const relay = await h.start({ config: { sessionTimeoutSecs: 0.6 }, clock });
    const { a, b } = await h.pair();
    for (let i = 0; i < 12; i++) {
      a.send(`tick ${i}`, relay.port);
      expect(await b.nextText()).toBe(`tick ${i}`);
      clock.advance(100);
      relay.relay.sweep();
    }
    expect(relay.relay.table.sessionCount).toBe(1);
    // Without traffic the same session goes.
    clock.advance(600);
    relay.relay.sweep();
    expect(relay.relay.table.sessionCount).toBe(0);
  });
});
