import type { ControlHandler, DataPlane, DataPlaneCounters, InboundDatagram } from "../dataplane/types.ts";
import type { Endpoint } from "../net/address.ts";
import { type BridgeCodec, BridgeError, bridgeOverhead, isBridgeDatagram } from "./bridge-codec.ts";

/** Addresses of virtual endpoints: a remote partner appears in the session table as `fleet:<relay>` port n. */
export const VIRTUAL_ADDRESS_PREFIX = "fleet:";

export function isVirtual(e: Endpoint): boolean {
  return e.address.startsWith(VIRTUAL_ADDRESS_PREFIX);
}

/** One session's remote side: the peer that registered on another relay. */
export interface RemoteLink {
  readonly sessionId: string;
  /** The other relay's id (its advertised ip:port); changes when the remote peer moves to another relay. */
  relay: string;
  /** Where bridge datagrams for this session go. */
  target: Endpoint;
  /** The remote peer as the session table sees it. */
  readonly virtual: Endpoint;
  /** Id of the virtual peer's route, once the table routed it. */
  peerId: number;
  /** The local peer that datagrams from the remote side are delivered to. */
  deliverTo: Endpoint | undefined;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  active: boolean;
}

export interface BridgeCounters {
  /** Bridge datagrams sent to other relays / delivered from them. */
  sent: number;
  delivered: number;
  /** Rejected bridge datagrams by reason (forged, stale, malformed). */
  rejected: Partial<Record<BridgeError, number>>;
  /** Authentic bridge datagrams for a session with no local peer to deliver to. */
  noSession: number;
  /** Peer datagrams too large to wrap within the datagram size limit. */
  oversize: number;
}

/** Called with an authentic bridge datagram for a session this plane has no link for. */
export type UnlinkedBridge = (sessionId: string, from: Endpoint, payload: Uint8Array) => void;

/**
 * A data plane around a data plane. The session table pairs a local peer with a virtual endpoint
 * standing for the remote peer; this wrapper keeps routes to virtual endpoints out of the inner
 * plane (so the local peer's datagrams take the control path), wraps what the table sends to a
 * virtual endpoint into a bridge datagram for the remote relay, and unwraps bridge datagrams
 * arriving from other relays before the table sees them. The inner plane is not changed.
 */
export class FleetPlane implements DataPlane {
  readonly bridge: BridgeCounters = { sent: 0, delivered: 0, rejected: {}, noSession: 0, oversize: 0 };
  private readonly byPort = new Map<number, RemoteLink>();
  private readonly bySession = new Map<string, RemoteLink>();
  private readonly byPeerId = new Map<number, RemoteLink>();
  private nextPort = 1;
  private active: number[] = [];
  onUnlinked: UnlinkedBridge = () => {};
  /** An authentic bridge datagram for a linked session came from another relay than the link's. */
  onMoved: (link: RemoteLink, from: Endpoint) => void = () => {};
  /** After each control batch was handled, with the REG senders in it. */
  afterBatch: (batch: InboundDatagram[]) => void = () => {};

  constructor(
    readonly inner: DataPlane,
    private readonly codec: BridgeCodec,
    private readonly maxDatagramSize: number,
  ) {}

  get kind() {
    return this.inner.kind;
  }
  get local(): Endpoint {
    return this.inner.local;
  }

  start(onControl: ControlHandler): Promise<void> {
    return this.inner.start((batch) => {
      let rest = batch;
      for (let i = 0; i < batch.length; i++) {
        const d = batch[i]!;
        if (d.routeId === -1 && d.data[0] === 0 && isBridgeDatagram(d.data)) {
          rest = batch.filter((x) => !(x.routeId === -1 && x.data[0] === 0 && isBridgeDatagram(x.data)));
          for (let j = i; j < batch.length; j++) {
            const b = batch[j]!;
            if (b.routeId === -1 && b.data[0] === 0 && isBridgeDatagram(b.data)) this.receiveBridge(b);
          }
          break;
        }
      }
      if (rest.length > 0) onControl(rest);
      this.afterBatch(rest);
    });
  }

  /**
   * Creates the link; the caller then pairs `link.virtual` in the table (SessionTable.attachRemote).
   * `port` adopts a virtual endpoint that already is in the table (sessions restored from a state file).
   */
  createLink(sessionId: string, relay: string, target: Endpoint, port = this.nextPort++): RemoteLink {
    if (port >= this.nextPort) this.nextPort = port + 1;
    const link: RemoteLink = {
      sessionId,
      relay,
      target,
      virtual: { address: `${VIRTUAL_ADDRESS_PREFIX}${relay}`, port },
      peerId: -1,
      deliverTo: undefined,
      packetsIn: 0,
      bytesIn: 0,
      packetsOut: 0,
      active: false,
    };
    this.byPort.set(port, link);
    this.bySession.set(sessionId, link);
    return link;
  }

  removeLink(link: RemoteLink): void {
    if (this.byPort.get(link.virtual.port) === link) this.byPort.delete(link.virtual.port);
    if (this.bySession.get(link.sessionId) === link) this.bySession.delete(link.sessionId);
    if (this.byPeerId.get(link.peerId) === link) this.byPeerId.delete(link.peerId);
  }

  link(sessionId: string): RemoteLink | undefined {
    return this.bySession.get(sessionId);
  }
  links(): IterableIterator<RemoteLink> {
    return this.bySession.values();
  }

  send(data: Uint8Array, to: Endpoint): void {
    if (!to.address.startsWith(VIRTUAL_ADDRESS_PREFIX)) return this.inner.send(data, to);
    const link = this.byPort.get(to.port);
    if (!link) return;
    if (data.length + bridgeOverhead(link.sessionId.length) > this.maxDatagramSize) {
      this.bridge.oversize++;
      return;
    }
    this.inner.send(this.codec.encode(link.sessionId, data), link.target);
    link.packetsOut++;
    this.bridge.sent++;
  }

  setRoute(id: number, from: Endpoint, to: Endpoint, observeBudget: number, unansweredLimit = 0): void {
    if (from.address.startsWith(VIRTUAL_ADDRESS_PREFIX)) {
      const link = this.byPort.get(from.port);
      if (!link) return;
      if (link.peerId !== id) this.byPeerId.delete(link.peerId);
      link.peerId = id;
      link.deliverTo = to;
      this.byPeerId.set(id, link);
      return;
    }
    // A local peer whose partner is remote: no route, so its datagrams reach the control plane.
    if (to.address.startsWith(VIRTUAL_ADDRESS_PREFIX)) return this.inner.deleteRoute(id);
    this.inner.setRoute(id, from, to, observeBudget, unansweredLimit);
  }

  deleteRoute(id: number): void {
    const link = this.byPeerId.get(id);
    if (link) {
      link.deliverTo = undefined;
      return;
    }
    this.inner.deleteRoute(id);
  }

  drainActivity(): number[] {
    const ids = this.inner.drainActivity();
    if (this.active.length === 0) return ids;
    for (const id of this.active) {
      const link = this.byPeerId.get(id);
      if (link) link.active = false;
    }
    const all = ids.concat(this.active);
    this.active = [];
    return all;
  }

  routeCounters(id: number): { packets: number; bytes: number } | undefined {
    const link = this.byPeerId.get(id);
    if (link) return { packets: link.packetsIn, bytes: link.bytesIn };
    return this.inner.routeCounters(id);
  }

  counters(): DataPlaneCounters {
    return this.inner.counters();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private receiveBridge(d: InboundDatagram): void {
    const decoded = this.codec.decode(d.data);
    if (!decoded.ok) {
      this.bridge.rejected[decoded.error] = (this.bridge.rejected[decoded.error] ?? 0) + 1;
      return;
    }
    const link = this.bySession.get(decoded.sessionId);
    if (!link || !link.deliverTo) {
      this.bridge.noSession++;
      this.onUnlinked(decoded.sessionId, { address: d.address, port: d.port }, decoded.payload);
      return;
    }
    if (d.port !== link.target.port || d.address !== link.target.address) this.onMoved(link, { address: d.address, port: d.port });
    this.deliver(link, decoded.payload);
  }

  /** Sends a payload that came over the bridge to the link's local peer. */
  deliver(link: RemoteLink, payload: Uint8Array): void {
    if (!link.deliverTo) return;
    this.inner.send(payload, link.deliverTo);
    link.packetsIn++;
    link.bytesIn += payload.length;
    this.bridge.delivered++;
    if (!link.active && link.peerId >= 0) {
      link.active = true;
      this.active.push(link.peerId);
    }
  }
}

export { BridgeError };
