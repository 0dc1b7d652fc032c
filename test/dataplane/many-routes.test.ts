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
  });
}
