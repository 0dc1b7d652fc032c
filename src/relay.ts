import type { RelayConfig } from "./config.ts";
import type { DataPlane, InboundDatagram } from "./dataplane/types.ts";
import type { Endpoint } from "./net/address.ts";
import { type Logger, LogRateLimit, levelEnabled } from "./log.ts";
import { isReg, parseReg } from "./protocol/reg.ts";
import { formatEndpoint } from "./net/address.ts";
import { SessionTable } from "./sessions/table.ts";
import { RefusalCode } from "./protocol/errors.ts";
import type { Clock, Peer, RegPolicy, SessionEvent, SessionLimits, SessionSink } from "./sessions/types.ts";
import { systemClock } from "./sessions/types.ts";

/** Long-header packets per route copied to the control plane to learn QUIC connection IDs. */
const OBSERVE_BUDGET = 16;

export interface RelayOptions {
  config: RelayConfig;
  plane: DataPlane;
  logger: Logger;
  clock?: Clock;
  limits?: Partial<SessionLimits>;
  policy?: RegPolicy;
}

/**
 * The control plane: takes what the data plane hands up, applies the session rules and
 * installs routes back into the data plane. Expiry runs on its own timer, independent of load.
 */
export class Relay {
  readonly table: SessionTable;
  readonly plane: DataPlane;
  private readonly logger: Logger;
  private readonly refusalLog = new LogRateLimit(10);
  private sweepTimer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private readonly policy: RegPolicy;
  private readonly clock: Clock;
  internalErrors = 0;

  constructor(private readonly opts: RelayOptions) {
    this.plane = opts.plane;
    this.logger = opts.logger;
    this.policy = opts.policy ?? {};
    this.clock = opts.clock ?? systemClock;
    const sink: SessionSink = {
      reply: (to, data) => this.plane.send(data, to),
      forward: (to, data) => this.plane.send(data, to),
      route: (peer: Peer, to: Endpoint) => this.plane.setRoute(peer.id, peer.endpoint, to, OBSERVE_BUDGET),
      unroute: (peer: Peer) => this.plane.deleteRoute(peer.id),
      event: (event) => this.logEvent(event),
    };
    this.table = new SessionTable(
      this.clock,
      sink,
      { timeoutMs: opts.config.sessionTimeoutSecs * 1000, ...opts.limits },
      this.policy.admit,
    );
  }

  async start(): Promise<void> {
    await this.plane.start((batch) => this.handleBatch(batch));
    // Expiry slack is bounded by the sweep period, whatever the traffic.
    const period = Math.max(10, Math.min(250, this.table.limits.timeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(), period);
  }

  get local(): Endpoint {
    return this.plane.local;
  }

  sweep(): void {
    try {
      this.table.activity(this.plane.drainActivity());
      this.table.expire();
    } catch (error) {
      this.internal(error);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.plane.close();
  }

  handleBatch(batch: InboundDatagram[]): void {
    if (this.stopped) return;
    // Routes that forwarded recently count as live before any rebind decision is taken.
    this.table.activity(this.plane.drainActivity());
    for (const datagram of batch) {
      try {
        this.handleDatagram(datagram);
      } catch (error) {
        this.internal(error);
      }
    }
  }

  private handleDatagram(d: InboundDatagram): void {
    if (d.observed) return this.table.observed(d.routeId, d.data);
    const from: Endpoint = { address: d.address, port: d.port };
    // Checked per datagram (a comparison) so a SIGHUP log-level change applies at once.
    if (levelEnabled(this.logger, "debug")) this.logger.debug("datagram", { from: formatEndpoint(from), bytes: d.data.length, route: d.routeId });
    if (!isReg(d.data)) return this.table.datagram(from, d.data);
    const reg = parseReg(d.data);
    if (!reg.ok) return this.table.malformedReg(reg.code, from, d.data);
    const policy = this.policy;
    if (policy.allowReg && !policy.allowReg(from, this.clock.now())) {
      return this.table.refuseReg(RefusalCode.Rate, undefined, from, d.data);
    }
    let sessionId = reg.sessionId;
    if (policy.authenticate) {
      const auth = policy.authenticate(reg.sessionId, from, Date.now());
      if (!auth.ok) return this.table.refuseReg(auth.code, undefined, from, d.data);
      sessionId = auth.sessionId;
    }
    this.table.register(sessionId, from, d.data);
  }

  private logEvent(event: SessionEvent): void {
    // Under a REG flood with info off, building these lines would be the main cost.
    if (!levelEnabled(this.logger, "info")) return;
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
      case "refused": {
        const now = Date.now();
        const suppressedNote = (n: number) => log.info("refusals not logged in the last second", { count: n });
        if (!this.refusalLog.allow(now, suppressedNote)) return;
        return log.info("registration refused", {
          reason: event.code,
          session: event.session ?? "-",
          peer: formatEndpoint(event.peer),
          refused: Object.values(stats.refusals).reduce((a, b) => a + (b ?? 0), 0),
        });
      }
      case "expired":
        return log.info("session expired", {
          session: event.session,
          idle_s: Math.round(event.idleMs / 1000),
          peers: event.peers,
          sessions: this.table.sessionCount,
        });
    }
  }

  private internal(error: unknown): void {
    this.internalErrors++;
    this.logger.error("internal error handling a datagram", { error: String((error as Error)?.stack ?? error) });
  }
}
