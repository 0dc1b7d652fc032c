/**
 * Route tables far past their first sizes, on both planes: every route stays found by id and by
 * source through the growth steps of the indexes (the native one grows a part at a time, its id
 * array a page at a time), replacing by source and deleting keep them exact, and a route set
 * after all that forwards.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind } from "../../src/dataplane/types.ts";
import type { Endpoint } from "../../src/net/address.ts";
import { planesUnderTest } from "../utils.ts";
import { planeOptions, startRecording, udpPeer, until, type TestPeer } from "./native-helpers.ts";

/** More than two pages of the native id array (65,536 ids each) and many growth steps of each index part. */
const ROUTES = 150_000;
/** Ids far from the dense ones: the native plane keeps them in its sparse index. */
const FAR = 2 ** 40;

const source = (i: number): Endpoint => ({ address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 40_000 + (i % 7) });
const target = (i: number): Endpoint => ({ address: `10.200.${(i >> 8) & 255}.${i & 255}`, port: 50_000 });

let open: Array<DataPlane | TestPeer> = [];
afterEach(async () => {
  for (const o of open) await o.close();
  open = [];
});

/** Of `ids`, those the plane does not know (with `present` false: those it knows). */
function wrongIds(plane: DataPlane, ids: Iterable<number>, present: boolean): number[] {
  const wrong: number[] = [];
  for (const id of ids) if ((plane.routeCounters(id) !== undefined) !== present) wrong.push(id);
  return wrong;
}

function* range(from: number, to: number, step = 1): Generator<number> {
  for (let i = from; i < to; i += step) yield i;
}

for (const kind of planesUnderTest() as DataPlaneKind[]) {
  describe(`${kind} plane: many routes`, () => {
    it("finds every route by id and by source through the growth of its indexes", async () => {
      const { plane } = createDataPlane(kind, planeOptions());
      open.push(plane);
      await startRecording(plane);
      plane.batchRouteChanges(() => {
        for (let i = 0; i < ROUTES; i++) plane.setRoute(i, source(i), target(i), 0);
      });
      expect(wrongIds(plane, range(0, ROUTES), true)).toEqual([]);

      // The same sources under new ids: each old route is found by its source and replaced.
      plane.batchRouteChanges(() => {
        for (let i = 0; i < 5000; i++) plane.setRoute(FAR + i, source(i * 29), target(i), 0);
      });
      expect(wrongIds(plane, range(0, 5000 * 29, 29), false)).toEqual([]);
      expect(wrongIds(plane, range(FAR, FAR + 5000), true)).toEqual([]);
      expect(wrongIds(plane, range(1, 5000 * 29, 29), true)).toEqual([]);

      // Every other dense id goes; the rest stay.
      plane.batchRouteChanges(() => {
        for (let i = 1; i < ROUTES; i += 2) plane.deleteRoute(i);
      });
      expect(wrongIds(plane, range(1, ROUTES, 2), false)).toEqual([]);
      expect(wrongIds(plane, range(2, ROUTES, 58), true)).toEqual([]);
      expect(plane.routeCounters(ROUTES)).toBeUndefined();
      expect(plane.routeCounters(-1)).toBeUndefined();
    });

    it("a route set after the tables grew forwards, and a datagram from a deleted route's source does not", async () => {
      const { plane } = createDataPlane(kind, planeOptions());
      open.push(plane);
      const control = await startRecording(plane);
      const a = await udpPeer("127.0.0.2");
      const b = await udpPeer("127.0.0.3");
      open.push(a, b);
      plane.batchRouteChanges(() => {
        for (let i = 0; i < ROUTES; i++) plane.setRoute(i, source(i), target(i), 0);
        plane.setRoute(ROUTES, { address: a.address, port: a.port }, { address: b.address, port: b.port }, 0);
        plane.setRoute(ROUTES + 1, { address: b.address, port: b.port }, { address: a.address, port: a.port }, 0);
      });
      a.send("through-the-big-table", plane.local.port, plane.local.address);
      const got = await b.waitFor(1);
      expect(new TextDecoder().decode(got[0]!.data)).toBe("through-the-big-table");
      await until(() => plane.counters().forwardedPackets >= 1);
      expect(plane.counters().forwardedPackets).toBe(1);
      expect([...new Set(plane.drainActivity())]).toEqual([ROUTES]);

      plane.deleteRoute(ROUTES + 1);
      b.send("no-route-any-more", plane.local.port, plane.local.address);
      await until(() => control.some((d) => d.address === b.address && d.port === b.port), 5000, "the datagram at the control plane");
      const up = control.find((d) => d.address === b.address && d.port === b.port)!;
      expect(up.routeId).toBe(-1);
      expect(a.received).toHaveLength(0);
    });

    it("reuses the slots of deleted routes: what is set after a mass deletion is exact, and a pair in reused slots forwards both ways", async () => {
      const { plane } = createDataPlane(kind, planeOptions());
      open.push(plane);
      await startRecording(plane);
      const a = await udpPeer("127.0.0.2");
      const b = await udpPeer("127.0.0.3");
      open.push(a, b);
      const PAIRS = 20_000;
      // Pairs of routes that are each other's way back (on the native plane, linked to each other).
      plane.batchRouteChanges(() => {
        for (let i = 0; i < 2 * PAIRS; i++) plane.setRoute(i, source(i), source(i ^ 1), 0);
      });
      // All of them go, the first of each pair in one batch, the rest in another.
      plane.batchRouteChanges(() => {
        for (let i = 0; i < 2 * PAIRS; i += 2) plane.deleteRoute(i);
      });
      plane.batchRouteChanges(() => {
        for (let i = 1; i < 2 * PAIRS; i += 2) plane.deleteRoute(i);
      });
      expect(wrongIds(plane, range(0, 2 * PAIRS), false)).toEqual([]);
      // New routes take the freed slots; the real pair is set last, in slots freed last.
      const fresh = 3 * PAIRS;
      plane.batchRouteChanges(() => {
        for (let i = 0; i < PAIRS; i++) plane.setRoute(fresh + i, source(fresh + i), target(i), 0);
        plane.setRoute(fresh + PAIRS, { address: a.address, port: a.port }, { address: b.address, port: b.port }, 0);
        plane.setRoute(fresh + PAIRS + 1, { address: b.address, port: b.port }, { address: a.address, port: a.port }, 0);
      });
      expect(wrongIds(plane, range(fresh, fresh + PAIRS + 2), true)).toEqual([]);
      expect(wrongIds(plane, range(0, 2 * PAIRS), false)).toEqual([]);

      a.send("a-to-b", plane.local.port, plane.local.address);
      b.send("b-to-a", plane.local.port, plane.local.address);
      const atB = await b.waitFor(1);
      const atA = await a.waitFor(1);
      expect(new TextDecoder().decode(atB[0]!.data)).toBe("a-to-b");
      expect(new TextDecoder().decode(atA[0]!.data)).toBe("b-to-a");
      await until(() => plane.counters().forwardedPackets >= 2);
      expect(plane.counters().forwardedPackets).toBe(2);
      expect([...new Set(plane.drainActivity())].sort()).toEqual([fresh + PAIRS, fresh + PAIRS + 1]);
      expect(a.received).toHaveLength(1);
      expect(b.received).toHaveLength(1);
    });
  });
}
