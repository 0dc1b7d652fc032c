/** IdSlots (src/sessions/id-slots.ts): ids of every form to slots and back, against a Map. */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { IdSlots } from "../../src/sessions/id-slots.ts";

const ids = [
  "3f2a1b4c-0000-4000-8000-00000000abcd", // canonical, lowercase: packs
  "3F2A1B4C-0000-4000-8000-00000000ABCD", // the same in uppercase: another id, packs
  "3f2a1b4c-0000-4000-8000-00000000ABCD", // mixed case: no UUID form, too long to pack
  "short-id", // packs as it is
  "",
  "é", // not ASCII: does not pack
  "an-id-of-exactly-16".slice(0, 16),
  "an-id-of-seventeen",
];
const idOf = (n: number) => (n < ids.length ? ids[n]! : `${(n * 2654435761 >>> 0).toString(16).padStart(8, "0")}-1111-4222-8333-${n.toString(16).padStart(12, "0")}`);

describe("IdSlots", () => {
  it("holds what a Map of ids holds, gives each id back from its slot, and lists exactly the slots in use", () => {
    const op = fc.record({ add: fc.boolean(), n: fc.nat(6000) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
        const slots = new IdSlots();
        const model = new Map<string, number>();
        for (const o of ops) {
          const id = idOf(o.n % 3 === 0 ? o.n % ids.length : o.n);
          if (o.add) {
            const slot = slots.slotOf(id);
            if (model.has(id)) expect(slot).toBe(model.get(id)!);
            else expect([...model.values()]).not.toContain(slot);
            model.set(id, slot);
          } else {
            const slot = slots.find(id);
            expect(slot).toBe(model.get(id) ?? -1);
            if (slot >= 0) slots.release(slot);
            model.delete(id);
          }
        }
        expect(slots.size).toBe(model.size);
        const listed = new Map<string, number>();
        for (let s = 0; s < slots.bound; s++) if (slots.inUse(s)) listed.set(slots.idOf(s), s);
        expect(listed).toEqual(model);
      }),
      { numRuns: 40 },
    );
  });
});
