/**
 * Peers of one session meet on one relay: a client that follows MOVE (the `move` flag in its
 * REG) and registers at another relay than its partner is sent to the partner's relay, so the
 * session is forwarded by one relay's data plane, not bridged. Plain clients are bridged as
 * before. A flood of flagged REGs costs the directory a bounded number of lookups.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { eventually, planesUnderTest, testPeers } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerTest } from "../support/fleet-suite.ts";
import { pairAcross, registerAt, roundTrip } from "../support/fleet-peers.ts";
import { Forger } from "../support/forge.ts";

const forger = Forger.open();

if (!REDIS_SERVER) console.warn("fleet redirect tests skipped: redis-server is not installed (apt-get install -y redis-server)");
const suite = REDIS_SERVER ? describe : describe.skip;

interface Placement {
  moved: number;
  here: number;
  unlooked: number;
}
const placementOf = async (relay: FleetRelay) => ((await relay.stats()).fleet as unknown as { placement: Placement }).placement;

suite.each(planesUnderTest())("peers meet on one relay on the %s plane", (plane) => {
  const fleet = fleetPerTest(plane);
  const open = testPeers();
  const start = (hosts: string[]) => fleet.start(hosts);

  it("a client that follows MOVE is sent to its partner's relay, and the session is local there", async () => {
    const [r1, r2] = (await start(["127.0.0.71", "127.0.0.72"])) as [FleetRelay, FleetRelay];
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    const session = crypto.randomUUID();
    // The first peer: a plain client (or a flagged one: nobody holds the session yet).
    expect(await registerAt(a, r1, session)).toBe("ACK\n");
    await eventually(async () => Number(await fleet.redis().command("EXISTS", [`quic-relay:session:${session}`])) === 1);
    b.send(`REG:${session} move\n`, r2.port, r2.host);
    expect(await b.nextText()).toBe(`MOVE ${r1.host}:${r1.port}\n`);
    b.send(`REG:${session} move\n`, r1.port, r1.host);
    expect(await b.nextText()).toBe("ACK\n");
    await roundTrip({ a, b, session, ra: r1, rb: r1 }, "local");
    const [s1, s2] = [await r1.stats(), await r2.stats()];
    expect(s1.fleet!.bridgedNow).toBe(0);
    expect(s2.sessions).toBe(0);
    expect((await placementOf(r2)).moved).toBe(1);
    // Forwarded by r1's data plane once its routes are in: more datagrams, none through r2.
    for (let i = 0; i < 10; i++) await roundTrip({ a, b, session, ra: r1, rb: r1 }, `more ${i}`);
    expect((await r2.stats()).plane.controlPackets).toBe(s2.plane.controlPackets);
  }, 30_000);

  it("a flagged REG for a session nobody holds is registered where it arrives; a plain client is bridged as before", async () => {
    const [r1, r2] = (await start(["127.0.0.73", "127.0.0.74"])) as [FleetRelay, FleetRelay];
    const a = await open("127.0.0.2");
    const session = crypto.randomUUID();
    a.send(`REG:${session} move\n`, r1.port, r1.host);
    expect(await a.nextText()).toBe("ACK\n");
    expect((await placementOf(r1)).here).toBe(1);
    const plain = await pairAcross(open, r1, r2, ["127.0.0.4", "127.0.0.5"]);
    await roundTrip(plain, "bridged");
    expect((await r2.stats()).fleet!.bridgedNow).toBe(1);
  }, 30_000);

  it("while the directory is down, flagged REGs are registered at once (no lookup), and bridged once it is back", async () => {
    const [r1, r2] = (await start(["127.0.0.75", "127.0.0.76"])) as [FleetRelay, FleetRelay];
    await fleet.redis().stop();
    await eventually(async () => !(await r2.stats()).fleet!.reachable && !(await r1.stats()).fleet!.reachable, 10_000);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    const session = crypto.randomUUID();
    a.send(`REG:${session} move\n`, r1.port, r1.host);
    expect(await a.nextText()).toBe("ACK\n");
    b.send(`REG:${session} move\n`, r2.port, r2.host);
    expect(await b.nextText()).toBe("ACK\n");
    expect((await placementOf(r2)).unlooked).toBe(1);
    await fleet.redis().start();
    await eventually(async () => (await r1.stats()).fleet!.reachable && (await r2.stats()).fleet!.reachable, 10_000);
    await eventually(async () => (await r1.stats()).fleet!.bridgedNow === 1 && (await r2.stats()).fleet!.bridgedNow === 1, 10_000);
    await roundTrip({ a, b, session, ra: r1, rb: r2 }, "bridged after the outage");
  }, 30_000);

  it.skipIf(typeof forger === "string")("a flood of flagged REGs from forged sources: each handled once, directory lookups bounded by the budget", async () => {
    const [r1] = (await start(["127.0.0.77"])) as [FleetRelay];
    const forge = forger as Forger;
    const before = (await r1.stats()).fleet!.directory;
    const to = { address: r1.host, port: r1.port };
    const total = 5000;
    const started = performance.now();
    for (let i = 0; i < total; i++) forge.send(`REG:flood-${i} move\n`, { address: `127.0.${1 + (i >> 8)}.${i & 255}`, port: 40_000 + (i % 1000) }, to);
    await eventually(async () => {
      const p = await placementOf(r1);
      return p.here + p.unlooked === total;
    }, 20_000);
    const elapsedS = (performance.now() - started) / 1000;
    const p = await placementOf(r1);
    // One HGETALL per lookup, within a budget of 2000 plus 2000 a second (a bound that load can only loosen).
    expect(p.here).toBeLessThanOrEqual(2000 + 2000 * elapsedS);
    expect(p.moved).toBe(0);
    expect((await r1.stats()).sessions).toBe(total);
    expect((await r1.stats()).fleet!.directory.errors).toBe(before.errors);
  }, 60_000);
});

afterAll(() => {
  if (typeof forger !== "string") forger.close();
});
