/**
 * A relay of the fleet dies (SIGKILL): the peer it held registers again at another relay, as a
 * client whose relay stopped answering does, and its session resumes there, in a fleet of two as
 * of three. While the peer's relay is alive, nobody else takes the peer's place.
 */
import { describe, expect, it } from "bun:test";
import { eventually, planesUnderTest, testPeers } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { pairAcross, registerAt, roundTrip, roundTripOnceSettled } from "../support/fleet-peers.ts";
import { fleetPerTest } from "../support/fleet-suite.ts";

if (!REDIS_SERVER) console.warn("fleet failover tests skipped: redis-server is not installed (apt-get install -y redis-server)");
const suite = REDIS_SERVER ? describe : describe.skip;

suite.each(planesUnderTest())("fleet failover on the %s plane", (plane) => {
  const fleet = fleetPerTest(plane);
  const open = testPeers();
  // A long heartbeat: the directory would notice a death late; the relays must not need it to.
  const start = (hosts: string[]) => fleet.start(hosts, { heartbeatSecs: 5 });

  for (const dies of ["a", "b"] as const) {
    it(`two relays: the relay of peer ${dies} dies, ${dies} registers at the other relay from a new address and the session resumes there`, async () => {
      const [r1, r2] = (await start(["127.0.0.51", "127.0.0.52"])) as [FleetRelay, FleetRelay];
      const p = await pairAcross(open, r1, r2);
      await roundTrip(p, "before");
      const [dead, survivor] = dies === "a" ? [r1, r2] : [r2, r1];
      await dead.kill();

      // The moved peer: another port (its NAT gave it a new mapping towards the other relay).
      const moved = await open(dies === "a" ? "127.0.0.2" : "127.0.0.3");
      const started = performance.now();
      expect(await registerAt(moved, survivor, p.session)).toBe("ACK\n");
      const tookMs = performance.now() - started;
      const resumed = dies === "a" ? { ...p, a: moved, ra: survivor } : { ...p, b: moved, rb: survivor };
      await roundTrip(resumed, "after");
      const stats = await survivor.stats();
      expect((stats.table as unknown as { standInsReplaced: number }).standInsReplaced).toBe(1);
      // Both peers are local now: the data plane forwards the session.
      await roundTrip(resumed, "local");
      console.log(`  [${plane}] REG to ACK after the relay died: ${tookMs.toFixed(0)} ms`);
    }, 30_000);
  }

  it("three relays: a's relay dies, a registers at a third relay, which bridges to b's relay; b's relay follows", async () => {
    const [r1, r2, r3] = (await start(["127.0.0.53", "127.0.0.54", "127.0.0.55"])) as [FleetRelay, FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2);
    await roundTrip(p, "before");
    await r1.kill();
    const moved = await open("127.0.0.2");
    const started = performance.now();
    expect(await registerAt(moved, r3, p.session)).toBe("ACK\n");
    const resumed = { ...p, a: moved, ra: r3 };
    // The first datagrams may arrive before both relays agreed; the session carries within a few tries.
    const tries = await roundTripOnceSettled(resumed, "after");
    const tookMs = performance.now() - started;
    await roundTrip(resumed, "steady");
    expect((await r3.stats()).fleet!.bridgedNow).toBe(1);
    console.log(`  [${plane}] REG at a third relay to the first round trip through it: ${tookMs.toFixed(0)} ms (${tries} failed tries of 250 ms)`);
  }, 30_000);

  it("while the partner's relay is alive, a third host's REG is refused and the bridged session is untouched", async () => {
    const [r1, r2] = (await start(["127.0.0.56", "127.0.0.57"])) as [FleetRelay, FleetRelay];
    const p = await pairAcross(open, r1, r2);
    await roundTrip(p, "before");
    const intruder = await open("127.0.0.99");
    expect(await registerAt(intruder, r2, p.session)).toBe("ERR full\n");
    await roundTrip(p, "after");
    const stats = await r2.stats();
    expect((stats.table as unknown as { standInsReplaced: number }).standInsReplaced).toBe(0);
  }, 30_000);

  describe("a peer with a token moves while its relay is alive (behind a symmetric NAT: another address per relay)", () => {
    const TOKEN = "bW92aW5nLXBlZXItdG9rZW4";
    const withToken = (session: string, token = TOKEN) => `REG:${session} peer=${token}\n`;
    /** a (with the token) on `r1`, b (plain) on `r2`: bridged, a round trip done. */
    const bridgedWithToken = async (r1: FleetRelay, r2: FleetRelay) => {
      const a = await open("127.0.0.2");
      const b = await open("127.0.0.3");
      const session = crypto.randomUUID();
      a.send(withToken(session), r1.port, r1.host);
      expect(await a.nextText()).toBe("ACK\n");
      expect(await registerAt(b, r2, session)).toBe("ACK\n");
      await roundTrip({ a, b, session, ra: r1, rb: r2 }, "bridged");
      return { a, b, session };
    };

    it("two relays: it registers at its partner's relay and takes its stand-in's place; its old relay drops it; another token is refused", async () => {
      const [r1, r2] = (await start(["127.0.0.58", "127.0.0.59"])) as [FleetRelay, FleetRelay];
      const { a, b, session } = await bridgedWithToken(r1, r2);

      const intruder = await open("127.0.0.9");
      intruder.send(withToken(session, "c29tZWJvZHktZWxzZS10b2tlbg"), r2.port, r2.host);
      expect(await intruder.nextText()).toBe("ERR full\n");

      const moved = await open("127.0.0.4");
      moved.send(withToken(session), r2.port, r2.host);
      expect(await moved.nextText()).toBe("ACK\n");
      await roundTrip({ a: moved, b, session, ra: r2, rb: r2 }, "local on r2");
      // The old registration at r1 is gone with its session (nobody else of it was there).
      await eventually(async () => (await r1.stats()).sessions === 0, 5000);
      expect((await r2.stats()).fleet!.bridgedNow).toBe(0);
      // Nothing reaches the old address any more.
      await roundTrip({ a: moved, b, session, ra: r2, rb: r2 }, "again");
      expect(a.inbox).toEqual([]);
    }, 30_000);

    it("three relays: it registers at a third relay, which bridges to its partner's relay; the partner's relay follows, the old relay drops it", async () => {
      const [r1, r2, r3] = (await start(["127.0.0.60", "127.0.0.61", "127.0.0.62"])) as [FleetRelay, FleetRelay, FleetRelay];
      const { a, b, session } = await bridgedWithToken(r1, r2);

      const moved = await open("127.0.0.4");
      moved.send(withToken(session), r3.port, r3.host);
      expect(await moved.nextText()).toBe("ACK\n");
      const resumed = { a: moved, b, session, ra: r3, rb: r2 };
      await roundTripOnceSettled(resumed, "after");
      await eventually(async () => (await r1.stats()).sessions === 0, 5000);
      expect((await r3.stats()).fleet!.bridgedNow).toBe(1);
      // r1 answered every ping: nobody was found gone; the token did it.
      expect(((await r2.stats()).fleet as unknown as { liveness: { gone: number } }).liveness.gone).toBe(0);
    }, 30_000);
  });
});
