import { dataPlaneOptions, type RelayConfig, rebindQuietMs } from "../config/config.ts";
import { createDataPlane } from "../dataplane/select.ts";
import type { DataPlane } from "../dataplane/types.ts";
import { createLogger, type Logger } from "../log.ts";
import { VERSION } from "../version.ts";
import { EventLoopLagMonitor } from "../metrics/event-loop-lag.ts";
import { socketBufferShortfall } from "../dataplane/socket-buffers.ts";
import { emptyOperationsCounters, type OperationsCounters, renderRelayMetrics } from "../metrics/relay-metrics.ts";
import { type MetricsServer, startMetricsServer } from "../metrics/server.ts";
import { StartupError } from "./errors.ts";
import { Relay } from "../relay.ts";
import { type Endpoint, formatEndpoint } from "../net/address.ts";
import { type Fleet, prepareFleet } from "../fleet/fleet.ts";
import type { FleetOptions } from "../fleet/options.ts";
import type { SecurityOptions } from "../security/options.ts";
import { createRegPolicy } from "../security/policy.ts";
import { ReloadablePolicy } from "./reloadable-policy.ts";
import { SECURITY_DEFAULTS } from "../security/options.ts";
import { StunResponder } from "../discovery/responder.ts";
import { type StunAltListener, startStunAltListener } from "../discovery/alt-listener.ts";
import { systemClock } from "../sessions/types.ts";
import { StatePersister } from "../state/persister.ts";
import { StateFileError } from "../state/store.ts";

/**
 * starting: binding, restoring, joining the fleet, opening the metrics port (not ready).
 * running: ready. draining: a stop was asked for with a drain; not ready, forwarding as before.
 * stopping: closing the fleet, the socket, the state file (final save), then the metrics port.
 */
type Phase = "starting" | "running" | "draining" | "stopping" | "stopped";

/** Why a drain ended. */
export type DrainEnd = "time up" | "no sessions left" | "asked to stop";

/** How often a drain checks whether any session is left. */
const DRAIN_CHECK_MS = 100;

/** What SIGHUP may change in a running relay. */
export interface Reloadable {
  config: RelayConfig;
  security?: SecurityOptions;
  /** Only its secrets are applied (key rotation); other fleet settings need a restart. */
  fleet?: FleetOptions;
}

export interface ServiceOptions {
  /** REG authentication, rate limit and session caps; none means the original open protocol. */
  security?: SecurityOptions;
  fleet?: FleetOptions;
}

/**
 * One running relay with its operations around it: data plane, state file, metrics endpoint,
 * and the order they start and stop in. Signals are wired by the command, not here.
 */
export class RelayService {
  readonly logger: Logger;
  readonly operations: OperationsCounters = emptyOperationsCounters();
  private phase: Phase = "starting";
  private relay: Relay | undefined;
  private plane: DataPlane | undefined;
  private persister: StatePersister | undefined;
  private metrics: MetricsServer | undefined;
  private fleet: Fleet | undefined;
  private stun: StunResponder | undefined;
  private stunAlt: StunAltListener | undefined;
  private readonly policy: ReloadablePolicy | undefined;
  private securityKey: string | undefined;
  private readonly startedAtSeconds = Date.now() / 1000;
  private readonly eventLoopLag = new EventLoopLagMonitor();
  /** The final save of the state file is under way (`/readyz` says `saving`). */
  private finalSave = false;
  /** Ends the drain under way, if any. */
  private drainEnd: ((reason: DrainEnd) => void) | undefined;

  /** Whether REG tokens are required; they imply verified mode. */
  private authOn: boolean;

  constructor(
    private config: RelayConfig,
    private readonly options: ServiceOptions = {},
  ) {
    this.authOn = (options.security?.secrets.length ?? 0) > 0;
    this.logger = createLogger(config.logLevel, config.logFormat);
    if (options.security) {
      this.policy = new ReloadablePolicy(createRegPolicy(options.security));
      this.securityKey = securityKey(options.security);
    }
  }

  /** Binds, restores saved sessions, serves metrics, and logs the startup line. Throws StartupError. */
  async start(): Promise<void> {
    const { config, logger } = this;
    const { plane, fallbackReason, fallbackExpected } = createDataPlane(config.dataplane, dataPlaneOptions(config));
    if (fallbackReason) logger[fallbackExpected ? "info" : "warn"](`native data plane not used: ${fallbackReason}`);
    this.plane = plane;
    if (this.options.fleet) this.fleet = prepareFleet(plane, this.options.fleet, config.maxDatagramSize, logger);
    const verified = this.verified(config);
    const limits = { rebindQuietMs: rebindQuietMs(config.rebindQuietSecs, verified), requireProof: verified };
    const isRelayAddress = (from: Endpoint) => this.fleet?.isMember(from) ?? false;
    const remote = this.fleet?.bridge;
    if (config.stunAltListen && !config.stun) throw new StartupError("--stun-alt-listen answers STUN: it needs --stun on");
    // STUN answers spend the REG rate per source: a forged source gets no more than its REGs would.
    const rates = this.options.security ?? { regRate: SECURITY_DEFAULTS.regRate, regBurst: SECURITY_DEFAULTS.regBurst };
    const stun = (this.stun = config.stun ? new StunResponder({ rate: rates.regRate, burst: rates.regBurst }) : undefined);
    const relay = (this.relay = new Relay({ config, plane, logger, policy: this.policy, limits, isRelayAddress, remote, stun }));
    if (config.stateFile) {
      try {
        this.persister = StatePersister.open(config.stateFile, relay.table, logger, this.operations);
        relay.table.trackChanges();
      } catch (error) {
        if (error instanceof StateFileError) throw new StartupError(error.message);
        throw error;
      }
    }
    try {
      await relay.start();
    } catch (error) {
      await this.shutdown();
      throw new StartupError(`cannot listen on udp ${config.host} port ${config.port}: ${(error as Error).message}`);
    }
    this.eventLoopLag.start();
    if (stun && config.stunAltListen) {
      try {
        this.stunAlt = await startStunAltListener(config.stunAltListen, stun, systemClock);
      } catch (error) {
        await this.shutdown();
        throw error;
      }
      stun.other = this.stunAlt.local;
    }
    // Synchronously after start: no control batch is handled before the saved routes are back.
    this.persister?.restore({ socket: relay.local, fleet: this.fleet !== undefined });
    this.persister?.startPeriodic(config.stateSaveIntervalSecs * 1000);
    // After the restore, so restored sessions bridged to other relays get their links back.
    try {
      await this.fleet?.start(relay);
    } catch (error) {
      await this.shutdown();
      throw new StartupError(`cannot join the fleet: ${(error as Error).message}`);
    }
    if (config.metricsListen) {
      try {
        // Alive from the moment it answers until the process ends (stopping included: a liveness
        // probe must not kill a relay in its final save); ready only while running.
        this.metrics = startMetricsServer(config.metricsListen, {
          healthy: () => this.phase === "running" || this.phase === "draining" || this.phase === "stopping",
          ready: () => this.phase === "running",
          phase: () => (this.finalSave ? "saving" : this.phase),
          metrics: () => this.metricsText(),
        });
      } catch (error) {
        await this.shutdown();
        throw error;
      }
    }
    const shortfall = socketBufferShortfall(plane.socketBuffers());
    if (shortfall) logger.warn(shortfall);
    if (this.stunAlt) logger.info(`STUN also on udp ${formatEndpoint(this.stunAlt.local)} (second discovery address)`);
    if (this.metrics) logger.info(`metrics on ${this.metrics.url}/metrics (health: /healthz, /readyz)`);
    if (this.persister) logger.info("state file in use", { file: config.stateFile, save_every_s: config.stateSaveIntervalSecs });
    if (this.options.security) logger.info("REG policy", describeSecurity(this.options.security));
    // Ready, and announced, last: when this line appears the socket is bound, saved sessions are
    // back, the fleet is joined, the metrics port answers and every other start-up line is out.
    this.phase = "running";
    logger.info(
      `quic-relay listening on udp ${formatEndpoint(relay.local)} dataplane=${plane.kind} session-timeout=${config.sessionTimeoutSecs}s` +
        ` verify-source=${verified ? (config.verifySource ? "on" : "on (REG tokens)") : "off"} stun=${config.stun ? "on" : "off"}`,
      { version: VERSION, bun: Bun.version },
    );
  }

  get local() {
    return this.relay?.local;
  }
  get sessionCount(): number {
    return this.relay?.table.sessionCount ?? 0;
  }
  get metricsPort(): number | undefined {
    return this.metrics?.port;
  }
  /** What a stop reads when it begins (both can change with SIGHUP). */
  get stopSettings(): { drainSecs: number; shutdownTimeoutSecs: number } {
    return { drainSecs: this.config.drainSecs, shutdownTimeoutSecs: this.config.shutdownTimeoutSecs };
  }

  /** Counts for a quick look (tests, harnesses): sessions, the table's stats, the plane's and the fleet's counters. */
  status() {
    return {
      sessions: this.sessionCount,
      compactSessions: this.relay?.table.compactSessionCount,
      table: this.relay?.table.stats,
      plane: this.plane?.counters(),
      fleet: this.fleet?.stats(),
    };
  }

  metricsText(): string {
    if (!this.relay || !this.plane) return "";
    return renderRelayMetrics({
      relay: this.relay,
      plane: this.plane,
      operations: this.operations,
      authFailures: this.policy?.authFailures(),
      fleet: this.fleet?.stats(),
      stateRowsSkipped: this.persister?.malformedRows,
      stateFile: this.persister,
      stun: this.stun?.counters,
      eventLoop: this.eventLoopLag,
      startedAtSeconds: this.startedAtSeconds,
    });
  }

  /**
   * Applies what can change without a restart: the log level, the rebind and proof rules, the drain
   * and shutdown times (read when a stop begins), and the REG policy (secrets, rate, caps; a
   * changed policy starts with fresh rate buckets). Returns settings that changed but need a
   * restart. Sessions are untouched.
   */
  reload(next: Reloadable): string[] {
    if (next.security && this.policy) {
      const key = securityKey(next.security);
      if (key !== this.securityKey) {
        this.policy.replace(createRegPolicy(next.security));
        this.securityKey = key;
        this.logger.info("REG policy replaced", describeSecurity(next.security));
      }
    }
    const needsRestart: string[] = [];
    const fleetNow = this.options.fleet;
    if (next.fleet && fleetNow && this.fleet && next.fleet.secrets.join("\n") !== fleetNow.secrets.join("\n")) {
      this.fleet.setSecrets(next.fleet.secrets);
      this.options.fleet = { ...fleetNow, secrets: next.fleet.secrets };
      this.logger.info("fleet secrets replaced", { secrets: next.fleet.secrets.length });
    }
    if ((next.fleet === undefined) !== (fleetNow === undefined)) needsRestart.push("fleet");
    for (const key of Object.keys(next.config) as (keyof RelayConfig)[]) {
      if (RELOADABLE.has(key)) continue;
      if (next.config[key] !== this.config[key]) needsRestart.push(key);
    }
    if (next.config.logLevel !== this.config.logLevel) {
      // A fresh logger knows the numeric level for a name; the running one takes it over.
      this.logger.level = createLogger(next.config.logLevel).level;
    }
    if (next.security) this.authOn = next.security.secrets.length > 0;
    const { logLevel, rebindQuietSecs, verifySource, drainSecs, shutdownTimeoutSecs } = next.config;
    this.config = { ...this.config, logLevel, rebindQuietSecs, verifySource, drainSecs, shutdownTimeoutSecs };
    if (this.relay) {
      // The table reads its limits on every decision: the new values apply to the next datagram.
      const verified = this.verified(this.config);
      this.relay.table.limits.requireProof = verified;
      this.relay.table.limits.rebindQuietMs = rebindQuietMs(rebindQuietSecs, verified);
    }
    return needsRestart;
  }

  /** Verified mode (docs/protocol.md, "Return routability"): asked for, or implied by REG tokens. */
  private verified(config: RelayConfig): boolean {
    return config.verifySource || this.authOn;
  }

  /**
   * The drain before a stop: /readyz answers 503 (load balancers send new peers elsewhere) while
   * everything else goes on as before: sessions forward, REGs are answered (a peer whose partner
   * registered a moment ago must still be able to join it; keepalives and rebinds must not fail),
   * state saves run, /healthz answers 200. Ends after `ms`, as soon as no session is left (nothing
   * would be kept by waiting), or at `endDrain` / `stop`. Only a running relay drains; otherwise
   * this resolves at once.
   */
  drain(ms: number): Promise<DrainEnd> {
    if (this.phase !== "running") return Promise.resolve("asked to stop");
    this.phase = "draining";
    const { promise, resolve } = Promise.withResolvers<DrainEnd>();
    const timer = setTimeout(() => end("time up"), ms);
    const check = setInterval(() => this.sessionCount === 0 && end("no sessions left"), DRAIN_CHECK_MS);
    const end = (reason: DrainEnd) => {
      clearTimeout(timer);
      clearInterval(check);
      this.drainEnd = undefined;
      resolve(reason);
    };
    this.drainEnd = end;
    if (this.sessionCount === 0) end("no sessions left");
    return promise;
  }

  /** Ends a drain under way now (a second SIGTERM); the caller goes on to stop. */
  endDrain(): void {
    this.drainEnd?.("asked to stop");
  }

  /**
   * Stops receiving, saves the table, closes the metrics port, in that order: /healthz answers
   * until the final save is written. Ends a drain under way. Idempotent.
   */
  async stop(): Promise<void> {
    this.endDrain();
    if (this.phase === "stopping" || this.phase === "stopped") return;
    this.phase = "stopping";
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    // A relay that never ran restored nothing: saving its empty table would wipe the file.
    const ran = this.phase !== "starting";
    this.phase = "stopping";
    this.eventLoopLag.stop();
    await this.fleet?.stop().catch((error) => this.logger.error("leaving the fleet failed", { error: String(error) }));
    this.stunAlt?.close();
    this.stunAlt = undefined;
    await this.relay?.stop().catch((error) => this.logger.error("closing the data plane failed", { error: String(error) }));
    // The save pauses between chunks of rows: the metrics port, open until after it, answers meanwhile.
    this.finalSave = this.persister !== undefined;
    await this.persister?.close(ran);
    this.finalSave = false;
    this.persister = undefined;
    await this.metrics?.stop().catch(() => {});
    this.metrics = undefined;
    this.phase = "stopped";
  }
}

/** Settings a SIGHUP applies at once (the REG policy's are in SecurityOptions). */
const RELOADABLE = new Set<keyof RelayConfig>(["logLevel", "rebindQuietSecs", "verifySource", "drainSecs", "shutdownTimeoutSecs"]);

/** Compares security options without keeping secrets in a readable form. */
function securityKey(o: SecurityOptions): string {
  const secrets = o.secrets.map((s) => new Bun.CryptoHasher("sha256").update(s).digest("hex"));
  return JSON.stringify([secrets, o.maxSessions, o.maxSessionsPerHost, o.regRate, o.regBurst]);
}

/** The policy for a log line: never the secrets, only how many and where they came from. */
function describeSecurity(o: SecurityOptions): Record<string, unknown> {
  return {
    auth: o.secrets.length > 0 ? `on (${o.secrets.length} secret${o.secrets.length > 1 ? "s" : ""} from ${o.secretSource})` : "off",
    reg_rate: o.regRate,
    reg_burst: o.regBurst,
    max_sessions: o.maxSessions,
    max_sessions_per_host: Number.isFinite(o.maxSessionsPerHost) ? o.maxSessionsPerHost : "unlimited",
  };
}


