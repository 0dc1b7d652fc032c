/**
 * setRoute's `unansweredLimit`: a route forwards at most that many bytes to its destination since
 * the destination last sent anything (seen through the paired route back). Beyond it datagrams are
 * dropped and counted in `unansweredDrops`; 0 means no limit; a replaced route starts at 0.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind } from "../../src/dataplane/types.ts";
import { bytes, eventually, planesUnderTest, testPeers, text, type TestPeer } from "../utils.ts";
import { groPlane, planeOptions, startRecording } from "./native-helpers.ts";

const planes = planesUnderTest();
const at = (p: TestPeer) => ({ address: p.host, port: p.port });
const LIMIT = 1000;

describe.each(planes)("%s plane: unanswered limit", (kind: DataPlaneKind) => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  /** x -> s limited to `limit` bytes unanswered, s -> x unlimited. */
  async function pair(limit = LIMIT) {
    const p = createDataPlane(kind, planeOptions()).plane;
    plane = p;
    const control = await startRecording(p);
    const x = await open("127.0.0.2");
    const s = await open("127.0.0.3");
    p.setRoute(1, at(x), at(s), 0, limit);
    p.setRoute(2, at(s), at(x), 0);
    /** Sends `count` datagrams of 300 bytes from x, waits until s holds `delivered` and the drops reach `drops`. */
    const burst = async (count: number, delivered: number, drops: number) => {
      for (let i = 0; i < count; i++) x.send(new Uint8Array(300).fill(i + 1), p.local.port);
      await eventually(() => s.inbox.length >= delivered && p.counters().unansweredDrops >= drops);
      expect(s.inbox.length).toBe(delivered);
      expect(p.counters().unansweredDrops).toBe(drops);
    };
    return { plane: p, control, x, s, burst };
  }

  it("drops beyond the limit, and resumes after a REG, a forwarded datagram or a relay line from the destination", async () => {
    const { plane, control, x, s, burst } = await pair();
    await burst(4, 3, 1); // 900 bytes pass, the 4th would make 1200
    await burst(1, 3, 2);
    // Counters are published after the sends: waited for, then exact (the dropped ones never count).
    await eventually(() => plane.counters().forwardedPackets >= 3);
    expect(plane.counters()).toMatchObject({ forwardedPackets: 3, forwardedBytes: 900 });

    s.send("REG:again\n", plane.local.port); // handed up (route 2), and an answer
    await eventually(() => control.length >= 1);
    expect(control[0]).toMatchObject({ routeId: 2, observed: false });
    await burst(4, 6, 3);

    s.send("pong", plane.local.port); // forwarded to x, and an answer
    await eventually(() => x.inbox.length >= 1);
    await burst(4, 9, 4);

    s.send("ACK\n", plane.local.port); // handed up as a possible relay line, and an answer
    await eventually(() => control.length >= 2);
    await burst(4, 12, 5);
    expect(control.map((d) => text(d.data))).toEqual(["REG:again\n", "ACK\n"]);
    // Route 1 carried 12 datagrams of 300 bytes, route 2 the "pong".
    await eventually(() => plane.counters().forwardedPackets >= 13);
    expect(plane.counters()).toMatchObject({ forwardedPackets: 13, forwardedBytes: 3600 + "pong".length });
  });

  it("never drops with limit 0", async () => {
    const { plane, x, s } = await pair(0);
    for (let i = 0; i < 20; i++) x.send(new Uint8Array(1200).fill(i), plane.local.port);
    for (let i = 0; i < 20; i++) s.send(new Uint8Array(1200).fill(i), plane.local.port);
    await eventually(() => s.inbox.length >= 20 && x.inbox.length >= 20);
    expect(plane.counters().unansweredDrops).toBe(0);
    expect(plane.counters().forwardedPackets).toBe(40);
  });

  it("starts a replaced route at 0, and keeps the pairing whichever of the two routes is replaced", async () => {
    const { plane, x, s, burst } = await pair();
    await burst(3, 3, 0);
    plane.deleteRoute(1);
    plane.setRoute(9, { address: "127.0.0.9", port: 9 }, { address: "127.0.0.9", port: 10 }, 0); // takes the freed slot
    plane.setRoute(1, at(x), at(s), 0, LIMIT); // the same route again, now after its route back
    await burst(3, 6, 0);
    await burst(1, 6, 1);
    s.send("pong", plane.local.port);
    await eventually(() => x.inbox.length >= 1);
    await burst(3, 9, 1);
    await burst(1, 9, 2);
    plane.setRoute(7, at(s), at(x), 0); // replaces route 2 (same source) under a new id
    s.send("pong", plane.local.port);
    await eventually(() => x.inbox.length >= 2);
    await burst(3, 12, 2);
    await burst(1, 12, 3);
    plane.deleteRoute(7); // no route back: datagrams from s go up unrouted and answer nothing
    s.send("pong", plane.local.port);
    await eventually(() => plane.counters().controlPackets >= 1);
    await burst(1, 12, 4);
  });
});

describe.skipIf(!planes.includes("native"))("native plane: unanswered limit with GRO", () => {
  const open = testPeers();
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("charges a coalesced buffer whole: it leaves whole or is dropped whole", async () => {
    const { plane, sender, from: x } = await groPlane(cleanup);
    const s = await open("127.0.0.3");
    plane.setRoute(1, x, at(s), 0, 3000);
    plane.setRoute(2, at(s), x, 0);
    const segments = (n: number, fill: number) => new Uint8Array(1000 * n).fill(fill);

    sender.send(segments(2, 1), 1000, "127.0.0.1", plane.local.port); // 2000: fits
    await eventually(() => s.inbox.length >= 2);
    sender.send(segments(2, 2), 1000, "127.0.0.1", plane.local.port); // 4000 in all: dropped whole
    sender.send(segments(1, 3), 1000, "127.0.0.1", plane.local.port); // 3000 in all: fits
    await eventually(() => s.inbox.length >= 3 && plane.counters().unansweredDrops >= 2);
    expect(s.inbox.map((r) => r.data[0])).toEqual([1, 1, 3]);
    expect(plane.counters().unansweredDrops).toBe(2);
    if (!plane.nativeInfo().gro) return; // the kernel refused UDP_GRO: the buffers arrived split
    expect(plane.nativeCounters().groBuffers).toBe(2);

    s.send(bytes("REG:x\n"), plane.local.port); // an answer
    await eventually(() => plane.counters().controlPackets >= 1);
    sender.send(segments(3, 4), 1000, "127.0.0.1", plane.local.port); // exactly the limit
    await eventually(() => s.inbox.length >= 6);
    expect(s.inbox.slice(3).map((r) => r.data[0])).toEqual([4, 4, 4]);
    expect(plane.counters()).toMatchObject({ unansweredDrops: 2, forwardedPackets: 6 });
  });
});
