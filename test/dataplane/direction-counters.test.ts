/**
 * The planes count what second-to-first routes forward apart from the total, so the relay reads
 * its per-direction totals in O(1) instead of walking every route at each scrape. Counts are
 * totals since start: replacing or deleting a route loses nothing.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind } from "../../src/dataplane/types.ts";
import { planeDirections } from "../../src/metrics/directions.ts";
import { eventually, planesUnderTest, testPeers, type TestPeer } from "../utils.ts";
import { planeOptions, startRecording } from "./native-helpers.ts";

const at = (p: TestPeer) => ({ address: p.host, port: p.port });

describe.each(planesUnderTest())("%s plane: forwarding totals by direction", (kind: DataPlaneKind) => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  it("counts second-to-first routes apart, across a replaced and a deleted route", async () => {
    const p = createDataPlane(kind, planeOptions()).plane;
    plane = p;
    const control = await startRecording(p);
    const first = await open("127.0.0.2");
    const second = await open("127.0.0.3");
    p.setRoute(1, at(first), at(second), 0, 0, 0, "first_to_second");
    p.setRoute(2, at(second), at(first), 0, 0, 0, "second_to_first");
    for (let i = 0; i < 3; i++) first.send(new Uint8Array(100), p.local.port);
    for (let i = 0; i < 2; i++) second.send(new Uint8Array(40), p.local.port);
    await eventually(() => second.inbox.length >= 3 && first.inbox.length >= 2);
    expect(planeDirections(p.counters())).toEqual({
      first_to_second: { packets: 3, bytes: 300 },
      second_to_first: { packets: 2, bytes: 80 },
    });

    // The second peer's route replaced (a rebind would do this), then deleted: its counts stay.
    p.setRoute(2, at(second), at(first), 0, 0, 0, "second_to_first");
    second.send(new Uint8Array(10), p.local.port);
    await eventually(() => first.inbox.length >= 3);
    p.deleteRoute(2);
    p.deleteRoute(1);
    // Without routes, datagrams go up to the control plane and count in neither direction.
    second.send(new Uint8Array(10), p.local.port);
    await eventually(() => control.length >= 1);
    expect(planeDirections(p.counters())).toEqual({
      first_to_second: { packets: 3, bytes: 300 },
      second_to_first: { packets: 3, bytes: 90 },
    });
  });

  it("counts a route set without a direction as first-to-second", async () => {
    const p = createDataPlane(kind, planeOptions()).plane;
    plane = p;
    await startRecording(p);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    p.setRoute(1, at(a), at(b), 0);
    a.send(new Uint8Array(7), p.local.port);
    await eventually(() => b.inbox.length >= 1);
    expect(p.counters()).toMatchObject({ forwardedPackets: 1, forwardedBytes: 7, secondToFirstPackets: 0, secondToFirstBytes: 0 });
  });
});
