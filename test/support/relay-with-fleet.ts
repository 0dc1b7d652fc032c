/**
 * A relay process for fleet tests and benchmarks, assembled by the same RelayService as the
 * `quic-relay` command, with a line protocol on stdio the harness reads:
 *   bun test/support/relay-with-fleet.ts --host H --port P --dataplane ts|native --fleet-redis URL
 *     --fleet-advertise H:P --fleet-secret S [--session-timeout-secs T] [--fleet-heartbeat-secs N]
 * Prints `ready <port>` on stdout once serving; answers each `stats` line on stdin with one JSON line.
 */
import { parseArgs } from "node:util";
import { DEFAULTS, type RelayConfig } from "../../src/config/config.ts";
import type { DataPlaneChoice } from "../../src/dataplane/select.ts";
import { fleetArgs, type RawFleetFlags, resolveFleetOptions } from "../../src/fleet/options.ts";
import { RelayService } from "../../src/service/relay-service.ts";

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
  workers: 1,
};
const fleet = resolveFleetOptions(Object.fromEntries(fleetOptionNames.map((n) => [n, v[n]])) as RawFleetFlags, process.env);
const service = new RelayService(config, { fleet });
await service.start();
process.stdout.write(`ready ${service.local!.port}\n`);

let buffered = "";
process.stdin.on("data", (chunk) => {
  buffered += chunk.toString();
  let nl: number;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl).trim();
    buffered = buffered.slice(nl + 1);
    if (line === "stats") process.stdout.write(`stats ${JSON.stringify(service.status())}\n`);
  }
});
const stop = async () => {
  await service.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
