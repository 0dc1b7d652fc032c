import { describe, expect, it } from "bun:test";
import { FakeClock } from "../sessions/fixtures.ts";
import { eventually, planesUnderTest, register, relayHarness } from "../utils.ts";

/**
 * Sessions packed into the compact store (SessionTable.compact, run by the relay's sweep and
 * after each control batch) through the real relay on each data plane: routes keep forwarding,
 * the rules still hold for compact sessions, and expiry removes them and their routes. The
 * relay's clock is a FakeClock: packing and expiry happen when the test says.
 */
describe.each(planesUnderTest())("compact sessions on the %s plane", (plane) => {
  const h = relayHarness(plane);
  const open = h.open;

  async function compactRelay() {
    const clock = new FakeClock();
    const relay = await h.start({ clock, limits: { compactAfterMs: 1000 } });
    const pack = () => {
      clock.advance(1000);
      relay.relay.sweep();
    };
    return { clock, relay, pack, table: relay.relay.table };
  }

  it("packs idle paired sessions; their routes forward both ways and traffic keeps them compact", async () => {
    const { relay, pack, table } = await compactRelay();
    const pairs = [await h.pair(["127.0.0.2", "127.0.0.3"]), await h.pair(["127.0.0.4", "127.0.0.5"])];
    pack();
    expect(table.compactSessionCount).toBe(2);
    expect(table.sessionCount).toBe(2);
    for (const [i, { a, b }] of pairs.entries()) {
      a.send(`a${i}`, relay.port);
      expect(await b.nextText()).toBe(`a${i}`);
      b.send(`b${i}`, relay.port);
      expect(await a.nextText()).toBe(`b${i}`);
    }
    // The routes' activity reaches the table as a touch, which a compact session takes as it is.
    relay.relay.sweep();
    expect(table.compactSessionCount).toBe(2);
    expect(table.exportSessions().map((s) => s.idleMs)).toEqual([0, 0]);
  });

  it("answers a keepalive REG of a compact peer, refuses a third host, and the pair goes on", async () => {
    const { relay, pack, table } = await compactRelay();
    const { a, b, session } = await h.pair();
    pack();
    expect(table.compactSessionCount).toBe(1);
    expect(await register(a, relay.port, session)).toBe("ACK\n");
    // An attacker on another host who knows the id: refused, the session stays as it was.
    const c = await open("127.0.0.9");
    expect(await register(c, relay.port, session)).toBe("ERR full\n");
    c.send("ACK\n", relay.port);
    await eventually(() => table.stats.drops["relay-line"] === 1);
    pack();
    expect(table.compactSessionCount).toBe(1);
    a.send("after", relay.port);
    expect(await b.nextText()).toBe("after");
    b.send("back", relay.port);
    expect(await a.nextText()).toBe("back");
    expect(c.inbox).toEqual([]);
  });

  it("follows a compact peer to a new port on its REG, and only there", async () => {
    const { relay, pack, table } = await compactRelay();
    const { a, b, session } = await h.pair();
    pack();
    const a2 = await open("127.0.0.2");
    expect(await register(a2, relay.port, session)).toBe("ACK\n");
    b.send("to the new port", relay.port);
    expect(await a2.nextText()).toBe("to the new port");
    a.send("from the old port", relay.port);
    await eventually(() => table.stats.drops["unknown-source"] === 1);
    expect(b.inbox).toEqual([]);
    pack();
    expect(table.compactSessionCount).toBe(1);
  });

  it("expires compact sessions on time and takes their routes down", async () => {
    const { clock, relay, pack, table } = await compactRelay();
    const { a, b } = await h.pair();
    pack();
    expect(table.compactSessionCount).toBe(1);
    clock.advance(table.limits.timeoutMs);
    relay.relay.sweep();
    expect(table.sessionCount).toBe(0);
    expect(table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
    expect(table.stats.sessionsExpired).toBe(1);
    // No route left: A's datagram reaches the table as one from nobody.
    a.send("too late", relay.port);
    await eventually(() => table.stats.drops["unknown-source"] === 1);
    expect(b.inbox).toEqual([]);
  });

  it("expires a crowd in passes bounded by work time, the rest in later turns, and takes every route down", async () => {
    // Each read of the work clock is 5 ms on: a pass ends after its first step (8 sessions).
    let work = 0;
    const clock = new FakeClock();
    const relay = await h.start({ clock, workClock: () => (work += 5) });
    const table = relay.relay.table;
    const pairs = [];
    for (let i = 0; i < 40; i++) pairs.push(await h.pair([`127.0.1.${i + 1}`, `127.0.2.${i + 1}`]));
    expect(table.sessionCount).toBe(40);
    clock.advance(table.limits.timeoutMs);
    relay.relay.sweep();
    expect(table.sessionCount).toBe(32);
    await eventually(() => table.sessionCount === 0);
    expect(table.stats.sessionsExpired).toBe(40);
    expect(table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
    // Routes went with their sessions: the last pair's datagram reaches the table as one from nobody.
    const { a, b } = pairs[39]!;
    a.send("too late", relay.port);
    await eventually(() => table.stats.drops["unknown-source"] === 1);
    expect(b.inbox).toEqual([]);
  });
});
