/**
 * The optional native addon (build/Release/quic_relay_native.node, built by `bun run build:native`):
 * its shapes, and the one loader. The `require` is static so `bun build --compile` embeds the file;
 * at run time the compiled binary writes it to $TMPDIR and loads it, and any failure there
 * (unwritable or noexec TMPDIR, missing build, other OS) becomes a reason string instead of a
 * crash, with the fix that fits how the relay runs. QUIC_RELAY_NO_NATIVE=1 turns it off.
 */
import { tmpdir } from "node:os";
import { DATA_PLANE_COUNTERS, type RouteCounters } from "./types.ts";

/** Set to 1, the addon is not loaded: the TS plane runs, by the operator's choice. */
export const NO_NATIVE_ENV = "QUIC_RELAY_NO_NATIVE";

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
  /** Peer datagrams sent to another relay in a bridge frame, by a bridge route. */
  "bridgeFramed",
  /** Bridge frames whose payload a bridge route delivered to a local peer. */
  "bridgeDelivered",
  /** Peer datagrams too large to wrap in a bridge frame. */
  "bridgeOversize",
  /** Bridge payloads not delivered: the local peer is unproven and left too many bytes unanswered (not in unansweredDrops). */
  "bridgeUnanswered",
  /** Bridge frames refused by a forwarding thread: no key with their key id, the tag, sent-at or epoch out of the window, a nonce seen before. */
  "bridgeUnknownKey",
  "bridgeBadTag",
  "bridgeStale",
  "bridgeReplayed",
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
  /** The oldest pending datagrams, at most `max` (default all). Null means nothing is pending; the addon then wakes JS again when datagrams arrive. */
  takeControl(max?: number): NativeControlBatch | null;
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
    /** True: the route is queued and goes in at finishHandovers() (in hand-over until then); otherwise it is set and its hand-over ends before setRoute returns. */
    deferHandover?: boolean,
    /** True: what the route forwards also counts in the secondToFirst counters. */
    secondToFirst?: boolean,
  ): void;
  /** Applies the queued route changes, then ends the hand-over of every route set since the last call: what waits for them in the control queue is forwarded. */
  finishHandovers(): void;
  /** `deferred`: queued for the next finishHandovers() (then false is returned). */
  deleteRoute(id: number, deferred?: boolean): boolean;
  /** A route across the bridge (see BridgeOffload in src/dataplane/types.ts); deleted with deleteRoute. */
  setBridgeRoute(
    id: number,
    kind: "out" | "in",
    sessionId: string,
    localAddress: string,
    localPort: number,
    relayAddress: string,
    relayPort: number,
    budget: number,
    unansweredLimit: number,
    cidLength: number,
    deferHandover: boolean,
    secondToFirst: boolean,
  ): void;
  setBridgeMember(relayAddress: string, relayPort: number, txKeyId: number, txKey: Uint8Array, rxKeyIds: number[], rxKeys: Uint8Array[], replayWindowMs: number): void;
  forgetBridgeMember(relayAddress: string, relayPort: number): void;
  /** [epoch, counter] */
  bridgeNonce(relayAddress: string, relayPort: number): Float64Array;
  bridgeAdmit(relayAddress: string, relayPort: number, epoch: number, counter: number): boolean;
  drainActivity(): number[];
  routeCounters(id: number): RouteCounters | undefined;
  counters(): NativeRelayCounters;
  /** The smallest SO_RCVBUF / SO_SNDBUF over the addon's sockets, as getsockopt reports them. */
  socketBuffers(): { receive: number; send: number } | undefined;
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

/** `disabled`: turned off with QUIC_RELAY_NO_NATIVE, not a failure. */
export type NativeAddonLoad = { ok: true; addon: NativeAddon } | { ok: false; reason: string; disabled?: boolean };

/** Must equal kAbiVersion in native/binding.cc; a different addon is reported stale. */
const ABI_VERSION = 7;
let loaded: NativeAddonLoad | undefined;

/** Loads the addon once per process; later calls return the same answer. */
export function loadNativeAddon(): NativeAddonLoad {
  // The environment switch is read every time so tests can flip it.
  if (process.env[NO_NATIVE_ENV] === "1") return { ok: false, reason: `disabled by ${NO_NATIVE_ENV}`, disabled: true };
  loaded ??= load();
  return loaded;
}

function load(): NativeAddonLoad {
  if (process.platform !== "linux") return { ok: false, reason: `native plane needs Linux (this is ${process.platform})` };
  const how = { compiled: runningCompiled(), tmpdir: tmpdir() };
  let addon: NativeAddon;
  try {
    addon = require("../../build/Release/quic_relay_native.node") as NativeAddon;
  } catch (error) {
    return { ok: false, reason: loadFailureReason((error instanceof Error ? error.message : String(error)).split("\n")[0]!, how) };
  }
  if (addon?.abiVersion !== ABI_VERSION || typeof addon.NativeRelay !== "function") {
    const stale = `addon is stale (abi ${addon?.abiVersion}, want ${ABI_VERSION})`;
    return { ok: false, reason: how.compiled ? `the binary's ${stale}; rebuild the binary after \`bun run build:native\`` : `${stale}; run \`bun run build:native\`` };
  }
  return { ok: true, addon };
}

/** True inside a `bun build --compile` executable, whose modules live in Bun's embedded /$bunfs/ filesystem. */
export function runningCompiled(): boolean {
  return import.meta.path.startsWith("/$bunfs/") || Bun.main.startsWith("/$bunfs/");
}

/**
 * Why the addon did not load, with advice for how the relay runs: from a checkout the addon is
 * built with `bun run build:native`; a compiled binary carries it (if it was built first) and must
 * unpack it to TMPDIR, which has to be writable and allow executables (no `noexec` mount).
 */
export function loadFailureReason(message: string, how: { compiled: boolean; tmpdir: string }): string {
  if (!how.compiled) return `addon not loadable (${message}); run \`bun run build:native\``;
  if (/Cannot (require|find) module/.test(message)) {
    return `this binary was built without the native addon (${message}); build it with \`bun run build:native\` before \`bun run build\``;
  }
  return (
    `the binary's embedded addon could not be unpacked to TMPDIR (${how.tmpdir}) and loaded (${message}); ` +
    "set TMPDIR to a writable directory that allows executables (not mounted noexec)"
  );
}
