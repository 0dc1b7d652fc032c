/** The relays under test: how to start each one (pinned to its core), know it is ready, stop it. */
import type { Subprocess } from "bun";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD_DIR, type BuiltTools } from "./build.ts";

export type RelayName = "naive" | "ideal" | "ts" | "native" | "binary";

export interface RelaySpec {
  name: RelayName;
  label: string;
  /** quic-relay itself (targets apply), as opposed to a baseline. */
  quicRelay: boolean;
  argv(port: number, logLevel: string): string[];
}

export class RelayStartError extends Error {
  override name = "RelayStartError";
}

export const REPO_ROOT = join(import.meta.dir, "..");
const LOG_DIR = join(BUILD_DIR, "logs");

export function relaySpecs(tools: BuiltTools): RelaySpec[] {
  // The GSO scenario's receiver never sends (a QUIC receiver would acknowledge), so the bound on
  // bytes to an unproven peer (docs/protocol.md, "Unanswered bytes") would cut it off after 1 MiB:
  // it is off here. Its cost on flows that do answer is within noise (bench/README.md).
  const quic = (extra: string[]) => (port: number, logLevel: string) => [
    ...extra,
    "--host", "127.0.0.1", "--port", String(port),
    "--session-timeout-secs", "600", "--log-level", logLevel,
    "--max-unanswered-bytes", "0",
  ];
  const baseline = (path: string) => (port: number) => [path, "--host", "127.0.0.1", "--port", String(port)];
  return [
    { name: "naive", label: "baseline naive (recvfrom/sendto)", quicRelay: false, argv: baseline(tools.naive) },
    { name: "ideal", label: "baseline ideal (recvmmsg/sendmmsg)", quicRelay: false, argv: baseline(tools.ideal) },
    { name: "ts", label: "quic-relay TS plane", quicRelay: true,
      argv: quic([process.execPath, join(REPO_ROOT, "src/cli/main.ts"), "--dataplane", "ts"]) },
    { name: "native", label: "quic-relay native plane", quicRelay: true,
      argv: quic([process.execPath, join(REPO_ROOT, "src/cli/main.ts"), "--dataplane", "native"]) },
    { name: "binary", label: "dist/quic-relay (auto plane)", quicRelay: true,
      argv: quic([join(REPO_ROOT, "dist/quic-relay"), "--dataplane", "auto"]) },
  ];
}

export function binaryPresent(): boolean {
  return existsSync(join(REPO_ROOT, "dist/quic-relay"));
}

export interface RunningRelay {
  spec: RelaySpec;
  pid: number;
  port: number;
  logPath: string;
  /** Undefined while running; otherwise how it ended and what it said. */
  exited(): string | undefined;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (bind 0, read, close). */
export async function freePort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

/** The relay's own explanation: its error lines if any (usage text after them is noise), else the last lines. */
function logSummary(path: string): string {
  try {
    // eslint-disable-next-line no-control-regex
    const lines = readFileSync(path, "utf8").replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) => l.trim()).filter(Boolean);
    const errors = lines.filter((l) => /error|unavailable|cannot|failed|EADDRINUSE/i.test(l));
    return (errors.length ? errors.slice(0, 1) : lines.slice(-3)).join(" | ");
  } catch {
    return "";
  }
}

/**
 * Sends `REG:` with an empty id until the relay answers (ERR, or ACK from a lenient relay): proof
 * it is serving, without leaving a session behind (the memory scenario counts against max-sessions).
 */
async function waitForAck(port: number, proc: Subprocess, timeoutMs: number, logPath: string): Promise<void> {
  let acked = false;
  const sock = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_s, data) { if (/^(ACK|ERR)/.test(data.toString())) acked = true; },
      error() {}, // ICMP port unreachable while the relay is still starting
    },
  });
  const reg = "REG:\n";
  const deadline = performance.now() + timeoutMs;
  try {
    while (!acked) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new RelayStartError(`exited (${proc.exitCode ?? proc.signalCode}) before answering REG: ${logSummary(logPath)}`);
      }
      if (performance.now() > deadline) throw new RelayStartError(`no answer to REG within ${timeoutMs} ms: ${logSummary(logPath)}`);
      sock.send(reg, port, "127.0.0.1");
      await Bun.sleep(40);
    }
  } finally {
    sock.close();
  }
}

export interface StartOptions {
  pin: string[];
  logLevel: string;
  timeoutMs?: number;
}

export async function startRelay(spec: RelaySpec, opts: StartOptions): Promise<RunningRelay> {
  mkdirSync(LOG_DIR, { recursive: true });
  const logPath = join(LOG_DIR, `${spec.name}.log`);
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    const port = await freePort();
    const logFd = openSync(logPath, "w");
    const proc = Bun.spawn([...opts.pin, ...spec.argv(port, opts.logLevel)], {
      cwd: REPO_ROOT,
      stdin: "ignore",
      stdout: logFd,
      stderr: logFd,
    });
    closeSync(logFd);
    try {
      await waitForAck(port, proc, opts.timeoutMs ?? 15000, logPath);
    } catch (e) {
      lastError = e;
      proc.kill("SIGKILL");
      await proc.exited;
      if (!/EADDRINUSE|address in use/i.test(String(e))) break;
      continue;
    }
    const stop = async (): Promise<void> => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
      if (!done) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    };
    const exited = (): string | undefined =>
      proc.exitCode === null && proc.signalCode === null ? undefined
        : `${proc.exitCode ?? proc.signalCode}: ${logSummary(logPath)}`;
    return { spec, pid: proc.pid, port, logPath, exited, stop };
  }
  throw lastError instanceof Error ? lastError : new RelayStartError(String(lastError));
}

/** Which data plane the relay's startup line names (quic-relay logs `dataplane=<kind>`). */
export function reportedPlane(logPath: string): string | undefined {
  try {
    return /dataplane=(\w+)/.exec(readFileSync(logPath, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}
