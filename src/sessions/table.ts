import { type Endpoint, sameEndpoint } from "../net/address.ts";
import { DropReason, RefusalCode } from "../protocol/errors.ts";
import { ACK, RETRY_LENGTH, refusalReply } from "../protocol/replies.ts";
import { hostOf } from "../net/address.ts";
import { isLongHeader, readLongHeaderIds, shortHeaderDcid } from "../protocol/quic.ts";
import { confirmedAt, MAX_CONFIRMED_PER_PEER, meetsRule, MIN_EVIDENCE_CID_BYTES, newPeerCids, noteAnswer, noteDcid, type PeerCids } from "./cid-evidence.ts";
import { CidIndex } from "./cid-index.ts";
import { CompactStore, PROBES, REGULAR } from "./compact-store.ts";
import { HeldQueue } from "./held.ts";
import { PeerIndex } from "./peer-index.ts";
import { RelaySpeakers } from "./relay-speakers.ts";
import { IntDeque } from "../collections/int-deque.ts";
import { ShardedMap } from "./sharded-map.ts";
import { ShardedSet } from "./sharded-set.ts";
import { directionOf, partnerOf } from "./peer.ts";
import type { AdmissionCheck, Clock, Peer, RebindKind, RegProof, Session, SessionLimits, SessionSink, SessionStats, StandIns, TableView } from "./types.ts";
import { defaultSessionLimits, isProbeSessionId, NO_CIDS, NONE_HELD } from "./types.ts";

/** A session as plain data; times are milliseconds idle when exported. */
export interface SessionSnapshot {
  id: string;
  idleMs: number;
  peers: { address: string; port: number; idleMs: number; proven?: boolean }[];
}

/**
 * The session table: who is paired with whom, and the rules for registering, rebinding,
 * holding early datagrams and expiring. Pure: no sockets, no logger; time from the injected clock,
 * effects through the sink. The rules are written out in docs/protocol.md.
 */
export class SessionTable implements TableView {
  readonly stats: SessionStats = {
    sessionsCreated: 0,
    sessionsPaired: 0,
    sessionsExpired: 0,
    rebinds: { reg: 0, cid: 0, quiet: 0 },
    refusals: {},
    drops: {},
    heldAccepted: 0,
    heldDelivered: 0,
    challenges: 0,
    standInsReplaced: 0,
  };
  readonly limits: SessionLimits;
  /**
   * Every session's slot and its place in an order of last activity (sessions other than probes',
   * and the probes' apart: they expire sooner), so expiry stops at the first live one; settled
   * sessions are kept there compact instead of as objects (see compact()).
   */
  private readonly store = new CompactStore(() => this.clock.now());
  /** Expanded sessions by id; compact ones are in the store. */
  private readonly sessions = new ShardedMap<Session>();
  /** Expanded peers; compact ones are in the store. */
  private readonly peers = new PeerIndex();
  /** Slots of expanded sessions that may have settled since they were queued (see compact()). */
  private readonly settling = new IntDeque();
  private readonly cids = new CidIndex(
    (ref) => this.expand(ref >>> 1).peers[ref & 1]!,
    (ref) => this.store.addressOf(ref),
  );
  private readonly held: HeldQueue;
  private readonly speakers = new RelaySpeakers();
  /** When activity() last ran: the routes it reports carried traffic after this. */
  private lastActivityAt = Number.NEGATIVE_INFINITY;
  /** Sessions with both peers, kept as they change: read per scrape, never counted by a walk. */
  private paired = 0;
  /**
   * Ids whose saved form may differ from what was last handed out by takeChanged(); undefined
   * (nothing recorded) until trackChanges(): a relay without a state file keeps no such set.
   */
  private changed: ShardedSet | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly sink: SessionSink,
    limits: Partial<SessionLimits> = {},
    private readonly admit: AdmissionCheck = () => undefined,
    /** Peers standing for peers on other relays (fleet); none on a single relay. */
    private readonly standIns?: StandIns,
  ) {
    this.limits = { ...defaultSessionLimits, ...limits };
    this.held = new HeldQueue(this.limits, this.stats);
  }

  peersInGroup(group: string): number {
    if (!group.includes(":")) return this.countOnHost(group);
    return this.peers.countInGroup(group) + this.store.countInV6Group(group);
  }
  get sessionCount(): number {
    return this.sessions.size + this.store.sessionCount;
  }
  /** Sessions of `quic-relay probe` (short idle timeout) in the table. */
  get probeSessionCount(): number {
    return this.store.listSize(PROBES);
  }
  get peerCount(): number {
    return this.peers.size + this.store.peerCount;
  }
  /** Sessions kept compact (see compact()). */
  get compactSessionCount(): number {
    return this.store.sessionCount;
  }
  get pairedCount(): number {
    return this.paired;
  }
  /** Sizes of every index, for leak checks (the compact store's indexes counted with the others). */
  indexSizes(): Record<string, number> {
    const compact = this.store.indexSizes;
    return {
      sessions: this.sessions.size + compact.ids,
      peersByKey: this.peers.size + compact.addresses,
      peersById: compact.routes,
      hosts: this.peers.hostCount,
      cids: this.cids.size,
      heldBytes: this.held.totalBytes,
    };
  }
  /** Session `id` (expanded, if it was compact), or undefined. */
  session(id: string): Session | undefined {
    const session = this.sessions.get(id);
    if (session) return session;
    const slot = this.store.findId(id);
    return slot < 0 ? undefined : this.expand(slot);
  }
  /**
   * Session `id` as it is held, never expanded: its object when it is one; when it is compact, the
   * number of its peers (a compact session has no virtual peer and no peer token: settled());
   * undefined when there is none. For a look at every session, which must not unpack them all.
   */
  peek(id: string): Session | number | undefined {
    const session = this.sessions.get(id);
    if (session) return session;
    const slot = this.store.findId(id);
    return slot < 0 ? undefined : this.store.peerCountOf(slot);
  }

  /**
   * The sessions held as objects (in no particular order); the table must not change while this
   * is iterated. Every session with a peer whose address is no IP address (a fleet's virtual
   * peers) is among them: such a session is never compact.
   */
  expandedSessions(): IterableIterator<Session> {
    return this.sessions.values();
  }
  /** Ids of every session, compact or not (in no particular order). */
  *sessionIds(): Generator<string> {
    for (let slot = this.store.oldest(REGULAR); slot >= 0; slot = this.store.newerThan(slot)) yield this.idAt(slot);
    for (let slot = this.store.oldest(PROBES); slot >= 0; slot = this.store.newerThan(slot)) yield this.idAt(slot);
  }
  /** The peer at this address (its session expanded, if it was compact). */
  peerAt(from: Endpoint): Peer | undefined {
    return this.peerAtAddress(from.address, from.port);
  }
  /** The peer with this route id (its session expanded, if it was compact). */
  peerById(id: number): Peer | undefined {
    const slot = this.store.slotOfRoute(id);
    if (slot < 0) return undefined;
    return peerWithId(this.store.expandedAt(slot) ?? this.expand(slot), id);
  }

  /**
   * Looks at `budget` sessions queued for packing at most, and packs the settled ones into the
   * compact store: a session that holds no early datagram, whose peers have no peer token, with an
   * id and addresses that pack, and that was not active for `limits.compactAfterMs`. Compact, a
   * session costs a few typed-array entries instead of a dozen objects (its learnt connection IDs,
   * if any, are kept as they are); traffic on its routes keeps it compact, anything else the rules
   * must look at expands it again first, exactly as it was.
   * Candidates are the sessions queued when they were created, expanded or active since the last
   * pass, oldest first: cost is the budget, never a walk of the table. Returns the number packed.
   */
  compact(budget = Number.POSITIVE_INFINITY): number {
    const now = this.clock.now();
    const settleMs = this.limits.compactAfterMs;
    if (settleMs < 0) return 0;
    let packed = 0;
    // Each queued slot is looked at once per pass at most: one not settled yet goes to the back.
    const limit = Math.min(budget, this.settling.length);
    for (let seen = 0; seen < limit; seen++) {
      const slot = this.settling.shift()!;
      if (!this.store.takeQueued(slot)) continue;
      const session = this.store.expandedAt(slot);
      if (!session || !this.settled(session)) continue;
      if (now - session.lastActivity < settleMs) {
        // Not yet: back in the queue, behind what came since.
        this.queueCompaction(session);
        continue;
      }
      if (this.pack(session)) packed++;
    }
    return packed;
  }

  /** Packs an expanded, settled session, unless its id or addresses do not pack. */
  private pack(session: Session): boolean {
    const peers = session.peers;
    const learnt = session.cids !== NO_CIDS || peers[0]?.cids !== undefined || peers[1]?.cids !== undefined;
    const extra: LearntCids | undefined = learnt ? { confirmed: session.cids, peers: peers.map((p) => p.cids) } : undefined;
    if (!this.store.compact(session, extra)) return false;
    this.sessions.delete(session.id);
    for (const peer of peers) this.unindexPeer(peer);
    if (session.cids === NO_CIDS) return true;
    // The index keeps the session's confirmed IDs, naming the compact peers by ref.
    const toRef = (sender: Peer | number) => (typeof sender === "number" ? sender : 2 * session.slot + peers.indexOf(sender));
    for (const cid of session.cids) this.cids.repoint(cid, toRef);
    return true;
  }

  /** Sessions queued for compact() to look at. */
  get compactBacklog(): number {
    return this.settling.length;
  }

  /** Whether the rules keep nothing for `session` beyond what the compact store packs. */
  private settled(session: Session): boolean {
    if (session.held !== NONE_HELD || session.heldBytes !== 0) return false;
    for (const peer of session.peers) {
      if (peer.identity !== undefined) return false;
      if (this.standIns?.isStandIn(peer.endpoint)) return false;
    }
    return true;
  }

  private queueCompaction(session: Session): void {
    if (this.store.markQueued(session.slot)) this.settling.push(session.slot);
  }

  /**
   * The compact session in `slot` as objects again, back in the table's own indexes unless
   * `index` is false: it is about to be removed (removeSession takes nothing from indexes it is not in).
   */
  private expand(slot: number, index = true): Session {
    const learnt = this.store.extraOf(slot) as LearntCids | undefined;
    const session = this.store.expand(slot);
    if (index) {
      this.sessions.set(session.id, session);
      for (const peer of session.peers) this.indexPeer(peer);
    }
    if (learnt) {
      session.cids = learnt.confirmed;
      for (const [k, peer] of session.peers.entries()) peer.cids = learnt.peers[k];
      const toPeer = (sender: Peer | number) => (typeof sender === "number" ? session.peers[sender & 1]! : sender);
      for (const cid of session.cids) this.cids.repoint(cid, toPeer);
    }
    if (index) this.queueCompaction(session);
    return session;
  }

  private idAt(slot: number): string {
    return this.store.expandedAt(slot)?.id ?? this.store.idOf(slot);
  }

  private hasSession(id: string): boolean {
    return this.sessions.has(id) || this.store.findId(id) >= 0;
  }

  private peerAtAddress(address: string, port: number): Peer | undefined {
    const peer = this.peers.at(address, port);
    if (peer) return peer;
    const ref = this.store.peerAt(address, port);
    return ref < 0 ? undefined : this.expand(ref >>> 1).peers[ref & 1];
  }

  private hasPeerAt(address: string, port: number): boolean {
    return this.peers.at(address, port) !== undefined || this.store.peerAt(address, port) >= 0;
  }

  /** Peers on this host (as hostOf gives it), compact or not. */
  private countOnHost(host: string): number {
    return this.peers.countOnHost(host) + this.store.countOnHost(host);
  }

  /**
   * A well-formed `REG:<sessionId>` from `from`. `proof` is what its cookie showed: "valid" (the
   * sender receives at `from`), "invalid" (it asked for one), or "none" (the original protocol).
   */
  register(sessionId: string, from: Endpoint, raw: Uint8Array, proof: RegProof = "none", identity?: string): void {
    const now = this.clock.now();
    const proven = proof === "valid";
    const existing = this.peerAtAddress(from.address, from.port);
    if (existing && existing.session.id === sessionId) {
      // A keepalive: the member is known at this address already, whatever its cookie says.
      this.touchPeer(existing, now);
      if (proven && !existing.proven) this.prove(existing);
      existing.identity ??= identity;
      return this.acknowledge(sessionId, from);
    }
    if (!proven && (proof === "invalid" || this.limits.requireProof)) return this.challenge(sessionId, from, raw);
    // Without proof, an address whose own session is live stays where it is (a forged REG would move it).
    if (existing && !proven && now - existing.session.lastActivity < this.limits.memberHoldMs) {
      // Not answered: the reply would land in a live peer's socket, which may not have sent this.
      return this.refuse(RefusalCode.Busy, sessionId, from, 0);
    }
    let session = this.session(sessionId);
    if (!session) {
      const refusal = this.admit(sessionId, from, raw, this);
      if (refusal) return this.refuse(refusal, sessionId, from, raw.length);
    }
    if (session && session.peers.length === 2) {
      const host = hostOf(from.address);
      const victim = leastRecentlySeen(session.peers.filter((p) => hostOf(p.endpoint.address) === host));
      if (victim) {
        if (this.wouldPairRelays(from, proven, partnerOf(victim)!, now)) return this.drop(DropReason.RelayPair);
        if (existing) this.leaveFor(existing, sessionId, from, now);
        // Routes first: what the partner sends after the ACK already reaches the new address.
        this.rebind(victim, from, "reg", now, proven);
        return this.acknowledge(sessionId, from);
      }
      const standIn = this.standIns && session.peers.find((p) => this.standIns!.isStandIn(p.endpoint));
      const verdict = standIn ? this.standIns!.check(sessionId, standIn.endpoint, from, raw) : "live";
      if (verdict === "checking") return this.drop(DropReason.StandInCheck);
      if (verdict === "live") return this.refuse(RefusalCode.Full, sessionId, from, raw.length);
      // The peer's relay is gone: it registered here; its stand-in gives way, and the session
      // pairs as if the partner had been waiting alone.
      this.stats.standInsReplaced++;
      this.removePeer(standIn!, now);
    }
    if (session && this.wouldPairRelays(from, proven, session.peers[0]!, now)) return this.drop(DropReason.RelayPair);
    // The address leaves the session it was in before joining another.
    if (existing) {
      this.leaveFor(existing, sessionId, from, now);
      session = this.session(sessionId);
    }
    if (!session) {
      session = newSession(sessionId, now);
      this.addSession(session);
      this.stats.sessionsCreated++;
      this.addPeer(session, from, now, proven, identity);
      this.sink.event({ kind: "created", session: sessionId, peer: from });
      return this.acknowledge(sessionId, from);
    }
    // The ACK goes out before any held datagram: clients read the first reply to REG as the answer.
    this.pair(session, from, proven, now, () => this.acknowledge(sessionId, from), identity);
  }

  /** The address of `peer` registered for another session: it leaves its own (a "moved" event). */
  private leaveFor(peer: Peer, sessionId: string, from: Endpoint, now: number): void {
    this.sink.event({ kind: "moved", from: peer.session.id, to: sessionId, peer: from });
    this.removePeer(peer, now);
  }

  /** The one way a REG is answered with ACK. */
  private acknowledge(sessionId: string, from: Endpoint): void {
    this.sink.reply(from, ACK);
    this.sink.event({ kind: "registered", session: sessionId, peer: from });
  }

  /**
   * Pairs a session's lone peer with a peer that registered on another relay of the fleet,
   * standing here as `remote` (a virtual endpoint the data plane bridges). The other relay
   * answered that peer's REG, and bridge frames are authenticated, so there is no ACK to send and
   * no address to prove. False when the session is not waiting for a partner.
   */
  attachRemote(sessionId: string, remote: Endpoint): boolean {
    const session = this.session(sessionId);
    if (!session || session.peers.length !== 1 || this.hasPeerAt(remote.address, remote.port)) return false;
    this.pair(session, remote, true, this.clock.now());
    return true;
  }

  /**
   * The peer with `identity` (its token's hash) registered at another relay of the fleet: its
   * registration here is stale and goes. A session left with nobody but a stand-in goes too.
   * False when no local peer of the session has that identity.
   */
  leave(sessionId: string, identity: string): boolean {
    const session = this.session(sessionId);
    const peer = session?.peers.find((p) => p.identity === identity && !this.standIns?.isStandIn(p.endpoint));
    if (!session || !peer) return false;
    this.removePeer(peer, this.clock.now());
    if (session.peers.length > 0 && session.peers.every((p) => this.standIns?.isStandIn(p.endpoint))) this.removeSession(session);
    return true;
  }

  private pair(session: Session, endpoint: Endpoint, proven: boolean, now: number, acknowledge?: () => void, identity?: string): void {
    const first = session.peers[0]!;
    const second = this.addPeer(session, endpoint, now, proven, identity);
    this.touchSession(session, now);
    this.stats.sessionsPaired++;
    // ACK, then what the first peer sent early, then the routes: nothing the first peer sends
    // after this can overtake its held datagrams, and clients read the first reply as the answer.
    acknowledge?.();
    const held = this.held.take(session, now);
    for (const d of held) {
      this.watch(first, d, now);
      this.sink.forward(second.endpoint, d);
    }
    this.stats.heldDelivered += held.length;
    this.routeBoth(first);
    this.sink.event({ kind: "paired", session: session.id, peers: [first.endpoint, second.endpoint], held: held.length });
  }

  /**
   * A line of the relay protocol (`ACK`, `ERR`, `RETRY`) arrived from `from`: only relays send
   * those, so `from` is a relay or someone forging one. Never forwarded. A session whose two
   * peers both speak the relay protocol is two relays forwarding to each other: it is removed.
   * A peer that proved its address is no relay, so lines forged from its address change nothing.
   */
  relayLine(from: Endpoint): void {
    const now = this.clock.now();
    this.drop(DropReason.RelayLine);
    const peer = this.peerAtAddress(from.address, from.port);
    if (peer?.proven) return;
    this.speakers.note(from, now);
    const partner = peer && partnerOf(peer);
    if (!peer || !partner || partner.proven || !this.speakers.has(partner.endpoint, now)) return;
    const session = peer.session;
    this.sink.event({ kind: "relay-pair", session: session.id, peers: session.peers.map((p) => p.endpoint) });
    this.removeSession(session);
    this.drop(DropReason.RelayPair);
  }

  /** A REG this relay will not register at all (from a relay's address); no reply, no state. */
  dropReg(reason: DropReason): void {
    this.drop(reason);
  }

  /** A REG refused before the session rules (rate, authentication). Members keep their session. */
  refuseReg(code: RefusalCode, sessionId: string | undefined, from: Endpoint, raw: Uint8Array): void {
    this.refuse(code, sessionId, from, raw.length);
  }

  /** A REG-prefixed datagram that did not parse. Members' datagrams are data that merely look like REG. */
  malformedReg(code: RefusalCode, from: Endpoint, raw: Uint8Array): void {
    const peer = this.peerAtAddress(from.address, from.port);
    if (peer) return this.datagram(from, raw);
    this.refuse(code, undefined, from, raw.length);
  }

  /** A non-REG datagram that no data-plane route forwarded. */
  datagram(from: Endpoint, data: Uint8Array): void {
    const now = this.clock.now();
    const peer = this.peerAtAddress(from.address, from.port);
    if (peer) {
      this.touchPeer(peer, now);
      const partner = partnerOf(peer);
      if (partner) {
        // No data-plane route (the partner is on another relay): the table sees every datagram.
        this.watch(peer, data, now);
        this.heard(peer, now);
        if (partner.cids) noteAnswer(partner.cids, now);
        this.sink.forward(partner.endpoint, data);
      } else {
        this.watch(peer, data, now);
        this.held.hold(peer.session, data, now);
      }
      return;
    }
    // Both rebind rules need a peer on the sender's host: junk from anywhere else costs one lookup.
    if (!this.peers.hasAddress(from.address) && this.store.countOnAddress(from.address) === 0) return this.drop(DropReason.UnknownSource);
    const host = hostOf(from.address);
    const claim = this.cids.claimant(data, host);
    if (claim && partnerOf(claim.peer)) return this.claimed(claim.peer, claim.cid, from, data, now);
    const quiet = this.quietSoleCandidate(host, now);
    if (quiet) return this.follow(quiet, from, "quiet", data, now);
    this.drop(DropReason.UnknownSource);
  }

  /**
   * The peer that bare data from a new port of `host` can only belong to: the one peer on that
   * host across all sessions, paired, and silent for rebindQuietMs. Anything ambiguous, or a peer
   * that is still talking, is not followed.
   */
  private quietSoleCandidate(host: string, now: number): Peer | undefined {
    const quietMs = this.limits.rebindQuietMs;
    if (quietMs < 0) return undefined;
    if (this.countOnHost(host) !== 1) return undefined;
    const ref = this.store.anyOnHost(host);
    const peer = ref < 0 ? this.peers.soleOnHost(host) : this.expand(ref >>> 1).peers[ref & 1];
    return peer && partnerOf(peer) && now - peer.lastSeen >= quietMs ? peer : undefined;
  }

  private follow(peer: Peer, to: Endpoint, via: RebindKind, data: Uint8Array, now: number): void {
    this.rebind(peer, to, via, now);
    this.watch(peer, data, now);
    this.sink.forward(partnerOf(peer)!.endpoint, data);
  }

  /**
   * A datagram from a new address of `peer`'s host carries `cid`, confirmed for `peer`. Followed
   * on this first packet, unless the peer is in a dispute, or the datagram comes from the address
   * the peer just left on other evidence (then one of the two addresses is forged: a dispute).
   */
  private claimed(peer: Peer, cid: string, from: Endpoint, data: Uint8Array, now: number): void {
    const c = peer.cids!;
    if (c.left && sameEndpoint(c.left, from) && now - c.leftAt < this.limits.cidReturnMs) {
      // Late from the old port with the ID that moved the peer: its own datagram, reordered. Not
      // delivered (the address is no member any more), and no dispute.
      if (cid === c.movedBy) return this.drop(DropReason.UnknownSource);
      return this.dispute(peer, cid, from, data, now);
    }
    if (c.disputedUntil > now) return this.drop(DropReason.CidDisputed);
    this.follow(peer, from, "cid", data, now);
  }

  /**
   * The peer moved to its current address on `c.movedBy`, and its previous address now sends
   * another confirmed ID of the peer. A NAT does not hand a port back, so one of the two is
   * forged: the ID confirmed first keeps the peer, the other ID is forgotten, and the peer is not
   * moved on connection-ID evidence for cidDisputeMs.
   */
  private dispute(peer: Peer, cid: string, from: Endpoint, data: Uint8Array, now: number): void {
    const c = peer.cids!;
    const current = peer.endpoint;
    const movedBy = c.movedBy!;
    const backWins = confirmedAt(c, cid) < confirmedAt(c, movedBy);
    this.unconfirm(peer, backWins ? movedBy : cid);
    c.left = undefined;
    c.movedBy = undefined;
    c.disputedUntil = now + this.limits.cidDisputeMs;
    this.sink.event({ kind: "cid-dispute", session: peer.session.id, kept: backWins ? from : current, refused: backWins ? current : from });
    if (!backWins) return this.drop(DropReason.CidDisputed);
    this.rebind(peer, from, "cid", now);
    this.sink.forward(partnerOf(peer)!.endpoint, data);
  }

  /** A copy of a datagram the data plane already forwarded along `peerId`'s route. */
  observed(peerId: number, data: Uint8Array): void {
    const slot = this.store.slotOfRoute(peerId);
    if (slot < 0) return;
    // A compact session that learnt no connection ID learns one only from a long header with
    // IDs (watch: short headers need the partner's ID length): anything else leaves it compact.
    if (this.store.isCompact(slot) && this.store.extraOf(slot) === undefined && !(isLongHeader(data) && readLongHeaderIds(data))) return;
    const peer = this.peerById(peerId);
    if (peer) this.watch(peer, data, this.clock.now());
  }

  /** Routes that carried traffic since the last call. */
  activity(peerIds: Iterable<number>): void {
    const now = this.clock.now();
    const since = this.lastActivityAt;
    this.lastActivityAt = now;
    for (const id of peerIds) {
      const slot = this.store.slotOfRoute(id);
      if (slot < 0) continue;
      let session = this.store.expandedAt(slot);
      if (!session) {
        // A compact session stays compact unless an ID of its peer now meets the rule.
        if (this.touchCompact(this.store.refOfRoute(slot, id), now, since)) continue;
        session = this.expand(slot);
      }
      const peer = peerWithId(session, id);
      if (!peer) continue;
      this.touchPeer(peer, now);
      this.heard(peer, since);
      const partner = partnerOf(peer);
      if (partner?.cids) noteAnswer(partner.cids, now);
    }
  }

  /** Live sessions as plain data (oldest activity first). */
  exportSessions(): SessionSnapshot[] {
    const now = this.clock.now();
    return [...this.byActivity()].map((slot) => this.snapshotAt(slot, now));
  }

  /** Session `id` as plain data, or undefined when there is no such session (any more). Expands nothing. */
  snapshot(id: string): SessionSnapshot | undefined {
    const now = this.clock.now();
    const session = this.sessions.get(id);
    if (session) return snapshotOf(session, now);
    const slot = this.store.findId(id);
    return slot < 0 ? undefined : this.store.snapshot(slot, now);
  }

  private snapshotAt(slot: number, now: number): SessionSnapshot {
    const session = this.store.expandedAt(slot);
    return session ? snapshotOf(session, now) : this.store.snapshot(slot, now);
  }

  /**
   * Ids of the sessions whose snapshot may have changed since the previous call: created, active,
   * peers joined, moved, proved or left, removed (snapshot() then says undefined). The set is
   * handed over whole (O(1)) and the table starts a new one, so a save writes only what changed.
   * Sessions put back by restoreSessions are not in it.
   */
  takeChanged(): ShardedSet {
    const out = this.changed ?? new ShardedSet();
    if (this.changed) this.changed = new ShardedSet();
    return out;
  }

  /** Puts ids back into the changed set (a save that did not complete must write them next time). */
  markChanged(ids: Iterable<string>): void {
    if (this.changed) for (const id of ids) this.changed.add(id);
  }

  /** Starts recording changed sessions for takeChanged() (a state file is kept); idempotent. */
  trackChanges(): void {
    this.changed ??= new ShardedSet();
  }

  /**
   * Re-creates saved sessions and installs the routes of paired ones; meant for an empty table at
   * startup. Skips what expired, what is malformed and what collides with existing state.
   * Held datagrams and learned connection IDs are not carried over. Returns the number restored.
   */
  restoreSessions(snapshots: readonly SessionSnapshot[]): number {
    const now = this.clock.now();
    let restored = 0;
    for (const snap of [...snapshots].sort((a, b) => b.idleMs - a.idleMs)) {
      const [p0, p1] = snap.peers;
      const distinct = snap.peers.length === 1 || (snap.peers.length === 2 && (p0!.address !== p1!.address || p0!.port !== p1!.port));
      const usable =
        snap.idleMs < this.timeoutOf(snap.id) &&
        !this.hasSession(snap.id) &&
        distinct &&
        snap.peers.every((p) => !this.hasPeerAt(p.address, p.port));
      if (!usable) continue;
      const session = newSession(snap.id, now - snap.idleMs);
      this.addSession(session);
      for (const p of snap.peers) this.addPeer(session, { address: p.address, port: p.port }, now - Math.max(0, p.idleMs), p.proven === true);
      this.routeBoth(session.peers[0]!);
      // Restored as saved: nothing to write back. Packed at once, as it was idle until now: a
      // restart from a million sessions never holds them all as objects.
      this.changed?.delete(snap.id);
      if (this.limits.compactAfterMs >= 0 && this.settled(session)) this.pack(session);
      restored++;
    }
    return restored;
  }

  /**
   * Remove sessions idle for the timeout (probes' sessions: for the probe timeout), at most
   * `budget` of them, and age out held datagrams. Returns the number expired: when it equals
   * `budget` there may be more, and the caller runs another pass after serving I/O, so a mass
   * expiry never holds the thread for long. Cost: what expires, not what stays.
   */
  expire(budget = Number.POSITIVE_INFINITY): number {
    const now = this.clock.now();
    // Both maps are in order of last activity: each pass stops at its first live session.
    let expired = this.expireIdle(PROBES, this.timeoutOf(undefined), now, budget);
    expired += this.expireIdle(REGULAR, this.limits.timeoutMs, now, budget - expired);
    this.held.expire(now);
    this.speakers.expire(now);
    return expired;
  }

  private expireIdle(list: number, timeoutMs: number, now: number, budget: number): number {
    let expired = 0;
    for (let slot = this.store.oldest(list); slot >= 0; slot = this.store.oldest(list)) {
      const idleMs = now - this.store.lastActivityOf(slot);
      if (expired >= budget || idleMs < timeoutMs) break;
      if (this.store.isCompact(slot) && this.store.extraOf(slot) === undefined) {
        const id = this.store.idOf(slot);
        this.sink.event({ kind: "expired", session: id, idleMs, peers: this.store.peerCountOf(slot) });
        this.removeCompact(list, slot, id);
      } else {
        // One with learnt connection IDs is expanded to go (not into the table's own indexes,
        // which it is leaving): the IDs' index points at its peers.
        const session = this.store.expandedAt(slot) ?? this.expand(slot, false);
        this.sink.event({ kind: "expired", session: session.id, idleMs, peers: session.peers.length });
        this.removeSession(session);
      }
      this.stats.sessionsExpired++;
      expired++;
    }
    return expired;
  }

  /** Every session's slot, oldest activity first: the two orders merged. */
  private *byActivity(): Generator<number> {
    const store = this.store;
    let a = store.oldest(REGULAR);
    let b = store.oldest(PROBES);
    while (a >= 0 || b >= 0) {
      if (b < 0 || (a >= 0 && store.lastActivityOf(a) <= store.lastActivityOf(b))) {
        yield a;
        a = store.newerThan(a);
      } else {
        yield b;
        b = store.newerThan(b);
      }
    }
  }

  /** The order a session is kept in: probes' sessions apart, as they expire sooner. */
  private orderOf(session: Session): number {
    return isProbeSessionId(session.id) ? PROBES : REGULAR;
  }

  /** The idle timeout of session `id`; of probes' sessions when `id` is undefined. */
  private timeoutOf(id: string | undefined): number {
    const { timeoutMs, probeTimeoutMs } = this.limits;
    return id === undefined || isProbeSessionId(id) ? Math.min(timeoutMs, probeTimeoutMs) : timeoutMs;
  }

  private addSession(session: Session): void {
    this.changed?.add(session.id);
    session.slot = this.store.allocate(session);
    this.sessions.set(session.id, session);
    this.store.append(this.orderOf(session), session.slot);
    this.queueCompaction(session);
  }

  private challenge(sessionId: string, from: Endpoint, raw: Uint8Array): void {
    // The RETRY must not be larger than the REG it answers (no amplification).
    if (raw.length < RETRY_LENGTH) return this.refuse(RefusalCode.Short, sessionId, from, raw.length);
    this.stats.challenges++;
    this.sink.challenge(from, sessionId);
  }

  /** Pairing `from` with `other` would join two addresses that speak the relay protocol. */
  private wouldPairRelays(from: Endpoint, fromProven: boolean, other: Peer, now: number): boolean {
    return !fromProven && !other.proven && this.speakers.has(from, now) && this.speakers.has(other.endpoint, now);
  }

  /** The peer proved its current address: routes towards it lose their bound on unanswered bytes. */
  private prove(peer: Peer): void {
    peer.proven = true;
    this.changed?.add(peer.session.id);
    const partner = partnerOf(peer);
    if (partner) this.route(partner, peer);
  }

  /** Datagrams from `peer` go to `to`; the direction is read from the session's order of peers. */
  private route(peer: Peer, to: Peer): void {
    this.sink.route(peer, to, directionOf(peer), Math.max(0, to.cids?.ownLength ?? 0));
  }

  /** Routes both ways between a peer and its partner, if it has one. */
  private routeBoth(peer: Peer): void {
    const partner = partnerOf(peer);
    if (!partner) return;
    this.route(peer, partner);
    this.route(partner, peer);
  }

  /**
   * A QUIC-looking datagram from `peer`. A long header tells the length of the IDs the peer issued
   * (first one only); a short header carries one of the partner's IDs, of the partner's length.
   */
  private watch(peer: Peer, data: Uint8Array, now: number): void {
    if (data.length === 0) return;
    if (isLongHeader(data)) {
      const ids = readLongHeaderIds(data);
      if (!ids || (peer.cids && peer.cids.ownLength >= 0)) return;
      const c = (peer.cids ??= newPeerCids());
      c.ownLength = ids.scid.length / 2;
      // The partner's route now knows which bytes of its short headers to watch.
      const partner = partnerOf(peer);
      if (partner && c.ownLength > 0) this.route(partner, peer);
      return;
    }
    const length = partnerOf(peer)?.cids?.ownLength ?? 0;
    if (length < MIN_EVIDENCE_CID_BYTES) return;
    const dcid = shortHeaderDcid(data, length);
    if (dcid !== undefined) noteDcid((peer.cids ??= newPeerCids()), dcid, now);
  }

  /** `peer` was heard sending at or after `from`: its current ID may now meet the rule. */
  private heard(peer: Peer, from: number): void {
    const c = peer.cids;
    if (!c || !meetsRule(c, from, this.limits.cidAnswerMs)) return;
    if (!this.sink.observing(peer, c.since)) return;
    this.confirm(peer, c, c.current!);
  }

  private confirm(peer: Peer, c: PeerCids, cid: string): void {
    if (!this.cids.add(cid, peer, this.limits.maxCidsPerSession)) return;
    c.confirmed.push({ cid, at: this.clock.now() });
    if (c.confirmed.length > MAX_CONFIRMED_PER_PEER) this.cids.remove(c.confirmed.shift()!.cid, peer);
  }

  /** The ID lost a dispute: forgotten, and never confirmed again. */
  private unconfirm(peer: Peer, cid: string): void {
    const c = peer.cids!;
    c.confirmed = c.confirmed.filter((e) => e.cid !== cid);
    this.cids.ban(cid);
  }

  private addPeer(session: Session, endpoint: Endpoint, now: number, proven: boolean, identity?: string): Peer {
    const peer: Peer = {
      id: this.peers.allocateId(),
      session,
      endpoint,
      lastSeen: now,
      proven,
      cids: undefined,
      identity,
    };
    session.peers.push(peer);
    this.store.setRouteSlot(peer.id, session.slot);
    if (session.peers.length === 2) this.paired++;
    this.changed?.add(session.id);
    this.indexPeer(peer);
    return peer;
  }

  /**
   * Moves a peer to a new address. A REG proves the new address by its own cookie; connection-ID
   * evidence carries the peer's standing over (the ID is known only on the peer's path); bare data
   * after silence proves nothing.
   */
  private rebind(peer: Peer, to: Endpoint, via: RebindKind, now: number, proven = false): void {
    const from = peer.endpoint;
    this.unindexPeer(peer);
    peer.endpoint = to;
    peer.proven = via === "reg" ? proven : via === "cid" ? peer.proven : false;
    const c = peer.cids;
    if (c) {
      // A move on connection-ID evidence remembers where from, for a dispute; any other forgets.
      c.left = via === "cid" ? from : undefined;
      c.leftAt = now;
      c.movedBy = via === "cid" ? c.current : undefined;
    }
    this.indexPeer(peer);
    this.touchPeer(peer, now);
    this.routeBoth(peer);
    this.stats.rebinds[via]++;
    this.sink.event({ kind: "rebound", session: peer.session.id, via, from, to });
  }

  private removePeer(peer: Peer, now: number): void {
    const session = peer.session;
    const partner = partnerOf(peer);
    this.unindexPeer(peer);
    this.unroute(peer);
    this.releaseId(peer.id);
    if (partner) this.unroute(partner);
    if (session.peers.length === 2) this.paired--;
    this.changed?.add(session.id);
    session.peers = session.peers.filter((p) => p !== peer);
    this.cids.forgetSession(session);
    if (session.peers.length === 0) this.removeSession(session);
    else this.touchSession(session, now);
  }

  private removeSession(session: Session): void {
    if (session.peers.length === 2) this.paired--;
    this.changed?.add(session.id);
    for (const peer of session.peers) {
      this.unindexPeer(peer);
      this.unroute(peer);
      this.releaseId(peer.id);
    }
    session.peers = [];
    this.cids.forgetSession(session);
    this.held.discard(session);
    this.sessions.delete(session.id);
    this.store.unlink(this.orderOf(session), session.slot);
    this.store.release(session.slot);
  }

  private unroute(peer: Peer): void {
    this.sink.unroute(peer.id, this.standIns?.isStandIn(peer.endpoint) ?? false);
  }

  /**
   * Removes the compact session `id` in `slot` (of order `list`) without expanding it: what
   * removeSession does, with no objects built only to be dropped (a mass expiry makes little
   * garbage for the collector). Only for one without learnt connection IDs (extraOf): a compact
   * session never has held datagrams, a peer token or a stand-in peer (settled()).
   */
  private removeCompact(list: number, slot: number, id: string): void {
    const peers = this.store.peerCountOf(slot);
    if (peers === 2) this.paired--;
    this.changed?.add(id);
    for (let k = 0; k < peers; k++) {
      const routeId = this.store.routeIdAt(2 * slot + k);
      this.sink.unroute(routeId, false);
      this.releaseId(routeId);
    }
    this.store.unlink(list, slot);
    this.store.removeCompact(slot);
  }

  /** The peer with this route id left: the id may be reused (PeerIndex.allocateId says when). */
  private releaseId(id: number): void {
    this.store.setRouteSlot(id, -1);
    this.peers.releaseId(id);
  }

  private indexPeer(peer: Peer): void {
    this.peers.add(peer);
  }

  private unindexPeer(peer: Peer): void {
    this.peers.remove(peer);
  }

  private touchPeer(peer: Peer, now: number): void {
    peer.lastSeen = now;
    this.touchSession(peer.session, now);
  }

  /** Moves the session to the back of the activity order. */
  private touchSession(session: Session, now: number): void {
    session.lastActivity = now;
    this.changed?.add(session.id);
    this.store.touch(this.orderOf(session), session.slot);
    this.queueCompaction(session);
  }

  /**
   * Traffic on a compact peer's route, heard since `since`: what activity() does for an expanded
   * peer, on the compact session. False (nothing done) when the peer's current ID meets the rule:
   * confirming it takes the peer as an object.
   */
  private touchCompact(ref: number, now: number, since: number): boolean {
    const learnt = this.store.extraOf(ref >>> 1) as LearntCids | undefined;
    const own = learnt?.peers[ref & 1];
    if (own && meetsRule(own, since, this.limits.cidAnswerMs)) return false;
    this.store.touchPeer(ref, now);
    if (this.changed) this.changed.add(this.store.idOf(ref >>> 1));
    const partner = learnt?.peers[(ref & 1) ^ 1];
    if (partner) noteAnswer(partner, now);
    return true;
  }

  /** Counts and logs a refusal; answers it when `replyRoom` (the request's length) fits a reply. */
  private refuse(code: RefusalCode, session: string | undefined, from: Endpoint, replyRoom: number): void {
    this.stats.refusals[code] = (this.stats.refusals[code] ?? 0) + 1;
    const reply = replyRoom > 0 ? refusalReply(code, replyRoom) : undefined;
    if (reply) this.sink.reply(from, reply);
    else if (replyRoom > 0) this.drop(DropReason.SilentRefusal);
    this.sink.event({ kind: "refused", session, code, peer: from });
  }

  private drop(reason: DropReason): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
  }
}

/** The peer of `session` whose route id is `id` (no closure: activity() calls it per route). */
function peerWithId(session: Session, id: number): Peer | undefined {
  for (const peer of session.peers) if (peer.id === id) return peer;
  return undefined;
}

/** What a compact session keeps of the connection IDs its peers showed (table.pack). */
interface LearntCids {
  confirmed: string[];
  peers: (PeerCids | undefined)[];
}

function snapshotOf(s: Session, now: number): SessionSnapshot {
  return {
    id: s.id,
    idleMs: now - s.lastActivity,
    peers: s.peers.map((p) => ({ address: p.endpoint.address, port: p.endpoint.port, idleMs: now - p.lastSeen, proven: p.proven })),
  };
}

function newSession(id: string, now: number): Session {
  return { id, peers: [], lastActivity: now, held: NONE_HELD, heldBytes: 0, cids: NO_CIDS, slot: -1 };
}

function leastRecentlySeen(peers: Peer[]): Peer | undefined {
  let best: Peer | undefined;
  for (const p of peers) if (!best || p.lastSeen < best.lastSeen) best = p;
  return best;
}
