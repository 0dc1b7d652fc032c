/**
 * A real client next to the bench's forged ones: one UDP socket on its own loopback address sends
 * `REG:<its session id>\n` keepalives, one at a time (the next goes 1/rate after the previous one,
 * or once its ACK came back, whichever is later), and times each `ACK\n`. A REG unanswered for
 * 2 s counts as lost. Runs as its own process so the bench's own work does not delay it:
 *
 *   bun bench/reg-probe.ts --port P [--address 127.0.0.50] [--rate 200]
 *
 * prints `ready` once its session is registered; each `mark` line on stdin answers one JSON line
 * with the round trips since the previous mark, once the REG in flight was answered or lost (the
 * controller below does this).
 */
import type { Subprocess } from "bun";
import { stopChild, track } from "./children.ts";
import { LineReader } from "./line-reader.ts";

export const PROBE_ADDRESS = "127.0.0.50";
const LOST_AFTER_MS = 2000;

export interface ProbeWindow {
  /** round trips answered in the window */
  n: number;
  lost: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** refusals (ERR) received: the probe's own session was not kept */
  errors: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function runProbe(args: string[]): Promise<void> {
  const flag = (name: string, fallback: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
  };
  const port = Number(flag("port", "0"));
  const address = flag("address", PROBE_ADDRESS);
  const intervalMs = 1000 / Number(flag("rate", "200"));
  const reg = `REG:${crypto.randomUUID()}\n`;
  let rtts: number[] = [];
  let lost = 0, errors = 0, registered = false;
  let sentAt = 0, outstanding = false, markPending = false;
  let lostTimer: ReturnType<typeof setTimeout> | undefined;
  let nextTimer: ReturnType<typeof setTimeout> | undefined;

  const sendNext = (): void => {
    nextTimer = undefined;
    sentAt = performance.now();
    outstanding = true;
    socket.send(reg, port, "127.0.0.1");
    lostTimer = setTimeout(() => {
      lost++;
      outstanding = false;
      settleMark();
      sendNext();
    }, LOST_AFTER_MS);
  };
  const scheduleAfter = (answeredAt: number): void => {
    const wait = Math.max(0, sentAt + intervalMs - answeredAt);
    nextTimer = setTimeout(sendNext, wait);
  };
  const socket = await Bun.udpSocket({
    hostname: address,
    port: 0,
    socket: {
      data(_s, data) {
        const now = performance.now();
        if (!outstanding) return; // an answer after its REG was counted lost
        outstanding = false;
        clearTimeout(lostTimer);
        const text = data.toString();
        if (text.startsWith("ACK")) {
          if (registered) rtts.push(now - sentAt);
          else {
            registered = true;
            process.stdout.write("ready\n");
          }
        } else errors++;
        settleMark();
        scheduleAfter(now);
      },
      error() {},
    },
  });
  /** A mark waits for the REG in flight (answer or loss), so each REG counts in the window it was sent in. */
  const settleMark = (): void => {
    if (!markPending) return;
    markPending = false;
    report();
  };
  const report = (): void => {
    const sorted = rtts.sort((a, b) => a - b);
    const w: ProbeWindow = {
      n: sorted.length, lost, errors,
      p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), maxMs: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    };
    process.stdout.write(`${JSON.stringify(w)}\n`);
    rtts = [];
    lost = 0;
    errors = 0;
  };
  let pending = "";
  process.stdin.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line === "mark") {
        if (outstanding) markPending = true;
        else report();
      }
    }
  });
  process.stdin.on("end", () => {
    clearTimeout(lostTimer);
    clearTimeout(nextTimer);
    socket.close();
    process.exit(0);
  });
  sendNext();
}

export class ProbeError extends Error {
  override name = "ProbeError";
}

/** The bench's handle on a running probe process. */
export class RegProbe {
  private readonly out: LineReader;

  private constructor(private readonly proc: Subprocess<"pipe", "pipe", "inherit">) {
    this.out = new LineReader(proc.stdout);
  }

  /**
   * Starts the probe against the relay at 127.0.0.1:port; resolves once its session is registered.
   * It runs at nice -10 (root), so the bench's own work on its core does not delay its answers.
   */
  static async start(port: number, pin: string[], timeoutMs = 15_000): Promise<RegProbe> {
    const nice = process.getuid?.() === 0 && Bun.which("nice") ? ["nice", "-n", "-10"] : [];
    const proc = track(Bun.spawn([...pin, ...nice, process.execPath, import.meta.path, "--port", String(port), "--address", PROBE_ADDRESS], {
      stdin: "pipe", stdout: "pipe", stderr: "inherit",
    }));
    const probe = new RegProbe(proc);
    const first = await probe.out.next(timeoutMs);
    if (first !== "ready") {
      await probe.stop();
      throw new ProbeError(`probe did not register: ${first ?? "no answer"}`);
    }
    return probe;
  }

  /** Round trips since the previous mark (the first mark after start: since registration). */
  async mark(): Promise<ProbeWindow> {
    this.proc.stdin.write("mark\n");
    this.proc.stdin.flush();
    const line = await this.out.next(10_000);
    if (!line?.startsWith("{")) throw new ProbeError(`probe gave no figures: ${line ?? "no answer"}`);
    // NaN (no round trip in the window) travels as null
    return JSON.parse(line, (_k, v) => (v === null ? Number.NaN : v)) as ProbeWindow;
  }

  async stop(): Promise<void> {
    try {
      this.proc.stdin.end();
    } catch {
      // already closed
    }
    await stopChild(this.proc, 1000);
  }
}

if (import.meta.main) await runProbe(process.argv.slice(2));
