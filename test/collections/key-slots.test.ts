/** KeySlots (src/collections/key-slots.ts): keys of every form to slots and back, against a Map, with each codec. */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { KeySlots } from "../../src/collections/key-slots.ts";
import type { KeyCodec } from "../../src/collections/packed-key.ts";
import { SESSION_IDS } from "../../src/sessions/compact-id.ts";
import { CID_KEYS } from "../../src/sessions/cid-key.ts";

const sessionIds = [
  "3f2a1b4c-0000-4000-8000-00000000abcd", // canonical, lowercase: packs
  "3F2A1B4C-0000-4000-8000-00000000ABCD", // the same in uppercase: another id, packs
  "3f2a1b4c-0000-4000-8000-00000000ABCD", // mixed case: no UUID form, too long to pack
  "short-id", // packs as it is
  "",
  "é", // not ASCII: does not pack
  "an-id-of-exactly-16".slice(0, 16),
  "an-id-of-seventeen",
];
const cids = [
  "", // a zero-length ID: packs
  "00", // one zero byte: another ID than the empty one
  "0000",
  "0a1b2c3d4e5f6071", // 8 bytes
  "0A1B2C3D4E5F6071", // uppercase: does not pack, another ID
  "abc", // odd length: does not pack
  "00112233445566778899aabbccddeeff00112233", // 20 bytes, the longest QUIC allows
  "00112233445566778899aabbccddeeff0011223344", // 21 bytes: does not pack
];
const kinds: [string, KeyCodec, string[], (n: number) => string][] = [
  ["session ids", SESSION_IDS, sessionIds, (n) => `${(n * 2654435761 >>> 0).toString(16).padStart(8, "0")}-1111-4222-8333-${n.toString(16).padStart(12, "0")}`],
  ["connection IDs", CID_KEYS, cids, (n) => `${(n * 2654435761 >>> 0).toString(16).padStart(8, "0")}${n.toString(16).padStart(2 * (n % 13), "0")}`],
];

describe("KeySlots", () => {
  for (const [name, codec, special, generated] of kinds) {
    it(`holds what a Map of ${name} holds, gives each key back from its slot, and lists exactly the slots in use`, () => {
      const keyOf = (n: number) => (n % 3 === 0 ? special[n % special.length]! : generated(n));
      const op = fc.record({ add: fc.boolean(), n: fc.nat(6000) });
      fc.assert(
        fc.property(fc.array(op, { minLength: 300, maxLength: 3000 }), (ops) => {
          const slots = new KeySlots(codec);
          const model = new Map<string, number>();
          for (const o of ops) {
            const key = keyOf(o.n);
            if (o.add) {
              const slot = slots.slotOf(key);
              if (model.has(key)) expect(slot).toBe(model.get(key)!);
              else expect([...model.values()]).not.toContain(slot);
              model.set(key, slot);
            } else {
              const slot = slots.find(key);
              expect(slot).toBe(model.get(key) ?? -1);
              if (slot >= 0) slots.release(slot);
              model.delete(key);
            }
          }
          expect(slots.size).toBe(model.size);
          const listed = new Map<string, number>();
          for (let s = 0; s < slots.bound; s++) if (slots.inUse(s)) listed.set(slots.keyOf(s), s);
          expect(listed).toEqual(model);
        }),
        { numRuns: 40 },
      );
    });
  }

  it("tells apart the special keys of each codec, every one of them held at once", () => {
    for (const [, codec, special] of kinds) {
      const slots = new KeySlots(codec);
      const given = special.map((k) => slots.slotOf(k));
      expect(new Set(given).size).toBe(special.length);
      special.forEach((k, i) => {
        expect(slots.find(k)).toBe(given[i]!);
        expect(slots.keyOf(given[i]!)).toBe(k);
      });
    }
  });
});
