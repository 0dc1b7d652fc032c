/**
 * Test-only entry: a relay with fleet flags, until the relay command wires them in.
 *   bun test/support/relay-with-fleet.ts --host H --port P --dataplane ts|native --fleet-redis URL
 *     --fleet-advertise H:P --fleet-secret S [--session-timeout-secs T] [--fleet-heartbeat-secs N]
 * Prints `ready <port>` on stdout once serving; answers each `stats` line on stdin with one JSON line.
 */
import { parseArgs } from "node:util";
import { DEFAULTS, dataPlaneOptions, type RelayConfig } from "../../src/config/config.ts";
import { createDataPlane, type DataPlaneChoice } from "../../src/dataplane/select.ts";
import { prepareFleet } from "../../src/fleet/fleet.ts";
import { fleetArgs, type RawFleetFlags, resolveFleetOptions } from "../../src/fleet/options.ts";
import { createLogger } from "../../src/log.ts";
import { Relay } from "../../src/relay.ts";

const fleetOptionNames = Object.keys(fleetArgs);
const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    dataplane: { type: "string" },
    "session-timeout-secs": { type: "string" },
    "log-level": { type: "string" },
    ...Object.fromEntries(fleetOptionNames.map((n) => [n, { type: "string" as const }])),
  },
});
const v = values as Record<string, string | undefined>;
const config: RelayConfig = {
  ...DEFAULTS,
  host: v.host ?? "127.0.0.1",
  port: Number(v.port ?? 0),
  dataplane: (v.dataplane ?? "ts") as DataPlaneChoice,
  sessionTimeoutSecs: Number(v["session-timeout-secs"] ?? 300),
  logLevel: (v["log-level"] ?? "info") as RelayConfig["logLevel"],
};
const logger = createLogger(config.logLevel);
const fleetOptions = resolveFleetOptions(Object.fromEntries(fleetOptionNames.map((n) => [n, v[n]])) as RawFleetFlags, process.env);
const { plane } = createDataPlane(config.dataplane, dataPlaneOptions({ ...config, workers: 1 }));
const fleet = fleetOptions ? prepareFleet(plane, fleetOptions, config.maxDatagramSize, logger) : undefined;
const relay = new Relay({ config, plane: fleet?.plane ?? plane, logger, isRelayAddress: (from) => fleet?.isMember(from) ?? false });
await relay.start();
await fleet?.start(relay);
logger.info(`relay with fleet on ${relay.local.address}:${relay.local.port} dataplane=${relay.plane.kind}`);
process.stdout.write(`ready ${relay.local.port}\n`);

const stats = () => ({
  sessions: relay.table.sessionCount,
  table: relay.table.stats,
  plane: relay.plane.counters(),
  fleet: fleet?.stats(),
});
let buffered = "";
process.stdin.on("data", (chunk) => {
  buffered += chunk.toString();
  let nl: number;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl).trim();
    buffered = buffered.slice(nl + 1);
    if (line === "stats") process.stdout.write(`stats ${JSON.stringify(stats())}\n`);
  }
});
const stop = async () => {
  await fleet?.stop();
  await relay.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
