/**
 * An in-memory data plane: the DataPlane contract without sockets, for control-plane tests that
 * must be deterministic (a fake clock drives the relay; `receive` plays a datagram arriving).
 * Routes forward by themselves, REGs and relay-protocol lines go up, long headers and short
 * headers with a new DCID are copied up while a route's observe budget lasts; `sent` records
 * everything the relay put on the wire. Datagrams go up one at a time as they arrive, so nothing
 * waits for the control plane when a route changes and a hand-over has nothing to forward.
 * The real planes are tested against the same contract in test/dataplane.
 */
import { dcidWatchFor, takesCopy, type DcidWatch } from "../../src/dataplane/observe.ts";
import type { ControlHandler, DataPlane, DataPlaneCounters, InboundDatagram, RouteCounters } from "../../src/dataplane/types.ts";
import { emptyCounters } from "../../src/dataplane/types.ts";
import { type Endpoint, endpointKey } from "../../src/net/address.ts";
import { isReg } from "../../src/protocol/reg.ts";
import { mayBeRelayLine } from "../../src/protocol/replies.ts";
import type { Direction } from "../../src/sessions/types.ts";

interface Route {
  id: number;
  from: Endpoint;
  to: Endpoint;
  observe: number;
  dcid: DcidWatch | undefined;
  limit: number;
  unanswered: number;
  secondToFirst: boolean;
}

export interface Sent {
  to: Endpoint;
  data: Uint8Array;
  /** Forwarded by a route (true) or sent by the control plane (false). */
  routed: boolean;
}

export class MemoryPlane implements DataPlane {
  readonly kind = "ts" as const;
  readonly local: Endpoint = { address: "127.0.0.1", port: 4433 };
  readonly sent: Sent[] = [];
  private readonly routes = new Map<string, Route>();
  private readonly byId = new Map<number, Route>();
  private readonly counts: DataPlaneCounters = emptyCounters();
  private active = new Set<number>();
  private onControl: ControlHandler = () => {};

  async start(onControl: ControlHandler): Promise<void> {
    this.onControl = onControl;
  }

  /** A datagram arrives from `from`: forwarded by a route, or handed up in a batch of one. */
  receive(from: Endpoint, data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const route = this.routes.get(endpointKey(from.address, from.port));
    if (route) {
      const back = this.routes.get(endpointKey(route.to.address, route.to.port));
      if (back) back.unanswered = 0;
    }
    const up = (observed: boolean): InboundDatagram => ({ data: bytes, address: from.address, port: from.port, routeId: route ? route.id : -1, observed });
    if (!route || isReg(bytes) || mayBeRelayLine(bytes)) {
      this.counts.controlPackets++;
      return this.onControl([up(false)]);
    }
    if (route.limit > 0 && route.unanswered + bytes.length > route.limit) {
      this.counts.unansweredDrops++;
      return;
    }
    route.unanswered += bytes.length;
    this.active.add(route.id);
    this.counts.forwardedPackets++;
    this.counts.forwardedBytes += bytes.length;
    if (route.secondToFirst) {
      this.counts.secondToFirstPackets++;
      this.counts.secondToFirstBytes += bytes.length;
    }
    this.sent.push({ to: route.to, data: bytes, routed: true });
    if (takesCopy(route, bytes)) {
      this.counts.controlPackets++;
      this.onControl([up(true)]);
    }
  }

  /** What was sent to `to` since the last call, as text. */
  take(to?: Endpoint): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.sent.length; ) {
      const s = this.sent[i]!;
      if (!to || (s.to.address === to.address && s.to.port === to.port)) {
        out.push(new TextDecoder().decode(s.data));
        this.sent.splice(i, 1);
      } else i++;
    }
    return out;
  }

  send(data: Uint8Array, to: Endpoint): void {
    this.sent.push({ to, data, routed: false });
  }

  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit = 0, cidLength = 0, direction: Direction = "first_to_second"): void {
    const dcid = dcidWatchFor(cidLength);
    this.deleteRoute(id);
    const key = endpointKey(from.address, from.port);
    const old = this.routes.get(key);
    if (old) this.deleteRoute(old.id);
    const observe = Math.max(0, Math.floor(observeBudget));
    const route: Route = { id, from, to, observe, dcid, limit: unansweredLimit, unanswered: 0, secondToFirst: direction === "second_to_first" };
    this.routes.set(key, route);
    this.byId.set(id, route);
  }

  deleteRoute(id: number): void {
    const route = this.byId.get(id);
    if (!route) return;
    this.byId.delete(id);
    this.routes.delete(endpointKey(route.from.address, route.from.port));
  }

  batchRouteChanges(changes: () => void): void {
    changes();
  }

  drainActivity(): number[] {
    const ids = [...this.active];
    this.active = new Set();
    return ids;
  }

  routeCounters(id: number): RouteCounters | undefined {
    const r = this.byId.get(id);
    return r && { observeLeft: r.observe };
  }

  /** No kernel socket: no buffers to report. */
  socketBuffers(): undefined {
    return undefined;
  }

  counters(): DataPlaneCounters {
    return { ...this.counts };
  }

  async close(): Promise<void> {}
}
