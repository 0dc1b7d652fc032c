/**
 * The two QUIC stacks bench/quic-bulk.ts moves a bulk download with: quinn (the e2e suite's Rust
 * peer, test/e2e/peers/quinn) and ngtcp2 (Debian's gtlsserver/gtlsclient examples). Each runs a
 * server and one client download, either straight to each other ("direct") or through a relay
 * both registered with first. Peers are pinned with the `pin` prefix (taskset) they are given.
 */
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildQuinnPeer, quinnSkipReason } from "../test/e2e/quinn-peers.ts";
import { BUILD_DIR } from "./build.ts";
import { freePort } from "./relays.ts";

export type StackName = "quinn" | "ngtcp2";
export const STACK_NAMES: StackName[] = ["quinn", "ngtcp2"];

/** Where the peers meet: a relay (both REG with `session` first) or, without one, each other. */
export interface Path {
  relayPort?: number;
  session: string;
}

export interface Files {
  dir: string;
  key: string;
  cert: string;
}

export interface BulkServer {
  pid: number;
  /** The server's own UDP port (what a direct client connects to). */
  port: number;
  /** sha256 of what it serves, when it says (quinn). */
  sha256?: string;
  stop(): Promise<void>;
}

export interface Download {
  bytes: number;
  /** Seconds the download took, as the client measured it (quinn) or its process lived (ngtcp2). */
  seconds: number;
  /** utime + stime of the client process, all of it (start-up and handshake included). */
  clientCpu: number;
  clientSwitches: number;
}

export interface BulkStack {
  name: StackName;
  /** Why it cannot run on this machine, or undefined. */
  unavailable(): string | undefined;
  /** Builds what it needs; returns a note for the report. */
  prepare(): Promise<string>;
  startServer(files: Files, path: Path, bytes: number, pin: string[]): Promise<BulkServer>;
  download(files: Files, path: Path, server: BulkServer, bytes: number, pin: string[], timeoutMs: number): Promise<Download>;
}

export class BulkRunError extends Error {
  override name = "BulkRunError";
}

const tail = (path: string, lines = 8): string => {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
};

async function waitUntil(check: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new BulkRunError(`timed out after ${ms} ms: ${what()}`);
    await Bun.sleep(20);
  }
}

function events(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l.startsWith("{")).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

async function stopProcess(proc: Subprocess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  if (!(await Promise.race([proc.exited.then(() => true), Bun.sleep(2000).then(() => false)]))) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/** A fresh log file per process (Bun does not truncate a file it redirects output to). */
function logFile(files: Files, name: string): string {
  const path = join(files.dir, `${name}.log`);
  rmSync(path, { force: true });
  return path;
}

/** Runs the client to its end (killed after timeoutMs); output goes to a file, not through us. */
async function runClient(argv: string[], log: string, timeoutMs: number, env?: Record<string, string>) {
  const started = performance.now();
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: Bun.file(log), stderr: "pipe", env: { ...process.env, ...env } });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  const usage = proc.resourceUsage();
  const clientCpu = usage ? Number(usage.cpuTime.total) / 1e6 : Number.NaN;
  const clientSwitches = usage ? usage.contextSwitches.voluntary + usage.contextSwitches.involuntary : Number.NaN;
  return { code, stderr, seconds, clientCpu, clientSwitches, killed: proc.signalCode === "SIGKILL" };
}

// ---- quinn -------------------------------------------------------------------------------------

let quinnBin = "";

export const quinn: BulkStack = {
  name: "quinn",
  unavailable: quinnSkipReason,
  async prepare() {
    const built = await buildQuinnPeer();
    quinnBin = built.bin;
    return `quinn peer ${built.bin}${built.builtMs === undefined ? " (cached)" : ` (built in ${(built.builtMs / 1000).toFixed(0)} s)`}`;
  },
  async startServer(files, path, bytes, pin) {
    const log = logFile(files, "quinn-server");
    const port = await freePort();
    const where = path.relayPort === undefined
      ? ["--direct", `127.0.0.1:${port}`]
      : ["--relay-host", "127.0.0.1", "--relay-port", String(path.relayPort), "--session", path.session, "--keepalive-ms", "0"];
    const proc = Bun.spawn([...pin, quinnBin, "server", ...where, "--key", files.key, "--cert", files.cert,
      "--bytes", String(bytes), "--idle-ms", "30000"], { stdin: "ignore", stdout: Bun.file(log), stderr: "ignore" });
    const ready = path.relayPort === undefined ? "listening" : "registered";
    // Building the payload and its sha256 takes a few seconds per GiB.
    await waitUntil(() => events(log).some((e) => e.event === ready) || proc.exitCode !== null, 60_000, () => `quinn server: ${tail(log)}`);
    if (proc.exitCode !== null) throw new BulkRunError(`quinn server exited (${proc.exitCode}): ${tail(log)}`);
    const listening = events(log).find((e) => e.event === "listening")!;
    return { pid: proc.pid, port: Number(listening.port), sha256: String(listening.sha256), stop: () => stopProcess(proc) };
  },
  async download(files, path, server, bytes, pin, timeoutMs) {
    const log = logFile(files, "quinn-client");
    const where = path.relayPort === undefined
      ? ["--direct", `127.0.0.1:${server.port}`]
      : ["--relay-host", "127.0.0.1", "--relay-port", String(path.relayPort), "--session", path.session, "--keepalive-ms", "0"];
    const r = await runClient([...pin, quinnBin, "client", ...where, "--cert", files.cert, "--idle-ms", "30000",
      "--timeout-ms", String(timeoutMs)], log, timeoutMs + 5000);
    const done = events(log).find((e) => e.event === "done");
    if (!done || r.code !== 0) throw new BulkRunError(`quinn client ended (${r.code}) without done: ${tail(log)} ${r.stderr.trim()}`);
    if (Number(done.bytes) !== bytes || done.sha256 !== server.sha256) {
      throw new BulkRunError(`quinn client got ${done.bytes} B (sha256 ${String(done.sha256).slice(0, 12)}), expected ${bytes} B`);
    }
    return { bytes, seconds: Number(done.ms) / 1000, clientCpu: r.clientCpu, clientSwitches: r.clientSwitches };
  },
};

// ---- ngtcp2 ------------------------------------------------------------------------------------

const GTLS_SERVER = "gtlsserver";
const GTLS_CLIENT = "gtlsclient";
const BIND_SHIM = join(BUILD_DIR, "bind-port.so");
/** Downloads go to tmpfs (the client writes the body to a file; its size is the check). */
const DOWNLOAD_ROOT = existsSync("/dev/shm") ? "/dev/shm" : "/tmp";

/** Registers 127.0.0.1:port with the relay from a helper socket, then frees the port for the peer. */
async function registerPort(port: number, relayPort: number, session: string): Promise<void> {
  let acked = false;
  const sock = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, data) {
        if (data.toString().startsWith("ACK")) acked = true;
      },
      error() {},
    },
  });
  try {
    const deadline = performance.now() + 5000;
    while (!acked) {
      if (performance.now() > deadline) throw new BulkRunError(`relay did not ACK the REG from port ${port}`);
      sock.send(`REG:${session}\n`, relayPort, "127.0.0.1");
      await Bun.sleep(50);
    }
  } finally {
    sock.close();
  }
}

/** Whether something is bound to UDP 127.0.0.1:port (the gtlsserver is up). */
function udpBound(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/udp", "utf8").split("\n").some((l) => l.trim().split(/\s+/)[1] === local);
}

export const ngtcp2: BulkStack = {
  name: "ngtcp2",
  unavailable() {
    const missing = [GTLS_SERVER, GTLS_CLIENT].filter((b) => !Bun.which(b));
    if (missing.length) return `needs ${missing.join(", ")} (apt-get install ngtcp2-server ngtcp2-client)`;
    return undefined;
  },
  async prepare() {
    // bench/native builds the LD_PRELOAD shim that pins gtlsclient's local port (it binds port 0).
    const cmake = (args: string[]) => Bun.spawnSync(["cmake", ...args], { stdout: "pipe", stderr: "pipe" });
    const configured = cmake(["-S", join(import.meta.dir, "native"), "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release"]);
    const built = configured.exitCode === 0 ? cmake(["--build", BUILD_DIR, "--target", "bind-port"]) : configured;
    if (built.exitCode !== 0 || !existsSync(BIND_SHIM)) {
      throw new BulkRunError(`building ${BIND_SHIM} failed: ${built.stderr.toString().slice(-400)}`);
    }
    const version = Bun.spawnSync(["dpkg-query", "-W", "-f", "${Version}", "ngtcp2-client"]).stdout.toString().trim();
    return `ngtcp2 ${version || "?"} (gtlsserver/gtlsclient), client port pinned with ${BIND_SHIM}`;
  },
  async startServer(files, path, bytes, pin) {
    const port = await freePort();
    if (path.relayPort !== undefined) await registerPort(port, path.relayPort, path.session);
    const log = logFile(files, "ngtcp2-server");
    // The server answers GET /<N> with N generated bytes (up to --max-dyn-length).
    const proc = Bun.spawn([...pin, GTLS_SERVER, "-q", "-d", files.dir, `--max-dyn-length=${bytes}`, "--timeout=30s",
      "127.0.0.1", String(port), files.key, files.cert], { stdin: "ignore", stdout: Bun.file(log), stderr: "ignore" });
    await waitUntil(() => udpBound(port) || proc.exitCode !== null, 10_000, () => `gtlsserver not listening: ${tail(log)}`);
    if (proc.exitCode !== null) throw new BulkRunError(`gtlsserver exited (${proc.exitCode}): ${tail(log)}`);
    return { pid: proc.pid, port, stop: () => stopProcess(proc) };
  },
  async download(files, path, server, bytes, pin, timeoutMs) {
    const log = logFile(files, "ngtcp2-client");
    const target = path.relayPort ?? server.port;
    const env: Record<string, string> = {};
    if (path.relayPort !== undefined) {
      const port = await freePort();
      await registerPort(port, path.relayPort, path.session);
      Object.assign(env, { LD_PRELOAD: BIND_SHIM, QB_BIND_PORT: String(port) });
    }
    const out = join(DOWNLOAD_ROOT, `quic-relay-bulk-${process.pid}`);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
    try {
      const r = await runClient([...pin, GTLS_CLIENT, "-q", "--exit-on-all-streams-close", "--timeout=30s", `--download=${out}`,
        "127.0.0.1", String(target), `https://127.0.0.1:${target}/${bytes}`], log, timeoutMs, env);
      // gtlsclient exits 0 even when the transfer failed: the file's size is the check.
      const file = join(out, String(bytes));
      const got = existsSync(file) ? statSync(file).size : 0;
      if (got !== bytes) {
        throw new BulkRunError(`gtlsclient (${r.killed ? "killed at the timeout" : `exit ${r.code}`}) wrote ${got} of ${bytes} B: ${tail(log)} ${r.stderr.trim().slice(-300)}`);
      }
      return { bytes, seconds: r.seconds, clientCpu: r.clientCpu, clientSwitches: r.clientSwitches };
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
};

export const STACKS: Record<StackName, BulkStack> = { quinn, ngtcp2 };
