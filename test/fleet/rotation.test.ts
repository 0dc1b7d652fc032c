/**
 * Rotating the fleet secret on running relays (the `quic-relay` command, SIGHUP): a bridged
 * session keeps forwarding through the three steps, not one relay-to-relay datagram is refused,
 * and a relay that signs with a secret its partner does not know yet is refused (so the check is
 * real). A broken secret file on SIGHUP keeps the running secrets.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, planesUnderTest, testPeers } from "../utils.ts";
import { freeUdpPort, REDIS_SERVER, startRedis, type TestRedis } from "../support/fleet-harness.ts";
import { pairAcross, type RelayAt, roundTrip } from "../support/fleet-peers.ts";
import { freeTcpPort, RelayProcess } from "../cli/relay-process.ts";

const OLD = "the-old-fleet-secret-0123456789";
const NEW = "the-new-fleet-secret-9876543210";

if (!REDIS_SERVER) console.warn("fleet rotation tests skipped: redis-server is not installed (apt-get install -y redis-server)");
const suite = REDIS_SERVER ? describe : describe.skip;

interface CliRelay extends RelayAt {
  proc: RelayProcess;
  /** The relay-to-relay datagrams it refused so far, by reason (from /metrics). */
  rejected(): Promise<Record<string, number>>;
  /** Writes the secret file and sends SIGHUP; resolves once the relay logged the outcome. */
  rotate(lines: string[], expect: "replaced" | "failed"): Promise<void>;
}

suite.each(planesUnderTest())("fleet secret rotation on the %s plane", (plane) => {
  let redis: TestRedis | undefined;
  let relays: CliRelay[] = [];
  const dirs: string[] = [];
  const open = testPeers();
  afterEach(async () => {
    for (const r of relays) r.proc.kill();
    await Promise.all(relays.map((r) => r.proc.exited()));
    relays = [];
    await redis?.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function startCli(host: string, secrets: string[]): Promise<CliRelay> {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-rotation-"));
    dirs.push(dir);
    const secretFile = join(dir, "fleet-secret");
    writeFileSync(secretFile, `${secrets.join("\n")}\n`);
    chmodSync(secretFile, 0o600);
    const port = await freeUdpPort(host);
    const metrics = await freeTcpPort();
    const advertise = `${host}:${port}`;
    const proc = RelayProcess.spawn([
      "--host", host, "--port", String(port), "--dataplane", plane, "--metrics-listen", `127.0.0.1:${metrics}`,
      "--fleet-redis", redis!.url, "--fleet-advertise", advertise, "--fleet-secret-file", secretFile, "--fleet-heartbeat-secs", "0.5",
    ]);
    await proc.waitFor("quic-relay listening");
    return {
      host,
      port,
      proc,
      async rejected() {
        const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
        const out: Record<string, number> = {};
        for (const m of text.matchAll(/^quic_relay_fleet_bridge_rejected_total\{reason="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
        return out;
      },
      async rotate(lines, outcome) {
        const line = outcome === "replaced" ? "fleet secrets replaced" : "reload failed";
        const before = proc.count(line);
        writeFileSync(secretFile, `${lines.join("\n")}\n`);
        proc.proc.kill("SIGHUP");
        await eventually(() => proc.count(line) > before, 10_000);
      },
    };
  }
  const totalRejected = async (r: CliRelay) => Object.values(await r.rejected()).reduce((a, b) => a + b, 0);

  it("three SIGHUP steps on each relay: the bridged session carries every datagram, none is refused", async () => {
    redis = await startRedis();
    relays = await Promise.all(["127.0.0.61", "127.0.0.62"].map((h) => startCli(h, [OLD])));
    const [r1, r2] = relays as [CliRelay, CliRelay];
    const p = await pairAcross(open, r1, r2);
    await roundTrip(p, "old");
    const steps: string[][] = [[OLD, NEW], [NEW, OLD], [NEW]];
    for (const [i, lines] of steps.entries()) {
      await r1.rotate(lines, "replaced");
      await roundTrip(p, `step ${i + 1}, r1 done`);
      await r2.rotate(lines, "replaced");
      await roundTrip(p, `step ${i + 1}, both done`);
    }
    expect(await totalRejected(r1)).toBe(0);
    expect(await totalRejected(r2)).toBe(0);
  }, 60_000);

  it("a relay signing with a secret its partner does not have is refused; a broken file keeps the running secrets", async () => {
    redis = await startRedis();
    relays = await Promise.all(["127.0.0.63", "127.0.0.64"].map((h) => startCli(h, [OLD])));
    const [r1, r2] = relays as [CliRelay, CliRelay];
    const p = await pairAcross(open, r1, r2);
    await roundTrip(p, "old");
    // A file with a short secret is refused: r1 keeps signing with OLD, the session carries on.
    await r1.rotate(["short"], "failed");
    await roundTrip(p, "after a broken file");
    // Skipping step 1: r1 signs with NEW, which r2 does not know.
    await r1.rotate([NEW], "replaced");
    p.a.send("lost", r1.port, r1.host);
    const refused = async () => {
      const r = await r2.rejected();
      return (r["unknown-key"] ?? 0) + (r["bad-tag"] ?? 0);
    };
    await eventually(async () => (await refused()) >= 1, 10_000);
    expect(p.b.inbox).toEqual([]);
    expect(await refused()).toBe(1);
  }, 60_000);
});
