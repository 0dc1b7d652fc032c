import { afterEach, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExpositionWriter } from "../../src/metrics/exposition.ts";
import { writeProcessMetrics } from "../../src/metrics/process-metrics.ts";

function render(procRoot?: string): Map<string, number> {
  const w = new ExpositionWriter();
  writeProcessMetrics(w, 1234, procRoot);
  const out = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of w.toString().split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m && !line.startsWith("#")) out.set(m[1]!, Number(m[2]));
  }
  expect(types.get("process_cpu_seconds_total")).toBe("counter");
  return out;
}

describe("process metrics", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** A /proc with `fds` entries in self/fd and the given limits file. */
  function fakeProc(fds: number, limits?: string): string {
    const root = mkdtempSync(join(tmpdir(), "quic-relay-proc-"));
    dirs.push(root);
    mkdirSync(join(root, "self", "fd"), { recursive: true });
    for (let i = 0; i < fds; i++) writeFileSync(join(root, "self", "fd", String(i)), "");
    if (limits !== undefined) writeFileSync(join(root, "self", "limits"), limits);
    return root;
  }

  it("counts CPU seconds from process.cpuUsage(): the JS thread's own work shows up", () => {
    const before = render().get("process_cpu_seconds_total")!;
    const start = process.cpuUsage();
    // Spin on CPU time itself, not on the clock: ends after 50 ms of CPU however loaded the box is.
    for (let used = process.cpuUsage(start); used.user + used.system < 50_000; used = process.cpuUsage(start)) {
      // busy
    }
    const after = render().get("process_cpu_seconds_total")!;
    expect(before).toBeGreaterThan(0);
    expect(after - before).toBeGreaterThanOrEqual(0.05);
  });

  it("counts the entries of /proc/self/fd and reads the soft open-files limit", () => {
    const limits = [
      "Limit                     Soft Limit           Hard Limit           Units     ",
      "Max cpu time              unlimited            unlimited            seconds   ",
      "Max open files            1024                 524288               files     ",
      "",
    ].join("\n");
    const m = render(fakeProc(7, limits));
    expect(m.get("process_open_fds")).toBe(7);
    expect(m.get("process_max_fds")).toBe(1024);
    expect(m.get("process_start_time_seconds")).toBe(1234);
  });

  it("leaves the descriptor families out where /proc is missing, or the limit is unlimited", () => {
    const missing = render(join(tmpdir(), "quic-relay-no-proc-here"));
    expect(missing.has("process_open_fds")).toBe(false);
    expect(missing.has("process_max_fds")).toBe(false);
    expect(missing.has("process_cpu_seconds_total")).toBe(true);
    expect(missing.has("process_resident_memory_bytes")).toBe(true);
    const unlimited = render(fakeProc(3, "Max open files            unlimited            unlimited            files     \n"));
    expect(unlimited.get("process_open_fds")).toBe(3);
    expect(unlimited.has("process_max_fds")).toBe(false);
  });

  it.skipIf(process.platform !== "linux")("reads the real /proc on Linux", () => {
    const m = render();
    expect(m.get("process_open_fds")!).toBeGreaterThan(2);
    expect(m.get("process_max_fds")!).toBeGreaterThanOrEqual(m.get("process_open_fds")!);
  });
});
