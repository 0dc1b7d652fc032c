import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { ShardedMap } from "../../src/sessions/sharded-map.ts";

describe("ShardedMap", () => {
  it("behaves as a Map for any sequence of sets and deletes (sizes, lookups, values)", () => {
    const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("", "a", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "probe-x"));
    const op = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), key, value: fc.integer() }),
      fc.record({ kind: fc.constant("delete" as const), key }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200, size: "max" }), (ops) => {
        const sharded = new ShardedMap<number>();
        const model = new Map<string, number>();
        for (const o of ops) {
          if (o.kind === "set") {
            sharded.set(o.key, o.value);
            model.set(o.key, o.value);
          } else {
            expect(sharded.delete(o.key)).toBe(model.delete(o.key));
          }
          expect(sharded.size).toBe(model.size);
          expect(sharded.get(o.key)).toBe(model.get(o.key));
          expect(sharded.has(o.key)).toBe(model.has(o.key));
        }
        expect([...sharded.values()].sort((a, b) => a - b)).toEqual([...model.values()].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  it("spreads session ids and addresses over its shards", () => {
    // Reads the spread through the only window there is: each shard is a Map; a key's shard is
    // where a same-shard key would collide. Here: distinct keys, so the spread shows in how many
    // distinct shard Maps hold entries.
    const m = new ShardedMap<number>();
    for (let i = 0; i < 4096; i++) m.set(`${i.toString(16).padStart(8, "0")}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`, i);
    for (let i = 0; i < 4096; i++) m.set(`127.${(i >> 8) & 255}.${i & 255}.${i % 7}`, i);
    const shards = (m as unknown as { shards: Map<string, number>[] }).shards;
    const used = shards.filter((s) => s.size > 0).length;
    expect(used).toBe(shards.length);
    expect(Math.max(...shards.map((s) => s.size))).toBeLessThan((8192 / shards.length) * 4);
  });
});
