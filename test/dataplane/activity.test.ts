/**
 * drainActivity() reports the routes that forwarded since the previous call, each once, at a cost
 * of what was active (the native plane logs routes as they turn active instead of scanning them
 * all); batchRouteChanges() applies many route changes as one.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind } from "../../src/dataplane/types.ts";
import { eventually, planesUnderTest, testPeers, type TestPeer } from "../utils.ts";
import { planeOptions, startRecording } from "./native-helpers.ts";

const at = (p: TestPeer) => ({ address: p.host, port: p.port });
const unique = (ids: number[]) => [...new Set(ids)].sort((a, b) => a - b);

describe.each(planesUnderTest())("%s plane: route activity", (kind: DataPlaneKind) => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  async function started() {
    const p = createDataPlane(kind, planeOptions()).plane;
    plane = p;
    const control = await startRecording(p);
    return { p, control };
  }

  it("reports a route that forwarded once per drain, and again only after it forwards again", async () => {
    const { p } = await started();
    const [a, b, c, d] = [await open("127.0.0.2"), await open("127.0.0.3"), await open("127.0.0.4"), await open("127.0.0.5")];
    p.setRoute(1, at(a), at(b), 0);
    p.setRoute(2, at(b), at(a), 0);
    p.setRoute(3, at(c), at(d), 0); // never forwards
    for (let i = 0; i < 5; i++) a.send("x", p.local.port);
    await eventually(() => b.inbox.length >= 5);
    expect(unique(p.drainActivity())).toEqual([1]);
    expect(p.drainActivity()).toEqual([]);
    b.send("y", p.local.port);
    await eventually(() => a.inbox.length >= 1);
    expect(unique(p.drainActivity())).toEqual([2]);
  });

  it("still reports a route after more drains than its activity epoch counts (16 bits on the native plane)", async () => {
    const { p } = await started();
    const [a, b] = [await open("127.0.0.2"), await open("127.0.0.3")];
    p.setRoute(1, at(a), at(b), 0);
    a.send("before", p.local.port);
    await eventually(() => b.inbox.length >= 1);
    expect(unique(p.drainActivity())).toEqual([1]);
    // Past the wrap of the epoch count (and its skipped 0), not on a multiple of its period.
    for (let i = 0; i < 70_000; i++) expect(p.drainActivity().length).toBe(0);
    a.send("after", p.local.port);
    await eventually(() => b.inbox.length >= 2);
    expect(unique(p.drainActivity())).toEqual([1]);
    expect(p.drainActivity()).toEqual([]);
  });

  it("leaves out a route deleted since it forwarded, and one set again under its id until that one forwards", async () => {
    const { p } = await started();
    const [a, b, c] = [await open("127.0.0.2"), await open("127.0.0.3"), await open("127.0.0.4")];
    p.setRoute(1, at(a), at(b), 0);
    a.send("x", p.local.port);
    await eventually(() => b.inbox.length >= 1);
    p.deleteRoute(1);
    expect(p.drainActivity()).toEqual([]);

    p.setRoute(1, at(a), at(b), 0);
    a.send("x", p.local.port);
    await eventually(() => b.inbox.length >= 2);
    p.deleteRoute(1);
    p.setRoute(1, at(c), at(b), 0); // the id's new route has not forwarded
    expect(p.drainActivity()).toEqual([]);
  });

  it("applies the route changes of a batch together when it ends, in order", async () => {
    const { p, control } = await started();
    const [a, b, c] = [await open("127.0.0.2"), await open("127.0.0.3"), await open("127.0.0.4")];
    p.setRoute(7, at(c), at(a), 0);
    p.batchRouteChanges(() => {
      p.setRoute(1, at(a), at(b), 0);
      p.deleteRoute(1);
      p.setRoute(1, at(a), at(c), 0); // the last change for a source wins
      p.deleteRoute(7);
      p.send(new TextEncoder().encode("sent in the batch"), at(b));
    });
    a.send("to c", p.local.port);
    c.send("now unrouted", p.local.port);
    await eventually(() => c.inbox.length >= 1 && b.inbox.length >= 1 && control.length >= 1);
    expect(new TextDecoder().decode(c.inbox[0]!.data)).toBe("to c");
    expect(new TextDecoder().decode(control[0]!.data)).toBe("now unrouted");
    expect(p.routeCounters(7)).toBeUndefined();
    expect(p.routeCounters(1)).toEqual({ observeLeft: 0 });
    expect(unique(p.drainActivity())).toEqual([1]);
  });
});
