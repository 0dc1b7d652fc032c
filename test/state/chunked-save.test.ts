/**
 * Saves in chunks: the same file as a save in one go, the previous save intact after an abort, an
 * error or a crash in the middle, and the process's health endpoint answering while a save of many
 * sessions runs (periodic and final).
 */
import { afterEach, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/log.ts";
import { emptyOperationsCounters } from "../../src/metrics/relay-metrics.ts";
import { startMetricsServer } from "../../src/metrics/server.ts";
import type { SessionSnapshot } from "../../src/sessions/table.ts";
import { StatePersister } from "../../src/state/persister.ts";
import { StateStore } from "../../src/state/store.ts";
import { setup } from "../sessions/fixtures.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function stateFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-chunks-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "state.db");
}

function snapshots(n: number, prefix = "s"): SessionSnapshot[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${i}`,
    idleMs: i,
    peers: [
      { address: `10.0.${i >> 8}.${i & 255}`, port: 1000, idleMs: i },
      { address: `10.1.${i >> 8}.${i & 255}`, port: 2000, idleMs: i + 1, proven: true },
    ],
  }));
}

function load(path: string) {
  const { store } = StateStore.open(path);
  try {
    return store.load();
  } finally {
    store.close();
  }
}

/** A table of `n` paired sessions (fake clock, recording sink). */
function bigTable(n: number) {
  const t = setup();
  for (let i = 0; i < n; i++) {
    const a = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    t.reg(`big-${i}`, `10.${a}:1000`);
    t.reg(`big-${i}`, `11.${a}:2000`);
  }
  return t;
}

describe("StateStore.saveInChunks", () => {
  it("writes what a save in one go writes, pausing between chunks", async () => {
    const oneGo = stateFile();
    const chunked = stateFile();
    const rows = snapshots(10);
    const a = StateStore.open(oneGo).store;
    a.save(rows, 5000);
    a.close();
    const b = StateStore.open(chunked).store;
    let pauses = 0;
    const saved = await b.saveInChunks(rows, 5000, { chunkRows: 3, pause: async () => void pauses++ });
    b.close();
    expect(saved).toBe(true);
    expect(pauses).toBe(3); // 4 chunks
    expect(load(chunked)).toEqual(load(oneGo));
    expect(load(chunked).state?.sessions).toHaveLength(10);
  });

  it("saves an empty table", async () => {
    const path = stateFile();
    const { store } = StateStore.open(path);
    store.save(snapshots(3), 1000);
    expect(await store.saveInChunks([], 2000)).toBe(true);
    store.close();
    expect(load(path)).toEqual({ state: { savedAtMs: 2000, sessions: [] }, malformed: {} });
  });

  it("an abort between chunks keeps the previous save, and the store stays usable", async () => {
    const path = stateFile();
    const { store } = StateStore.open(path);
    store.save(snapshots(5, "old"), 1000);
    let abort = false;
    const saved = await store.saveInChunks(snapshots(10, "new"), 2000, {
      chunkRows: 4,
      pause: async () => void (abort = true),
      aborted: () => abort,
    });
    expect(saved).toBe(false);
    expect(store.load().state).toEqual({ savedAtMs: 1000, sessions: snapshots(5, "old") });
    expect(await store.saveInChunks(snapshots(2, "later"), 3000, { chunkRows: 1 })).toBe(true);
    store.close();
    expect(load(path).state).toEqual({ savedAtMs: 3000, sessions: snapshots(2, "later") });
  });

  it("an error in a later chunk rolls the whole save back", async () => {
    const path = stateFile();
    const { store } = StateStore.open(path);
    store.save(snapshots(5, "old"), 1000);
    // The same id twice: the PRIMARY KEY refuses the second, in the third chunk.
    const rows = [...snapshots(6, "new"), snapshots(1, "new")[0]!];
    await expect(store.saveInChunks(rows, 2000, { chunkRows: 3 })).rejects.toThrow(/UNIQUE/);
    expect(store.load().state).toEqual({ savedAtMs: 1000, sessions: snapshots(5, "old") });
    expect(await store.saveInChunks(snapshots(1, "later"), 3000)).toBe(true);
    store.close();
  });

  it("a process killed in the middle of a chunked save leaves the previous save", async () => {
    const path = stateFile();
    const storeModule = join(import.meta.dir, "../../src/state/store.ts");
    const script = `
      import { StateStore } from ${JSON.stringify(storeModule)};
      const rows = (n, p) => Array.from({ length: n }, (_, i) => ({ id: p + i, idleMs: 1, peers: [{ address: "10.0.0." + (i % 250 + 1), port: 1000 + i, idleMs: 1 }] }));
      const { store } = StateStore.open(${JSON.stringify(path)});
      store.save(rows(3, "old"), 1000);
      await store.saveInChunks(rows(50, "new"), 2000, { chunkRows: 10, pause: () => { console.log("paused"); return new Promise(() => {}); } });
    `;
    const proc = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: "inherit" });
    cleanups.push(() => proc.kill("SIGKILL"));
    let out = "";
    for await (const chunk of proc.stdout) {
      out += new TextDecoder().decode(chunk);
      if (out.includes("paused")) break;
    }
    expect(out).toContain("paused");
    proc.kill("SIGKILL");
    await proc.exited;
    // Ten rows of the new save were written inside the open transaction; the journal undoes them.
    expect(existsSync(`${path}-journal`)).toBe(true);
    const state = load(path).state!;
    expect(state.savedAtMs).toBe(1000);
    expect(state.sessions.map((s) => s.id).sort()).toEqual(["old0", "old1", "old2"]);
  });
});

/**
 * Counts health answers that were both asked for and answered while `work` ran. A request sent
 * after `work` began and answered before it ended was served by the event loop in between: a
 * `work` that holds the loop the whole time gets none, whatever the speed of the machine.
 */
async function healthAnswersDuring(url: string, work: () => Promise<unknown>): Promise<{ during: number; statuses: Set<number> }> {
  let running = false;
  let done = false;
  let during = 0;
  const statuses = new Set<number>();
  const ask = async () => {
    const sentWhileRunning = running;
    const response = await fetch(url);
    await response.text();
    statuses.add(response.status);
    if (sentWhileRunning && running) during++;
  };
  // Four requests in flight at all times, each sent as soon as the previous one is answered.
  const loops = Array.from({ length: 4 }, async () => {
    await ask();
    while (!done) await ask();
  });
  await ask();
  running = true;
  await work();
  running = false;
  done = true;
  await Promise.all(loops);
  return { during, statuses };
}

describe("StatePersister: the health endpoint answers during a save of many sessions", () => {
  const SESSIONS = 50_000;

  function persisterWithServer(n: number, chunkRows?: number) {
    const t = bigTable(n);
    const counters = emptyOperationsCounters();
    const persister = StatePersister.open(stateFile(), t.table, createLogger("error"), counters, { chunkRows });
    cleanups.push(() => persister.close(false));
    const server = startMetricsServer("127.0.0.1:0", { healthy: () => true, ready: () => true, metrics: () => "" });
    cleanups.push(() => server.stop());
    return { t, persister, counters, url: `${server.url}/healthz` };
  }

  it("a periodic save: answers between its chunks, and the save is complete", async () => {
    const { persister, counters, url } = persisterWithServer(SESSIONS, 500);
    const { during, statuses } = await healthAnswersDuring(url, () => persister.save());
    expect(statuses).toEqual(new Set([200]));
    expect(during).toBeGreaterThanOrEqual(1);
    expect(counters.stateSaves).toEqual({ ok: 1, error: 0 });
  });

  it("the same measurement sees no answer when nothing yields to the event loop between chunks", async () => {
    // The control: proves the measurement above can fail. Pauses that are only microtasks hold the
    // event loop for the whole save, as a save in one go would.
    const { t, url } = persisterWithServer(SESSIONS);
    const path = stateFile();
    const { store } = StateStore.open(path);
    cleanups.push(() => store.close());
    const { during } = await healthAnswersDuring(url, () =>
      store.saveInChunks(t.table.exportSessions(), Date.now(), { chunkRows: 500, pause: () => Promise.resolve() }),
    );
    expect(during).toBe(0);
    expect(store.load().state?.sessions).toHaveLength(SESSIONS);
  });

  it("the final save (close): answers between its chunks; the file holds every session", async () => {
    const { persister, counters, url } = persisterWithServer(SESSIONS, 500);
    const path = (persister as unknown as { store: StateStore }).store.path;
    const { during } = await healthAnswersDuring(url, () => persister.close());
    expect(during).toBeGreaterThanOrEqual(1);
    expect(counters.stateSaves).toEqual({ ok: 1, error: 0 });
    expect(load(path).state?.sessions).toHaveLength(SESSIONS);
  });
});

describe("StatePersister: saves one at a time", () => {
  it("a save asked for while one runs is that save; the final save abandons a periodic one and saves the newest table", async () => {
    const t = setup();
    t.reg("first", "10.0.0.1:1");
    const path = stateFile();
    const counters = emptyOperationsCounters();
    const persister = StatePersister.open(path, t.table, createLogger("error"), counters, { chunkRows: 1 });
    // A second session makes two chunks: the periodic save pauses between them.
    t.reg("second", "10.0.0.2:2");
    const periodic = persister.save();
    expect(persister.save()).toBe(periodic);
    t.reg("third", "10.0.0.3:3");
    await persister.close();
    expect(await periodic).toBe(false); // abandoned at its pause
    expect(counters.stateSaves).toEqual({ ok: 1, error: 0 });
    expect(load(path).state?.sessions.map((s) => s.id)).toEqual(["first", "second", "third"]);
    expect(await persister.save()).toBe(false); // closed
  });
});
