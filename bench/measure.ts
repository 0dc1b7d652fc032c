/** One measurement: a scenario against one running relay, turned into a Sample. */
import type { BuiltTools } from "./build.ts";
import { runLoadgen } from "./loadgen.ts";
import { memory, settledRss, snapshot, type ProcSnapshot } from "./proc.ts";
import type { RelayName, RunningRelay } from "./relays.ts";
import type { Plan, Scenario } from "./scenarios.ts";

export interface Rtt {
  p50: number;
  p99: number;
  p999: number;
}

/** Figures a measurement yields; a summary row holds their medians under the same names. */
export interface Figures {
  offeredPps?: number;
  deliveredPps?: number;
  loss?: number;
  deliveredBps?: number;
  relayDrops?: number;
  cpuUtil?: number;
  /** share of the relay's core used by anything else during the window (noise indicator) */
  otherOnRelayCore?: number;
  cpuNsPerPacket?: number;
  rssMb?: number;
  pairedSessions?: number;
  bytesPerSession?: number;
  regPerSecond?: number;
}

export interface Sample extends Figures {
  scenario: string;
  relay: RelayName | "direct";
  rep: number;
  ok: boolean;
  error?: string;
  rtt?: Rtt;
  regFailures?: number;
  genRxDrops?: number;
  raw?: Record<string, unknown>;
}

const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN);

function rttOf(raw: Record<string, unknown>): Rtt {
  const r = raw.rtt_us as Record<string, number>;
  return { p50: r.p50, p99: r.p99, p999: r.p999 };
}

export async function measure(
  tools: BuiltTools, genPin: string[], plan: Plan, s: Scenario, relay: RunningRelay, rep: number,
): Promise<Sample> {
  const base = { scenario: s.id, relay: relay.spec.name, rep };
  const target = ["--relay", `127.0.0.1:${relay.port}`];
  if (s.kind === "rtt") {
    const a = snapshot(relay.pid, relay.port);
    const { result } = await runLoadgen(tools, genPin, [
      "--mode", "pingpong", ...target, "--rate", String(s.rate), "--size", String(s.size),
      "--warmup", String(plan.warmup), "--duration", String(plan.rttDuration),
    ], plan.rttDuration * 1000 + 30_000);
    const b = snapshot(relay.pid, relay.port), wall = (b.at - a.at) / 1000;
    return {
      ...base, ok: true, rtt: rttOf(result), loss: num(result.lost) / Math.max(1, num(result.sent)), raw: result,
      cpuUtil: (b.cpu - a.cpu) / wall,
      otherOnRelayCore: Math.max(0, (b.relayCoreBusy - a.relayCoreBusy - (b.cpu - a.cpu)) / wall),
    };
  }
  if (s.kind === "memory") {
    const before = memory(relay.pid);
    const { result } = await runLoadgen(tools, genPin, [
      "--mode", "register", ...target, "--sessions", String(s.sessions), "--ip-base", "64",
      "--wave", "2000", "--reg-timeout", "3",
    ], 180_000);
    const after = await settledRss(relay.pid).catch(() => undefined);
    const paired = num(result.paired_sessions);
    return {
      ...base, ok: after !== undefined, rssMb: after?.rssMb, pairedSessions: paired,
      regFailures: num(result.refused_peers) + num(result.timed_out_peers),
      regPerSecond: num(result.acked_peers) / num(result.seconds),
      bytesPerSession: before && after && paired > 0 ? ((after.rssMb - before.rssMb) * 1048576) / paired : undefined,
      raw: { ...result, rssBeforeMb: before?.rssMb, plateauRssMb: after?.plateauMb, peakRssMb: after?.peakMb },
    };
  }
  const args = s.kind === "gso"
    ? ["--mode", "gso", "--size", String(s.size), "--gso-segs", String(s.segs)]
    : ["--mode", "flow", "--size", String(s.size), "--sessions", String(s.sessions), "--rate", String(s.rate)];
  let a: ProcSnapshot | undefined, b: ProcSnapshot | undefined;
  const { result } = await runLoadgen(tools, genPin, [
    ...args, ...target, "--warmup", String(plan.warmup), "--duration", String(plan.duration),
    "--drain", String(plan.drain),
  ], (plan.warmup + plan.duration + plan.drain) * 1000 + 90_000, (phase) => {
    if (phase === "measure") a = snapshot(relay.pid, relay.port);
    if (phase === "done") b = snapshot(relay.pid, relay.port);
  });
  const mem = memory(relay.pid);
  const delivered = num(result.delivered);
  const reg = result.reg as Record<string, number>;
  if (reg.acked === 0) {
    return { ...base, ok: false, error: `no peer registered (${reg.refused} refused, ${reg.timeout} unanswered)`, raw: result };
  }
  const cpu = a && b ? b.cpu - a.cpu : Number.NaN;
  const wall = a && b ? (b.at - a.at) / 1000 : Number.NaN;
  return {
    ...base, ok: true,
    offeredPps: num(result.offered_pps), deliveredPps: num(result.delivered_pps), loss: num(result.loss),
    deliveredBps: num(result.delivered_Bps),
    relayDrops: a && b ? b.drops - a.drops : undefined,
    cpuUtil: a && b ? cpu / wall : undefined,
    otherOnRelayCore: a && b ? Math.max(0, (b.relayCoreBusy - a.relayCoreBusy - cpu) / wall) : undefined,
    cpuNsPerPacket: delivered > 0 ? (cpu * 1e9) / delivered : undefined,
    rssMb: mem?.rssMb, regFailures: reg.refused + reg.timeout, genRxDrops: num(result.gen_rx_drops), raw: result,
  };
}

/** RTT of plain loopback ping-pong between the two peers, no relay: the floor for "added" RTT. */
export async function measureDirectRtt(tools: BuiltTools, genPin: string[], plan: Plan, s: Scenario, rep: number): Promise<Sample> {
  const rate = s.kind === "rtt" ? s.rate : 1000;
  const { result } = await runLoadgen(tools, genPin, [
    "--mode", "pingpong", "--direct", "--rate", String(rate), "--warmup", String(plan.warmup),
    "--duration", String(plan.rttDuration), "--ip-base", "96",
  ], plan.rttDuration * 1000 + 30_000);
  return { scenario: s.id, relay: "direct", rep, ok: true, rtt: rttOf(result), raw: result };
}
