import type { RelayConfig } from "./config/config.ts";
import type { DataPlane, InboundDatagram } from "./dataplane/types.ts";
import { addDirections, planeDirections, type Totals } from "./metrics/directions.ts";
import type { Endpoint } from "./net/address.ts";
import { type Logger, LogRateLimit, levelEnabled } from "./log.ts";
import { CookieMinter } from "./protocol/cookie.ts";
import { isReg, parseReg } from "./protocol/reg.ts";
import { peerIdentity } from "./protocol/peer-token.ts";
import { encodeRetry, isRelayLine } from "./protocol/replies.ts";
import { formatEndpoint } from "./net/address.ts";
import type { StunResponder } from "./discovery/responder.ts";
import { mayBeBindingRequest } from "./protocol/stun.ts";
import { partnerOf } from "./sessions/peer.ts";
import { SessionTable } from "./sessions/table.ts";
import { DropReason, RefusalCode } from "./protocol/errors.ts";
import { OwnAddresses } from "./net/own-addresses.ts";
import { TokenBucket } from "./security/token-bucket.ts";
import type { Clock, Direction, Peer, RegPolicy, RegProof, SessionEvent, SessionLimits, SessionSink, StandInVerdict } from "./sessions/types.ts";
import { systemClock } from "./sessions/types.ts";

/**
 * Datagrams per route copied to the control plane to learn QUIC connection IDs: long headers, and
 * short headers whose destination ID differs from the route's previous one. A handshake takes a
 * few, a connection's ID changes a few more; a route that used them all up confirms no new ID.
 */
export const OBSERVE_BUDGET = 64;

/**
 * REGs without a valid cookie answered per second (RETRY, or a refusal) in verified mode, across
 * all sources: a forger can spend this budget, but not a real host's per-source REG rate.
 */
const UNPROVEN_REPLY_RATE = 20_000;

/** Lifecycle log lines per second, per kind of event; the rest are counted and summed up. */
const LOG_LINES_PER_SECOND = 20;

/**
 * Work time one pass of expiry or packing (or the fleet's refresh walk) may hold the thread, in milliseconds: a pass goes on in
 * steps until it is done or this much passed, then yields to I/O and goes on in the next macrotask.
 * Bounded by time, not by count: a session's removal costs 8-16 µs at 1M on the native plane, and
 * far more the first time (code not compiled yet: 500 took 20 ms), while a stall should stay
 * well under 10 ms.
 */
const PASS_MS = 2;

/**
 * Sessions per step of an expiry pass, and queued sessions looked at per step of packing: the
 * clock is read between steps. Small, as a pass can only stop between steps: the first expiries
 * after a start run code not compiled yet, and 32 of them took 7 ms of the thread's own time at 1M.
 */
const EXPIRE_STEP = 8;
const COMPACT_STEP = 128;

/**
 * Queued sessions the table looks at for packing (SessionTable.compact) per datagram of a control
 * batch: a batch creates a session per datagram at most, so packing keeps pace with registration,
 * and each sweep (every 10-250 ms) packs the rest in time-bounded passes. A few microseconds each.
 */
const COMPACT_PER_DATAGRAM = 2;

/**
 * Runs `step` while it says there is more, until PASS_MS of work time (`workClock`) passed; true
 * when it stopped for time (there is more).
 */
export function boundedPass(workClock: () => number, step: () => boolean): boolean {
  const start = workClock();
  while (step()) if (workClock() - start >= PASS_MS) return true;
  return false;
}

/**
 * Peers that registered on another relay and stand in this relay's table as virtual endpoints
 * (the fleet's bridge). The relay routes and sends to them through this, never through the
 * data plane, and offers it every datagram from an unknown source first.
 */
export interface RemotePeers {
  /** Whether `endpoint` stands for a peer on another relay. */
  isRemote(endpoint: Endpoint): boolean;
  /**
   * Datagrams from the remote peer `peerId` (at the virtual `from`) are delivered to `to`, carrying
   * `direction`, at most `unansweredLimit` bytes (0: no bound) since `to` last sent anything.
   */
  route(peerId: number, from: Endpoint, to: Endpoint, direction: Direction, unansweredLimit: number): void;
  unroute(peerId: number): void;
  /**
   * Datagrams from the local peer `peerId` (at `from`) go to the remote peer `to`: a data-plane
   * route when the plane carries bridged sessions itself, else none (they come up to the table,
   * which sends them with send()).
   */
  routeOut(peerId: number, from: Endpoint, to: Endpoint, direction: Direction, cidLength: number, observeBudget: number): void;
  /** Sends a datagram to a remote peer (through its relay). */
  send(data: Uint8Array, to: Endpoint): void;
  /** Takes a datagram that is for it (relay-to-relay traffic): true when it was. */
  receive(datagram: InboundDatagram): boolean;
  /** Ids of remote peers whose datagrams were delivered since the last call. */
  drainActivity(): number[];
  /** What remote peers' routes delivered, by direction, since start. */
  forwarded(): Record<Direction, Totals>;
  /**
   * A REG from `from` found its session full, one peer being the remote `standIn`: whether the
   * stand-in's relay is gone (the registrant takes its place). "checking" drops the REG; the
   * remote side offers it again (Relay.handleBatch) once it knows.
   */
  standIn(sessionId: string, standIn: Endpoint, from: Endpoint, raw: Uint8Array): StandInVerdict;
  /**
   * A REG with the `move` flag for a session this relay does not hold: "here" registers it;
   * "checking" drops it while the remote side finds out where the session's partner is, then
   * either answers MOVE itself or offers the REG again (Relay.handleBatch).
   */
  place(sessionId: string, from: Endpoint, raw: Uint8Array): "here" | "checking";
}

/** What one handled batch (or one expiry pass) changed, in order. */
export type RelayEventsListener = (events: readonly SessionEvent[]) => void;

export interface RelayOptions {
  config: RelayConfig;
  plane: DataPlane;
  logger: Logger;
  clock?: Clock;
  /**
   * Milliseconds of work, to bound how long a pass of expiry or packing holds the thread (default
   * performance.now). Not `clock`: that one is the sessions' time, which a test may stand still.
   */
  workClock?: () => number;
  limits?: Partial<SessionLimits>;
  policy?: RegPolicy;
  /** Addresses of other relays (fleet members) whose REGs are never registered. */
  isRelayAddress?: (from: Endpoint) => boolean;
  /** Peers on other relays (the fleet's bridge); none means every peer is local. */
  remote?: RemotePeers;
  /** Answers STUN Binding requests from anyone but a paired peer; none means STUN is off. */
  stun?: StunResponder;
}

/**
 * The control plane: takes what the data plane hands up, applies the session rules and
 * installs routes back into the data plane. Expiry runs on its own timer, independent of load.
 */
export class Relay {
  readonly table: SessionTable;
  readonly plane: DataPlane;
  private readonly remote: RemotePeers | undefined;
  private readonly listeners: RelayEventsListener[] = [];
  private pendingEvents: SessionEvent[] = [];
  /** Control datagrams the plane dropped (queue full), and when the count last grew. */
  private controlDrops = 0;
  private controlLossAt = Number.NEGATIVE_INFINITY;
  private readonly logger: Logger;
  private readonly logLimits = new Map<SessionEvent["kind"], LogRateLimit>();
  /** Lifecycle log lines held back by the per-kind rate limit, since start. */
  readonly logSuppressed: Partial<Record<SessionEvent["kind"], number>> = {};
  /**
   * Datagrams (and their bytes) the control plane forwarded itself, through the session table's
   * sink: held early datagrams, a session's first datagrams before its routes take over, datagrams
   * of peers without a data-plane route, the datagram that moved a peer. The data plane's route
   * counters never see these.
   */
  readonly controlForwarded = { datagrams: 0, bytes: 0 };
  /** Cookies that did not check out, by reason. */
  readonly cookieFailures = { malformed: 0, expired: 0, "bad-mac": 0 };
  private readonly cookies = new CookieMinter();
  private readonly unprovenReplies = new TokenBucket(UNPROVEN_REPLY_RATE, UNPROVEN_REPLY_RATE);
  private readonly own = new OwnAddresses();
  private sweepTimer: ReturnType<typeof setInterval> | undefined;
  /** The follow-up expiry pass, while one is scheduled. */
  private morePending: ReturnType<typeof setTimeout> | undefined;
  private morePacking: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private readonly policy: RegPolicy;
  private readonly clock: Clock;
  private readonly workClock: () => number;
  internalErrors = 0;

  constructor(private readonly opts: RelayOptions) {
    this.plane = opts.plane;
    this.logger = opts.logger;
    this.policy = opts.policy ?? {};
    this.clock = opts.clock ?? systemClock;
    this.workClock = opts.workClock ?? (() => performance.now());
    const remote = (this.remote = opts.remote);
    const sink: SessionSink = {
      reply: (to, data) => this.send(data, to),
      forward: (to, data) => {
        this.controlForwarded.datagrams++;
        this.controlForwarded.bytes += data.length;
        this.send(data, to);
      },
      route: (peer, to, direction, cidLength) => this.route(peer, to, direction, cidLength),
      observing: (peer, since) => this.observing(peer, since),
      unroute: (peerId: number, standIn: boolean) => {
        if (remote && standIn) remote.unroute(peerId);
        else this.plane.deleteRoute(peerId);
      },
      challenge: (to: Endpoint, sessionId: string) => this.challenge(to, sessionId),
      event: (event) => {
        this.logEvent(event);
        if (this.listeners.length > 0) this.pendingEvents.push(event);
      },
    };
    this.table = new SessionTable(
      this.clock,
      sink,
      { timeoutMs: opts.config.sessionTimeoutSecs * 1000, requireProof: opts.config.verifySource || (this.policy.authEnabled ?? false), ...opts.limits },
      this.policy.admit,
      remote && { isStandIn: (e) => remote.isRemote(e), check: (id, standIn, from, raw) => remote.standIn(id, standIn, from, raw) },
    );
  }

  async start(): Promise<void> {
    await this.plane.start((batch) => this.handleBatch(batch));
    this.own.learn(this.plane.local);
    // Expiry slack is bounded by the sweep period, whatever the traffic.
    const period = Math.max(10, Math.min(250, this.table.limits.timeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(), period);
  }

  get local(): Endpoint {
    return this.plane.local;
  }

  /** Datagrams and bytes forwarded by routes (the data plane's and the fleet bridge's), per direction, since start. */
  forwardedByDirection(): Record<Direction, Totals> {
    const local = planeDirections(this.plane.counters());
    return this.remote ? addDirections(local, this.remote.forwarded()) : local;
  }

  /** Called once after each handled batch and each expiry pass that changed something, with what changed. */
  onEvents(listener: RelayEventsListener): void {
    this.listeners.push(listener);
  }

  sweep(): void {
    try {
      const drops = this.plane.counters().controlQueueDrops;
      if (drops !== this.controlDrops) {
        this.controlDrops = drops;
        this.controlLossAt = this.clock.now();
      }
      this.table.activity(this.drainActivity());
      this.plane.batchRouteChanges(() => this.expire());
      this.compact();
    } catch (error) {
      this.internal(error);
    }
    this.publishEvents();
  }

  /**
   * One expiry pass bounded by time (PASS_MS); while passes stop for time, the next one runs as soon
   * as pending I/O was served (a macrotask), so a mass expiry is spread out instead of stalling the thread.
   */
  private expire(): void {
    if (!boundedPass(this.workClock, () => this.table.expire(EXPIRE_STEP) === EXPIRE_STEP) || this.morePending) return;
    this.morePending = setTimeout(() => {
      this.morePending = undefined;
      if (this.stopped) return;
      try {
        this.plane.batchRouteChanges(() => this.expire());
      } catch (error) {
        this.internal(error);
      }
      this.publishEvents();
    }, 0);
  }

  /**
   * One packing pass bounded by time, in steps that go on while each packs at least half of what it
   * looks at and more is queued; while passes stop for time, the next one runs as soon as pending
   * I/O was served, as expiry does: after a burst of registrations the table is compact again
   * within seconds, in steps of a few milliseconds.
   */
  private compact(): void {
    const more = boundedPass(this.workClock, () => this.table.compact(COMPACT_STEP) >= COMPACT_STEP / 2 && this.table.compactBacklog > 0);
    if (!more || this.morePacking) return;
    this.morePacking = setTimeout(() => {
      this.morePacking = undefined;
      if (this.stopped) return;
      try {
        this.compact();
      } catch (error) {
        this.internal(error);
      }
    }, 0);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.morePending) clearTimeout(this.morePending);
    if (this.morePacking) clearTimeout(this.morePacking);
    try {
      // What the routes carried since the last sweep counts: a state save after the stop keeps it.
      this.table.activity(this.drainActivity());
    } catch (error) {
      this.internal(error);
    }
    await this.plane.close();
  }

  handleBatch(batch: InboundDatagram[]): void {
    if (this.stopped) return;
    // Routes that forwarded recently count as live before any rebind decision is taken.
    this.table.activity(this.drainActivity());
    const remote = this.remote;
    for (const datagram of batch) {
      try {
        if (datagram.routeId === -1 && remote?.receive(datagram)) continue;
        this.handleDatagram(datagram);
      } catch (error) {
        this.internal(error);
      }
    }
    try {
      this.table.compact(COMPACT_PER_DATAGRAM * batch.length);
    } catch (error) {
      this.internal(error);
    }
    this.publishEvents();
  }

  private publishEvents(): void {
    if (this.pendingEvents.length === 0) return;
    const events = this.pendingEvents;
    this.pendingEvents = [];
    for (const listener of this.listeners) {
      try {
        listener(events);
      } catch (error) {
        this.internal(error);
      }
    }
  }

  private send(data: Uint8Array, to: Endpoint): void {
    if (this.remote?.isRemote(to)) this.remote.send(data, to);
    else this.plane.send(data, to);
  }

  /** Datagrams from `peer` now go to `to`; routes from or to peers on other relays are not data-plane routes. */
  private route(peer: Peer, to: Peer, direction: Direction, cidLength: number): void {
    const remote = this.remote;
    const unansweredLimit = this.unansweredLimit(to);
    if (remote?.isRemote(peer.endpoint)) return remote.route(peer.id, peer.endpoint, to.endpoint, direction, unansweredLimit);
    if (remote?.isRemote(to.endpoint)) return remote.routeOut(peer.id, peer.endpoint, to.endpoint, direction, cidLength, OBSERVE_BUDGET);
    this.plane.setRoute(peer.id, peer.endpoint, to.endpoint, OBSERVE_BUDGET, unansweredLimit, cidLength, direction);
  }

  /** Bytes a route may deliver to `to` unanswered: unbounded once `to` proved its address. */
  unansweredLimit(to: Peer): number {
    return to.proven ? 0 : this.opts.config.maxUnansweredBytes;
  }

  /**
   * Whether the table saw every connection-ID change in `peer`'s datagrams since `since`: its
   * route's observation budget lasts, and no control datagram was lost since (checked at each
   * sweep). A peer without a data-plane route sends everything through the table.
   */
  private observing(peer: Peer, since: number): boolean {
    if (this.remote?.isRemote(peer.endpoint)) return false;
    const route = this.plane.routeCounters(peer.id);
    if (!route) return true;
    return route.observeLeft > 0 && this.controlLossAt < since;
  }

  private drainActivity(): number[] {
    const local = this.plane.drainActivity();
    const remote = this.remote?.drainActivity();
    return remote && remote.length > 0 ? local.concat(remote) : local;
  }

  private handleDatagram(d: InboundDatagram): void {
    if (d.observed) return this.table.observed(d.routeId, d.data);
    const from: Endpoint = { address: d.address, port: d.port };
    // Checked per datagram (a comparison) so a SIGHUP log-level change applies at once.
    if (levelEnabled(this.logger, "debug")) this.logger.debug("datagram", { from: formatEndpoint(from), bytes: d.data.length, route: d.routeId });
    if (!isReg(d.data)) {
      if (isRelayLine(d.data)) return this.table.relayLine(from);
      if (this.opts.stun && mayBeBindingRequest(d.data) && this.answerStun(this.opts.stun, d.data, from)) return;
      return this.table.datagram(from, d.data);
    }
    const reg = parseReg(d.data);
    if (!reg.ok) return this.table.malformedReg(reg.code, from, d.data);
    if (this.own.has(from) || this.opts.isRelayAddress?.(from)) return this.table.dropReg(DropReason.RelayAddress);
    const now = this.clock.now();
    const verified = this.table.limits.requireProof;
    const policy = this.policy;
    // In verified mode only REGs with a valid cookie spend their source's rate (forged ones cannot
    // drain a real host's bucket); the rest share one global budget for replies.
    if (!verified && policy.allowReg && !policy.allowReg(from, now)) {
      return this.table.refuseReg(RefusalCode.Rate, undefined, from, d.data);
    }
    let sessionId = reg.sessionId;
    if (policy.authenticate) {
      const auth = policy.authenticate(reg.sessionId, from, Date.now());
      if (!auth.ok) {
        if (verified && !this.unprovenReplies.take(now)) return this.table.dropReg(DropReason.RetryBudget);
        return this.table.refuseReg(auth.code, undefined, from, d.data);
      }
      sessionId = auth.sessionId;
    }
    const proof = this.proofOf(reg.cookie, from, sessionId, now);
    if (verified && proof === "valid" && policy.allowReg && !policy.allowReg(from, now)) {
      return this.table.refuseReg(RefusalCode.Rate, sessionId, from, d.data);
    }
    // A client that follows MOVE, registering a session new here: its partner may be on another relay.
    if (reg.move && this.remote && (!verified || proof === "valid") && !this.table.session(sessionId)) {
      if (this.remote.place(sessionId, from, d.data) === "checking") return this.table.dropReg(DropReason.DirectoryLookup);
    }
    this.table.register(sessionId, from, d.data, proof, this.identityOf(reg.peer, sessionId, from));
  }

  /**
   * The hash of a REG's peer token, which the table keeps with the peer: a keepalive of a member
   * that has one already is not hashed again (the table keeps the first anyway).
   */
  private identityOf(token: string | undefined, sessionId: string, from: Endpoint): string | undefined {
    if (token === undefined) return undefined;
    const member = this.table.peerAt(from);
    return member?.session.id === sessionId && member.identity !== undefined ? member.identity : peerIdentity(token);
  }

  /**
   * A STUN Binding request is answered unless it is a paired peer's: then it is that session's
   * traffic (peers may run their own checks through the relay) and is forwarded like any other
   * datagram. False when the datagram is not STUN after all.
   */
  private answerStun(stun: StunResponder, data: Uint8Array, from: Endpoint): boolean {
    const peer = this.table.peerAt(from);
    if (peer && partnerOf(peer)) return false;
    // Never to itself: a request forged from the relay's own address goes on as junk (unknown source).
    if (this.own.has(from)) return false;
    const outcome = stun.handle(data, from, this.clock.now());
    if (outcome.kind === "not-stun") return false;
    if (outcome.kind === "answer") this.plane.send(outcome.data, from);
    return true;
  }

  private proofOf(cookie: string | undefined, from: Endpoint, sessionId: string, now: number): RegProof {
    if (cookie === undefined) return "none";
    const check = this.cookies.check(cookie, from.address, from.port, sessionId, Math.floor(now / 1000));
    if (check === "ok") return "valid";
    this.cookieFailures[check]++;
    return "invalid";
  }

  /** Answers a REG that needs proof with a RETRY carrying a fresh cookie, within the global budget. */
  private challenge(to: Endpoint, sessionId: string): void {
    const now = this.clock.now();
    if (!this.unprovenReplies.take(now)) return this.table.dropReg(DropReason.RetryBudget);
    const cookie = this.cookies.mint(to.address, to.port, sessionId, Math.floor(now / 1000));
    this.plane.send(encodeRetry(cookie), to);
  }

  private logEvent(event: SessionEvent): void {
    // Under a REG flood with info off, building these lines would be the main cost. An ACK is no
    // lifecycle change of its own: the lines of what it did (created, paired, rebound) say it.
    if (event.kind === "registered" || !levelEnabled(this.logger, "info")) return;
    // Forged REG churn must not fill the disk: every kind of line is rate-limited, with a count.
    let limit = this.logLimits.get(event.kind);
    if (!limit) this.logLimits.set(event.kind, (limit = new LogRateLimit(LOG_LINES_PER_SECOND)));
    const suppressedNote = (count: number) => this.logger.info(`${event.kind} lines not logged in the last second`, { count });
    if (!limit.allow(this.clock.now(), suppressedNote)) {
      this.logSuppressed[event.kind] = (this.logSuppressed[event.kind] ?? 0) + 1;
      return;
    }
    const log = this.logger;
    const stats = this.table.stats;
    switch (event.kind) {
      case "created":
        return log.info("session created", { session: event.session, peer: formatEndpoint(event.peer), sessions: this.table.sessionCount });
      case "paired":
        return log.info("session paired", {
          session: event.session,
          peers: event.peers.map(formatEndpoint).join(" <-> "),
          held: event.held,
          paired: stats.sessionsPaired,
        });
      case "rebound":
        return log.info("peer rebound", {
          session: event.session,
          via: event.via,
          from: formatEndpoint(event.from),
          to: formatEndpoint(event.to),
          rebinds: stats.rebinds.reg + stats.rebinds.cid + stats.rebinds.quiet,
        });
      case "moved":
        return log.info("peer moved", { from: event.from, to: event.to, peer: formatEndpoint(event.peer) });
      case "refused":
        return log.info("registration refused", {
          reason: event.code,
          session: event.session ?? "-",
          peer: formatEndpoint(event.peer),
          refused: Object.values(stats.refusals).reduce((a, b) => a + (b ?? 0), 0),
        });
      case "expired":
        return log.info("session expired", {
          session: event.session,
          idle_s: Math.round(event.idleMs / 1000),
          peers: event.peers,
          sessions: this.table.sessionCount,
        });
      case "cid-dispute":
        return log.warn("connection-ID dispute: two addresses claimed one peer with different IDs (one is forged); ID moves suspended", {
          session: event.session,
          kept: formatEndpoint(event.kept),
          refused: formatEndpoint(event.refused),
        });
      case "relay-pair":
        return log.warn("session removed: both peers speak the relay protocol (forged REGs pairing two relays)", {
          session: event.session,
          peers: event.peers.map(formatEndpoint).join(" <-> "),
        });
    }
  }

  private internal(error: unknown): void {
    this.internalErrors++;
    this.logger.error("internal error handling a datagram", { error: String((error as Error)?.stack ?? error) });
  }
}
