/**
 * How the coordinator keeps its directory entries: due ones are re-entered, reading packed
 * sessions as they are (unpacked at each heartbeat, a relay with a million sessions would rebuild
 * all of them every tick); entries of sessions that expired are withdrawn; a session that loses a
 * peer has its entry changed or withdrawn at once, not when it falls due.
 */
import { describe, expect, it } from "bun:test";
import { eventually, planesUnderTest, testPeers } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerTest } from "../support/fleet-suite.ts";
import { type FleetPair, pairAcross, type RelayAt, registerAt } from "../support/fleet-peers.ts";
import type { TestPeer } from "../utils.ts";

const suite = REDIS_SERVER ? describe : describe.skip;

/**
 * REG with a cookie the relay issued (a bogus one first, answered with RETRY): a proven REG moves
 * an address out of a session that is still live, which an unproven one may not do.
 */
async function registerProven(peer: TestPeer, relay: RelayAt, session: string): Promise<string> {
  const retry = await registerAt(peer, relay, `${session} AAAAAAAAAAAAAAAA`);
  expect(retry.startsWith("RETRY ")).toBe(true);
  return registerAt(peer, relay, `${session} ${retry.slice(6, -1)}`);
}

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

  it("changes or withdraws an entry as soon as its session loses a peer, long before the entry is due", async () => {
    // Idle timeout 60 s: entries are due every 20 s; each check below waits at most 5 s.
    const [relay] = (await fleet.start(["127.0.0.41"], { sessionTimeoutSecs: 60, heartbeatSecs: 0.1 })) as [FleetRelay];
    const redis = fleet.redis();
    const field = async (session: string) => (await redis.command("HGET", [`quic-relay:session:${session}`, relay.advertise])) as string | null;
    const p = await open("127.0.0.60");
    const q = await open("127.0.0.61");
    const [t, s, u] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    expect(await registerAt(p, relay, t)).toBe("ACK\n");
    expect(await registerAt(q, relay, t)).toBe("ACK\n");
    await eventually(async () => (await field(t)) === "2", 5000, 50);

    // p's address registers (proven) for another session: it leaves t, which holds one peer here now.
    expect(await registerProven(p, relay, s)).toBe("ACK\n");
    await eventually(async () => (await field(s)) === "1" && (await field(t)) === "1", 5000, 50);

    // q leaves too: t has nobody here, its entry goes.
    expect(await registerProven(q, relay, u)).toBe("ACK\n");
    await eventually(async () => Number(await redis.command("EXISTS", [`quic-relay:session:${t}`])) === 0, 5000, 50);
    expect(await field(s)).toBe("1");
    expect(await field(u)).toBe("1");
  }, 30_000);

  it("withdraws its entries when it stops, while its peers' other relay keeps its own", async () => {
    // Idle timeout 60 s: the entries live for more than a minute unless withdrawn.
    const [r1, r2] = (await fleet.start(["127.0.0.41", "127.0.0.42"], { sessionTimeoutSecs: 60, heartbeatSecs: 0.1 })) as [FleetRelay, FleetRelay];
    const redis = fleet.redis();
    const field = async (session: string, relay: FleetRelay) => (await redis.command("HGET", [`quic-relay:session:${session}`, relay.advertise])) as string | null;
    const here: string[] = [];
    for (let i = 0; i < 3; i++) here.push((await pairAcross(open, r1, r1, [`127.0.0.${70 + 2 * i}`, `127.0.0.${71 + 2 * i}`])).session);
    const across = await pairAcross(open, r1, r2, ["127.0.0.80", "127.0.0.81"]);
    await eventually(async () => {
      for (const s of here) if ((await field(s, r1)) !== "2") return false;
      return (await field(across.session, r1)) === "1" && (await field(across.session, r2)) === "1";
    }, 5000, 50);

    await r1.stop();
    for (const s of here) expect(Number(await redis.command("EXISTS", [`quic-relay:session:${s}`]))).toBe(0);
    expect(await field(across.session, r1)).toBeNull();
    expect(await field(across.session, r2)).toBe("1");
  }, 30_000);

  it("renews an unchanged entry, and writes it whole again when the directory lost this relay's field", async () => {
    // Idle timeout 6 s: entries are due every 2 s.
    const [relay] = (await fleet.start(["127.0.0.41"], { sessionTimeoutSecs: 6, heartbeatSecs: 0.1 })) as [FleetRelay];
    const redis = fleet.redis();
    const { session } = await pairAcross(open, relay, relay, ["127.0.0.90", "127.0.0.91"]);
    const key = `quic-relay:session:${session}`;
    await eventually(async () => (await redis.command("HGET", [key, relay.advertise])) === "2", 5000, 50);
    // Another relay's view of this one as gone, say: its field is dropped, the entry stays (a third field keeps it).
    await redis.command("HSET", [key, "192.0.2.1:4433", "1"]);
    await redis.command("HDEL", [key, relay.advertise]);
    await eventually(async () => (await redis.command("HGET", [key, relay.advertise])) === "2", 5000, 50);
    expect((await relay.stats()).fleet?.directory.errors).toBe(0);
  }, 30_000);

  it("loads its scripts again into a directory that lost them (restarted, flushed): no write is lost", async () => {
    const [relay] = (await fleet.start(["127.0.0.41"], { sessionTimeoutSecs: 60, heartbeatSecs: 0.1 })) as [FleetRelay];
    const redis = fleet.redis();
    const first = await pairAcross(open, relay, relay, ["127.0.0.92", "127.0.0.93"]);
    await eventually(async () => (await redis.command("HGET", [`quic-relay:session:${first.session}`, relay.advertise])) === "2", 5000, 50);
    await redis.command("SCRIPT", ["FLUSH"]);
    const second = await pairAcross(open, relay, relay, ["127.0.0.94", "127.0.0.95"]);
    await eventually(async () => (await redis.command("HGET", [`quic-relay:session:${second.session}`, relay.advertise])) === "2", 5000, 50);
    expect((await relay.stats()).fleet?.directory.errors).toBe(0);
  }, 30_000);
});
