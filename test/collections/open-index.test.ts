import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { OpenIndex } from "../../src/collections/open-index.ts";

/** Refs whose key is ref % keys: several refs per key, and hashes chosen to collide and cluster. */
function indexOf(keys: number, hashOfKey: (key: number) => number) {
  const index = new OpenIndex((ref) => hashOfKey(ref % keys));
  return index;
}

describe("OpenIndex", () => {
  it("behaves as a multimap of refs for any sequence of adds and removes, under colliding hashes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: fc.boolean(), ref: fc.nat(400) }), { maxLength: 600, size: "max" }),
        fc.constantFrom((k: number) => k * 0x9e3779b1, (k: number) => (k % 3) * 0x10000001, () => 0x7fffffff),
        (ops, hashOfKey) => {
          const keys = 37;
          const index = indexOf(keys, (k) => hashOfKey(k) >>> 0);
          const model = new Set<number>();
          for (const { add, ref } of ops) {
            const hash = hashOfKey(ref % keys) >>> 0;
            if (add && !model.has(ref)) {
              index.add(ref, hash);
              model.add(ref);
            } else if (!add) {
              expect(index.remove(ref, hash)).toBe(model.delete(ref));
            }
            expect(index.size).toBe(model.size);
          }
          for (let ref = 0; ref <= 400; ref++) {
            const hash = hashOfKey(ref % keys) >>> 0;
            expect(index.find(hash, (r) => r === ref)).toBe(model.has(ref) ? ref : -1);
            expect(index.count(hash, (r) => r % keys === ref % keys)).toBe([...model].filter((r) => r % keys === ref % keys).length);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("grows past many thousands of refs and finds each one", () => {
    const index = new OpenIndex((ref) => Math.imul(ref, 0x85ebca6b) >>> 0);
    for (let ref = 0; ref < 50_000; ref++) index.add(ref, Math.imul(ref, 0x85ebca6b) >>> 0);
    for (let ref = 0; ref < 50_000; ref += 7) expect(index.find(Math.imul(ref, 0x85ebca6b) >>> 0, (r) => r === ref)).toBe(ref);
    for (let ref = 0; ref < 50_000; ref += 2) index.remove(ref, Math.imul(ref, 0x85ebca6b) >>> 0);
    expect(index.size).toBe(25_000);
    expect(index.find(Math.imul(4, 0x85ebca6b) >>> 0, (r) => r === 4)).toBe(-1);
    expect(index.find(Math.imul(5, 0x85ebca6b) >>> 0, (r) => r === 5)).toBe(5);
  });

  it("doubles its shards one at a time as it grows, not all in the same moment", () => {
    // Evenly spread hashes: every shard fills at the same pace, the case where shards sharing one
    // limit would all rehash within a few dozen adds.
    const hashOf = (ref: number) => Math.imul(ref, 0x9e3779b1) >>> 0;
    const index = new OpenIndex(hashOf);
    const growths: number[] = [];
    let slots = index.slotCount;
    for (let ref = 0; ref < 1 << 20; ref++) {
      index.add(ref, hashOf(ref));
      if (index.slotCount !== slots) {
        growths.push(ref);
        slots = index.slotCount;
      }
    }
    // From 512k entries on (shards of 2048 and more), no 500 adds in a row double more than two shards.
    const late = growths.filter((at) => at >= 1 << 19);
    expect(late.length).toBeGreaterThan(200);
    for (let i = 0; i + 2 < late.length; i++) expect(late[i + 2]! - late[i]!).toBeGreaterThanOrEqual(500);
    // And it stays at most 70 % full: slots for every entry, and the last doubling was needed.
    expect(index.size / index.slotCount).toBeLessThanOrEqual(0.7);
    for (let ref = 0; ref < 1 << 20; ref += 4099) expect(index.find(hashOf(ref), (r) => r === ref)).toBe(ref);
  });
});
