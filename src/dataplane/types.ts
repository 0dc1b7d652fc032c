/**
 * The seam between the control plane (REG handling, sessions, rebind rules — TypeScript only)
 * and a data plane that owns the relay's UDP socket(s) and forwards known routes by itself.
 *
 * Both implementations (`ts`, `native`) follow the same contract:
 * - A datagram whose source address has a route, and that does not start with `REG:`, is sent
 *   unchanged to the route's destination from the relay socket, without entering the control plane.
 * - Such a datagram is additionally copied up to the control plane (`observed: true`) while the
 *   route's observe budget lasts and the datagram looks like a QUIC long header (first byte & 0x80);
 *   the budget decrements per copy. This is how the control plane learns connection IDs.
 * - Everything else (no route, or starts with `REG:`) goes up to the control plane with `routeId -1`
 *   or the matching route id, in arrival order, in batches.
 * - A datagram longer than `maxDatagramSize` is dropped and counted (`oversize`), never delivered.
 * - `send()` queues a datagram to any address; queued datagrams leave in the order they were queued.
 */

import type { Endpoint } from "../net/address.ts";

export type DataPlaneKind = "ts" | "native";

export interface InboundDatagram {
  data: Uint8Array;
  address: string;
  port: number;
  /** Route the source matched, or -1. */
  routeId: number;
  /** True when the data plane already forwarded this datagram and hands up a copy for observation. */
  observed: boolean;
}

export interface DataPlaneCounters {
  /** Datagrams forwarded by routes without entering the control plane. */
  forwardedPackets: number;
  forwardedBytes: number;
  /** Datagrams handed up to the control plane. */
  controlPackets: number;
  /** Datagrams dropped for exceeding maxDatagramSize. */
  oversize: number;
  /** Datagrams dropped because the control queue was full (flow control). */
  controlQueueDrops: number;
  /** Send failures (e.g. ENOBUFS, unreachable). */
  sendErrors: number;
}

export interface DataPlaneOptions {
  host: string;
  port: number;
  maxDatagramSize: number;
  /** Requested SO_RCVBUF / SO_SNDBUF in bytes (best effort). */
  socketBufferBytes: number;
  /** Native plane only: forwarding threads (each with its own SO_REUSEPORT socket). */
  workers?: number;
  /** Native plane only: enable UDP_GRO/UDP_SEGMENT. */
  gro?: boolean;
}

export type ControlHandler = (batch: InboundDatagram[]) => void;

export interface DataPlane {
  readonly kind: DataPlaneKind;
  /** Bound local address (after start). */
  readonly local: Endpoint;
  /** Bind and start receiving. `onControl` receives batches of datagrams for the control plane. */
  start(onControl: ControlHandler): Promise<void>;
  /** Queue a datagram for sending from the relay socket. Never throws on network errors. */
  send(data: Uint8Array, to: Endpoint): void;
  /** Forward datagrams from `from` to `to`. Replaces any route with the same id or the same source. */
  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number): void;
  deleteRoute(id: number): void;
  /** Ids of routes that forwarded at least one datagram since the previous call. */
  drainActivity(): number[];
  /** Per-route totals, or undefined for an unknown id. */
  routeCounters(id: number): { packets: number; bytes: number } | undefined;
  counters(): DataPlaneCounters;
  /** Idempotent. After it resolves no control batch is delivered and the socket is closed. */
  close(): Promise<void>;
}

export function emptyCounters(): DataPlaneCounters {
  return {
    forwardedPackets: 0,
    forwardedBytes: 0,
    controlPackets: 0,
    oversize: 0,
    controlQueueDrops: 0,
    sendErrors: 0,
  };
}

