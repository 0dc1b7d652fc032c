/** Tables and verdicts of bench/sessions.ts: figure, goal, PASS/MISS, and every phase's detail. */
import { describeLag, worstLagMs } from "./metrics-scrape.ts";
import type { PhaseName, PhaseResult } from "./session-phases.ts";
import type { Plane } from "./session-relay.ts";
import type { RunKind, RunResult } from "./session-runs.ts";
import { renderTable } from "./table.ts";

export type Status = "PASS" | "MISS" | "INFO" | "ERROR";

export interface Verdict {
  figure: string;
  plane: Plane;
  sessions: number;
  value: string;
  goal: string;
  status: Status;
}

/** The stall goal: no event-loop stall and no REG round trip above this. */
export const STALL_GOAL_MS = 10;
export const REG_RATE_GOAL = 100_000;

/** RSS goals (MB) by plane and table size; sizes without one are reported only. */
function memoryGoal(plane: Plane, sessions: number): number | undefined {
  if (plane === "native") return sessions === 100_000 ? 100 : sessions === 1_000_000 ? 300 : undefined;
  return sessions === 1_000_000 ? 500 : undefined;
}

const STALL_PHASES: [PhaseName, string][] = [
  ["idle", "idle"],
  ["state-save", "state save"],
  ["scrapes", "metrics scrapes"],
  ["expiry", "expiry sweep"],
  ["reg-flood", "REG flood"],
];

export function label(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  return n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}
const f = (v: number | undefined, digits = 1) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits));

/** The run each phase belongs to; a phase whose run did not take place at a size is not reported there. */
const RUN_OF: Record<PhaseName, RunKind> = {
  fill: "main", idle: "main", scrapes: "main", "reg-flood": "main", "reg-rate": "main", "state-save": "save", expiry: "expiry",
};

function phaseOf(runs: RunResult[], plane: Plane, sessions: number, phase: PhaseName): { p?: PhaseResult; error?: string } | undefined {
  const run = runs.find((x) => x.plane === plane && x.sessions === sessions && x.run === RUN_OF[phase]);
  if (!run) return undefined;
  const p = run.phases.find((x) => x.phase === phase);
  return p ? { p } : { error: run.error ?? "not measured" };
}

/** Marks a figure taken while something else used more than 10 % of the relay's core. */
function noisy(p: PhaseResult): string {
  return p.otherOnRelayCore > 0.1 ? ` (noisy: other ${f(p.otherOnRelayCore * 100, 0)} %)` : "";
}

export function rttText(p: PhaseResult): string {
  if (!p.probe) return "-";
  const lost = p.probe.lost ? `, ${p.probe.lost} lost` : "";
  return `${f(p.probe.p50Ms, 2)} / ${f(p.probe.p99Ms, 2)} / ${f(p.probe.maxMs, 1)} ms${lost}`;
}

export function verdicts(runs: RunResult[], floodRate: number): Verdict[] {
  const out: Verdict[] = [];
  const cells = [...new Map(runs.map((r) => [`${r.plane}/${r.sessions}`, r])).values()];
  for (const { plane, sessions } of cells) {
    const n = label(sessions);
    const v = (figure: string, value: string, goal: string, status: Status) => out.push({ figure, plane, sessions, value, goal, status });
    const main = runs.find((r) => r.plane === plane && r.sessions === sessions && r.run === "main");
    const goalMb = memoryGoal(plane, sessions);
    if (main?.memory) {
      const rss = main.memory.rssMb;
      v(`RSS, ${n} idle paired sessions`, `${f(rss)} MB`, goalMb ? `<= ${goalMb} MB` : "-", goalMb ? (rss <= goalMb ? "PASS" : "MISS") : "INFO");
    } else v(`RSS, ${n} idle paired sessions`, main?.error ?? "not measured", goalMb ? `<= ${goalMb} MB` : "-", "ERROR");
    const rate = phaseOf(runs, plane, sessions, "reg-rate") ?? {};
    const rateGoal = plane === "native";
    if (rate.p) {
      const value = `${f(rate.p.handledPerSecond / 1000)}k${noisy(rate.p)}`;
      v(`REG/s handled flat out, ${n} table`, value, rateGoal ? `>= ${REG_RATE_GOAL / 1000}k` : "-",
        rateGoal ? (rate.p.handledPerSecond >= REG_RATE_GOAL ? "PASS" : "MISS") : "INFO");
    } else v(`REG/s handled flat out, ${n} table`, rate.error ?? "-", rateGoal ? `>= ${REG_RATE_GOAL / 1000}k` : "-", "ERROR");
    const fill = phaseOf(runs, plane, sessions, "fill")?.p;
    if (fill) v(`REG/s while filling to ${n}`, `${f(fill.handledPerSecond / 1000)}k${noisy(fill)}`, "-", "INFO");
    for (const [phase, what] of STALL_PHASES) {
      const name = phase === "reg-flood" ? `${what} (${label(floodRate)}/s)` : what;
      const found = phaseOf(runs, plane, sessions, phase);
      if (!found) continue;
      const { p, error } = found;
      if (!p) {
        v(`worst event-loop stall, ${name}, ${n}`, error ?? "-", `<= ${STALL_GOAL_MS} ms`, "ERROR");
        continue;
      }
      const lag = worstLagMs(p.lag);
      const extra = p.lag.over10ms > 0 ? ` (${p.lag.over10ms} samples > 10 ms)` : "";
      v(`worst event-loop stall, ${name}, ${n}`, describeLag(p.lag) + extra + noisy(p), `<= ${STALL_GOAL_MS} ms`,
        p.lag.samples > 0 && lag <= STALL_GOAL_MS ? "PASS" : "MISS");
      if (p.probe) {
        const ok = p.probe.lost === 0 && p.probe.maxMs <= STALL_GOAL_MS;
        v(`REG RTT p50/p99/max, ${name}, ${n}`, rttText(p) + noisy(p), `max <= ${STALL_GOAL_MS} ms`, ok ? "PASS" : "MISS");
      }
      if (phase === "scrapes") {
        const d = p.detail;
        v(`scrape duration p50/max, ${n}`, `${f(Number(d.scrapeP50Ms), 2)} / ${f(Number(d.scrapeMaxMs))} ms (${d.scrapes} scrapes)`, "-", "INFO");
      }
    }
  }
  return out;
}

export function verdictTable(vs: Verdict[]): string {
  return renderTable(["status", "plane", "figure", "value", "goal"], vs.map((v) => [v.status, v.plane, v.figure, v.value, v.goal]), 5);
}

function detailText(d: Record<string, number | string>): string {
  return Object.entries(d).map(([k, v]) => `${k}=${typeof v === "number" ? (Number.isInteger(v) ? v : v.toFixed(2)) : v}`).join(" ");
}

/** One line per phase of every run; the free-form detail follows each line. */
export function phaseTable(runs: RunResult[]): string {
  const body: string[][] = [];
  const details: string[] = [];
  for (const r of runs) {
    if (r.error) {
      body.push([r.plane, label(r.sessions), r.run, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]);
      details.push(`failed: ${r.error}`);
    }
    for (const p of r.phases) {
      body.push([
        r.plane, label(r.sessions), `${r.run}/${p.phase}`, f(p.seconds), describeLag(p.lag), String(p.lag.over10ms), f(p.lag.meanMs, 2),
        rttText(p), f(p.handledPerSecond / 1000), String(p.kernelDrops), String(p.queueDrops), f(p.relayCpu * 100, 0),
        f(p.otherOnRelayCore * 100, 0),
      ]);
      details.push(detailText(p.detail));
    }
  }
  const lines = renderTable(
    ["plane", "N", "phase", "secs", "worst lag", ">10ms", "mean lag ms", "REG RTT p50/p99/max", "k REG/s", "kernel drops", "queue drops",
      "cpu %", "other %"],
    body, 3,
  ).split("\n");
  return lines.map((l, i) => (i === 0 ? `${l}  detail` : i === 1 ? l : `${l}  ${details[i - 2]}`)).join("\n");
}

export function memoryTable(runs: RunResult[]): string {
  const body = runs.filter((r) => r.memory).map((r) => {
    const m = r.memory!;
    const perSession = ((m.rssMb - m.baseMb) * 1048576) / r.sessions;
    return [r.plane, label(r.sessions), f(m.baseMb), f(m.rssMb), f(m.plateauMb), f(m.peakMb), f(perSession, 0), f(m.settleSeconds)];
  });
  return renderTable(["plane", "N", "RSS before MB", "RSS MB", "first plateau MB", "peak MB", "bytes/session", "settle s"], body, 2);
}
