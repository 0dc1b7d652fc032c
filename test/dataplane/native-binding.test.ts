/**
 * The addon's JS surface itself: the counters it reports are exactly the list the TypeScript side
 * names (native/counters.h and NATIVE_COUNTERS in src/dataplane/native-addon.ts), and every call
 * after close() is defined: changes do nothing, reads answer as at close, nothing throws.
 */
import { expect, it } from "bun:test";

import { loadNativeAddon, NATIVE_COUNTERS, type NativeRelayHandle } from "../../src/dataplane/native-addon.ts";
import { createNativePlane } from "../../src/dataplane/native.ts";
import { DATA_PLANE_COUNTERS } from "../../src/dataplane/types.ts";
import { closedAfterEach, nativeDescribe, planeOptions, startRecording, text, until } from "./native-helpers.ts";

const suite = nativeDescribe();
const sorted = (names: readonly string[]) => [...names].sort();

suite("native addon binding", () => {
  const { cleanup, peer } = closedAfterEach();

  /** A raw NativeRelay whose wake-ups are ignored: control datagrams stay pending. */
  function openRelay(): NativeRelayHandle {
    const loaded = loadNativeAddon();
    if (!loaded.ok) throw new Error(loaded.reason);
    const relay = new loaded.addon.NativeRelay(
      { host: "127.0.0.1", port: 0, maxDatagramSize: 1500, socketBufferBytes: 1 << 20, workers: 1, gro: false },
      () => {},
    );
    cleanup.push(() => relay.close());
    return relay;
  }

  it("reports exactly the counters NATIVE_COUNTERS names, as numbers", () => {
    const counters = openRelay().counters();
    expect(sorted(Object.keys(counters))).toEqual(sorted(NATIVE_COUNTERS));
    for (const name of NATIVE_COUNTERS) expect(typeof counters[name]).toBe("number");
  });

  it("the plane reports DATA_PLANE_COUNTERS through counters() and NATIVE_COUNTERS through nativeCounters()", async () => {
    const plane = createNativePlane(planeOptions());
    cleanup.push(() => plane.close());
    await startRecording(plane);
    expect(sorted(Object.keys(plane.counters()))).toEqual(sorted(DATA_PLANE_COUNTERS));
    expect(sorted(Object.keys(plane.nativeCounters()))).toEqual(sorted(NATIVE_COUNTERS));
  });

  it("after close, calls that would change something do nothing and return their empty value", async () => {
    const relay = openRelay();
    const port = relay.local().port;
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    relay.setRoute(1, "127.0.0.2", a.port, "127.0.0.3", b.port, 0, 0);
    a.send("forwarded", port, "127.0.0.1");
    b.send("pending for the control plane", port, "127.0.0.1");
    await b.waitFor(1);
    await until(() => relay.counters().controlPackets === 1, 5000, "a pending control datagram");
    relay.close();
    const atClose = relay.counters();

    // A datagram is pending, route 1 is active and exists: none of it is touched any more.
    expect(relay.takeControl()).toBeNull();
    expect(relay.drainActivity()).toEqual([]);
    expect(relay.deleteRoute(1)).toBe(false);
    expect(relay.setRoute(2, "127.0.0.3", b.port, "127.0.0.2", a.port, 0, 0)).toBeUndefined();
    expect(relay.routeCounters(2)).toBeUndefined();
    // A bad entry would count a send error on an open relay.
    expect(relay.sendBatch([text("late"), "not bytes" as unknown as Uint8Array], ["127.0.0.3", "127.0.0.3"], [b.port, b.port])).toBe(0);
    expect(relay.close()).toBeUndefined();
    expect(relay.counters()).toEqual(atClose);
  });

  it("after close, the reads answer as at close", async () => {
    const relay = openRelay();
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    relay.setRoute(1, "127.0.0.2", a.port, "127.0.0.3", b.port, 0, 0);
    a.send("forwarded", relay.local().port, "127.0.0.1");
    await b.waitFor(1);
    await until(() => relay.counters().forwardedPackets === 1, 5000, "the forwarded count");
    const before = { local: relay.local(), info: relay.info(), route: relay.routeCounters(1), counters: relay.counters() };
    relay.close();
    expect({ local: relay.local(), info: relay.info(), route: relay.routeCounters(1), counters: relay.counters() }).toEqual(before);
    expect(before.route).toEqual({ observeLeft: 0 });
    expect(before.counters).toMatchObject({ forwardedPackets: 1, forwardedBytes: "forwarded".length });
  });

  it("the native plane takes every call after close without throwing", async () => {
    const plane = createNativePlane(planeOptions());
    await startRecording(plane);
    const a = { address: "127.0.0.2", port: 40000 };
    const b = { address: "127.0.0.3", port: 40001 };
    plane.setRoute(1, a, b, 0);
    await plane.close();
    const counters = plane.counters();

    plane.send(text("late"), b);
    plane.setRoute(2, b, a, 0, 1000);
    plane.deleteRoute(1);
    expect(plane.drainActivity()).toEqual([]);
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 0 });
    expect(plane.routeCounters(2)).toBeUndefined();
    expect(plane.counters()).toEqual(counters);
    expect(Object.keys(plane.nativeCounters()).length).toBe(NATIVE_COUNTERS.length);
    expect(plane.nativeInfo().workers).toBeGreaterThanOrEqual(1);
    await plane.close();
  });
});
