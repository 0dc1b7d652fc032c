/** Shared helpers for the data-plane tests: loopback peers that record what they receive. */
import type { udp } from "bun";

import { afterEach, describe } from "bun:test";

import { loadNativeAddon } from "../../src/dataplane/native-addon.ts";
import { createNativePlane } from "../../src/dataplane/native.ts";
import { setSocketBuffers } from "../../src/dataplane/socket-buffers.ts";
import type { ControlHandler, DataPlane, DataPlaneOptions, InboundDatagram } from "../../src/dataplane/types.ts";

/**
 * `describe` when the addon loads, `describe.skip` (with the reason printed) when it does not.
 * In CI (`CI=true`) both planes are required, so a missing addon fails instead.
 */
export function nativeDescribe(): typeof describe | typeof describe.skip {
  const loaded = loadNativeAddon();
  if (loaded.ok) return describe;
  if (process.env.CI === "true") throw new Error(`CI requires the native addon: ${loaded.reason}`);
  console.warn(`native tests skipped: ${loaded.reason}`);
  return describe.skip;
}

export interface Received {
  data: Uint8Array;
  address: string;
  port: number;
}

export interface TestPeer {
  address: string;
  port: number;
  received: Received[];
  send(data: Uint8Array | string, port: number, address: string): void;
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): void;
}

/** Resolves once `check()` holds, polling every few ms; rejects after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(2);
  }
}

/**
 * Lets the event loop run `turns` times: callbacks already queued (a wake-up from a forwarding
 * thread, a pending setImmediate) have run when it resolves. For checking that nothing more
 * happens after a close, without a fixed wait.
 */
export async function eventLoopTurns(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export async function udpPeer(host: string): Promise<TestPeer> {
  const received: Received[] = [];
  const socket = await Bun.udpSocket({
    hostname: host,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        received.push({ data: new Uint8Array(data), address, port });
      },
      // ICMP port unreachable from a relay that just closed arrives as an error: not a test failure.
      error() {},
    },
  });
  // Bursts in tests must not be lost in the receiver's own socket buffer.
  setSocketBuffers(socket as unknown as udp.Socket<"buffer">, 8 << 20);
  return {
    address: host,
    port: socket.port,
    received,
    send(data, port, address) {
      socket.send(data, port, address);
    },
    async waitFor(count, timeoutMs = 5000) {
      await until(() => received.length >= count, timeoutMs, `${count} datagrams at ${host}:${socket.port}`);
      return received;
    },
    close() {
      socket.close();
    },
  };
}

export function planeOptions(overrides: Partial<DataPlaneOptions> = {}): DataPlaneOptions {
  return { host: "127.0.0.1", port: 0, maxDatagramSize: 1500, socketBufferBytes: 4 << 20, ...overrides };
}

/** Starts a plane whose control batches are recorded in `control`. */
export async function startRecording(plane: DataPlane, extra?: ControlHandler): Promise<InboundDatagram[]> {
  const control: InboundDatagram[] = [];
  await plane.start((batch) => {
    control.push(...batch);
    extra?.(batch);
  });
  return control;
}

/**
 * A native plane with GRO on, its control batches recorded, and a GSO sender on 127.0.0.2 that
 * sends coalesced buffers to it; both are closed through `cleanup`.
 */
export async function groPlane(cleanup: (() => unknown)[]) {
  const loaded = loadNativeAddon();
  if (!loaded.ok) throw new Error(loaded.reason);
  const plane = createNativePlane(planeOptions({ gro: true }));
  cleanup.push(() => plane.close());
  const control = await startRecording(plane);
  const sender = new loaded.addon.GsoSocket("127.0.0.2");
  cleanup.push(() => sender.close());
  return { plane, control, sender, from: { address: "127.0.0.2", port: sender.local().port } };
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Open fds, threads, and the addon's forwarding threads (named qr-fwd-N) of this process. */
export async function processResources(): Promise<{ fds: number; threads: number; forwarders: number }> {
  const { readdirSync, readFileSync } = await import("node:fs");
  const tasks = readdirSync("/proc/self/task");
  const names = tasks.map((t) => {
    try {
      return readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  });
  return {
    fds: readdirSync("/proc/self/fd").length,
    threads: tasks.length,
    forwarders: names.filter((n) => n.startsWith("qr-fwd-")).length,
  };
}

/**
 * For a suite: `cleanup` runs (newest first) after each test; `peer(host)` opens a loopback peer
 * that is closed then.
 */
export function closedAfterEach(): { cleanup: Array<() => unknown>; peer(host: string): Promise<TestPeer> } {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  return {
    cleanup,
    async peer(host: string): Promise<TestPeer> {
      const p = await udpPeer(host);
      cleanup.push(() => p.close());
      return p;
    },
  };
}
