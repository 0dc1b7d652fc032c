/**
 * The native data plane: the addon owns the UDP socket(s) and forwards routed datagrams on
 * its own threads; this file adapts it to the DataPlane contract. Control datagrams arrive
 * under credit-based flow control: the addon wakes JS once, JS takes one batch per event-loop
 * turn (setImmediate), and the addon only wakes JS again after a take finds nothing pending.
 * A route set while a batch is handled stays in hand-over until the batch's sends have left
 * (see `pump`), so its source's datagrams leave in the order they came.
 */
import { availableParallelism } from "node:os";

import { loadNativeAddon, type NativeRelayCounters, type NativeRelayHandle } from "./native-addon.ts";
import {
  DATA_PLANE_COUNTERS,
  emptyCounters,
  unansweredLimitOf,
  type ControlHandler,
  type DataPlane,
  type DataPlaneCounters,
  type DataPlaneOptions,
  type InboundDatagram,
  type SocketBufferSizes,
  type BridgeOffload,
} from "./types.ts";
import { usableBufferBytes } from "./socket-buffers.ts";
import type { Endpoint } from "../net/address.ts";
import type { Direction } from "../sessions/types.ts";
import { cidLengthOf } from "./observe.ts";
import { DataPlaneStateError, DataPlaneUnavailableError } from "./errors.ts";
import { BatchSize } from "./batch-size.ts";

/** One forwarding thread per core, leaving one core for the JS control plane; at least 1, at most 8. */
export function defaultWorkerCount(cores: number = availableParallelism()): number {
  return Math.max(1, Math.min(8, cores - 1));
}

export interface NativePlane extends DataPlane {
  readonly kind: "native";
  readonly bridge: BridgeOffload;
  /** Counters including the native-only ones (GRO/GSO, receive errors). */
  nativeCounters(): NativeRelayCounters;
  /** Threads actually started and whether GRO/GSO are active. */
  nativeInfo(): { workers: number; gro: boolean; gso: boolean };
  socketBuffers(): SocketBufferSizes | undefined;
}

export function createNativePlane(opts: DataPlaneOptions): NativePlane {
  const loaded = loadNativeAddon();
  if (!loaded.ok) throw new DataPlaneUnavailableError("native", loaded.reason);
  const addon = loaded.addon;

  let relay: NativeRelayHandle | undefined;
  let onControl: ControlHandler | undefined;
  let local: Endpoint = { address: opts.host, port: opts.port };
  let closed = false;
  let sendData: Uint8Array[] = [];
  let sendAddresses: string[] = [];
  let sendPorts: number[] = [];
  let flushQueued = false;
  /**
   * Inside onControl or batchRouteChanges: route changes are queued in the addon and go in
   * together at the end (finishHandovers: one write lock for them all, the forwarding threads
   * waited for once), after the sends of the batch; new routes stay in hand-over until then.
   */
  let deferring = false;
  let handoversPending = false;
  /** Datagrams the addon refused outright (wrong types); network failures are counted natively. */
  let rejectedSends = 0;
  /**
   * Datagrams the control plane takes per event-loop turn: as many as take about 3 ms
   * (batch-size.ts), so that under a flood timers, the health endpoint and scrapes get their
   * turn. The rest waits in the addon's queue.
   */
  const batchSize = new BatchSize(opts.workClock);

  const flushSends = (): void => {
    flushQueued = false;
    if (sendData.length === 0 || relay === undefined) return;
    const data = sendData;
    const addresses = sendAddresses;
    const ports = sendPorts;
    sendData = [];
    sendAddresses = [];
    sendPorts = [];
    try {
      relay.sendBatch(data, addresses, ports);
    } catch {
      rejectedSends += data.length; // send() never throws, not even later from a microtask
    }
  };

  const pump = (): void => {
    if (closed || relay === undefined || onControl === undefined) return;
    const batch = relay.takeControl(batchSize.next);
    if (batch === null) return; // credit returned: the addon wakes us on the next datagram
    const { data, meta, addresses } = batch;
    const count = addresses.length;
    const datagrams: InboundDatagram[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = i * 5;
      const offset = meta[at];
      // A view into the batch's buffer, not a copy: a fresh ArrayBuffer per datagram made every
      // young-generation GC end by freeing tens of thousands of them (8-18 ms pauses at 50k REG/s).
      // The batch's buffer is the addon's fresh one, never reused; what the control plane keeps
      // beyond the call (held early data, held REGs, held bridge frames) it copies, so a kept
      // datagram does not pin the batch.
      datagrams[i] = {
        data: new Uint8Array(data, offset, meta[at + 1]),
        address: addresses[i],
        port: meta[at + 4],
        routeId: meta[at + 2],
        observed: meta[at + 3] === 1,
      };
    }
    batchSize.measure(count, () =>
      deferRouteChanges(() => {
        try {
          onControl!(datagrams);
        } catch {
          // Same rule as the TS plane: the control plane counts its own errors; forwarding goes on.
        }
      }));
    if (!closed) setImmediate(pump);
  };

  /** Runs `changes` with route changes deferred, then sends, then applies the changes together. */
  const deferRouteChanges = (changes: () => void): void => {
    if (deferring) return changes();
    deferring = true;
    try {
      changes();
    } finally {
      deferring = false;
      // The sends first (among them what the control plane forwarded for a new route's source),
      // then the route changes and what waited for the new routes, then the routes forward by themselves.
      flushSends();
      if (handoversPending && relay !== undefined && !closed) {
        handoversPending = false;
        relay.finishHandovers();
      }
    }
  };

  const requireStarted = (what: string): NativeRelayHandle => {
    if (relay === undefined) throw new DataPlaneStateError(`${what}: native plane not started`);
    return relay;
  };

  const bridge: BridgeOffload = {
    setMember(relay, tx, rx, replayWindowMs) {
      requireStarted("setMember").setBridgeMember(relay.address, relay.port, tx.id, tx.key, rx.map((k) => k.id), rx.map((k) => k.key), Math.max(1, Math.floor(replayWindowMs)));
    },
    forgetMember(relay) {
      requireStarted("forgetMember").forgetBridgeMember(relay.address, relay.port);
    },
    nextNonce(relay) {
      const [epoch, counter] = requireStarted("nextNonce").bridgeNonce(relay.address, relay.port);
      return { epoch: epoch!, counter: counter! };
    },
    admitNonce(relay, epoch, counter) {
      return requireStarted("admitNonce").bridgeAdmit(relay.address, relay.port, epoch, counter);
    },
    setOutRoute(id, from, relay, sessionId, observeBudget, cidLength, direction) {
      setBridgeRoute(id, "out", sessionId, from, relay, observeBudget, 0, cidLength, direction);
    },
    setInRoute(id, relay, sessionId, to, unansweredLimit, direction) {
      setBridgeRoute(id, "in", sessionId, to, relay, 0, unansweredLimit, 0, direction);
    },
    counters() {
      const c = relay === undefined ? undefined : relay.counters();
      return {
        framed: c?.bridgeFramed ?? 0,
        delivered: c?.bridgeDelivered ?? 0,
        oversize: c?.bridgeOversize ?? 0,
        unanswered: c?.bridgeUnanswered ?? 0,
        rejected: { "unknown-key": c?.bridgeUnknownKey ?? 0, "bad-tag": c?.bridgeBadTag ?? 0, stale: c?.bridgeStale ?? 0, replayed: c?.bridgeReplayed ?? 0 },
      };
    },
  };

  /** As setRoute: sends queued before the change leave first; inside a batch it waits for the batch's end. */
  const setBridgeRoute = (id: number, kind: "out" | "in", sessionId: string, localPeer: Endpoint, relayAt: Endpoint, observeBudget: number, unansweredLimit: number, cidLength: number, direction: Direction): void => {
    const r = requireStarted("setBridgeRoute");
    if (!deferring) flushSends();
    const budget = Math.max(0, Math.floor(observeBudget));
    r.setBridgeRoute(id, kind, sessionId, localPeer.address, localPeer.port, relayAt.address, relayAt.port, budget, unansweredLimitOf(unansweredLimit), cidLengthOf(cidLength), deferring, direction === "second_to_first");
    if (deferring) handoversPending = true;
  };

  return {
    kind: "native",
    bridge,
    get local() {
      return local;
    },
    async start(handler: ControlHandler): Promise<void> {
      if (relay !== undefined || closed) throw new DataPlaneStateError("native plane already started or closed");
      onControl = handler;
      relay = new addon.NativeRelay(
        {
          host: opts.host,
          port: opts.port,
          maxDatagramSize: opts.maxDatagramSize,
          socketBufferBytes: opts.socketBufferBytes,
          workers: opts.workers !== undefined && opts.workers > 0 ? opts.workers : defaultWorkerCount(),
          gro: opts.gro ?? true,
        },
        pump,
      );
      const bound = relay.local();
      local = { address: bound.address, port: bound.port };
    },
    send(data: Uint8Array, to: Endpoint): void {
      if (closed || relay === undefined) return;
      sendData.push(data);
      sendAddresses.push(to.address);
      sendPorts.push(to.port);
      if (!flushQueued) {
        flushQueued = true;
        queueMicrotask(flushSends);
      }
    },
    setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit = 0, cidLength = 0, direction: Direction = "first_to_second"): void {
      const r = requireStarted("setRoute");
      // Datagrams queued before the route (ACK, held early data) leave before any forwarded one:
      // a deferred route goes in after the batch's sends have left (deferRouteChanges).
      if (!deferring) flushSends();
      const budget = Math.max(0, Math.floor(observeBudget));
      const limit = unansweredLimitOf(unansweredLimit);
      r.setRoute(id, from.address, from.port, to.address, to.port, budget, limit, cidLengthOf(cidLength), deferring, direction === "second_to_first");
      if (deferring) handoversPending = true;
    },
    deleteRoute(id: number): void {
      const r = requireStarted("deleteRoute");
      if (!deferring) flushSends();
      r.deleteRoute(id, deferring);
      if (deferring) handoversPending = true;
    },
    batchRouteChanges(changes: () => void): void {
      if (relay === undefined || closed) return changes();
      deferRouteChanges(changes);
    },
    drainActivity(): number[] {
      return relay === undefined ? [] : relay.drainActivity();
    },
    routeCounters(id: number) {
      return relay === undefined ? undefined : relay.routeCounters(id);
    },
    counters(): DataPlaneCounters {
      const out = emptyCounters();
      if (relay === undefined) return out;
      const c = relay.counters();
      for (const name of DATA_PLANE_COUNTERS) out[name] = c[name];
      out.sendErrors += rejectedSends;
      return out;
    },
    nativeCounters(): NativeRelayCounters {
      const c = requireStarted("nativeCounters").counters();
      return { ...c, sendErrors: c.sendErrors + rejectedSends };
    },
    nativeInfo() {
      return requireStarted("nativeInfo").info();
    },
    socketBuffers(): SocketBufferSizes | undefined {
      const reported = relay?.socketBuffers();
      if (!reported) return undefined;
      return { asked: opts.socketBufferBytes, receive: usableBufferBytes(reported.receive), send: usableBufferBytes(reported.send) };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (relay === undefined) return;
      flushSends();
      relay.close();
    },
  };
}
