/**
 * A real QUIC bulk download through the relay against the same download direct, on loopback with no
 * rate cap: `bun bench/quic-bulk.ts [--size=1G] [--reps=3] [--stacks=quinn,ngtcp2] [--planes=native,ts]`.
 * `--quick`: 256M, 1 repetition. `--realtime`: relay and peers at SCHED_FIFO 20 (steady figures on a
 * shared machine, but it starves everything else). `--compare-root=DIR`: also run the planes of the
 * checkout in DIR, as `<plane>@alt`, to A/B a change in the same run.
 * Planes: native, native-nogro (`--no-gro`), ts; direct always runs as the baseline. Peers are pinned
 * to core 1 and the relay to core 0 (taskset); every repetition runs each path once, in an order
 * rotated per repetition. Reports medians: Mbit/s, the ratio to direct in the same run (goal: >= 0.9x),
 * relay CPU-seconds per GB and the peers' CPU per GB. Writes bench/results/quic-bulk-latest.{json,txt}
 * (default runs) and results/<timestamp>-quic-bulk.json. Not a test: `bun test` never runs it.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { workDir } from "../test/e2e/env.ts";
import { BENCH_DIR } from "./build.ts";
import { type BulkServer, type BulkStack, type Files, STACK_NAMES, STACKS, type StackName } from "./bulk-stacks.ts";
import { acquireBenchLock } from "./lock.ts";
import { coreBusySeconds, cpuSeconds, GENERATOR_CORE, RELAY_CORE, waitForQuiet } from "./proc.ts";
import { type RelaySpec, REPO_ROOT, type RunningRelay, startRelay } from "./relays.ts";

/** A relayed path is a plane, run from this checkout or (suffix `@alt`) from --compare-root's. */
type Variant = "direct" | "native" | "native-nogro" | "ts" | `${"native" | "native-nogro" | "ts"}@alt`;
const PLANES = ["native", "native-nogro", "ts"];
const GOAL = 0.9;

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = argv.includes("--quick");
function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(text.trim());
  if (!m) throw new Error(`--size: expected a number with an optional K, M or G, got '${text}'`);
  return Math.round(Number(m[1]) * 1024 ** " KMG".indexOf((m[2] || " ").toUpperCase()));
}
const size = parseSize(flag("size") ?? (quick ? "256M" : "1G"));
const reps = Math.max(1, Number(flag("reps") ?? (quick ? 1 : 3)));
const stackNames = (flag("stacks")?.split(",") ?? STACK_NAMES) as StackName[];
const planes = flag("planes")?.split(",") ?? ["native", "ts"];
/** Another checkout whose relay runs the same planes next to this one's (an A/B of a change). */
const compareRoot = flag("compare-root");
for (const s of stackNames) if (!STACK_NAMES.includes(s)) throw new Error(`--stacks: unknown stack '${s}' (${STACK_NAMES.join(", ")})`);
for (const p of planes) if (!PLANES.includes(p)) throw new Error(`--planes: unknown plane '${p}' (${PLANES.join(", ")})`);
const variants = ["direct", ...planes, ...(compareRoot ? planes.map((p) => `${p}@alt`) : [])] as Variant[];
/** Even the slowest path (the TS plane, ~0.4 Gbit/s here) is far inside this. */
const timeoutMs = Math.max(60_000, (size / 20e6) * 1000);
const realtime = argv.includes("--realtime") && process.getuid?.() === 0 && Bun.which("chrt") !== null ? ["chrt", "-f", "20"] : [];
const defaultRun = !flag("size") && !flag("reps") && !flag("stacks") && !flag("planes") && !compareRoot && !quick;

const cpus = os.availableParallelism();
const pinned = cpus >= 2 && Bun.which("taskset") !== null;
const relayPin = [...realtime, ...(pinned ? ["taskset", "-c", String(RELAY_CORE)] : [])];
const peerPin = [...realtime, ...(pinned ? ["taskset", "-c", String(GENERATOR_CORE)] : [])];

function relaySpec(variant: Exclude<Variant, "direct">): RelaySpec {
  const [name, alt] = variant.split("@");
  const plane = name === "ts" ? "ts" : "native";
  const extra = name === "native-nogro" ? ["--no-gro"] : [];
  const root = alt ? compareRoot! : REPO_ROOT;
  return {
    name: plane, label: `quic-relay ${variant}`, quicRelay: true,
    argv: (port, logLevel) => [process.execPath, join(root, "src/cli/main.ts"), "--dataplane", plane, ...extra,
      "--host", "127.0.0.1", "--port", String(port), "--session-timeout-secs", "600", "--log-level", logLevel,
      "--max-unanswered-bytes", "0"],
  };
}

interface Sample {
  stack: StackName;
  variant: Variant;
  rep: number;
  ok: boolean;
  error?: string;
  mbps?: number;
  seconds?: number;
  relayCpuPerGB?: number;
  peerCpuPerGB?: number;
  serverCpuPerGB?: number;
  clientCpuPerGB?: number;
  clientSwitchesPerMB?: number;
  /** share of each core used by anything but the relay (core 0) / the two peers (core 1) */
  otherOnRelayCore?: number;
  otherOnPeerCore?: number;
  /** busy share of both cores (0..2) seen just before the download started */
  busyBefore?: number;
}

let relay: RunningRelay | undefined;
let server: BulkServer | undefined;
process.on("SIGINT", () => {
  void Promise.all([server?.stop(), relay?.stop()]).then(() => process.exit(130));
});

let quietBudgetMs = 60_000;
async function measure(stack: BulkStack, files: Files, variant: Variant, rep: number): Promise<Sample> {
  const base = { stack: stack.name, variant, rep };
  try {
    relay = variant === "direct" ? undefined : await startRelay(relaySpec(variant), { pin: relayPin, logLevel: "warn" });
    const path = { relayPort: relay?.port, session: `bulk-${stack.name}-${variant}-${rep}-${process.pid}` };
    server = await stack.startServer(files, path, size, peerPin);
    let busyBefore: number | undefined;
    if (pinned && quietBudgetMs > 0) {
      const t = performance.now();
      busyBefore = await waitForQuiet(Math.min(3000, quietBudgetMs));
      quietBudgetMs -= performance.now() - t;
    }
    const r0 = relay ? cpuSeconds(relay.pid)! : 0, s0 = cpuSeconds(server.pid)!, t0 = performance.now();
    const c00 = coreBusySeconds(RELAY_CORE), c10 = coreBusySeconds(GENERATOR_CORE);
    const got = await stack.download(files, path, server, size, peerPin, timeoutMs);
    const r1 = relay ? cpuSeconds(relay.pid)! : 0, s1 = cpuSeconds(server.pid)!, wall = (performance.now() - t0) / 1000;
    const c01 = coreBusySeconds(RELAY_CORE), c11 = coreBusySeconds(GENERATOR_CORE);
    const ended = relay?.exited();
    if (ended) throw new Error(`relay exited during the download (${ended})`);
    const gb = got.bytes / 1e9;
    return {
      ...base, ok: true, seconds: got.seconds, mbps: (got.bytes * 8) / got.seconds / 1e6,
      relayCpuPerGB: relay ? (r1 - r0) / gb : undefined,
      peerCpuPerGB: (s1 - s0 + got.clientCpu) / gb, serverCpuPerGB: (s1 - s0) / gb, clientCpuPerGB: got.clientCpu / gb,
      clientSwitchesPerMB: got.clientSwitches / (got.bytes / 1e6),
      otherOnRelayCore: Math.max(0, (c01 - c00 - (r1 - r0)) / wall),
      otherOnPeerCore: Math.max(0, (c11 - c10 - (s1 - s0) - got.clientCpu) / wall),
      busyBefore,
    };
  } catch (e) {
    return { ...base, ok: false, error: String(e instanceof Error ? e.message : e).split("\n")[0] };
  } finally {
    await server?.stop();
    await relay?.stop();
    server = relay = undefined;
  }
}

const median = (xs: number[]): number | undefined => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

interface Row {
  stack: StackName;
  variant: Variant;
  runs: number;
  failed: number;
  mbps?: number;
  ratio?: number;
  relayCpuPerGB?: number;
  peerCpuPerGB?: number;
  peerCpuRatio?: number;
  clientSwitchesPerMB?: number;
  otherOnRelayCore?: number;
  otherOnPeerCore?: number;
}

function summarize(samples: Sample[]): Row[] {
  const rows: Row[] = [];
  for (const stack of stackNames) {
    for (const variant of variants) {
      const mine = samples.filter((s) => s.stack === stack && s.variant === variant);
      if (!mine.length) continue;
      const ok = mine.filter((s) => s.ok);
      const m = (k: keyof Sample) => median(ok.map((s) => s[k] as number));
      rows.push({
        stack, variant, runs: ok.length, failed: mine.length - ok.length, mbps: m("mbps"), relayCpuPerGB: m("relayCpuPerGB"),
        peerCpuPerGB: m("peerCpuPerGB"), clientSwitchesPerMB: m("clientSwitchesPerMB"),
        otherOnRelayCore: m("otherOnRelayCore"), otherOnPeerCore: m("otherOnPeerCore"),
      });
    }
    const direct = rows.find((r) => r.stack === stack && r.variant === "direct");
    for (const r of rows.filter((r) => r.stack === stack)) {
      if (direct?.mbps && r.mbps) r.ratio = r.mbps / direct.mbps;
      if (direct?.peerCpuPerGB && r.peerCpuPerGB) r.peerCpuRatio = r.peerCpuPerGB / direct.peerCpuPerGB;
    }
  }
  return rows;
}

function table(rows: Row[]): string {
  const f = (v: number | undefined, d: number) => (v === undefined ? "-" : v.toFixed(d));
  const pct = (v: number | undefined) => (v === undefined ? "-" : `${Math.round(v * 100)}%`);
  const head = ["stack", "path", "Mbit/s", "x direct", "relay CPU-s/GB", "peer CPU-s/GB", "peer x direct", "client csw/MB", "other core0/core1", "runs"];
  const body = rows.map((r) => [
    r.stack, r.variant, f(r.mbps, 0), f(r.ratio, 2), f(r.relayCpuPerGB, 2), f(r.peerCpuPerGB, 2), f(r.peerCpuRatio, 2),
    f(r.clientSwitchesPerMB, 1), `${pct(r.otherOnRelayCore)} / ${pct(r.otherOnPeerCore)}`, `${r.runs}${r.failed ? ` (${r.failed} failed)` : ""}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), ...body.map(line)].join("\n");
}

function verdicts(rows: Row[]): string[] {
  return rows.filter((r) => r.variant !== "direct").map((r) => {
    const verdict = r.ratio === undefined ? "SKIP" : r.ratio >= GOAL ? "PASS" : "MISS";
    return `${verdict}  ${r.stack} ${r.variant} >= ${GOAL}x direct: ${r.ratio === undefined ? "no figure" : `${r.ratio.toFixed(2)}x`}`;
  });
}

if (!(await acquireBenchLock(900_000))) {
  console.log("another bench run kept the lock too long; giving up");
  process.exit(1);
}
const started = performance.now();
const notes: string[] = [];
console.log(`quic-relay QUIC bulk bench: ${size} B per download, ${reps} repetition(s), ${cpus} cpus ` +
  `(${os.cpus()[0]?.model ?? "?"}), kernel ${os.release()}, bun ${Bun.version}`);
if (!pinned) notes.push("relay and peers NOT pinned (needs 2 cores and taskset from util-linux)");
if (compareRoot) notes.push(`@alt: the relay of ${compareRoot}`);
if (argv.includes("--realtime")) {
  notes.push(realtime.length ? "--realtime: relay and peers ran at SCHED_FIFO 20 (chrt)" : "--realtime ignored: needs root and chrt");
}
const stacks: BulkStack[] = [];
for (const name of stackNames) {
  const stack = STACKS[name];
  const why = stack.unavailable();
  if (why) {
    console.log(`SKIPPED ${name}: ${why}`);
    notes.push(`${name} skipped: ${why}`);
    continue;
  }
  notes.push(await stack.prepare());
  stacks.push(stack);
}
const files = workDir();
const samples: Sample[] = [];
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const stack of stacks) {
      for (const variant of variants.map((_, i) => variants[(i + rep) % variants.length]!)) {
        const s = await measure(stack, files, variant, rep);
        samples.push(s);
        console.log(`${stack.name} ${variant} rep ${rep + 1}: ` + (s.ok
          ? `${s.mbps!.toFixed(0)} Mbit/s, relay ${s.relayCpuPerGB?.toFixed(2) ?? "-"} CPU-s/GB, peers ${s.peerCpuPerGB!.toFixed(2)} CPU-s/GB, ` +
            `other load ${Math.round(s.otherOnRelayCore! * 100)}% / ${Math.round(s.otherOnPeerCore! * 100)}%`
          : `FAILED: ${s.error}`));
      }
    }
  }
} finally {
  files.remove();
}

const rows = summarize(samples);
const elapsed = (performance.now() - started) / 1000;
const text = [
  `QUIC bulk download, ${(size / 1048576).toFixed(0)} MiB, loopback, no rate cap; relay on core ${RELAY_CORE}, both peers on core ${GENERATOR_CORE}; medians of ${reps}`,
  table(rows),
  "",
  ...verdicts(rows),
  ...notes.map((n) => `note: ${n}`),
  `note: "other" = share of the core used by anything but the relay (core ${RELAY_CORE}) or the peers (core ${GENERATOR_CORE}), softirq work included; above ~10% the figures are noisy`,
].join("\n");
console.log(`\n${text}\nfinished in ${elapsed.toFixed(0)} s`);

const resultsDir = join(BENCH_DIR, "results");
mkdirSync(resultsDir, { recursive: true });
const date = new Date().toISOString();
const report = {
  date, elapsedSeconds: elapsed, size, reps, stacks: stackNames, variants, goal: GOAL, pinned, realtime: realtime.length > 0,
  machine: { cpus, model: os.cpus()[0]?.model, kernel: os.release(), bun: Bun.version },
  rows, notes, samples,
};
const stamp = date.replace(/[:.]/g, "-");
writeFileSync(join(resultsDir, `${stamp}-quic-bulk.json`), JSON.stringify(report, null, 2));
const latest = realtime.length ? "quic-bulk-realtime-latest" : "quic-bulk-latest";
if (defaultRun) {
  writeFileSync(join(resultsDir, `${latest}.json`), JSON.stringify(report, null, 2));
  writeFileSync(join(resultsDir, `${latest}.txt`), `run ${date}\n\n${text}\n`);
}
console.log(`wrote bench/results/${stamp}-quic-bulk.json${defaultRun ? ` and ${latest}.{json,txt}` : ` (non-default run: ${latest}.* untouched)`}`);
process.exit(0);
