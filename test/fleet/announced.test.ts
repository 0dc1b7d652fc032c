/** AnnouncedEntries (src/fleet/announced.ts): the coordinator's entries and their renewal order, against a model. */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { AnnouncedEntries } from "../../src/fleet/announced.ts";

const idOf = (n: number) => (n % 7 === 0 ? `not-a-uuid-longer-than-sixteen-${n}` : `${(n * 2654435761 >>> 0).toString(16).padStart(8, "0")}-aaaa-4bbb-8ccc-${n.toString(16).padStart(12, "0")}`);

type Op = { kind: "set"; n: number; peers: number; token: boolean } | { kind: "delete"; n: number } | { kind: "due"; by: number };

describe("AnnouncedEntries", () => {
  it("keeps the last write of each session, hands out due writes oldest first, and tells current writes from superseded ones", () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant("set" as const), n: fc.nat(40), peers: fc.integer({ min: 1, max: 2 }), token: fc.boolean() }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), n: fc.nat(40) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("due" as const), by: fc.nat(50) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400, size: "max" }), (ops) => {
        const entries = new AnnouncedEntries();
        // The model: each session's last write, and the queue of writes (id, the write's number).
        const last = new Map<string, { localPeers: number; identity: string | undefined; at: number; write: number }>();
        const queue: { id: string; write: number; at: number }[] = [];
        const tokens = new Map<number, number>(); // model write number -> token
        let writes = 0;
        let clock = 0;
        for (const o of ops) {
          clock++;
          if (o.kind === "set") {
            const id = idOf(o.n);
            const entry = { localPeers: o.peers, identity: o.token ? `peer-${o.n}` : undefined, at: clock };
            const write = ++writes;
            tokens.set(write, entries.set(id, entry));
            last.set(id, { ...entry, write });
            queue.push({ id, write, at: clock });
          } else if (o.kind === "delete") {
            const id = idOf(o.n);
            expect(entries.delete(id)).toBe(last.delete(id));
          } else {
            const dueBy = clock - o.by;
            // Take until nothing is due, as the coordinator's pass does.
            for (;;) {
              const front = queue[0];
              const isCurrent = front !== undefined && last.get(front.id)?.write === front.write;
              const expected = front === undefined || (isCurrent && front.at > dueBy) ? undefined : isCurrent ? front.id : null;
              expect(entries.takeDue(dueBy)).toBe(expected);
              if (expected === undefined) break;
              queue.shift();
            }
          }
          expect(entries.size).toBe(last.size);
        }
        for (const [id, e] of last) expect(entries.get(id)).toEqual({ localPeers: e.localPeers, identity: e.identity, at: e.at });
        for (const [write, token] of tokens) {
          const current = [...last.values()].some((e) => e.write === write);
          expect(entries.current(token)).toBe(current);
        }
        expect(new Set(entries.sessionIds())).toEqual(new Set(last.keys()));
      }),
      { numRuns: 100 },
    );
  });
});
