import { afterEach, describe, expect, it } from "bun:test";
import { EVENT_LOOP_LAG_BUCKETS, EventLoopLagMonitor, type LagTimers } from "../../src/metrics/event-loop-lag.ts";
import { ExpositionWriter } from "../../src/metrics/exposition.ts";
import { emptyOperationsCounters, renderRelayMetrics } from "../../src/metrics/relay-metrics.ts";
import { eventually, startRelay, type TestRelay } from "../utils.ts";

/** One-shot timers on a clock the test moves: `busyUntil(t)` is the JS thread coming back at t. */
class FakeTimers implements LagTimers {
  time = 5_000;
  pending: { at: number; callback: () => void }[] = [];

  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { at: this.time + ms, callback };
    this.pending.push(timer);
    return timer;
  }
  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((t) => t !== handle);
  }
  /** The thread is free again at `at`: every timer due by then fires now, late by `at - due`. */
  busyUntil(at: number): void {
    this.time = at;
    const due = this.pending.filter((t) => t.at <= at);
    this.pending = this.pending.filter((t) => t.at > at);
    for (const t of due) t.callback();
  }
  /** The next timer fires exactly on time. */
  onTime(): void {
    this.busyUntil(this.pending[0]!.at);
  }
}

function cumulative(counts: readonly number[]): number[] {
  let sum = 0;
  return counts.map((c) => (sum += c));
}

describe("event-loop lag monitor (fake timers)", () => {
  it("records how late each timer fired: the max, the sum, the count and the buckets", () => {
    const timers = new FakeTimers();
    const monitor = new EventLoopLagMonitor({ resolutionMs: 20, windowMs: 60_000, timers }).start();
    timers.onTime();
    timers.busyUntil(timers.pending[0]!.at + 300); // 300 ms late
    timers.busyUntil(timers.pending[0]!.at + 7); // 7 ms late
    const s = monitor.snapshot();
    expect(s.maxSeconds).toBeCloseTo(0.3, 9);
    expect(s.histogram.count).toBe(3);
    expect(s.histogram.sum).toBeCloseTo(0.307, 9);
    const byBound = new Map(EVENT_LOOP_LAG_BUCKETS.map((b, i) => [b, cumulative(s.histogram.counts)[i]]));
    expect(byBound.get(0.001)).toBe(1);
    expect(byBound.get(0.005)).toBe(1);
    expect(byBound.get(0.01)).toBe(2);
    expect(byBound.get(0.25)).toBe(2);
    expect(byBound.get(0.5)).toBe(3);
    expect(s.histogram.counts.at(-1)).toBe(0);
  });

  it("re-arms from its callback: a long stall is one sample, and the next one is on time again", () => {
    const timers = new FakeTimers();
    const monitor = new EventLoopLagMonitor({ resolutionMs: 20, timers }).start();
    timers.busyUntil(timers.time + 10_000);
    expect(monitor.samples).toBe(1);
    expect(timers.pending).toHaveLength(1);
    timers.onTime();
    expect(monitor.samples).toBe(2);
    expect(monitor.snapshot().histogram.counts[0]).toBe(1);
    expect(monitor.snapshot().histogram.counts.at(-1)).toBe(1); // 9.98 s: above the largest bound
  });

  it("keeps the max for the window, then forgets it", () => {
    const timers = new FakeTimers();
    const monitor = new EventLoopLagMonitor({ resolutionMs: 100, windowMs: 60_000, timers }).start();
    timers.busyUntil(timers.pending[0]!.at + 2_000);
    const stalledAt = timers.time;
    while (timers.time < stalledAt + 50_000) timers.onTime();
    expect(monitor.snapshot().maxSeconds).toBeCloseTo(2, 9);
    while (timers.time < stalledAt + 61_000) timers.onTime();
    expect(monitor.snapshot().maxSeconds).toBe(0);
    // The histogram is cumulative since start: the stall is still in it.
    expect(monitor.snapshot().histogram.sum).toBeCloseTo(2, 9);
  });

  it("starts once, stops its timer, and can start again", () => {
    const timers = new FakeTimers();
    const monitor = new EventLoopLagMonitor({ timers });
    monitor.start();
    monitor.start();
    expect(timers.pending).toHaveLength(1);
    monitor.stop();
    monitor.stop();
    expect(timers.pending).toHaveLength(0);
    monitor.start();
    timers.onTime();
    expect(monitor.samples).toBe(1);
    monitor.stop();
  });
});

describe("histogram exposition", () => {
  it("writes cumulative buckets ending at +Inf, then _sum and _count", () => {
    const text = new ExpositionWriter().histogram("lag_seconds", "Lag", { bounds: [0.01, 0.1], counts: [2, 1, 3], sum: 7.5, count: 6 }).toString();
    expect(text).toBe(
      [
        "# HELP lag_seconds Lag",
        "# TYPE lag_seconds histogram",
        'lag_seconds_bucket{le="0.01"} 2',
        'lag_seconds_bucket{le="0.1"} 3',
        'lag_seconds_bucket{le="+Inf"} 6',
        "lag_seconds_sum 7.5",
        "lag_seconds_count 6",
        "",
      ].join("\n"),
    );
  });
});

describe("event-loop lag in the relay's metrics (real timers)", () => {
  let relay: TestRelay | undefined;
  let monitor: EventLoopLagMonitor | undefined;
  afterEach(async () => {
    monitor?.stop();
    await relay?.stop();
  });

  function scrape(): Map<string, number> {
    const text = renderRelayMetrics({
      relay: relay!.relay,
      plane: relay!.relay.plane,
      operations: emptyOperationsCounters(),
      startedAtSeconds: 0,
      eventLoop: monitor,
    });
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      const m = /^(\S+) (\S+)$/.exec(line);
      if (m && !line.startsWith("#")) out.set(m[1]!, Number(m[2]));
    }
    return out;
  }

  it("shows a stall of the JS thread in the max gauge and the histogram", async () => {
    relay = await startRelay("ts");
    monitor = new EventLoopLagMonitor({ resolutionMs: 20 }).start();
    await eventually(() => monitor!.samples >= 1);
    const before = scrape();
    const samples = monitor.samples;
    // Busy for 200 ms: the timer armed at the last sample was due at most 20 ms into it, so it
    // fires at least 180 ms late, however loaded the machine (load only makes it later).
    const start = performance.now();
    while (performance.now() - start < 200) {
      // the thread is busy
    }
    await eventually(() => monitor!.samples > samples);
    const after = scrape();
    expect(after.get("quic_relay_event_loop_lag_max_seconds")!).toBeGreaterThanOrEqual(0.15);
    const above100ms = (m: Map<string, number>) =>
      m.get('quic_relay_event_loop_lag_seconds_bucket{le="+Inf"}')! - m.get('quic_relay_event_loop_lag_seconds_bucket{le="0.1"}')!;
    expect(above100ms(after) - above100ms(before)).toBeGreaterThanOrEqual(1);
    expect(after.get("quic_relay_event_loop_lag_seconds_count")!).toBeGreaterThan(before.get("quic_relay_event_loop_lag_seconds_count")!);
    expect(after.get('quic_relay_event_loop_lag_seconds_bucket{le="+Inf"}')).toBe(after.get("quic_relay_event_loop_lag_seconds_count"));
    expect(after.get("quic_relay_event_loop_lag_seconds_sum")! - before.get("quic_relay_event_loop_lag_seconds_sum")!).toBeGreaterThanOrEqual(0.15);
  });
});
