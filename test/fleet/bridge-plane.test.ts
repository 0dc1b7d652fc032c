/**
 * Bridged sessions carried by the data plane: on the native plane the forwarding threads wrap a
 * local peer's datagrams into frames and unwrap the other relay's frames, so bridged traffic does
 * not enter the control plane; the TS plane does the same work in its control path. Relays on
 * different planes bridge to each other (the C++ and the TypeScript frames are the same bytes).
 */
import { afterEach, describe, expect, it } from "bun:test";
import { planesUnderTest, testPeers } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER, startFleetRelay, startRedis, type TestRedis } from "../support/fleet-harness.ts";
import { fleetPerSuite } from "../support/fleet-suite.ts";
import { type FleetPair, pairAcross, roundTrip } from "../support/fleet-peers.ts";

if (!REDIS_SERVER) console.warn("bridge data-plane tests skipped: redis-server is not installed (apt-get install -y redis-server)");
const suite = REDIS_SERVER ? describe : describe.skip;
const planes = planesUnderTest();

/** `count` datagrams of `size` bytes from x (via its relay) to y, in bursts; each arrives once, unchanged and in order. */
async function stream(from: FleetPair["a"], relay: { host: string; port: number }, to: FleetPair["a"], count: number, size: number): Promise<void> {
  const burst = 25;
  for (let sent = 0; sent < count; sent += burst) {
    const n = Math.min(burst, count - sent);
    const expected: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const payload = new Uint8Array(size).fill((sent + i) & 0xff);
      payload[0] = 0x40; // a QUIC short header's first byte: never a relay line
      new DataView(payload.buffer).setUint32(1, sent + i);
      expected.push(payload);
      from.send(payload, relay.port, relay.host);
    }
    for (const payload of expected) expect((await to.next()).data).toEqual(payload);
  }
}

suite.each(planes)("bridged sessions on the %s plane", (plane) => {
  const fleet = fleetPerSuite(plane, ["127.0.0.61", "127.0.0.62"]);
  const open = testPeers();

  it(plane === "native" ? "are forwarded by the data plane both ways: the control plane sees none of it" : "are forwarded by the control plane both ways", async () => {
    const [r1, r2] = fleet.relays() as [FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2);
    await roundTrip(p, "warm");
    const before = await Promise.all([r1.stats(), r2.stats()]);
    const count = 400;
    await stream(p.a, r1, p.b, count, 1200);
    await stream(p.b, r2, p.a, count, 1200);
    const after = await Promise.all([r1.stats(), r2.stats()]);
    for (const i of [0, 1]) {
      const sent = after[i]!.fleet!.bridge.dataPlane.sent - before[i]!.fleet!.bridge.dataPlane.sent;
      const delivered = after[i]!.fleet!.bridge.dataPlane.delivered - before[i]!.fleet!.bridge.dataPlane.delivered;
      const control = after[i]!.plane.controlPackets - before[i]!.plane.controlPackets;
      const bridged = after[i]!.fleet!.bridge.sent - before[i]!.fleet!.bridge.sent;
      expect(bridged).toBe(count);
      if (plane === "native") {
        expect({ sent, delivered }).toEqual({ sent: count, delivered: count });
        // Nothing of the 2 x 400 bridged datagrams came up (no REG or ping was sent meanwhile).
        expect(control).toBe(0);
      } else {
        expect({ sent, delivered }).toEqual({ sent: 0, delivered: 0 });
        expect(control).toBeGreaterThanOrEqual(count * 2);
      }
    }
  }, 30_000);

  it("still sends a peer's datagram too large to wrap nowhere, and counts it", async () => {
    const [r1, r2] = fleet.relays() as [FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2, ["127.0.0.4", "127.0.0.5"]);
    await roundTrip(p, "warm");
    const before = (await r1.stats()).fleet!.bridge as unknown as { oversize: number };
    // The default --max-datagram-size is 65535: the frame around a 65 480-byte datagram would pass it.
    p.a.send(new Uint8Array(65_480).fill(0x41), r1.port, r1.host);
    await roundTrip(p, "after");
    const after = (await r1.stats()).fleet!.bridge as unknown as { oversize: number };
    expect(after.oversize).toBe(before.oversize + 1);
    expect(p.b.inbox).toEqual([]);
  }, 30_000);
});

suite.skipIf(!planes.includes("native"))("a fleet of a TS-plane relay and a native-plane relay", () => {
  let redis: TestRedis | undefined;
  let relays: FleetRelay[] = [];
  const open = testPeers();
  afterEach(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    relays = [];
    await redis?.stop();
  });

  it("bridges both ways, byte for byte: frames made in C++ verify in TypeScript and back", async () => {
    redis = await startRedis();
    relays = await Promise.all([
      startFleetRelay({ host: "127.0.0.63", redisUrl: redis.url, plane: "ts" }),
      startFleetRelay({ host: "127.0.0.64", redisUrl: redis.url, plane: "native" }),
    ]);
    const [ts, native] = relays as [FleetRelay, FleetRelay];
    const p = await pairAcross(open, ts, native);
    await roundTrip(p, "warm");
    for (const size of [5, 100, 1200, 1452, 8000]) {
      await stream(p.a, ts, p.b, 10, size);
      await stream(p.b, native, p.a, 10, size);
    }
    const [s1, s2] = await Promise.all([ts.stats(), native.stats()]);
    expect(s2.fleet!.bridge.dataPlane.sent).toBeGreaterThanOrEqual(50);
    expect(s2.fleet!.bridge.dataPlane.delivered).toBeGreaterThanOrEqual(50);
    expect(s1.fleet!.bridge.delivered).toBeGreaterThanOrEqual(50);
    const refused = (r: Record<string, number>) => Object.entries(r).filter(([, n]) => n > 0);
    expect(refused(s1.fleet!.bridge.rejected)).toEqual([]);
    expect(refused(s2.fleet!.bridge.rejected)).toEqual([]);
  }, 30_000);
});
