/**
 * The compiled executable (`bun run build`): it carries the addon and runs the native plane,
 * and falls back to the TS plane, still answering REG, when the embedded addon cannot be
 * written or loaded. Built into a temporary directory so parallel runs never share a binary.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { loadNativeAddon } from "../../src/dataplane/native-addon.ts";
import { udpPeer, until } from "../dataplane/native-helpers.ts";

const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/cli/main.ts");
const work = mkdtempSync(join(tmpdir(), "quic-relay-compiled-"));
const binary = join(work, "quic-relay");
let buildError: string | undefined;

async function waitForMain(): Promise<boolean> {
  return until(() => existsSync(MAIN), 60_000, "src/cli/main.ts").then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  if (!(await waitForMain())) {
    buildError = "src/cli/main.ts does not exist";
    return;
  }
  // The package's own build command, pointed at a private output path.
  const pkg = (await Bun.file(join(ROOT, "package.json")).json()) as { scripts: Record<string, string> };
  const command = pkg.scripts.build!.replace(/--outfile\s+\S+/, `--outfile ${binary}`).split(/\s+/);
  const proc = Bun.spawn(command, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0 || !existsSync(binary)) buildError = `build failed (${code}): ${err || out}`;
}, 180_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Running {
  port: number;
  plane: string;
  log: () => string;
  stop(): Promise<number>;
}

/** Starts the binary on port 0 and waits for its startup line. */
async function launch(env: Record<string, string>, ...args: string[]): Promise<Running> {
  const proc = Bun.spawn([binary, "--host", "127.0.0.1", "--port", "0", "--log-level", "info", ...args], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += new TextDecoder().decode(chunk);
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  const startup = /listening on udp \S+:(\d+) dataplane=(\w+)/;
  try {
    await until(() => startup.test(text) || proc.exitCode !== null, 15_000, "startup line");
  } catch (error) {
    proc.kill("SIGKILL");
    throw error;
  }
  const match = startup.exec(text);
  if (!match) throw new Error(`relay exited with ${proc.exitCode}: ${text}`);
  return {
    port: Number(match[1]),
    plane: match[2]!,
    log: () => text,
    async stop() {
      proc.kill("SIGTERM");
      return await proc.exited;
    },
  };
}

/** Registers two peers in one session and sends a datagram through. */
async function pairAndForward(port: number): Promise<void> {
  const a = await udpPeer("127.0.0.2");
  const b = await udpPeer("127.0.0.3");
  try {
    a.send("REG:compiled-check\n", port, "127.0.0.1");
    await a.waitFor(1);
    expect(new TextDecoder().decode(a.received[0]!.data)).toBe("ACK\n");
    b.send("REG:compiled-check\n", port, "127.0.0.1");
    await b.waitFor(1);
    a.send("through the relay", port, "127.0.0.1");
    await b.waitFor(2);
    expect(new TextDecoder().decode(b.received[1]!.data)).toBe("through the relay");
  } finally {
    a.close();
    b.close();
  }
}

describe("compiled binary", () => {
  const ready = () => {
    if (buildError) console.warn(`compiled-binary tests skipped: ${buildError}`);
    return buildError === undefined;
  };

  it("runs the embedded native plane with --dataplane auto and relays", async () => {
    if (!ready()) return;
    if (!loadNativeAddon().ok) {
      console.warn("native addon not built: the binary cannot carry it; checking the fallback only");
    }
    const relay = await launch({}, "--dataplane", "auto");
    try {
      expect(relay.plane).toBe(loadNativeAddon().ok ? "native" : "ts");
      await pairAndForward(relay.port);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  const unwritable = join(work, "not-a-directory");
  writeFileSync(unwritable, "TMPDIR points at a file: nothing can be written below it\n");
  it.each([
    ["an unwritable TMPDIR", { TMPDIR: unwritable }],
    ["QUIC_RELAY_NO_NATIVE=1", { QUIC_RELAY_NO_NATIVE: "1" }],
    ["both", { TMPDIR: unwritable, QUIC_RELAY_NO_NATIVE: "1" }],
  ])("falls back to the TS plane with %s, says why, and relays", async (_name, env) => {
    if (!ready()) return;
    const relay = await launch(env, "--dataplane", "auto");
    try {
      expect(relay.plane).toBe("ts");
      expect(relay.log()).toMatch(/native data plane not used: .+/);
      await pairAndForward(relay.port);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  it("refuses --dataplane native when the embedded addon cannot be loaded", async () => {
    if (!ready()) return;
    const proc = Bun.spawn([binary, "--host", "127.0.0.1", "--port", "0", "--dataplane", "native"], {
      env: { ...process.env, TMPDIR: unwritable },
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    expect(code).not.toBe(0);
    expect(out + err).toMatch(/native/);
  });
});
