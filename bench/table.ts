/** Plain-text tables for stdout and the README. */
import type { Check, Row } from "./summary.ts";

type Cell = string | number | undefined;

function fmt(v: Cell, digits = 1): string {
  if (v === undefined || (typeof v === "number" && !Number.isFinite(v))) return "-";
  return typeof v === "number" ? v.toFixed(digits) : v;
}

/** The first `leftColumns` columns are text (left-aligned), the rest numbers (right-aligned). */
export function renderTable(header: string[], body: string[][], leftColumns = 2): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

const k = (v?: number) => (v === undefined ? undefined : v / 1000);
const failed = (r: Row) => (r.failed > 0 ? ` (${r.failed}/${r.runs} failed)` : "");

export function throughputTable(rows: Row[]): string {
  const body = rows
    .filter((r) => (r.scenario.startsWith("flow") || r.scenario.startsWith("gso")) && r.relay !== "direct")
    .map((r) => [
      r.scenario, r.relay + failed(r), fmt(k(r.offeredPps)), fmt(k(r.deliveredPps)), fmt((r.loss ?? NaN) * 100),
      fmt(r.relayDrops, 0), fmt((r.cpuUtil ?? NaN) * 100, 0), fmt((r.otherOnRelayCore ?? NaN) * 100, 0), fmt(r.cpuNsPerPacket, 0),
      fmt((r.deliveredBps ?? NaN) / 1e6, 0), fmt(r.rssMb, 0), fmt(r.xIdeal, 2), fmt(r.cpuXIdeal, 2), fmt(r.xNaive, 2),
    ]);
  return renderTable(
    ["scenario", "relay", "offer kpps", "deliv kpps", "loss %", "relay drops", "cpu %", "other %", "ns/pkt", "MB/s", "RSS MB",
      "x ideal", "cpu x ideal", "x naive"],
    body,
  );
}

export function latencyTable(rows: Row[]): string {
  const body = rows
    .filter((r) => r.scenario.startsWith("rtt"))
    .map((r) => [r.scenario, r.relay + failed(r), fmt(r.rttP50), fmt(r.rttP99), fmt(r.rttP999), fmt(r.addedP99),
      fmt(r.xIdeal, 2), fmt((r.otherOnRelayCore ?? NaN) * 100, 0)]);
  return renderTable(["scenario", "relay", "p50 us", "p99 us", "p99.9 us", "added p99 us", "x ideal", "other %"], body);
}

export function memoryTable(rows: Row[]): string {
  const body = rows
    .filter((r) => r.scenario.startsWith("memory"))
    .map((r) => [r.scenario, r.relay + failed(r), fmt(r.pairedSessions, 0), fmt(r.rssMb), fmt(r.bytesPerSession, 0),
      fmt(k(r.regPerSecond))]);
  return renderTable(["scenario", "relay", "paired", "RSS MB", "bytes/session", "k REG/s"], body);
}

export function targetsTable(checks: Check[]): string {
  return renderTable(
    ["status", "target", "relay", "scenario", "detail"],
    checks.map((c) => [c.status, c.target, c.relay, c.scenario, c.detail]),
    5,
  );
}

/** One line per target: PASS only when every scenario it was judged on passed. */
export function targetVerdicts(checks: Check[]): string[] {
  const byTarget = new Map<string, Check[]>();
  for (const c of checks) byTarget.set(c.target, [...(byTarget.get(c.target) ?? []), c]);
  return [...byTarget].map(([target, cs]) => {
    const judged = cs.filter((c) => c.status !== "SKIP");
    const misses = judged.filter((c) => c.status === "MISS");
    if (judged.length === 0) return `SKIP  ${target}: ${cs[0].detail}`;
    const verdict = misses.length ? "MISS" : "PASS";
    const where = misses.length ? ` (missed in ${misses.map((c) => `${c.scenario} ${c.detail}`).join(", ")})` : "";
    return `${verdict}  ${target}: ${judged.length - misses.length}/${judged.length} scenarios${where}`;
  });
}

/** Compact Markdown for the README: one row per scenario, one column per relay. */
export function markdownSummary(rows: Row[], relays: string[], verdicts: string[]): string {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const cell = (scenario: string, relay: string): string => {
    const r = rows.find((x) => x.scenario === scenario && x.relay === relay);
    if (!r) return "-";
    if (scenario.startsWith("rtt")) return `${fmt(r.rttP50, 0)} / ${fmt(r.rttP99, 0)} us`;
    if (scenario.startsWith("memory")) return `${fmt(r.rssMb, 0)} MB`;
    if (scenario.startsWith("gso")) return `${fmt((r.deliveredBps ?? NaN) / 1e6, 0)} MB/s`;
    return `${fmt(k(r.deliveredPps), 0)}k / ${fmt(r.cpuNsPerPacket, 0)} ns`;
  };
  const lines = [
    `| scenario | ${relays.join(" | ")} |`,
    `|---|${relays.map(() => "---:").join("|")}|`,
    ...scenarios.map((s) => `| ${s} | ${relays.map((r) => cell(s, r)).join(" | ")} |`),
    "",
    "flows: delivered pps / relay CPU per datagram; gso: delivered bytes/s; rtt: p50 / p99 round trip; memory: RSS",
    "",
    ...verdicts.map((v) => `- ${v}`),
  ];
  return lines.join("\n");
}
