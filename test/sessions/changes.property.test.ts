import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import type { SessionSnapshot } from "../../src/sessions/table.ts";
import { setup } from "./fixtures.ts";

/**
 * What a state file keeps, written only from takeChanged() and snapshot(), must equal the table
 * after any sequence of REGs (new sessions, pairs, keepalives, rebinds, moves), data, rebinds on
 * silence, relay lines and expiry, whenever it is brought up to date. The paired count kept as
 * sessions change must equal a count of the sessions. Times are compared as absolute instants
 * (the fake clock's), the way a save stores them.
 */

const ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
const PORTS = [1, 2];
const SESSIONS = ["s1", "s2", "s3", "s4"];

type Step =
  | { kind: "reg"; session: string; from: string }
  | { kind: "data"; from: string }
  | { kind: "relay-line"; from: string }
  | { kind: "advance"; ms: number }
  | { kind: "expire"; budget: number }
  | { kind: "save"; fail: boolean };

const fromArb = fc.tuple(fc.constantFrom(...ADDRESSES), fc.constantFrom(...PORTS)).map(([a, p]) => `${a}:${p}`);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("reg" as const), session: fc.constantFrom(...SESSIONS), from: fromArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("data" as const), from: fromArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("relay-line" as const), from: fromArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(100, 2_000, 40_000, 400_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const), budget: fc.constantFrom(1, 2, 1000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("save" as const), fail: fc.boolean() }) },
);

/** A snapshot with its idle times turned into instants. */
function absolute(s: SessionSnapshot, now: number) {
  return { id: s.id, activeAt: now - s.idleMs, peers: s.peers.map((p) => ({ ...p, idleMs: undefined, seenAt: now - p.idleMs })) };
}

describe("session table: changes handed to a save", () => {
  it("a store kept from takeChanged() and snapshot() equals the table; the paired count equals a count", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60, size: "max" }), (steps) => {
        const { table, clock, reg, data } = setup({ timeoutMs: 300_000, rebindQuietMs: 1000 });
        table.trackChanges();
        const stored = new Map<string, ReturnType<typeof absolute>>();
        const save = (fail: boolean) => {
          const ids = table.takeChanged();
          // A save that fails writes nothing and hands its ids back.
          if (fail) return table.markChanged(ids);
          for (const id of ids) {
            const snap = table.snapshot(id);
            if (snap) stored.set(id, absolute(snap, clock.now()));
            else stored.delete(id);
          }
        };
        for (const step of steps) {
          if (step.kind === "reg") reg(step.session, step.from);
          else if (step.kind === "data") data(step.from, "payload");
          else if (step.kind === "relay-line") table.relayLine({ address: step.from.split(":")[0]!, port: Number(step.from.split(":")[1]) });
          else if (step.kind === "advance") clock.advance(step.ms);
          else if (step.kind === "expire") expect(table.expire(step.budget)).toBeLessThanOrEqual(step.budget);
          else save(step.fail);
          const sessions = table.exportSessions();
          expect(table.pairedCount).toBe(sessions.filter((s) => s.peers.length === 2).length);
        }
        save(false);
        const truth = new Map(table.exportSessions().map((s) => [s.id, absolute(s, clock.now())]));
        expect(stored).toEqual(truth);
        expect(table.takeChanged().size).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("session table: bounded expiry", () => {
  it("removes at most the budget per pass, oldest first, and the rest on later passes", () => {
    const { table, clock, reg } = setup({ timeoutMs: 1000 });
    for (let i = 0; i < 10; i++) {
      reg(`s${i}`, `10.0.1.${i}:1`);
      clock.advance(1);
    }
    clock.advance(1000);
    reg("s9", "10.0.1.9:1"); // a keepalive: s9 stays
    expect(table.expire(4)).toBe(4);
    expect(table.session("s0")).toBeUndefined();
    expect(table.session("s3")).toBeUndefined();
    expect(table.session("s4")).toBeDefined();
    expect(table.expire(4)).toBe(4);
    expect(table.expire(4)).toBe(1);
    expect(table.expire(4)).toBe(0);
    expect([...table.sessionIds()]).toEqual(["s9"]);
    expect(table.stats.sessionsExpired).toBe(9);
  });

  it("records nothing until asked to", () => {
    const { table, reg } = setup();
    reg("s1", "10.0.0.1:1");
    table.trackChanges();
    reg("s2", "10.0.0.2:1");
    expect([...table.takeChanged()]).toEqual(["s2"]);
  });

  it("does not hand restored sessions out as changed, but does once they change", () => {
    const { table, clock } = setup();
    table.trackChanges();
    const restored = table.restoreSessions([
      { id: "r1", idleMs: 10, peers: [{ address: "10.0.0.1", port: 1, idleMs: 10 }, { address: "10.0.0.2", port: 1, idleMs: 10 }] },
    ]);
    expect(restored).toBe(1);
    expect(table.pairedCount).toBe(1);
    expect(table.takeChanged().size).toBe(0);
    clock.advance(5);
    table.datagram({ address: "10.0.0.1", port: 1 }, new Uint8Array([1]));
    expect([...table.takeChanged()]).toEqual(["r1"]);
  });
});
