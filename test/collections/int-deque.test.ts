import { describe, expect, it } from "bun:test";
import fc from "fast-check";

import { IntDeque } from "../../src/collections/int-deque.ts";

describe("IntDeque", () => {
  it("behaves as an array used with push, pop, shift and a look at the first entry, across chunk boundaries", () => {
    // Runs long enough to cross chunks of 16,384 both ways.
    const op = fc.oneof(
      fc.record({ kind: fc.constant("push" as const), n: fc.integer({ min: 1, max: 40_000 }), v: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
      fc.record({ kind: fc.constant("pop" as const), n: fc.integer({ min: 1, max: 40_000 }) }),
      fc.record({ kind: fc.constant("shift" as const), n: fc.integer({ min: 1, max: 40_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30, size: "max" }), (ops) => {
        const d = new IntDeque();
        const model: number[] = [];
        let head = 0;
        for (const o of ops) {
          for (let k = 0; k < o.n; k++) {
            if (o.kind === "push") {
              d.push((o.v + k) | 0);
              model.push((o.v + k) | 0);
            } else if (o.kind === "pop") {
              expect(d.pop()).toBe(model.length > head ? model.pop() : undefined);
            } else {
              expect(d.peek()).toBe(model.length > head ? model[head] : undefined);
              expect(d.shift()).toBe(model.length > head ? model[head++] : undefined);
            }
            if (model.length === head) {
              model.length = 0;
              head = 0;
            }
          }
          expect(d.length).toBe(model.length - head);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("gives back what a long queue held, in order, after many chunks came and went", () => {
    const d = new IntDeque();
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 50_000; i++) d.push(next++);
      for (let i = 0; i < 40_000; i++) expect(d.shift()).toBe(expected++);
    }
    expect(d.length).toBe(next - expected);
    while (d.length > 0) expect(d.shift()).toBe(expected++);
    expect(d.shift()).toBeUndefined();
    expect(d.pop()).toBeUndefined();
  });
});
