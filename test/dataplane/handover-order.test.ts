/**
 * Hand-over in order, through a real Relay on each plane: what the control plane sends around a
 * route change (held early datagrams at pairing, the ACK of a rebinding REG) and what the data
 * plane forwards by itself reach the peer in the order the sender sent them.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind, InboundDatagram } from "../../src/dataplane/types.ts";
import { eventually, longHeader, planesUnderTest, register, relayHarness, testPeers, text, type TestPeer } from "../utils.ts";
import { planeOptions } from "./native-helpers.ts";

const planes = planesUnderTest();
const ROUNDS = 8;
const EARLY = Array.from({ length: 8 }, (_, i) => `early:${i}`);

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const at = (p: TestPeer) => ({ address: p.host, port: p.port });

/**
 * Blocks the JS thread until `check` holds: the native plane's threads go on meanwhile (its
 * counters count what they queued for the control plane), but no control batch is taken.
 */
function spinUntil(check: () => boolean, timeoutMs = 5000): void {
  const deadline = Date.now() + timeoutMs;
  while (!check()) if (Date.now() > deadline) throw new Error("condition not met in time");
}

describe.each(planes)("%s plane: hand-over at setRoute", (kind: DataPlaneKind) => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  it("a route set during a control batch: the batch's own datagrams first, then the rest of the source's, in order", async () => {
    const p = (plane = createDataPlane(kind, planeOptions()).plane);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    const send = (i: number) => a.send(i === 5 ? longHeader([5], [5]) : `d${i}`, p.local.port);
    const control: InboundDatagram[] = [];
    let batches = 0;
    await p.start((batch) => {
      control.push(...batch);
      if (batches++ > 0) return;
      // As the control plane does when it pairs: route, then forward what it was handed itself.
      p.setRoute(1, at(a), at(b), 16);
      for (const d of batch) p.send(d.data, at(b));
      // The source goes on while the batch is handled; the native threads queue it behind the batch.
      for (let i = 1; i < 8; i++) send(i);
      if (kind === "native") spinUntil(() => p.counters().controlPackets >= 8);
    });
    send(0);
    await eventually(() => b.inbox.length >= 8);
    for (let i = 8; i < 10; i++) send(i);
    await eventually(() => b.inbox.length >= 10);
    expect(b.inbox.map((r) => (r.data[0]! & 0x80 ? "long" : text(r.data)))).toEqual(["d0", "d1", "d2", "d3", "d4", "long", "d6", "d7", "d8", "d9"]);
    // Only d0 went up unrouted; the long header the route forwarded went up as its copy.
    expect(control.map((d) => [d.data[0]! & 0x80 ? "long" : text(d.data), d.routeId, d.observed])).toEqual([
      ["d0", -1, false],
      ["long", 1, true],
    ]);
    expect(p.counters()).toMatchObject({ controlPackets: 2, forwardedPackets: 9 });
  });
});

describe.skipIf(!planes.includes("native"))("native plane: hand-over outside a control batch", () => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  it("forwards what its source sent before the route and the control plane has not taken yet, ahead of later datagrams", async () => {
    const p = (plane = createDataPlane("native", planeOptions()).plane);
    const control: InboundDatagram[] = [];
    await p.start((batch) => control.push(...batch));
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    for (let i = 0; i < 5; i++) a.send(i === 2 ? longHeader([2], [2]) : `d${i}`, p.local.port);
    a.send("REG:stays-with-the-control-plane", p.local.port);
    spinUntil(() => p.counters().controlPackets >= 6); // queued, not yet taken
    p.setRoute(1, at(a), at(b), 16);
    for (let i = 5; i < 8; i++) a.send(`d${i}`, p.local.port);
    await eventually(() => b.inbox.length >= 8 && control.length >= 2);
    expect(b.inbox.map((r) => (r.data[0]! & 0x80 ? "long" : text(r.data)))).toEqual(["d0", "d1", "long", "d3", "d4", "d5", "d6", "d7"]);
    // The REG was left for the control plane; the long header went up as the route's copy, in place.
    expect(control.map((d) => [d.data[0]! & 0x80 ? "long" : text(d.data), d.routeId, d.observed])).toEqual([
      ["long", 1, true],
      ["REG:stays-with-the-control-plane", -1, false],
    ]);
    expect(p.counters()).toMatchObject({ controlPackets: 2, forwardedPackets: 8 });
    expect(p.routeCounters(1)).toEqual({ observeLeft: 15 });
  });
  it("behind a long queue taken in small batches: the route's queued datagrams are handed over in order, every REG still goes up once, in order", async () => {
    const p = (plane = createDataPlane("native", planeOptions()).plane);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    const c = await open("127.0.0.4");
    const REGS = 3000;
    const control: InboundDatagram[] = [];
    let routed = false;
    await p.start((batch) => {
      control.push(...batch);
      // Well into the queue (batches take 256 at most): part of it taken, the rest still queued.
      if (!routed && control.length >= 1200) {
        routed = true;
        p.setRoute(1, at(a), at(b), 16);
      }
    });
    // Queued while the JS thread is held: REGs from c, then a's datagrams behind them.
    for (let i = 0; i < REGS; i += 500) {
      for (let k = i; k < i + 500; k++) c.send(`REG:queued-${k}`, p.local.port);
      spinUntil(() => p.counters().controlPackets >= i + 500);
    }
    for (let i = 0; i < 4; i++) a.send(`d${i}`, p.local.port);
    spinUntil(() => p.counters().controlPackets >= REGS + 4);
    await eventually(() => control.length >= REGS && b.inbox.length >= 4);
    for (let i = 4; i < 6; i++) a.send(`d${i}`, p.local.port);
    await eventually(() => b.inbox.length >= 6);
    expect(b.inbox.map((r) => text(r.data))).toEqual(["d0", "d1", "d2", "d3", "d4", "d5"]);
    expect(control.map((d) => text(d.data))).toEqual(Array.from({ length: REGS }, (_, k) => `REG:queued-${k}`));
    expect(p.counters()).toMatchObject({ controlPackets: REGS, forwardedPackets: 6 });
  });
});

describe.each(planes)("%s plane: hand-over order", (kind: DataPlaneKind) => {
  const h = relayHarness(kind);

  it("at pairing: the held early datagrams first, then everything the sender kept sending, in order", async () => {
    const relay = await h.start();
    for (let round = 0; round < ROUNDS; round++) {
      const session = crypto.randomUUID();
      const a = await h.open("127.0.0.2");
      const b = await h.open("127.0.0.3");
      expect(await register(a, relay.port, session)).toBe("ACK\n");
      for (const early of EARLY) a.send(early, relay.port);
      await eventually(() => relay.relay.table.session(session)?.held.length === EARLY.length);
      const forwardedBefore = relay.relay.plane.counters().forwardedPackets;

      // A sends as fast as it can (letting the relay run every few datagrams) while B registers,
      // so some of A's datagrams are on their way through the control plane when the routes change.
      let sent = 0;
      let stop = false;
      const flood = (async () => {
        while (!stop) {
          a.send(`n:${sent++}`, relay.port);
          if (sent % 4 === 0) await nextTurn();
        }
      })();
      while (sent < 50) await nextTurn();
      expect(await register(b, relay.port, session)).toBe("ACK\n");
      const until = sent + 300;
      while (sent < until) await nextTurn();
      stop = true;
      await flood;
      a.send("end", relay.port);

      const got = (await b.takeUntil("end")).map((r) => text(r.data));
      expect(got.slice(0, EARLY.length)).toEqual(EARLY);
      const numbers = got.slice(EARLY.length).map((s) => Number(s.slice(2)));
      // Loopback may drop under the flood (and the held queue is full before B comes), but never reorders or repeats.
      expect(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!)).toBe(true);
      expect(numbers.at(-1)).toBe(sent - 1);
      // The data plane forwarded part of it by itself: both paths met at the hand-over.
      expect(relay.relay.plane.counters().forwardedPackets).toBeGreaterThan(forwardedBefore);
    }
  });

  it("on a REG rebind: all the partner sends once the new address has its ACK goes there, none to the old one", async () => {
    const relay = await h.start();
    for (let round = 0; round < ROUNDS; round++) {
      const { a, b, session } = await h.pair(["127.0.0.2", "127.0.0.3"]);
      const label = `r${round}`;
      const expected = Array.from({ length: 90 }, (_, i) => `${label}:${i}`);
      const moved: string[] = [];
      // B's new socket: A starts sending the moment the ACK is read, from the same callback.
      const socket = await Bun.udpSocket({
        hostname: "127.0.0.3",
        socket: {
          data(_s, data) {
            const line = text(new Uint8Array(data));
            if (line === "ACK\n" && moved.length === 0) for (const d of expected) a.send(d, relay.port);
            moved.push(line);
          },
        },
      });
      try {
        socket.send(`REG:${session}\n`, relay.port, "127.0.0.1");
        await eventually(() => moved.length >= 1 + expected.length);
        expect(moved).toEqual(["ACK\n", ...expected]);
        // Every one of A's datagrams reached the new socket, and each is forwarded once: none went to the old one.
        expect(b.inbox).toEqual([]);
      } finally {
        socket.close();
      }
    }
  });
});
