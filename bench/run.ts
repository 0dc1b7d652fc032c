/**
 * `bun run bench [--quick] [--realtime] [--relays=naive,ideal,ts,native,binary] [--scenarios=flow-64B,rtt] [--reps=N] [--duration=S]`
 * Builds the C tools, runs every relay back to back (alternating order per repetition) on the same
 * offered loads, prints tables and PASS/MISS per target, writes bench/results/{<ts>,latest}.json
 * and latest.svg.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { BENCH_DIR, buildTools } from "./build.ts";
import { acquireBenchLock } from "./lock.ts";
import { measure, measureDirectRtt, type Sample } from "./measure.ts";
import { GENERATOR_CORE, RELAY_CORE, waitForQuiet } from "./proc.ts";
import { binaryPresent, relaySpecs, reportedPlane, startRelay, type RelaySpec, type RunningRelay } from "./relays.ts";
import { makePlan, type Scenario } from "./scenarios.ts";
import { chartSvg } from "./svg.ts";
import { checkTargets, summarize } from "./summary.ts";
import { latencyTable, markdownSummary, memoryTable, targetsTable, targetVerdicts, throughputTable } from "./table.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const relayFilter = argv.find((a) => a.startsWith("--relays="))?.slice(9).split(",");
const plan = makePlan(quick);
const option = (name: string): number | undefined => {
  const v = argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  return v === undefined || !(Number(v) > 0) ? undefined : Number(v);
};
plan.reps = Math.round(option("reps") ?? plan.reps);
plan.duration = option("duration") ?? plan.duration;
const onlyScenarios = argv.find((a) => a.startsWith("--scenarios="))?.slice(12).split(",");
if (onlyScenarios) plan.scenarios = plan.scenarios.filter((s) => onlyScenarios.some((p) => s.id.startsWith(p)));
/** Hard stop for the measuring loop so a run always ends by itself (full: under ten minutes). */
const budgetMs = quick ? 150_000 : 540_000;
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const cpus = os.availableParallelism();
const pinned = cpus >= 2 && Bun.which("taskset") !== null;
const relayPin = pinned ? ["taskset", "-c", String(RELAY_CORE)] : [];
const genPin = pinned ? ["taskset", "-c", String(GENERATOR_CORE)] : [];
/**
 * RTT runs at real-time priority when possible: at 1 kpps the relay and the generator sleep between
 * datagrams (no starvation of others), and the tail then shows the relay rather than whoever else
 * holds the core.
 */
const realtime = process.getuid?.() === 0 && Bun.which("chrt") !== null ? ["chrt", "-f", "20"] : [];
/** `--realtime`: every scenario at SCHED_FIFO (steady figures, but starves everything else on both cores). */
const allRealtime = argv.includes("--realtime") && realtime.length > 0;
const notes: string[] = [];
if (allRealtime) notes.push("--realtime: every scenario ran relay and generator at SCHED_FIFO 20 (chrt)");
else if (realtime.length) notes.push("RTT measured with relay and generator at SCHED_FIFO 20 (chrt); other scenarios at normal priority");
if (!pinned) notes.push("relay and generator NOT pinned (needs 2 cores and taskset from util-linux)");

let current: RunningRelay | undefined;
process.on("SIGINT", () => {
  void (current?.stop() ?? Promise.resolve()).then(() => process.exit(130));
});

if (!(await acquireBenchLock(quick ? 300_000 : 900_000))) {
  console.log("another bench run kept the lock too long; giving up");
  process.exit(1);
}
const started = performance.now();
console.log(`quic-relay bench (${quick ? "quick" : "full"}): ${cpus} cpus (${os.cpus()[0]?.model ?? "?"}), ` +
  `kernel ${os.release()}, bun ${Bun.version}, load ${loadavg()}`);
const tools = buildTools();
console.log("built bench/build/{loadgen,baseline-naive,baseline-ideal}");

const unavailable = new Map<string, string>();
const planes = new Map<string, string>();
const specs: RelaySpec[] = [];
for (const spec of relaySpecs(tools)) {
  if (relayFilter && !relayFilter.includes(spec.name)) continue;
  if (spec.name === "binary" && !binaryPresent()) {
    unavailable.set(spec.name, "dist/quic-relay not built (bun run build)");
    continue;
  }
  try {
    const relay = await startRelay(spec, { pin: relayPin, logLevel: "info" });
    await relay.stop();
    const plane = reportedPlane(relay.logPath);
    if (plane) planes.set(spec.name, plane);
    specs.push(spec);
  } catch (e) {
    unavailable.set(spec.name, String(e instanceof Error ? e.message : e).split("\n").slice(0, 3).join(" | "));
  }
}
for (const [name, why] of unavailable) {
  console.log(`SKIPPED ${name}: ${why}`);
  notes.push(`${name} skipped: ${why}`);
}
console.log(`relays: ${specs.map((s) => s.name + (planes.has(s.name) ? `(${planes.get(s.name)})` : "")).join(", ")}`);

const total = plan.scenarios.reduce((n, s) => n + (s.kind === "memory" ? 1 : plan.reps) * specs.length, 0);
const samples: Sample[] = [];
let done = 0;

function progress(s: Sample): string {
  if (!s.ok) return `FAILED: ${s.error}`;
  const regFailed = s.regFailures ? `, REG FAILED for ${s.regFailures} peers` : "";
  if (s.rtt) return `rtt p50 ${s.rtt.p50.toFixed(1)} us, p99 ${s.rtt.p99.toFixed(1)} us`;
  if (s.pairedSessions !== undefined) return `${s.pairedSessions} sessions paired, RSS ${s.rssMb?.toFixed(1)} MB${regFailed}`;
  const genDrops = s.genRxDrops && s.genRxDrops > 0.01 * (s.deliveredPps ?? 0) ? `, GENERATOR socket drops ${s.genRxDrops}` : "";
  return `offered ${((s.offeredPps ?? 0) / 1000).toFixed(1)} kpps, delivered ${((s.deliveredPps ?? 0) / 1000).toFixed(1)} kpps, ` +
    `${s.cpuNsPerPacket?.toFixed(0)} ns/pkt, cpu ${((s.cpuUtil ?? 0) * 100).toFixed(0)}%${genDrops}${regFailed}`;
}

/** Total time the run may spend waiting for the machine to go quiet before measurements. */
let quietBudgetMs = quick ? 8_000 : 45_000;

async function runOne(scenario: Scenario, spec: RelaySpec, rep: number): Promise<Sample> {
  if (pinned && quietBudgetMs > 0) {
    const t = performance.now();
    await waitForQuiet(Math.min(2_000, quietBudgetMs));
    quietBudgetMs -= performance.now() - t;
  }
  try {
    const rt = scenario.kind === "rtt" || allRealtime ? realtime : [];
    current = await startRelay(spec, { pin: [...rt, ...relayPin], logLevel: "warn" });
    const sample = await measure(tools, [...rt, ...genPin], plan, scenario, current, rep);
    const ended = current.exited();
    return ended ? { ...sample, ok: false, error: `relay exited during the measurement (${ended})` } : sample;
  } catch (e) {
    return { scenario: scenario.id, relay: spec.name, rep, ok: false, error: String(e instanceof Error ? e.message : e).split("\n")[0] };
  } finally {
    await current?.stop();
    current = undefined;
  }
}

outer: for (const scenario of plan.scenarios) {
  const reps = scenario.kind === "memory" ? 1 : plan.reps;
  for (let rep = 0; rep < reps; rep++) {
    if (performance.now() - started > budgetMs) {
      notes.push(`time budget of ${budgetMs / 1000} s reached: stopped before ${scenario.id} rep ${rep + 1}`);
      break outer;
    }
    if (scenario.kind === "rtt") {
      const direct = await measureDirectRtt(tools, [...realtime, ...genPin], plan, scenario, rep).catch(
        (e): Sample => ({ scenario: scenario.id, relay: "direct", rep, ok: false, error: String(e) }));
      samples.push(direct);
      console.log(`        ${scenario.id} direct rep ${rep + 1}: ${progress(direct)}`);
    }
    const order = specs.map((_, i) => specs[(i + rep) % specs.length]);
    for (const spec of order) {
      const sample = await runOne(scenario, spec, rep);
      samples.push(sample);
      console.log(`[${String(++done).padStart(3)}/${total}] ${scenario.id} ${spec.name} rep ${rep + 1}: ${progress(sample)}`);
    }
  }
}

const relayNames = specs.map((s) => s.name);
const nativePlanes = relayNames.filter((n) => n === "native" || (n === "binary" && planes.get(n) === "native"));
const rows = summarize(samples, plan.scenarios, relayNames);
const checks = checkTargets(rows, plan.scenarios, relayNames, nativePlanes, unavailable);
const verdicts = targetVerdicts(checks);
const elapsed = (performance.now() - started) / 1000;
notes.push(`load average before/after: ${loadavg()} (other work on this machine makes figures noisy)`);

const has = (kind: Scenario["kind"]) => plan.scenarios.some((s) => s.kind === kind);
const text = [
  ...(has("flow") || has("gso") ? [
    `Throughput (medians of ${plan.reps} run(s), ${plan.duration} s each; loss = 1 - delivered/offered)`,
    throughputTable(rows), ""] : []),
  ...(has("rtt") ? ["Latency: ping-pong at 1 kpps through the relay (added p99 = p99 - direct p50)", latencyTable(rows), ""] : []),
  ...(has("memory") ? ["Memory: idle sessions (both peers registered)", memoryTable(rows), ""] : []),
  "Targets",
  targetsTable(checks),
  "",
  ...verdicts,
  ...notes.map((n) => `note: ${n}`),
].join("\n");
console.log(`\n${text}`);
console.log(`finished in ${elapsed.toFixed(0)} s`);

const resultsDir = join(BENCH_DIR, "results");
mkdirSync(resultsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const report = {
  date: new Date().toISOString(), quick, elapsedSeconds: elapsed,
  machine: { cpus, model: os.cpus()[0]?.model, kernel: os.release(), bun: Bun.version, memMb: Math.round(os.totalmem() / 1048576) },
  pinned, plan, relays: relayNames, planes: Object.fromEntries(planes), unavailable: Object.fromEntries(unavailable),
  rows, checks, verdicts, notes, samples,
};
const json = JSON.stringify(report, null, 2);
const svg = chartSvg(rows, relayNames, `${quick ? "quick" : "full"} run ${report.date}, ${cpus} cpus`);
const txt = `${quick ? "quick" : "full"} run ${report.date}\n\n${text}\n`;
// A run narrowed by options keeps its files to itself; latest.* is always a whole quick or full run,
// latest-full.* the last full one (what the README quotes).
const partial = Boolean(relayFilter || onlyScenarios || option("reps") || option("duration"));
for (const name of partial ? [stamp] : quick ? [stamp, "latest"] : [stamp, "latest", "latest-full"]) {
  writeFileSync(join(resultsDir, `${name}.json`), json);
  writeFileSync(join(resultsDir, `${name}.txt`), txt);
  writeFileSync(join(resultsDir, `${name}.svg`), svg);
  writeFileSync(join(resultsDir, `${name}.md`), `${txt.split("\n")[0]}\n\n${markdownSummary(rows, rows.some((r) => r.relay === "direct") ? ["direct", ...relayNames] : relayNames, verdicts)}\n`);
}
const refreshed = partial ? "(partial run: latest.* untouched)" : quick ? "and latest.*" : "and latest.*, latest-full.*";
console.log(`wrote bench/results/${stamp}.{json,txt,svg,md} ${refreshed}`);
process.exit(0);
