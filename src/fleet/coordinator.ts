import type { Endpoint } from "../net/address.ts";
import { endpointKey, hostOf, parseHostPort } from "../net/address.ts";
import type { Logger } from "../log.ts";
import type { Relay } from "../relay.ts";
import { formatEndpoint } from "../net/address.ts";
import type { Session, SessionEvent } from "../sessions/types.ts";
import type { DirectoryStats, FleetDirectory, JoinMessage } from "./directory.ts";
import type { FleetOptions } from "./options.ts";
import { type BridgeCounters, type FleetBridge, isVirtual, type RemoteLink, VIRTUAL_ADDRESS_PREFIX } from "./bridge.ts";
import { directionOf } from "../sessions/peer.ts";

export interface FleetStats {
  reachable: boolean;
  directory: DirectoryStats;
  bridge: BridgeCounters;
  /** Sessions bridged to another relay right now / since start. */
  bridgedNow: number;
  bridgedTotal: number;
  /** Sessions this relay has entered in the directory. */
  announced: number;
}

interface Announced {
  localPeers: number;
  at: number;
}

/**
 * Keeps the directory in step with the session table on lifecycle events only (a REG that creates,
 * joins or refreshes a session; pairing; expiry found by the periodic pass) and bridges a session
 * when its other peer registered on another relay. Never on the per-datagram path.
 */
export class FleetCoordinator {
  private readonly announced = new Map<string, Announced>();
  /** Relays that bridged links point at and the directory says are gone (checked every heartbeat). */
  private deadRelays = new Set<string>();
  /** Addresses of the fleet's relays (endpointKey of the host as hostOf gives it, and port). */
  private memberAddresses = new Set<string>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking = false;
  private bridgedTotal = 0;
  private readonly refreshMs: number;
  private readonly ttlMs: number;
  private stopped = false;

  constructor(
    private readonly relay: Relay,
    private readonly bridge: FleetBridge,
    private readonly directory: FleetDirectory,
    private readonly options: FleetOptions,
    private readonly logger: Logger,
  ) {
    const timeoutMs = relay.table.limits.timeoutMs;
    this.refreshMs = Math.min(30_000, Math.max(1000, timeoutMs / 3));
    // A live session's entry must survive until the next refresh pass.
    this.ttlMs = timeoutMs + this.refreshMs + options.heartbeatMs;
    relay.onEvents((events) => this.registered(events));
    directory.onReachable = () => this.refreshAll(true);
  }

  async start(): Promise<void> {
    this.adoptRestored();
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.options.heartbeatMs);
  }

  /** Removes this relay's entries (bounded wait), then disconnects. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.directory.reachable) {
      const work = Promise.all([...this.announced.keys()].map((id) => this.directory.withdraw(id)));
      await Promise.race([work, Bun.sleep(500)]);
    }
    this.directory.close();
  }

  stats(): FleetStats {
    let bridgedNow = 0;
    for (const link of this.bridge.links()) if (link.deliverTo) bridgedNow++;
    return {
      reachable: this.directory.reachable,
      directory: { ...this.directory.stats },
      bridge: { ...this.bridge.bridge, rejected: { ...this.bridge.bridge.rejected } },
      bridgedNow,
      bridgedTotal: this.bridgedTotal,
      announced: this.announced.size,
    };
  }

  /**
   * Sessions restored from a state file may hold virtual peers (bridged before the restart): give
   * them their links back, so the bridge resumes without either peer registering again.
   */
  private adoptRestored(): void {
    const table = this.relay.table;
    for (const session of table.allSessions()) {
      for (const peer of session.peers) {
        if (!isVirtual(peer.endpoint) || this.bridge.link(session.id)) continue;
        const relay = peer.endpoint.address.slice(VIRTUAL_ADDRESS_PREFIX.length);
        const target = this.endpointOf(relay);
        if (!target) continue;
        this.bridge.createLink(session.id, relay, target, peer.endpoint.port);
        const partner = session.peers.find((p) => p !== peer);
        if (partner) this.bridge.route(peer.id, peer.endpoint, partner.endpoint, directionOf(peer));
        this.announced.set(session.id, { localPeers: countLocal(session), at: 0 });
      }
    }
  }

  /** Another relay holds the other peer of a session whose first peer is here. */
  joined(message: JoinMessage): void {
    if (message.relay === this.options.advertise) return;
    const target = this.endpointOf(message.relay);
    if (!this.attach(message.session, message.relay, target)) void this.retarget(message.session, message.relay, target);
  }

  /** REGs acknowledged in one batch: each of their sessions is (re-)entered in the directory when due. */
  private registered(events: readonly SessionEvent[]): void {
    let seen: Set<string> | undefined;
    for (const event of events) {
      if (event.kind !== "registered" || seen?.has(event.session)) continue;
      (seen ??= new Set()).add(event.session);
      const session = this.relay.table.session(event.session);
      if (session) this.note(session, false);
    }
  }

  /** Enters the session in the directory when its local peer count changed, or when due. */
  private note(session: Session, force: boolean): void {
    const localPeers = countLocal(session);
    const now = Date.now();
    const previous = this.announced.get(session.id);
    if (!force && previous && previous.localPeers === localPeers && now - previous.at < this.refreshMs / 2) return;
    this.announced.set(session.id, { localPeers, at: now });
    void this.announce(session.id, localPeers);
  }

  private async announce(sessionId: string, localPeers: number): Promise<void> {
    const others = await this.directory.announce(sessionId, localPeers, this.ttlMs);
    if (!others || localPeers !== 1 || this.bridge.link(sessionId)) return;
    // The other peer is on another relay when exactly one other live relay holds exactly one peer.
    const candidates: string[] = [];
    for (const [relay, n] of others) {
      if (n !== 1) continue;
      const alive = await this.directory.alive(relay);
      if (alive) candidates.push(relay);
      else if (alive === false) void this.directory.forget(sessionId, relay);
    }
    if (candidates.length !== 1) return;
    const relay = candidates[0]!;
    if (this.attach(sessionId, relay, this.endpointOf(relay)) || (await this.retarget(sessionId, relay, this.endpointOf(relay))))
      await this.directory.join(relay, sessionId);
  }

  /**
   * The remote peer of a bridged session re-registered on another relay (its relay went away):
   * point the link there. Only when the relay the link points at is gone from the directory.
   */
  private async retarget(sessionId: string, relay: string, target: Endpoint | undefined): Promise<boolean> {
    const link = this.bridge.link(sessionId);
    if (!link || !target || link.relay === relay) return false;
    const previous = link.relay;
    if ((await this.directory.alive(previous)) !== false || this.bridge.link(sessionId) !== link) return false;
    link.relay = relay;
    link.target = target;
    this.logger.info("bridged session moved to another relay", { session: sessionId, from: previous, to: relay });
    return true;
  }

  /** Authentic bridge datagram for a session that has no link here (its join message was missed). */
  unlinked(sessionId: string, from: Endpoint, payload: Uint8Array): void {
    if (!this.attach(sessionId, formatEndpoint(from), from)) return;
    const link = this.bridge.link(sessionId);
    if (link) this.bridge.deliver(link, payload);
  }

  /** The remote peer's new relay spoke first (before its join message): follow it if the old relay is gone. */
  moved(link: RemoteLink, from: Endpoint): void {
    if (!this.deadRelays.has(link.relay)) return;
    const previous = link.relay;
    link.relay = formatEndpoint(from);
    link.target = from;
    this.logger.info("bridged session moved to another relay", { session: link.sessionId, from: previous, to: link.relay });
  }

  /** Pairs the session's lone local peer with a virtual peer standing for the remote one. */
  private attach(sessionId: string, relay: string, target: Endpoint | undefined): boolean {
    if (!target || !this.waitingAlone(sessionId) || this.bridge.link(sessionId)) return false;
    const table = this.relay.table;
    const link = this.bridge.createLink(sessionId, relay, target);
    if (!table.attachRemote(sessionId, link.virtual) || !link.deliverTo) {
      this.bridge.removeLink(link);
      return false;
    }
    this.bridgedTotal++;
    this.logger.info("session bridged", { session: sessionId, relay, bridged: this.bridgedTotal });
    return true;
  }

  private waitingAlone(sessionId: string): boolean {
    const session = this.relay.table.session(sessionId);
    return !!session && session.peers.length === 1 && !isVirtual(session.peers[0]!.endpoint);
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      await this.directory.maintain();
      const table = this.relay.table;
      await this.directory.heartbeat(
        { advertise: this.options.advertise, plane: this.relay.plane.kind, sessions: table.sessionCount, bridged: this.bridgedTotal, at: Date.now() },
        this.options.heartbeatMs * 3,
      );
      const linked = new Set<string>();
      for (const link of [...this.bridge.links()]) {
        if (!table.peerAt(link.virtual)) this.bridge.removeLink(link);
        else linked.add(link.relay);
      }
      const relays = [...linked];
      const alive = await Promise.all(relays.map((relay) => this.directory.alive(relay)));
      this.deadRelays = new Set(relays.filter((_, i) => alive[i] === false));
      await this.refreshMembers();
      this.refreshAll(false);
    } catch (error) {
      this.logger.error("fleet tick failed", { error: String((error as Error)?.stack ?? error) });
    } finally {
      this.ticking = false;
    }
  }

  /** Whether `from` is a relay of the fleet: such an address is never registered as a peer. */
  isMember(from: Endpoint): boolean {
    return this.memberAddresses.has(endpointKey(hostOf(from.address), from.port));
  }

  /** Re-reads the member set; members whose health key is gone leave it. */
  private async refreshMembers(): Promise<void> {
    const members = await this.directory.members();
    if (!members) return;
    const addresses = new Set<string>();
    for (const relay of members) {
      const hp = parseHostPort(relay);
      if (hp && hp.host !== "") addresses.add(endpointKey(hostOf(hp.host), hp.port));
    }
    this.memberAddresses = addresses;
    const others = members.filter((m) => m !== this.options.advertise);
    const alive = await Promise.all(others.map((relay) => this.directory.alive(relay)));
    for (const [i, relay] of others.entries()) if (alive[i] === false) void this.directory.dropMember(relay);
  }

  /** Withdraws sessions that ended here; re-enters live ones when due (all of them after an outage). */
  private refreshAll(force: boolean): void {
    const now = Date.now();
    for (const [id, entry] of this.announced) {
      const session = this.relay.table.session(id);
      if (!session || countLocal(session) === 0) {
        this.announced.delete(id);
        void this.directory.withdraw(id);
        continue;
      }
      if (force || now - entry.at >= this.refreshMs || entry.localPeers !== countLocal(session)) this.note(session, true);
    }
  }

  private endpointOf(relay: string): Endpoint | undefined {
    const hp = parseHostPort(relay);
    if (!hp || hp.host === "") return undefined;
    // A dual-stack socket sends to IPv4 relays through their mapped form.
    const v6Socket = this.relay.local.address.includes(":");
    const address = v6Socket && !hp.host.includes(":") ? `::ffff:${hp.host}` : hp.host;
    return { address, port: hp.port };
  }
}

function countLocal(session: Session): number {
  let n = 0;
  for (const p of session.peers) if (!isVirtual(p.endpoint)) n++;
  return n;
}
