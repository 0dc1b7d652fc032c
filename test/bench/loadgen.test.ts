import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { buildTools, type BuiltTools } from "../../bench/build.ts";
import { runLoadgen } from "../../bench/loadgen.ts";
import { relaySpecs, startRelay, type RunningRelay } from "../../bench/relays.ts";

// Smoke test of the bench's C tools: they build, the baselines pair and forward, the generator
// reports sane JSON. No speed is asserted here (the bench itself judges speed).
const haveToolchain = Bun.which("cmake") !== null && (Bun.which("cc") !== null || Bun.which("gcc") !== null);

describe.skipIf(!haveToolchain)("bench load generator and baselines", () => {
  let tools: BuiltTools;
  const relays: RunningRelay[] = [];

  beforeAll(async () => {
    tools = buildTools();
    for (const spec of relaySpecs(tools).filter((s) => s.name === "naive" || s.name === "ideal")) {
      relays.push(await startRelay(spec, { pin: [], logLevel: "warn" }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const r of relays) await r.stop();
  });

  it("pairs sessions and forwards at a fixed rate through both baselines", async () => {
    for (const relay of relays) {
      const phases: string[] = [];
      const { result } = await runLoadgen(tools, [], [
        "--mode", "flow", "--relay", `127.0.0.1:${relay.port}`, "--sessions", "4", "--size", "200",
        "--rate", "2000", "--warmup", "0.1", "--duration", "0.5", "--drain", "0.3", "--ip-base", "200",
      ], 30_000, (p) => phases.push(p));
      expect(phases).toEqual(["measure", "stop", "done"]);
      expect((result.reg as Record<string, number>).acked).toBe(8);
      expect(result.bad).toBe(0);
      expect(result.sent as number).toBeGreaterThan(100);
      expect(result.delivered as number).toBeGreaterThan((result.sent as number) * 0.5);
    }
  }, 60_000);

  it("measures ping-pong RTT through a baseline and registers idle sessions", async () => {
    const target = `127.0.0.1:${relays[1].port}`;
    const rtt = await runLoadgen(tools, [], [
      "--mode", "pingpong", "--relay", target, "--rate", "500", "--warmup", "0.1", "--duration", "0.4", "--ip-base", "201",
    ], 30_000);
    expect(rtt.result.received as number).toBeGreaterThan(20);
    expect((rtt.result.rtt_us as Record<string, number>).p50).toBeGreaterThan(0);
    const reg = await runLoadgen(tools, [], [
      "--mode", "register", "--relay", target, "--sessions", "300", "--wave", "100", "--ip-base", "202",
    ], 30_000);
    expect(reg.result.paired_sessions).toBe(300);
  }, 60_000);

  it("sends GSO bursts that arrive as whole datagrams", async () => {
    const { result } = await runLoadgen(tools, [], [
      "--mode", "gso", "--relay", `127.0.0.1:${relays[1].port}`, "--size", "1200", "--gso-segs", "8",
      "--warmup", "0.1", "--duration", "0.3", "--ip-base", "203",
    ], 30_000);
    expect(result.bad).toBe(0);
    expect(result.delivered as number).toBeGreaterThan(0);
    expect(result.delivered_bytes).toBe((result.delivered as number) * 1200);
  }, 60_000);
});
