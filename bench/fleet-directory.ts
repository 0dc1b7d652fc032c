/**
 * What each kind of directory write costs, in Redis and on the relay's thread: a relay in a fleet
 * writes every session's entry when it changes and renews it when due (at a million sessions and
 * the default timeout, about 33,000 renewals a second). A FleetDirectory against a redis-server of
 * its own on loopback: N sessions announced (the full write, which reads the entry back), renewed,
 * withdrawn, and as the baseline in the same run a plain `PEXPIRE` of the same keys (the least a
 * renewal can cost). Per operation: Redis's CPU (`INFO cpu`), this thread's CPU
 * (`/proc/thread-self/schedstat`), and wall time with 1,000 in flight.
 *
 *   bun bench/fleet-directory.ts                 # 100,000 sessions: about 10 s
 *   bun bench/fleet-directory.ts --sessions=20000
 *
 * Needs `redis-server`. Prints a table; writes bench/results/fleet-directory-latest.{json,txt}.
 */
import { RedisClient } from "bun";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { FleetDirectory } from "../src/fleet/directory.ts";
import { createLogger } from "../src/log.ts";
import { REDIS_SERVER, startRedis } from "../test/support/fleet-harness.ts";
import { threadCpuMs } from "./proc.ts";
import { renderTable } from "./table.ts";

const { values } = parseArgs({ options: { sessions: { type: "string", default: "100000" } } });
const n = Number(values.sessions);
if (!REDIS_SERVER) throw new Error("redis-server is needed (apt-get install redis-server)");
const IN_FLIGHT = 1000;
const TTL_MS = 330_000;

interface Row {
  write: string;
  redisUsPerOp: number;
  clientUsPerOp: number;
  wallUsPerOp: number;
}

const redis = await startRedis();
const raw = new RedisClient(redis.url);
await raw.connect();
const redisCpuSeconds = async (): Promise<number> => {
  const info = String(await raw.send("INFO", ["cpu"]));
  return Number(/used_cpu_user:([0-9.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([0-9.]+)/.exec(info)![1]);
};
const directory = new FleetDirectory(redis.url, "quic-relay", "127.0.0.1:4433", createLogger("error"), () => {});
await directory.maintain();
const id = (i: number) => `${i.toString(16).padStart(8, "0")}-0000-4000-8000-000000000000`;

async function measure(write: string, op: (i: number) => Promise<unknown>): Promise<Row> {
  const redis0 = await redisCpuSeconds();
  const cpu0 = threadCpuMs();
  const wall0 = performance.now();
  for (let b = 0; b < n; b += IN_FLIGHT) {
    const ops: Promise<unknown>[] = [];
    for (let i = b; i < Math.min(n, b + IN_FLIGHT); i++) ops.push(op(i));
    await Promise.all(ops);
  }
  const wall = performance.now() - wall0;
  const cpu = threadCpuMs() - cpu0;
  const redisCpu = (await redisCpuSeconds()) - redis0;
  return { write, redisUsPerOp: (redisCpu * 1e6) / n, clientUsPerOp: (cpu * 1000) / n, wallUsPerOp: (wall * 1000) / n };
}

const rows: Row[] = [];
try {
  rows.push(await measure("announce (new entry)", (i) => directory.announce(id(i), 2, TTL_MS)));
  rows.push(await measure("announce (again)", (i) => directory.announce(id(i), 2, TTL_MS)));
  rows.push(await measure("renew", (i) => directory.renew(id(i), TTL_MS)));
  rows.push(await measure("PEXPIRE (baseline)", (i) => raw.send("PEXPIRE", [directory.sessionKey(id(i)), String(TTL_MS)])));
  rows.push(await measure("withdraw", (i) => directory.withdraw(id(i))));
  if (directory.stats.errors > 0) throw new Error(`${directory.stats.errors} directory commands failed`);
} finally {
  directory.close();
  raw.close();
  await redis.stop();
}

const base = rows.find((r) => r.write.startsWith("PEXPIRE"))!;
const body = rows.map((r) => [
  r.write,
  r.redisUsPerOp.toFixed(2),
  (r.redisUsPerOp / base.redisUsPerOp).toFixed(2),
  r.clientUsPerOp.toFixed(2),
  (r.clientUsPerOp / base.clientUsPerOp).toFixed(2),
  r.wallUsPerOp.toFixed(2),
]);
const table = renderTable(["write", "redis µs/op", "x PEXPIRE", "relay thread µs/op", "x PEXPIRE", "wall µs/op"], body, 1);
const head = `fleet directory writes, ${n} sessions, ${IN_FLIGHT} in flight, ${new Date().toISOString()}`;
console.log(`${head}\n${table}`);
const resultsDir = join(import.meta.dir, "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, "fleet-directory-latest.json"), `${JSON.stringify({ at: new Date().toISOString(), sessions: n, inFlight: IN_FLIGHT, rows }, null, 2)}\n`);
writeFileSync(join(resultsDir, "fleet-directory-latest.txt"), `${head}\n${table}\n`);
