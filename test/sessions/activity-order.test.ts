import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { ActivityOrder, type Ordered } from "../../src/sessions/activity-order.ts";

interface Item extends Ordered<Item> {
  name: number;
}
const item = (name: number): Item => ({ name, lastActivity: 0, older: undefined, newer: undefined });

function names(order: ActivityOrder<Item>): number[] {
  const out: number[] = [];
  for (let i = order.oldest; i !== undefined; i = i.newer) out.push(i.name);
  return out;
}

describe("ActivityOrder", () => {
  it("keeps the order of an array model under appends, touches and removals", () => {
    const op = fc.record({ kind: fc.constantFrom("append", "touch", "remove"), n: fc.nat(7) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
        const items = Array.from({ length: 8 }, (_, n) => item(n));
        const order = new ActivityOrder<Item>();
        let model: number[] = [];
        for (const { kind, n } of ops) {
          const inOrder = model.includes(n);
          if (kind === "append" && !inOrder) {
            order.append(items[n]!);
            model.push(n);
          } else if (kind === "touch" && inOrder) {
            order.touch(items[n]!);
            model = [...model.filter((m) => m !== n), n];
          } else if (kind === "remove") {
            order.remove(items[n]!); // also when not in the order: nothing happens
            model = model.filter((m) => m !== n);
          }
          expect(names(order)).toEqual(model);
          expect(order.size).toBe(model.length);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("leaves an item of another order alone", () => {
    const a = new ActivityOrder<Item>();
    const b = new ActivityOrder<Item>();
    const [x, y] = [item(1), item(2)];
    a.append(x);
    b.append(y);
    a.remove(y);
    a.touch(y);
    expect(names(a)).toEqual([1]);
    expect(names(b)).toEqual([2]);
    expect([a.size, b.size]).toEqual([1, 1]);
  });
});
