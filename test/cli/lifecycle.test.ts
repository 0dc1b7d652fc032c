/**
 * The relay as a process: signals, reloads, log format, settings sources, refusals at startup.
 * Deterministic on a loaded machine: REGs and datagrams are resent until they arrive, output is
 * polled for, and nothing waits a fixed time.
 */
import { afterEach, describe, expect, it } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mintToken } from "../../src/security/token.ts";
import { StateStore } from "../../src/state/store.ts";
import { exchange, get, pairUntilAcknowledged, registerUntilAnswered } from "../service/process-helpers.ts";
import { TestPeer } from "../utils.ts";
import { freeTcpPort, freeUdpPort, RelayProcess } from "./relay-process.ts";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");

describe("relay process lifecycle", () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0)) f();
  });
  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-life-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
  function spawn(args: string[], env: Record<string, string> = {}): RelayProcess {
    const relay = RelayProcess.spawn(args, env);
    cleanup.push(() => relay.kill());
    return relay;
  }
  async function peers(port: number) {
    const pair = await pairUntilAcknowledged(port);
    cleanup.push(() => (pair.a.close(), pair.b.close()));
    return pair;
  }
  const roundTrip = exchange;
  const register = registerUntilAnswered;
  /** A relay process whose output is handed, as it grows, to `onOutput` (from the output reader itself). */
  function watch(args: string[], onOutput: (output: string, proc: Subprocess) => void): RelayProcess {
    const relay = RelayProcess.spawn(args, {}, onOutput);
    cleanup.push(() => relay.kill());
    return relay;
  }

  it.each(["SIGTERM", "SIGINT"] as const)("%s with live sessions: saves state, exits 0 within the shutdown bound", async (signal) => {
    const port = await freeUdpPort();
    const relay = spawn(["--host", "127.0.0.1", "--port", String(port), "--state-file", join(tempDir(), "s.db")]);
    await relay.waitFor("listening");
    await peers(port);
    // Exit code 0, not the relay's own forced exit (1, "shutdown took too long"): within the bound.
    const { code } = await relay.signal(signal);
    expect(code).toBe(0);
    expect(relay.output()).not.toContain("shutdown took too long");
    expect(relay.output()).toContain(`received ${signal}, stopping sessions=1`);
    expect(relay.output()).toContain("state saved");
    expect(relay.output()).toContain("INFO  stopped");
  });

  it("when `listening` appears, saved sessions are back, /readyz answers 200 and the metrics port is open", async () => {
    const dir = tempDir();
    const stateFile = join(dir, "s.db");
    const { store } = StateStore.open(stateFile);
    store.save([{ id: "saved", idleMs: 0, peers: [{ address: "127.0.0.2", port: 5000, idleMs: 0 }] }]);
    store.close();
    const [port, metricsPort] = [await freeUdpPort(), await freeTcpPort()];
    const args = ["--host", "127.0.0.1", "--port", String(port), "--state-file", stateFile, "--metrics-listen", `127.0.0.1:${metricsPort}`];
    // Asked from the output reader the moment the line arrives, before the relay can get further.
    let ready: Promise<string> | undefined;
    let before = "";
    const relay = watch(args, (output) => {
      if (ready || !output.includes("listening")) return;
      before = output.slice(0, output.indexOf("listening"));
      ready = get(`http://127.0.0.1:${metricsPort}/readyz`);
    });
    await relay.waitFor("listening");
    expect(await ready!).toBe("200 ok");
    expect(before).toContain("sessions restored from state file");
    expect(before).toMatch(/restored=1 /);
    expect((await relay.signal("SIGTERM")).code).toBe(0);
  });

  describe("signals sent the moment the relay says `listening` are handled, never fatal", () => {
    // Each round starts a relay and signals it from the output reader as soon as the line arrives.
    // A relay that installed its handlers late, or announced itself early, dies of the signal.
    const ROUNDS = 6;
    const args = async () => {
      const dir = tempDir();
      return ["--host", "127.0.0.1", "--port", String(await freeUdpPort()), "--state-file", join(dir, "s.db"), "--metrics-listen", `127.0.0.1:${await freeTcpPort()}`];
    };
    /** Sends `signals` once, the moment the output contains `text`. */
    const at = (text: string, ...signals: NodeJS.Signals[]) => {
      let sent = false;
      return (output: string, proc: Subprocess) => {
        if (sent || !output.includes(text)) return;
        sent = true;
        for (const signal of signals) proc.kill(signal);
      };
    };

    it.each(["SIGTERM", "SIGINT"] as const)("%s: a clean stop, exit 0", async (signal) => {
      for (let round = 0; round < ROUNDS; round++) {
        const relay = watch(await args(), at("listening", signal));
        const code = await relay.exited();
        expect({ round, code, signal: relay.proc.signalCode }).toEqual({ round, code: 0, signal: null });
        expect(relay.output()).toContain(`received ${signal}, stopping`);
        expect(relay.output()).toContain("INFO  stopped");
      }
    }, 120_000);

    it("SIGHUP: reloaded, and the relay lives on and answers", async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const list = await args();
        const port = Number(list[3]);
        const relay = watch(list, at("listening", "SIGHUP"));
        await relay.waitFor("received SIGHUP, configuration reloaded");
        const peer = await TestPeer.open("127.0.0.2");
        cleanup.push(() => peer.close());
        expect(await register(peer, port, `after-sighup-${round}`)).toBe("ACK\n");
        expect(relay.proc.exitCode).toBeNull();
        expect((await relay.signal("SIGTERM")).code).toBe(0);
      }
    }, 120_000);

    it("SIGHUP and SIGTERM together: reloaded, then a clean stop", async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const relay = watch(await args(), at("listening", "SIGHUP", "SIGTERM"));
        const code = await relay.exited();
        expect({ round, code, signal: relay.proc.signalCode }).toEqual({ round, code: 0, signal: null });
        expect(relay.output()).toContain("received SIGTERM, stopping");
      }
    }, 120_000);
  });

  it("SIGHUP reloads the log level from the config file without dropping sessions", async () => {
    const dir = tempDir();
    const config = join(dir, "relay.toml");
    const port = await freeUdpPort();
    writeFileSync(config, `host = "127.0.0.1"\nport = ${port}\nlog-level = "info"\n`);
    const relay = spawn(["--config", config]);
    await relay.waitFor(`listening on udp 127.0.0.1:${port}`);
    const { a, b } = await peers(port);
    await relay.waitFor("session paired");

    writeFileSync(config, `host = "127.0.0.1"\nport = ${port + 1}\nlog-level = "warn"\n`);
    relay.proc.kill("SIGHUP");
    await relay.waitFor("changed settings take effect only after a restart settings=port");
    await roundTrip(a, b, port, "still paired after SIGHUP");
    await roundTrip(b, a, port, "both ways");
    const c = await TestPeer.open("127.0.0.4");
    cleanup.push(() => c.close());
    expect(await register(c, port, "after-reload")).toBe("ACK\n");

    // A broken file is refused and the running configuration stays.
    writeFileSync(config, `port = = broken`);
    relay.proc.kill("SIGHUP");
    await relay.waitFor("reload failed; keeping the running configuration");
    // That line comes after anything logged for C's session: at warn, nothing was.
    expect(relay.count("session created")).toBe(1);
    await roundTrip(a, b, port, "still paired after a failed reload");
    expect((await relay.signal("SIGTERM")).code).toBe(0);
  });

  it("SIGHUP swaps REG secrets from the config file; paired sessions keep forwarding", async () => {
    const one = "secret-one-0123456789";
    const two = "secret-two-0123456789";
    const expiry = Math.floor(Date.now() / 1000) + 600;
    const token = (secret: string, id: string) => mintToken(secret, id, expiry);
    const dir = tempDir();
    const config = join(dir, "relay.toml");
    const port = await freeUdpPort();
    writeFileSync(config, `host = "127.0.0.1"\nport = ${port}\nauth-secret = "${one}"\n`);
    const relay = spawn(["--config", config]);
    await relay.waitFor("listening");
    expect(relay.output()).toContain("auth=on (1 secret from config)");
    expect(relay.output()).not.toContain(one);

    const [a, b, c] = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.4"].map((h) => TestPeer.open(h)));
    cleanup.push(() => (a!.close(), b!.close(), c!.close()));
    expect(await register(c!, port, "no-token")).toBe("ERR auth\n");
    // With tokens the relay asks for proof of the address (RETRY); register() answers it.
    expect(await register(a!, port, token(one, "s1"))).toBe("ACK\n");
    expect(await register(b!, port, token(one, "s1"))).toBe("ACK\n");

    writeFileSync(config, `host = "127.0.0.1"\nport = ${port}\nauth-secret = "${two}"\n`);
    relay.proc.kill("SIGHUP");
    await relay.waitFor("REG policy replaced");
    expect(await register(c!, port, token(one, "s2"))).toBe("ERR auth\n");
    expect(await register(c!, port, token(two, "s2"))).toBe("ACK\n");
    await roundTrip(a!, b!, port, "paired before the new secret");
    expect((await relay.signal("SIGTERM")).code).toBe(0);
  });

  it("--log-format json writes one JSON object per line, startup line included", async () => {
    const port = await freeUdpPort();
    const relay = spawn(["--host", "127.0.0.1", "--port", String(port), "--log-format", "json", "--session-timeout-secs", "7"]);
    await relay.waitFor("listening");
    await peers(port);
    await relay.waitFor("session paired");
    expect((await relay.signal("SIGTERM")).code).toBe(0);
    const lines = relay.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const line of lines) {
      expect(typeof line.time).toBe("string");
      expect(line.level).toBeOneOf(["info", "warn", "error", "debug", "trace"]);
      expect(typeof line.msg).toBe("string");
    }
    const listening = lines.find((l) => String(l.msg).includes("listening"))!;
    expect(String(listening.msg)).toMatch(new RegExp(`^quic-relay listening on udp 127\\.0\\.0\\.1:${port} dataplane=(ts|native) session-timeout=7s verify-source=off stun=on( |$)`));
    const paired = lines.find((l) => l.msg === "session paired")!;
    expect(paired.paired).toBe(1);
  });

  it("takes settings from QUIC_RELAY_* env over the config file", async () => {
    const dir = tempDir();
    const port = await freeUdpPort();
    const config = join(dir, "relay.toml");
    writeFileSync(config, `host = "127.0.0.1"\nport = 1\nsession-timeout-secs = 42\n`);
    const relay = spawn([], { QUIC_RELAY_CONFIG: config, QUIC_RELAY_PORT: String(port) });
    await relay.waitFor("listening");
    expect(relay.output()).toContain(`127.0.0.1:${port} dataplane=`);
    expect(relay.output()).toContain("session-timeout=42s");
  });

  it.each([
    [["--config", "/nonexistent/relay.toml"], 2, "quic-relay: cannot read config file /nonexistent/relay.toml: ENOENT"],
    [["--state-file", "/nonexistent-dir/state.db"], 1, "quic-relay: cannot open state file /nonexistent-dir/state.db"],
    [["--metrics-listen", "localhost"], 2, "quic-relay: --metrics-listen must be host:port"],
  ])("refuses %j in one line (exit %d)", async (args, exit, message) => {
    const relay = spawn(["--host", "127.0.0.1", "--port", "0", ...args]);
    expect(await relay.exited()).toBe(exit);
    expect(relay.lines()[0]).toStartWith(message);
  });

  it("exits 1 in one line when the metrics port is taken", async () => {
    const taken = await freeTcpPort();
    const holder = Bun.listen({ hostname: "127.0.0.1", port: taken, socket: { data() {} } });
    cleanup.push(() => holder.stop(true));
    const relay = spawn(["--host", "127.0.0.1", "--port", "0", "--metrics-listen", `127.0.0.1:${taken}`]);
    expect(await relay.exited()).toBe(1);
    expect(relay.output()).toContain(`quic-relay: cannot listen for metrics on 127.0.0.1:${taken}`);
  });
});
