/**
 * One bench at a time per machine: two runs pinned to the same cores would measure each other.
 * A lock file holding the owner's pid; a stale one (dead pid) is taken over.
 */
import { openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";

export const LOCK_PATH = "/tmp/quic-relay-bench.lock";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tryTake(): number | undefined {
  try {
    const fd = openSync(LOCK_PATH, "wx");
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return undefined;
  } catch {
    const owner = Number(readFileSync(LOCK_PATH, "utf8").trim());
    if (!Number.isInteger(owner) || owner <= 0 || !alive(owner)) {
      rmSync(LOCK_PATH, { force: true });
      return tryTake();
    }
    return owner;
  }
}

/** Waits up to maxWaitMs for other bench runs to finish; returns false if it gave up. */
export async function acquireBenchLock(maxWaitMs: number): Promise<boolean> {
  const deadline = performance.now() + maxWaitMs;
  let announced = false;
  for (;;) {
    const owner = tryTake();
    if (owner === undefined) {
      process.on("exit", releaseBenchLock);
      return true;
    }
    if (!announced) console.log(`waiting for another bench run to finish (pid ${owner}, ${LOCK_PATH})`);
    announced = true;
    if (performance.now() > deadline) return false;
    await Bun.sleep(1000);
  }
}

export function releaseBenchLock(): void {
  try {
    if (Number(readFileSync(LOCK_PATH, "utf8").trim()) === process.pid) rmSync(LOCK_PATH, { force: true });
  } catch {
    // already gone
  }
}
