/**
 * Reading the relay's /metrics: one scrape as a map of series, the REG counters, and the
 * event-loop lag histogram (src/metrics/event-loop-lag.ts) as a difference between two scrapes.
 */

export interface Scrape {
  /** performance.now() half-way between the request and the end of the answer */
  at: number;
  /** how long the scrape took, ms */
  ms: number;
  /** `name{labels}` (as the relay prints it) → value */
  series: Map<string, number>;
}

export class ScrapeError extends Error {
  override name = "ScrapeError";
}

export function parseExposition(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    if (space > 0) series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

export async function scrape(url: string, timeoutMs = 30_000): Promise<Scrape> {
  const t0 = performance.now();
  let text: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    text = await res.text();
    if (!res.ok) throw new ScrapeError(`${url}: HTTP ${res.status}`);
  } catch (error) {
    if (error instanceof ScrapeError) throw error;
    throw new ScrapeError(`${url}: ${(error as Error).message}`);
  }
  const t1 = performance.now();
  return { at: (t0 + t1) / 2, ms: t1 - t0, series: parseExposition(text) };
}

export function metric(s: Scrape, key: string): number {
  return s.series.get(key) ?? Number.NaN;
}

/** Sum of every series of a family (`name{...}` and bare `name`). */
export function familySum(s: Scrape, name: string): number {
  let sum = 0;
  for (const [key, v] of s.series) if (key === name || key.startsWith(`${name}{`)) sum += v;
  return sum;
}

/** REGs the relay handled: each created a session, paired one, or was refused (ACK or ERR each). */
export function handledRegs(s: Scrape): number {
  return metric(s, "quic_relay_sessions_created_total") + metric(s, "quic_relay_sessions_paired_total") +
    familySum(s, "quic_relay_refusals_total");
}

export const pairedSessions = (s: Scrape) => metric(s, 'quic_relay_sessions_active{state="paired"}');
export const pairedTotal = (s: Scrape) => metric(s, "quic_relay_sessions_paired_total");
export const controlQueueDrops = (s: Scrape) => metric(s, 'quic_relay_drops_total{reason="control-queue-full"}');
export const savesOk = (s: Scrape) => metric(s, 'quic_relay_state_saves_total{result="ok"}');
export const savesFailed = (s: Scrape) => metric(s, 'quic_relay_state_saves_total{result="error"}');
export const sessionsExpired = (s: Scrape) => metric(s, "quic_relay_sessions_expired_total");

const LAG = "quic_relay_event_loop_lag_seconds";

/** The lag histogram of one scrape: bucket upper bounds (s) and cumulative counts, +Inf last. */
function lagBuckets(s: Scrape): { bounds: number[]; cumulative: number[] } {
  const rows: [number, number][] = [];
  for (const [key, v] of s.series) {
    const m = key.startsWith(`${LAG}_bucket{`) ? /le="([^"]+)"/.exec(key) : null;
    if (m) rows.push([m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), v]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return { bounds: rows.map((r) => r[0]), cumulative: rows.map((r) => r[1]) };
}

export interface LagWindow {
  /** lag samples taken between the two scrapes (one per ~20 ms of the relay's timer) */
  samples: number;
  /** the worst sample lies in (lowMs, highMs]; highMs is Infinity above the top bucket */
  lowMs: number;
  highMs: number;
  /** samples above 10 ms */
  over10ms: number;
  /**
   * The relay's 60 s max gauge after the window, when it rose during the window (so the
   * largest sample of the last 60 s is this window's); undefined otherwise.
   */
  exactMaxMs?: number;
  meanMs: number;
}

/** What the relay's event-loop lag monitor recorded between scrape `a` and scrape `b`. */
export function lagBetween(a: Scrape, b: Scrape): LagWindow {
  const ha = lagBuckets(a), hb = lagBuckets(b);
  const per = (h: { cumulative: number[] }, i: number) => h.cumulative[i]! - (i > 0 ? h.cumulative[i - 1]! : 0);
  let top = -1, over10ms = 0;
  for (let i = 0; i < hb.bounds.length; i++) {
    const gained = per(hb, i) - per(ha, i);
    if (gained > 0) top = i;
    if (hb.bounds[i]! > 0.01) over10ms += gained;
  }
  const samples = metric(b, `${LAG}_count`) - metric(a, `${LAG}_count`);
  const sum = metric(b, `${LAG}_sum`) - metric(a, `${LAG}_sum`);
  const maxA = metric(a, "quic_relay_event_loop_lag_max_seconds"), maxB = metric(b, "quic_relay_event_loop_lag_max_seconds");
  return {
    samples,
    lowMs: top > 0 ? hb.bounds[top - 1]! * 1000 : 0,
    highMs: top >= 0 ? hb.bounds[top]! * 1000 : 0,
    over10ms,
    exactMaxMs: maxB > maxA ? maxB * 1000 : undefined,
    meanMs: samples > 0 ? (sum / samples) * 1000 : Number.NaN,
  };
}

/** The worst stall of a window in words: exact when the max gauge rose, else its bucket. */
export function describeLag(w: LagWindow): string {
  if (w.samples <= 0) return "no samples";
  if (w.exactMaxMs !== undefined && w.exactMaxMs > w.lowMs && w.exactMaxMs <= w.highMs) return `${w.exactMaxMs.toFixed(1)} ms`;
  if (w.highMs === Number.POSITIVE_INFINITY) return `> ${w.lowMs} ms`;
  return `<= ${w.highMs} ms`;
}

/** The figure a verdict compares: the exact max when known, else the bucket's upper bound. */
export function worstLagMs(w: LagWindow): number {
  if (w.exactMaxMs !== undefined && w.exactMaxMs > w.lowMs && w.exactMaxMs <= w.highMs) return w.exactMaxMs;
  return w.highMs;
}

/**
 * Polls (every `everyMs`) until the relay handled no more REGs of new peers between three scrapes
 * in a row (the probe's keepalives go on); returns the last scrape and `drainedAt`, the time of
 * the last scrape that still saw progress (the relay was done by then).
 */
export async function untilDrained(url: string, deadlineMs: number, everyMs = 40): Promise<{ last: Scrape; drainedAt: number }> {
  const deadline = performance.now() + deadlineMs;
  let last = await scrape(url);
  let drainedAt = last.at;
  for (let idle = 0; idle < 2;) {
    if (performance.now() > deadline) throw new ScrapeError(`relay still taking REGs after ${deadlineMs} ms`);
    await Bun.sleep(everyMs);
    const next = await scrape(url);
    const still = handledRegs(next) === handledRegs(last);
    if (!still) drainedAt = next.at;
    idle = still ? idle + 1 : 0;
    last = next;
  }
  return { last, drainedAt };
}
