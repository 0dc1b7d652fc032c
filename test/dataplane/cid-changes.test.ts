/**
 * setRoute's `cidLength`: a route watches the destination connection ID in its source's short
 * headers and copies a datagram up (`observed: true`) whenever the DCID changes, from the same
 * observe budget as long headers; `routeCounters().observeLeft` says what is left.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import { type DataPlane, type DataPlaneKind, type InboundDatagram, MAX_OBSERVE_BUDGET } from "../../src/dataplane/types.ts";
import { MemoryPlane } from "../support/memory-plane.ts";
import { bytes, eventually, longHeader, planesUnderTest, shortHeader, testPeers, text, type TestPeer } from "../utils.ts";
import { groPlane, planeOptions, startRecording } from "./native-helpers.ts";

const planes = planesUnderTest();
const at = (p: TestPeer) => ({ address: p.host, port: p.port });

const X = [1, 2, 3, 4, 5, 6, 7, 8];
const Y = [1, 2, 3, 4, 5, 6, 7, 9];
const Z = [9, 9, 9, 9, 9, 9, 9, 9];
const W = [0, 0, 0, 0, 0, 0, 0, 0];
const MARKER = "REG:end-of-cid-test";

/** What was copied up, in order: `S:<dcid>` for short headers, `L:<dcid>` for long ones. */
function copies(control: InboundDatagram[]): string[] {
  return control
    .filter((d) => d.observed)
    .map((d) => (d.data[0]! & 0x80 ? `L:${Array.from(d.data.subarray(6, 6 + d.data[5]!))}` : `S:${Array.from(d.data.subarray(1, 9))}`));
}

const s = (dcid: number[]) => `S:${dcid}`;
const l = (dcid: number[]) => `L:${dcid}`;

describe.each(planes)("%s plane: DCID changes in short headers", (kind: DataPlaneKind) => {
  const open = testPeers();
  let plane: DataPlane | undefined;
  afterEach(async () => {
    await plane?.close();
    plane = undefined;
  });

  async function route(observeBudget: number, cidLength: number) {
    const p = createDataPlane(kind, planeOptions()).plane;
    plane = p;
    const control = await startRecording(p);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    p.setRoute(1, at(a), at(b), observeBudget, 0, cidLength);
    let sent = 0;
    /** Sends the datagrams from A, then waits until B has them all and a REG sent after them went up (behind every copy). */
    const send = async (...datagrams: Uint8Array[]) => {
      for (const d of datagrams) a.send(d, p.local.port);
      sent += datagrams.length;
      a.send(MARKER, p.local.port);
      await eventually(() => b.inbox.length >= sent && control.filter((d) => text(d.data) === MARKER).length === 1);
      control.splice(control.findIndex((d) => text(d.data) === MARKER), 1);
      expect(b.inbox.length).toBe(sent);
    };
    return { plane: p, control, a, b, send };
  }

  it("copies each change: X X X Y Y X gives X, Y, X, and all six are forwarded", async () => {
    const { plane, control, b, send } = await route(16, 8);
    const sent = [X, X, X, Y, Y, X].map((dcid, i) => shortHeader(dcid, [i]));
    await send(...sent);
    expect(copies(control)).toEqual([s(X), s(Y), s(X)]);
    expect(control.every((d) => d.routeId === 1 && d.observed)).toBe(true);
    expect(b.inbox.map((r) => Array.from(r.data))).toEqual(sent.map((d) => Array.from(d)));
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 13 });
  });

  it("watches nothing with cidLength 0", async () => {
    const { plane, control, send } = await route(16, 0);
    await send(...[X, X, Y, Z, X].map((dcid) => shortHeader(dcid)));
    expect(copies(control)).toEqual([]);
    expect(plane.routeCounters(1)?.observeLeft).toBe(16);
    const to = { address: "127.0.0.3", port: 9 };
    for (const bad of [-1, 21, 2.5]) expect(() => plane.setRoute(2, to, to, 0, 0, bad)).toThrow(TypeError);
  });

  it("spends the budget long headers spend, and reports what is left", async () => {
    const { plane, control, send } = await route(3, 8);
    await send(shortHeader(X), longHeader(Z, W), shortHeader(Y));
    expect(plane.routeCounters(1)?.observeLeft).toBe(0);
    await send(shortHeader(Z), shortHeader(W), longHeader(X, W));
    expect(copies(control)).toEqual([s(X), l(Z), s(Y)]);
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 0 });
  });

  it("setRoute re-arms the budget and forgets the last DCID", async () => {
    const { plane, control, a, b, send } = await route(1, 8);
    await send(shortHeader(X), shortHeader(Y));
    expect(copies(control)).toEqual([s(X)]);
    plane.setRoute(1, at(a), at(b), 2, 0, 8);
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 2 });
    await send(shortHeader(Y), shortHeader(Y), shortHeader(X));
    expect(copies(control)).toEqual([s(X), s(Y), s(X)]);
    expect(plane.routeCounters(1)?.observeLeft).toBe(0);
  });

  it("cuts a budget above MAX_OBSERVE_BUDGET to it, and spends from there", async () => {
    const { plane, control, send } = await route(1_000_000, 8);
    expect(plane.routeCounters(1)).toEqual({ observeLeft: MAX_OBSERVE_BUDGET });
    await send(shortHeader(X), shortHeader(Y));
    expect(copies(control)).toEqual([s(X), s(Y)]);
    expect(plane.routeCounters(1)).toEqual({ observeLeft: MAX_OBSERVE_BUDGET - 2 });
  });

  it("leaves long headers as they were, and ignores short headers too short to carry the DCID", async () => {
    const { control, send } = await route(16, 8);
    // Long headers are copied every time and are not short-header DCIDs: X after a long header is no change.
    await send(shortHeader(X), longHeader(Y, Z), longHeader(Y, Z), shortHeader(X), new Uint8Array([0x41, 1, 2, 3, 4, 5, 6, 7]));
    expect(copies(control)).toEqual([s(X), l(Y), l(Y)]);
  });
});

describe("memory plane: DCID changes in short headers", () => {
  it("follows the same rule", async () => {
    const plane = new MemoryPlane();
    const control: InboundDatagram[] = [];
    await plane.start((batch) => control.push(...batch));
    const a = { address: "127.0.0.2", port: 1000 };
    plane.setRoute(1, a, { address: "127.0.0.3", port: 1000 }, 4, 0, 8);
    for (const dcid of [X, X, X, Y, Y, X, Z, W]) plane.receive(a, shortHeader(dcid));
    expect(copies(control)).toEqual([s(X), s(Y), s(X), s(Z)]);
    expect(plane.sent.length).toBe(8);
    expect(plane.routeCounters(1)?.observeLeft).toBe(0);
    expect(() => plane.setRoute(1, a, a, 0, 0, 21)).toThrow(TypeError);
  });
});

describe.skipIf(!planes.includes("native"))("native plane: DCID changes with GRO", () => {
  const open = testPeers();
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("watches a coalesced buffer segment by segment, and forwards it whole", async () => {
    const { plane, control, sender, from } = await groPlane(cleanup);
    const b = await open("127.0.0.3");
    plane.setRoute(1, from, at(b), 16, 0, 8);
    const SEGMENT = 100;
    const dcids = [X, X, Y, Y, Y, X, Z, Z];
    const buffer = new Uint8Array(SEGMENT * dcids.length);
    dcids.forEach((dcid, i) => buffer.set(shortHeader(dcid, new Array(SEGMENT - 9).fill(i)), i * SEGMENT));
    sender.send(buffer, SEGMENT, "127.0.0.1", plane.local.port);
    await eventually(() => b.inbox.length >= dcids.length);
    sender.send(bytes(MARKER), 0, "127.0.0.1", plane.local.port);
    await eventually(() => control.some((d) => text(d.data) === MARKER));
    expect(copies(control)).toEqual([s(X), s(Y), s(X), s(Z)]);
    expect(b.inbox.map((r) => r.data.length)).toEqual(dcids.map(() => SEGMENT));
    expect(b.inbox.map((r) => r.data[SEGMENT - 1])).toEqual(dcids.map((_, i) => i));
    expect(plane.routeCounters(1)).toEqual({ observeLeft: 12 });
    if (!plane.nativeInfo().gro) return; // the kernel refused UDP_GRO: the segments arrived one by one
    expect(plane.nativeCounters()).toMatchObject({ groBuffers: 1, gsoSends: 1 });
  });
});
