import { defineCommand } from "citty";
import { configPath, loadConfigFile } from "../config/config-file.ts";
import { DEFAULTS, type RawRelayFlags, type RelayConfig, resolveRelayConfig, unknownEnvWarnings } from "../config/config.ts";
import { fleetArgs, type FleetOptions, type RawFleetFlags, FLEET_ENV_ONLY_VARIABLES, resolveFleetOptions } from "../fleet/options.ts";
import type { Logger } from "../log.ts";
import { resolveSecurityOptions, securityArgs, securityFlags, type SecurityOptions } from "../security/options.ts";
import { type SecretFileInfo, secretFileWarning } from "../security/secret-file.ts";
import { RelayService } from "../service/relay-service.ts";
import { formatHostPort } from "../net/address.ts";

export const relayArgs = {
  config: { type: "string", description: "TOML config file; keys are these flags' names (default: QUIC_RELAY_CONFIG)" },
  host: { type: "string", description: `Address to listen on (default ${DEFAULTS.host}, dual stack)` },
  port: { type: "string", description: `UDP port (default ${DEFAULTS.port})` },
  "session-timeout-secs": { type: "string", description: `Idle seconds before a session expires (default ${DEFAULTS.sessionTimeoutSecs})` },
  dataplane: { type: "string", description: "auto | ts | native (default auto: native when the addon loads)" },
  "log-level": { type: "string", description: "error | warn | info | debug | trace (default: LOG_LEVEL, RUST_LOG, info)" },
  "log-format": { type: "string", description: "pretty | json (default pretty)" },
  "max-datagram-size": { type: "string", description: `Largest datagram forwarded, bytes (default ${DEFAULTS.maxDatagramSize})` },
  "socket-buffer-bytes": { type: "string", description: `Socket receive/send buffer (default ${DEFAULTS.socketBufferBytes})` },
  workers: { type: "string", description: "Native plane forwarding threads (default: chosen for the machine)" },
  gro: { type: "boolean", description: "Native plane: use UDP GRO/GSO (default true; --no-gro disables)" },
  "metrics-listen": { type: "string", description: "host:port for HTTP /metrics, /healthz, /readyz (default off)" },
  "state-file": { type: "string", description: "SQLite file to save sessions to and restore them from across restarts (default off)" },
  "state-save-interval-secs": { type: "string", description: `Seconds between state saves (default ${DEFAULTS.stateSaveIntervalSecs})` },
  "shutdown-timeout-secs": {
    type: "string",
    description: `Longest the stop after a SIGTERM (and after the drain) may take: save, close (default ${DEFAULTS.shutdownTimeoutSecs})`,
  },
  "drain-secs": {
    type: "string",
    description: `On SIGTERM/SIGINT, first answer /readyz 503 and keep forwarding for this long, or until no session is left (default ${DEFAULTS.drainSecs}: stop at once)`,
  },
  "rebind-quiet-secs": {
    type: "string",
    description: "Seconds of silence after which bare data from a new port of a peer's IP follows it; off, or auto (default: 1 s, off in verified mode; docs/protocol.md rule 3)",
  },
  "verify-source": {
    type: "boolean",
    description: "Verified mode: REGs must prove, with a cookie, that their sender receives at its address (default off; always on with --auth-secret; docs/protocol.md)",
  },
  "max-unanswered-bytes": {
    type: "string",
    description: `Bytes forwarded to a peer that has not proved its address since it last sent anything (default ${DEFAULTS.maxUnansweredBytes}; 0 = no bound)`,
  },
  stun: { type: "string", description: "on | off: answer STUN Binding requests on the relay port (default on; docs/protocol.md)" },
  "stun-alt-listen": {
    type: "string",
    description: "host:port of a second socket answering STUN only, so `probe` can tell the NAT's mapping behaviour (default off)",
  },
  "check-config": {
    type: "boolean",
    description: "Validate flags, QUIC_RELAY_* variables and the config file, print the result and exit (0 when valid, 2 otherwise); binds nothing",
  },
  ...securityArgs,
  ...fleetArgs,
} as const;

type ParsedArgs = { [K in keyof typeof relayArgs]?: string | boolean };

/** Config-file keys defined outside src/config/config.ts. */
const EXTRA_FILE_KEYS = [...Object.keys(securityArgs), ...Object.keys(fleetArgs)];

function rawFlags(args: ParsedArgs): RawRelayFlags {
  return {
    host: args.host,
    port: args.port,
    sessionTimeoutSecs: args["session-timeout-secs"],
    dataplane: args.dataplane,
    logLevel: args["log-level"],
    logFormat: args["log-format"],
    maxDatagramSize: args["max-datagram-size"],
    socketBufferBytes: args["socket-buffer-bytes"],
    workers: args.workers,
    gro: args.gro,
    metricsListen: args["metrics-listen"],
    stateFile: args["state-file"],
    stateSaveIntervalSecs: args["state-save-interval-secs"],
    shutdownTimeoutSecs: args["shutdown-timeout-secs"],
    drainSecs: args["drain-secs"],
    rebindQuietSecs: args["rebind-quiet-secs"],
    verifySource: args["verify-source"],
    maxUnansweredBytes: args["max-unanswered-bytes"],
    stun: args.stun,
    stunAltListen: args["stun-alt-listen"],
  };
}

interface LoadedSettings {
  config: RelayConfig;
  security: SecurityOptions;
  fleet: FleetOptions | undefined;
}

/** Flags, then QUIC_RELAY_* variables, then the config file, then defaults; for every part. */
function loadSettings(args: ParsedArgs, rawArgs: readonly string[], env: Record<string, string | undefined>): LoadedSettings {
  const path = configPath(args.config, env);
  const file = path === undefined ? undefined : loadConfigFile(path, EXTRA_FILE_KEYS);
  const config = resolveRelayConfig(rawFlags(args), env, file);
  const security = resolveSecurityOptions(securityFlags(args, rawArgs), env, file);
  return { config, security, fleet: resolveFleetOptions(args as RawFleetFlags, env, file) };
}

/** What --check-config prints for a valid configuration: where it came from and what it starts. */
function describeChecked(config: RelayConfig, file: string | undefined): string {
  return (
    `config ok${file ? ` (${file})` : ""}: udp ${formatHostPort({ host: config.host, port: config.port })} dataplane=${config.dataplane} session-timeout=${config.sessionTimeoutSecs}s` +
    ` stun=${config.stun ? "on" : "off"} metrics=${config.metricsListen ?? "off"} state-file=${config.stateFile ?? "off"} log=${config.logLevel}/${config.logFormat}`
  );
}

/** One WARN line per secret file that group or others can access; the relay runs on regardless. */
function warnAboutSecretFiles(logger: Logger, files: readonly SecretFileInfo[]): void {
  for (const file of files) {
    const warning = secretFileWarning(file);
    if (warning) logger.warn(warning);
  }
}

export const relayCommand = defineCommand({
  meta: { name: "quic-relay", description: "UDP relay for QUIC peers that cannot hole-punch" },
  args: relayArgs,
  async run({ args, rawArgs }) {
    const parsed = args as ParsedArgs;
    const { config, security, fleet } = loadSettings(parsed, rawArgs, process.env);
    const service = new RelayService(config, { security, fleet });
    const logger = service.logger;
    warnAboutSecretFiles(logger, [...security.secretFiles, ...(fleet?.secretFiles ?? [])]);
    for (const warning of unknownEnvWarnings(process.env, EXTRA_FILE_KEYS, FLEET_ENV_ONLY_VARIABLES)) logger.warn(warning);
    if (parsed["check-config"]) {
      process.stdout.write(`${describeChecked(config, configPath(parsed.config, process.env))}\n`);
      return;
    }
    // Handlers go in before the relay says it is listening: a signal sent the moment that line
    // appears must not meet the default action (which kills the process, SIGHUP included). Signals
    // that arrive while it starts are queued and handled, in order, once it has started.
    let started = false;
    const early: (() => void)[] = [];
    const onSignal = (handle: () => void) => () => (started ? handle() : early.push(handle));
    process.on("SIGINT", onSignal(() => stop("SIGINT")));
    process.on("SIGTERM", onSignal(() => stop("SIGTERM")));
    process.on("SIGHUP", onSignal(() => reload()));

    // running -> (draining ->) stopping. The drain and the shutdown settings are read when the
    // stop begins, so a SIGHUP can change them on a running relay.
    let phase: "running" | "draining" | "stopping" = "running";
    const stop = (signal: string) => {
      const sessions = service.sessionCount;
      if (phase === "stopping") return logger.info(`received ${signal}, already stopping`, { sessions });
      if (phase === "draining") {
        logger.info(`received ${signal} during the drain, stopping now`, { sessions });
        return service.endDrain();
      }
      const drainSecs = service.stopSettings.drainSecs;
      if (drainSecs <= 0) {
        logger.info(`received ${signal}, stopping`, { sessions });
        return shutdown();
      }
      phase = "draining";
      logger.info(`received ${signal}, draining: /readyz answers 503, sessions keep forwarding`, { sessions, drain_s: drainSecs });
      void service.drain(drainSecs * 1000).then((reason) => {
        logger.info(`drain over (${reason}), stopping`, { sessions: service.sessionCount });
        shutdown();
      });
    };
    // The bound covers the stop proper (fleet, socket, final save, metrics port), not the drain
    // before it: a relay that drains 30 s and may take 5 s to stop is gone within 35 s.
    const shutdown = () => {
      phase = "stopping";
      const timeoutSecs = service.stopSettings.shutdownTimeoutSecs;
      const force = setTimeout(() => {
        logger.error("shutdown took too long, exiting anyway", { timeout_s: timeoutSecs });
        process.exit(1);
      }, timeoutSecs * 1000);
      void service.stop().then(() => {
        clearTimeout(force);
        logger.info("stopped");
        process.exit(0);
      });
    };
    const reload = () => {
      if (phase !== "running") return logger.info("received SIGHUP while stopping; not reloaded");
      try {
        const next = loadSettings(parsed, rawArgs, process.env);
        // The auth secrets and the fleet secrets are reloaded; other fleet settings need a restart.
        warnAboutSecretFiles(logger, [...next.security.secretFiles, ...(next.fleet?.secretFiles ?? [])]);
        const needsRestart = service.reload({ config: next.config, security: next.security, fleet: next.fleet });
        service.operations.reloads.ok++;
        logger.info("received SIGHUP, configuration reloaded", { "log-level": next.config.logLevel, sessions: service.sessionCount });
        if (needsRestart.length) logger.warn("changed settings take effect only after a restart", { settings: needsRestart.join(",") });
      } catch (error) {
        service.operations.reloads.error++;
        logger.error("received SIGHUP, reload failed; keeping the running configuration", { error: (error as Error).message });
      }
    };
    await service.start();
    started = true;
    for (const handle of early.splice(0)) handle();
  },
});
