import { afterEach, expect, it } from "bun:test";

import { createNativePlane, type NativePlane } from "../../src/dataplane/native.ts";
import { loadNativeAddon, type GsoSocketHandle } from "../../src/dataplane/native-addon.ts";
import { decode, planeOptions, startRecording, text, udpPeer, until, nativeDescribe, type TestPeer } from "./native-helpers.ts";

const loaded = loadNativeAddon();
const suite = nativeDescribe();

/** `count` segments of `size` bytes (the last one `last` bytes), each filled with its index. */
function segments(count: number, size: number, last = size, firstByte?: (i: number) => number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    const seg = new Uint8Array(i === count - 1 ? last : size).fill(i + 1);
    if (firstByte) seg[0] = firstByte(i);
    return seg;
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

suite("native plane GRO/GSO", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(gro = true) {
    if (!loaded.ok) throw new Error("unreachable");
    const plane: NativePlane = createNativePlane(planeOptions({ gro, maxDatagramSize: 1500 }));
    const control = await startRecording(plane);
    cleanup.push(() => plane.close());
    const sender: GsoSocketHandle = new loaded.addon.GsoSocket("127.0.0.2");
    cleanup.push(() => sender.close());
    const receiver: TestPeer = await udpPeer("127.0.0.3");
    cleanup.push(() => receiver.close());
    plane.setRoute(
      1,
      { address: "127.0.0.2", port: sender.local().port },
      { address: "127.0.0.3", port: receiver.port },
      0,
    );
    return { plane, control, sender, receiver };
  }

  it.each([true, false])("keeps every datagram boundary of a UDP_SEGMENT sender (gro=%p)", async (gro) => {
    const { plane, sender, receiver } = await setup(gro);
    const sent: Uint8Array[] = [];
    for (let round = 0; round < 20; round++) {
      const parts = segments(10 + (round % 5), 1200, 300 + round);
      sent.push(...parts);
      sender.send(concat(parts), 1200, "127.0.0.1", plane.local.port);
    }
    // A last datagram on the same route: anything forwarded twice would arrive before it.
    const marker = text("end of segments");
    sender.send(marker, 0, "127.0.0.1", plane.local.port);
    await until(() => receiver.received.some((r) => decode(r.data) === "end of segments"));
    expect(decode(receiver.received.pop()!.data)).toBe("end of segments");
    expect(receiver.received.length).toBe(sent.length);
    expect(receiver.received.map((r) => r.data.length)).toEqual(sent.map((s) => s.length));
    expect(receiver.received.every((r, i) => Buffer.from(r.data).equals(Buffer.from(sent[i])))).toBe(true);
    await until(() => plane.nativeCounters().forwardedPackets === sent.length + 1); // published after the sends
    const counters = plane.nativeCounters();
    if (gro && plane.nativeInfo().gro) {
      // The relay got coalesced buffers and forwarded them coalesced.
      expect(counters.groBuffers).toBeGreaterThan(0);
      expect(counters.gsoSends).toBeGreaterThan(0);
    } else {
      expect(counters.groBuffers).toBe(0);
    }
    expect([...new Set(plane.drainActivity())]).toEqual([1]);
  });

  it("splits a coalesced buffer holding a REG: the REG goes up, the rest is forwarded in order", async () => {
    const { plane, control, sender, receiver } = await setup();
    const parts = [text("a".repeat(40)), text("REG:abc".padEnd(40, "x")), text("c".repeat(40)), text("d".repeat(10))];
    sender.send(concat(parts), 40, "127.0.0.1", plane.local.port);
    await receiver.waitFor(3);
    await until(() => control.length >= 1);
    expect(receiver.received.map((r) => decode(r.data))).toEqual([parts[0], parts[2], parts[3]].map(decode));
    expect(control.map((d) => [decode(d.data), d.routeId])).toEqual([[decode(parts[1]), 1]]);
  });

  it("hands a coalesced buffer from an unknown source up as separate datagrams", async () => {
    const { plane, control } = await setup();
    if (!loaded.ok) throw new Error("unreachable");
    const stranger = new loaded.addon.GsoSocket("127.0.0.4");
    cleanup.push(() => stranger.close());
    const parts = segments(5, 100, 33);
    stranger.send(concat(parts), 100, "127.0.0.1", plane.local.port);
    await until(() => control.length >= 5);
    expect(control.map((d) => d.data.length)).toEqual([100, 100, 100, 100, 33]);
    expect(control.every((d, i) => d.data[0] === i + 1 && d.routeId === -1 && d.address === "127.0.0.4")).toBe(true);
  });

  it("observes long headers inside coalesced buffers within the budget", async () => {
    const { plane, control, sender, receiver } = await setup();
    plane.setRoute(
      1,
      { address: "127.0.0.2", port: sender.local().port },
      { address: "127.0.0.3", port: receiver.port },
      3,
    );
    const parts = segments(6, 200, 200, (i) => (i % 2 === 0 ? 0xc3 : 0x41));
    sender.send(concat(parts), 200, "127.0.0.1", plane.local.port);
    await receiver.waitFor(6);
    // A REG from the same socket goes up behind every copy the budget allowed.
    sender.send(text("REG:marker"), 0, "127.0.0.1", plane.local.port);
    await until(() => control.some((d) => decode(d.data) === "REG:marker"));
    expect(control.map((d) => [d.data[0], d.data[1], d.observed])).toEqual([
      [0xc3, 1, true],
      [0xc3, 3, true],
      [0xc3, 5, true],
      [0x52, 0x45, false],
    ]);
  });

  it("counts oversize segments and forwards none of them", async () => {
    const { plane, sender, receiver } = await setup();
    const parts = segments(4, 1600, 1600);
    sender.send(concat(parts), 1600, "127.0.0.1", plane.local.port);
    sender.send(new Uint8Array(10), 0, "127.0.0.1", plane.local.port);
    await receiver.waitFor(1);
    await until(() => plane.counters().oversize === 4);
    expect(receiver.received.map((r) => r.data.length)).toEqual([10]);
  });
});
