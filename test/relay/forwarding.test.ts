import { describe, expect, it } from "bun:test";
import { bytes, eventually, planesUnderTest, register, relayHarness, text } from "../utils.ts";

describe.each(planesUnderTest())("forwarding on the %s plane", (plane) => {
  const h = relayHarness(plane);
  const open = h.open;

  it("answers REG with exactly ACK\\n, with or without a newline", async () => {
    const relay = await h.start();
    const a = await open("127.0.0.2");
    for (const form of ["REG:s1\n", "REG:s1", "REG:s1\r\n"]) {
      a.send(form, relay.port);
      const reply = await a.next();
      expect(text(reply.data)).toBe("ACK\n");
      expect(reply.port).toBe(relay.port);
    }
    expect(relay.relay.table.sessionCount).toBe(1);
  });

  it("forwards both ways byte for byte once paired, from the relay's socket", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    const payloads = [new Uint8Array([0]), crypto.getRandomValues(new Uint8Array(1200)), bytes("ACK"), bytes("ACK\n\n"), new Uint8Array(0)];
    for (const payload of payloads) {
      a.send(payload, relay.port);
      const got = await b.next();
      expect(got.data).toEqual(payload);
      expect(got.port).toBe(relay.port);
      b.send(payload, relay.port);
      expect((await a.next()).data).toEqual(payload);
    }
  });

  it("never forwards a relay-protocol line from a peer, and counts it", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    for (const line of ["ACK\n", "ERR full\n", "RETRY AAAAAAAAAAAAAAAA\n"]) a.send(line, relay.port);
    a.send("after", relay.port);
    expect(await b.nextText()).toBe("after");
    expect(b.inbox).toEqual([]);
    await eventually(() => relay.relay.table.stats.drops["relay-line"] === 3);
    // One peer speaking like a relay is not a loop: the session stays.
    expect(relay.relay.table.pairedCount).toBe(1);
  });

  it("forwards nothing before pairing and nothing from strangers", async () => {
    const relay = await h.start({ limits: { heldMaxCount: 0 } });
    const a = await open("127.0.0.2");
    const stranger = await open("127.0.0.9");
    expect(await register(a, relay.port, "lonely")).toBe("ACK\n");
    a.send("too early", relay.port);
    stranger.send("junk", relay.port);
    stranger.send(crypto.getRandomValues(new Uint8Array(500)), relay.port);
    // All three went up to the control plane (no routes) and were dropped there, sending nothing.
    const drops = relay.relay.table.stats.drops;
    await eventually(() => drops["unknown-source"] === 2 && drops["early-overflow"] === 1);
    expect(a.inbox).toEqual([]);
    expect(stranger.inbox).toEqual([]);
    expect(relay.relay.table.sessionCount).toBe(1);
  });

  it("keeps sessions apart", async () => {
    const relay = await h.start();
    const one = await h.pair(["127.0.0.2", "127.0.0.3"]);
    const two = await h.pair(["127.0.0.2", "127.0.0.3"]);
    one.a.send("for one.b", relay.port);
    two.a.send("for two.b", relay.port);
    expect(await one.b.nextText()).toBe("for one.b");
    expect(await two.b.nextText()).toBe("for two.b");
    // Markers back along each session's route: nothing crossed over to a sender before them.
    one.b.send("marker one", relay.port);
    two.b.send("marker two", relay.port);
    expect(await one.a.takeUntil("marker one")).toEqual([]);
    expect(await two.a.takeUntil("marker two")).toEqual([]);
  });

  it("holds early datagrams and delivers them after the partner's ACK, in order", async () => {
    const relay = await h.start();
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    expect(await register(a, relay.port, "early")).toBe("ACK\n");
    a.send("initial-1", relay.port);
    a.send("initial-2", relay.port);
    await eventually(() => relay.relay.table.stats.heldAccepted === 2);
    b.send("REG:early\n", relay.port);
    expect(await b.nextText()).toBe("ACK\n");
    expect(await b.nextText()).toBe("initial-1");
    expect(await b.nextText()).toBe("initial-2");
  });

  it("does not forward a paired peer's keepalive REG, and answers it", async () => {
    const relay = await h.start();
    const { a, b, session } = await h.pair();
    a.send(`REG:${session}\n`, relay.port);
    expect(await a.nextText()).toBe("ACK\n");
    // The REG was handled (answered) before the marker left A: a forwarded copy would precede it.
    a.send("marker", relay.port);
    expect(await b.takeUntil("marker")).toEqual([]);
  });

  it("forwards a burst without loss", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    const count = 2000;
    for (let i = 0; i < count; i++) {
      const d = new Uint8Array(200);
      new DataView(d.buffer).setUint32(0, i);
      a.send(d, relay.port);
      // Flow control: bursts of 200, each delivered before the next, so loopback buffers never overflow.
      if (i % 200 === 199) await eventually(() => b.inbox.length === i + 1, 10_000);
    }
    a.send("end of burst", relay.port);
    const got = await b.takeUntil("end of burst");
    expect(relay.relay.plane.counters().forwardedPackets + relay.relay.plane.counters().controlPackets).toBeGreaterThanOrEqual(count);
    expect(got.length).toBe(count);
    const seen = new Set(got.map((r) => new DataView(r.data.buffer).getUint32(0)));
    expect(seen.size).toBe(count);
  });

  it("keeps serving when a peer's port closes and ICMP errors come back", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair();
    b.close();
    const forwarded = relay.relay.plane.counters().forwardedPackets;
    for (let i = 0; i < 20; i++) a.send("to a closed port", relay.port);
    // All 20 left the relay (each drawing an ICMP port unreachable) before the next registration.
    await eventually(() => relay.relay.plane.counters().forwardedPackets === forwarded + 20);
    const c = await open("127.0.0.4");
    expect(await register(c, relay.port, "after-icmp")).toBe("ACK\n");
  });

  it("listens dual stack on :: and pairs an IPv4 peer with an IPv6 peer", async () => {
    const relay = await h.start({ config: { host: "::" } });
    const v4 = await open("127.0.0.2");
    const v6 = await open("::1");
    v4.send("REG:dual\n", relay.port, "127.0.0.1");
    expect(await v4.nextText()).toBe("ACK\n");
    v6.send("REG:dual\n", relay.port, "::1");
    expect(await v6.nextText()).toBe("ACK\n");
    v4.send("over v4", relay.port, "127.0.0.1");
    expect(await v6.nextText()).toBe("over v4");
    v6.send("over v6", relay.port, "::1");
    const got = await v4.next();
    expect(text(got.data)).toBe("over v6");
    expect(got.port).toBe(relay.port);
  });

  it("drops oversize datagrams and counts them", async () => {
    const relay = await h.start({ config: { maxDatagramSize: 1000 } });
    const { a, b } = await h.pair();
    a.send(new Uint8Array(1001), relay.port);
    a.send(new Uint8Array(1000), relay.port);
    expect((await b.next()).data.length).toBe(1000);
    a.send("marker", relay.port);
    expect(await b.takeUntil("marker")).toEqual([]);
    await eventually(() => relay.relay.plane.counters().oversize === 1);
  });
});
