/**
 * The relay under test for bench/flood.ts, as a process of its own: the same Relay, data plane
 * and createRegPolicy the CLI wires, plus a JSON line on stdout every 200 ms with its counters.
 *
 *   bun bench/flood-relay.ts --plane ts|native [--auth-secret S] [--max-sessions N] ...
 */
import { DEFAULTS, dataPlaneOptions, type RelayConfig, rebindQuietMs } from "../src/config/config.ts";
import { createDataPlane } from "../src/dataplane/select.ts";
import type { DataPlaneKind } from "../src/dataplane/types.ts";
import { createLogger } from "../src/log.ts";
import { Relay } from "../src/relay.ts";
import { repeatedFlag, resolveSecurityOptions } from "../src/security/options.ts";
import { createRegPolicy } from "../src/security/policy.ts";
import { heapSize } from "bun:jsc";

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => repeatedFlag(argv, name).at(-1);
const plane = (flag("plane") ?? "ts") as DataPlaneKind;
const security = resolveSecurityOptions(
  {
    authSecret: repeatedFlag(argv, "auth-secret").length ? repeatedFlag(argv, "auth-secret") : undefined,
    maxSessions: flag("max-sessions"),
    maxSessionsPerHost: flag("max-sessions-per-host"),
    regRate: flag("reg-rate"),
    regBurst: flag("reg-burst"),
  },
  {},
);
const config: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, logLevel: "error", sessionTimeoutSecs: 300, workers: 1 };
const { plane: dataPlane } = createDataPlane(plane, dataPlaneOptions(config));
const policy = createRegPolicy(security);
const relay = new Relay({
  config,
  plane: dataPlane,
  logger: createLogger("error"),
  policy,
  limits: { rebindQuietMs: rebindQuietMs(config.rebindQuietSecs, security.secrets.length > 0) },
});
await relay.start();

let settled: { rss: number; heap: number; at: number } | undefined;

function report(): void {
  const t = relay.table;
  const c = relay.plane.counters();
  const line = {
    port: relay.local.port,
    plane: relay.plane.kind,
    sessions: t.sessionCount,
    peers: t.peerCount,
    refusals: t.stats.refusals,
    unknownSource: t.stats.drops["unknown-source"] ?? 0,
    controlPackets: c.controlPackets,
    forwardedPackets: c.forwardedPackets,
    controlQueueDrops: c.controlQueueDrops,
    sendErrors: c.sendErrors,
    authFailures: policy.authFailures,
    limiterBytes: policy.limiter?.memoryBytes ?? 0,
    internalErrors: relay.internalErrors,
    settled,
  };
  try {
    process.stdout.write(`${JSON.stringify(line)}\n`);
  } catch {
    process.exit(0); // the bench went away
  }
}
report();
setInterval(report, 200);
process.on("SIGTERM", () => relay.stop().then(() => process.exit(0)));
process.stdout.on("error", () => process.exit(0));
// The bench asks for a full collection before it reads "settled" memory: what is retained, not
// the garbage the collector has not got to yet.
process.on("SIGUSR2", () => {
  Bun.gc(true);
  settled = { rss: process.memoryUsage().rss, heap: heapSize(), at: Date.now() };
  report();
});
