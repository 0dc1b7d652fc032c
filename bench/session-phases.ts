/**
 * The phases measured on a full table. Each is framed by one scrape before and one after (the
 * event-loop lag histogram's difference between them is the phase's), and the REG probe's round
 * trips are taken between the two, so neither scrape is among them.
 */
import { existsSync, statSync } from "node:fs";
import {
  controlQueueDrops, handledRegs, lagBetween, metric, type LagWindow, savesFailed, savesOk, scrape, type Scrape, sessionsExpired, untilDrained,
} from "./metrics-scrape.ts";
import { coreBusySeconds, cpuSeconds, RELAY_CORE, udpDrops } from "./proc.ts";
import type { ProbeWindow, RegProbe } from "./reg-probe.ts";
import { FLOOD_BASE, newTag, RANGE_ADDRESSES, RATE_BASE, regFlood } from "./regflood.ts";
import { fillSessions, type FillOptions, type FillResult } from "./session-fill.ts";
import type { SessionRelay } from "./session-relay.ts";

export type PhaseName = "fill" | "idle" | "state-save" | "scrapes" | "reg-flood" | "reg-rate" | "expiry";

export interface PhaseResult {
  phase: PhaseName;
  seconds: number;
  lag: LagWindow;
  probe?: ProbeWindow;
  /** REGs handled (created, paired, refused) per second of the phase */
  handledPerSecond: number;
  /** growth of the relay socket's receive-queue drops (kernel) */
  kernelDrops: number;
  /** REGs the native plane dropped because its queue to the JS thread was full */
  queueDrops: number;
  /** relay CPU over the phase, in cores */
  relayCpu: number;
  /** share of the relay's core used by anything else over the phase (above ~0.1 the figures are noisy) */
  otherOnRelayCore: number;
  detail: Detail;
}

export interface PhaseContext {
  relay: SessionRelay;
  probe?: RegProbe;
  regflood: string;
  genPin: string[];
  /** next unused session index under FLOOD_BASE / RATE_BASE (no address is reused in one relay) */
  cursors: { flood: number; rate: number };
}

type Detail = Record<string, number | string>;
/** A phase's action; `late` adds figures read from the scrape after it. */
type Body = (before: Scrape) => Promise<{ detail?: Detail; late?: (after: Scrape) => Detail; handledPerSecond?: number } | void>;

async function measured(ctx: PhaseContext, phase: PhaseName, body: Body): Promise<PhaseResult> {
  const { relay } = ctx;
  const drops0 = udpDrops(relay.port);
  const before = await scrape(relay.metricsUrl);
  const cpu0 = cpuSeconds(relay.pid) ?? Number.NaN, core0 = coreBusySeconds(RELAY_CORE);
  await ctx.probe?.mark();
  const out = (await body(before)) ?? {};
  const probe = await ctx.probe?.mark();
  const after = await scrape(relay.metricsUrl);
  const cpu1 = cpuSeconds(relay.pid) ?? Number.NaN, core1 = coreBusySeconds(RELAY_CORE);
  const drops1 = udpDrops(relay.port);
  const seconds = (after.at - before.at) / 1000;
  const exited = relay.exited();
  if (exited) throw new Error(`relay exited during ${phase}: ${exited}`);
  return {
    phase, seconds, lag: lagBetween(before, after), probe,
    handledPerSecond: out.handledPerSecond ?? (handledRegs(after) - handledRegs(before)) / seconds,
    kernelDrops: drops1 - drops0, queueDrops: controlQueueDrops(after) - controlQueueDrops(before),
    relayCpu: (cpu1 - cpu0) / seconds,
    otherOnRelayCore: Math.max(0, (core1 - core0 - (cpu1 - cpu0)) / seconds),
    detail: { ...expiredDuring(before, after), ...out.detail, ...out.late?.(after) },
  };
}

/** The fill itself as a phase (its own polling scrapes included): what registering costs. */
export async function fillPhase(
  ctx: PhaseContext, o: Omit<FillOptions, "relay" | "tool" | "pin">, progress: (line: string) => void,
): Promise<{ phase: PhaseResult; fill: FillResult }> {
  let fill: FillResult | undefined;
  const phase = await measured(ctx, "fill", async () => {
    fill = await fillSessions({ ...o, relay: ctx.relay, tool: ctx.regflood, pin: ctx.genPin }, progress);
    return {
      handledPerSecond: fill.handledPerSecond,
      detail: { paired: fill.paired, waves: fill.waves, resent: fill.resent, writtenOff: fill.writtenOff },
    };
  });
  return { phase, fill: fill! };
}

/** Sessions that expired during a phase, shown in its detail (only the expiry phase expects any). */
function expiredDuring(before: Scrape, after: Scrape): Detail {
  const n = sessionsExpired(after) - sessionsExpired(before);
  return n > 0 ? { expired: n } : {};
}

export function idlePhase(ctx: PhaseContext, secs: number): Promise<PhaseResult> {
  return measured(ctx, "idle", async () => {
    await Bun.sleep(secs * 1000);
  });
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : Number.NaN;
}

/** `clients` concurrent loops fetching /metrics for `secs`; the scrape durations are the detail. */
export function scrapePhase(ctx: PhaseContext, secs: number, clients = 4): Promise<PhaseResult> {
  return measured(ctx, "scrapes", async () => {
    const ms: number[] = [];
    let failed = 0;
    const end = performance.now() + secs * 1000;
    const loop = async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          const res = await fetch(ctx.relay.metricsUrl, { signal: AbortSignal.timeout(10_000) });
          await res.arrayBuffer();
          if (res.ok) ms.push(performance.now() - t0);
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: clients }, loop));
    ms.sort((a, b) => a - b);
    return { detail: { scrapes: ms.length, failed, scrapeP50Ms: quantile(ms, 0.5), scrapeMaxMs: ms[ms.length - 1] ?? Number.NaN } };
  });
}

function takeSessions(ctx: PhaseContext, which: "flood" | "rate", count: number): number {
  const first = ctx.cursors[which];
  const room = RANGE_ADDRESSES / 2 - first;
  if (room <= 0) throw new Error(`no addresses left for the ${which} phase`);
  ctx.cursors[which] += Math.min(room, count);
  return first;
}

/** New sessions from forged sources at `rate` REGs/s for `secs`, then 1 s for the relay to catch up. */
export function floodPhase(ctx: PhaseContext, rate: number, secs: number): Promise<PhaseResult> {
  return measured(ctx, "reg-flood", async () => {
    const count = Math.ceil((rate * secs) / 2) + 1;
    const first = takeSessions(ctx, "flood", count);
    const r = await regFlood(ctx.regflood, ctx.genPin, {
      port: ctx.relay.port, srcBase: FLOOD_BASE, first, count, rate, duration: secs, tag: newTag(),
    });
    await Bun.sleep(1000);
    return { detail: { offeredPerSecond: r.rate, sent: r.sent } };
  });
}

/**
 * New sessions flat out for `secs`: REGs handled per second from the scrape before the flood to
 * the end of the relay's backlog (the relay is busy all along).
 */
export function ratePhase(ctx: PhaseContext, secs: number): Promise<PhaseResult> {
  return measured(ctx, "reg-rate", async (before) => {
    const count = Math.floor(RANGE_ADDRESSES / 2) - ctx.cursors.rate;
    const first = takeSessions(ctx, "rate", count);
    const r = await regFlood(ctx.regflood, ctx.genPin, {
      port: ctx.relay.port, srcBase: RATE_BASE, first, count, rate: 0, duration: secs, tag: newTag(),
    });
    ctx.cursors.rate = first + Math.ceil(r.sent / 2);
    const { last, drainedAt } = await untilDrained(ctx.relay.metricsUrl, 60_000);
    const handled = handledRegs(last) - handledRegs(before);
    return {
      handledPerSecond: handled / ((drainedAt - before.at) / 1000),
      detail: { offeredPerSecond: r.rate, sent: r.sent, handled, drainSeconds: (drainedAt - before.at) / 1000 - r.seconds },
    };
  });
}

/**
 * Until `saves` state saves completed after the phase began, plus one (a save may be under way at
 * its start, begun before it). Saves are counted by `quic_relay_state_saves_total{result="ok"}`,
 * read once a second: those scrapes are part of the phase (`extraScrapes`), as a 1 s Prometheus
 * interval would be. Where the relay exports them, the largest of its last-save figures seen in
 * those scrapes come along: rows written, length, longest hold of the event loop.
 */
/** The relay's figures of its last save (when it exports them): detail name, series, scale. */
const LAST_SAVE: [string, string, number][] = [
  ["saveRowsWrittenMax", 'quic_relay_state_last_save_rows{kind="written"}', 1],
  ["saveSecondsMax", "quic_relay_state_last_save_duration_seconds", 1],
  ["saveLongestChunkMsMax", "quic_relay_state_last_save_longest_chunk_seconds", 1000],
];

export function savePhase(ctx: PhaseContext, stateFile: string, saves: number, deadlineMs: number): Promise<PhaseResult> {
  return measured(ctx, "state-save", async (before) => {
    const deadline = performance.now() + deadlineMs;
    let extraScrapes = 0, done = 0;
    const largest: Detail = {};
    const note = (s: Scrape) => {
      for (const [name, key, scale] of LAST_SAVE) {
        const v = metric(s, key) * scale;
        if (Number.isFinite(v) && !(Number(largest[name]) >= v)) largest[name] = v;
      }
    };
    while (performance.now() < deadline) {
      await Bun.sleep(1000);
      const s = await scrape(ctx.relay.metricsUrl);
      extraScrapes++;
      note(s);
      done = savesOk(s) - savesOk(before);
      if (done >= saves + 1) break;
    }
    const size = (path: string) => (existsSync(path) ? statSync(path).size : 0);
    return {
      late: (after) => {
        note(after);
        return { savesOk: savesOk(after) - savesOk(before), saveErrors: savesFailed(after) - savesFailed(before), ...largest };
      },
      detail: {
        extraScrapes,
        fileMb: (size(stateFile) + size(`${stateFile}-wal`) + size(`${stateFile}-journal`)) / 1048576,
        timedOut: done >= saves + 1 ? "no" : "yes",
      },
    };
  });
}

/**
 * Until the `filled` sessions, registered with a short idle timeout, expired (those that expired
 * before the phase are not waited for): waits to `expireByMs` (performance.now() time by which
 * they should all be gone), then checks once a second.
 */
export function expiryPhase(ctx: PhaseContext, filled: number, expireByMs: number, deadlineMs: number): Promise<PhaseResult> {
  return measured(ctx, "expiry", async (before) => {
    const expected = filled - sessionsExpired(before);
    await Bun.sleep(Math.max(0, expireByMs - performance.now()));
    const deadline = performance.now() + deadlineMs;
    let extraScrapes = 0;
    for (;;) {
      const s = await scrape(ctx.relay.metricsUrl);
      extraScrapes++;
      if (sessionsExpired(s) - sessionsExpired(before) >= expected || performance.now() > deadline) break;
      await Bun.sleep(1000);
    }
    return { late: () => ({ expected, extraScrapes }) };
  });
}
