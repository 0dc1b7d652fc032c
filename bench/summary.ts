/** Medians over repetitions, ratios against the baselines, and the targets. */
import type { Figures, Sample } from "./measure.ts";
import { isFlatFlow, type Scenario } from "./scenarios.ts";

export interface Row extends Figures {
  scenario: string;
  relay: string;
  runs: number;
  failed: number;
  error?: string;
  rttP50?: number;
  rttP99?: number;
  rttP999?: number;
  addedP99?: number;
  /** delivered (or bytes/s for gso) and CPU/packet relative to the ideal and naive baselines */
  xIdeal?: number;
  cpuXIdeal?: number;
  xNaive?: number;
}

export type Status = "PASS" | "MISS" | "SKIP";

export interface Check {
  target: string;
  relay: string;
  scenario: string;
  status: Status;
  detail: string;
}

function median(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const ratio = (a?: number, b?: number): number | undefined => (a !== undefined && b ? a / b : undefined);

export function summarize(samples: Sample[], scenarios: Scenario[], relays: string[]): Row[] {
  const rows: Row[] = [];
  for (const s of scenarios) {
    const byRelay = new Map<string, Row>();
    for (const relay of ["direct", ...relays]) {
      const all = samples.filter((x) => x.scenario === s.id && x.relay === relay);
      if (all.length === 0) continue;
      const ok = all.filter((x) => x.ok);
      const m = (f: (x: Sample) => number | undefined) => median(ok.map(f));
      const row: Row = {
        scenario: s.id, relay, runs: all.length, failed: all.length - ok.length,
        error: all.find((x) => !x.ok)?.error,
        offeredPps: m((x) => x.offeredPps), deliveredPps: m((x) => x.deliveredPps), loss: m((x) => x.loss),
        deliveredBps: m((x) => x.deliveredBps), relayDrops: m((x) => x.relayDrops), cpuUtil: m((x) => x.cpuUtil),
        otherOnRelayCore: m((x) => x.otherOnRelayCore),
        cpuNsPerPacket: m((x) => x.cpuNsPerPacket), rssMb: m((x) => x.rssMb),
        rttP50: m((x) => x.rtt?.p50), rttP99: m((x) => x.rtt?.p99), rttP999: m((x) => x.rtt?.p999),
        pairedSessions: m((x) => x.pairedSessions), bytesPerSession: m((x) => x.bytesPerSession),
        regPerSecond: m((x) => x.regPerSecond),
      };
      byRelay.set(relay, row);
      rows.push(row);
    }
    const direct = byRelay.get("direct"), ideal = byRelay.get("ideal"), naive = byRelay.get("naive");
    for (const row of byRelay.values()) {
      if (s.kind === "rtt" && direct?.rttP50 !== undefined && row.rttP99 !== undefined && row.relay !== "direct") {
        row.addedP99 = row.rttP99 - direct.rttP50;
      }
    }
    for (const row of byRelay.values()) {
      if (s.kind === "flow") {
        row.xIdeal = ratio(row.deliveredPps, ideal?.deliveredPps);
        row.xNaive = ratio(row.deliveredPps, naive?.deliveredPps);
        row.cpuXIdeal = ratio(row.cpuNsPerPacket, ideal?.cpuNsPerPacket);
      } else if (s.kind === "gso") {
        row.xIdeal = ratio(row.deliveredBps, ideal?.deliveredBps);
        row.xNaive = ratio(row.deliveredBps, naive?.deliveredBps);
        row.cpuXIdeal = ratio(row.cpuNsPerPacket, ideal?.cpuNsPerPacket);
      } else if (s.kind === "rtt") {
        row.xIdeal = ratio(row.addedP99, ideal?.addedP99);
      }
    }
  }
  return rows;
}

const f2 = (x?: number): string => (x === undefined ? "-" : x.toFixed(2));
const NOISY_SHARE = 0.1;

/** `nativePlanes`: relays that ran the native plane (native, and the binary when it chose native). */
export function checkTargets(
  rows: Row[], scenarios: Scenario[], relays: string[], nativePlanes: string[], unavailable: Map<string, string>,
): Check[] {
  const checks: Check[] = [];
  const skip = (target: string, relay: string, why: string) =>
    checks.push({ target, relay, scenario: "-", status: "SKIP", detail: why });
  const judge = (target: string, relay: string, scenario: string, value: number | undefined, ok: (v: number) => boolean, detail: string) =>
    checks.push({ target, relay, scenario, status: value === undefined ? "SKIP" : ok(value) ? "PASS" : "MISS", detail });
  const find = (scenario: string, relay: string) => rows.find((r) => r.scenario === scenario && r.relay === relay);
  const present = (relay: string) => relays.includes(relay);

  const flat = scenarios.filter(isFlatFlow);
  /** Marks a throughput comparison made while other work took a share of the relay's core. */
  const noisy = (scenario: string, relay: string, against: string): string => {
    const other = Math.max(find(scenario, relay)?.otherOnRelayCore ?? 0, find(scenario, against)?.otherOnRelayCore ?? 0);
    return other > NOISY_SHARE ? ` (noisy: other load up to ${(other * 100).toFixed(0)}% of the relay core)` : "";
  };
  if (!present("native")) {
    skip("native delivered >= 0.95x ideal", "native", unavailable.get("native") ?? "not run");
    skip("native CPU/packet <= 1.2x ideal", "native", unavailable.get("native") ?? "not run");
  }
  for (const relay of nativePlanes.filter(present)) {
    for (const s of flat) {
      const r = find(s.id, relay);
      judge(`${relay} delivered >= 0.95x ideal`, relay, s.id, r?.xIdeal, (v) => v >= 0.95, `${f2(r?.xIdeal)}x${noisy(s.id, relay, "ideal")}`);
      const capacity = r?.cpuXIdeal === undefined ? undefined : 1 / r.cpuXIdeal;
      judge(`${relay} capacity (1/CPU per packet) >= 0.95x ideal`, relay, s.id, capacity, (v) => v >= 0.95, `${f2(capacity)}x`);
      judge(`${relay} CPU/packet <= 1.2x ideal`, relay, s.id, r?.cpuXIdeal, (v) => v <= 1.2, `${f2(r?.cpuXIdeal)}x`);
    }
  }
  if (present("ts")) {
    for (const s of flat) {
      const r = find(s.id, "ts");
      judge("TS delivered >= 0.8x naive", "ts", s.id, r?.xNaive, (v) => v >= 0.8, `${f2(r?.xNaive)}x${noisy(s.id, "ts", "naive")}`);
      const naiveNs = find(s.id, "naive")?.cpuNsPerPacket;
      const capacity = r?.cpuNsPerPacket && naiveNs ? naiveNs / r.cpuNsPerPacket : undefined;
      judge("TS capacity (1/CPU per packet) >= 0.8x naive", "ts", s.id, capacity, (v) => v >= 0.8, `${f2(capacity)}x`);
    }
  }
  const quic = ["ts", "native", "binary"].filter(present);
  for (const s of scenarios) {
    for (const relay of quic) {
      const r = find(s.id, relay);
      if (s.kind === "gso" && nativePlanes.includes(relay)) {
        judge("GRO/GSO bulk >= 3x ideal bytes/s", relay, s.id, r?.xIdeal, (v) => v >= 3, `${f2(r?.xIdeal)}x`);
      } else if (s.kind === "rtt") {
        judge("added RTT p99 @1kpps <= 1.1x ideal", relay, s.id, r?.xIdeal, (v) => v <= 1.1,
          `${f2(r?.addedP99)} us vs ideal ${f2(find(s.id, "ideal")?.addedP99)} us = ${f2(r?.xIdeal)}x`);
      } else if (s.kind === "memory") {
        const complete = r?.pairedSessions === s.sessions;
        judge("100k sessions <= 150 MB RSS", relay, s.id, complete ? r?.rssMb : undefined, (v) => v <= 150,
          complete ? `${f2(r?.rssMb)} MB` : `only ${r?.pairedSessions ?? 0} of ${s.sessions} sessions paired`);
      }
    }
  }
  if (!present("native") && scenarios.some((s) => s.kind === "gso")) {
    skip("GRO/GSO bulk >= 3x ideal bytes/s", "native", unavailable.get("native") ?? "not run");
  }
  return checks;
}
