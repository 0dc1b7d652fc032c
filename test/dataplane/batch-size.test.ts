import { describe, expect, it } from "bun:test";
import { BATCH_MS, BatchSize, MAX_BATCH_DATAGRAMS, MIN_BATCH_DATAGRAMS } from "../../src/dataplane/batch-size.ts";

/** Control batches sized from the last one's cost (pure logic: the work clock is a counter). */
describe("BatchSize", () => {
  it("starts at the largest batch", () => {
    expect(new BatchSize(() => 0).next).toBe(MAX_BATCH_DATAGRAMS);
  });

  it("shrinks at once to what fits in the time a batch aims at", () => {
    let now = 0;
    const size = new BatchSize(() => now);
    // 256 datagrams at 50 µs each: 12.8 ms, a stall; 3 ms holds 60 of them.
    size.measure(256, () => (now += 256 * 0.05));
    expect(size.next).toBe(Math.floor(BATCH_MS / 0.05));
  });

  it("grows back by half at most per batch once datagrams are cheap again", () => {
    const size = new BatchSize(() => 0);
    size.learn(100, 100); // 1 ms a datagram
    expect(size.next).toBe(MIN_BATCH_DATAGRAMS);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      size.learn(size.next, size.next * 0.001);
      seen.push(size.next);
    }
    expect(seen).toEqual([24, 36, 54, 81, 122, 183]);
    size.learn(size.next, 0);
    expect(size.next).toBe(MAX_BATCH_DATAGRAMS);
  });

  it("stays within its bounds, and learns nothing from an empty batch", () => {
    const size = new BatchSize(() => 0);
    size.learn(1, 1e6);
    expect(size.next).toBe(MIN_BATCH_DATAGRAMS);
    size.learn(0, 1e6);
    expect(size.next).toBe(MIN_BATCH_DATAGRAMS);
    for (let i = 0; i < 20; i++) size.learn(size.next, 0);
    expect(size.next).toBe(MAX_BATCH_DATAGRAMS);
  });

  it("learns the cost of a batch whose handler throws", () => {
    let now = 0;
    const size = new BatchSize(() => now);
    expect(() => size.measure(200, () => {
      now += 200;
      throw new Error("handler failed");
    })).toThrow("handler failed");
    expect(size.next).toBe(MIN_BATCH_DATAGRAMS);
  });
});
