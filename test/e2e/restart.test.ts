/**
 * A real QUIC transfer (@matrixai/quic peers behind symmetric NATs, direct mode) survives a relay
 * restart in the middle: the relay gets SIGTERM, saves its sessions to --state-file, a new process
 * restores them on the same address and port, and the transfer completes with the right sha256.
 * Neither peer re-registers (keepalive REG off), so only the restored session can carry it. The
 * negative control restarts without a state file and the same transfer dies.
 */
import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { announceSkip, MAIN, PLANES, skipReason } from "./env.ts";
import { type Proc, waitFor } from "./procs.ts";
import { natSuite } from "./suite.ts";
import { END_EVENTS, progressOf, startQuicClient, startQuicServer } from "./quic-peers.ts";
import { ADDR } from "./topology.ts";

const reason = skipReason(["ip", "conntrack", "node", "openssl"]);
announceSkip(reason, "relay-restart QUIC e2e");

const MB = 1024 * 1024;
const BASE_PORT = 4460;

describe.skipIf(reason !== undefined)("e2e: a QUIC transfer across a relay restart", () => {
  const { topo, procs, work } = natSuite("qrr");

  /** The relay in "pub"; undefined if the plane cannot start here (native without the addon, outside CI). */
  async function relay(name: string, plane: string, port: number, extra: string[]): Promise<Proc | undefined> {
    const proc = procs.spawn(name, topo.exec("pub", [
      "bun", MAIN, "--host", ADDR.relay, "--port", String(port), "--dataplane", plane, "--session-timeout-secs", "60", ...extra,
    ]));
    const started = await Promise.race([
      proc.waitOutput(/listening on udp/, 15_000).then(() => true, () => false),
      proc.exited.then(() => false),
    ]);
    if (started) return proc;
    proc.kill();
    if (plane === "native" && process.env.CI !== "true") {
      console.warn(`[e2e] native data plane unavailable, its restart run is skipped:\n${proc.tail(5)}`);
      return undefined;
    }
    throw new Error(`relay (${plane}) did not start:\n${proc.tail()}`);
  }

  /** Starts an 8 MB transfer with REG keepalives off, restarts the relay at 2 MB, returns the client's end event. */
  async function transferAcrossRestart(plane: string, port: number, relayArgs: string[], idleMs: number) {
    const first = await relay(`relay-${plane}-before`, plane, port, relayArgs);
    if (!first) return undefined;
    const session = `restart-${plane}-${port}-${process.pid}`;
    const opts = { relayPort: port, session, keepaliveMs: 600_000, idleMs };
    const server = startQuicServer(topo, procs, work(), 8 * MB, opts);
    await server.waitEvent("registered", 15_000);
    const client = startQuicClient(topo, procs, { ...opts, timeoutMs: 60_000 });
    await waitFor(() => progressOf(client) >= 2 * MB || client.events.some((e) => END_EVENTS.includes(e.event)), 40_000, () => client.tail());
    const atRestart = progressOf(client);
    const stopped = performance.now();
    first.kill("SIGTERM");
    const code = await first.exitCode(10_000);
    const second = await relay(`relay-${plane}-after`, plane, port, relayArgs);
    const gapMs = Math.round(performance.now() - stopped);
    const end = await client.waitEvent(END_EVENTS, 70_000);
    server.kill();
    client.kill();
    second?.kill("SIGTERM");
    if (second) await second.exitCode(10_000);
    return { session, first, second: second!, code, gapMs, atRestart, end, sha256: server.event("listening")!.sha256 };
  }

  describe.each(PLANES.map((plane, i) => [plane, BASE_PORT + i] as const))("relay on the %s data plane", (plane, port) => {
    it("completes intact; the restarted relay restored the session, no peer re-registered", async () => {
      const stateFile = join(work().dir, `sessions-${plane}.db`);
      const run = await transferAcrossRestart(plane, port, ["--state-file", stateFile], 15_000);
      if (!run) return;
      console.log(`[e2e] ${plane} restart at ${run.atRestart} B: relay down ${run.gapMs} ms; ${run.end.event} ${run.end.bytes} B in ${run.end.ms} ms`);
      expect(run.code).toBe(0);
      expect(run.first.output).toContain("state saved");
      expect(run.second.output).toMatch(/sessions restored from state file .*restored=1 skipped=0/);
      expect(run.end.event).toBe("done");
      expect(run.end.bytes).toBe(8 * MB);
      expect(run.end.sha256).toBe(run.sha256);
      // The session was never created again: it came back from the file.
      expect(run.second.output).not.toContain(`session created session=${run.session}`);
    }, 150_000);
  });

  it("negative control: restarted without a state file, the same transfer dies", async () => {
    const run = await transferAcrossRestart("ts", BASE_PORT + 9, [], 5_000);
    console.log(`[e2e] negative control (no state file): restart at ${run!.atRestart} B, relay down ${run!.gapMs} ms; ${run!.end.event}`);
    expect(run!.end.event).not.toBe("done");
  }, 150_000);
});
