import { defineCommand } from "citty";
import { DEFAULTS, type RawRelayFlags, resolveRelayConfig } from "../config.ts";
import { createDataPlane } from "../dataplane/select.ts";
import { createLogger } from "../log.ts";
import { Relay } from "../relay.ts";
import { StartupError } from "../protocol/errors.ts";
import { formatEndpoint } from "../sessions/address.ts";

export const relayArgs = {
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
} as const;

export const relayCommand = defineCommand({
  meta: { name: "quic-relay", description: "UDP relay for QUIC peers that cannot hole-punch" },
  args: relayArgs,
  async run({ args }) {
    const flags: RawRelayFlags = {
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
    };
    const config = resolveRelayConfig(flags, process.env);
    const logger = createLogger(config.logLevel, config.logFormat);
    const { plane, fallbackReason } = createDataPlane(config.dataplane, {
      host: config.host,
      port: config.port,
      maxDatagramSize: config.maxDatagramSize,
      socketBufferBytes: config.socketBufferBytes,
      workers: config.workers > 0 ? config.workers : undefined,
      gro: config.gro,
    });
    if (fallbackReason) logger.info(`native data plane not used: ${fallbackReason}`);
    const relay = new Relay({ config, plane, logger });
    try {
      await relay.start();
    } catch (error) {
      await relay.stop().catch(() => {});
      throw new StartupError(`cannot listen on udp ${config.host} port ${config.port}: ${(error as Error).message}`);
    }
    logger.info(
      `quic-relay listening on udp ${formatEndpoint(relay.local)} dataplane=${plane.kind} session-timeout=${config.sessionTimeoutSecs}s`,
    );
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(`received ${signal}, stopping`, { sessions: relay.table.sessionCount });
      const force = setTimeout(() => process.exit(1), 3000);
      relay.stop().then(() => {
        clearTimeout(force);
        process.exit(0);
      });
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  },
});
