/**
 * `bun run bench/sessions.ts [--quick] [--planes=native,ts] [--sessions=N[,N...]] [--flood-rate=R] [--runs=main,save,expiry]`
 *
 * Many sessions on one relay (the real CLI, pinned to core 0; everything else on core 1): RSS with
 * N idle paired sessions, REGs handled per second, and the worst event-loop stall and REG round
 * trip while the relay is idle, saves its state, is scraped, expires sessions en masse and takes a
 * REG flood. Sessions come from forged source addresses (bench/native/regflood.c, raw socket).
 * Quick: N = 100k; full: 100k and 1M. Prints the tables and writes
 * bench/results/sessions-<timestamp>.json and sessions-latest.{json,txt} (full runs also
 * sessions-latest-full.*).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { BENCH_DIR, buildTools } from "./build.ts";
import { cleanUpNow } from "./children.ts";
import { acquireBenchLock } from "./lock.ts";
import { GENERATOR_CORE, RELAY_CORE, waitForQuiet } from "./proc.ts";
import { REPO_ROOT } from "./relays.ts";
import { label, memoryTable, phaseTable, verdicts, verdictTable } from "./session-report.ts";
import type { Plane } from "./session-relay.ts";
import { type RunKind, type RunResult, runOne, type Setup } from "./session-runs.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const option = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const known = ["--quick", "--planes=", "--sessions=", "--flood-rate=", "--runs="];
const unknown = argv.filter((a) => !known.some((k) => (k.endsWith("=") ? a.startsWith(k) : a === k)));
if (unknown.length) {
  console.error(`unknown option ${unknown[0]}\n` +
    "usage: bun run bench/sessions.ts [--quick] [--planes=native,ts] [--sessions=N[,N...]] [--flood-rate=REG_PER_S] [--runs=main,save,expiry]");
  process.exit(2);
}
const planes = (option("planes") ?? "native,ts").split(",").filter(Boolean) as Plane[];
if (planes.some((p) => p !== "native" && p !== "ts")) {
  console.error("--planes takes native and/or ts");
  process.exit(2);
}
const sizes = (option("sessions")?.split(",").map(Number) ?? (quick ? [100_000] : [100_000, 1_000_000]));
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 1_000_000)) {
  console.error("--sessions takes whole numbers from 1 to 1000000");
  process.exit(2);
}
const floodRate = Number(option("flood-rate") ?? 50_000);
/** The runs at the largest size (smaller sizes have the main run only); the expiry run's timeout is then guessed from 12,500 sessions/s. */
const RUN_KINDS: RunKind[] = ["main", "save", "expiry"];
const runKinds = (option("runs")?.split(",").filter(Boolean) ?? RUN_KINDS) as RunKind[];
if (runKinds.length === 0 || runKinds.some((r) => !RUN_KINDS.includes(r))) {
  console.error("--runs takes main, save and/or expiry");
  process.exit(2);
}
const overridden = option("sessions") !== undefined || option("flood-rate") !== undefined || option("runs") !== undefined;

const lines: string[] = [];
const say = (line = "") => {
  console.log(line);
  lines.push(line);
};

if (process.getuid?.() !== 0) {
  console.error("bench/sessions.ts needs root: the sessions come from forged source addresses (raw socket)");
  process.exit(1);
}
if (os.availableParallelism() < 2 || !Bun.which("taskset")) {
  console.error("bench/sessions.ts needs two cores and taskset (util-linux): the relay gets core 0 to itself");
  process.exit(1);
}
if (!(await acquireBenchLock(quick ? 300_000 : 900_000))) {
  console.error("another bench run kept the lock too long; giving up");
  process.exit(1);
}
// This process, the probe and the flooder share core 1; the relay has core 0.
Bun.spawnSync(["taskset", "-a", "-cp", String(GENERATOR_CORE), String(process.pid)], { stdout: "ignore", stderr: "ignore" });

const git = (args: string[]) => Bun.spawnSync(["git", ...args], { cwd: REPO_ROOT }).stdout.toString().trim();
const commit = git(["log", "-1", "--format=%h"]);
const dirty = git(["status", "--porcelain", "--", "src", "native"]).split("\n").filter(Boolean).length;
const startedAt = new Date();
say(`quic-relay sessions bench (${quick ? "quick" : "full"}${overridden ? ", overridden" : ""}): ${startedAt.toISOString()}, ` +
  `commit ${commit}${dirty ? ` + ${dirty} changed files in src/ native/` : ""}, bun ${Bun.version}, ` +
  `load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
say(`sessions ${sizes.map(label).join(", ")}; planes ${planes.join(", ")}; relay on core ${RELAY_CORE}, generator on core ${GENERATOR_CORE}; ` +
  `paced flood ${label(floodRate)} REG/s`);

const tools = buildTools();
const setup: Setup = {
  regflood: tools.regflood,
  relayPin: ["taskset", "-c", String(RELAY_CORE)],
  genPin: ["taskset", "-c", String(GENERATOR_CORE)],
  floodRate,
  log: (line) => console.log(line),
};

const notes: string[] = [];
const runs: RunResult[] = [];
const t0 = performance.now();
try {
  for (const plane of planes) {
    if (plane === "native" && !existsSync(join(REPO_ROOT, "build/Release/quic_relay_native.node"))) {
      notes.push("native plane skipped: build/Release/quic_relay_native.node is not built (bun run build:native)");
      say(notes[notes.length - 1]);
      continue;
    }
    /** seconds per session of the last fill of this plane (first guess: 12,500 sessions/s) */
    let fillSecsPerSession = 1 / 12_500;
    for (const sessions of sizes) {
      // The phases that need relays of their own run at the largest size only.
      const stalls = sessions === Math.max(...sizes);
      for (const run of stalls ? runKinds : runKinds.filter((r) => r === "main")) {
        console.log(`${plane}, ${label(sessions)} sessions, ${run} run`);
        // Other work on the machine moves the figures: start when both cores are nearly idle (bounded).
        await waitForQuiet(10_000);
        const r = await runOne(setup, { plane, sessions, run, fillEstimateSecs: sessions * fillSecsPerSession });
        runs.push(r);
        // The expiry run's timeout is sized from the main run's fill (the save run's is slowed by its saves).
        if (r.fillSeconds && run === "main") fillSecsPerSession = r.fillSeconds / sessions;
      }
    }
  }
} finally {
  cleanUpNow();
}
const seconds = (performance.now() - t0) / 1000;

const vs = verdicts(runs, floodRate);
say();
say(verdictTable(vs));
say();
say(memoryTable(runs));
say();
say(phaseTable(runs));
say();
for (const n of notes) say(`note: ${n}`);
say("worst lag: largest event-loop lag sample of the phase (relay histogram, exact when its 60 s max gauge rose in the phase, " +
  "else the bucket bound); a stall shorter than the monitor's 20 ms period can go unseen there, the REG RTT sees it");
say("other %: share of the relay's core used by anything else during the phase; above 10 % a figure is marked noisy");
say(`${runs.length} relay runs in ${seconds.toFixed(0)} s`);

const resultsDir = join(BENCH_DIR, "results");
mkdirSync(resultsDir, { recursive: true });
const json = JSON.stringify({
  startedAt: startedAt.toISOString(), mode: quick ? "quick" : "full", overridden, commit, changedFilesInSrcNative: dirty,
  bun: Bun.version, kernel: os.release(), cpu: os.cpus()[0]?.model, sizes, planes, floodRate, seconds, notes, verdicts: vs, runs,
}, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
writeFileSync(join(resultsDir, `sessions-${stamp}.json`), `${json}\n`);
writeFileSync(join(resultsDir, "sessions-latest.json"), `${json}\n`);
writeFileSync(join(resultsDir, "sessions-latest.txt"), `${lines.join("\n")}\n`);
if (!quick && !overridden) {
  writeFileSync(join(resultsDir, "sessions-latest-full.json"), `${json}\n`);
  writeFileSync(join(resultsDir, "sessions-latest-full.txt"), `${lines.join("\n")}\n`);
}
console.log(`results: bench/results/sessions-${stamp}.json, sessions-latest.{json,txt}`);
process.exit(vs.some((v) => v.status === "ERROR") ? 1 : 0);
