/** Readers for the relay's /proc counters: CPU ticks, memory, and UDP socket drops. */
import { readFileSync } from "node:fs";

/** Clock ticks per second for utime/stime (sysconf(_SC_CLK_TCK)); 100 on Linux x86. */
export const CLOCK_TICKS = readClockTicks();

function readClockTicks(): number {
  const r = Bun.spawnSync(["getconf", "CLK_TCK"]);
  const n = Number(r.stdout.toString().trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
}

/** utime + stime of all the process's threads, in seconds; undefined if it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** The calling thread's own CPU time so far, in milliseconds (`/proc/thread-self/schedstat`, nanoseconds). */
export function threadCpuMs(): number {
  return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]) / 1e6;
}

export interface Memory {
  rssMb: number;
  peakMb: number;
  threads: number;
}

export function memory(pid: number): Memory | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const value = (key: string): number => Number(/(\d+)/.exec(status.split(`\n${key}:`)[1] ?? "")?.[1] ?? 0);
    return { rssMb: value("VmRSS") / 1024, peakMb: value("VmHWM") / 1024, threads: value("Threads") };
  } catch {
    return undefined;
  }
}

/**
 * Sum of the receive-queue drops of every UDP socket bound to 127.0.0.1:port (all SO_REUSEPORT
 * members). Asks sock_diag through `ss` with a port filter: reading /proc/net/udp instead walks and
 * formats every socket on the machine, which with the generator's 20,000 sockets costs 0.3 s of
 * kernel time and stalls the very traffic being measured.
 */
/** Seconds a memory figure waits after the load at least (see settledRss). */
const SETTLE_WINDOW_S = 30;

/**
 * RSS once the runtime collected the garbage of a registration burst: JSC collects an idle relay
 * late (100k sessions: RSS stays at its post-fill plateau for 10-20 s, then drops to what the
 * table holds, 203 -> 117 MB), and a relay must not force a collection (a 270 ms stall). So VmRSS is polled
 * every 500 ms for SETTLE_WINDOW_S, and the figure is the last value once it moved less than
 * 0.5 % (at least 1 MB) over the last 5 s of the window; `plateauMb` is the first such value.
 */
export async function settledRss(pid: number): Promise<{ rssMb: number; peakMb: number; plateauMb: number; seconds: number }> {
  const t0 = performance.now();
  const seen: number[] = [];
  let plateauMb: number | undefined;
  for (;;) {
    const m = memory(pid);
    if (!m) throw new Error("relay gone while reading its memory");
    seen.push(m.rssMb);
    const recent = seen.slice(-10);
    const steady = recent.length === 10 && Math.max(...recent) - Math.min(...recent) < Math.max(1, m.rssMb * 0.005);
    if (steady) plateauMb ??= m.rssMb;
    const seconds = (performance.now() - t0) / 1000;
    if ((steady && seconds >= SETTLE_WINDOW_S) || seconds > 2 * SETTLE_WINDOW_S) {
      return { rssMb: m.rssMb, peakMb: m.peakMb, plateauMb: plateauMb ?? m.rssMb, seconds };
    }
    await Bun.sleep(500);
  }
}


export function udpDrops(port: number): number {
  if (Bun.which("ss")) {
    const r = Bun.spawnSync(["ss", "-u", "-a", "-n", "-m", "-H", `sport = :${port}`], { stdout: "pipe", stderr: "ignore" });
    if (r.exitCode === 0) {
      let drops = 0;
      const blocks = r.stdout.toString().split(/\n(?=\S)/);
      for (const block of blocks) {
        if (!block.includes(`127.0.0.1:${port}`)) continue;
        drops += Number(/[(,]d(\d+)/.exec(block)?.[1] ?? 0);
      }
      return drops;
    }
  }
  return procNetUdpDrops(port);
}

function procNetUdpDrops(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let drops = 0;
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(local) && cols.length >= 13) drops += Number(cols[cols.length - 1]) || 0;
    }
  }
  return drops;
}

/** Busy seconds (everything but idle and iowait) of one CPU since boot, from /proc/stat. */
export function coreBusySeconds(core: number): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((l) => l.startsWith(`cpu${core} `));
  if (!line) return Number.NaN;
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return (v.reduce((a, b) => a + b, 0) - v[3] - v[4]) / CLOCK_TICKS;
}

/** One snapshot of the counters sampled around a measured window. */
export interface ProcSnapshot {
  at: number;
  cpu: number;
  drops: number;
  /** busy seconds of the core the relay is pinned to (to see other load sharing it) */
  relayCoreBusy: number;
}

export const RELAY_CORE = 0;
export const GENERATOR_CORE = 1;

export function snapshot(pid: number, port: number): ProcSnapshot {
  return {
    at: performance.now(), cpu: cpuSeconds(pid) ?? Number.NaN, drops: udpDrops(port),
    relayCoreBusy: coreBusySeconds(RELAY_CORE),
  };
}

/**
 * Waits (at most maxMs) until both cores are nearly idle for one 200 ms window, so a measurement
 * does not start in the middle of someone else's burst. Returns the busy share seen last (0..2).
 */
export async function waitForQuiet(maxMs: number, threshold = 0.2): Promise<number> {
  const deadline = performance.now() + maxMs;
  let busy = Number.NaN;
  do {
    const a = coreBusySeconds(RELAY_CORE) + coreBusySeconds(GENERATOR_CORE), t = performance.now();
    await Bun.sleep(200);
    busy = (coreBusySeconds(RELAY_CORE) + coreBusySeconds(GENERATOR_CORE) - a) / ((performance.now() - t) / 1000);
    if (busy < threshold) break;
  } while (performance.now() < deadline);
  return busy;
}
