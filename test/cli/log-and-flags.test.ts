/**
 * What the relay process prints about itself: `--version`, usage errors (one line and a hint,
 * plain text when piped, a JSON line in the json log format), RUST_LOG as env_logger reads it,
 * warnings for misspelt QUIC_RELAY_* variables, and why the native plane was not used.
 */
import { afterEach, describe, expect, it } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { loadFailureReason } from "../../src/dataplane/native-addon.ts";
import { createDataPlane } from "../../src/dataplane/select.ts";
import { colorEnabled, formatFatal } from "../../src/log.ts";
import { VERSION, versionText } from "../../src/version.ts";
import { eventually, register, TestPeer } from "../utils.ts";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");
const ESC = "\x1b";

/** The test's environment without anything that would change what the relay logs or how. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^(QUIC_RELAY_|RUST_LOG$|LOG_LEVEL$|NO_COLOR$|FORCE_COLOR$)/.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs the CLI to its exit: `bun src/cli/main.ts ...args`, stdout and stderr piped. */
async function runCli(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(["bun", MAIN, ...args], { env: cleanEnv(env), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code, lines: stderr.split("\n").filter((l) => l !== "") };
}

const running: Subprocess[] = [];
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.kill("SIGKILL");
  for (const f of cleanup.splice(0)) f();
});

function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-flags-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** A relay left running on 127.0.0.1, port chosen by the kernel, with its stderr collected. */
async function startRelay(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(["bun", MAIN, "--host", "127.0.0.1", "--port", "0", ...args], {
    env: cleanEnv(env),
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  running.push(proc);
  let stderr = "";
  void (async () => {
    for await (const chunk of proc.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const output = () => stderr;
  const waitFor = async (text: string) => {
    await eventually(() => stderr.includes(text) || proc.exitCode !== null, 15_000).catch(() => {});
    if (!stderr.includes(text)) throw new Error(`relay output never contained '${text}' (exit ${proc.exitCode}):\n${stderr}`);
  };
  await waitFor("listening on udp");
  const port = Number(/listening on udp 127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
  return { proc, port, output, waitFor, lines: () => stderr.split("\n").filter((l) => l !== "") };
}

describe("--version", () => {
  it.each([[["--version"]], [["--port", "5", "--version"]], [["relay", "--version"]], [["token", "--version"]]])(
    "%j prints quic-relay, its package version and Bun's on stdout, exit 0",
    async (args) => {
      const { stdout, stderr, code } = await runCli(args);
      expect(code).toBe(0);
      expect(stdout).toBe(`quic-relay ${pkg.version} (bun ${Bun.version})\n`);
      expect(stderr).toBe("");
    },
  );

  it("takes the version from package.json", () => {
    expect(VERSION).toBe(pkg.version);
    expect(versionText()).toBe(`quic-relay ${pkg.version} (bun ${Bun.version})`);
  });

  it("is listed in --help, which has no colour codes when piped", async () => {
    const { stdout, code } = await runCli(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("--version");
    expect(stdout).toContain("--session-timeout-secs");
    expect(stdout).not.toContain(ESC);
  });

  it("is in the startup line", async () => {
    const relay = await startRelay([]);
    const line = relay.lines().find((l) => l.includes("listening on udp"))!;
    expect(line).toContain(`version=${pkg.version}`);
  });
});

describe("usage errors: one line, one hint, exit 2", () => {
  const hint = "run 'quic-relay --help' for usage";
  it.each([
    [["--port", "x"], {}, "--port must be an integer from 0 to 65535, got 'x'", hint],
    [["--prot", "5"], {}, "unknown flag '--prot' (did you mean '--port'?)", hint],
    [["--bogus"], {}, "unknown flag '--bogus'", hint],
    [["relya"], {}, "unknown command 'relya' (commands: relay, connect, probe, token, health)", hint],
    [["relay", "--dataplane", "gpu"], {}, "--dataplane must be one of auto, ts, native, got 'gpu'", "run 'quic-relay relay --help' for usage"],
    [["token", "--bogus"], {}, "unknown flag '--bogus'", "run 'quic-relay token --help' for usage"],
    [[], { QUIC_RELAY_PORT: "many" }, "QUIC_RELAY_PORT must be an integer", hint],
    [[], { RUST_LOG: "bogus" }, "RUST_LOG must be a level (off, error, warn, info, debug, trace)", hint],
    [[], { RUST_LOG: "quic_relay=loud" }, "RUST_LOG must be a level", hint],
    [["--log-format", "yaml"], {}, "--log-format must be one of pretty, json, got 'yaml'", hint],
    [["--dataplane", "native"], { QUIC_RELAY_NO_NATIVE: "1" }, "data plane 'native' is unavailable: disabled by QUIC_RELAY_NO_NATIVE", hint],
  ] as [string[], Record<string, string>, string, string][])("%j %j", async (args, env, message, expectedHint) => {
    // All refused before anything binds.
    const { stdout, stderr, code, lines } = await runCli(args, env);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toStartWith("quic-relay: ");
    expect(lines[0]).toContain(message);
    expect(lines[1]).toBe(expectedHint);
    expect(stderr).not.toContain(ESC);
    expect(stderr).not.toContain("USAGE");
  });

  it("names the config file and key, with a suggestion, in one line", async () => {
    const path = tempFile("relay.toml", "sesion-timeout-secs = 5\n");
    const { code, lines } = await runCli(["--config", path]);
    expect(code).toBe(2);
    expect(lines).toEqual([`quic-relay: unknown key 'sesion-timeout-secs' in ${path} (did you mean 'session-timeout-secs'?)`, "run 'quic-relay --help' for usage"]);
  });
});

describe("fatal errors in the json log format: one JSON line, as the logger writes", () => {
  function only(stderr: string): Record<string, unknown> {
    const lines = stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    return JSON.parse(lines[0]!) as Record<string, unknown>;
  }

  it.each([
    ["--log-format json", ["--log-format", "json", "--port", "x"], {}, "--port must be an integer from 0 to 65535, got 'x'"],
    ["--log-format=json", ["--bogus", "--log-format=json"], {}, "unknown flag '--bogus'"],
    ["QUIC_RELAY_LOG_FORMAT=json", [], { QUIC_RELAY_LOG_FORMAT: "json", RUST_LOG: "bogus" }, "RUST_LOG must be a level"],
  ] as [string, string[], Record<string, string>, string][])("with %s", async (_name, args, env, message) => {
    const { stdout, stderr, code } = await runCli(["--host", "127.0.0.1", ...args], env);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    const line = only(stderr);
    expect(Object.keys(line)).toEqual(["time", "level", "msg", "exit_code", "hint"]);
    expect(new Date(String(line.time)).toISOString()).toBe(String(line.time));
    expect(line.level).toBe("error");
    expect(String(line.msg)).toStartWith(message);
    expect(line.exit_code).toBe(2);
    expect(line.hint).toBe("run 'quic-relay --help' for usage");
  });

  it("with log-format = \"json\" in the config file, even when another key is wrong", async () => {
    const path = tempFile("relay.toml", `log-format = "json"\nport = "many"\n`);
    const { code, stderr } = await runCli(["--config", path]);
    expect(code).toBe(2);
    expect(only(stderr)).toMatchObject({ level: "error", msg: `'port' in ${path} must be an integer from 0 to 65535, got 'many'`, exit_code: 2 });
  });

  it("a flag saying pretty wins over QUIC_RELAY_LOG_FORMAT=json, as for every setting", async () => {
    const { code, lines } = await runCli(["--log-format", "pretty", "--port", "x"], { QUIC_RELAY_LOG_FORMAT: "json" });
    expect(code).toBe(2);
    expect(lines).toEqual(["quic-relay: --port must be an integer from 0 to 65535, got 'x'", "run 'quic-relay --help' for usage"]);
  });

  it("a startup failure (exit 1) too: every line JSON, the last the error, no hint", async () => {
    const holder = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    cleanup.push(() => holder.close());
    const { code, stderr } = await runCli(["--host", "127.0.0.1", "--port", String(holder.port), "--dataplane", "ts", "--log-format", "json"]);
    expect(code).toBe(1);
    const lines = stderr.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toMatchObject({ level: "error", exit_code: 1 });
    expect(String(lines.at(-1)!.msg)).toStartWith(`cannot listen on udp 127.0.0.1 port ${holder.port}`);
    expect(lines.at(-1)!.hint).toBeUndefined();
  });

  it("pretty startup failures stay one line without a hint", async () => {
    const holder = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    cleanup.push(() => holder.close());
    const { code, lines } = await runCli(["--host", "127.0.0.1", "--port", String(holder.port), "--dataplane", "ts"]);
    expect(code).toBe(1);
    expect(lines.at(-1)).toStartWith(`quic-relay: cannot listen on udp 127.0.0.1 port ${holder.port}`);
    expect(lines.filter((l) => l.startsWith("run '"))).toEqual([]);
  });
});

describe("formatFatal and colour", () => {
  const error = { message: "--port must be an integer", exitCode: 2, hint: "run 'quic-relay --help' for usage" };
  it("colours the pretty lines only when asked", () => {
    expect(formatFatal(error, "pretty", false)).toBe("quic-relay: --port must be an integer\nrun 'quic-relay --help' for usage\n");
    const coloured = formatFatal(error, "pretty", true);
    expect(coloured).toContain(ESC);
    expect(Bun.stripANSI(coloured)).toBe(formatFatal(error, "pretty", false));
  });

  it("never colours json", () => {
    expect(formatFatal(error, "json", true)).not.toContain(ESC);
  });

  it.each([
    [true, {}, true],
    [false, {}, false],
    [undefined, {}, false],
    [true, { NO_COLOR: "1" }, false],
    [true, { NO_COLOR: "yes" }, false],
    [true, { NO_COLOR: "" }, true],
    [true, { TERM: "dumb" }, false],
  ] as [boolean | undefined, Record<string, string>, boolean][])("a stream with isTTY %p and %j: colour %p", (isTTY, env, expected) => {
    expect(colorEnabled({ isTTY }, env)).toBe(expected);
  });
});

describe("RUST_LOG read as env_logger's module filter", () => {
  /** Registers once, waits for the info line it causes, and returns the output up to then. */
  async function outputAfterRegister(env: Record<string, string>): Promise<string> {
    const relay = await startRelay([], env);
    const peer = await TestPeer.open("127.0.0.2");
    cleanup.push(() => peer.close());
    expect(await register(peer, relay.port, "rust-log-session")).toBe("ACK\n");
    // The relay logs the datagram (debug) before it handles the REG (info): when this line is out,
    // a debug line would be out already.
    await relay.waitFor("session created");
    return relay.output();
  }

  it("other_crate=debug does not turn on the relay's debug lines", async () => {
    const output = await outputAfterRegister({ RUST_LOG: "other_crate=debug" });
    expect(output).toContain("INFO  session created");
    expect(output).not.toContain("DEBUG");
  });

  it.each(["quic_relay=debug", "quic-relay=debug", "warn,quic_relay=debug"])("%s does", async (value) => {
    const output = await outputAfterRegister({ RUST_LOG: value });
    expect(output).toContain("DEBUG");
  });
});

describe("QUIC_RELAY_* variables that are not settings", () => {
  it("draw one WARN line each, with the nearest name; client and switch variables draw none", async () => {
    const relay = await startRelay([], {
      QUIC_RELAY_SESION_TIMEOUT_SECS: "5",
      QUIC_RELAY_IP: "203.0.113.9",
      QUIC_RELAY_ONLY: "true",
      QUIC_RELAY_NO_NATIVE: "0",
      QUIC_RELAY_MAX_SESSIONS: "10",
    });
    // (Where the addon is not built, a fallback warning comes too: not counted here.)
    const warnings = relay.lines().filter((l) => l.includes("is not a setting"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toEndWith("WARN  QUIC_RELAY_SESION_TIMEOUT_SECS is not a setting (did you mean QUIC_RELAY_SESSION_TIMEOUT_SECS?)");
    for (const name of ["QUIC_RELAY_IP", "QUIC_RELAY_ONLY", "QUIC_RELAY_NO_NATIVE", "QUIC_RELAY_MAX_SESSIONS"]) {
      expect(relay.output()).not.toContain(name);
    }
    // A warning, not an error: the relay runs with the default.
    expect(relay.output()).toContain("session-timeout=300s");
  });

  it("are JSON lines at level warn in the json format", async () => {
    const relay = await startRelay(["--log-format", "json"], { QUIC_RELAY_PROT: "4433" });
    const lines = relay.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => String(l.msg).includes("is not a setting"))).toEqual([
      expect.objectContaining({ level: "warn", msg: "QUIC_RELAY_PROT is not a setting (did you mean QUIC_RELAY_PORT?)" }),
    ]);
  });
});

describe("why the native plane is not used", () => {
  it("from a checkout, the addon is built with bun run build:native", () => {
    const reason = loadFailureReason("Cannot find module '../../build/Release/quic_relay_native.node'", { compiled: false, tmpdir: "/tmp" });
    expect(reason).toContain("run `bun run build:native`");
  });

  it("in a compiled binary, a TMPDIR that cannot hold or run the addon is named, not build:native", () => {
    const reason = loadFailureReason("/mnt/noexec/.bun-0-1.node: failed to map segment from shared object", { compiled: true, tmpdir: "/mnt/noexec" });
    expect(reason).toContain("TMPDIR (/mnt/noexec)");
    expect(reason).toContain("set TMPDIR to a writable directory that allows executables (not mounted noexec)");
    expect(reason).not.toContain("build:native");
  });

  it("in a compiled binary built without the addon, says so", () => {
    const reason = loadFailureReason("Cannot require module ../../build/Release/quic_relay_native.node", { compiled: true, tmpdir: "/tmp" });
    expect(reason).toStartWith("this binary was built without the native addon");
    expect(reason).not.toContain("TMPDIR");
  });

  it("QUIC_RELAY_NO_NATIVE=1 is a choice, not a fault: the fallback is expected", async () => {
    const saved = process.env.QUIC_RELAY_NO_NATIVE;
    process.env.QUIC_RELAY_NO_NATIVE = "1";
    try {
      const { plane, fallbackReason, fallbackExpected } = createDataPlane("auto", { host: "127.0.0.1", port: 0, maxDatagramSize: 1500, socketBufferBytes: 0, gro: false });
      expect(plane.kind).toBe("ts");
      expect(fallbackReason).toBe("disabled by QUIC_RELAY_NO_NATIVE");
      expect(fallbackExpected).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.QUIC_RELAY_NO_NATIVE;
      else process.env.QUIC_RELAY_NO_NATIVE = saved;
    }
  });

  it("QUIC_RELAY_NO_NATIVE=1 says so at INFO, without a warning", async () => {
    const relay = await startRelay([], { QUIC_RELAY_NO_NATIVE: "1" });
    expect(relay.output()).toContain("INFO  native data plane not used: disabled by QUIC_RELAY_NO_NATIVE");
    expect(relay.output()).not.toContain(" WARN ");
  });
});
