import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bytes, eventually, planesUnderTest, TestPeer, text } from "../utils.ts";
import { freeTcpPort, freeUdpPort, RelayProcess } from "../cli/relay-process.ts";

/** One sample of a relay process's metrics, 0 when absent. */
async function metric(metricsPort: number, name: string): Promise<number> {
  const doc = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = doc.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}
const SAVES = 'quic_relay_state_saves_total{result="ok"}';

async function exchange(from: TestPeer, to: TestPeer, port: number, payload: string): Promise<void> {
  // The new process may take a moment to bind: resend until it arrives, without ever re-registering.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    from.send(bytes(payload), port);
    const got = await to.next(150).catch(() => undefined);
    if (got) {
      expect(text(got.data)).toBe(payload);
      return;
    }
  }
  throw new Error(`'${payload}' never arrived`);
}

/** Two peers paired in a fresh session; REG is resent until ACK, so a loaded machine does not fail the test. */
async function pairedPeers(port: number): Promise<{ a: TestPeer; b: TestPeer }> {
  const a = await TestPeer.open("127.0.0.2");
  const b = await TestPeer.open("127.0.0.3");
  const session = crypto.randomUUID();
  for (const peer of [a, b]) {
    let reply = "";
    for (let i = 0; i < 20 && reply === ""; i++) {
      peer.send(`REG:${session}\n`, port);
      reply = await peer.nextText(500).catch(() => "");
    }
    if (reply !== "ACK\n") throw new Error(`REG not acknowledged: '${reply}'`);
  }
  return { a, b };
}

describe.each(planesUnderTest())("sessions survive a relay restart (%s plane)", (plane) => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0)) f();
  });

  it("paired peers keep exchanging after SIGTERM and a restart with the same --state-file, without re-REG", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-state-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, "sessions.db");
    const port = await freeUdpPort();
    const metricsPort = await freeTcpPort();
    const args = ["--host", "127.0.0.1", "--port", String(port), "--dataplane", plane, "--workers", "1", "--state-file", stateFile];

    const first = RelayProcess.spawn(args);
    cleanup.push(() => first.kill());
    await first.waitFor("listening");
    const { a, b } = await pairedPeers(port);
    cleanup.push(() => (a.close(), b.close()));
    await exchange(a, b, port, "before restart a->b");
    await exchange(b, a, port, "before restart b->a");
    const stopped = await first.signal("SIGTERM");
    expect(stopped.code).toBe(0);
    expect(first.output()).toContain("state saved");

    const second = RelayProcess.spawn([...args, "--metrics-listen", `127.0.0.1:${metricsPort}`]);
    cleanup.push(() => second.kill());
    await second.waitFor("listening");
    expect(second.output()).toContain("sessions restored from state file");
    expect(second.output()).toMatch(/restored=1 /);
    await exchange(a, b, port, "after restart a->b");
    await exchange(b, a, port, "after restart b->a");
    // Nobody re-registered: the second relay created no session, it restored one.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain("quic_relay_sessions_restored_total 1");
    expect(metrics).toContain("quic_relay_sessions_created_total 0");
    expect(metrics).toContain('quic_relay_sessions_active{state="paired"} 1');
    expect((await second.signal("SIGTERM")).code).toBe(0);
  });

  it("periodic saves carry sessions over a crash (SIGKILL)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-state-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, "sessions.db");
    const port = await freeUdpPort();
    const metricsPort = await freeTcpPort();
    const args = ["--host", "127.0.0.1", "--port", String(port), "--dataplane", plane, "--workers", "1", "--state-file", stateFile];
    const first = RelayProcess.spawn([...args, "--state-save-interval-secs", "0.2", "--metrics-listen", `127.0.0.1:${metricsPort}`]);
    cleanup.push(() => first.kill());
    await first.waitFor("quic-relay listening");
    const { a, b } = await pairedPeers(port);
    cleanup.push(() => (a.close(), b.close()));
    // A periodic save that began after the pairing (this scrape) holds the paired session.
    const saves = await metric(metricsPort, SAVES);
    await eventually(async () => (await metric(metricsPort, SAVES)) > saves, 10_000, 50);
    // The file holds the session's row; the last save's figures are exported.
    expect(await metric(metricsPort, "quic_relay_state_file_rows")).toBeGreaterThanOrEqual(1);
    const doc = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    for (const kind of ["written", "removed", "copied", "dropped"]) expect(doc).toContain(`quic_relay_state_last_save_rows{kind="${kind}"}`);
    expect(doc).toContain("quic_relay_state_last_save_longest_chunk_seconds ");
    expect((await first.signal("SIGKILL")).code).not.toBe(0);
    const second = RelayProcess.spawn(args);
    cleanup.push(() => second.kill());
    await second.waitFor("listening");
    expect(second.output()).toMatch(/restored=1 /);
    await exchange(a, b, port, "after crash a->b");
    await exchange(b, a, port, "after crash b->a");
    expect((await second.signal("SIGTERM")).code).toBe(0);
  });

  it("restores nothing that expired while the relay was down", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-state-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, "sessions.db");
    const port = await freeUdpPort();
    const metricsPort = await freeTcpPort();
    const args = ["--host", "127.0.0.1", "--port", String(port), "--dataplane", plane, "--workers", "1", "--state-file", stateFile];
    const first = RelayProcess.spawn([...args, "--session-timeout-secs", "1"]);
    cleanup.push(() => first.kill());
    await first.waitFor("listening");
    const { a, b } = await pairedPeers(port);
    cleanup.push(() => (a.close(), b.close()));
    expect((await first.signal("SIGTERM")).code).toBe(0);
    // The downtime under test, longer than the session timeout: an input, not a wait for something
    // to happen (no fake clock reaches across processes; a slow machine only makes it longer).
    await Bun.sleep(1200);
    const second = RelayProcess.spawn([...args, "--session-timeout-secs", "1", "--metrics-listen", `127.0.0.1:${metricsPort}`]);
    cleanup.push(() => second.kill());
    await second.waitFor("quic-relay listening");
    expect(second.output()).toMatch(/restored=0 skipped=1/);
    // No route was restored: A's datagram reaches the control plane and is dropped there.
    a.send("stale", port);
    await eventually(async () => (await metric(metricsPort, 'quic_relay_drops_total{reason="unknown-source"}')) === 1, 10_000, 50);
    expect(b.inbox).toEqual([]);
    expect((await second.signal("SIGTERM")).code).toBe(0);
  });
});
