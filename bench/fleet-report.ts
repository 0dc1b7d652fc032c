/** Table and goal lines of the fleet capacity part: medians per configuration, ratios to one relay. */
import { type CapacitySample, type Clients, NOISE_LIMIT, noisy, type Plane } from "./fleet-capacity.ts";
import { renderTable } from "./table.ts";

export interface CapacityRow {
  plane: Plane;
  relays: number;
  clients: Clients;
  runs: number;
  failed: number;
  noisy: number;
  sessions: number;
  picked: number;
  bridged: number;
  moves: number;
  offeredPps: number;
  deliveredPps: number;
  loss: number;
  fleetCpu: number;
  busiestRelayCpu: number;
  generatorCpu: number;
  cpuNsPerDatagram: number;
  /** Delivered per second if each relay had a core of its own and the busiest used all of it. */
  corePerRelayPps: number;
  /** delivered, CPU per datagram and corePerRelayPps over the one-relay figures of the same plane */
  capacityRatio: number;
  cpuRatio: number;
  corePerRelayRatio: number;
  limit: string;
}

export interface GoalLine {
  status: "PASS" | "MISS";
  plane: Plane;
  relays: number;
  figure: string;
  value: string;
  goal: string;
  why: string;
}

/** The goal: a fleet of N relays carries at least 0.9 × N × one relay for redirect-capable clients. */
export const GOAL_FACTOR = 0.9;

function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);

/** The relays limit a run that lost datagrams on a full core 0; one that lost almost none was limited by what the generator offered. */
function limitOf(fleetCpu: number, generatorCpu: number, loss: number): string {
  if (loss >= 0.02 && fleetCpu >= 0.9) return `core 0: relays ${(fleetCpu * 100).toFixed(0)} %`;
  if (generatorCpu >= 0.9) return `core 1: generator ${(generatorCpu * 100).toFixed(0)} %`;
  return "neither core full";
}

export function capacityRows(samples: CapacitySample[]): CapacityRow[] {
  const keys = [...new Set(samples.map((s) => `${s.plane}/${s.relays}/${s.clients}`))];
  const rows = keys.map((key): CapacityRow => {
    const all = samples.filter((s) => `${s.plane}/${s.relays}/${s.clients}` === key);
    const ok = all.filter((s) => !s.error);
    const m = (f: (s: CapacitySample) => number) => median(ok.map(f));
    const fleetCpu = m((s) => sum(s.relayCpu));
    const generatorCpu = m((s) => s.generatorCpu);
    const loss = m((s) => s.loss);
    const first = all[0]!;
    return {
      plane: first.plane, relays: first.relays, clients: first.clients, runs: all.length, failed: all.length - ok.length,
      noisy: ok.filter(noisy).length, sessions: first.sessions, picked: first.picked, bridged: m((s) => s.bridged), moves: m((s) => s.moves),
      offeredPps: m((s) => s.offeredPps), deliveredPps: m((s) => s.deliveredPps), loss,
      fleetCpu, busiestRelayCpu: m((s) => Math.max(...s.relayCpu)), generatorCpu, cpuNsPerDatagram: m((s) => s.cpuNsPerDatagram),
      corePerRelayPps: m((s) => s.deliveredPps / Math.max(...s.relayCpu)),
      capacityRatio: Number.NaN, cpuRatio: Number.NaN, corePerRelayRatio: Number.NaN, limit: limitOf(fleetCpu, generatorCpu, loss),
    };
  });
  for (const r of rows) {
    const one = rows.find((x) => x.plane === r.plane && x.relays === 1);
    if (!one) continue;
    r.capacityRatio = r.deliveredPps / one.deliveredPps;
    r.cpuRatio = r.cpuNsPerDatagram / one.cpuNsPerDatagram;
    r.corePerRelayRatio = r.corePerRelayPps / one.corePerRelayPps;
  }
  return rows;
}

const f = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : "-");
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "-");

export function capacityTable(rows: CapacityRow[]): string {
  const body = rows.map((r) => [
    r.plane, r.clients === "single" ? "-" : r.clients, String(r.relays),
    `${r.sessions} / ${r.picked} / ${f(r.moves, 0)} / ${f(r.bridged, 0)}`,
    f(r.offeredPps / 1000), f(r.deliveredPps / 1000), f(r.loss * 100, 0), f(r.fleetCpu * 100, 0), f(r.generatorCpu * 100, 0),
    f(r.cpuNsPerDatagram, 0), x(r.capacityRatio), x(r.cpuRatio), x(r.corePerRelayRatio),
    r.limit + (r.failed ? ` (${r.failed}/${r.runs} failed)` : "") + (r.noisy ? ` (noisy: ${r.noisy}/${r.runs})` : ""),
  ]);
  return renderTable(
    ["plane", "clients", "relays", "sessions/apart/moved/bridged", "offer kpps", "deliv kpps", "loss %", "relays cpu %", "gen cpu %",
      "ns/dgram", "deliv x1", "cpu/dgram x1", "core/relay x1", "what limits it"],
    body, 3,
  );
}

export function goalLines(rows: CapacityRow[]): GoalLine[] {
  const out: GoalLine[] = [];
  for (const r of rows.filter((r) => r.clients === "redirect")) {
    const goal = GOAL_FACTOR * r.relays;
    const goalText = `>= ${goal.toFixed(1)}x`;
    out.push({
      status: r.capacityRatio >= goal ? "PASS" : "MISS", plane: r.plane, relays: r.relays, figure: "delivered, measured",
      value: x(r.capacityRatio), goal: goalText,
      why: `every relay runs on core 0 (relays ${f(r.fleetCpu * 100, 0)} % of it), the generator on core 1: N relays get one core here`,
    });
    out.push({
      status: r.corePerRelayRatio >= goal ? "PASS" : "MISS", plane: r.plane, relays: r.relays, figure: "delivered, one core per relay (from CPU)",
      value: x(r.corePerRelayRatio), goal: goalText,
      why: `relay CPU per datagram ${x(r.cpuRatio)} one relay's; busiest relay ${f(r.busiestRelayCpu * 100, 0)} % of a core`,
    });
  }
  return out;
}

export function goalTable(lines: GoalLine[]): string {
  return renderTable(
    ["status", "plane", "relays", "figure (redirect-capable clients)", "value", "goal", "why"],
    lines.map((l) => [l.status, l.plane, String(l.relays), l.figure, l.value, l.goal, l.why]),
    4,
  );
}

export const CAPACITY_NOTES = [
  "sessions/apart/moved/bridged: sessions; of them, those whose two peers first picked different relays; second peers sent on by MOVE; sessions bridged in the end (relays' counters). " +
    "A run whose sessions did not end up as its clients' kind requires (redirect: none split, plain: every one apart bridged) counts as failed",
  "relays cpu %: user+system time of all relay processes during the window, in % of one core (all relays are pinned to core 0); gen cpu %: the generator's (core 1)",
  "ns/dgram: all relays' CPU time from the window's start until the drain after it ends, per delivered datagram; deliv x1, cpu/dgram x1: over the one-relay run of the same plane",
  "core/relay x1: delivered / busiest relay's share of a core, over the same for one relay: what the fleet would carry with a core per relay " +
    "and a generator elsewhere, if CPU per datagram stayed as measured (a projection, not a measurement)",
  `a run during which other work used more than ${NOISE_LIMIT * 100} % of either core is run again (twice at most), else marked noisy`,
];
