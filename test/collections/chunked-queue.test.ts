import { describe, expect, it } from "bun:test";
import fc from "fast-check";

import { ChunkedQueue } from "../../src/collections/chunked-queue.ts";

describe("ChunkedQueue", () => {
  it("behaves as an array used with push, shift and a look at the first entry, across chunk boundaries", () => {
    // Runs long enough to cross chunks of 4,096 both ways.
    const op = fc.oneof(
      fc.record({ kind: fc.constant("push" as const), n: fc.integer({ min: 1, max: 10_000 }), v: fc.integer() }),
      fc.record({ kind: fc.constant("shift" as const), n: fc.integer({ min: 1, max: 10_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const q = new ChunkedQueue<{ v: number }>();
        const model: { v: number }[] = [];
        let head = 0;
        for (const o of ops) {
          for (let k = 0; k < o.n; k++) {
            if (o.kind === "push") {
              const value = { v: o.v + k };
              q.push(value);
              model.push(value);
            } else {
              const expected = model.length > head ? model[head++] : undefined;
              expect(q.peek()).toBe(expected);
              expect(q.shift()).toBe(expected);
            }
          }
          expect(q.length).toBe(model.length - head);
          expect(q.peek()).toBe(model.length > head ? model[head] : undefined);
        }
      }),
      { numRuns: 60 },
    );
  });
});
