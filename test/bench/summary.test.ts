import { describe, expect, it } from "bun:test";
import type { Sample } from "../../bench/measure.ts";
import { makePlan } from "../../bench/scenarios.ts";
import { checkTargets, summarize } from "../../bench/summary.ts";
import { targetVerdicts } from "../../bench/table.ts";

const plan = makePlan(true);
const flowId = plan.scenarios.find((s) => s.kind === "flow")!.id;

function flow(relay: Sample["relay"], rep: number, deliveredPps: number, cpuNsPerPacket: number): Sample {
  return { scenario: flowId, relay, rep, ok: true, offeredPps: 300_000, deliveredPps, cpuNsPerPacket };
}

describe("bench summary", () => {
  const samples: Sample[] = [
    flow("ideal", 0, 200_000, 4000), flow("ideal", 1, 220_000, 4200), flow("ideal", 2, 240_000, 4400),
    flow("naive", 0, 180_000, 5000),
    flow("ts", 0, 150_000, 6000),
    flow("native", 0, 215_000, 5400), flow("native", 1, 100, 1), { scenario: flowId, relay: "native", rep: 2, ok: false, error: "x" },
  ];
  const scenarios = plan.scenarios.filter((s) => s.id === flowId);
  const rows = summarize(samples, scenarios, ["naive", "ideal", "ts", "native"]);

  it("takes medians over successful runs and computes ratios against the baselines", () => {
    const ideal = rows.find((r) => r.relay === "ideal")!;
    expect(ideal.deliveredPps).toBe(220_000);
    expect(ideal.cpuNsPerPacket).toBe(4200);
    const native = rows.find((r) => r.relay === "native")!;
    expect(native.failed).toBe(1);
    expect(native.deliveredPps).toBe((215_000 + 100) / 2);
    const ts = rows.find((r) => r.relay === "ts")!;
    expect(ts.xNaive).toBeCloseTo(150 / 180, 5);
  });

  it("judges each target PASS/MISS and says SKIP when a plane is missing", () => {
    const checks = checkTargets(rows, scenarios, ["naive", "ideal", "ts", "native"], ["native"], new Map());
    const ts = checks.find((c) => c.target.startsWith("TS delivered"))!;
    expect(ts.status).toBe("PASS");
    const nativeDelivered = checks.find((c) => c.target === "native delivered >= 0.95x ideal")!;
    expect(nativeDelivered.status).toBe("MISS");
    const skipped = checkTargets(rows, scenarios, ["naive", "ideal", "ts"], [], new Map([["native", "addon not built"]]));
    expect(skipped.filter((c) => c.relay === "native").every((c) => c.status === "SKIP")).toBe(true);
    expect(targetVerdicts(skipped).some((v) => v.startsWith("SKIP") && v.includes("addon not built"))).toBe(true);
  });
});
