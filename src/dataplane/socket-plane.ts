import type { Direction } from "../sessions/types.ts";
import type { udp } from "bun";
import { type GrantedBuffers, ignoreIcmpErrors, readSocketBuffers, setSocketBuffers } from "./socket-buffers.ts";
import type { ControlHandler, DataPlane, DataPlaneCounters, DataPlaneOptions, InboundDatagram, RouteCounters, SocketBufferSizes } from "./types.ts";
import { emptyCounters, unansweredLimitOf } from "./types.ts";
import { dcidWatchFor, takesCopy, type DcidWatch } from "./observe.ts";
import { isReg } from "../protocol/reg.ts";
import { mayBeRelayLine } from "../protocol/replies.ts";
import type { Endpoint } from "../net/address.ts";

interface Route {
  id: number;
  from: Endpoint;
  to: Endpoint;
  observe: number;
  /** The last short-header DCID forwarded, when setRoute gave a cidLength. */
  dcid: DcidWatch | undefined;
  packets: number;
  bytes: number;
  active: boolean;
  /** Bytes this route may forward to `to` unanswered; 0: no limit. */
  limit: number;
  /** Bytes forwarded since `to` last sent (counted only when `limit` > 0). */
  unanswered: number;
  /** The route back, from `to` to `from`, when there is one: a datagram from `from` answers it. */
  reverse: Route | undefined;
  /** Carries the second-to-first direction: what it forwards also counts in those counters. */
  secondToFirst: boolean;
}

/** Queued datagrams (sends or control) that trigger a flush without waiting for setImmediate. */
const FLUSH_AT = 256;

/** Datagrams waiting for the socket to drain before new ones are dropped. */
const MAX_PENDING_SENDS = 16_384;

/**
 * The pure-TypeScript data plane on Bun.udpSocket: routes are looked up per datagram without
 * allocating, sends are batched with sendMany once per event-loop turn, control datagrams are
 * handed up in one batch per turn.
 */
export class SocketPlane implements DataPlane {
  readonly kind = "ts" as const;
  local: Endpoint = { address: "", port: 0 };
  private socket: udp.Socket<"buffer"> | undefined;
  /** One route per address (the usual case) is stored directly; more become a port map. */
  private readonly routes = new Map<string, Route | Map<number, Route>>();
  /** Route ids are small dense integers (peer ids): an array costs far less than a Map per route. */
  private readonly routesById: (Route | undefined)[] = [];
  private readonly stats: DataPlaneCounters = emptyCounters();
  private pending: (Uint8Array | number | string)[] = [];
  private control: InboundDatagram[] = [];
  private active: number[] = [];
  private flushScheduled = false;
  private waitingForDrain = false;
  private closed = false;
  private onControl: ControlHandler = () => {};
  /** Read back once after the request: nothing changes them later. */
  private granted: GrantedBuffers | undefined;

  constructor(private readonly opts: DataPlaneOptions) {}

  async start(onControl: ControlHandler): Promise<void> {
    this.onControl = onControl;
    this.socket = await Bun.udpSocket({
      hostname: this.opts.host,
      port: this.opts.port,
      binaryType: "buffer",
      socket: {
        data: (_socket, data, port, address) => this.receive(data, port, address),
        // ICMP errors (a peer's port closed) surface here; without a handler Bun throws them.
        error: () => {
          this.stats.sendErrors++;
        },
        drain: () => {
          this.waitingForDrain = false;
          this.flush();
        },
      },
    });
    setSocketBuffers(this.socket, this.opts.socketBufferBytes);
    this.granted = readSocketBuffers(this.socket);
    ignoreIcmpErrors(this.socket);
    this.local = { address: this.socket.hostname, port: this.socket.port };
  }

  private receive(data: Buffer, port: number, address: string): void {
    if (this.closed) return;
    try {
      if (data.length > this.opts.maxDatagramSize) {
        this.stats.oversize++;
        return;
      }
      const route = this.routeFrom(address, port);
      const reverse = route?.reverse;
      if (reverse !== undefined && reverse.unanswered !== 0) reverse.unanswered = 0;
      if (route !== undefined && !isReg(data) && !mayBeRelayLine(data)) {
        if (this.forward(route, data) && takesCopy(route, data)) {
          this.control.push({ data, address, port, routeId: route.id, observed: true });
        }
      } else {
        this.control.push({ data, address, port, routeId: route ? route.id : -1, observed: false });
      }
      // While the socket stays readable Bun may not reach setImmediate for a long time (a GSO
      // burst, a flood): flush from here too, so queues stay bounded within one event-loop turn.
      if (this.pending.length >= FLUSH_AT * 3 || this.control.length >= FLUSH_AT) this.flush();
      else this.scheduleFlush();
    } catch {
      // A receive handler must never throw into the socket: count and go on.
      this.stats.sendErrors++;
    }
  }

  /** Queues `data` along `route` unless its unanswered limit would be passed; false when dropped. */
  private forward(route: Route, data: Uint8Array): boolean {
    if (route.limit > 0) {
      if (route.unanswered + data.length > route.limit) {
        this.stats.unansweredDrops++;
        return false;
      }
      route.unanswered += data.length;
    }
    this.pending.push(data, route.to.port, route.to.address);
    route.packets++;
    route.bytes += data.length;
    this.stats.forwardedPackets++;
    this.stats.forwardedBytes += data.length;
    if (route.secondToFirst) {
      this.stats.secondToFirstPackets++;
      this.stats.secondToFirstBytes += data.length;
    }
    if (!route.active) {
      route.active = true;
      this.active.push(route.id);
    }
    return true;
  }

  /**
   * The hand-over: datagrams from the new route's source that wait to go up (received before the
   * route, outside a control batch) are forwarded by the route instead, ahead of later ones. Inside
   * a batch nothing waits: the batch was taken whole and no datagram arrives while it is handled.
   */
  private handOver(route: Route): void {
    if (this.control.length === 0) return;
    const { address, port } = route.from;
    const kept: InboundDatagram[] = [];
    for (const d of this.control) {
      if (d.observed || d.port !== port || d.address !== address || isReg(d.data) || mayBeRelayLine(d.data)) kept.push(d);
      else if (this.forward(route, d.data) && takesCopy(route, d.data)) kept.push({ ...d, routeId: route.id, observed: true });
    }
    this.control = kept;
  }

  send(data: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    this.pending.push(data, to.port, to.address);
    this.scheduleFlush();
  }

  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit = 0, cidLength = 0, direction: Direction = "first_to_second"): void {
    const dcid = dcidWatchFor(cidLength);
    this.deleteRoute(id);
    const existing = this.routeFrom(from.address, from.port);
    if (existing) this.deleteRoute(existing.id);
    const route: Route = {
      id,
      from,
      to,
      observe: Math.max(0, Math.floor(observeBudget)),
      dcid,
      packets: 0,
      bytes: 0,
      active: false,
      limit: unansweredLimitOf(unansweredLimit),
      unanswered: 0,
      reverse: undefined,
      secondToFirst: direction === "second_to_first",
    };
    // Pair with the route from `to` back to `from`, if any (its old partner was the route just replaced).
    const back = this.routeFrom(to.address, to.port);
    if (back !== undefined && back.to.port === from.port && back.to.address === from.address) {
      route.reverse = back;
      back.reverse = route;
    }
    const entry = this.routes.get(from.address);
    if (entry === undefined) this.routes.set(from.address, route);
    else if (entry instanceof Map) entry.set(from.port, route);
    else this.routes.set(from.address, new Map([[entry.from.port, entry], [from.port, route]]));
    this.routesById[id] = route;
    this.handOver(route);
  }

  deleteRoute(id: number): void {
    const route = this.routesById[id];
    if (!route) return;
    this.routesById[id] = undefined;
    if (route.reverse !== undefined) route.reverse.reverse = undefined;
    const entry = this.routes.get(route.from.address);
    if (entry === route) this.routes.delete(route.from.address);
    else if (entry instanceof Map && entry.get(route.from.port) === route) {
      entry.delete(route.from.port);
      if (entry.size === 1) this.routes.set(route.from.address, entry.values().next().value!);
    }
  }

  /** Lookups by address then port: no string is built per datagram. */
  private routeFrom(address: string, port: number): Route | undefined {
    const entry = this.routes.get(address);
    if (entry === undefined) return undefined;
    if (entry instanceof Map) return entry.get(port);
    return entry.from.port === port ? entry : undefined;
  }

  /** Route changes take effect at once here: nothing to batch. */
  batchRouteChanges(changes: () => void): void {
    changes();
  }

  /** Routes deleted since they forwarded are left out, and so is a new route under such an id until it forwards. */
  drainActivity(): number[] {
    const ids = this.active;
    this.active = [];
    const live: number[] = [];
    for (const id of ids) {
      const route = this.routesById[id];
      if (!route?.active) continue;
      route.active = false;
      live.push(id);
    }
    return live;
  }

  routeCounters(id: number): RouteCounters | undefined {
    const route = this.routesById[id];
    return route && { packets: route.packets, bytes: route.bytes, observeLeft: Math.max(0, route.observe) };
  }

  counters(): DataPlaneCounters {
    return { ...this.stats };
  }

  socketBuffers(): SocketBufferSizes | undefined {
    return this.granted && { asked: this.opts.socketBufferBytes, ...this.granted };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.control = [];
    this.pending = [];
    this.socket?.close();
  }

  /** While the kernel buffer is full, keep at most MAX_PENDING_SENDS, dropping the oldest. */
  private boundPending(): void {
    const excess = this.pending.length / 3 - MAX_PENDING_SENDS;
    if (excess > 0) {
      this.pending = this.pending.slice(excess * 3);
      this.stats.sendErrors += excess;
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.closed) return;
    if (this.control.length > 0) {
      const batch = this.control;
      this.control = [];
      this.stats.controlPackets += batch.length;
      try {
        this.onControl(batch);
      } catch {
        // The control plane counts its own errors; a throw must not stop forwarding.
      }
    }
    if (this.waitingForDrain) return this.boundPending();
    if (this.pending.length === 0 || !this.socket) return;
    const packets = this.pending.length / 3;
    let sent = 0;
    try {
      sent = this.socket.sendMany(this.pending);
    } catch {
      this.stats.sendErrors += packets;
      this.pending = [];
      return;
    }
    if (sent >= packets) {
      this.pending = [];
      return;
    }
    // The kernel buffer is full: keep the rest for the drain event, bounded.
    this.pending = this.pending.slice(sent * 3);
    this.waitingForDrain = true;
    // Not every short send is followed by a drain event: retry soon regardless.
    setTimeout(() => {
      this.waitingForDrain = false;
      this.flush();
    }, 5);
    this.boundPending();
  }
}

export function createSocketPlane(opts: DataPlaneOptions): DataPlane {
  return new SocketPlane(opts);
}
