/**
 * The seam between the control plane (REG handling, sessions, rebind rules — TypeScript only)
 * and a data plane that owns the relay's UDP socket(s) and forwards known routes by itself.
 *
 * Both implementations (`ts`, `native`) follow the same contract:
 * - A datagram whose source address has a route, that does not start with `REG:` and that may not
 *   be a relay-protocol line (`mayBeRelayLine` in src/protocol/replies.ts: 4..32 bytes ending in
 *   `\n`, first byte `A`, `E` or `R`), is sent unchanged to the route's destination from the relay
 *   socket, without entering the control plane.
 * - Such a datagram is additionally copied up to the control plane (`observed: true`) while the
 *   route's observe budget lasts and the datagram is a QUIC long header (`isLongHeader`, src/protocol/quic.ts),
 *   or a short header whose destination connection ID changed: with a route `cidLength` L > 0, a
 *   short header (first bit clear) of at least 1 + L bytes carries the DCID in bytes [1, 1 + L); the
 *   route keeps the last one it forwarded (none after setRoute) and a different one (or the first)
 *   is copied. A coalesced (GRO) buffer is watched per segment. The budget decrements per copy and
 *   `routeCounters().observeLeft` reports what is left: while it is above 0 (and no control datagram
 *   was dropped, `controlQueueDrops`) the control plane has seen every DCID change. This is how the
 *   control plane learns connection IDs.
 * - Everything else (no route, or a REG or possible relay line from a routed source) goes up to the
 *   control plane with `routeId -1` or the matching route id (`observed: false`), in arrival order,
 *   in batches. The control plane drops exact relay lines and forwards the rest itself.
 * - A route with an `unansweredLimit` > 0 forwards at most that many bytes to its destination since
 *   the destination last sent anything to the plane. "Anything" is every datagram from that exact
 *   address and port that reaches the route lookup with a route back to the route's source (the
 *   paired route the session table installs): forwarded, handed up (REG, relay line) or observed.
 *   A datagram that would pass the limit is dropped and counted (`unansweredDrops`); a coalesced
 *   (GRO) buffer forwarded whole is charged, and dropped, whole. A replaced route starts at 0; a
 *   limit of 0 means no limit. A one-way route (its destination has no route back) is never
 *   answered, so its limit is a plain cap.
 * - A datagram longer than `maxDatagramSize` is dropped and counted (`oversize`), never delivered;
 *   it does not count as an answer either.
 * - `send()` queues a datagram to any address; queued datagrams leave in the order they were queued.
 * - Route changes and sends keep their order: what the control plane sent before a setRoute or
 *   deleteRoute leaves before the change takes effect, and the change takes effect before
 *   anything the control plane sends after it.
 * - A source keeps its order across setRoute (the hand-over): its datagrams that reached the plane
 *   before the route but are not yet with the control plane are forwarded by the new route (as it
 *   would forward them: limit, copies) instead of going up, ahead of everything later. The native
 *   plane, whose threads run beside the control plane, also holds back what a route set during a
 *   control batch would forward until the batch is handled and its sends have left; the control
 *   plane forwards the batch's own datagrams from that source itself, so they come first.
 */

import type { Endpoint } from "../net/address.ts";
import type { Direction } from "../sessions/types.ts";

export type DataPlaneKind = "ts" | "native";

export interface InboundDatagram {
  /**
   * The datagram's bytes: on the native plane a view into the buffer of its whole batch. Valid
   * after the handler returns, but whoever keeps it longer copies it (a view pins the batch).
   */
  data: Uint8Array;
  address: string;
  port: number;
  /** Route the source matched, or -1. */
  routeId: number;
  /** True when the data plane already forwarded this datagram and hands up a copy for observation. */
  observed: boolean;
}

/** What every data plane counts, listed once; the native addon's list (NATIVE_COUNTERS) starts with these. */
export const DATA_PLANE_COUNTERS = [
  /** Datagrams forwarded by routes without entering the control plane. */
  "forwardedPackets",
  "forwardedBytes",
  /** Datagrams handed up to the control plane. */
  "controlPackets",
  /** Datagrams dropped for exceeding maxDatagramSize. */
  "oversize",
  /** Datagrams dropped because the control queue was full (flow control). */
  "controlQueueDrops",
  /** Send failures (e.g. ENOBUFS, unreachable). */
  "sendErrors",
  /** Datagrams dropped because their route's unanswered limit would have been passed. */
  "unansweredDrops",
  /**
   * The part of forwardedPackets / forwardedBytes carried by routes set with the direction
   * `second_to_first` (the rest is first_to_second): per-direction totals without a walk of the routes.
   */
  "secondToFirstPackets",
  "secondToFirstBytes",
] as const;

export type DataPlaneCounters = Record<(typeof DATA_PLANE_COUNTERS)[number], number>;

/**
 * The largest observe budget a route keeps, on both planes (16 bits a route; the relay gives 64):
 * larger budgets are cut to it.
 */
export const MAX_OBSERVE_BUDGET = 0x7fff;

/**
 * What a route keeps that the control plane reads. What routes forward is counted per plane and
 * per direction (DATA_PLANE_COUNTERS), not per route: a million sessions would pay for counts
 * nothing reads (16 bytes a route on either plane).
 */
export interface RouteCounters {
  /** Copies the route may still hand up for observation. */
  observeLeft: number;
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
  /** Milliseconds of work, to size control batches (BatchSize; default performance.now). */
  workClock?: () => number;
}

export type ControlHandler = (batch: InboundDatagram[]) => void;

/**
 * The socket buffers the relay asked for (`socketBufferBytes`) and what the kernel granted, read
 * back with getsockopt after the request. All three in the units of `--socket-buffer-bytes`: on
 * Linux the granted figures are half of what getsockopt reports, since the kernel doubles a
 * request for its bookkeeping (src/dataplane/socket-buffers.ts, usableBufferBytes). The kernel
 * silently grants less than asked without CAP_NET_ADMIN when net.core.rmem_max / wmem_max is lower.
 */
export interface SocketBufferSizes {
  asked: number;
  receive: number;
  send: number;
}

/** A 16-byte bridge frame key and the key id frames made under it carry. */
export interface BridgeKeyMaterial {
  id: number;
  key: Uint8Array;
}

/** What a data plane that carries bridged sessions counted: frames made and delivered, refused by reason. */
export interface BridgeOffloadCounters {
  framed: number;
  delivered: number;
  oversize: number;
  /** Payloads not delivered over the local peer's unanswered bound. */
  unanswered: number;
  rejected: { "unknown-key": number; "bad-tag": number; stale: number; replayed: number };
}

/**
 * A data plane that carries sessions bridged to other relays itself (the native plane): its
 * forwarding threads wrap a local peer's datagrams into bridge frames and verify and unwrap the
 * frames of the other relay, without the control plane (frame format: src/fleet/bridge-codec.ts).
 * It keeps one nonce sequence and one replay window per relay, which the control plane's own
 * frames (pings, data before a route) draw from too, so both sides never reuse or re-accept a nonce.
 * A frame it cannot place (no inbound route for its session from that relay, another frame type)
 * goes up to the control plane untouched, as do a local peer's datagrams while the relay has no keys.
 */
export interface BridgeOffload {
  /** The keys of frames to (`tx`) and from (`rx`, by key id) the relay sending from and receiving at `relay`. */
  setMember(relay: Endpoint, tx: BridgeKeyMaterial, rx: readonly BridgeKeyMaterial[], replayWindowMs: number): void;
  /** The relay left: its keys, window and sequence go; a later sequence towards it starts at a later epoch. */
  forgetMember(relay: Endpoint): void;
  /** The next nonce towards `relay`, from the sequence the plane's own frames use. */
  nextNonce(relay: Endpoint): { epoch: number; counter: number };
  /** Records an authentic frame's nonce from `relay`: false when it was seen before (or is too far behind). */
  admitNonce(relay: Endpoint, epoch: number, counter: number): boolean;
  /** Datagrams from the local peer `from` go to `relay`, wrapped for `sessionId` (route `id`, deleted with deleteRoute). */
  setOutRoute(id: number, from: Endpoint, relay: Endpoint, sessionId: string, observeBudget: number, cidLength: number, direction: Direction): void;
  /** `relay`'s frames for `sessionId` are delivered to the local peer `to`, at most `unansweredLimit` bytes (0: no bound) since `to` last sent. */
  setInRoute(id: number, relay: Endpoint, sessionId: string, to: Endpoint, unansweredLimit: number, direction: Direction): void;
  counters(): BridgeOffloadCounters;
}

export interface DataPlane {
  readonly kind: DataPlaneKind;
  /** Present when the plane carries bridged sessions itself. */
  readonly bridge?: BridgeOffload;
  /** Bound local address (after start). */
  readonly local: Endpoint;
  /** Bind and start receiving. `onControl` receives batches of datagrams for the control plane. */
  start(onControl: ControlHandler): Promise<void>;
  /** Queue a datagram for sending from the relay socket. Never throws on network errors. */
  send(data: Uint8Array, to: Endpoint): void;
  /**
   * Forward datagrams from `from` to `to`. Replaces any route with the same id or the same source.
   * `unansweredLimit` > 0 bounds the bytes forwarded to `to` since `to` last sent; `cidLength`
   * (0..20, 0: unknown) is the DCID length of `from`'s short headers, watched for changes (see above);
   * `direction` (default first_to_second) says which per-direction counters its datagrams go to.
   */
  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit?: number, cidLength?: number, direction?: Direction): void;
  deleteRoute(id: number): void;
  /**
   * Runs `changes` (setRoute / deleteRoute calls, sends) as one batch: the native plane applies
   * their route changes together when `changes` returns, after its sends, so many changes (an
   * expiry pass) cost one wait for the forwarding threads, not one each; the TS plane just runs it.
   * Control batches are handled this way already.
   */
  batchRouteChanges(changes: () => void): void;
  /** Ids of routes that forwarded at least one datagram since the previous call. */
  drainActivity(): number[];
  /** Per-route totals and the observe budget left, or undefined for an unknown id. */
  routeCounters(id: number): RouteCounters | undefined;
  counters(): DataPlaneCounters;
  /**
   * Socket buffers asked for and granted, once started (the smallest over the native plane's
   * sockets); undefined when they cannot be read. Optional: planes without sockets have none.
   */
  socketBuffers(): SocketBufferSizes | undefined;
  /** Idempotent. After it resolves no control batch is delivered and the socket is closed. */
  close(): Promise<void>;
}

/** A setRoute `unansweredLimit` as both planes apply it: whole bytes; 0 (no limit) unless finite and >= 1. */
export function unansweredLimitOf(value: number): number {
  return Number.isFinite(value) && value >= 1 ? Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER) : 0;
}

export function emptyCounters(): DataPlaneCounters {
  return Object.fromEntries(DATA_PLANE_COUNTERS.map((name) => [name, 0])) as DataPlaneCounters;
}
