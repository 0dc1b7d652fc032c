/**
 * RowIndex (src/state/row-index.ts) against a Map of the same ids: ids of every form the store
 * packs (lowercase and uppercase UUIDs, short ASCII ids) and ids it keeps aside (other strings),
 * with transactions committed and rolled back, and enough ids that chunks fill and freed entries
 * are reused.
 */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { RowIndex } from "../../src/state/row-index.ts";

/** Ids from a small pool, so that operations meet the same ids often; each form of id is there. */
function idOf(n: number): string {
  const hex = (n * 2654435761 >>> 0).toString(16).padStart(8, "0");
  switch (n % 5) {
    case 0: return `${hex}-0000-4000-8000-${hex}0000`;
    case 1: return `${hex}-0000-4000-8000-${hex}0000`.toUpperCase();
    case 2: return `s${n}`;
    case 3: return `not-a-uuid-and-longer-than-sixteen-${n}`;
    default: return `${hex}-0000-4000-8000-${hex}000A`.toLowerCase().replace("a", "Z"); // no UUID: a 'Z'
  }
}

type Op =
  | { kind: "session" | "removal"; id: number; seq: number }
  | { kind: "forget"; id: number }
  | { kind: "begin" }
  | { kind: "commit" }
  | { kind: "rollback" };

describe("RowIndex against a Map", () => {
  it("answers as the Map does after any sequence of changes, commits and rollbacks", () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constantFrom("session" as const, "removal" as const), id: fc.nat(3000), seq: fc.integer({ min: 1, max: 2 ** 40 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant("forget" as const), id: fc.nat(3000) }) },
      { weight: 1, arbitrary: fc.constantFrom<Op>({ kind: "begin" }, { kind: "commit" }, { kind: "rollback" }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 600, size: "max" }), (ops) => {
        const index = new RowIndex();
        let model = new Map<string, number>();
        let saved: Map<string, number> | undefined;
        const sessions = (m: Map<string, number>) => [...m.values()].filter((v) => v > 0).length;
        for (const o of ops) {
          if (o.kind === "begin") {
            index.begin();
            saved = new Map(model);
          } else if (o.kind === "commit") {
            index.commit();
            saved = undefined;
          } else if (o.kind === "rollback") {
            index.rollback();
            if (saved) model = saved;
            saved = undefined;
          } else {
            const id = idOf(o.id);
            const was = model.get(id);
            const expected = was === undefined ? undefined : Math.abs(was);
            if (o.kind === "forget") {
              index.forget(id);
              model.delete(id);
            } else if (o.kind === "session") {
              expect(index.session(id, o.seq)).toBe(expected);
              model.set(id, o.seq);
            } else {
              expect(index.removal(id, o.seq)).toBe(expected);
              model.set(id, -o.seq);
            }
          }
          expect(index.size).toBe(model.size);
          expect(index.sessions).toBe(sessions(model));
        }
        for (let n = 0; n <= 3000; n += 7) {
          const id = idOf(n);
          const v = model.get(id);
          expect(index.holdsSession(id)).toBe((v ?? 0) > 0);
          if (v !== undefined) {
            expect(index.isNewestSession(id, Math.abs(v))).toBe(v > 0);
            expect(index.isNewestRemoval(id, Math.abs(v))).toBe(v < 0);
          }
        }
      }),
      { numRuns: 80 },
    );
  });

  it("keeps 50,000 ids across chunks, reuses freed entries, and finds every id it holds and none it does not", () => {
    const index = new RowIndex();
    const uuid = (n: number) => `${n.toString(16).padStart(8, "0")}-1111-4222-8333-${n.toString(16).padStart(12, "0")}`;
    for (let n = 0; n < 50_000; n++) index.session(uuid(n), n + 1);
    for (let n = 0; n < 50_000; n += 2) index.forget(uuid(n));
    for (let n = 50_000; n < 75_000; n++) index.removal(uuid(n), n + 1);
    expect(index.size).toBe(50_000);
    expect(index.sessions).toBe(25_000);
    for (let n = 0; n < 75_000; n++) {
      const held = n >= 50_000 || n % 2 === 1;
      expect(index.isNewestSession(uuid(n), n + 1)).toBe(held && n < 50_000);
      expect(index.isNewestRemoval(uuid(n), n + 1)).toBe(held && n >= 50_000);
    }
    // The same bytes in another case are another id, as on the wire.
    expect(index.holdsSession(uuid(0xabd))).toBe(true);
    expect(index.holdsSession(uuid(0xabd).toUpperCase())).toBe(false);
  });
});
