import { readdirSync, readFileSync } from "node:fs";
import type { ExpositionWriter } from "./exposition.ts";

/**
 * The process families, under the names Prometheus' own client libraries use
 * (process_cpu_seconds_total, process_open_fds, process_max_fds, process_resident_memory_bytes,
 * process_start_time_seconds), plus the JavaScript heap. Read at scrape time. The descriptor
 * families come from /proc (`procRoot`, replaceable in tests) and are left out where it is missing.
 */
export function writeProcessMetrics(w: ExpositionWriter, startedAtSeconds: number, procRoot = "/proc"): void {
  const cpu = process.cpuUsage();
  w.single("process_cpu_seconds_total", "counter", "User and system CPU time spent by the process, in seconds", (cpu.user + cpu.system) / 1e6);
  const memory = process.memoryUsage();
  w.single("process_resident_memory_bytes", "gauge", "Resident set size", memory.rss);
  w.single("process_heap_bytes", "gauge", "JavaScript heap in use", memory.heapUsed);
  w.single("process_start_time_seconds", "gauge", "Unix time the process started", startedAtSeconds);
  const open = openFds(procRoot);
  if (open !== undefined) w.single("process_open_fds", "gauge", "Open file descriptors", open);
  const max = maxFds(procRoot);
  if (max !== undefined) w.single("process_max_fds", "gauge", "Limit on open file descriptors (soft RLIMIT_NOFILE)", max);
}

/** Entries of /proc/self/fd (the directory's own descriptor included, as Prometheus' clients count). */
export function openFds(procRoot = "/proc"): number | undefined {
  try {
    return readdirSync(`${procRoot}/self/fd`).length;
  } catch {
    return undefined;
  }
}

/** The soft "Max open files" of /proc/self/limits; undefined when unreadable or unlimited. */
export function maxFds(procRoot = "/proc"): number | undefined {
  try {
    const line = readFileSync(`${procRoot}/self/limits`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    const n = Number(soft);
    return soft !== undefined && soft !== "" && Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}
