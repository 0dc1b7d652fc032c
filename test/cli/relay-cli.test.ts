import { afterEach, describe, expect, it } from "bun:test";
import type { Subprocess } from "bun";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { availablePlanes } from "../../src/dataplane/select.ts";
import { eventually, register, TestPeer } from "../utils.ts";
import { RelayProcess } from "./relay-process.ts";

const ROOT = join(import.meta.dir, "../..");

async function freePort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

/** A process and its descendants (`bun run` starts the relay as a child), children first. */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // already gone
  }
  return [...children.flatMap(processTree), pid];
}

function killTree(proc: Subprocess): void {
  for (const pid of processTree(proc.pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Start `bun run relay -- ...args` as a user would, collecting stderr. */
function spawnRelay(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(["bun", "run", "relay", "--", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let stderr = "";
  const reader = (async () => {
    for await (const chunk of proc.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  return { proc, output: () => stderr, done: reader };
}

/** Polls `check` for up to `ms`; the assertions that follow say what was missing. */
async function waitFor(check: () => boolean, ms: number): Promise<void> {
  await eventually(check, ms).catch(() => {});
}

describe("quic-relay command line", () => {
  const running: Subprocess[] = [];
  const peers: TestPeer[] = [];
  afterEach(() => {
    for (const p of running.splice(0)) killTree(p);
    for (const p of peers.splice(0)) p.close();
  });

  it("starts with the black-box invocation and answers REG", async () => {
    const port = await freePort();
    const started = Date.now();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port), "--session-timeout-secs", "30"]);
    running.push(relay.proc);
    const peer = await TestPeer.open("127.0.0.2");
    peers.push(peer);
    let reply = "";
    while (Date.now() - started < 10_000 && reply === "") {
      peer.send("REG:cli-session\n", port);
      reply = await peer.nextText(100).catch(() => "");
    }
    expect(reply).toBe("ACK\n");
    await waitFor(() => relay.output().includes("listening"), 10_000);
    const line = relay.output().split("\n").find((l) => l.includes("listening"))!;
    expect(line).toContain(`127.0.0.1:${port}`);
    expect(line).toMatch(/dataplane=(ts|native)/);
    expect(line).toContain("session-timeout=30s");
  });

  it("stops on SIGTERM with exit code 0", async () => {
    const port = await freePort();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port)]);
    running.push(relay.proc);
    await waitFor(() => relay.output().includes("listening"), 10_000);
    relay.proc.kill("SIGTERM");
    expect(await relay.proc.exited).toBe(0);
  });

  it.each([
    [["--port", "notaport"], "--port must be an integer"],
    [["--port", "70000"], "--port must be an integer"],
    [["--session-timeout-secs", "-1"], "--session-timeout-secs"],
    [["--dataplane", "gpu"], "--dataplane must be one of"],
    [["--log-level", "loud"], "--log-level must be one of"],
    [["--bogus"], "unknown flag '--bogus'"],
  ])("rejects %j with a one-line error, a hint and exit code 2", async (args, message) => {
    const relay = spawnRelay(["--host", "127.0.0.1", ...args]);
    running.push(relay.proc);
    expect(await relay.proc.exited).toBe(2);
    await relay.done;
    // `bun run` echoes the script line first; the relay's own output follows.
    const lines = relay.output().split("\n").filter((l) => l !== "" && !l.startsWith("$ "));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toStartWith("quic-relay: ");
    expect(lines[0]).toContain(message);
    expect(lines[1]).toBe("run 'quic-relay --help' for usage");
    // Piped: no colour codes, and no usage text.
    expect(relay.output()).not.toContain("\x1b");
    expect(relay.output()).not.toContain("USAGE");
  });

  it("--check-config validates without binding: the port stays free, a bad value exits 2 naming it", async () => {
    const holder = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    // The port is taken: a relay would exit 1; the check binds nothing and says what it would start.
    const ok = spawnRelay(["--host", "127.0.0.1", "--port", String(holder.port), "--stun", "off", "--check-config"]);
    running.push(ok.proc);
    const stdout = await new Response(ok.proc.stdout).text();
    expect(await ok.proc.exited).toBe(0);
    await ok.done;
    expect(stdout).toStartWith(`config ok: udp 127.0.0.1:${holder.port} dataplane=auto session-timeout=300s stun=off`);
    expect(ok.output()).not.toContain("listening");
    holder.close();
    const bad = spawnRelay(["--session-timeout-secs", "soon", "--check-config"]);
    running.push(bad.proc);
    expect(await bad.proc.exited).toBe(2);
    await bad.done;
    expect(bad.output()).toContain("--session-timeout-secs must be a number");
  });

  it("exits 1 with one line when the port is taken", async () => {
    const holder = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(holder.port), "--dataplane", "ts"]);
    running.push(relay.proc);
    expect(await relay.proc.exited).toBe(1);
    holder.close();
    await relay.done;
    expect(relay.output()).toContain(`quic-relay: cannot listen on udp 127.0.0.1 port ${holder.port}`);
  });

  it("refuses --dataplane native clearly when the addon cannot load", async () => {
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", "0", "--dataplane", "native"], { QUIC_RELAY_NO_NATIVE: "1" });
    running.push(relay.proc);
    expect(await relay.proc.exited).toBe(2);
    await relay.done;
    expect(relay.output()).toContain("data plane 'native' is unavailable");
  });

  it("falls back to the TS plane under auto when the addon cannot load, saying why", async () => {
    const port = await freePort();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port)], { QUIC_RELAY_NO_NATIVE: "1" });
    running.push(relay.proc);
    await waitFor(() => relay.output().includes("listening"), 10_000);
    expect(relay.output()).toContain("native data plane not used: disabled by QUIC_RELAY_NO_NATIVE");
    expect(relay.output()).toContain("dataplane=ts");
  });

  it.skipIf(!availablePlanes().includes("native"))("uses the native plane under auto when the addon loads", async () => {
    const port = await freePort();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port)]);
    running.push(relay.proc);
    await waitFor(() => relay.output().includes("listening"), 10_000);
    expect(relay.output()).toContain("dataplane=native");
  });

  it.each([
    [{ RUST_LOG: "debug" }],
    [{ RUST_LOG: "quic_relay=debug,warn" }],
    [{ RUST_LOG: "quic-relay=debug" }],
    [{ LOG_LEVEL: "debug" }],
  ])("honours %j for debug logs", async (env) => {
    const port = await freePort();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port)], env);
    running.push(relay.proc);
    await waitFor(() => relay.output().includes("listening"), 10_000);
    const peer = await TestPeer.open("127.0.0.2");
    peers.push(peer);
    expect(await register(peer, port, "debug-session")).toBe("ACK\n");
    await waitFor(() => relay.output().includes("DEBUG"), 10_000);
    expect(relay.output()).toContain("DEBUG");
    expect(relay.output()).toContain("session created");
  });

  it("accepts tokens minted by `quic-relay token` when started with --auth-secret, and refuses bare REGs", async () => {
    const secret = "cli-auth-secret-0123456789";
    const port = await freePort();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port), "--auth-secret", secret]);
    running.push(relay.proc);
    await waitFor(() => relay.output().includes("listening"), 10_000);
    const minted = Bun.spawnSync(["bun", "src/cli/main.ts", "token", "--session", "authed", "--ttl", "60", "--secret", secret], { cwd: ROOT });
    expect(minted.exitCode).toBe(0);
    const field = minted.stdout.toString().trim();
    expect(field).toStartWith("authed:");
    const peer = await TestPeer.open("127.0.0.2");
    peers.push(peer);
    expect(await register(peer, port, field)).toBe("ACK\n");
    const stranger = await TestPeer.open("127.0.0.3");
    peers.push(stranger);
    expect(await register(stranger, port, "authed-without-a-token")).toBe("ERR auth\n");
  });

  it("logs no per-datagram lines at info", async () => {
    const port = await freePort();
    const relay = spawnRelay(["--host", "127.0.0.1", "--port", String(port)]);
    running.push(relay.proc);
    await waitFor(() => relay.output().includes("listening"), 10_000);
    const peer = await TestPeer.open("127.0.0.2");
    peers.push(peer);
    expect(await register(peer, port, "quiet")).toBe("ACK\n");
    for (let i = 0; i < 20; i++) peer.send("early data", port);
    // Then a REG for another session from the same address: refused (busy) and logged at info,
    // after whatever the relay logged for the 20 datagrams before it.
    peer.send("REG:another-session\n", port);
    await waitFor(() => relay.output().includes("registration refused"), 10_000);
    expect(relay.output()).toContain("registration refused");
    expect(relay.output()).not.toContain("DEBUG");
    // Startup and lifecycle lines only: a line per datagram would make 20 more.
    expect(relay.output().split("\n").filter((l) => l.includes("INFO")).length).toBeLessThan(8);
  });

  it.each([
    ["0644", true],
    ["0600", false],
  ])("with a %s auth secret file, warns about its permissions: %p", async (octal, warns) => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-cli-secret-"));
    const secrets = join(dir, "secrets");
    writeFileSync(secrets, "# REG token secrets\ncli-file-secret-0123456789\n");
    chmodSync(secrets, parseInt(octal, 8));
    // Started directly (not through `bun run`) so SIGHUP reaches the relay.
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(await freePort()), "--auth-secret-file", secrets]);
    try {
      await relay.waitFor("listening");
      const warning = `WARN  secret file ${secrets} (--auth-secret-file) is open to group or others, mode ${octal}; run chmod 600 ${secrets}`;
      expect(relay.count(warning)).toBe(warns ? 1 : 0);
      expect(relay.count("WARN")).toBe(warns ? 1 : 0);
      if (warns) return;
      // The file is read again on SIGHUP, and checked again.
      chmodSync(secrets, 0o644);
      relay.proc.kill("SIGHUP");
      await relay.waitFor("configuration reloaded");
      expect(relay.count(warning.replace("mode 0600", "mode 0644"))).toBe(1);
      expect(relay.count("WARN")).toBe(1);
      expect(relay.output()).not.toContain("cli-file-secret-0123456789");
    } finally {
      relay.kill();
      await relay.exited();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
