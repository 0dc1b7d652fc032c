import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { ShardedSet } from "../../src/sessions/sharded-set.ts";

describe("ShardedSet", () => {
  it("behaves as a Set for any sequence of adds and deletes (sizes, membership, iteration)", () => {
    const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("", "a", "10.0.0.1", "2001:db8::1", "aabbccdd-0000-4000-8000-000000000001"));
    const op = fc.record({ add: fc.boolean(), key });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200, size: "max" }), (ops) => {
        const sharded = new ShardedSet();
        const model = new Set<string>();
        for (const o of ops) {
          if (o.add) {
            expect(sharded.add(o.key)).toBe(sharded);
            model.add(o.key);
          } else {
            expect(sharded.delete(o.key)).toBe(model.delete(o.key));
          }
          expect(sharded.size).toBe(model.size);
          expect(sharded.has(o.key)).toBe(model.has(o.key));
        }
        expect([...sharded].sort()).toEqual([...model].sort());
        expect([...sharded.values()].sort()).toEqual([...model].sort());
      }),
      { numRuns: 300 },
    );
  });

  it("spreads session ids over its shards, so no shard grows alone to the whole set's size", () => {
    const s = new ShardedSet();
    for (let i = 0; i < 8192; i++) s.add(`aabbccdd-0000-4000-8000-${i.toString(16).padStart(12, "0")}`);
    const shards = (s as unknown as { shards: Set<string>[] }).shards;
    expect(shards.filter((x) => x.size > 0).length).toBe(shards.length);
    expect(Math.max(...shards.map((x) => x.size))).toBeLessThan((8192 / shards.length) * 4);
  });
});
