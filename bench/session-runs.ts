/**
 * The relay runs of one data plane at one table size, each a fresh relay filled with N idle
 * paired sessions:
 *   main:   memory, then idle, scrapes, a paced REG flood and the flat-out REG rate;
 *   save:   a state file saved every 2 s (its saves would run through every phase of the main
 *           run, so they get a relay of their own);
 *   expiry: a short idle timeout, sized from the main run's fill time so that nothing expires
 *           before the fill is over, then measured while every session expires.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeTempDir, trackTempDir } from "./children.ts";
import { describeLag } from "./metrics-scrape.ts";
import { memory, settledRss } from "./proc.ts";
import { RegProbe } from "./reg-probe.ts";
import { newTag } from "./regflood.ts";
import {
  expiryPhase, fillPhase, floodPhase, idlePhase, type PhaseContext, type PhaseResult, ratePhase, savePhase, scrapePhase,
} from "./session-phases.ts";
import { type Plane, type SessionRelay, type SessionRelayOptions, startSessionRelay } from "./session-relay.ts";
import { rttText } from "./session-report.ts";

export type RunKind = "main" | "save" | "expiry";

export interface Setup {
  regflood: string;
  relayPin: string[];
  genPin: string[];
  /** REGs/s offered by the paced flood phase */
  floodRate: number;
  log: (line: string) => void;
}

export interface MemoryFigures {
  /** RSS of the fresh relay before the fill */
  baseMb: number;
  /** RSS once the runtime collected the fill's garbage (see settledRss) */
  rssMb: number;
  /** RSS when it first stopped moving after the fill, before that collection */
  plateauMb: number;
  /** VmHWM: the largest RSS so far */
  peakMb: number;
  settleSeconds: number;
}

export interface RunResult {
  plane: Plane;
  sessions: number;
  run: RunKind;
  relayFlags: string;
  memory?: MemoryFigures;
  phases: PhaseResult[];
  fillSeconds?: number;
  error?: string;
}

export const maxSessionsFor = (n: number) => Math.max(1_100_000, n + 1_000_000);

export interface RunRequest {
  plane: Plane;
  sessions: number;
  run: RunKind;
  /** expected fill time, to size the short idle timeout */
  fillEstimateSecs: number;
}

/** Idle timeout of an expiry run: past its fill, with a margin for a fill slower than the estimate. */
export const expiryTimeoutSecs = (fillEstimateSecs: number) => Math.max(20, Math.ceil(fillEstimateSecs * 1.3) + 8);

export async function runOne(setup: Setup, req: RunRequest): Promise<RunResult> {
  const { plane, sessions, run } = req;
  const dir = trackTempDir(mkdtempSync(join(tmpdir(), "quic-relay-sessions-")));
  const timeoutSecs = run === "expiry" ? expiryTimeoutSecs(req.fillEstimateSecs) : 600;
  const opts: SessionRelayOptions = {
    plane, pin: setup.relayPin, maxSessions: maxSessionsFor(sessions), sessionTimeoutSecs: timeoutSecs,
    logPath: join(dir, "relay.log"),
    ...(run === "save" ? { stateFile: join(dir, "state.db"), stateSaveIntervalSecs: 2 } : {}),
  };
  const result: RunResult = {
    plane, sessions, run, phases: [],
    relayFlags: `--dataplane ${plane} --max-sessions ${opts.maxSessions} --session-timeout-secs ${timeoutSecs}` +
      (opts.stateFile ? " --state-file <tmp>/state.db --state-save-interval-secs 2" : ""),
  };
  let relay: SessionRelay | undefined;
  let probe: RegProbe | undefined;
  try {
    relay = await startSessionRelay(opts);
    const baseMb = memory(relay.pid)?.rssMb ?? Number.NaN;
    probe = await RegProbe.start(relay.port, setup.genPin);
    const ctx: PhaseContext = { relay, probe, regflood: setup.regflood, genPin: setup.genPin, cursors: { flood: 0, rate: 0 } };
    const fillStart = performance.now();
    const { phase, fill } = await fillPhase(ctx, { sessions, tag: newTag() }, setup.log);
    result.phases.push(phase);
    result.fillSeconds = fill.seconds;
    setup.log(`  ${fill.paired} paired sessions in ${fill.seconds.toFixed(1)} s (${fill.resent} waves resent)`);
    if (run === "main") {
      const m = await settledRss(relay.pid);
      result.memory = { baseMb, rssMb: m.rssMb, plateauMb: m.plateauMb, peakMb: m.peakMb, settleSeconds: m.seconds };
      setup.log(`  RSS ${m.rssMb.toFixed(1)} MB (first plateau ${m.plateauMb.toFixed(1)} MB, peak ${m.peakMb.toFixed(1)} MB)`);
      result.phases.push(await idlePhase(ctx, 4));
      result.phases.push(await scrapePhase(ctx, 4));
      result.phases.push(await floodPhase(ctx, setup.floodRate, 4));
      result.phases.push(await ratePhase(ctx, 3));
    } else if (run === "save") {
      result.phases.push(await savePhase(ctx, opts.stateFile!, 2, 30_000 + (sessions / 1_000_000) * 90_000));
    } else {
      // The last fill REG went out before the fill ended; the sweep runs every 250 ms.
      const expireBy = fillStart + fill.seconds * 1000 + timeoutSecs * 1000 + 2000;
      result.phases.push(await expiryPhase(ctx, sessions, expireBy, 30_000 + sessions / 50));
    }
    for (const p of result.phases) setup.log(`  ${p.phase}: ${summaryLine(p)}`);
  } catch (error) {
    result.error = (error as Error).message;
    setup.log(`  ${run} run failed: ${result.error}`);
  } finally {
    await probe?.stop();
    await relay?.stop();
    removeTempDir(dir);
  }
  return result;
}

function summaryLine(p: PhaseResult): string {
  return `${p.seconds.toFixed(1)} s, worst lag ${describeLag(p.lag)} (${p.lag.over10ms} > 10 ms), REG RTT ${rttText(p)}, ` +
    `${(p.handledPerSecond / 1000).toFixed(1)}k REG/s`;
}
