import type { Direction } from "../sessions/types.ts";
import type { udp } from "bun";
import { type GrantedBuffers, ignoreIcmpErrors, readSocketBuffers, setDontFragment, setSocketBuffers } from "./socket-buffers.ts";
import type { ControlHandler, DataPlane, DataPlaneCounters, DataPlaneOptions, InboundDatagram, RouteCounters, SocketBufferSizes } from "./types.ts";
import { emptyCounters, unansweredLimitOf } from "./types.ts";
import { cidLengthOf } from "./observe.ts";
import { RouteTable } from "./route-table.ts";
import { CONTROL_QUEUE_DATAGRAMS, ControlQueue } from "./control-queue.ts";
import { BatchSize, MAX_BATCH_DATAGRAMS } from "./batch-size.ts";
import { isReg } from "../protocol/reg.ts";
import { mayBeRelayLine } from "../protocol/replies.ts";
import type { Endpoint } from "../net/address.ts";

/** Queued sends that trigger a flush without waiting for setImmediate. */
const FLUSH_AT = 256;

/**
 * Work time the receive handler may spend handing batches up inline (a nearly full queue) between
 * two event-loop turns, in milliseconds. Bun reads a readable socket until it would block, so
 * under a flood that outpaces the control plane inline batches would hold the loop as long as the
 * flood lasts; past this budget the queue drops what does not fit, counted, the reading catches up
 * and the loop turns.
 */
const INLINE_BUDGET_MS = 5;

/** Datagrams waiting for the socket to drain before new ones are dropped. */
const MAX_PENDING_SENDS = 16_384;

/**
 * The pure-TypeScript data plane on Bun.udpSocket: routes are looked up per datagram without
 * allocating, sends are batched with sendMany once per event-loop turn, control datagrams wait in
 * a bounded queue (control-queue.ts) and are handed up a batch per turn.
 */
export class SocketPlane implements DataPlane {
  readonly kind = "ts" as const;
  local: Endpoint = { address: "", port: 0 };
  private socket: udp.Socket<"buffer"> | undefined;
  private readonly stats: DataPlaneCounters = emptyCounters();
  /** Routes as slots in columns (about 104 bytes a route), found by source without building a string. */
  private readonly routes = new RouteTable(this.stats);
  private pending: (Uint8Array | number | string)[] = [];
  private readonly control = new ControlQueue((d) => !d.observed && !isReg(d.data) && !mayBeRelayLine(d.data));
  /** Datagrams per control batch: as many as take about 3 ms (batch-size.ts), as on the native plane. */
  private readonly batchSize: BatchSize;
  /** Work time spent on inline batches since the last turn (see INLINE_BUDGET_MS). */
  private inlineMs = 0;
  private readonly workClock: () => number;
  private flushScheduled = false;
  private waitingForDrain = false;
  private closed = false;
  private onControl: ControlHandler = () => {};
  /** Read back once after the request: nothing changes them later. */
  private granted: GrantedBuffers | undefined;

  constructor(private readonly opts: DataPlaneOptions) {
    this.workClock = opts.workClock ?? (() => performance.now());
    this.batchSize = new BatchSize(this.workClock);
  }

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
          this.flushSends();
        },
      },
    });
    setSocketBuffers(this.socket, this.opts.socketBufferBytes);
    this.granted = readSocketBuffers(this.socket);
    ignoreIcmpErrors(this.socket);
    setDontFragment(this.socket);
    this.local = { address: this.socket.hostname, port: this.socket.port };
  }

  private receive(data: Buffer, port: number, address: string): void {
    if (this.closed) return;
    try {
      if (data.length > this.opts.maxDatagramSize) {
        this.stats.oversize++;
        return;
      }
      // Before the datagram is looked at: the batch may set the route it takes.
      if (this.control.length >= CONTROL_QUEUE_DATAGRAMS - MAX_BATCH_DATAGRAMS && this.inlineMs < INLINE_BUDGET_MS) {
        const start = this.workClock();
        this.flush();
        this.inlineMs += this.workClock() - start;
      }
      const route = this.routes.arrive(address, port);
      const reg = isReg(data);
      if (route >= 0 && !reg && !mayBeRelayLine(data)) {
        if (this.routes.carry(route, data, this.pending)) {
          this.toControl({ data, address, port, routeId: this.routes.idOf(route), observed: true }, false);
        }
      } else {
        this.toControl({ data, address, port, routeId: route >= 0 ? this.routes.idOf(route) : -1, observed: false }, reg);
      }
      // While the socket stays readable Bun may not reach setImmediate for a long time (a GSO
      // burst): send from here too, so the send queue stays bounded within one event-loop turn.
      if (this.pending.length >= FLUSH_AT * 3) this.flushSends();
      this.scheduleFlush();
    } catch {
      // A receive handler must never throw into the socket: count and go on.
      this.stats.sendErrors++;
    }
  }

  /**
   * Queues `d` for the control plane; a full queue drops it, counted (a lost observed copy ends
   * observation). The queue is seldom full: once it is nearly so, receive() has the control
   * plane take a batch at once, inside the receive handler, so that when a burst comes faster
   * than it can be handled it is the kernel's buffer that overflows, as without a queue, and not
   * the queue after each datagram was received at a cost. Only for INLINE_BUDGET_MS a turn: a
   * flood that lasts is dropped here, so that the event loop goes on turning.
   */
  private toControl(d: InboundDatagram, reg: boolean): void {
    if (!this.control.push(d, reg)) this.stats.controlQueueDrops++;
  }

  /**
   * The hand-over: datagrams from the new route's source that still wait to go up (received
   * before the route) are forwarded by the route instead, ahead of later ones.
   */
  private handOver(route: number): void {
    if (this.control.length === 0) return;
    this.control.takeOver(this.routes.fromAddress(route), this.routes.fromPort(route), (d) =>
      this.routes.carry(route, d.data, this.pending) ? { ...d, routeId: this.routes.idOf(route), observed: true } : undefined);
  }

  send(data: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    this.pending.push(data, to.port, to.address);
    this.scheduleFlush();
  }

  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit = 0, cidLength = 0, direction: Direction = "first_to_second"): void {
    const cid = cidLengthOf(cidLength);
    this.deleteRoute(id);
    const existing = this.routes.find(from.address, from.port);
    if (existing >= 0) this.routes.remove(existing);
    const route = this.routes.add(id, from, to, observeBudget, unansweredLimitOf(unansweredLimit), cid, direction === "second_to_first");
    this.handOver(route);
  }

  deleteRoute(id: number): void {
    const route = this.routes.slotOf(id);
    if (route >= 0) this.routes.remove(route);
  }

  /** Route changes take effect at once here: nothing to batch. */
  batchRouteChanges(changes: () => void): void {
    changes();
  }

  drainActivity(): number[] {
    return this.routes.drainActivity();
  }

  routeCounters(id: number): RouteCounters | undefined {
    const route = this.routes.slotOf(id);
    return route >= 0 ? this.routes.counters(route) : undefined;
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
    this.control.clear();
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
      this.inlineMs = 0;
      this.flush();
    });
  }

  /** One turn's work: a batch to the control plane, then the sends; the next batch in the next turn. */
  private flush(): void {
    if (this.closed) return;
    if (this.control.length > 0) {
      const batch = this.control.take(this.batchSize.next);
      this.stats.controlPackets += batch.length;
      this.batchSize.measure(batch.length, () => {
        try {
          this.onControl(batch);
        } catch {
          // The control plane counts its own errors; a throw must not stop forwarding.
        }
      });
      if (this.control.length > 0) this.scheduleFlush();
    }
    this.flushSends();
  }

  private flushSends(): void {
    if (this.closed) return;
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
      this.flushSends();
    }, 5);
    this.boundPending();
  }
}

export function createSocketPlane(opts: DataPlaneOptions): DataPlane {
  return new SocketPlane(opts);
}
