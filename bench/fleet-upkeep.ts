/**
 * What keeping its directory entries costs a fleet member's JavaScript thread while its sessions
 * only idle: a FleetCoordinator over a session table of N packed sessions, every one entered in
 * the directory and none due for re-entry, the relay's default options (a heartbeat every 2 s).
 * The directory is a stand-in that answers every call at once: Redis is not what is measured.
 * The figure is the thread's own CPU time (`/proc/thread-self/schedstat`) per second over three
 * heartbeats, at each size; the smallest size is the baseline (goal: the cost does not grow with
 * the number of sessions). Also what entering the sessions cost (their REG events, in batches of
 * 256 as the relay hands them over) and its longest batch: a stall of the relay's thread; and the
 * coordinator's stop, which withdraws the entries: how long, and the longest it held the thread.
 *
 *   bun bench/fleet-upkeep.ts                       # 10k, 100k and 1M sessions: about a minute
 *   bun bench/fleet-upkeep.ts --sessions=10000,200000 --heartbeat-secs=0.1
 *
 * Prints a table; writes bench/results/fleet-upkeep-latest.{json,txt}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { FleetCoordinator } from "../src/fleet/coordinator.ts";
import type { FleetDirectory } from "../src/fleet/directory.ts";
import type { FleetBridge } from "../src/fleet/bridge.ts";
import { resolveFleetOptions } from "../src/fleet/options.ts";
import { createLogger } from "../src/log.ts";
import type { Relay, RelayEventsListener } from "../src/relay.ts";
import { SessionTable } from "../src/sessions/table.ts";
import type { SessionEvent, SessionSink } from "../src/sessions/types.ts";
import { threadCpuMs } from "./proc.ts";
import { renderTable } from "./table.ts";

const { values } = parseArgs({
  options: { sessions: { type: "string", default: "10000,100000,1000000" }, "heartbeat-secs": { type: "string" } },
});
const sizes = values.sessions!.split(",").map(Number).sort((a, b) => a - b);
const options = resolveFleetOptions(
  { "fleet-redis": "redis://127.0.0.1:1", "fleet-advertise": "127.0.0.1:4433", "fleet-secret": "bench-secret-0123456789", "fleet-heartbeat-secs": values["heartbeat-secs"] },
  {},
)!;
const HEARTBEAT_MS = options.heartbeatMs;
const MEASURE_MS = 3 * HEARTBEAT_MS;

const noSink: SessionSink = {
  reply() {},
  forward() {},
  route() {},
  observing: () => true,
  unroute() {},
  challenge() {},
  event() {},
};

/** A directory that holds nothing and answers at once. */
const directory = {
  reachable: true,
  stats: { errors: 0, outages: 0, commands: 0, messages: 0, failovers: 0 },
  onReachable: undefined as (() => void) | undefined,
  announced: 0,
  async maintain() {},
  async heartbeat() {},
  async members() {
    return [];
  },
  async alive() {
    return true;
  },
  async announce() {
    this.announced++;
    return undefined;
  },
  async renew() {
    this.announced++;
    return true;
  },
  async withdraw() {},
  close() {},
};

const bridge = { links: () => [], ping() {}, retryUnknownSenders() {}, link: () => undefined, counts: () => ({}) };

interface Result {
  sessions: number;
  /** Thread CPU per second of heartbeats, ms. */
  cpuMsPerSecond: number;
  /** Directory writes in the measured window (none are due: 0 expected). */
  announces: number;
  /** Entering every session once (the REG events of the fill), µs per session. */
  enterUsPerSession: number;
  /** The longest batch of 256 of those events, ms (a stall of the relay's thread). */
  enterLongestMs: number;
  /** The coordinator's stop (it withdraws its entries): how long it took, and the longest the thread was held meanwhile, ms. */
  stopMs: number;
  stopLongestMs: number;
}

async function measure(n: number): Promise<Result> {
  let now = 1_000_000;
  const clock = { now: () => now };
  const table = new SessionTable(clock, noSink, { timeoutMs: 300_000 });
  const raw = new Uint8Array(0);
  for (let i = 0; i < n; i++) {
    table.register(`s-${i}`, { address: `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, port: 1000 + (i >>> 24) }, raw);
  }
  now += 60_000;
  table.compact();
  let listener: RelayEventsListener | undefined;
  const relay = {
    table,
    onEvents: (l: RelayEventsListener) => void (listener = l),
    plane: { kind: "ts" },
    local: { address: "127.0.0.1", port: 4433 },
  } as unknown as Relay;
  const coordinator = new FleetCoordinator(relay, bridge as unknown as FleetBridge, directory as unknown as FleetDirectory, options, createLogger("error"));
  let enterMs = 0;
  let enterLongestMs = 0;
  for (let i = 0; i < n; i += 256) {
    const events: SessionEvent[] = [];
    for (let j = i; j < Math.min(n, i + 256); j++) events.push({ kind: "registered", session: `s-${j}`, peer: { address: "10.0.0.0", port: 1 } });
    const start = performance.now();
    listener!(events);
    const took = performance.now() - start;
    enterMs += took;
    // Each batch is a macrotask of its own in the relay: what it queued (the writes) runs before the next.
    await new Promise((resolve) => setImmediate(resolve));
    enterLongestMs = Math.max(enterLongestMs, took);
  }
  const enterUs = (enterMs * 1000) / n;
  await coordinator.start();
  await Bun.sleep(HEARTBEAT_MS / 2); // past the first heartbeat
  Bun.gc(true);
  const announced0 = directory.announced;
  const cpu0 = threadCpuMs();
  const wall0 = performance.now();
  await Bun.sleep(MEASURE_MS);
  const cpu = threadCpuMs() - cpu0;
  const wall = performance.now() - wall0;
  const announces = directory.announced - announced0;
  const stats = coordinator.stats();
  if (stats.announced !== n) throw new Error(`expected ${n} entered sessions, the coordinator has ${stats.announced}`);
  const { tookMs: stopMs, longestMs: stopLongestMs } = await heldWhile(() => coordinator.stop());
  return { sessions: n, cpuMsPerSecond: (cpu * 1000) / wall, announces, enterUsPerSession: enterUs, enterLongestMs, stopMs, stopLongestMs };
}

/** Runs `work`; how long it took, and the longest gap between turns of a 1 ms timer meanwhile (the thread held), ms. */
async function heldWhile(work: () => Promise<void>): Promise<{ tookMs: number; longestMs: number }> {
  let last = performance.now();
  let longestMs = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    longestMs = Math.max(longestMs, now - last);
    last = now;
  }, 1);
  const start = performance.now();
  await work();
  const tookMs = performance.now() - start;
  longestMs = Math.max(longestMs, performance.now() - last);
  clearInterval(probe);
  return { tookMs, longestMs };
}

const results: Result[] = [];
for (const n of sizes) {
  results.push(await measure(n));
  Bun.gc(true);
}
const base = results[0]!;
const rows = results.map((r) => [
  String(r.sessions),
  r.cpuMsPerSecond.toFixed(2),
  (r.cpuMsPerSecond / base.cpuMsPerSecond).toFixed(2),
  String(r.announces),
  r.enterUsPerSession.toFixed(2),
  r.enterLongestMs.toFixed(1),
  r.stopMs.toFixed(0),
  r.stopLongestMs.toFixed(1),
]);
const table = renderTable(["sessions", "upkeep CPU ms/s", "x smallest", "writes", "enter µs/session", "longest batch ms", "stop ms", "stop: longest hold ms"], rows, 1);
const head = `fleet upkeep, idle sessions, heartbeat ${HEARTBEAT_MS} ms, ${MEASURE_MS / 1000} s measured, ${new Date().toISOString()}`;
console.log(`${head}\n${table}`);
const resultsDir = join(import.meta.dir, "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, "fleet-upkeep-latest.json"), `${JSON.stringify({ at: new Date().toISOString(), heartbeatMs: HEARTBEAT_MS, measureMs: MEASURE_MS, results }, null, 2)}\n`);
writeFileSync(join(resultsDir, "fleet-upkeep-latest.txt"), `${head}\n${table}\n`);
