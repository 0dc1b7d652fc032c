/** CidSenders (src/sessions/cid-senders.ts): IDs to object or ref senders, against a Map. */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { CidSenders } from "../../src/sessions/cid-senders.ts";

interface Sender {
  name: number;
}

describe("CidSenders", () => {
  it("holds what a Map holds through sets, updates and deletes of object and ref senders", () => {
    const objects = Array.from({ length: 8 }, (_, name) => ({ name }));
    const cidOf = (n: number) => (n % 7 === 0 ? ["", "A0", "abc"][n % 3]! : (n * 2654435761 >>> 0).toString(16).padStart(8, "0").repeat(1 + (n % 3)));
    const sender = fc.oneof(fc.nat(objects.length - 1).map((k) => objects[k]! as Sender | number), fc.nat(0x7fffffff));
    const op = fc.record({ kind: fc.constantFrom("set", "update", "delete", "get"), n: fc.nat(3000), sender });
    fc.assert(
      fc.property(fc.array(op, { minLength: 300, maxLength: 2000 }), (ops) => {
        const senders = new CidSenders<Sender>();
        const model = new Map<string, Sender | number>();
        for (const o of ops) {
          const cid = cidOf(o.n);
          if (o.kind === "set") {
            senders.set(cid, o.sender);
            model.set(cid, o.sender);
          } else if (o.kind === "update") {
            // As repoint: a peer becomes its ref, a ref its peer.
            const to = (s: Sender | number) => (typeof s === "number" ? objects[s % objects.length]! : s.name * 2 + 1);
            senders.update(cid, to);
            if (model.has(cid)) model.set(cid, to(model.get(cid)!));
          } else if (o.kind === "delete") {
            expect(senders.delete(cid)).toBe(model.delete(cid));
          }
          expect(senders.get(cid)).toBe(model.get(cid));
          // No object kept for an ID that no longer names one (a deleted ID's slot is reused at once: checked every step).
          let objectsHeld = 0;
          for (const s of model.values()) if (typeof s === "object") objectsHeld++;
          expect(senders.objectCount).toBe(objectsHeld);
        }
        expect(senders.size).toBe(model.size);
        for (const [cid, s] of model) expect(senders.get(cid)).toBe(s);
      }),
      { numRuns: 40 },
    );
  });

  it("refuses a ref that is no non-negative 31-bit integer, and keeps what it held", () => {
    const senders = new CidSenders<Sender>();
    senders.set("0011", 5);
    for (const bad of [-1, 1.5, 2 ** 31, Number.NaN]) expect(() => senders.set("0011", bad)).toThrow(RangeError);
    expect(senders.get("0011")).toBe(5);
    // Nor is a slot taken for a new ID the bad ref was meant for.
    expect(() => senders.set("0022", -1)).toThrow(RangeError);
    expect(senders.get("0022")).toBeUndefined();
    expect(senders.size).toBe(1);
  });
});
