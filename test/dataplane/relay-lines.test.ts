/**
 * A datagram from a routed source that may be a relay-protocol line (`mayBeRelayLine`: 4..32
 * bytes ending in `\n`, first byte A, E or R) is handed up with its route id, never forwarded;
 * the control plane decides what it is. Everything else from a routed source is forwarded.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind } from "../../src/dataplane/types.ts";
import { bytes, eventually, planesUnderTest, testPeers, text, type TestPeer } from "../utils.ts";
import { groPlane, planeOptions, startRecording } from "./native-helpers.ts";

const planes = planesUnderTest();
const at = (p: TestPeer) => ({ address: p.host, port: p.port });

/** `length` bytes starting with `first` and ending in `\n`. */
function line(first: string, length: number): Uint8Array {
  const out = new Uint8Array(length).fill(0x78);
  out[0] = first.charCodeAt(0);
  out[length - 1] = 0x0a;
  return out;
}

describe.each(planes)("%s plane: relay lines from a routed source", (kind: DataPlaneKind) => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  async function pair() {
    const p = createDataPlane(kind, planeOptions()).plane;
    plane = p;
    const control = await startRecording(p);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    p.setRoute(1, at(a), at(b), 0);
    p.setRoute(2, at(b), at(a), 0);
    return { plane: p, control, a, b };
  }

  it("hands ACK, ERR and RETRY up with the route id and forwards a long line starting with A", async () => {
    const { plane, control, a, b } = await pair();
    const lines = ["ACK\n", "ERR full\n", "RETRY AAAAAAAAAAAAAAAA\n"];
    for (const l of lines) a.send(l, plane.local.port);
    const long = line("A", 1200);
    a.send(long, plane.local.port);
    // Same source, same order: once the long one is through, the lines before it were handled.
    await eventually(() => b.inbox.length >= 1 && control.length >= lines.length);
    expect(b.inbox.map((r) => r.data.length)).toEqual([1200]);
    expect(Buffer.from(b.inbox[0]!.data).equals(Buffer.from(long))).toBe(true);
    expect(control.map((d) => [text(d.data), d.routeId, d.observed, d.port])).toEqual(
      lines.map((l) => [l, 1, false, a.port]),
    );
    expect(plane.counters()).toMatchObject({ forwardedPackets: 1, forwardedBytes: 1200 });
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 0 });
  });

  it("applies the filter's bounds: 4 and 32 bytes go up, 3 and 33 bytes and other first bytes are forwarded", async () => {
    const { plane, control, a, b } = await pair();
    const up = [line("E", 4), line("R", 32), line("A", 17)];
    const forwarded = [line("A", 3), line("R", 33), line("B", 10), bytes("ACK!"), line("e", 8)];
    for (const d of [...up, ...forwarded]) a.send(d, plane.local.port);
    b.send("ACK\n", plane.local.port); // from the other side of the pair: route 2
    await eventually(() => b.inbox.length >= forwarded.length && control.length >= up.length + 1);
    expect(b.inbox.map((r) => text(r.data))).toEqual(forwarded.map(text));
    expect(control.map((d) => [text(d.data), d.routeId])).toEqual([...up.map((d) => [text(d), 1]), ["ACK\n", 2]]);
    expect(a.inbox.length).toBe(0);
  });
});

describe.skipIf(!planes.includes("native"))("native plane: relay lines inside a GRO-coalesced buffer", () => {
  const open = testPeers();
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("splits the buffer: the lines go up with the route id, the other segments are forwarded in order", async () => {
    const { plane, control, sender, from } = await groPlane(cleanup);
    const receiver = await open("127.0.0.3");
    plane.setRoute(1, from, at(receiver), 0);
    // Segments of 22 bytes; the last one may be shorter.
    const parts = ["a".repeat(22), "ERR full".padEnd(21, " ") + "\n", "c".repeat(22), "ACK\n"];
    sender.send(Buffer.concat(parts.map(bytes)), 22, "127.0.0.1", plane.local.port);
    await eventually(() => receiver.inbox.length >= 2 && control.length >= 2);
    expect(receiver.inbox.map((r) => text(r.data))).toEqual([parts[0], parts[2]]);
    expect(control.map((d) => [text(d.data), d.routeId, d.observed])).toEqual([
      [parts[1], 1, false],
      [parts[3], 1, false],
    ]);
    if (plane.nativeInfo().gro) expect(plane.nativeCounters().groBuffers).toBe(1);
  });
});
