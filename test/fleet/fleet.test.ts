import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { eventually, planesUnderTest, TestPeer, testPeers } from "../utils.ts";
import { FLEET_SECRET, type FleetRelay, type FleetRelayStats, REDIS_SERVER, startFleetRelay, startRedis, type TestRedis } from "../support/fleet-harness.ts";
import { BridgeCodec } from "../../src/fleet/bridge-codec.ts";
import { Forger } from "../support/forge.ts";

const forger = Forger.open();

if (!REDIS_SERVER) console.warn("fleet tests skipped: redis-server is not installed (apt-get install -y redis-server)");
const suite = REDIS_SERVER ? describe : describe.skip;

const RELAY_HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];

/** The relay's full session-table stats (the harness's type names only a few). */
const tableOf = async (relay: FleetRelay) => (await relay.stats()).table as FleetRelayStats["table"] & { heldAccepted: number };

suite.each(planesUnderTest())("a fleet of three relays on the %s plane", (plane) => {
  let redis: TestRedis;
  let relays: FleetRelay[] = [];
  const open = testPeers();

  beforeAll(async () => {
    redis = await startRedis();
    relays = await Promise.all(RELAY_HOSTS.map((host) => startFleetRelay({ host, redisUrl: redis.url, plane })));
  });
  afterAll(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    await redis?.stop();
  });

  async function register(peer: TestPeer, relay: FleetRelay, session: string): Promise<string> {
    peer.send(`REG:${session}\n`, relay.port, relay.host);
    return peer.nextText(3000);
  }
  const send = (peer: TestPeer, relay: FleetRelay, data: Uint8Array | string) => peer.send(data, relay.port, relay.host);

  /** A on relay `ra`, B on relay `rb`: both registered, bridged, and a first datagram through each way. */
  async function bridgedPair(ra: FleetRelay, rb: FleetRelay, hosts: [string, string] = ["127.0.0.2", "127.0.0.3"]) {
    const a = await open(hosts[0]);
    const b = await open(hosts[1]);
    const session = crypto.randomUUID();
    expect(await register(a, ra, session)).toBe("ACK\n");
    expect(await register(b, rb, session)).toBe("ACK\n");
    return { a, b, session };
  }

  async function roundTrip(a: TestPeer, ra: FleetRelay, b: TestPeer, rb: FleetRelay, label: string) {
    send(a, ra, `${label} a->b`);
    const atB = await b.next(3000);
    expect(new TextDecoder().decode(atB.data)).toBe(`${label} a->b`);
    expect(atB.port).toBe(rb.port);
    send(b, rb, `${label} b->a`);
    const atA = await a.next(3000);
    expect(new TextDecoder().decode(atA.data)).toBe(`${label} b->a`);
    expect(atA.port).toBe(ra.port);
  }

  it("forwards both ways, byte for byte, between peers on different relays", async () => {
    const [r1, r2] = relays as [FleetRelay, FleetRelay];
    const { a, b } = await bridgedPair(r1, r2);
    await roundTrip(a, r1, b, r2, "first");
    for (const size of [1, 1200, 1452, 8000]) {
      const payload = crypto.getRandomValues(new Uint8Array(size));
      send(a, r1, payload);
      expect((await b.next(3000)).data).toEqual(payload);
      send(b, r2, payload);
      expect((await a.next(3000)).data).toEqual(payload);
    }
    const s1 = await r1.stats();
    expect(s1.fleet!.bridgedNow).toBeGreaterThanOrEqual(1);
    expect(s1.fleet!.bridge.sent).toBeGreaterThanOrEqual(5);
  });

  it("delivers what the first peer sent before its partner registered elsewhere", async () => {
    const [, r2, r3] = relays as [FleetRelay, FleetRelay, FleetRelay];
    const a = await open("127.0.0.4");
    const b = await open("127.0.0.5");
    const session = crypto.randomUUID();
    expect(await register(a, r2, session)).toBe("ACK\n");
    const held = (await tableOf(r2)).heldAccepted;
    send(a, r2, "early-1");
    send(a, r2, "early-2");
    await eventually(async () => (await tableOf(r2)).heldAccepted === held + 2);
    expect(await register(b, r3, session)).toBe("ACK\n");
    expect(new TextDecoder().decode((await b.next(3000)).data)).toBe("early-1");
    expect(new TextDecoder().decode((await b.next(3000)).data)).toBe("early-2");
    await roundTrip(a, r2, b, r3, "after");
  });

  it("still pairs locally when both peers hit the same relay, and keeps sessions apart", async () => {
    const [r1, r2, r3] = relays as [FleetRelay, FleetRelay, FleetRelay];
    const local = await bridgedPair(r3, r3, ["127.0.0.2", "127.0.0.3"]);
    const x = await bridgedPair(r1, r3, ["127.0.0.2", "127.0.0.3"]);
    const y = await bridgedPair(r2, r1, ["127.0.0.2", "127.0.0.3"]);
    await roundTrip(local.a, r3, local.b, r3, "local");
    await roundTrip(x.a, r1, x.b, r3, "x");
    await roundTrip(y.a, r2, y.b, r1, "y");
    // Markers along each session's own path: a datagram that crossed over would arrive before them.
    await roundTrip(local.a, r3, local.b, r3, "local marker");
    await roundTrip(x.a, r1, x.b, r3, "x marker");
    await roundTrip(y.a, r2, y.b, r1, "y marker");
    for (const p of [local.a, local.b, x.a, x.b, y.a, y.b]) expect(p.inbox).toEqual([]);
  });

  it("does not forward a third party's REG for a bridged session, nor strangers' data", async () => {
    const [r1, r2, r3] = relays as [FleetRelay, FleetRelay, FleetRelay];
    const { a, b, session } = await bridgedPair(r1, r2);
    await roundTrip(a, r1, b, r2, "pre");
    const intruder = await open("127.0.0.9");
    expect(await register(intruder, r3, session)).toBe("ACK\n"); // a lone peer on a third relay
    const [held, dropped] = [(await tableOf(r3)).heldAccepted, (await tableOf(r1)).drops["unknown-source"] ?? 0];
    send(intruder, r3, "hello?");
    send(intruder, r1, "junk");
    // Held where it came in, and dropped as a stranger's: both handled before the markers below,
    // which would arrive after anything either relay had sent on to A or B.
    await eventually(async () => (await tableOf(r3)).heldAccepted === held + 1);
    await eventually(async () => ((await tableOf(r1)).drops["unknown-source"] ?? 0) === dropped + 1);
    expect(a.inbox).toEqual([]);
    expect(b.inbox).toEqual([]);
    await roundTrip(a, r1, b, r2, "post");
  });

  it("drops relay-to-relay datagrams from outside the fleet, and forged, stale and wrong-secret ones from a member's address, and counts them", async () => {
    const [r1, r2] = relays as [FleetRelay, FleetRelay];
    const { a, b, session } = await bridgedPair(r1, r2);
    await roundTrip(a, r1, b, r2, "pre");
    const before = (await r2.stats()).fleet!.bridge.rejected;
    const rejected = async (reason: string) => ((await r2.stats()).fleet!.bridge.rejected[reason] ?? 0) - (before[reason] ?? 0);
    // Made as r1 would make them for r2, with the fleet secret: only r1's address may send them.
    const asR1 = (secret: string, clock?: () => number) => new BridgeCodec({ self: r1.advertise, secrets: [secret], clock });
    const authentic = asR1(FLEET_SECRET).encode(r2.advertise, session, new TextEncoder().encode("from outside"));
    const attacker = await open("127.0.0.12"); // a member's host, another port
    send(attacker, r2, authentic);
    await eventually(async () => (await rejected("unknown-sender")) === 1);
    if (typeof forger !== "string") {
      const from = { address: r1.host, port: r1.port };
      const to = { address: r2.host, port: r2.port };
      const wrongSecret = asR1("not-the-fleet-secret-at-all").encode(r2.advertise, session, new TextEncoder().encode("forged"));
      const stale = asR1(FLEET_SECRET, () => Date.now() - 120_000).encode(r2.advertise, session, new TextEncoder().encode("stale"));
      const tampered = asR1(FLEET_SECRET).encode(r2.advertise, session, new TextEncoder().encode("tampered"));
      tampered[tampered.length - 20]! ^= 1;
      const forRelay3 = asR1(FLEET_SECRET).encode(relays[2]!.advertise, session, new TextEncoder().encode("for r3"));
      for (const d of [wrongSecret, stale, tampered, forRelay3]) forger.send(d, from, to);
      // Rejected (counted) on arrival: nothing of them went on to B.
      await eventually(async () => (await rejected("unknown-key")) + (await rejected("bad-tag")) + (await rejected("stale")) >= 4);
      // A wrong secret is told apart by its key id (or, 1 time in 256, fails the tag).
      expect((await rejected("unknown-key")) + (await rejected("bad-tag"))).toBe(3);
      expect(await rejected("stale")).toBe(1);
    }
    expect(b.inbox).toEqual([]);
    await roundTrip(a, r1, b, r2, "post");
  });

  it.skipIf(typeof forger === "string")("never registers the address of another fleet member (a forged REG from it)", async () => {
    const [r1, r2] = relays as [FleetRelay, FleetRelay];
    const forge = forger as Forger;
    const before = await r1.stats();
    const session = crypto.randomUUID();
    const fromR2 = { address: r2.host, port: r2.port };
    const toR1 = { address: r1.host, port: r1.port };
    const relayAddressDrops = async () => (await r1.stats()).table.drops["relay-address"] ?? 0;
    // r1 learns the member set on a heartbeat; until then a REG from r2's address is registered
    // like any other. Probe (in a session of the probe's own) until r1 drops one.
    const probe = `probe-${crypto.randomUUID()}`;
    const initial = await relayAddressDrops();
    await eventually(async () => {
      forge.send(`REG:${probe}\n`, fromR2, toR1);
      return (await relayAddressDrops()) > initial;
    }, 10_000, 50);
    // Now the REG under test; A's REG below arrives after it, on the same socket.
    const known = await relayAddressDrops();
    forge.send(`REG:${session}\n`, fromR2, toR1);
    await eventually(async () => (await relayAddressDrops()) > known);
    const a = await open("127.0.0.2");
    expect(await register(a, r1, session)).toBe("ACK\n"); // a lone peer: nothing paired it with r2
    expect((await r1.stats()).table.sessionsPaired).toBe(before.table.sessionsPaired);
  }, 20_000);
});
