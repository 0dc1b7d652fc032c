/**
 * The optional native addon (build/Release/quic_relay_native.node, built by `bun run build:native`):
 * its shapes, and the one loader. The `require` is static so `bun build --compile` embeds the file;
 * at run time the compiled binary writes it to $TMPDIR and loads it, and any failure there
 * (unwritable TMPDIR, missing build, other OS) becomes a reason string instead of a crash.
 * QUIC_RELAY_NO_NATIVE=1 turns it off.
 */
import { DATA_PLANE_COUNTERS, type RouteCounters } from "./types.ts";

export interface NativeRelayOptions {
  host: string;
  port: number;
  maxDatagramSize: number;
  socketBufferBytes: number;
  workers: number;
  gro: boolean;
}

/** Pending control datagrams: `meta` holds [offset, length, routeId, observed, port] per datagram. */
export interface NativeControlBatch {
  data: ArrayBuffer;
  meta: Float64Array;
  addresses: string[];
}

/** The addon's counters, by name: native/counters.h lists the same ones, in this order. */
export const NATIVE_COUNTERS = [
  ...DATA_PLANE_COUNTERS,
  /** Failed recvmmsg calls. */
  "receiveErrors",
  /** Coalesced (UDP_GRO) buffers received. */
  "groBuffers",
  /** Coalesced buffers forwarded with UDP_SEGMENT. */
  "gsoSends",
  /** Coalesced buffers split because the kernel refused UDP_SEGMENT. */
  "gsoFallbacks",
] as const;

export type NativeRelayCounters = Record<(typeof NATIVE_COUNTERS)[number], number>;

/**
 * The addon's NativeRelay. After close() every call is still defined: the ones that would change
 * something do nothing (takeControl null, sendBatch 0, setRoute and finishHandovers nothing,
 * deleteRoute false, drainActivity []), and the reads (local, info, routeCounters, counters) answer as at close.
 */
export interface NativeRelayHandle {
  local(): { address: string; port: number; family: "IPv4" | "IPv6" };
  info(): { workers: number; gro: boolean; gso: boolean };
  /** Null means nothing is pending; the addon then wakes JS again when datagrams arrive. */
  takeControl(): NativeControlBatch | null;
  sendBatch(datagrams: Uint8Array[], addresses: string[], ports: number[]): number;
  setRoute(
    id: number,
    fromAddress: string,
    fromPort: number,
    toAddress: string,
    toPort: number,
    budget: number,
    unansweredLimit: number,
    cidLength?: number,
    /** True: the route's hand-over lasts until finishHandovers(); otherwise it ends before setRoute returns. */
    deferHandover?: boolean,
  ): void;
  /** Ends the hand-over of every route set since the last call: what waits for them in the control queue is forwarded. */
  finishHandovers(): void;
  deleteRoute(id: number): boolean;
  drainActivity(): number[];
  routeCounters(id: number): RouteCounters | undefined;
  counters(): NativeRelayCounters;
  close(): void;
}

/** A socket that sends one buffer as several datagrams with UDP_SEGMENT (tests, benches). */
export interface GsoSocketHandle {
  local(): { address: string; port: number };
  send(bytes: Uint8Array, segmentSize: number, address: string, port: number): void;
  close(): void;
}

export interface NativeAddon {
  NativeRelay: new (options: NativeRelayOptions, wake: () => void) => NativeRelayHandle;
  GsoSocket: new (host: string) => GsoSocketHandle;
  abiVersion: number;
}

export type NativeAddonLoad = { ok: true; addon: NativeAddon } | { ok: false; reason: string };

/** Must equal kAbiVersion in native/binding.cc; a different addon is reported stale. */
const ABI_VERSION = 4;
let loaded: NativeAddonLoad | undefined;

/** Loads the addon once per process; later calls return the same answer. */
export function loadNativeAddon(): NativeAddonLoad {
  // The environment switch is read every time so tests can flip it.
  if (process.env.QUIC_RELAY_NO_NATIVE === "1") return { ok: false, reason: "disabled by QUIC_RELAY_NO_NATIVE" };
  loaded ??= load();
  return loaded;
}

function load(): NativeAddonLoad {
  if (process.platform !== "linux") return { ok: false, reason: `native plane needs Linux (this is ${process.platform})` };
  let addon: NativeAddon;
  try {
    addon = require("../../build/Release/quic_relay_native.node") as NativeAddon;
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    // Inside a compiled binary the addon lives in Bun's embedded filesystem and must be
    // written to $TMPDIR before it can be loaded.
    if (message.includes("$bunfs")) {
      return { ok: false, reason: `embedded addon could not be written to TMPDIR or loaded (${message})` };
    }
    return { ok: false, reason: `addon not loadable (${message}); run \`bun run build:native\`` };
  }
  if (addon?.abiVersion !== ABI_VERSION || typeof addon.NativeRelay !== "function") {
    return { ok: false, reason: `addon is stale (abi ${addon?.abiVersion}, want ${ABI_VERSION}); rebuild it` };
  }
  return { ok: true, addon };
}
