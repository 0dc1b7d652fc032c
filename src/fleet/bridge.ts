import type { DataPlane, InboundDatagram } from "../dataplane/types.ts";
import type { Endpoint } from "../net/address.ts";
import type { Totals } from "../metrics/directions.ts";
import type { RemotePeers } from "../relay.ts";
import type { Direction, StandInVerdict } from "../sessions/types.ts";
import { type BridgeCodec, BridgeError, BridgeFrameType, bridgeOverhead, isBridgeDatagram } from "./bridge-codec.ts";

/** Frames from unknown addresses held for the next read of the member set: at most this many, this many bytes, this long. */
const UNKNOWN_HOLD_DATAGRAMS = 64;
const UNKNOWN_HOLD_BYTES = 256 * 1024;
const UNKNOWN_HOLD_MS = 2000;

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
  /** Which of the session's directions the deliveries carry (the virtual peer's route). */
  direction: Direction;
  packetsOut: number;
  active: boolean;
  /** The data-plane route carrying the remote peer's datagrams to the local one, while the plane carries bridged sessions itself. */
  inRoute: { peerId: number; to: Endpoint; direction: Direction; unansweredLimit: number } | undefined;
  /** The remote peer's identity (peer-token hash), when the directory or a join message named one. */
  remoteIdentity: string | undefined;
  /** Bytes delivered to the local peer since it last sent anything, and the bound on them (0: none; its address is proven). */
  unanswered: number;
  unansweredLimit: number;
}

/** Why a bridge datagram was refused: the codec's reasons, or a source that is no fleet member. */
export type BridgeRejection = BridgeError | "unknown-sender";
export const BRIDGE_REJECTIONS: readonly BridgeRejection[] = ["unknown-sender", ...Object.values(BridgeError)];

export interface BridgeCounters {
  /** Bridge datagrams sent to other relays / delivered from them. */
  sent: number;
  delivered: number;
  /** Rejected bridge datagrams by reason (not from a member, forged, replayed, stale, malformed). */
  rejected: Partial<Record<BridgeRejection, number>>;
  /** Authentic data frames for a linked session from another relay than the link's (not delivered). */
  otherRelay: number;
  /** Authentic bridge datagrams for a session with no local peer to deliver to. */
  noSession: number;
  /** Peer datagrams too large to wrap within the datagram size limit. */
  oversize: number;
  /** Datagrams from the remote side not delivered: the local peer is unproven and left too many bytes unanswered. */
  unanswered: number;
  /** The part of `sent` and `delivered` the data plane carried by itself (bridge routes), without the control plane. */
  dataPlane: { sent: number; delivered: number };
}

/** What the bridge cannot settle alone; the fleet's coordinator answers. */
export interface BridgeEvents {
  /**
   * The member relay sending from `from` (its advertised address), or undefined: only members'
   * frames are decoded. With `refresh` (default), an unknown address has the member set read again
   * soon, after which retryUnknownSenders() is called.
   */
  senderOf(from: Endpoint, refresh?: boolean): string | undefined;
  /** An authentic frame came from `relay`. */
  heard(relay: string): void;
  /** An authentic pong from `relay`. */
  pong(relay: string, payload: Uint8Array): void;
  /** An authentic data frame from `relay` for a session that has no link here. */
  unlinked(sessionId: string, relay: string, payload: Uint8Array): void;
  /** An authentic data frame for a linked session from another relay than the link's: true when the link now points there. */
  moved(link: RemoteLink, relay: string): boolean;
  /** A REG found the session full, its other peer standing for a peer on the link's relay (RemotePeers.standIn). */
  standIn(link: RemoteLink, from: Endpoint, raw: Uint8Array): StandInVerdict;
  /** A REG with the `move` flag for a session new here (RemotePeers.place). */
  place(sessionId: string, from: Endpoint, raw: Uint8Array): "here" | "checking";
}

/**
 * The relay's remote peers. The session table pairs a local peer with a virtual endpoint standing
 * for the remote peer; the relay asks this bridge to route and send to virtual endpoints, which it
 * does by wrapping datagrams into bridge datagrams for the remote relay, and offers it datagrams
 * from unknown sources, so that bridge datagrams from other relays are unwrapped before the table
 * sees them. The data plane is only used to send.
 */
export class FleetBridge implements RemotePeers {
  /** What the control plane's side counted; counts() adds the data plane's. */
  readonly bridge: BridgeCounters = { sent: 0, delivered: 0, rejected: {}, otherRelay: 0, noSession: 0, oversize: 0, unanswered: 0, dataPlane: { sent: 0, delivered: 0 } };
  /** Relays whose keys the data plane has (true), by relay id. */
  private readonly keyed = new Map<string, boolean>();
  /**
   * Bridge datagrams from addresses that are no member yet, waiting for the member set to be read
   * again: a relay that just joined (or that this relay has not heard of yet) may send the first
   * frame of a session before this relay learns it. Bounded; refused as unknown-sender when the
   * read does not name their sender, or when they do not fit.
   */
  private unknownHeld: { datagram: InboundDatagram; at: number }[] = [];
  private unknownHeldBytes = 0;
  private readonly byPort = new Map<number, RemoteLink>();
  private readonly bySession = new Map<string, RemoteLink>();
  private readonly byPeerId = new Map<number, RemoteLink>();
  private nextPort = 1;
  private active: number[] = [];
  /** Datagrams and bytes delivered from remote peers, by the direction of their routes. */
  private readonly delivered: Record<Direction, Totals> = { first_to_second: { packets: 0, bytes: 0 }, second_to_first: { packets: 0, bytes: 0 } };

  constructor(
    private readonly plane: DataPlane,
    private readonly codec: BridgeCodec,
    private readonly maxDatagramSize: number,
    private readonly events: BridgeEvents,
  ) {}

  isRemote(endpoint: Endpoint): boolean {
    return isVirtual(endpoint);
  }

  receive(d: InboundDatagram): boolean {
    if (d.data[0] !== 0 || !isBridgeDatagram(d.data)) return false;
    this.receiveBridge(d);
    return true;
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
      direction: "first_to_second",
      packetsOut: 0,
      active: false,
      remoteIdentity: undefined,
      inRoute: undefined,
      unanswered: 0,
      unansweredLimit: 0,
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
    const link = this.byPort.get(to.port);
    if (!link) return;
    if (data.length + bridgeOverhead(link.sessionId.length) > this.maxDatagramSize) {
      this.bridge.oversize++;
      return;
    }
    this.plane.send(this.codec.encode(link.relay, link.sessionId, data), link.target);
    // The local peer sent something: it receives at its address (what the unanswered bound asks).
    link.unanswered = 0;
    link.packetsOut++;
    this.bridge.sent++;
  }

  route(peerId: number, from: Endpoint, to: Endpoint, direction: Direction, unansweredLimit: number): void {
    const link = this.byPort.get(from.port);
    if (!link) return;
    link.unansweredLimit = unansweredLimit;
    link.unanswered = 0;
    if (link.peerId !== peerId) this.byPeerId.delete(link.peerId);
    link.peerId = peerId;
    link.deliverTo = to;
    link.direction = direction;
    this.byPeerId.set(peerId, link);
    const offload = this.plane.bridge;
    if (!offload) return;
    this.keyMember(link);
    link.inRoute = { peerId, to, direction, unansweredLimit };
    offload.setInRoute(peerId, link.target, link.sessionId, to, unansweredLimit, direction);
  }

  unroute(peerId: number): void {
    const link = this.byPeerId.get(peerId);
    if (!link) return;
    link.deliverTo = undefined;
    if (link.inRoute) this.plane.deleteRoute(link.inRoute.peerId);
    link.inRoute = undefined;
  }

  routeOut(peerId: number, from: Endpoint, to: Endpoint, direction: Direction, cidLength: number, observeBudget: number): void {
    const link = this.byPort.get(to.port);
    const offload = this.plane.bridge;
    // Without a plane that bridges, the local peer's datagrams come up to the table, which sends them through send().
    if (!offload || !link) return this.plane.deleteRoute(peerId);
    this.keyMember(link);
    offload.setOutRoute(peerId, from, link.target, link.sessionId, observeBudget, cidLength, direction);
  }

  /**
   * The link now points at another relay (its remote peer moved): the plane's routes follow, the
   * outbound one for the local peer `local` when there is one.
   */
  retarget(link: RemoteLink, local: { peerId: number; endpoint: Endpoint; direction: Direction; observeBudget: number } | undefined): void {
    if (!this.plane.bridge) return;
    if (link.inRoute) this.route(link.inRoute.peerId, link.virtual, link.inRoute.to, link.inRoute.direction, link.inRoute.unansweredLimit);
    if (local) this.routeOut(local.peerId, local.endpoint, link.virtual, local.direction, 0, local.observeBudget);
  }

  /** New fleet secrets: the plane gets the keys derived from them for every relay it has routes to. */
  rekey(): void {
    for (const relay of this.keyed.keys()) this.keyed.set(relay, false);
    for (const link of this.bySession.values()) this.keyMember(link);
  }

  /** What the bridge counted, with what the data plane carried and refused by itself. */
  counts(): BridgeCounters {
    const own = this.bridge;
    const plane = this.plane.bridge?.counters();
    if (!plane) return { ...own, rejected: { ...own.rejected }, dataPlane: { ...own.dataPlane } };
    const rejected = { ...own.rejected };
    for (const [reason, n] of Object.entries(plane.rejected) as [BridgeRejection, number][]) rejected[reason] = (rejected[reason] ?? 0) + n;
    return {
      ...own,
      sent: own.sent + plane.framed,
      delivered: own.delivered + plane.delivered,
      oversize: own.oversize + plane.oversize,
      unanswered: own.unanswered + plane.unanswered,
      rejected,
      dataPlane: { sent: plane.framed, delivered: plane.delivered },
    };
  }

  /** Gives the plane the keys of frames to and from the link's relay, once per relay (again after rekey). */
  private keyMember(link: RemoteLink): void {
    const offload = this.plane.bridge;
    if (!offload || this.keyed.get(link.relay) === true) return;
    const keys = this.codec.pairKeys(link.relay);
    offload.setMember(link.target, keys.tx, keys.rx, this.codec.replayWindowMs);
    this.keyed.set(link.relay, true);
  }

  drainActivity(): number[] {
    const ids = this.active;
    if (ids.length === 0) return ids;
    for (const id of ids) {
      const link = this.byPeerId.get(id);
      if (link) link.active = false;
    }
    this.active = [];
    return ids;
  }

  forwarded(): Record<Direction, Totals> {
    return { first_to_second: { ...this.delivered.first_to_second }, second_to_first: { ...this.delivered.second_to_first } };
  }

  standIn(sessionId: string, standIn: Endpoint, from: Endpoint, raw: Uint8Array): StandInVerdict {
    const link = this.byPort.get(standIn.port);
    if (!link || link.sessionId !== sessionId) return "live";
    return this.events.standIn(link, from, raw);
  }

  place(sessionId: string, from: Endpoint, raw: Uint8Array): "here" | "checking" {
    return this.events.place(sessionId, from, raw);
  }

  /** Sends an authenticated ping to relay `relay` at `target`. */
  ping(relay: string, target: Endpoint, payload: Uint8Array): void {
    this.plane.send(this.codec.encodePing(relay, payload), target);
  }

  /** The member set was read again: frames held for it are decoded if their sender is a member now, else refused. */
  retryUnknownSenders(now = Date.now()): void {
    const held = this.unknownHeld;
    this.unknownHeld = [];
    this.unknownHeldBytes = 0;
    for (const { datagram, at } of held) {
      const sender = now - at <= UNKNOWN_HOLD_MS ? this.events.senderOf({ address: datagram.address, port: datagram.port }, false) : undefined;
      if (sender === undefined) this.reject("unknown-sender");
      else this.receiveFrom(sender, datagram);
    }
  }

  private receiveBridge(d: InboundDatagram): void {
    const from: Endpoint = { address: d.address, port: d.port };
    const sender = this.events.senderOf(from);
    if (sender === undefined) return this.holdUnknown(d);
    this.receiveFrom(sender, d);
  }

  private holdUnknown(d: InboundDatagram): void {
    if (this.unknownHeld.length >= UNKNOWN_HOLD_DATAGRAMS || this.unknownHeldBytes + d.data.length > UNKNOWN_HOLD_BYTES) return this.reject("unknown-sender");
    // A copy: the plane's datagram may be a view into its whole batch (InboundDatagram).
    this.unknownHeld.push({ datagram: { ...d, data: d.data.slice() }, at: Date.now() });
    this.unknownHeldBytes += d.data.length;
  }

  private receiveFrom(sender: string, d: InboundDatagram): void {
    const from: Endpoint = { address: d.address, port: d.port };
    const decoded = this.codec.decode(sender, d.data);
    if (!decoded.ok) return this.reject(decoded.error);
    const frame = decoded.frame;
    this.events.heard(sender);
    if (frame.type === BridgeFrameType.Ping) return this.plane.send(this.codec.encodePong(sender, frame.payload), from);
    if (frame.type === BridgeFrameType.Pong) return this.events.pong(sender, frame.payload);
    const link = this.bySession.get(frame.sessionId);
    if (!link || !link.deliverTo) {
      this.bridge.noSession++;
      this.events.unlinked(frame.sessionId, sender, frame.payload);
      return;
    }
    // A link points at one relay; it moves only when the directory or a failed ping says that relay is gone.
    if (link.relay !== sender && !this.events.moved(link, sender)) {
      this.bridge.otherRelay++;
      return;
    }
    this.deliver(link, frame.payload);
  }

  private reject(reason: BridgeRejection): void {
    this.bridge.rejected[reason] = (this.bridge.rejected[reason] ?? 0) + 1;
  }

  /** Sends a payload that came over the bridge to the link's local peer. */
  deliver(link: RemoteLink, payload: Uint8Array): void {
    if (!link.deliverTo) return;
    // As a data-plane route to an unproven address: a forged REG must not make the bridge a flood.
    if (link.unansweredLimit > 0) {
      if (link.unanswered + payload.length > link.unansweredLimit) {
        this.bridge.unanswered++;
        return;
      }
      link.unanswered += payload.length;
    }
    this.plane.send(payload, link.deliverTo);
    const totals = this.delivered[link.direction];
    totals.packets++;
    totals.bytes += payload.length;
    this.bridge.delivered++;
    if (!link.active && link.peerId >= 0) {
      link.active = true;
      this.active.push(link.peerId);
    }
  }
}

