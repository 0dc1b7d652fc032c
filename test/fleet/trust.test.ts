/**
 * Relay-to-relay frames as an attacker on the path sees them: captured on the wire, replayed from
 * an address outside the fleet, replayed with the sending relay's own (forged) source address,
 * sent to a third relay, and replayed after the sending relay died. None of it is delivered, and
 * no link moves.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { isBridgeDatagram } from "../../src/fleet/bridge-codec.ts";
import { eventually, planesUnderTest, type TestPeer, testPeers } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerTest } from "../support/fleet-suite.ts";
import { type FleetPair, pairAcross, registerAt, roundTrip } from "../support/fleet-peers.ts";
import { Forger } from "../support/forge.ts";
import { type Captured, Sniffer } from "../support/sniff.ts";

const sniffer = Sniffer.open();
const forger = Forger.open();
const why = !REDIS_SERVER ? "redis-server is not installed" : typeof sniffer === "string" ? sniffer : typeof forger === "string" ? forger : undefined;
if (why) console.warn(`fleet trust tests skipped: ${why}`);
const suite = why ? describe.skip : describe;

suite.each(planesUnderTest())("relay-to-relay frames under attack on the %s plane", (plane) => {
  const sniff = sniffer as Sniffer;
  const forge = forger as Forger;
  const fleet = fleetPerTest(plane);
  const open = testPeers();
  const start = (hosts: string[]) => fleet.start(hosts);
  const rejected = async (relay: FleetRelay, reason: string) => (await relay.stats()).fleet!.bridge.rejected[reason] ?? 0;

  /**
   * Sends a datagram through the bridge from `ra` to `rb` and returns the frame as captured between
   * them. The capture socket sees all loopback traffic; when other traffic overflowed its buffer
   * and the frame was lost, another datagram is sent (the frame is there by the time `b` got it).
   */
  const capture = async (a: TestPeer, ra: FleetRelay, rb: FleetRelay, b: TestPeer, label: string): Promise<Captured> => {
    for (let attempt = 0; ; attempt++) {
      sniff.drain();
      a.send(`${label} ${attempt}`, ra.port, ra.host);
      expect(new TextDecoder().decode((await b.next()).data)).toBe(`${label} ${attempt}`);
      const frame = sniff.drain().find((c) => c.from.address === ra.host && c.from.port === ra.port && c.to.port === rb.port && isBridgeDatagram(c.data));
      if (frame) return frame;
      if (attempt >= 20) throw new Error("no relay-to-relay frame captured in 20 attempts");
    }
  };
  /** Nothing but `label` reaches `b` next: whatever was replayed before it was not delivered. */
  const nextIsOnly = async (p: FleetPair, label: string) => {
    p.a.send(label, p.ra.port, p.ra.host);
    expect(new TextDecoder().decode((await p.b.next()).data)).toBe(label);
    expect(p.b.inbox).toEqual([]);
  };

  it("a captured frame replayed 100 times from outside the fleet, or with the sender's forged address, delivers nothing", async () => {
    const [r1, r2] = (await start(["127.0.0.41", "127.0.0.42"])) as [FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2);
    await roundTrip(p, "warm");
    const frame = await capture(p.a, r1, r2, p.b, "captured");

    const attacker = await open("127.0.0.99");
    for (let i = 0; i < 100; i++) attacker.send(frame.data, r2.port, r2.host);
    await eventually(async () => (await rejected(r2, "unknown-sender")) >= 100);
    await nextIsOnly(p, "after outside replays");

    for (let i = 0; i < 100; i++) forge.send(frame.data, frame.from, frame.to);
    await eventually(async () => (await rejected(r2, "replayed")) >= 100);
    await nextIsOnly(p, "after forged replays");
    await roundTrip(p, "still bridged");
    expect((await r2.stats()).fleet!.bridge.delivered).toBeGreaterThan(0);
  }, 30_000);

  it("a frame made for one relay is refused by another, even from the sender's address: a waiting session is not bridged by it", async () => {
    const [r1, r2, r3] = (await start(["127.0.0.43", "127.0.0.44", "127.0.0.45"])) as [FleetRelay, FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2);
    const frame = await capture(p.a, r1, r2, p.b, "captured");
    // A third peer of the same session waits alone on r3 (two relays hold one peer each: nothing to join).
    const c = await open("127.0.0.4");
    expect(await registerAt(c, r3, p.session)).toBe("ACK\n");

    const attacker = await open("127.0.0.99");
    for (let i = 0; i < 20; i++) attacker.send(frame.data, r3.port, r3.host);
    for (let i = 0; i < 20; i++) forge.send(frame.data, frame.from, { address: r3.host, port: r3.port });
    await eventually(async () => (await rejected(r3, "unknown-sender")) >= 20 && (await rejected(r3, "bad-tag")) >= 20);
    const s3 = await r3.stats();
    expect(s3.fleet!.bridgedNow).toBe(0);
    expect(s3.fleet!.bridge.delivered).toBe(0);
    expect(c.inbox).toEqual([]);
    await roundTrip(p, "unaffected");
  }, 30_000);

  it("a REG forged with a victim's address at the partner's relay: the bridge delivers at most the unanswered bound to the victim", async () => {
    const [r1, r2] = (await start(["127.0.0.48", "127.0.0.49"])) as [FleetRelay, FleetRelay];
    const a = await open("127.0.0.2");
    const victim = await open("127.0.0.98");
    const session = crypto.randomUUID();
    expect(await registerAt(a, r1, session)).toBe("ACK\n");
    forge.send(`REG:${session}\n`, { address: victim.host, port: victim.port }, { address: r2.host, port: r2.port });
    // The victim got the ACK it never asked for; the relays bridge the session.
    expect(await victim.nextText()).toBe("ACK\n");
    await eventually(async () => (await r1.stats()).fleet!.bridgedNow === 1 && (await r2.stats()).fleet!.bridgedNow === 1);
    const count = 1000;
    const datagram = new Uint8Array(1200).fill(7);
    for (let i = 0; i < count; i++) {
      a.send(datagram, r1.port, r1.host);
      if (i % 100 === 99) await eventually(async () => (await r1.stats()).fleet!.bridge.sent >= i + 1);
    }
    const bridgeOf = async () => (await r2.stats()).fleet!.bridge as unknown as { delivered: number; unanswered: number };
    await eventually(async () => {
      const b = await bridgeOf();
      return b.delivered + b.unanswered >= count;
    }, 10_000);
    const b = await bridgeOf();
    // 1 MiB (--max-unanswered-bytes) of 1200-byte datagrams, not one more.
    expect(b.delivered).toBe(Math.floor((1024 * 1024) / 1200));
    expect(b.unanswered).toBe(count - b.delivered);
    await eventually(() => victim.inbox.length >= b.delivered);
    expect(victim.inbox.length).toBe(b.delivered);
  }, 30_000);

  it("after the sending relay dies, replayed frames do not move the link: the attacker receives none of the peer's datagrams", async () => {
    const [r1, r2] = (await start(["127.0.0.46", "127.0.0.47"])) as [FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2);
    const frame = await capture(p.a, r1, r2, p.b, "captured");
    await r1.kill();

    const attacker = await open("127.0.0.99");
    attacker.send(frame.data, r2.port, r2.host);
    forge.send(frame.data, frame.from, frame.to);
    await eventually(async () => (await rejected(r2, "unknown-sender")) >= 1 && (await rejected(r2, "replayed")) >= 1);
    const before = (await r2.stats()).fleet!.bridge.sent;
    for (let i = 0; i < 100; i++) p.b.send(`to the dead relay ${i}`, r2.port, r2.host);
    // r2 still sends them towards r1's address (counted), none to the attacker.
    await eventually(async () => (await r2.stats()).fleet!.bridge.sent >= before + 100);
    expect(attacker.inbox).toEqual([]);
    expect(p.b.inbox).toEqual([]);
  }, 30_000);
});

afterAll(() => {
  if (typeof sniffer !== "string") sniffer.close();
  if (typeof forger !== "string") forger.close();
});
