/**
 * Child processes and temporary directories of one bench run, gone on every way out: a normal end,
 * an error, Ctrl-C or SIGTERM. Each child is killed by its own pid, never by name.
 */
import type { Subprocess } from "bun";
import { rmSync } from "node:fs";

const children = new Set<Subprocess>();
/** Children started by others (harnesses that hand out a pid, not the Subprocess). */
const pids = new Set<number>();
const tempDirs = new Set<string>();
const extraCleanUps: (() => void)[] = [];
let installed = false;

function running(proc: Subprocess): boolean {
  return proc.exitCode === null && proc.signalCode === null;
}

/** SIGKILL to every child still running and removal of every temporary directory (synchronous). */
export function cleanUpNow(): void {
  for (const proc of children) {
    if (running(proc)) proc.kill("SIGKILL");
  }
  children.clear();
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  pids.clear();
  for (const cleanUp of extraCleanUps) cleanUp();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", cleanUpNow);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      cleanUpNow();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

/** Kills `proc` when the run ends, unless it ended before. */
export function track<T extends Subprocess>(proc: T): T {
  install();
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  return proc;
}

/** Kills the process `pid` when the run ends; the returned function forgets it (it was stopped). */
export function trackPid(pid: number): () => void {
  install();
  pids.add(pid);
  return () => pids.delete(pid);
}

/** Runs `cleanUp` (synchronous) on every way out, with the rest; installs the handlers now. */
export function onCleanUp(cleanUp: () => void): void {
  install();
  extraCleanUps.push(cleanUp);
}

/** Removes `dir` (recursively) when the run ends, unless `removeTempDir` did before. */
export function trackTempDir(dir: string): string {
  install();
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopChild(proc: Subprocess, graceMs = 3000): Promise<void> {
  if (running(proc)) {
    proc.kill("SIGTERM");
    const ended = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
    if (!ended) proc.kill("SIGKILL");
  }
  await proc.exited;
  children.delete(proc);
}
