import { describe, expect, it } from "bun:test";

import { CONTROL_QUEUE_BYTES, CONTROL_QUEUE_DATAGRAMS, ControlQueue } from "../../src/dataplane/control-queue.ts";
import type { InboundDatagram } from "../../src/dataplane/types.ts";

const reg = (n: number, address = "127.0.0.9", port = 1000): InboundDatagram =>
  ({ data: new TextEncoder().encode(`REG:s-${n}\n`), address, port, routeId: -1, observed: false });
const junk = (n: number, address = "127.0.0.9", port = 1000, size = 8): InboundDatagram => {
  const data = new Uint8Array(size);
  data[0] = n & 0xff;
  data[1] = n >> 8;
  return { data, address, port, routeId: -1, observed: false };
};
const routable = (d: InboundDatagram) => !d.observed && d.data[0] !== 0x52;

describe("ControlQueue", () => {
  it("takes in order, a batch at a time, and is empty after the last", () => {
    const q = new ControlQueue(routable);
    for (let i = 0; i < 600; i++) q.push(junk(i), false);
    const sizes: number[] = [];
    const seen: number[] = [];
    while (q.length > 0) {
      const batch = q.take(256);
      sizes.push(batch.length);
      for (const d of batch) seen.push(d.data[0]! | (d.data[1]! << 8));
    }
    expect(sizes).toEqual([256, 256, 88]);
    expect(seen).toEqual(Array.from({ length: 600 }, (_, i) => i));
  });

  it("refuses other datagrams when full, but keeps room for REGs", () => {
    const q = new ControlQueue(routable);
    for (let i = 0; i < CONTROL_QUEUE_DATAGRAMS; i++) expect(q.push(junk(i), false)).toBe(true);
    expect(q.push(junk(0), false)).toBe(false);
    let regs = 0;
    while (q.push(reg(regs), true)) regs++;
    expect(regs).toBe(1024);
    q.take(1);
    expect(q.push(junk(1), false)).toBe(false);
    expect(q.push(reg(0), true)).toBe(true);
  });

  it("bounds the bytes it holds, whatever the count", () => {
    const q = new ControlQueue(routable);
    let n = 0;
    while (q.push(junk(n, "127.0.0.9", 1000, 65_000), false)) n++;
    expect(n).toBe(Math.floor(CONTROL_QUEUE_BYTES / 65_000));
    // Taking frees the bytes.
    q.take(10);
    for (let i = 0; i < 10; i++) expect(q.push(junk(i, "127.0.0.9", 1000, 65_000), false)).toBe(true);
  });

  it("hands a new route the waiting datagrams of its source only, in order, and keeps the rest in place", () => {
    const q = new ControlQueue(routable);
    q.push(junk(1, "127.0.0.2", 5), false);
    q.push(reg(2, "127.0.0.2", 5), true);
    q.push(junk(3, "127.0.0.2", 6), false);
    q.push(junk(4, "127.0.0.3", 5), false);
    q.push(junk(5, "127.0.0.2", 5), false);
    const forwarded: number[] = [];
    q.takeOver("127.0.0.2", 5, (d) => {
      forwarded.push(d.data[0]!);
      return d.data[0] === 5 ? { ...d, observed: true, routeId: 7 } : undefined;
    });
    expect(forwarded).toEqual([1, 5]);
    const left = q.take(10);
    expect(left.map((d) => [d.data[0], d.observed])).toEqual([[0x52, false], [3, false], [4, false], [5, true]]);
  });

  it("walks nothing for a source with nothing waiting, and forgets a source once its datagrams went up", () => {
    const q = new ControlQueue(routable);
    q.push(junk(1, "127.0.0.2", 5), false);
    q.push(reg(2, "127.0.0.4", 5), true);
    let calls = 0;
    q.takeOver("127.0.0.4", 5, () => {
      calls++;
      return undefined;
    });
    expect(calls).toBe(0);
    q.take(10);
    q.push(reg(3, "127.0.0.2", 5), true);
    q.takeOver("127.0.0.2", 5, () => {
      calls++;
      return undefined;
    });
    expect(calls).toBe(0);
    expect(q.length).toBe(1);
  });
});
