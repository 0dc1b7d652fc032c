import { describe, expect, it } from "bun:test";
import { eventually, longHeader, planesUnderTest, register, relayHarness, shortHeader, type TestPeer, type TestRelay } from "../utils.ts";

const CLIENT_CID = [1, 2, 3, 4, 5, 6, 7, 8];
const SERVER_CID = [9, 9, 9, 9, 8, 8, 8, 8];

/** A QUIC-like handshake through the relay, which sees the connection IDs in clear. */
async function handshake(relay: TestRelay, client: TestPeer, server: TestPeer): Promise<void> {
  client.send(longHeader([7, 7, 7, 7, 7, 7, 7, 7], CLIENT_CID), relay.port);
  await server.next();
  server.send(longHeader(CLIENT_CID, SERVER_CID), relay.port);
  await client.next();
  await eventually(() => relay.relay.table.indexSizes().cids! >= 2);
}

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
    expect(await a.silence(100)).toEqual([]);
  });

  it("does not let bare data from a new port of a peer's host take the session", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    const neighbour = await open("127.0.0.2"); // same IP as A: a CGNAT neighbour
    neighbour.send("let me in", relay.port);
    await Bun.sleep(100);
    b.send("for A only", relay.port);
    expect(await a.nextText()).toBe("for A only");
    expect(await neighbour.silence(100)).toEqual([]);
  });

  it("follows bare data from a new port once the peer's old address has gone quiet", async () => {
    const relay = await h.start({ limits: { rebindQuietMs: 300 } });
    const { a, b } = await h.pair();
    a.send("from the old port", relay.port);
    expect(await b.nextText()).toBe("from the old port");
    a.close(); // the NAT forgets A's mapping; A's next datagrams come from a new port
    const moved = await open("127.0.0.2");
    moved.send("too soon", relay.port);
    expect(await b.silence(100)).toEqual([]);
    await Bun.sleep(350);
    moved.send("from the new port", relay.port);
    expect(await b.nextText()).toBe("from the new port");
    b.send("back to the new port", relay.port);
    expect(await moved.nextText()).toBe("back to the new port");
    expect(relay.relay.table.stats.rebinds.quiet).toBe(1);
  });

  it("follows a QUIC peer whose NAT moved it, by connection ID", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    await handshake(relay, a, b);
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
    await handshake(relay, a, b);
    const elsewhere = await open("127.0.0.8");
    elsewhere.send(shortHeader(SERVER_CID), relay.port);
    expect(await b.silence(150)).toEqual([]);
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
    const relay = await h.start();
    const { a, b, session } = await h.pair(["127.0.0.5", "127.0.0.5"]);
    a.send("a->b", relay.port);
    expect(await b.nextText()).toBe("a->b");
    await Bun.sleep(300); // A spoke last; B has been quiet longer
    a.send("a again", relay.port);
    expect(await b.nextText()).toBe("a again");
    await Bun.sleep(300);
    const b2 = await open("127.0.0.5");
    expect(await register(b2, relay.port, session)).toBe("ACK\n");
    a.send("to the new B", relay.port);
    expect(await b2.nextText()).toBe("to the new B");
  });

  it("expires idle sessions within the timeout plus a second, removing all state", async () => {
    const relay = await h.start({ config: { sessionTimeoutSecs: 0.5 } });
    const { a, b, session } = await h.pair();
    const started = Date.now();
    await eventually(() => relay.relay.table.sessionCount === 0, 2500, 10);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(1500);
    expect(relay.relay.table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
    a.send("after expiry", relay.port);
    expect(await b.silence(150)).toEqual([]);
    expect(await register(a, relay.port, session)).toBe("ACK\n");
  });

  it("expires an idle session while another session is under load, and keeps the busy one", async () => {
    const relay = await h.start({ config: { sessionTimeoutSecs: 0.5 } });
    const busy = await h.pair(["127.0.0.2", "127.0.0.3"]);
    const idle = await h.pair(["127.0.0.4", "127.0.0.5"]);
    const started = Date.now();
    const payload = new Uint8Array(1000);
    let sent = 0;
    // How soon the sweep runs under load is a figure for the bench; here: it does, and only the idle one goes.
    while (relay.relay.table.session(idle.session) !== undefined) {
      for (let i = 0; i < 50; i++) busy.a.send(payload, relay.port);
      busy.b.send("ack", relay.port); // the receiver answers, as a QUIC receiver does
      sent += 50;
      await Bun.sleep(1);
    }
    expect(sent).toBeGreaterThan(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(relay.relay.table.session(busy.session)).toBeDefined();
  });

  it("keeps a session with traffic alive past the timeout", async () => {
    const relay = await h.start({ config: { sessionTimeoutSecs: 0.6 } });
    const { a, b } = await h.pair();
    for (let i = 0; i < 12; i++) {
      a.send(`tick ${i}`, relay.port);
      expect(await b.nextText()).toBe(`tick ${i}`);
      await Bun.sleep(100);
    }
    expect(relay.relay.table.sessionCount).toBe(1);
  });
});
