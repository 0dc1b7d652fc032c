/**
 * Real QUIC (ngtcp2's gtlsserver and gtlsclient, unmodified) through `quic-relay connect` tunnels
 * over a fleet of two relays: the two tunnels start at different relays and meet on one (MOVE);
 * mid-transfer that relay is killed (SIGKILL), both tunnels move to the other relay by themselves,
 * and the download completes intact. Loopback only (the NAT cases are direct.test.ts and
 * tunnel.test.ts); relays and Redis are real processes.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { planesUnderTest } from "../utils.ts";
import { type FleetRelay, freeUdpPort, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerSuite } from "../support/fleet-suite.ts";
import { announceSkip, MAIN, skipReason, workDir, type WorkDir } from "./env.ts";
import { ProcSet } from "./procs.ts";

const MB = 1024 * 1024;
const FILE_BYTES = 48 * MB;
const reason = !REDIS_SERVER ? "redis-server is not installed (apt-get install -y redis-server)" : skipReason(["gtlsserver", "gtlsclient", "openssl"]);
announceSkip(reason, "fleet relay-move e2e (ngtcp2 through connect tunnels)");

describe.skipIf(reason !== undefined).each(planesUnderTest())("e2e fleet on the %s plane: QUIC through tunnels that change relay mid-transfer", (plane) => {
  const procs = new ProcSet();
  const fleet = fleetPerSuite(plane, ["127.0.0.91", "127.0.0.92"], { sessionTimeoutSecs: 60 });
  let work: WorkDir | undefined;
  let blobSha = "";

  beforeAll(async () => {
    work = workDir();
    const blob = randomBytes(FILE_BYTES);
    writeFileSync(join(work.dir, "www", "blob"), blob);
    blobSha = createHash("sha256").update(blob).digest("hex");
  }, 30_000);
  afterAll(async () => {
    procs.killAll();
    work?.remove();
  });

  it("meets on one relay, survives that relay's death mid-transfer, and the file arrives intact", async () => {
    const [r1, r2] = fleet.relays() as [FleetRelay, FleetRelay];
    const list = (first: FleetRelay, second: FleetRelay) => `${first.host}:${first.port},${second.host}:${second.port}`;
    const session = `fleet-move-${plane}-${process.pid}`;
    const serverPort = await freeUdpPort("127.0.0.1");
    const listenPort = await freeUdpPort("127.0.0.1");
    const fast = ["--keepalive-secs", "0.5", "--ack-timeout-ms", "100"];
    const server = procs.spawn(`gtlsserver ${session}`, ["gtlsserver", "-q", "-d", join(work!.dir, "www"), "127.0.0.1", String(serverPort), work!.key, work!.cert]);
    const serverSide = procs.spawn(`connect-forward ${session}`, [
      "bun", MAIN, "connect", "--relay", list(r1, r2), "--session", session, "--forward", `127.0.0.1:${serverPort}`, ...fast,
    ]);
    await serverSide.waitOutput(/tunnel up/, 15_000);
    // The client side starts at the other relay: it is sent to its partner's (r1).
    const clientSide = procs.spawn(`connect-listen ${session}`, [
      "bun", MAIN, "connect", "--relay", list(r2, r1), "--session", session, "--listen", `127.0.0.1:${listenPort}`, ...fast,
    ]);
    await clientSide.waitOutput(/tunnel up/, 15_000);
    expect(clientSide.output).toContain(`moved session ${session} to ${r1.host}:${r1.port}`);
    expect(server.code).toBeUndefined();

    const dir = join(work!.dir, `dl-${session}`);
    mkdirSync(dir, { recursive: true });
    const started = performance.now();
    const client = procs.spawn(`gtlsclient ${session}`, [
      "gtlsclient", "-q", "--timeout=15s", "127.0.0.1", String(listenPort), `https://127.0.0.1:${listenPort}/blob`, `--download=${dir}`, "--exit-on-all-streams-close",
    ]);
    // Mid-transfer: a quarter of the file went through r1's data plane.
    let atKill = 0;
    const deadline = performance.now() + 30_000;
    for (;;) {
      atKill = (await r1.stats()).plane.forwardedBytes;
      if (atKill >= FILE_BYTES / 4 || client.code !== undefined) break;
      if (performance.now() > deadline) throw new Error(`the transfer did not start through ${r1.host}:\n${client.tail()}\n${clientSide.tail()}`);
      await Bun.sleep(10);
    }
    expect(client.code).toBeUndefined();
    await r1.kill();
    const killedAt = performance.now();

    const code = await client.exitCode(90_000);
    const ms = Math.round(performance.now() - started);
    const file = join(dir, "blob");
    const sha = existsSync(file) ? createHash("sha256").update(readFileSync(file)).digest("hex") : "(missing)";
    const moved = [serverSide, clientSide].map((p) => /stopped answering .* moving session/.test(p.output));
    console.log(
      `[e2e] ${plane} fleet move: r1 killed at ${atKill} B forwarded, ${Math.round(performance.now() - killedAt)} ms before the end; gtlsclient exit ${code}, ${ms} ms in all, sha256 ${sha === blobSha ? "ok" : "MISMATCH"}`,
    );
    // gtlsclient exits 0 even when the download failed: the file's hash is the verdict.
    expect(sha).toBe(blobSha);
    expect(moved).toEqual([true, true]);
    expect((await r2.stats()).plane.forwardedBytes + (await r2.stats()).plane.controlPackets).toBeGreaterThan(0);
    for (const p of [clientSide, serverSide]) p.kill("SIGTERM");
    server.kill();
  }, 150_000);
});
