/**
 * The coordinator's walk of the sessions it entered in the directory (every heartbeat): it reads
 * packed sessions as they are, without unpacking them. Unpacked at each heartbeat, a relay with a
 * million sessions would rebuild all of them every tick. Packed sessions still have their entries
 * re-entered when due, and withdrawn once they expired.
 */
import { describe, expect, it } from "bun:test";
import { eventually, planesUnderTest, testPeers } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerTest } from "../support/fleet-suite.ts";
import { type FleetPair, pairAcross } from "../support/fleet-peers.ts";

const suite = REDIS_SERVER ? describe : describe.skip;

/** Sessions held packed in the relay's compact store. */
const compactOf = async (relay: FleetRelay) => ((await relay.stats()) as { compactSessions?: number }).compactSessions;

suite.each(planesUnderTest())("fleet directory refresh on the %s plane", (plane) => {
  const fleet = fleetPerTest(plane);
  const open = testPeers();

  it("walks packed sessions without unpacking them, re-enters them when due and withdraws them once expired", async () => {
    // Idle timeout 6 s: entries are re-entered every 2 s (a third of it), the walk runs every 100 ms.
    const [relay] = (await fleet.start(["127.0.0.41"], { sessionTimeoutSecs: 6, heartbeatSecs: 0.1 })) as [FleetRelay];
    const pairs: FleetPair[] = [];
    for (let i = 0; i < 4; i++) pairs.push(await pairAcross(open, relay, relay, [`127.0.0.${50 + 2 * i}`, `127.0.0.${51 + 2 * i}`]));
    const keys = pairs.map((p) => `quic-relay:session:${p.session}`);
    const redis = fleet.redis();
    const ttlOf = async (key: string) => Number(await redis.command("PTTL", [key]));

    await eventually(async () => (await compactOf(relay)) === 4, 5000, 50);
    // From here on nothing touches the sessions: they stay packed through every heartbeat until
    // they expire, while their entries are re-entered (the time to live goes up again).
    const lowest = await ttlOf(keys[0]!);
    expect(lowest).toBeGreaterThan(0);
    const compact: number[] = [];
    let seenLowest = lowest;
    await eventually(async () => {
      compact.push((await compactOf(relay)) ?? -1);
      const ttl = await ttlOf(keys[0]!);
      if (ttl > seenLowest + 500) return true;
      seenLowest = Math.min(seenLowest, ttl);
      return false;
    }, 5000, 50);
    expect(compact.length).toBeGreaterThan(5);
    expect(compact.filter((n) => n !== 4)).toEqual([]);

    // Expired here: the walk finds them gone and withdraws their entries.
    await eventually(async () => {
      for (const key of keys) if (Number(await redis.command("EXISTS", [key])) !== 0) return false;
      return true;
    }, 10_000, 100);
    expect((await relay.stats()).sessions).toBe(0);
  }, 30_000);
});
