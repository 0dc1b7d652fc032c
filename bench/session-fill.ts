/**
 * Fills the relay's table with idle paired sessions from forged sources (bench/regflood.ts), in
 * waves, with a window: the flooder sends a chunk only while fewer than WINDOW of the wave's REGs
 * wait unhandled (read from the relay's metrics), so neither the relay's socket buffer nor the
 * native plane's queue to the JS thread overflows, and the pace is whatever the relay takes. A
 * wave that still lost REGs (counted by the relay's paired-sessions counter) is sent again, paced:
 * REGs of peers already registered are only keepalives.
 */
import { handledRegs, pairedSessions, pairedTotal, scrape, type Scrape } from "./metrics-scrape.ts";
import { FILL_BASE, FloodStream } from "./regflood.ts";
import type { SessionRelay } from "./session-relay.ts";

export interface FillOptions {
  tool: string;
  /** the flooder's pin (the generator core) */
  pin: string[];
  relay: SessionRelay;
  sessions: number;
  tag: string;
  deadlineMs?: number;
}

export interface FillResult {
  /** paired sessions in the table at the end (the fill's, plus any that were there, less any expired) */
  paired: number;
  seconds: number;
  /** REGs the relay handled (created, paired or refused) per second of the whole fill */
  handledPerSecond: number;
  waves: number;
  /** waves sent again because some of their REGs were lost */
  resent: number;
  /** REGs written off as lost while sending (the relay made no progress with them in flight) */
  writtenOff: number;
}

export class FillError extends Error {
  override name = "FillError";
}

/** Sessions per wave: what one resend costs at most. */
const WAVE = 20_000;
/** REGs sent but not yet handled, at most: below the relay socket's and the native queue's room (~8k). */
const WINDOW = 6_000;
const CHUNK = 1_500;
const POLL_MS = 15;
/** Polls without progress, REGs in flight, after which those are taken as lost. */
const STALL_POLLS = 15;
/** Pace of a resent wave (datagrams/s). */
const RESEND_RATE = 20_000;

/**
 * Polls until the relay paired `target` sessions since it started (a counter: sessions that
 * expired meanwhile still count), or handled nothing more in three polls (it took everything it
 * was going to take).
 */
async function waitForWave(url: string, target: number, deadline: number): Promise<Scrape> {
  let last = await scrape(url);
  for (let idle = 0; idle < 2;) {
    if (pairedTotal(last) >= target) return last;
    if (performance.now() > deadline) throw new FillError(`fill: relay stuck at ${pairedTotal(last)} of ${target} sessions paired`);
    await Bun.sleep(40);
    const next = await scrape(url);
    // REGs of new peers only: the probe's keepalives keep the control path busy all along.
    idle = handledRegs(next) === handledRegs(last) ? idle + 1 : 0;
    last = next;
  }
  return last;
}

/** Sends datagrams [d0, d0 + n) keeping at most WINDOW unhandled; returns how many were written off. */
async function sendWindowed(flood: FloodStream, url: string, d0: number, n: number, deadline: number): Promise<number> {
  const h0 = handledRegs(await scrape(url));
  let sent = 0, writtenOff = 0, last = 0, still = 0;
  while (sent < n) {
    if (performance.now() > deadline) throw new FillError("fill: out of time");
    const handled = handledRegs(await scrape(url)) - h0 + writtenOff;
    still = handled === last ? still + 1 : 0;
    last = handled;
    let inFlight = sent - handled;
    if (inFlight > 0 && still >= STALL_POLLS) {
      writtenOff += inFlight;
      inFlight = 0;
      still = 0;
    }
    if (inFlight <= WINDOW - CHUNK) sent += await flood.send(d0 + sent, Math.min(CHUNK, n - sent));
    else await Bun.sleep(POLL_MS);
  }
  return writtenOff;
}

export async function fillSessions(o: FillOptions, progress: (line: string) => void = () => {}): Promise<FillResult> {
  const deadline = performance.now() + (o.deadlineMs ?? 300_000);
  const url = o.relay.metricsUrl;
  const before = await scrape(url);
  const basePaired = pairedTotal(before);
  const flood = FloodStream.open(o.tool, o.pin, { port: o.relay.port, srcBase: FILL_BASE, first: 0, count: o.sessions, tag: o.tag });
  let waves = 0, resent = 0, writtenOff = 0;
  const t0 = performance.now();
  let lastReport = t0;
  try {
    for (let first = 0; first < o.sessions; first += WAVE) {
      const count = Math.min(WAVE, o.sessions - first);
      const target = basePaired + first + count;
      for (let attempt = 0; ; attempt++) {
        if (attempt > 5) throw new FillError(`fill: wave at session ${first} still incomplete after ${attempt} sends`);
        const exited = o.relay.exited();
        if (exited) throw new FillError(`relay exited during the fill: ${exited}`);
        if (attempt === 0) writtenOff += await sendWindowed(flood, url, 2 * first, 2 * count, deadline);
        else await flood.send(2 * first, 2 * count, RESEND_RATE);
        waves++;
        const s = await waitForWave(url, target, deadline);
        if (pairedTotal(s) >= target) break;
        resent++;
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        progress(`  ${first + count} sessions after ${((lastReport - t0) / 1000).toFixed(0)} s`);
      }
    }
  } finally {
    await flood.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = await scrape(url);
  return {
    paired: pairedSessions(after), seconds, handledPerSecond: (handledRegs(after) - handledRegs(before)) / seconds,
    waves, resent, writtenOff,
  };
}
