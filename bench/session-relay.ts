/**
 * The relay under test for bench/sessions.ts: the real CLI (`bun src/cli/main.ts`) pinned to one
 * core, with the limits that would refuse a bench's sessions turned off, its metrics on, ready
 * once /readyz answers and /metrics names the requested data plane.
 */
import type { Subprocess } from "bun";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { stopChild, track } from "./children.ts";
import { metric, scrape } from "./metrics-scrape.ts";
import { freePort, REPO_ROOT } from "./relays.ts";

export type Plane = "native" | "ts";

export interface SessionRelayOptions {
  plane: Plane;
  /** `taskset -c 0` or nothing */
  pin: string[];
  maxSessions: number;
  sessionTimeoutSecs: number;
  stateFile?: string;
  stateSaveIntervalSecs?: number;
  logPath: string;
}

export interface SessionRelay {
  pid: number;
  port: number;
  metricsUrl: string;
  logPath: string;
  /** undefined while running; else how it ended and its last words */
  exited(): string | undefined;
  stop(): Promise<void>;
}

export class SessionRelayError extends Error {
  override name = "SessionRelayError";
}

/** A TCP port that was free a moment ago. */
function freeTcpPort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

function lastWords(path: string): string {
  try {
    // eslint-disable-next-line no-control-regex
    const lines = readFileSync(path, "utf8").replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) => l.trim()).filter(Boolean);
    return lines.slice(-3).join(" | ");
  } catch {
    return "";
  }
}

export function relayArgs(o: SessionRelayOptions, port: number, metricsPort: number): string[] {
  return [
    process.execPath, join(REPO_ROOT, "src/cli/main.ts"),
    "--dataplane", o.plane, "--host", "127.0.0.1", "--port", String(port),
    "--metrics-listen", `127.0.0.1:${metricsPort}`,
    "--max-sessions", String(o.maxSessions), "--max-sessions-per-host", "0", "--reg-rate", "0",
    "--session-timeout-secs", String(o.sessionTimeoutSecs), "--stun", "off", "--log-level", "warn",
    ...(o.stateFile ? ["--state-file", o.stateFile, "--state-save-interval-secs", String(o.stateSaveIntervalSecs ?? 2)] : []),
  ];
}

async function waitReady(proc: Subprocess, url: string, plane: Plane, logPath: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new SessionRelayError(`relay exited (${proc.exitCode ?? proc.signalCode}) while starting: ${lastWords(logPath)}`);
    }
    try {
      const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (ready.ok) {
        const s = await scrape(`${url}/metrics`, 5000);
        const kinds = [...s.series.keys()].filter((k) => k.startsWith("quic_relay_dataplane_info{"));
        if (!kinds.some((k) => k.includes(`kind="${plane}"`))) {
          throw new SessionRelayError(`relay runs another data plane than ${plane}: ${kinds.join(", ")}`);
        }
        if (metric(s, "quic_relay_peers_active") !== 0) throw new SessionRelayError("a fresh relay already has peers");
        return;
      }
    } catch (error) {
      if (error instanceof SessionRelayError) throw error;
      // not listening yet
    }
    if (performance.now() > deadline) throw new SessionRelayError(`relay not ready within ${timeoutMs} ms: ${lastWords(logPath)}`);
    await Bun.sleep(50);
  }
}

export async function startSessionRelay(o: SessionRelayOptions, timeoutMs = 20_000): Promise<SessionRelay> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const metricsPort = freeTcpPort();
    const logFd = openSync(o.logPath, "w");
    const proc = track(Bun.spawn([...o.pin, ...relayArgs(o, port, metricsPort)], {
      cwd: REPO_ROOT, stdin: "ignore", stdout: logFd, stderr: logFd,
    }));
    closeSync(logFd);
    const url = `http://127.0.0.1:${metricsPort}`;
    try {
      await waitReady(proc, url, o.plane, o.logPath, timeoutMs);
    } catch (error) {
      lastError = error;
      await stopChild(proc, 0);
      if (/EADDRINUSE|address in use/i.test(String(error))) continue;
      break;
    }
    return {
      pid: proc.pid, port, metricsUrl: `${url}/metrics`, logPath: o.logPath,
      exited: () => (proc.exitCode === null && proc.signalCode === null ? undefined
        : `${proc.exitCode ?? proc.signalCode}: ${lastWords(o.logPath)}`),
      // A graceful stop would save a million sessions first; nothing of it is measured.
      stop: () => stopChild(proc, 2000),
    };
  }
  throw lastError instanceof Error ? lastError : new SessionRelayError(String(lastError));
}
