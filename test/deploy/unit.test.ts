/**
 * The deployment artefacts, checked without the machines they are for:
 *
 * - deploy/quic-relay.service: `systemd-analyze verify` (and `security --offline`) on the unit as
 *   shipped, with only ExecStart's path pointed at an executable that exists here;
 * - deploy/relay.toml: the real CLI starts with it (and refuses a misspelt key, exit 2);
 * - `quic-relay health`, the container health check: 0 on a 200, 1 on a 503, a refused connection
 *   or silence, 2 on a bad flag; one line each;
 * - Dockerfile: no Docker daemon here, so the runtime stage is read (ENV, EXPOSE, ENTRYPOINT, CMD,
 *   HEALTHCHECK) and run as processes: the relay as the image would start it, then the
 *   HEALTHCHECK command against it, passing while it runs and failing once it stopped.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPort, freeUdpPort, RelayProcess } from "../cli/relay-process.ts";

const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/cli/main.ts");
const work = mkdtempSync(join(tmpdir(), "quic-relay-deploy-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function run(argv: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(argv, { env: { ...process.env, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr, lines: (stdout + stderr).split("\n").filter((l) => l !== "") };
}

/** `quic-relay ARGS` from this checkout. */
const cli = (args: string[], env: Record<string, string> = {}) => run(["bun", MAIN, ...args], env);

// ---------------------------------------------------------------------------------------------
// systemd unit

const systemdAnalyze = Bun.which("systemd-analyze");
if (!systemdAnalyze) console.log("skip deploy/quic-relay.service checks: systemd-analyze not installed (Debian package systemd)");

describe.skipIf(!systemdAnalyze)("deploy/quic-relay.service", () => {
  /** The unit as shipped, ExecStart's binary replaced by a script that exists, with `edit` applied. */
  function unitCopy(name: string, edit: (unit: string) => string = (u) => u): string {
    const dir = join(work, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const binary = join(dir, "quic-relay");
    writeFileSync(binary, `#!/bin/sh\nexec bun ${MAIN} "$@"\n`);
    chmodSync(binary, 0o755);
    const unit = readFileSync(join(ROOT, "deploy/quic-relay.service"), "utf8").replaceAll("/usr/local/bin/quic-relay", binary);
    const path = join(dir, "quic-relay.service");
    writeFileSync(path, edit(unit));
    return path;
  }

  it("passes systemd-analyze verify with nothing to say about it", async () => {
    const path = unitCopy("verify");
    const result = await run([systemdAnalyze!, "verify", path]);
    expect(result.code, result.lines.join("\n")).toBe(0);
    expect(result.lines.filter((l) => l.includes("quic-relay.service"))).toEqual([]);
  });

  it("verify would have caught a misspelt setting and a missing binary (the check can fail)", async () => {
    const misspelt = await run([systemdAnalyze!, "verify", unitCopy("misspelt", (u) => u.replace("ProtectSystem=", "ProtectSystm="))]);
    expect(misspelt.lines.join("\n")).toContain("Unknown key 'ProtectSystm'");
    const missing = await run([systemdAnalyze!, "verify", unitCopy("missing", (u) => u.replace(/^ExecStart=\S+/m, "ExecStart=/nonexistent/quic-relay"))]);
    expect(missing.code).not.toBe(0);
    expect(missing.lines.join("\n")).toContain("/nonexistent/quic-relay");
  });

  it("keeps its hardening: systemd-analyze security rates it at most 2.0 (OK)", async () => {
    const result = await run([systemdAnalyze!, "security", "--offline=true", "--no-pager", unitCopy("security")]);
    const level = /Overall exposure level for quic-relay\.service: ([\d.]+)/.exec(result.stdout + result.stderr);
    expect(level, result.lines.slice(-5).join("\n")).not.toBeNull();
    expect(Number(level![1])).toBeLessThanOrEqual(2.0);
  });
});

describe("deploy/quic-relay.service settings the docs rely on", () => {
  const unit = readFileSync(join(ROOT, "deploy/quic-relay.service"), "utf8");
  const env = new Map([...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));

  it("logs JSON (docs/deploy.md shows JSON lines) and keeps the state file in its StateDirectory", () => {
    expect(env.get("QUIC_RELAY_LOG_FORMAT")).toBe("json");
    const stateDir = /^StateDirectory=(\S+)$/m.exec(unit)?.[1];
    expect(stateDir).toBe("quic-relay");
    expect(env.get("QUIC_RELAY_STATE_FILE")).toBe(`/var/lib/${stateDir}/sessions.db`);
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/quic-relay --config \/etc\/quic-relay\/relay\.toml$/m);
  });
});

// ---------------------------------------------------------------------------------------------
// relay.toml through the real CLI

describe("deploy/relay.toml", () => {
  it("starts the relay as it is (only the addresses overridden by flags) and stops cleanly", async () => {
    const relay = RelayProcess.spawn(["--config", join(ROOT, "deploy/relay.toml"), "--host", "127.0.0.1", "--port", "0", "--metrics-listen", "127.0.0.1:0"], {
      QUIC_RELAY_LOG_FORMAT: "json",
    });
    try {
      await relay.waitFor("quic-relay listening on udp");
      expect(relay.output()).not.toContain('"level":"warn"');
      expect((await relay.signal("SIGTERM")).code).toBe(0);
    } finally {
      relay.kill();
    }
  });

  it("a misspelt key in it stops the relay with exit 2 and one JSON line naming the key", async () => {
    const bad = join(work, "relay.toml");
    writeFileSync(bad, readFileSync(join(ROOT, "deploy/relay.toml"), "utf8").replace("session-timeout-secs", "session_timeout_secs"));
    const result = await cli(["--config", bad, "--port", "0"], { QUIC_RELAY_LOG_FORMAT: "json" });
    expect(result.code).toBe(2);
    const line = JSON.parse(result.stderr.trim().split("\n")[0]!) as { msg: string };
    expect(line.msg).toContain("unknown key 'session_timeout_secs'");
  });
});

// ---------------------------------------------------------------------------------------------
// quic-relay health

describe("quic-relay health", () => {
  /** An HTTP server on loopback answering every request with `status`, or never answering. */
  function server(answer: number | "never") {
    return Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => (answer === "never" ? new Promise<Response>(() => {}) : new Response(answer === 200 ? "ok\n" : "unavailable\n", { status: answer })),
    });
  }

  it("exits 0 with one line on a 200", async () => {
    const s = server(200);
    try {
      const result = await cli(["health", "--url", `http://127.0.0.1:${s.port}/healthz`]);
      expect(result.code, result.lines.join("\n")).toBe(0);
      expect(result.lines).toEqual([`healthy: http://127.0.0.1:${s.port}/healthz answered 200 ok`]);
    } finally {
      s.stop(true);
    }
  });

  it("exits 1 with one line on a 503, on a refused connection and on silence", async () => {
    const unavailable = server(503);
    const silent = server("never");
    const closed = await freeTcpPort();
    try {
      const r503 = await cli(["health", "--url", `http://127.0.0.1:${unavailable.port}/readyz`]);
      expect([r503.code, r503.lines]).toEqual([1, [`unhealthy: http://127.0.0.1:${unavailable.port}/readyz answered 503 unavailable`]]);
      const refused = await cli(["health", "--url", `http://127.0.0.1:${closed}/healthz`]);
      expect(refused.code).toBe(1);
      expect(refused.lines).toHaveLength(1);
      expect(refused.lines[0]).toStartWith(`unhealthy: http://127.0.0.1:${closed}/healthz cannot be reached`);
      const hung = await cli(["health", "--url", `http://127.0.0.1:${silent.port}/healthz`, "--timeout-ms", "300"]);
      expect([hung.code, hung.lines]).toEqual([1, [`unhealthy: http://127.0.0.1:${silent.port}/healthz did not answer within 300 ms`]]);
    } finally {
      unavailable.stop(true);
      silent.stop(true);
    }
  });

  it("asks /healthz on QUIC_RELAY_METRICS_LISTEN, on loopback when that is a wildcard", async () => {
    const s = server(200);
    try {
      for (const listen of [`127.0.0.1:${s.port}`, `0.0.0.0:${s.port}`]) {
        const result = await cli(["health"], { QUIC_RELAY_METRICS_LISTEN: listen });
        expect(result.lines).toEqual([`healthy: http://127.0.0.1:${s.port}/healthz answered 200 ok`]);
      }
    } finally {
      s.stop(true);
    }
  });

  it("exits 2 on a URL or timeout it cannot use", async () => {
    for (const args of [["--url", "not a url"], ["--url", "ftp://127.0.0.1/x"], ["--timeout-ms", "soon"]]) {
      const result = await cli(["health", ...args]);
      expect(result.code, result.lines.join("\n")).toBe(2);
      expect(result.lines).toHaveLength(1);
      expect(result.lines[0]).toStartWith("quic-relay health: --");
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
}

/** The instructions of the last stage (the image that runs), continuation lines joined, comments dropped. */
function runtimeStage(dockerfile: string): Instruction[] {
  const logical: string[] = [];
  let current = "";
  for (const raw of dockerfile.split("\n")) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, "");
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = "";
  }
  const all = logical.map((l) => {
    const m = /^(\w+)\s+([\s\S]*)$/.exec(l)!;
    return { op: m[1]!.toUpperCase(), args: m[2]! };
  });
  const last = all.map((i) => i.op).lastIndexOf("FROM");
  return all.slice(last);
}

function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.filter((i) => i.op === "ENV")) {
    for (const m of i.args.matchAll(/([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, "");
  }
  return env;
}

/** An exec-form (JSON array) argument list. */
const execForm = (args: string): string[] => JSON.parse(args.trim()) as string[];

describe("Dockerfile", () => {
  const stage = runtimeStage(readFileSync(join(ROOT, "Dockerfile"), "utf8"));
  const env = envOf(stage);
  const entrypoint = execForm(stage.find((i) => i.op === "ENTRYPOINT")!.args);
  const cmd = execForm(stage.find((i) => i.op === "CMD")!.args);
  const healthcheck = stage.find((i) => i.op === "HEALTHCHECK");

  it("keeps metrics on loopback and does not expose their port", () => {
    const listen = env.QUIC_RELAY_METRICS_LISTEN;
    expect(listen).toMatch(/^(127\.0\.0\.1|\[::1\]):\d+$/);
    const exposed = stage.filter((i) => i.op === "EXPOSE").flatMap((i) => i.args.split(/\s+/));
    expect(exposed).toEqual(["4433/udp"]);
    expect(env.QUIC_RELAY_LOG_FORMAT).toBe("json");
  });

  it("has a HEALTHCHECK that runs the image's own binary, with a timeout above the command's", () => {
    expect(healthcheck).toBeDefined();
    const m = /^(.*?)\bCMD\s+(\[.*\])$/.exec(healthcheck!.args)!;
    expect(m).not.toBeNull();
    const argv = execForm(m[2]!);
    expect(argv.slice(0, 2)).toEqual([entrypoint[0]!, "health"]);
    const timeout = /--timeout=(\d+)s/.exec(m[1]!)?.[1];
    // The command gives up after 2 s by default and says so; Docker's timeout must not cut it short.
    expect(Number(timeout)).toBeGreaterThan(2);
  });

  /**
   * The image started as Docker would (ENTRYPOINT + CMD, the image's ENV), with the binary from this
   * checkout and free ports: the HEALTHCHECK command passes while it runs, fails after it stopped.
   */
  async function checkHealthAgainstImage(overrides: Record<string, string>): Promise<void> {
    const relayPort = await freeUdpPort();
    const metricsPort = await freeTcpPort();
    const state = mkdtempSync(join(work, "state-"));
    const imageEnv: Record<string, string> = { ...env, QUIC_RELAY_STATE_FILE: join(state, "sessions.db") };
    for (const [k, v] of Object.entries({ ...imageEnv, ...overrides })) imageEnv[k] = v.replace(/:9464$/, `:${metricsPort}`);
    const args = [...entrypoint.slice(1), ...cmd].map((a) => (a === "4433" ? String(relayPort) : a));
    const relay = RelayProcess.spawn(args, imageEnv);
    const m = /CMD\s+(\[.*\])$/.exec(healthcheck!.args)!;
    const healthArgs = execForm(m[1]!).slice(1);
    try {
      await relay.waitFor("quic-relay listening on udp");
      const healthy = await cli(healthArgs, imageEnv);
      expect(healthy.code, healthy.lines.join("\n")).toBe(0);
      expect(healthy.lines).toEqual([`healthy: http://127.0.0.1:${metricsPort}/healthz answered 200 ok`]);
      expect((await relay.signal("SIGTERM")).code).toBe(0);
      const stopped = await cli(healthArgs, imageEnv);
      expect(stopped.code).toBe(1);
      expect(stopped.lines).toHaveLength(1);
      expect(stopped.lines[0]).toStartWith(`unhealthy: http://127.0.0.1:${metricsPort}/healthz cannot be reached`);
    } finally {
      relay.kill();
    }
  }

  it("its HEALTHCHECK passes against the relay the image starts, and fails once it stopped", async () => {
    await checkHealthAgainstImage({});
  });

  it("with the metrics opened for -p publishing (QUIC_RELAY_METRICS_LISTEN=0.0.0.0:…), the check still finds them", async () => {
    await checkHealthAgainstImage({ QUIC_RELAY_METRICS_LISTEN: "0.0.0.0:9464" });
  });
});
