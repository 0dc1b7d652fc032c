import { type Endpoint, formatEndpoint, parseHostPort } from "../net/address.ts";
import type { Logger } from "../log.ts";
import { boundedPass, OBSERVE_BUDGET, type Relay } from "../relay.ts";
import type { Session, SessionEvent, StandInVerdict } from "../sessions/types.ts";
import type { DirectoryStats, FleetDirectory, JoinMessage, LeftMessage, RelayMessage } from "./directory.ts";
import { parseReg } from "../protocol/reg.ts";
import { peerIdentity } from "../protocol/peer-token.ts";
import type { FleetOptions } from "./options.ts";
import { type BridgeCounters, type FleetBridge, isVirtual, type RemoteLink, VIRTUAL_ADDRESS_PREFIX } from "./bridge.ts";
import { directionOf } from "../sessions/peer.ts";
import { HeldRegs } from "./held-regs.ts";
import { FleetMembers } from "./members.ts";
import { Placement, type PlacementCounts } from "./placement.ts";
import { DEFAULT_LIVENESS, type LivenessOptions, RelayLiveness } from "./liveness.ts";
import { type AnnouncedEntry, AnnouncedEntries } from "./announced.ts";

export interface FleetStats {
  reachable: boolean;
  directory: DirectoryStats;
  bridge: BridgeCounters;
  /** Sessions bridged to another relay right now / since start. */
  bridgedNow: number;
  bridgedTotal: number;
  /** Sessions this relay has entered in the directory. */
  announced: number;
  /** REGs with the `move` flag for sessions new here, by what became of them. */
  placement: PlacementCounts;
  /** Liveness pings sent to other relays, and checks that found one gone. */
  liveness: { pings: number; gone: number };
}

/** How long a stopping relay spends withdrawing its entries, in milliseconds. */
const STOP_WITHDRAW_MS = 500;

/**
 * Keeps the directory in step with the session table on lifecycle events only (a REG that creates,
 * joins or refreshes a session; pairing; expiry found by the periodic pass), bridges a session
 * when its other peer registered on another relay, and moves a link or gives a stand-in's place
 * away only when the peer's relay is gone (directory, ping) or the peer itself, by its token,
 * registered elsewhere. REGs that wait for an answer are held (held-regs.ts); where a flagged REG
 * belongs is placement.ts's. Never on the per-datagram path.
 */
export class FleetCoordinator {
  /** What this relay last wrote of each session it entered, and the order of the writes (which fall due first). */
  private readonly announced = new AnnouncedEntries();
  /** Relays that bridged links point at and the directory says are gone (checked every heartbeat). */
  private deadRelays = new Set<string>();
  private readonly members: FleetMembers;
  private readonly liveness: RelayLiveness;
  /** REGs waiting for a relay's liveness check (key `relay:<id>`) or a directory lookup (placement.ts). */
  private readonly held: HeldRegs;
  private readonly placement: Placement;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking = false;
  private bridgedTotal = 0;
  private readonly refreshMs: number;
  private readonly ttlMs: number;
  private stopped = false;
  /** A walk of every entered session in progress (after a directory outage), see refresh(). */
  private walk: Iterator<string> | undefined;
  /** A refresh slice is scheduled. */
  private refreshing = false;

  constructor(
    private readonly relay: Relay,
    private readonly bridge: FleetBridge,
    private readonly directory: FleetDirectory,
    private readonly options: FleetOptions,
    private readonly logger: Logger,
    liveness: LivenessOptions = DEFAULT_LIVENESS,
  ) {
    this.liveness = new RelayLiveness((relay, nonce) => {
      const target = this.endpointOf(relay);
      if (target) this.bridge.ping(relay, target, nonce);
      return target !== undefined;
    }, liveness);
    this.members = new FleetMembers(directory, options.advertise, () => bridge.retryUnknownSenders());
    this.held = new HeldRegs(relay);
    this.placement = new Placement({
      relay,
      directory,
      held: this.held,
      self: options.advertise,
      knownGone: (r) => this.deadRelays.has(r) || this.liveness.known(r) === "gone",
      logger,
    });
    const timeoutMs = relay.table.limits.timeoutMs;
    this.refreshMs = Math.min(30_000, Math.max(1000, timeoutMs / 3));
    // A live session's entry must survive until the next refresh pass.
    this.ttlMs = timeoutMs + this.refreshMs + options.heartbeatMs;
    relay.onEvents((events) => this.changed(events));
    directory.onReachable = () => this.refresh(true);
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
    this.members.stop();
    this.liveness.stop();
    this.held.stop();
    if (this.directory.reachable) await this.withdrawAll(performance.now() + STOP_WITHDRAW_MS);
    this.directory.close();
  }

  /**
   * Withdraws every entry, in time-bounded slices (the thread serves I/O between them: a million
   * writes made at once held it for over a second), until `deadline`; what is not withdrawn by
   * then expires with its time to live.
   */
  private async withdrawAll(deadline: number): Promise<void> {
    const entries = this.announced.sessionIds();
    // Counted, not collected: Promise.all over a million writes is itself a long hold.
    let pending = 0;
    let issued = false;
    let allDone: (() => void) | undefined;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    const settled = (): void => {
      if (--pending === 0 && issued) allDone!();
    };
    const next = (): boolean => {
      const entry = entries.next();
      if (entry.done) return false;
      pending++;
      void this.directory.withdraw(entry.value).then(settled, settled);
      return true;
    };
    while (boundedPass(() => performance.now(), next) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 0));
    issued = true;
    if (pending === 0) return;
    await Promise.race([done, Bun.sleep(Math.max(0, deadline - performance.now()))]);
  }

  stats(): FleetStats {
    let bridgedNow = 0;
    for (const link of this.bridge.links()) if (link.deliverTo) bridgedNow++;
    return {
      reachable: this.directory.reachable,
      directory: { ...this.directory.stats },
      bridge: this.bridge.counts(),
      bridgedNow,
      bridgedTotal: this.bridgedTotal,
      announced: this.announced.size,
      liveness: { ...this.liveness.counts },
      placement: { ...this.placement.counts },
    };
  }

  /**
   * Sessions restored from a state file may hold virtual peers (bridged before the restart): give
   * them their links back, so the bridge resumes without either peer registering again.
   */
  private adoptRestored(): void {
    const table = this.relay.table;
    for (const session of table.expandedSessions()) {
      for (const peer of session.peers) {
        if (!isVirtual(peer.endpoint) || this.bridge.link(session.id)) continue;
        const relay = peer.endpoint.address.slice(VIRTUAL_ADDRESS_PREFIX.length);
        const target = this.endpointOf(relay);
        if (!target) continue;
        this.bridge.createLink(session.id, relay, target, peer.endpoint.port);
        // The directory may be down: the link's relay is a member as far as its frames go.
        this.members.learn(relay);
        const partner = session.peers.find((p) => p !== peer);
        if (partner) {
          this.bridge.route(peer.id, peer.endpoint, partner.endpoint, directionOf(peer), this.relay.unansweredLimit(partner));
          this.bridge.routeOut(partner.id, partner.endpoint, peer.endpoint, directionOf(partner), 0, OBSERVE_BUDGET);
        }
        this.announced.set(session.id, { localPeers: countLocal(session), identity: undefined, at: 0 });
      }
    }
  }

  /** A message on this relay's channel. */
  message(message: RelayMessage): void {
    if (message.relay === this.options.advertise) return;
    this.members.learn(message.relay);
    if (message.kind === "join") this.joined(message);
    else this.left(message);
  }

  /** Another relay holds the other peer of a session whose first peer is here (or that peer moved there). */
  private joined(message: JoinMessage): void {
    const target = this.endpointOf(message.relay);
    if (!this.attach(message.session, message.relay, target, message.identity)) void this.retarget(message.session, message.relay, target, message.identity);
  }

  /**
   * The peer `identity` of a session registered at another relay while it was still registered
   * here (it moved, e.g. DNS sent it elsewhere): its registration here is stale and goes, with the
   * session when nobody else of it is here.
   */
  private left(message: LeftMessage): void {
    if (!this.relay.table.leave(message.session, message.identity)) return;
    const link = this.bridge.link(message.session);
    if (link && !this.relay.table.peerAt(link.virtual)) this.bridge.removeLink(link);
    this.recheck(message.session, false);
    this.logger.info("peer left for another relay", { session: message.session, relay: message.relay });
  }

  /**
   * What one batch or expiry pass changed: sessions with an acknowledged REG are (re-)entered in
   * the directory when due or changed; entered sessions that lost a peer (it moved to another
   * session, the session expired or paired two relays) are entered again with what is left, or
   * withdrawn. Every other change of a session's local peers comes with a REG.
   */
  private changed(events: readonly SessionEvent[]): void {
    let seen: Set<string> | undefined;
    for (const event of events) {
      const id = event.kind === "moved" ? event.from : event.kind === "registered" || event.kind === "expired" || event.kind === "relay-pair" ? event.session : undefined;
      if (id === undefined || seen?.has(id)) continue;
      (seen ??= new Set()).add(id);
      this.recheck(id, false);
    }
  }

  /** Enters session `id` again as the table has it now (when changed, or `force`), or withdraws it when none of its peers is here. */
  private recheck(id: string, force: boolean): void {
    const held = this.relay.table.peek(id);
    if (held === undefined || countLocal(held) === 0) {
      if (this.announced.delete(id)) void this.directory.withdraw(id);
      return;
    }
    this.note(id, held, force);
  }

  /**
   * Enters session `id` (as table.peek gives it) in the directory when its local peer count
   * changed, or when due. An entry written before and unchanged since has its time to live
   * renewed only, unless its one local peer waits for a partner: the full write reads back the
   * other relays' fields, where that partner may turn up.
   */
  private note(id: string, held: Session | number, force: boolean): void {
    const localPeers = countLocal(held);
    const identity = localIdentity(held);
    const now = Date.now();
    const previous = this.announced.get(id);
    const same = previous !== undefined && previous.localPeers === localPeers && previous.identity === identity;
    if (!force && same && now - previous.at < this.refreshMs / 2) return;
    const entry: AnnouncedEntry = { localPeers, identity, at: now };
    const write = this.announced.set(id, entry);
    if (same && (localPeers !== 1 || this.bridge.link(id))) void this.renew(id, entry, write);
    else void this.announce(id, localPeers, identity);
  }

  /** Renews the time to live of `entry` (write `write` of session `id`); writes it whole when the directory no longer holds it (and it is still the latest). */
  private async renew(id: string, entry: AnnouncedEntry, write: number): Promise<void> {
    if ((await this.directory.renew(id, this.ttlMs)) === false && this.announced.current(write)) {
      await this.announce(id, entry.localPeers, entry.identity);
    }
  }

  private async announce(sessionId: string, localPeers: number, identity: string | undefined): Promise<void> {
    const others = await this.directory.announce(sessionId, localPeers, this.ttlMs, identity);
    if (!others || localPeers !== 1 || this.bridge.link(sessionId)) return;
    // The other peer is on another relay when exactly one other live relay holds exactly one peer.
    let candidates: string[] = [];
    for (const [relay, holder] of others) {
      if (holder.peers !== 1) continue;
      if (identity !== undefined && holder.identity === identity) {
        // The peer registered here is the one that relay holds: it moved here, that registration is stale.
        void this.directory.left(relay, sessionId, identity);
        void this.directory.forget(sessionId, relay);
        continue;
      }
      // Written by a relay of the fleet: its frames (a pong, data) are accepted from now on.
      this.members.learn(relay);
      const alive = await this.directory.alive(relay);
      if (alive) candidates.push(relay);
      else if (alive === false) void this.directory.forget(sessionId, relay);
    }
    // Two relays holding one peer each: one of them may have just died, its health key not yet
    // expired (the peer it held registered here since). Those that do not answer drop out.
    if (candidates.length > 1) {
      const gone = await Promise.all(candidates.map((relay) => this.gone(relay, true)));
      for (const [i, relay] of candidates.entries()) if (gone[i]) void this.directory.forget(sessionId, relay);
      candidates = candidates.filter((_, i) => !gone[i]);
    }
    if (candidates.length !== 1) return;
    const relay = candidates[0]!;
    const remoteIdentity = others.get(relay)?.identity;
    if (this.attach(sessionId, relay, this.endpointOf(relay), remoteIdentity) || (await this.retarget(sessionId, relay, this.endpointOf(relay), remoteIdentity)))
      await this.directory.join(relay, sessionId, identity);
  }

  /**
   * The remote peer of a bridged session re-registered on another relay (its relay went away):
   * point the link there. Only when the relay the link points at is gone from the directory.
   */
  private async retarget(sessionId: string, relay: string, target: Endpoint | undefined, identity?: string): Promise<boolean> {
    const link = this.bridge.link(sessionId);
    if (!link || !target || link.relay === relay) return false;
    // The remote peer itself, by its token, registered at `relay`: follow it, its old relay alive or not.
    const samePeer = identity !== undefined && link.remoteIdentity === identity;
    if (!samePeer && !(await this.gone(link.relay, true))) return false;
    if (this.bridge.link(sessionId) !== link) return false;
    this.follow(link, relay, target);
    return true;
  }

  private follow(link: RemoteLink, relay: string, target: Endpoint): void {
    const previous = link.relay;
    link.relay = relay;
    link.target = target;
    const local = this.relay.table.session(link.sessionId)?.peers.find((p) => !isVirtual(p.endpoint));
    this.bridge.retarget(link, local && { peerId: local.id, endpoint: local.endpoint, direction: directionOf(local), observeBudget: OBSERVE_BUDGET });
    this.logger.info("bridged session moved to another relay", { session: link.sessionId, from: previous, to: relay });
  }

  /**
   * Whether `relay` is gone: the directory says so (its health key expired), or it does not answer
   * a ping. The directory alone would take three heartbeats to notice a death.
   */
  private async gone(relay: string, ask = false): Promise<boolean> {
    if (this.deadRelays.has(relay) || this.liveness.known(relay) === "gone") return true;
    if ((await this.directory.alive(relay)) === false) {
      this.deadRelays.add(relay);
      return true;
    }
    return !(await this.liveness.check(relay, ask));
  }

  /** The member relay at `from`, for bridge frames: frames from any other address are refused. */
  senderOf(from: Endpoint, refresh = true): string | undefined {
    return this.members.senderOf(from, refresh);
  }

  heard(relay: string): void {
    this.liveness.heard(relay);
  }

  pong(relay: string, payload: Uint8Array): void {
    this.liveness.answered(relay, payload);
  }

  /** Authentic data frame from member `relay` for a session that has no link here (its join message was missed). */
  unlinked(sessionId: string, relay: string, payload: Uint8Array): void {
    if (!this.attach(sessionId, relay, this.endpointOf(relay))) return;
    const link = this.bridge.link(sessionId);
    if (link) this.bridge.deliver(link, payload);
  }

  /**
   * The remote peer's new relay spoke first (before its join message): the link follows it only
   * once its relay is known to be gone; until then, its frames are not delivered, and the first
   * starts a check.
   */
  moved(link: RemoteLink, relay: string): boolean {
    if (this.deadRelays.has(link.relay) || this.liveness.known(link.relay) === "gone") {
      const target = this.endpointOf(relay);
      if (!target) return false;
      this.follow(link, relay, target);
      return true;
    }
    void this.gone(link.relay);
    return false;
  }

  /**
   * A REG found a bridged session full: its sender may be the remote peer, registering here after
   * its relay died. The stand-in gives way when that relay is gone; when that is not known yet,
   * the REG waits for a ping (well under a second) and is offered to the relay again.
   */
  standIn(link: RemoteLink, from: Endpoint, raw: Uint8Array): StandInVerdict {
    const relay = link.relay;
    const identity = link.remoteIdentity === undefined ? undefined : identityOf(raw);
    if (identity !== undefined && identity === link.remoteIdentity) {
      // The remote peer itself (its token) registered here: its registration there is stale.
      this.logger.info("peer of a bridged session moved here from its relay", { session: link.sessionId, relay, peer: formatEndpoint(from) });
      void this.directory.left(relay, link.sessionId, identity);
      return this.giveWay(link);
    }
    const known = this.deadRelays.has(relay) ? "gone" : this.liveness.known(relay);
    if (known === "gone") {
      this.logger.info("peer of a bridged session registered here after its relay died", { session: link.sessionId, relay, peer: formatEndpoint(from) });
      return this.giveWay(link);
    }
    // Heard a moment ago proves nothing about now: the relay is asked, unless it just answered
    // (the REGs offered again after a check find that answer).
    if (this.held.offering) return "live";
    const key = `relay:${relay}`;
    if (this.held.hold(key, from, raw)) void this.gone(relay, true).then(() => this.held.offer(this.held.take(key)));
    return "checking";
  }

  /** The stand-in gives way to the peer registering here: the link and the other relay's fields go. */
  private giveWay(link: RemoteLink): StandInVerdict {
    void this.directory.forget(link.sessionId, link.relay);
    queueMicrotask(() => {
      if (!this.relay.table.peerAt(link.virtual)) this.bridge.removeLink(link);
    });
    return "gone";
  }

  /** A REG with the `move` flag for a session new here (placement.ts). */
  place(sessionId: string, from: Endpoint, raw: Uint8Array): "here" | "checking" {
    return this.placement.place(sessionId, from, raw);
  }

  /** Pairs the session's lone local peer with a virtual peer standing for the remote one. */
  private attach(sessionId: string, relay: string, target: Endpoint | undefined, remoteIdentity?: string): boolean {
    if (!target || !this.waitingAlone(sessionId) || this.bridge.link(sessionId)) return false;
    const table = this.relay.table;
    const link = this.bridge.createLink(sessionId, relay, target);
    link.remoteIdentity = remoteIdentity;
    this.members.learn(relay);
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
      // Relays found dead before are asked again: one that came back is no longer dead.
      const relays = [...new Set([...linked, ...this.deadRelays])];
      const alive = await Promise.all(relays.map((relay) => this.directory.alive(relay)));
      for (const [i, relay] of relays.entries()) if (alive[i] === false) this.deadRelays.add(relay);
      else if (alive[i]) this.deadRelays.delete(relay);
      await this.members.refresh();
      this.refresh(false);
    } catch (error) {
      this.logger.error("fleet tick failed", { error: String((error as Error)?.stack ?? error) });
    } finally {
      this.ticking = false;
    }
  }

  /** Whether `from` is a relay of the fleet: such an address is never registered as a peer. */
  isMember(from: Endpoint): boolean {
    return this.members.has(from);
  }

  /**
   * Re-enters the sessions whose entries are due (written `refreshMs` ago or more), oldest first,
   * or with `all` (after a directory outage, when entries may have expired) every entered session,
   * then the due ones. Time-bounded passes as expiry's; what a pass costs is what is due, not the
   * number of sessions (table.peek reads a packed session without unpacking it). Asked for while
   * a walk of all is on, `all` starts it again from the first session.
   */
  private refresh(all: boolean): void {
    if (all) this.walk = this.announced.sessionIds();
    if (!this.refreshing) this.refreshSlice();
  }

  private refreshSlice(): void {
    this.refreshing = false;
    if (this.stopped) return;
    const now = Date.now();
    if (boundedPass(() => performance.now(), () => this.refreshNext(now))) {
      this.refreshing = true;
      setTimeout(() => this.refreshSlice(), 0);
    }
  }

  /** Re-enters or withdraws the next session of the walk, or the next due one; false when none is left. */
  private refreshNext(now: number): boolean {
    if (this.walk) {
      const next = this.walk.next();
      if (next.done) this.walk = undefined;
      else this.recheck(next.value, true);
      return true;
    }
    const due = this.announced.takeDue(now - this.refreshMs);
    if (due === undefined) return false;
    if (due !== null) this.recheck(due, true);
    return true;
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

/** Peers of the session that are here, of a session object or a compact one's peer count (table.peek: all here). */
function countLocal(session: Session | number): number {
  if (typeof session === "number") return session;
  let n = 0;
  for (const p of session.peers) if (!isVirtual(p.endpoint)) n++;
  return n;
}

/** The identity of a session's one local peer (when it sent a peer token; a compact session's peers sent none). */
function localIdentity(session: Session | number): string | undefined {
  if (typeof session === "number") return undefined;
  let identity: string | undefined;
  let n = 0;
  for (const p of session.peers) {
    if (isVirtual(p.endpoint)) continue;
    n++;
    identity = p.identity;
  }
  return n === 1 ? identity : undefined;
}

/** The identity a REG's peer token gives, if it carries one. */
function identityOf(raw: Uint8Array): string | undefined {
  const reg = parseReg(raw);
  return reg.ok && reg.peer !== undefined ? peerIdentity(reg.peer) : undefined;
}
