import type { RelayConfig } from "../config.ts";
import { createDataPlane } from "../dataplane/select.ts";
import type { DataPlane } from "../dataplane/types.ts";
import { createLogger, type Logger } from "../log.ts";
import { DirectionLedger } from "../metrics/direction-ledger.ts";
import { emptyOperationsCounters, type OperationsCounters, renderRelayMetrics } from "../metrics/relay-metrics.ts";
import { type MetricsServer, startMetricsServer } from "../metrics/server.ts";
import { StartupError } from "../protocol/errors.ts";
import { Relay } from "../relay.ts";
import { formatEndpoint } from "../sessions/address.ts";
import type { RegPolicy } from "../sessions/types.ts";
import { StatePersister } from "../state/persister.ts";
import { StateFileError } from "../state/store.ts";

type Phase = "starting" | "running" | "stopping" | "stopped";

/** What SIGHUP may change in a running relay. */
export interface Reloadable {
  config: RelayConfig;
  policy?: RegPolicy;
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
  private ledger: DirectionLedger | undefined;
  private persister: StatePersister | undefined;
  private metrics: MetricsServer | undefined;
  private readonly startedAtSeconds = Date.now() / 1000;

  constructor(
    private config: RelayConfig,
    private readonly policy?: RegPolicy,
  ) {
    this.logger = createLogger(config.logLevel, config.logFormat);
  }

  /** Binds, restores saved sessions, serves metrics, and logs the startup line. Throws StartupError. */
  async start(): Promise<void> {
    const { config, logger } = this;
    const { plane, fallbackReason } = createDataPlane(config.dataplane, {
      host: config.host,
      port: config.port,
      maxDatagramSize: config.maxDatagramSize,
      socketBufferBytes: config.socketBufferBytes,
      workers: config.workers > 0 ? config.workers : undefined,
      gro: config.gro,
    });
    if (fallbackReason) logger.info(`native data plane not used: ${fallbackReason}`);
    this.plane = plane;
    const ledger = (this.ledger = new DirectionLedger(plane));
    const relay = (this.relay = new Relay({ config, plane: ledger, logger, policy: this.policy }));
    ledger.directionOf = (id) => {
      const peer = relay.table.peerById(id);
      if (!peer) return undefined;
      return peer.session.peers[0] === peer ? "first_to_second" : "second_to_first";
    };
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
    // Synchronously after start: no control batch is handled before the saved routes are back.
    this.persister?.restore();
    this.persister?.startPeriodic(config.stateSaveIntervalSecs * 1000);
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
      `quic-relay listening on udp ${formatEndpoint(relay.local)} dataplane=${plane.kind} session-timeout=${config.sessionTimeoutSecs}s`,
    );
    if (this.metrics) logger.info(`metrics on ${this.metrics.url}/metrics (health: /healthz, /readyz)`);
    if (this.persister) logger.info("state file in use", { file: config.stateFile, save_every_s: config.stateSaveIntervalSecs });
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

  metricsText(): string {
    if (!this.relay || !this.plane || !this.ledger) return "";
    return renderRelayMetrics({
      relay: this.relay,
      plane: this.plane,
      ledger: this.ledger,
      operations: this.operations,
      startedAtSeconds: this.startedAtSeconds,
    });
  }

  /**
   * Applies what can change without a restart (log level; the caller re-creates the policy from
   * the same options). Returns the settings that changed but need a restart.
   */
  reload(next: Reloadable): string[] {
    const needsRestart: string[] = [];
    for (const key of Object.keys(next.config) as (keyof RelayConfig)[]) {
      if (key === "logLevel") continue;
      if (next.config[key] !== this.config[key]) needsRestart.push(key);
    }
    if (next.config.logLevel !== this.config.logLevel) {
      // A fresh logger knows the numeric level for a name; the running one takes it over.
      this.logger.level = createLogger(next.config.logLevel).level;
    }
    this.config = { ...this.config, logLevel: next.config.logLevel };
    return needsRestart;
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
    await this.relay?.stop().catch((error) => this.logger.error("closing the data plane failed", { error: String(error) }));
    this.persister?.close(ran);
    this.persister = undefined;
    await this.metrics?.stop().catch(() => {});
    this.metrics = undefined;
    this.phase = "stopped";
  }
}
