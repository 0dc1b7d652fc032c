import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { createConsola } from "consola";
import { FleetDirectory, type RelayMessage } from "../../src/fleet/directory.ts";
import { askSentinel, parsePrimaryReply, PrimaryResolver, type SentinelOptions } from "../../src/fleet/sentinel.ts";
import type { HostPort } from "../../src/net/address.ts";
import { freeTcpPort } from "../cli/relay-process.ts";
import { REDIS_SERVER, startRedis, startRedisReplica, startSentinel, type TestRedis, type TestRedisServer, type TestSentinel } from "../support/fleet-harness.ts";
import { eventually } from "../utils.ts";

if (!REDIS_SERVER) console.warn("sentinel tests with processes skipped: redis-server is not installed (apt-get install -y redis-server)");
const withRedis = REDIS_SERVER ? describe : describe.skip;

const SELF = "127.0.0.1:4433";
const sentinelOptions = (sentinels: HostPort[], masterName = "mymaster"): SentinelOptions => ({ sentinels, masterName, scheme: "redis://" });
const at = (port: number): HostPort => ({ host: "127.0.0.1", port });

/** A directory plus what it logged and the join messages it got; closed after each test. */
function directories() {
  const open: FleetDirectory[] = [];
  afterEach(() => {
    for (const d of open.splice(0)) d.close();
  });
  return (options: ConstructorParameters<typeof FleetDirectory>[5]) => {
    const lines: string[] = [];
    const joins: RelayMessage[] = [];
    const logger = createConsola({ level: 5, reporters: [{ log: (entry) => lines.push(JSON.stringify(entry.args)) }] });
    const directory = new FleetDirectory("redis://", "t", SELF, logger, (m) => joins.push(m), options);
    open.push(directory);
    return { directory, lines, joins };
  };
}

/** maintain() then one announce, until it is answered (a deadline, not a measurement). */
async function announceEventually(directory: FleetDirectory, session: string, timeoutMs: number): Promise<void> {
  await eventually(
    async () => {
      await directory.maintain();
      return (await directory.announce(session, 1, 60_000)) !== undefined;
    },
    timeoutMs,
    100,
  );
}

describe("SENTINEL get-master-addr-by-name replies", () => {
  it.each([
    [["10.0.0.5", "6379"], { host: "10.0.0.5", port: 6379 }],
    [["redis-a.internal", "6380"], { host: "redis-a.internal", port: 6380 }],
    [["2001:db8::5", "6379"], { host: "2001:db8::5", port: 6379 }],
    [["10.0.0.5", 6379], { host: "10.0.0.5", port: 6379 }],
    [null, undefined],
    [[], undefined],
    [["10.0.0.5"], undefined],
    [["10.0.0.5", "6379", "extra"], undefined],
    [["", "6379"], undefined],
    [["10.0.0.5", "0"], undefined],
    [["10.0.0.5", "65536"], undefined],
    [["10.0.0.5", "63x9"], undefined],
    [["10.0.0.5 6379", "6379"], undefined],
    ["10.0.0.5:6379", undefined],
    [{ ip: "10.0.0.5", port: "6379" }, undefined],
  ])("%j names %j", (reply, primary) => {
    expect(parsePrimaryReply(reply)).toEqual(primary as HostPort | undefined);
  });
});

describe("PrimaryResolver", () => {
  const three = [at(1), at(2), at(3)];

  it("asks the sentinels in turn until one names a primary, and starts with that one next time", async () => {
    const asked: number[] = [];
    const replies: Record<number, unknown> = { 1: new Error("refused"), 2: null, 3: ["10.0.0.9", "6379"] };
    const resolver = new PrimaryResolver(sentinelOptions(three), async (sentinel) => {
      asked.push(sentinel.port);
      const reply = replies[sentinel.port];
      if (reply instanceof Error) throw reply;
      return reply;
    });
    expect(await resolver.resolve()).toBe("10.0.0.9:6379");
    expect(asked).toEqual([1, 2, 3]);
    asked.length = 0;
    replies[3] = ["2001:db8::9", "6380"];
    expect(await resolver.resolve()).toBe("[2001:db8::9]:6380");
    expect(asked).toEqual([3]);
  });

  it("is undefined when none answers", async () => {
    const resolver = new PrimaryResolver(sentinelOptions(three), async () => {
      throw new Error("refused");
    });
    expect(await resolver.resolve()).toBeUndefined();
  });
});

describe("no sentinel reachable", () => {
  const directory = directories();

  it("calls return undefined and count errors, nothing throws", async () => {
    const unused = [at(await freeTcpPort()), at(await freeTcpPort())];
    expect(await askSentinel(unused[0]!, sentinelOptions(unused)).catch(() => "failed")).toBe("failed");
    const { directory: d, lines } = directory({ sentinel: sentinelOptions(unused) });
    await d.maintain();
    expect(await d.announce("s", 1, 1000)).toBeUndefined();
    expect(await d.heartbeat({}, 1000)).toBe(false);
    expect(await d.members()).toBeUndefined();
    await d.join("127.0.0.1:9", "s");
    expect(d.reachable).toBe(false);
    expect(d.stats).toMatchObject({ errors: 5, commands: 4, failovers: 0 });
    expect(lines.some((l) => l.includes("no sentinel named a primary for 'mymaster'"))).toBe(true);
  });
});

withRedis("a primary that turns read-only", () => {
  const directory = directories();
  const servers: TestRedis[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it("the READONLY reply makes the next maintain() ask for the primary again and reconnect both clients", async () => {
    servers.push(await startRedis());
    servers.push(await startRedis());
    const [a, b] = servers as [TestRedis, TestRedis];
    let primary = `127.0.0.1:${a.port}`;
    const { directory: d, lines, joins } = directory({ findPrimary: async () => primary });
    let reached = 0;
    d.onReachable = () => reached++;
    await d.maintain();
    expect(await d.announce("s1", 1, 60_000)).toEqual(new Map());
    expect(await a.command("HGET", ["t:session:s1", SELF])).toBe("1");

    // The old primary becomes a replica of the new one and keeps the connection open (the sync
    // loaded from the socket: a replica writes no dump.rdb into the working directory then).
    primary = `127.0.0.1:${b.port}`;
    await a.command("CONFIG", ["SET", "repl-diskless-load", "swapdb"]);
    await a.command("REPLICAOF", ["127.0.0.1", String(b.port)]);
    expect(await d.announce("s2", 1, 60_000)).toBeUndefined();
    expect(d.reachable).toBe(false);
    await d.maintain();
    expect(await d.announce("s2", 1, 60_000)).toEqual(new Map());
    expect(await b.command("HGET", ["t:session:s2", SELF])).toBe("1");
    expect(d.stats.failovers).toBe(1);
    // Reaching the new primary is announced like the end of an outage: the relay re-enters its sessions.
    expect(reached).toBe(2);
    expect(lines.filter((l) => l.includes(`fleet directory primary is now ${primary}`))).toHaveLength(1);
    // The subscription moved too (a replica gets the primary's messages, so count subscribers).
    const subscribers = async (server: TestRedis) => ((await server.command("PUBSUB", ["NUMSUB", d.channel(SELF)])) as unknown[])[1];
    expect(await subscribers(b)).toBe(1);
    await eventually(async () => (await subscribers(a)) === 0);
    await b.command("PUBLISH", [d.channel(SELF), JSON.stringify({ kind: "join", session: "s2", relay: "127.0.0.1:9" })]);
    await eventually(() => joins.length === 1);
  });
});

withRedis("Redis primary, replica and a sentinel", () => {
  const directory = directories();
  let primary: TestRedis;
  let replica: TestRedisServer;
  let sentinel: TestSentinel;
  /** Everything started, stopped after each test even when the start failed half way. */
  const started: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    primary = await startRedis();
    started.push(() => primary.stop());
    // Without this the first sync waits 5 s for more replicas to join it.
    await primary.command("CONFIG", ["SET", "repl-diskless-sync-delay", "0"]);
    replica = await startRedisReplica(primary.port);
    started.push(() => replica.kill());
    sentinel = await startSentinel(primary.port);
    started.push(() => sentinel.stop());
    // A failover needs a replica in sync that the sentinel knows and counts usable.
    await eventually(async () => ((await replica.command("ROLE", [])) as unknown[])[3] === "connected", 15_000, 50);
    await eventually(async () => (await sentinel.replicas()).includes(replica.address), 15_000, 50);
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((stop) => stop()));
  });

  it("resolves the primary; an unknown name resolves to nothing", async () => {
    expect(await new PrimaryResolver(sentinelOptions([at(sentinel.port)])).resolve()).toBe(`127.0.0.1:${primary.port}`);
    const unused = at(await freeTcpPort());
    expect(await new PrimaryResolver(sentinelOptions([unused, at(sentinel.port)])).resolve()).toBe(`127.0.0.1:${primary.port}`);
    expect(await new PrimaryResolver(sentinelOptions([at(sentinel.port)], "other")).resolve()).toBeUndefined();
  });

  it("a directory with sentinels writes to the primary", async () => {
    const { directory: d, lines } = directory({ sentinel: sentinelOptions([at(sentinel.port)]) });
    await d.maintain();
    expect(await d.announce("s1", 2, 60_000)).toEqual(new Map());
    expect(d.reachable).toBe(true);
    expect(await primary.command("HGET", ["t:session:s1", SELF])).toBe("2");
    await eventually(async () => (await replica.command("HGET", ["t:session:s1", SELF])) === "2");
    expect(lines.some((l) => l.includes(`fleet directory primary is 127.0.0.1:${primary.port}`))).toBe(true);
    expect(d.stats.failovers).toBe(0);
  });

  it("after the primary is killed the sentinel promotes the replica and the directory follows", async () => {
    const { directory: d, lines, joins } = directory({ sentinel: sentinelOptions([at(sentinel.port)]) });
    await d.maintain();
    expect(await d.announce("before", 1, 60_000)).toBeDefined();

    await primary.stop();
    expect(await d.announce("during", 1, 60_000)).toBeUndefined();
    // Down-after 1 s, then the election and the promotion.
    await announceEventually(d, "after", 30_000);
    expect(await replica.command("HGET", ["t:session:after", SELF])).toBe("1");
    expect(((await replica.command("ROLE", [])) as unknown[])[0]).toBe("master");
    expect(d.stats.failovers).toBe(1);
    expect(d.stats.outages).toBe(1);
    expect(d.reachable).toBe(true);
    expect(lines.filter((l) => l.includes(`fleet directory primary is now ${replica.address}`))).toHaveLength(1);
    await eventually(async () => {
      await replica.command("PUBLISH", [d.channel(SELF), JSON.stringify({ kind: "join", session: "after", relay: "127.0.0.1:9" })]);
      return joins.length > 0;
    });
  }, 40_000);

  it("a failover asked of the sentinel, the old primary alive and demoted, is followed too", async () => {
    const { directory: d, lines } = directory({ sentinel: sentinelOptions([at(sentinel.port)]) });
    let reached = 0;
    d.onReachable = () => reached++;
    await d.maintain();
    expect(await d.announce("before", 1, 60_000)).toBeDefined();

    await sentinel.command("SENTINEL", ["FAILOVER", "mymaster"]);
    await eventually(async () => ((await primary.command("ROLE", [])) as unknown[])[0] === "slave", 30_000, 100);
    await announceEventually(d, "after", 30_000);
    expect(await replica.command("HGET", ["t:session:after", SELF])).toBe("1");
    expect(d.stats.failovers).toBe(1);
    expect(reached).toBe(2);
    expect(lines.filter((l) => l.includes(`fleet directory primary is now ${replica.address}`))).toHaveLength(1);
    const subscribers = async (server: TestRedisServer | TestRedis) => ((await server.command("PUBSUB", ["NUMSUB", d.channel(SELF)])) as unknown[])[1];
    expect(await subscribers(replica)).toBe(1);
    expect(await subscribers(primary)).toBe(0);
  }, 40_000);
});
