/**
 * REGs from forged sources (bench/build/regflood, bench/native/regflood.c): session k of a batch
 * registers from two loopback addresses of its own, base + 2k and base + 2k + 1.
 *
 * Address plan (every peer a distinct source address; none is 127.0.0.1 or the probe's):
 *   127.64.0.0/10 (from 127.64.0.0)   the table's sessions (2 × 1M addresses at most)
 *   127.128.0.0/11 (from 127.128.0.0) the paced REG flood
 *   127.160.0.0/11 (from 127.160.0.0) the flat-out REG rate measurement
 */
import type { Subprocess } from "bun";
import { stopChild, track } from "./children.ts";
import { LineReader } from "./line-reader.ts";

export const FILL_BASE = "127.64.0.0";
export const FLOOD_BASE = "127.128.0.0";
export const RATE_BASE = "127.160.0.0";
/** Addresses under each base before the next range begins (2 per session). */
export const RANGE_ADDRESSES = 2_097_152;

export interface FloodRequest {
  port: number;
  srcBase: string;
  first: number;
  count: number;
  /** datagrams per second, 0 = flat out */
  rate: number;
  /** seconds; 0 = until all `count` sessions were sent */
  duration?: number;
  /** 8 hex digits: the first part of every session id, distinct per batch of sessions */
  tag: string;
}

export interface FloodResult {
  sent: number;
  seconds: number;
  rate: number;
}

export class RegFloodError extends Error {
  override name = "RegFloodError";
}

/** Runs the flooder (pinned as `pin` says) to completion; killed after `timeoutMs`. */
export async function regFlood(tool: string, pin: string[], r: FloodRequest, timeoutMs = 120_000): Promise<FloodResult> {
  const proc = track(Bun.spawn([...pin, ...floodArgs(tool, r), "--rate", String(r.rate), "--duration", String(r.duration ?? 0)], {
    stdin: "ignore", stdout: "pipe", stderr: "pipe",
  }));
  const timer = setTimeout(() => void stopChild(proc, 0), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  const line = out.trim().split("\n").pop() ?? "";
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(line) as Record<string, unknown>;
  } catch {
    // reported below
  }
  if (code !== 0 || typeof json.sent !== "number") {
    throw new RegFloodError(`regflood exit ${code}: ${typeof json.error === "string" ? json.error : line} ${err.trim()}`);
  }
  return { sent: json.sent, seconds: Number(json.seconds), rate: Number(json.rate) };
}

function floodArgs(tool: string, r: Omit<FloodRequest, "rate" | "duration">): string[] {
  if (2 * (r.first + r.count) > RANGE_ADDRESSES) throw new RegFloodError(`sessions ${r.first}+${r.count} do not fit one address range`);
  return [
    tool, "--relay", `127.0.0.1:${r.port}`, "--src-base", r.srcBase, "--first", String(r.first), "--count", String(r.count),
    "--tag", r.tag,
  ];
}

/**
 * The flooder driven line by line (`--stdin`): `send(d, n, rate)` sends datagrams [d, d+n) of its
 * range (datagram d: peer d % 2 of session first + d / 2) and resolves once they are out, so the
 * caller decides how many are in flight.
 */
export class FloodStream {
  private readonly out: LineReader;

  private constructor(private readonly proc: Subprocess<"pipe", "pipe", "pipe">) {
    this.out = new LineReader(proc.stdout);
  }

  static open(tool: string, pin: string[], r: Omit<FloodRequest, "rate" | "duration">): FloodStream {
    const proc = Bun.spawn([...pin, ...floodArgs(tool, r), "--stdin"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    return new FloodStream(track(proc));
  }

  async send(d: number, n: number, rate = 0): Promise<number> {
    this.proc.stdin.write(`${d} ${n} ${rate}\n`);
    this.proc.stdin.flush();
    const line = await this.out.next(Math.max(10_000, rate > 0 ? (n / rate) * 2000 : 0));
    const m = /^ok (\d+)$/.exec(line ?? "");
    if (!m) throw new RegFloodError(`regflood: ${line ?? "no answer"} ${this.proc.exitCode !== null ? await new Response(this.proc.stderr).text() : ""}`);
    return Number(m[1]);
  }

  async close(): Promise<void> {
    try {
      this.proc.stdin.end();
    } catch {
      // already closed
    }
    await Promise.race([this.proc.exited, Bun.sleep(2000)]);
    await stopChild(this.proc, 0);
  }
}

/** A fresh 8-hex-digit tag, so no two batches share a session id. */
export function newTag(): string {
  return crypto.getRandomValues(new Uint32Array(1))[0]!.toString(16).padStart(8, "0");
}
