/**
 * Datagrams for the control plane go up a batch per event-loop turn on both planes: a burst of
 * REGs does not hold the event loop until the last one is handled (timers, health checks and
 * scrapes get their turns between batches), and nothing of a burst the queue can hold is lost.
 */
import type { udp } from "bun";
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import { setSocketBuffers } from "../../src/dataplane/socket-buffers.ts";
import type { DataPlane, DataPlaneKind } from "../../src/dataplane/types.ts";
import { planesUnderTest } from "../utils.ts";
import { planeOptions, until } from "./native-helpers.ts";

/** Sixteen batches of 256, within both planes' queues (8192 datagrams). */
const BURST = 4096;

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sender(): Promise<udp.Socket<"buffer">> {
  const socket = await Bun.udpSocket({ hostname: "127.0.0.2", port: 0 });
  setSocketBuffers(socket, 8 << 20);
  cleanup.push(() => socket.close());
  return socket;
}

for (const kind of planesUnderTest() as DataPlaneKind[]) {
  describe(`${kind} plane: control batches`, () => {
    it("hands a burst of REGs up a batch per event-loop turn, all of it", async () => {
      const { plane } = createDataPlane(kind, planeOptions({ socketBufferBytes: 8 << 20 }));
      cleanup.push(() => plane.close());
      /** Batch sizes in order; -1 marks where a callback queued by the first batch ran. */
      const order: number[] = [];
      let received = 0;
      await plane.start((batch) => {
        // Queued in the first batch: it runs in the first turn that gives immediates a chance.
        if (order.length === 0) setImmediate(() => order.push(-1));
        order.push(batch.length);
        received += batch.length;
      });
      const from = await sender();
      const packets: (Uint8Array | number | string)[] = [];
      for (let i = 0; i < BURST; i++) packets.push(new TextEncoder().encode(`REG:burst-${i}\n`), plane.local.port, plane.local.address);
      expect(from.sendMany(packets)).toBe(BURST);

      await until(() => received === BURST, 10_000, `the ${BURST} REGs at the control plane`);
      const batchesBefore = order.indexOf(-1);
      // The next batch waits for the next turn.
      expect(batchesBefore).toBe(1);
      expect(Math.max(...order)).toBeLessThanOrEqual(256);
      expect(plane.counters().controlQueueDrops).toBe(0);
      expect(plane.counters().controlPackets).toBe(BURST);
    });

    it("takes smaller batches when datagrams cost the control plane more, losing none", async () => {
      // The plane's work clock moves 1 ms per datagram handled: 3 ms of work (BATCH_MS) fits 3,
      // so after the first batch each takes the least, 16.
      let work = 0;
      const { plane } = createDataPlane(kind, planeOptions({ socketBufferBytes: 8 << 20, workClock: () => work }));
      cleanup.push(() => plane.close());
      const sizes: number[] = [];
      let received = 0;
      await plane.start((batch) => {
        sizes.push(batch.length);
        received += batch.length;
        work += batch.length;
      });
      const from = await sender();
      const packets: (Uint8Array | number | string)[] = [];
      for (let i = 0; i < BURST; i++) packets.push(new TextEncoder().encode(`REG:slow-${i}\n`), plane.local.port, plane.local.address);
      expect(from.sendMany(packets)).toBe(BURST);

      await until(() => received === BURST, 10_000, `the ${BURST} REGs at the control plane`);
      expect(sizes.length).toBeGreaterThanOrEqual((BURST - 256) / 16);
      expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(16);
      expect(plane.counters().controlQueueDrops).toBe(0);
    });
  });
}

describe("TS plane: a control queue nearly full", () => {
  it("hands a batch up at once instead of dropping, and keeps the REGs' order", async () => {
    if (!planesUnderTest().includes("ts")) return;
    // A work clock that stands still: the inline batches stay within their budget however slow the machine.
    const { plane } = createDataPlane("ts", planeOptions({ socketBufferBytes: 16 << 20, workClock: () => 0 }));
    cleanup.push(() => plane.close());
    const ids: number[] = [];
    await plane.start((batch) => {
      for (const d of batch) ids.push(Number(new TextDecoder().decode(d.data).slice(4, -1)));
    });
    const from = await sender();
    // More than the queue holds (8192), all in the socket's buffer before the plane reads any.
    const total = 10_000;
    const packets: (Uint8Array | number | string)[] = [];
    for (let i = 0; i < total; i++) packets.push(new TextEncoder().encode(`REG:${i}\n`), plane.local.port, plane.local.address);
    const sent = from.sendMany(packets);
    await until(() => ids.length + (plane as DataPlane).counters().controlQueueDrops >= sent, 10_000, "every REG handed up or counted");
    expect(plane.counters().controlQueueDrops).toBe(0);
    expect(ids).toEqual(Array.from({ length: sent }, (_, i) => i));
  });

  it("hands batches up inline for a few milliseconds a turn only, then drops what does not fit, counted", async () => {
    if (!planesUnderTest().includes("ts")) return;
    // 1 ms of work per datagram handled: the first inline batch (256) spends the turn's budget.
    let work = 0;
    const { plane } = createDataPlane("ts", planeOptions({ socketBufferBytes: 16 << 20, workClock: () => work }));
    cleanup.push(() => plane.close());
    const ids: number[] = [];
    await plane.start((batch) => {
      for (const d of batch) ids.push(Number(new TextDecoder().decode(d.data).slice(4, -1)));
      work += batch.length;
    });
    const from = await sender();
    const total = 10_000;
    const packets: (Uint8Array | number | string)[] = [];
    for (let i = 0; i < total; i++) packets.push(new TextEncoder().encode(`REG:${i}\n`), plane.local.port, plane.local.address);
    const sent = from.sendMany(packets);
    expect(sent).toBe(total);
    await until(() => ids.length + plane.counters().controlQueueDrops >= sent, 10_000, "every REG handed up or counted");
    expect(plane.counters().controlQueueDrops).toBeGreaterThan(0);
    expect(ids.length + plane.counters().controlQueueDrops).toBe(sent);
    // What went up went in order.
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
  });
});
