import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { REPLAY_WINDOW_SIZE, ReplayWindow, type ReplayVerdict } from "../../src/fleet/replay-window.ts";

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
const MAX_COUNTER = 2 ** 32 - 1;

/** The rules written as plainly as possible: every nonce ever accepted in the epoch, in a set. */
class NaiveWindow {
  private epoch = -1;
  private top = 0;
  private seen = new Set<number>();

  admit(epoch: number, counter: number): ReplayVerdict {
    if (epoch < this.epoch) return "replayed";
    if (epoch > this.epoch) {
      this.epoch = epoch;
      this.top = counter;
      this.seen = new Set([counter]);
      return "ok";
    }
    if (counter <= this.top - REPLAY_WINDOW_SIZE || this.seen.has(counter)) return "replayed";
    this.top = Math.max(this.top, counter);
    this.seen.add(counter);
    return "ok";
  }
}

function admitAll(window: ReplayWindow, epoch: number, counters: number[]): ReplayVerdict[] {
  return counters.map((c) => window.admit(epoch, c));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe("replay window", () => {
  it("accepts the first nonce a fresh window sees, whatever it is", () => {
    for (const [epoch, counter] of [[0, 0], [1_780_000_000_000, 0], [5, 123_456], [2 ** 48 - 1, MAX_COUNTER]]) {
      const window = new ReplayWindow();
      expect(window.admit(epoch!, counter!)).toBe("ok");
      expect(window.admit(epoch!, counter!)).toBe("replayed");
    }
  });

  it("accepts a rising sequence once", () => {
    const window = new ReplayWindow();
    expect(admitAll(window, 7, range(0, 5000)).every((v) => v === "ok")).toBe(true);
    expect(admitAll(window, 7, range(4000, 5000)).every((v) => v === "replayed")).toBe(true);
  });

  it("accepts counters up to 1023 behind the top once each, and none further behind", () => {
    const window = new ReplayWindow();
    expect(window.admit(1, 2000)).toBe("ok");
    const behind = range(2000 - REPLAY_WINDOW_SIZE + 1, 1999).reverse();
    expect(admitAll(window, 1, behind).every((v) => v === "ok")).toBe(true);
    expect(admitAll(window, 1, behind).every((v) => v === "replayed")).toBe(true);
    expect(window.admit(1, 2000 - REPLAY_WINDOW_SIZE)).toBe("replayed");
    expect(window.admit(1, 0)).toBe("replayed");
  });

  it("keeps each counter's bit to itself across the 32-bit words of the bitmap", () => {
    const window = new ReplayWindow();
    // Top at 2047: the window is 1024..2047 and counter 1024 + k sits in ring slot k.
    expect(window.admit(1, 2047)).toBe("ok");
    const slots = [0, 1, 30, 31, 32, 33, 63, 64, 95, 96, 511, 512, 991, 992, 1022];
    expect(admitAll(window, 1, slots.map((s) => 1024 + s)).every((v) => v === "ok")).toBe(true);
    for (let slot = 0; slot < REPLAY_WINDOW_SIZE; slot++) {
      const expected = slots.includes(slot) || slot === 1023 ? "replayed" : "ok";
      expect(window.admit(1, 1024 + slot)).toBe(expected);
    }
  });

  it("slides across word boundaries and clears exactly the slots the new counters take", () => {
    const window = new ReplayWindow();
    expect(admitAll(window, 1, [10, 30])).toEqual(["ok", "ok"]);
    expect(window.admit(1, 40)).toBe("ok"); // clears slots 31..40, across a word boundary
    expect(window.admit(1, 10)).toBe("replayed");
    expect(admitAll(window, 1, range(31, 39)).every((v) => v === "ok")).toBe(true);
    expect(window.admit(1, 1033)).toBe("ok"); // 10 is now 1023 behind, its slot kept
    expect(window.admit(1, 10)).toBe("replayed");
    expect(window.admit(1, 1000)).toBe("ok");
    expect(window.admit(1, 1034)).toBe("ok"); // takes slot 10 over from counter 10
    expect(window.admit(1, 10)).toBe("replayed"); // now too far behind
    expect(window.admit(1, 1034)).toBe("replayed");
    expect(window.admit(1, 1000)).toBe("replayed");
  });

  it("slides by exactly 1023, 1024 and more, forgetting the old bits", () => {
    for (const jump of [1023, 1024, 1025, 5000, 1_000_000]) {
      const window = new ReplayWindow();
      expect(admitAll(window, 1, range(100, 200)).every((v) => v === "ok")).toBe(true);
      const top = 200 + jump;
      expect(window.admit(1, top)).toBe("ok");
      // Every counter still in the window and not seen is accepted once: slots the old ones used are free.
      const inWindow = range(top - REPLAY_WINDOW_SIZE + 1, top - 1).filter((c) => c > 200);
      expect(admitAll(window, 1, inWindow).every((v) => v === "ok")).toBe(true);
      expect(admitAll(window, 1, inWindow).every((v) => v === "replayed")).toBe(true);
      // Old ones still inside the window stay seen; those behind it are refused.
      for (const c of range(100, 200)) expect(window.admit(1, c)).toBe("replayed");
    }
  });

  it("restarts at a higher epoch and refuses every lower one", () => {
    const window = new ReplayWindow();
    expect(admitAll(window, 5, [5000, 4999])).toEqual(["ok", "ok"]);
    expect(window.admit(6, 0)).toBe("ok");
    expect(window.admit(6, 1)).toBe("ok");
    expect(window.admit(6, 0)).toBe("replayed");
    expect(window.admit(5, 5001)).toBe("replayed");
    expect(window.admit(5, 0)).toBe("replayed");
    expect(window.admit(0, 0)).toBe("replayed");
  });

  it("works at the top of the counter range", () => {
    const window = new ReplayWindow();
    const top = range(MAX_COUNTER - 2000, MAX_COUNTER);
    expect(admitAll(window, 1, top).every((v) => v === "ok")).toBe(true);
    expect(window.admit(1, MAX_COUNTER)).toBe("replayed");
    expect(window.admit(1, MAX_COUNTER - REPLAY_WINDOW_SIZE + 1)).toBe("replayed");
    expect(window.admit(1, MAX_COUNTER - REPLAY_WINDOW_SIZE)).toBe("replayed");
    expect(window.admit(2, 0)).toBe("ok");
  });

  it("decides every nonce as the plain rules do", () => {
    // Nonces near each other (mostly the same epoch, small steps either way, now and then a big jump).
    const step = fc.oneof(
      { weight: 20, arbitrary: fc.record({ epoch: fc.constant(0), delta: fc.integer({ min: -40, max: 40 }) }) },
      { weight: 3, arbitrary: fc.record({ epoch: fc.constant(0), delta: fc.integer({ min: -1500, max: 1500 }) }) },
      { weight: 1, arbitrary: fc.record({ epoch: fc.integer({ min: -1, max: 1 }), delta: fc.integer({ min: -3000, max: 3000 }) }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_COUNTER }), fc.array(step, { maxLength: 600, size: "max" }), (start, steps) => {
        const window = new ReplayWindow();
        const model = new NaiveWindow();
        let epoch = 10;
        let counter = start;
        for (const s of steps) {
          epoch = Math.max(0, epoch + s.epoch);
          counter = Math.min(MAX_COUNTER, Math.max(0, counter + s.delta));
          expect(window.admit(epoch, counter)).toBe(model.admit(epoch, counter));
        }
      }),
      { numRuns: RUNS },
    );
  });
});
