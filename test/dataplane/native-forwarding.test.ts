import { afterEach, expect, it } from "bun:test";

import { createNativePlane, type NativePlane } from "../../src/dataplane/native.ts";
import { decode, planeOptions, startRecording, text, udpPeer, until, nativeDescribe, type TestPeer } from "./native-helpers.ts";

const suite = nativeDescribe();

suite("native plane forwarding", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(host = "127.0.0.1", extra: Parameters<typeof planeOptions>[0] = {}) {
    const plane = createNativePlane(planeOptions({ host, ...extra }));
    const control = await startRecording(plane);
    cleanup.push(() => plane.close());
    return { plane, control };
  }
  async function peer(host: string): Promise<TestPeer> {
    const p = await udpPeer(host);
    cleanup.push(() => p.close());
    return p;
  }

  it("hands unknown sources and REG up, with the socket's address form", async () => {
    const { plane, control } = await setup();
    const a = await peer("127.0.0.2");
    a.send("REG:s1\n", plane.local.port, "127.0.0.1");
    a.send("junk", plane.local.port, "127.0.0.1");
    await until(() => control.length >= 2);
    expect(control.map((d) => decode(d.data))).toEqual(["REG:s1\n", "junk"]);
    expect(control[0]).toMatchObject({ address: "127.0.0.2", port: a.port, routeId: -1, observed: false });
    expect(plane.counters().controlPackets).toBe(2);
  });

  it("forwards routed datagrams both ways byte-for-byte without the control plane", async () => {
    const { plane, control } = await setup();
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    plane.setRoute(1, { address: "127.0.0.2", port: a.port }, { address: "127.0.0.3", port: b.port }, 0);
    plane.setRoute(2, { address: "127.0.0.3", port: b.port }, { address: "127.0.0.2", port: a.port }, 0);
    const payloads = Array.from({ length: 50 }, (_, i) => new Uint8Array(100 + i).fill(i));
    for (const p of payloads) a.send(p, plane.local.port, "127.0.0.1");
    b.send("pong", plane.local.port, "127.0.0.1");
    await b.waitFor(50);
    await a.waitFor(1);
    expect(b.received.map((r) => Array.from(r.data))).toEqual(payloads.map((p) => Array.from(p)));
    expect(b.received[0]).toMatchObject({ address: "127.0.0.1", port: plane.local.port });
    expect(decode(a.received[0].data)).toBe("pong");
    expect(control.length).toBe(0);
    // The 50 datagrams on route 1 and "pong" on route 2.
    await until(() => plane.counters().forwardedPackets >= 51); // published after the sends
    expect(plane.counters()).toMatchObject({ forwardedPackets: 51, forwardedBytes: payloads.reduce((s, p) => s + p.length, 0) + "pong".length });
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 0 });
    expect(plane.drainActivity().sort()).toEqual([1, 2]);
    expect(plane.drainActivity()).toEqual([]);
    expect(plane.routeCounters(99)).toBeUndefined();
  });

  it("sends REG from a routed source up with its route id, and observes QUIC long headers within budget", async () => {
    const { plane, control } = await setup();
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    plane.setRoute(7, { address: "127.0.0.2", port: a.port }, { address: "127.0.0.3", port: b.port }, 2);
    a.send("REG:x", plane.local.port, "127.0.0.1");
    await until(() => control.length >= 1);
    for (let i = 0; i < 4; i++) a.send(new Uint8Array([0xc0, i]), plane.local.port, "127.0.0.1");
    a.send(new Uint8Array([0x40, 9]), plane.local.port, "127.0.0.1");
    await b.waitFor(5);
    // A REG from the same source after them goes up behind every copy the budget allowed.
    a.send("REG:marker", plane.local.port, "127.0.0.1");
    await until(() => control.some((d) => decode(d.data) === "REG:marker"));
    expect(control[0]).toMatchObject({ routeId: 7, observed: false });
    expect(control.slice(1).map((d) => [Array.from(d.data), d.routeId, d.observed])).toEqual([
      [[0xc0, 0], 7, true],
      [[0xc0, 1], 7, true],
      [Array.from(text("REG:marker")), 7, false],
    ]);
  });

  it("drops oversize datagrams and counts them", async () => {
    const { plane, control } = await setup("127.0.0.1", { maxDatagramSize: 200 });
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    plane.setRoute(1, { address: "127.0.0.2", port: a.port }, { address: "127.0.0.3", port: b.port }, 0);
    a.send(new Uint8Array(201), plane.local.port, "127.0.0.1");
    a.send(new Uint8Array(200), plane.local.port, "127.0.0.1");
    const c = await peer("127.0.0.4");
    c.send(new Uint8Array(500), plane.local.port, "127.0.0.1");
    await b.waitFor(1);
    await until(() => plane.counters().oversize === 2);
    expect(b.received.map((r) => r.data.length)).toEqual([200]);
    expect(control.length).toBe(0);
  });

  it("replaces routes by id and by source, and deletes them", async () => {
    const { plane, control } = await setup();
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    const c = await peer("127.0.0.4");
    plane.setRoute(1, { address: "127.0.0.2", port: a.port }, { address: "127.0.0.3", port: b.port }, 0);
    plane.setRoute(2, { address: "127.0.0.2", port: a.port }, { address: "127.0.0.4", port: c.port }, 0);
    expect(plane.routeCounters(1)).toBeUndefined();
    a.send("one", plane.local.port, "127.0.0.1");
    await c.waitFor(1);
    plane.deleteRoute(2);
    a.send("two", plane.local.port, "127.0.0.1");
    await until(() => control.length >= 1);
    expect(decode(control[0].data)).toBe("two");
    expect(b.received.length).toBe(0);
  });

  it("sends queued datagrams in order, ahead of a route installed after them", async () => {
    const { plane } = await setup();
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    for (let i = 0; i < 20; i++) plane.send(text(`held-${i}`), { address: "127.0.0.3", port: b.port });
    plane.setRoute(1, { address: "127.0.0.2", port: a.port }, { address: "127.0.0.3", port: b.port }, 0);
    a.send("live", plane.local.port, "127.0.0.1");
    await b.waitFor(21);
    expect(b.received.map((r) => decode(r.data))).toEqual([...Array.from({ length: 20 }, (_, i) => `held-${i}`), "live"]);
  });

  it("speaks dual stack on :: with ::ffff: forms and plain IPv6", async () => {
    const { plane, control } = await setup("::");
    expect(plane.local.address).toBe("::");
    const a = await peer("127.0.0.2");
    const b = await peer("::1");
    a.send("REG:v4", plane.local.port, "127.0.0.1");
    b.send("REG:v6", plane.local.port, "::1");
    await until(() => control.length >= 2);
    const byText = Object.fromEntries(control.map((d) => [decode(d.data), d.address]));
    expect(byText).toEqual({ "REG:v4": "::ffff:127.0.0.2", "REG:v6": "::1" });
    plane.setRoute(1, { address: "::ffff:127.0.0.2", port: a.port }, { address: "::1", port: b.port }, 0);
    plane.setRoute(2, { address: "::1", port: b.port }, { address: "::ffff:127.0.0.2", port: a.port }, 0);
    a.send("to-v6", plane.local.port, "127.0.0.1");
    b.send("to-v4", plane.local.port, "::1");
    await a.waitFor(1);
    await b.waitFor(1);
    expect(decode(b.received[0].data)).toBe("to-v6");
    expect(decode(a.received[0].data)).toBe("to-v4");
  });

  it("validates arguments and reports syscall failures with errno", async () => {
    const { plane } = await setup();
    expect(() => plane.setRoute(1, { address: "nope", port: 1 }, { address: "127.0.0.3", port: 2 }, 0)).toThrow(TypeError);
    expect(() => plane.setRoute(1, { address: "::1", port: 1 }, { address: "127.0.0.3", port: 2 }, 0)).toThrow(TypeError);
    expect(() => plane.setRoute(-1, { address: "127.0.0.2", port: 1 }, { address: "127.0.0.3", port: 2 }, 0)).toThrow();
    const clash = createNativePlane(planeOptions({ port: plane.local.port, workers: 1 }));
    let error: unknown;
    try {
      await clash.start(() => {});
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "EADDRINUSE", syscall: "bind" });
    plane.send(text("x"), { address: "::1", port: 9 }); // not reachable from an IPv4 socket: counted
    await until(() => plane.counters().sendErrors === 1);
    const b = await peer("127.0.0.3");
    plane.send(text("x"), { address: "127.0.0.3", port: "nine" as unknown as number }); // never throws
    plane.send(text("still sent"), { address: "127.0.0.3", port: b.port }); // and costs no other datagram
    await b.waitFor(1);
    expect(plane.counters().sendErrors).toBe(2);
  });

  it("keeps the route table consistent with a model through random set/replace/delete", async () => {
    const { plane } = await setup();
    // Model: id -> source key, source key -> id.
    const byId = new Map<number, string>();
    const bySource = new Map<string, number>();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const to = { address: "127.0.0.9", port: 9 };
    for (let step = 0; step < 60_000; step++) {
      const id = rand(5000);
      const source = { address: `10.0.${rand(4)}.${rand(250)}`, port: 1000 + rand(8) };
      const key = `${source.address}:${source.port}`;
      if (rand(4) === 0) {
        plane.deleteRoute(id);
        const old = byId.get(id);
        if (old !== undefined) bySource.delete(old);
        byId.delete(id);
        continue;
      }
      plane.setRoute(id, source, to, 0);
      const oldKey = byId.get(id);
      if (oldKey !== undefined) bySource.delete(oldKey);
      const oldId = bySource.get(key);
      if (oldId !== undefined) byId.delete(oldId);
      byId.set(id, key);
      bySource.set(key, id);
    }
    for (let id = 0; id < 5000; id++) {
      expect(plane.routeCounters(id) !== undefined).toBe(byId.has(id));
    }
  });
});
