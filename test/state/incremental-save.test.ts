/**
 * Incremental saves (src/state/incremental-save.ts through StatePersister): a save writes the
 * sessions that changed and nothing else, records removals, compacts the file, puts back what it
 * did not commit when it fails or is stopped, and lets the event loop serve requests between its
 * chunks. Time comes from fake clocks; chunks are cut by row counts where their number matters.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/log.ts";
import { emptyOperationsCounters } from "../../src/metrics/relay-metrics.ts";
import { startMetricsServer } from "../../src/metrics/server.ts";
import { INLINE_CHECKPOINTS } from "../../src/state/checkpointer.ts";
import { nextTurn } from "../../src/state/incremental-save.ts";
import { type PersisterOptions, StatePersister } from "../../src/state/persister.ts";
import { ANY_SOCKET } from "../../src/state/rows.ts";
import { StateStore } from "../../src/state/store.ts";
import { setup } from "../sessions/fixtures.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function stateFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-incremental-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "state.db");
}

/** Wall-clock milliseconds at the fake table clock's start; the wall clock moves with it. */
const WALL0 = 1_700_000_000_000;

/** A table on a fake clock and a persister on its file, restored (from nothing unless the file has rows). */
function harness(path = stateFile(), options: PersisterOptions = {}) {
  const t = setup({ timeoutMs: 300_000 });
  const start = t.clock.t;
  const wall = () => WALL0 + (t.clock.t - start);
  const counters = emptyOperationsCounters();
  const persister = StatePersister.open(path, t.table, createLogger("error"), counters, { wallClock: wall, ...options });
  cleanups.push(() => persister.close(false));
  const restored = persister.restore();
  return { ...t, persister, counters, path, wall, restored };
}

/** Every row of the file, oldest first: [id, kind]. */
function rowsOf(path: string): [unknown, "session" | "removal"][] {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.query("SELECT id, peers IS NULL AS removal FROM sessions ORDER BY seq").all() as { id: unknown; removal: number }[];
    return rows.map((r) => [r.id, r.removal ? "removal" : "session"]);
  } finally {
    db.close();
  }
}

/** The sessions a restart would restore, by id, idle times as of `nowMs`. */
function restorable(path: string, nowMs: number) {
  const { store } = StateStore.open(path, { checkpointer: () => INLINE_CHECKPOINTS });
  try {
    return new Map((store.load(ANY_SOCKET, nowMs).state?.sessions ?? []).map((s) => [s.id, s]));
  } finally {
    store.close();
  }
}

/** Paired sessions s0..s(n-1), peers at 10.0.x.y:1000 and 10.1.x.y:2000. */
function pairAll(t: ReturnType<typeof harness>, n: number, prefix = "s"): void {
  for (let i = 0; i < n; i++) {
    t.reg(`${prefix}${i}`, `10.0.${i >> 8}.${i & 255}:1000`);
    t.reg(`${prefix}${i}`, `10.1.${i >> 8}.${i & 255}:2000`);
  }
}
const peerA = (i: number) => `10.0.${i >> 8}.${i & 255}:1000`;

describe("a save writes what changed", () => {
  it("the first save writes every session, later ones only the sessions that changed", async () => {
    const t = harness();
    pairAll(t, 10);
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ complete: true, written: 10, removed: 0 });
    expect(rowsOf(t.path)).toHaveLength(10);

    t.clock.advance(5000);
    for (const i of [2, 5, 7]) t.data(peerA(i), "keepalive");
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ complete: true, written: 3, removed: 0, dropped: 0 });
    // In no particular order: the table hands over the changed ids by shard, not as they changed.
    expect(rowsOf(t.path).slice(10).sort()).toEqual([
      ["s2", "session"],
      ["s5", "session"],
      ["s7", "session"],
    ]);

    // Nothing changed: one chunk, no row.
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ written: 0, removed: 0, chunks: 1 });
    expect(t.counters.stateSaves).toEqual({ ok: 3, error: 0 });
    expect(t.persister.fileRows).toBe(13);

    // The newest rows win: the three are 5 s fresher than the others.
    const now = t.wall();
    const saved = restorable(t.path, now);
    expect(saved.size).toBe(10);
    expect(saved.get("s5")?.idleMs).toBe(0);
    expect(saved.get("s4")?.idleMs).toBe(5000);
  });

  it("sessions in the table before the persister opened are in its first save", async () => {
    const t = setup();
    t.reg("early", "10.0.0.1:1");
    const path = stateFile();
    const persister = StatePersister.open(path, t.table, createLogger("error"), emptyOperationsCounters());
    cleanups.push(() => persister.close(false));
    await persister.save();
    expect(rowsOf(path)).toEqual([["early", "session"]]);
  });

  it("removed and expired sessions are written as removals, and a restart does not bring them back", async () => {
    const t = harness();
    pairAll(t, 3);
    await t.persister.save();
    t.clock.advance(200_000);
    t.data(peerA(1), "s1 stays alive");
    t.clock.advance(200_000);
    expect(t.table.expire()).toBe(2);
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ written: 1, removed: 2 });
    expect(rowsOf(t.path).slice(3).sort()).toEqual([
      ["s0", "removal"],
      ["s1", "session"],
      ["s2", "removal"],
    ]);
    expect([...restorable(t.path, t.wall()).keys()]).toEqual(["s1"]);
  });

  it("a session created and removed between two saves leaves no row at all", async () => {
    const t = harness();
    t.reg("brief", "10.0.0.1:1");
    t.clock.advance(400_000);
    t.table.expire();
    await t.persister.save();
    expect(t.persister.lastSave).toMatchObject({ written: 0, removed: 0 });
    expect(rowsOf(t.path)).toEqual([]);
  });

  it("a restart restores the saved sessions, idle for the time since they were last active", async () => {
    const path = stateFile();
    const first = harness(path);
    pairAll(first, 2);
    first.clock.advance(1000);
    first.data(peerA(1), "later");
    await first.persister.close();

    const second = harness(path, { wallClock: () => first.wall() + 60_000 });
    expect(second.restored).toBe(2);
    expect(second.table.session("s0")?.lastActivity).toBe(second.clock.t - 61_000);
    expect(second.table.session("s1")?.lastActivity).toBe(second.clock.t - 60_000);
    expect(second.sink.routeFrom(peerA(0))).toBe("10.1.0.0:2000");
    // Restored as they are in the file: nothing to write back.
    await second.persister.save();
    expect(second.persister.lastSave).toMatchObject({ written: 0, removed: 0 });
  });

  it("rows a restart does not restore (expired while down, colliding) are removed by the next save", async () => {
    const path = stateFile();
    const first = harness(path);
    first.reg("expired", "10.9.0.1:1");
    first.clock.advance(200_000);
    first.reg("kept", "10.0.0.0:1000");
    first.reg("kept", "10.1.0.0:2000");
    await first.persister.close();
    const db = new Database(path);
    // A hand-written row, newer than "kept", whose peer is one of "kept"'s.
    db.run(`INSERT INTO sessions (id, active_at_ms, peers) VALUES ('collides', ${WALL0 + 250_000}, '[{"address":"10.0.0.0","port":1000,"seenAtMs":${WALL0 + 250_000}}]')`);
    db.close();

    // Down until "expired" is 300 s idle.
    const second = harness(path, { wallClock: () => WALL0 + 300_000 });
    expect(second.restored).toBe(1);
    await second.persister.save();
    expect(second.persister.lastSave).toMatchObject({ written: 0, removed: 2 });
    expect([...restorable(path, WALL0 + 300_000).keys()]).toEqual(["kept"]);
  });
});

describe("a save that does not complete", () => {
  it("fails at its first chunk (file locked): counted, logged, and the next save writes everything", async () => {
    const t = harness();
    pairAll(t, 5);
    const locker = new Database(t.path);
    locker.run("BEGIN IMMEDIATE");
    expect(await t.persister.save()).toBe(false);
    expect(t.counters.stateSaves).toEqual({ ok: 0, error: 1 });
    expect(t.persister.lastSave).toBeUndefined();
    locker.run("ROLLBACK");
    locker.close();
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ written: 5 });
    expect(restorable(t.path, t.wall()).size).toBe(5);
  });

  it("fails in a later chunk: the committed chunks stay, the rest (and the failed chunk) go to the next save", async () => {
    const path = stateFile();
    let turns = 0;
    let locker: Database | undefined;
    // Before the third chunk another connection takes the write lock.
    const pause = async () => {
      if (++turns === 3) {
        locker = new Database(path);
        locker.run("BEGIN IMMEDIATE");
      }
      await nextTurn();
    };
    const t = harness(path, { chunkRows: 2, chunkMs: Number.POSITIVE_INFINITY, pause });
    pairAll(t, 7);
    expect(await t.persister.save()).toBe(false);
    expect(rowsOf(path)).toHaveLength(4);
    locker!.run("ROLLBACK");
    locker!.close();
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ written: 3 });
    expect([...restorable(path, t.wall()).keys()].sort()).toEqual(["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
  });

  it("a periodic save is stopped at its next pause by close(); the final save writes the rest and the newest changes", async () => {
    const t = harness(stateFile(), { chunkRows: 1, chunkMs: Number.POSITIVE_INFINITY });
    t.reg("first", "10.0.0.1:1");
    t.reg("second", "10.0.0.2:2");
    const periodic = t.persister.save();
    expect(t.persister.save()).toBe(periodic);
    t.reg("third", "10.0.0.3:3");
    await t.persister.close();
    expect(await periodic).toBe(false);
    expect(t.counters.stateSaves).toEqual({ ok: 1, error: 0 });
    expect(rowsOf(t.path).map(([id]) => id).sort()).toEqual(["first", "second", "third"]);
    expect(await t.persister.save()).toBe(false); // closed
  });
});

describe("compaction keeps the file near the size of the table", () => {
  it("drops rows no session needs, copies the oldest live rows forward, and removals once nothing older is left", async () => {
    const t = harness(stateFile(), { compactSlack: 0 });
    t.reg("steady", "10.5.0.1:1");
    pairAll(t, 3);
    t.reg("gone", "10.6.0.1:1");
    await t.persister.save();
    for (let round = 0; round < 6; round++) {
      t.clock.advance(1000);
      for (let i = 0; i < 3; i++) t.data(peerA(i), `round ${round}`);
      // "gone" expires on its own in the first round: its removal row goes in then.
      if (round === 0) {
        t.clock.advance(300_000);
        for (let i = 0; i < 3; i++) t.data(peerA(i), "alive");
        t.reg("steady", "10.5.0.1:1");
        t.table.expire();
      }
      await t.persister.save();
      expect(t.persister.fileRows).toBeLessThanOrEqual(2 * t.table.sessionCount);
    }
    expect(rowsOf(t.path).filter(([id]) => id === "gone")).toEqual([]);
    const saved = restorable(t.path, t.wall());
    expect([...saved.keys()].sort()).toEqual(["s0", "s1", "s2", "steady"]);
    expect(saved.get("s0")?.idleMs).toBe(0);
  });

  it("an unchanged session's row survives being at the low end: copied, not lost", async () => {
    const t = harness(stateFile(), { compactSlack: 0 });
    t.reg("quiet", "10.5.0.1:1");
    t.clock.advance(10);
    pairAll(t, 2);
    await t.persister.save();
    let copied = 0;
    for (let round = 0; round < 4; round++) {
      t.clock.advance(1000);
      t.data(peerA(0), "busy");
      t.data(peerA(1), "busy");
      await t.persister.save();
      copied += t.persister.lastSave!.copied;
    }
    expect(copied).toBeGreaterThanOrEqual(1);
    expect(rowsOf(t.path).filter(([id]) => id === "quiet")).toHaveLength(1);
    expect(restorable(t.path, t.wall()).get("quiet")?.idleMs).toBe(4010);
  });

  it("the final save does not compact", async () => {
    const t = harness(stateFile(), { compactSlack: 0 });
    pairAll(t, 2);
    await t.persister.save();
    t.data(peerA(0), "x");
    t.data(peerA(1), "x");
    await t.persister.save();
    t.data(peerA(0), "y");
    t.data(peerA(1), "y");
    await t.persister.close();
    expect(t.persister.lastSave).toMatchObject({ written: 2, dropped: 0, copied: 0 });
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

describe("the event loop is served during a save of many sessions", () => {
  const SESSIONS = 50_000;

  function persisterWithServer(options: PersisterOptions = {}) {
    const t = harness(stateFile(), options);
    pairAll(t, SESSIONS, "big-");
    const server = startMetricsServer("127.0.0.1:0", { healthy: () => true, ready: () => true, metrics: () => "" });
    cleanups.push(() => server.stop());
    return { ...t, url: `${server.url}/healthz` };
  }

  it("a periodic save: health answers between its chunks, and the save is complete", async () => {
    const { persister, counters, url, path } = persisterWithServer();
    const { during, statuses } = await healthAnswersDuring(url, () => persister.save());
    expect(statuses).toEqual(new Set([200]));
    expect(during).toBeGreaterThanOrEqual(1);
    expect(counters.stateSaves).toEqual({ ok: 1, error: 0 });
    expect(persister.lastSave!.chunks).toBeGreaterThan(1);
    expect(rowsOf(path)).toHaveLength(SESSIONS);
  });

  it("the same measurement sees no answer when the pauses do not yield to the event loop", async () => {
    // The control: proves the measurement above can fail.
    const { persister, url } = persisterWithServer({ pause: () => Promise.resolve() });
    const { during } = await healthAnswersDuring(url, () => persister.save());
    expect(during).toBe(0);
    expect(persister.lastSave).toMatchObject({ complete: true, written: SESSIONS });
  });

  it("a timer set before the save runs before it ends, between two chunks", async () => {
    let chunksBefore = -1;
    let chunks = 0;
    const { persister } = persisterWithServer({ chunkRows: 1000, chunkMs: Number.POSITIVE_INFINITY, pause: () => (chunks++, nextTurn()) });
    setTimeout(() => (chunksBefore = chunks), 0);
    await persister.save();
    expect(chunks).toBe(SESSIONS / 1000 + 1);
    expect(chunksBefore).toBeGreaterThanOrEqual(1);
    expect(chunksBefore).toBeLessThan(chunks);
  });

  it("the final save (close): health answers between its chunks; the file holds every session", async () => {
    const { persister, counters, url, path } = persisterWithServer();
    const { during } = await healthAnswersDuring(url, () => persister.close());
    expect(during).toBeGreaterThanOrEqual(1);
    expect(counters.stateSaves).toEqual({ ok: 1, error: 0 });
    expect(rowsOf(path)).toHaveLength(SESSIONS);
  });
});

describe("a process killed in the middle of a save", () => {
  it("leaves the chunks it committed, each session whole, and the rest as before", async () => {
    const path = stateFile();
    const src = join(import.meta.dir, "../../src");
    const script = `
      import { StatePersister } from ${JSON.stringify(`${src}/state/persister.ts`)};
      import { createLogger } from ${JSON.stringify(`${src}/log.ts`)};
      import { emptyOperationsCounters } from ${JSON.stringify(`${src}/metrics/relay-metrics.ts`)};
      import { setup } from ${JSON.stringify(join(import.meta.dir, "../sessions/fixtures.ts"))};
      const t = setup();
      let turns = 0;
      const pause = () => ++turns <= 3 ? new Promise((r) => setTimeout(r, 0)) : (console.log("paused"), new Promise(() => {}));
      const p = StatePersister.open(${JSON.stringify(path)}, t.table, createLogger("error"), emptyOperationsCounters(), { chunkRows: 10, chunkMs: Infinity, pause });
      p.restore();
      for (let i = 0; i < 50; i++) { t.reg("s" + i, "10.0.0." + (i + 1) + ":1000"); t.reg("s" + i, "10.1.0." + (i + 1) + ":2000"); }
      await p.save();
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
    // Three chunks of ten committed; every session in the file is paired, as it was saved.
    const saved = restorable(path, Date.now());
    expect(saved.size).toBe(30);
    for (const s of saved.values()) expect(s.peers).toHaveLength(2);
  });
});
