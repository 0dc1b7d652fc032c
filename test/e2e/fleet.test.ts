/**
 * A QUIC transfer whose two peers registered on different relays of a fleet: the server's QUIC
 * socket registers with relay 1, the client registers and connects through relay 2; the relays
 * bridge the session through the shared directory. Peers run on loopback (no NAT here: the NAT
 * cases are covered per relay by direct.test.ts), relays and Redis are real processes.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { planesUnderTest } from "../utils.ts";
import { type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerSuite } from "../support/fleet-suite.ts";
import { announceSkip, has, PEERS, ROOT, workDir, type WorkDir } from "./env.ts";
import { ProcSet } from "./procs.ts";
import { END_EVENTS } from "./quic-peers.ts";
import { existsSync } from "node:fs";

const MB = 1024 * 1024;
const reason = !REDIS_SERVER
  ? "redis-server is not installed (apt-get install -y redis-server)"
  : !has("node") || !has("openssl")
    ? "needs node and openssl on PATH"
    : !existsSync(join(ROOT, "node_modules", "@matrixai", "quic"))
      ? "needs the @matrixai/quic dev dependency (bun install)"
      : undefined;
announceSkip(reason, "fleet QUIC e2e");

describe.skipIf(reason !== undefined).each(planesUnderTest())("e2e fleet on the %s plane: QUIC peers on different relays", (plane) => {
  const procs = new ProcSet();
  const fleet = fleetPerSuite(plane, ["127.0.0.81", "127.0.0.82"], { sessionTimeoutSecs: 60 });
  let work: WorkDir | undefined;

  beforeAll(async () => {
    work = workDir();
  }, 30_000);
  afterAll(async () => {
    procs.killAll();
    work?.remove();
  });

  async function transfer(serverRelay: FleetRelay, clientRelay: FleetRelay, session: string) {
    const [r1, r2] = [serverRelay, clientRelay];
    const server = procs.spawn(`quic-server ${session}`, [
      "node", join(PEERS, "quic-server.mjs"),
      "--relay-host", r1.host, "--relay-port", String(r1.port), "--session", session,
      "--key", work!.key, "--cert", work!.cert, "--bytes", String(4 * MB), "--keepalive-ms", "5000", "--idle-ms", "15000",
    ]);
    await server.waitEvent("registered", 15_000);
    const client = procs.spawn(`quic-client ${session}`, [
      "node", join(PEERS, "quic-client.mjs"),
      "--relay-host", r2.host, "--relay-port", String(r2.port), "--session", session,
      "--keepalive-ms", "5000", "--idle-ms", "15000", "--timeout-ms", "60000",
    ]);
    const end = await client.waitEvent(END_EVENTS, 70_000);
    expect(end.event).toBe("done");
    expect(end.bytes).toBe(4 * MB);
    expect(end.sha256).toBe(server.event("listening")!.sha256);
    client.kill();
    server.kill();
    return { end, handshakeMs: client.event("handshake")!.ms };
  }

  it("transfers several MB intact through two bridged relays", async () => {
    const [r1, r2] = fleet.relays() as [FleetRelay, FleetRelay];
    const { end, handshakeMs } = await transfer(r1, r2, `fleet-${plane}-${process.pid}`);
    const s1 = await r1.stats();
    const s2 = await r2.stats();
    console.log(
      `[e2e] fleet ${plane}: handshake ${handshakeMs} ms, ${end.bytes} B in ${end.ms} ms (${end.mbps} Mbit/s), sha256 ok; ` +
        `bridge r1 sent ${s1.fleet!.bridge.sent} delivered ${s1.fleet!.bridge.delivered}, r2 sent ${s2.fleet!.bridge.sent} delivered ${s2.fleet!.bridge.delivered}; ` +
        `by the data plane: r1 ${s1.fleet!.bridge.dataPlane.sent}/${s1.fleet!.bridge.dataPlane.delivered}, r2 ${s2.fleet!.bridge.dataPlane.sent}/${s2.fleet!.bridge.dataPlane.delivered}`,
    );
    expect(s1.fleet!.bridge.delivered).toBeGreaterThan(0);
    expect(s2.fleet!.bridge.delivered).toBeGreaterThan(0);
    // The native plane's threads carry the transfer; only what came before the routes crosses the control plane.
    for (const s of [s1, s2]) {
      const carried = s.fleet!.bridge.dataPlane;
      if (plane === "native") expect(carried.sent + carried.delivered).toBeGreaterThan(0.9 * (s.fleet!.bridge.sent + s.fleet!.bridge.delivered));
      else expect(carried).toEqual({ sent: 0, delivered: 0 });
    }
  }, 90_000);

  it("reference: the same transfer with both peers on one fleet relay", async () => {
    const [r1] = fleet.relays() as [FleetRelay];
    const { end, handshakeMs } = await transfer(r1, r1, `fleet-local-${plane}-${process.pid}`);
    console.log(`[e2e] fleet ${plane} local reference: handshake ${handshakeMs} ms, ${end.bytes} B in ${end.ms} ms (${end.mbps} Mbit/s), sha256 ok`);
  }, 90_000);
});
