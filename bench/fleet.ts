/**
 * `bun bench/fleet.ts [--quick] [--part=pair|capacity] [--planes=native,ts]`
 *
 * Relays in a fleet (docs/fleet.md), two parts:
 * - pair (bench/fleet-pair.ts): one local against one bridged session on two relays: RTT,
 *   delivered packets/s and relay CPU per packet at fixed offered loads, bridge setup time;
 * - capacity (bench/fleet-capacity.ts): fleets of 1, 2 and 3 relays (all on core 0, the generator
 *   on core 1) carrying 12 sessions per relay flat out, with redirect-capable clients (REG with
 *   `move`, MOVE followed) and plain ones (split sessions bridged): delivered datagrams/s and relay
 *   CPU per datagram, both relative to one relay.
 * Prints the tables and writes bench/results/fleet-latest.{json,txt}; a full run of both parts on
 * every plane also fleet-latest-full.*. Needs redis-server, two cores and taskset.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { availablePlanes } from "../src/dataplane/select.ts";
import { REDIS_SERVER } from "../test/support/fleet-harness.ts";
import { BENCH_DIR } from "./build.ts";
import { cleanUpNow } from "./children.ts";
import { type CapacityPlan, type CapacitySample, measureCapacity, type Plane, SIZE } from "./fleet-capacity.ts";
import { measurePairs, pairPlan, pairTable } from "./fleet-pair.ts";
import { killChildrenOnExit } from "./fleet-procs.ts";
import { CAPACITY_NOTES, capacityRows, capacityTable, goalLines, goalTable } from "./fleet-report.ts";
import { acquireBenchLock } from "./lock.ts";
import { GENERATOR_CORE, RELAY_CORE } from "./proc.ts";
import { REPO_ROOT } from "./relays.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const option = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const unknown = argv.filter((a) => a !== "--quick" && !a.startsWith("--part=") && !a.startsWith("--planes="));
const part = option("part");
const planes = (option("planes")?.split(",") ?? availablePlanes()) as Plane[];
if (unknown.length || (part && part !== "pair" && part !== "capacity") || planes.some((p) => !availablePlanes().includes(p))) {
  console.error(`usage: bun bench/fleet.ts [--quick] [--part=pair|capacity] [--planes=${availablePlanes().join(",")}]`);
  process.exit(2);
}
if (!REDIS_SERVER) {
  console.error("bench/fleet: redis-server is not installed (apt-get install -y redis-server)");
  process.exit(2);
}
const runCapacity = part !== "pair";
if (runCapacity && (os.availableParallelism() < 2 || !Bun.which("taskset"))) {
  console.error("bench/fleet: the capacity part needs two cores and taskset (util-linux): the relays get core 0, the generator core 1");
  process.exit(2);
}
if (!(await acquireBenchLock(quick ? 300_000 : 900_000))) {
  console.error("another bench run kept the lock too long; giving up");
  process.exit(1);
}
killChildrenOnExit();

const lines: string[] = [];
const say = (line = "") => {
  console.log(line);
  lines.push(line);
};
const capacityPlan: CapacityPlan = {
  planes, relayCounts: [1, 2, 3], sessionsPerRelay: 12, reps: quick ? 1 : 5,
  warmupS: quick ? 0.5 : 1, durationS: quick ? 2 : 4, drainS: 0.3, batch: 16,
};
const git = (args: string[]) => Bun.spawnSync(["git", ...args], { cwd: REPO_ROOT }).stdout.toString().trim();
const commit = git(["log", "-1", "--format=%h"]);
const dirty = git(["--no-optional-locks", "status", "--porcelain", "--", "src", "native"]).split("\n").filter(Boolean).length;
const startedAt = new Date();
say(`quic-relay fleet bench (${quick ? "quick" : "full"}, ${part ?? "pair and capacity"}): ${startedAt.toISOString()}, ` +
  `commit ${commit}${dirty ? ` + ${dirty} changed files in src/ native/` : ""}, bun ${Bun.version}, ${os.availableParallelism()} cores, ` +
  `load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}; planes ${planes.join(", ")}`);

const t0 = performance.now();
let pairs: Record<string, unknown>[] = [];
let samples: CapacitySample[] = [];
try {
  if (part !== "capacity") {
    pairs = await measurePairs(pairPlan(quick), planes, say);
    say();
    say(pairTable(pairs));
  }
  if (runCapacity) {
    say();
    say(`capacity: relays pinned to core ${RELAY_CORE} (all of them), generator to core ${GENERATOR_CORE}; ` +
      `${capacityPlan.sessionsPerRelay} sessions per relay, ${SIZE} B datagrams flat out both ways, ` +
      `${capacityPlan.reps} repetition(s) of ${capacityPlan.warmupS} s warm-up + ${capacityPlan.durationS} s window, medians`);
    samples = await measureCapacity(capacityPlan, (line) => console.log(line));
  }
} finally {
  cleanUpNow();
}
const seconds = (performance.now() - t0) / 1000;
const rows = capacityRows(samples);
const goals = goalLines(rows);
if (runCapacity) {
  say();
  say(capacityTable(rows));
  say();
  say(goalTable(goals));
  say();
  for (const note of CAPACITY_NOTES) say(`note: ${note}`);
}
say(`took ${seconds.toFixed(0)} s`);

const resultsDir = join(BENCH_DIR, "results");
mkdirSync(resultsDir, { recursive: true });
const json = JSON.stringify({
  bench: "fleet", startedAt: startedAt.toISOString(), mode: quick ? "quick" : "full", part: part ?? "both", commit,
  changedFilesInSrcNative: dirty, bun: Bun.version, kernel: os.release(), cpu: os.cpus()[0]?.model, cores: os.availableParallelism(),
  seconds, pair: pairs, capacity: { plan: capacityPlan, rows, goals, samples },
}, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
writeFileSync(join(resultsDir, "fleet-latest.json"), `${json}\n`);
writeFileSync(join(resultsDir, "fleet-latest.txt"), `${lines.join("\n")}\n`);
if (!quick && !part && option("planes") === undefined) {
  writeFileSync(join(resultsDir, "fleet-latest-full.json"), `${json}\n`);
  writeFileSync(join(resultsDir, "fleet-latest-full.txt"), `${lines.join("\n")}\n`);
}
console.log(`results: bench/results/fleet-latest.{json,txt}${!quick && !part && option("planes") === undefined ? ", fleet-latest-full.*" : ""}`);
process.exit(samples.some((s) => s.error) ? 1 : 0);
