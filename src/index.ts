/**
 * `quic-relay`: the relay as a library (Bun). `startRelay(options)` runs the same relay as the
 * `quic-relay` command inside an app; the client side is `quic-relay/client`. docs/integration.md,
 * "Embedding", has an example; the options are the command's settings (docs/operations.md).
 *
 *   import { startRelay } from "quic-relay";
 *   const relay = await startRelay({ port: 4433, metricsListen: "127.0.0.1:9464" });
 *   relay.address;      // { host: "::", port: 4433 }
 *   relay.metrics();    // Prometheus text; relay.status() for counts
 *   await relay.stop();
 */
export { startRelay, type RelayHandle, type RelayOptions, type RelayStatus } from "./api/start-relay.ts";
export { DEFAULTS, type LogLevel, type RelayConfig } from "./config/config.ts";
export { ConfigError } from "./config/errors.ts";
export { StartupError } from "./service/errors.ts";
export { DataPlaneUnavailableError } from "./dataplane/errors.ts";
