/**
 * WAL checkpoints in a worker thread (src/state/checkpointer.ts): the store's commits are folded
 * into the file by the worker's connection, the worker's last close removes the log, and a worker
 * that cannot run hands checkpoints back to SQLite on the store's own connection.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Checkpointer, WorkerCheckpointer } from "../../src/state/checkpointer.ts";
import { sessionRow, StateStore } from "../../src/state/store.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-checkpoint-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `n` rows of about 200 bytes, in one transaction. */
function commitRows(store: StateStore, n: number, from = 0): void {
  store.transact((rows) => {
    for (let i = from; i < from + n; i++) {
      rows.append(sessionRow({ id: `s${i}`, idleMs: 0, peers: [{ address: `10.0.${i >> 8}.${i & 255}`, port: 1000, idleMs: 0, proven: true }] }, 1_700_000_000_000));
    }
  }, 1_700_000_000_000);
}

describe("checkpoints in a worker thread", () => {
  it("the worker checkpoints after commits; closing both connections folds the log in and removes it", async () => {
    const dir = tempDir();
    const path = join(dir, "s.db");
    let checkpointer: WorkerCheckpointer | undefined;
    const { store } = StateStore.open(path, { checkpointer: (p) => (checkpointer = new WorkerCheckpointer(p)) });
    for (let i = 0; i < 5; i++) commitRows(store, 100, i * 100);
    await checkpointer!.settled();
    expect(checkpointer!.checkpoints).toBeGreaterThanOrEqual(1);
    expect(checkpointer!.lastError).toBeUndefined();
    await store.close();
    expect(readdirSync(dir)).toEqual(["s.db"]);
    const { store: again } = StateStore.open(path);
    expect(again.load().state?.sessions).toHaveLength(500);
    await again.close();
  });

  it("a worker that cannot open the file fails once; requests then say so", async () => {
    const checkpointer = new WorkerCheckpointer(join(tempDir(), "missing-dir", "s.db"));
    expect(checkpointer.requested()).toBe(true);
    await checkpointer.settled();
    expect(checkpointer.lastError).toContain("unable to open");
    expect(checkpointer.requested()).toBe(false);
    await checkpointer.close();
  });

  it("when the checkpointer cannot run, SQLite checkpoints on the store's connection: the log stays small", async () => {
    const dir = tempDir();
    const path = join(dir, "s.db");
    const failing: Checkpointer = { offThread: true, requested: () => false, close: async () => {} };
    const { store } = StateStore.open(path, { checkpointer: () => failing });
    cleanups.push(() => store.close());
    // About 40 MB of rows: without checkpoints the log would hold them all.
    for (let i = 0; i < 40; i++) commitRows(store, 5000, i * 5000);
    expect(existsSync(`${path}-wal`)).toBe(true);
    expect(statSync(`${path}-wal`).size).toBeLessThan(16 * 1024 * 1024);
  });
});
