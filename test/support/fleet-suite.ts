/**
 * One Redis and a few relays per test (fleetPerTest), or per suite (fleetPerSuite), stopped after
 * it: the fleet suites' common frame.
 *
 *   const fleet = fleetPerTest(plane);
 *   const [r1, r2] = await fleet.start(["127.0.0.51", "127.0.0.52"]);
 *   fleet.redis().command(...)
 */
import { afterAll, afterEach, beforeAll } from "bun:test";
import { type FleetRelay, startFleetRelay, startRedis, type TestRedis } from "./fleet-harness.ts";

type RelayOptions = Omit<Parameters<typeof startFleetRelay>[0], "host" | "redisUrl" | "plane">;

export function fleetPerTest(plane: "ts" | "native") {
  let redis: TestRedis | undefined;
  let relays: FleetRelay[] = [];
  afterEach(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    relays = [];
    await redis?.stop();
    redis = undefined;
  });
  return {
    /** Starts Redis and one relay per host (127.0.0.x), all on `plane`. */
    async start(hosts: string[], options: RelayOptions = {}): Promise<FleetRelay[]> {
      redis = await startRedis();
      relays = await Promise.all(hosts.map((host) => startFleetRelay({ host, redisUrl: redis!.url, plane, ...options })));
      return relays;
    },
    redis(): TestRedis {
      if (!redis) throw new Error("start() the fleet first");
      return redis;
    },
  };
}

/** Redis and one relay per host, started before the suite's tests and stopped after them; `relays()` once started. */
export function fleetPerSuite(plane: "ts" | "native", hosts: string[], options: RelayOptions = {}) {
  let redis: TestRedis | undefined;
  let relays: FleetRelay[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    relays = await Promise.all(hosts.map((host) => startFleetRelay({ host, redisUrl: redis!.url, plane, ...options })));
  }, 30_000);
  afterAll(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    await redis?.stop();
  });
  return { relays: () => relays };
}
