import { dataPlaneOptions, type RelayConfig, rebindQuietMs } from "../config/config.ts";
import { createDataPlane } from "../dataplane/select.ts";
import type { DataPlane } from "../dataplane/types.ts";
import { createLogger, type Logger } from "../log.ts";
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

type Phase = "starting" | "running" | "stopping" | "stopped";

/** What SIGHUP may change in a running relay. */
export interface Reloadable {
  config: RelayConfig;
  security?: SecurityOptions;
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
    const { plane, fallbackReason } = createDataPlane(config.dataplane, dataPlaneOptions(config));
    if (fallbackReason) logger.info(`native data plane not used: ${fallbackReason}`);
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
        this.metrics = startMetricsServer(config.metricsListen, {
          healthy: () => this.phase === "running" || this.phase === "stopping",
          ready: () => this.phase === "running",
          metrics: () => this.metricsText(),
        });
      } catch (error) {
        await this.shutdown();
        throw error;
      }
    }
    this.phase = "running";
    logger.info(
      `quic-relay listening on udp ${formatEndpoint(relay.local)} dataplane=${plane.kind} session-timeout=${config.sessionTimeoutSecs}s` +
        ` verify-source=${verified ? (config.verifySource ? "on" : "on (REG tokens)") : "off"} stun=${config.stun ? "on" : "off"}`,
    );
    if (this.stunAlt) logger.info(`STUN also on udp ${formatEndpoint(this.stunAlt.local)} (second discovery address)`);
    if (this.metrics) logger.info(`metrics on ${this.metrics.url}/metrics (health: /healthz, /readyz)`);
    if (this.persister) logger.info("state file in use", { file: config.stateFile, save_every_s: config.stateSaveIntervalSecs });
    if (this.options.security) logger.info("REG policy", describeSecurity(this.options.security));
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

  /** Counts for a quick look (tests, harnesses): sessions, the table's stats, the plane's and the fleet's counters. */
  status() {
    return {
      sessions: this.sessionCount,
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
      ledger: this.relay.ledger,
      operations: this.operations,
      authFailures: this.policy?.authFailures(),
      fleet: this.fleet?.stats(),
      stateRowsSkipped: this.persister?.malformedRows,
      stun: this.stun?.counters,
      startedAtSeconds: this.startedAtSeconds,
    });
  }

  /**
   * Applies what can change without a restart: the log level, and the REG policy (secrets, rate,
   * caps; a changed policy starts with fresh rate buckets). Returns settings that changed but need
   * a restart. Sessions are untouched.
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
    for (const key of Object.keys(next.config) as (keyof RelayConfig)[]) {
      if (key === "logLevel" || key === "rebindQuietSecs" || key === "verifySource") continue;
      if (next.config[key] !== this.config[key]) needsRestart.push(key);
    }
    if (next.config.logLevel !== this.config.logLevel) {
      // A fresh logger knows the numeric level for a name; the running one takes it over.
      this.logger.level = createLogger(next.config.logLevel).level;
    }
    if (next.security) this.authOn = next.security.secrets.length > 0;
    const { logLevel, rebindQuietSecs, verifySource } = next.config;
    this.config = { ...this.config, logLevel, rebindQuietSecs, verifySource };
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

  /** Stops receiving, saves the table, closes the metrics port. Idempotent. */
  async stop(): Promise<void> {
    if (this.phase === "stopping" || this.phase === "stopped") return;
    this.phase = "stopping";
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    // A relay that never ran restored nothing: saving its empty table would wipe the file.
    const ran = this.phase !== "starting";
    this.phase = "stopping";
    await this.fleet?.stop().catch((error) => this.logger.error("leaving the fleet failed", { error: String(error) }));
    this.stunAlt?.close();
    this.stunAlt = undefined;
    await this.relay?.stop().catch((error) => this.logger.error("closing the data plane failed", { error: String(error) }));
    this.persister?.close(ran);
    this.persister = undefined;
    await this.metrics?.stop().catch(() => {});
    this.metrics = undefined;
    this.phase = "stopped";
  }
}

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


