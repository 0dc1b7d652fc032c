/**
 * Capacity of a fleet of N relays, the capacity part of bench/fleet.ts. Each run starts N relays
 * afresh (127.0.0.61 and up, one process each, all pinned to core 0) on one Redis per plane, and
 * the generator (bench/fleet-loadgen.ts, pinned to core 1), which registers 12 sessions per relay
 * and sends 1200 B datagrams flat out both ways. Relay CPU is read from /proc/<pid>/stat at the
 * window's edges; the relays' own counters say afterwards how many sessions were bridged.
 */
import { join } from "node:path";
import type { FleetRelay } from "../test/support/fleet-harness.ts";
import { track } from "./children.ts";
import type { GeneratorResult, GeneratorSpec } from "./fleet-loadgen.ts";
import { startBenchRelay, startBenchRedis } from "./fleet-procs.ts";
import { LineReader } from "./line-reader.ts";
import { coreBusySeconds, cpuSeconds, GENERATOR_CORE, RELAY_CORE, waitForQuiet } from "./proc.ts";

export type Plane = "ts" | "native";
/** `redirect`: REGs carry `move` and follow MOVE; `plain`: no flag, split sessions are bridged; `single`: one relay. */
export type Clients = "redirect" | "plain" | "single";

export interface CapacityPlan {
  planes: Plane[];
  relayCounts: number[];
  sessionsPerRelay: number;
  reps: number;
  warmupS: number;
  durationS: number;
  drainS: number;
  batch: number;
}

export interface CapacitySample {
  plane: Plane;
  relays: number;
  clients: Clients;
  rep: number;
  sessions: number;
  /** Sessions whose peers first picked different relays. */
  picked: number;
  /** Sessions registered at two relays after MOVEs (the generator's view) and bridged (the relays' view). */
  split: number;
  bridged: number;
  moves: number;
  offeredPps: number;
  deliveredPps: number;
  loss: number;
  genRxDrops: number;
  /** Each relay's CPU during the window, in cores. */
  relayCpu: number[];
  /** Generator CPU, everything but the relays on core 0 and everything but the generator on core 1, in cores. */
  generatorCpu: number;
  otherOnRelayCore: number;
  otherOnGeneratorCore: number;
  /** Runs of this configuration thrown away before this one because other work shared a core. */
  retries: number;
  /** All relays' CPU time per delivered datagram. */
  cpuNsPerDatagram: number;
  error?: string;
}

export const SIZE = 1200;
const RELAY_HOSTS = ["127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64"];

/** The runs of one repetition: one relay, then redirect-capable and plain clients for each larger fleet. */
export function configurations(relayCounts: number[]): { relays: number; clients: Clients }[] {
  const kinds = (n: number): Clients[] => (n === 1 ? ["single"] : ["redirect", "plain"]);
  return relayCounts.flatMap((n) => kinds(n).map((clients) => ({ relays: n, clients })));
}

/**
 * Each session's two picks, as independent uniform picks (DNS round-robin seen by unrelated
 * clients) give on average, but exactly: first peers round-robin over the relays, second peers
 * offset so that 1/N of the sessions have both peers on one relay and every relay gets as many
 * first and second peers as any other.
 */
export function placements(relays: number, perRelay: number): { first: number; second: number }[] {
  return Array.from({ length: relays * perRelay }, (_, s) => ({ first: s % relays, second: (s + Math.floor(s / relays)) % relays }));
}

function pin(pid: number, core: number): void {
  const r = Bun.spawnSync(["taskset", "-a", "-p", "-c", String(core), String(pid)], { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`taskset ${pid}: ${r.stderr.toString().trim()}`);
}

interface Snapshot {
  at: number;
  relays: number[];
  generator: number;
  relayCore: number;
  generatorCore: number;
}

const snapshotOf = (relays: FleetRelay[], generator: number): Snapshot => ({
  at: performance.now(),
  relays: relays.map((r) => cpuSeconds(r.pid) ?? Number.NaN),
  generator: cpuSeconds(generator) ?? Number.NaN,
  relayCore: coreBusySeconds(RELAY_CORE),
  generatorCore: coreBusySeconds(GENERATOR_CORE),
});

async function runGenerator(spec: GeneratorSpec, relays: FleetRelay[]): Promise<{ result: GeneratorResult; a?: Snapshot; stop?: Snapshot; b?: Snapshot }> {
  const proc = track(Bun.spawn(["taskset", "-c", String(GENERATOR_CORE), process.execPath, join(import.meta.dir, "fleet-loadgen.ts"), JSON.stringify(spec)], {
    stdin: "ignore", stdout: "pipe", stderr: "pipe",
  }));
  const limitMs = (spec.warmupS + spec.durationS + spec.drainS) * 1000 + 30_000;
  const timer = setTimeout(() => proc.kill("SIGKILL"), limitMs);
  const lines = new LineReader(proc.stdout);
  let a: Snapshot | undefined, stop: Snapshot | undefined, b: Snapshot | undefined, result: GeneratorResult | undefined;
  try {
    for (;;) {
      const line = await lines.next(limitMs);
      if (line === undefined) break;
      if (line === "phase:measure") a = snapshotOf(relays, proc.pid);
      else if (line === "phase:stop") stop = snapshotOf(relays, proc.pid);
      else if (line === "phase:done") b = snapshotOf(relays, proc.pid);
      else if (line.startsWith("{")) result = JSON.parse(line) as GeneratorResult;
    }
  } finally {
    clearTimeout(timer);
  }
  await proc.exited;
  if (!result) throw new Error(`generator gave no result (exit ${proc.exitCode}): ${(await new Response(proc.stderr).text()).trim()}`);
  return { result, a, stop, b };
}

/** Why the sessions did not end up as the clients' kind says they must (then the run measured something else), or undefined. */
function misplaced(clients: Clients, picked: number, split: number, bridged: number): string | undefined {
  if (clients === "redirect" && (split > 0 || bridged > 0)) return `${split} sessions still split after MOVE, ${bridged} bridged (expected none)`;
  if (clients === "plain" && bridged !== picked) return `${bridged} sessions bridged, expected ${picked}`;
  return undefined;
}

async function runOne(plan: CapacityPlan, plane: Plane, redisUrl: string, relays: number, clients: Clients, rep: number): Promise<CapacitySample> {
  const picks = placements(relays, plan.sessionsPerRelay);
  const base = {
    plane, relays, clients, rep, sessions: picks.length, picked: picks.filter((p) => p.first !== p.second).length,
    split: 0, bridged: 0, moves: 0, offeredPps: 0, deliveredPps: 0, loss: Number.NaN, genRxDrops: 0, relayCpu: [],
    generatorCpu: Number.NaN, otherOnRelayCore: Number.NaN, otherOnGeneratorCore: Number.NaN, retries: 0, cpuNsPerDatagram: Number.NaN,
  };
  const fleet: FleetRelay[] = [];
  try {
    for (const host of RELAY_HOSTS.slice(0, relays)) {
      fleet.push(await startBenchRelay({ host, redisUrl, plane, logLevel: "warn", heartbeatSecs: 1 }));
      pin(fleet[fleet.length - 1]!.pid, RELAY_CORE);
    }
    await waitForQuiet(10_000);
    const spec: GeneratorSpec = {
      relays: fleet.map((r) => ({ host: r.host, port: r.port })),
      sessions: picks.map((p) => ({ id: crypto.randomUUID(), ...p })),
      peerNet: 88, move: clients === "redirect", redisUrl, directoryPrefix: "quic-relay",
      size: SIZE, batch: plan.batch, warmupS: plan.warmupS, durationS: plan.durationS, drainS: plan.drainS,
    };
    const { result, a, stop, b } = await runGenerator(spec, fleet);
    if (result.error) return { ...base, error: result.error };
    if (!a || !stop || !b) return { ...base, error: "the generator printed no window" };
    // Shares of a core over the window; CPU per datagram until the drain after it ends (the
    // window's datagrams are still being handled then).
    const windowS = (stop.at - a.at) / 1000;
    const wall = (b.at - a.at) / 1000;
    const relayCpu = stop.relays.map((cpu, i) => (cpu - a.relays[i]!) / windowS);
    const fleetSeconds = b.relays.reduce((sum, cpu, i) => sum + cpu - a.relays[i]!, 0);
    const stats = await Promise.all(fleet.map((r) => r.stats()));
    const bridged = stats.reduce((sum, s) => sum + (s.fleet?.bridgedNow ?? 0), 0) / 2;
    return {
      ...base,
      error: misplaced(clients, base.picked, result.split, bridged),
      split: result.split,
      bridged,
      moves: result.moves,
      offeredPps: result.offered / plan.durationS,
      deliveredPps: result.delivered / plan.durationS,
      loss: result.offered > 0 ? 1 - result.delivered / result.offered : Number.NaN,
      genRxDrops: result.genRxDrops,
      relayCpu,
      generatorCpu: (stop.generator - a.generator) / windowS,
      otherOnRelayCore: Math.max(0, (b.relayCore - a.relayCore - fleetSeconds) / wall),
      otherOnGeneratorCore: Math.max(0, (b.generatorCore - a.generatorCore - (b.generator - a.generator)) / wall),
      cpuNsPerDatagram: result.delivered > 0 ? (fleetSeconds * 1e9) / result.delivered : Number.NaN,
    };
  } catch (error) {
    return { ...base, error: error instanceof Error ? error.message : String(error) };
  } finally {
    await Promise.all(fleet.map((r) => r.stop()));
  }
}

/** Other work above this share of either core during the window makes a run noisy. */
export const NOISE_LIMIT = 0.1;
const MAX_RETRIES = 2;
export const noisy = (s: CapacitySample): boolean => s.otherOnRelayCore > NOISE_LIMIT || s.otherOnGeneratorCore > NOISE_LIMIT;

/** Every plane, repetition and configuration; the order of configurations rotates every repetition. */
export async function measureCapacity(plan: CapacityPlan, log: (line: string) => void): Promise<CapacitySample[]> {
  // This process and Redis share core 1 with the generator; core 0 is the relays'.
  pin(process.pid, GENERATOR_CORE);
  const samples: CapacitySample[] = [];
  const configs = configurations(plan.relayCounts);
  for (const plane of plan.planes) {
    const redis = await startBenchRedis();
    try {
      for (let rep = 0; rep < plan.reps; rep++) {
        for (let i = 0; i < configs.length; i++) {
          const { relays, clients } = configs[(i + rep) % configs.length]!;
          let s = await runOne(plan, plane, redis.url, relays, clients, rep);
          for (let retry = 1; retry <= MAX_RETRIES && noisy(s); retry++) {
            log(`${plane} ${relays} relay(s) ${clients} rep ${rep + 1}: other work used ${(Math.max(s.otherOnRelayCore, s.otherOnGeneratorCore) * 100).toFixed(0)}% of a core, again`);
            s = { ...(await runOne(plan, plane, redis.url, relays, clients, rep)), retries: retry };
          }
          samples.push(s);
          log(`${plane} ${relays} relay(s) ${clients} rep ${rep + 1}: ` + (s.error ? `ERROR ${s.error}` :
            `${(s.deliveredPps / 1000).toFixed(1)} kpps delivered of ${(s.offeredPps / 1000).toFixed(1)}, ` +
            `${s.cpuNsPerDatagram.toFixed(0)} ns/dgram, relays ${s.relayCpu.map((c) => `${(c * 100).toFixed(0)}%`).join("+")}, ` +
            `generator ${(s.generatorCpu * 100).toFixed(0)}%, other ${(s.otherOnRelayCore * 100).toFixed(0)}% / ${(s.otherOnGeneratorCore * 100).toFixed(0)}%, ${s.bridged} bridged, ${s.moves} moved`));
        }
      }
    } finally {
      await redis.stop();
    }
  }
  return samples;
}
