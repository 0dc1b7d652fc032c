/**
 * The state file of format 2 (src/state/store.ts): rows with wall-clock instants, a log in which
 * each id's newest row counts, transactions that leave the previous content when they fail,
 * migration of format-1 files, and the files it refuses or sets aside.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SessionSnapshot } from "../../src/sessions/table.ts";
import { INLINE_CHECKPOINTS } from "../../src/state/checkpointer.ts";
import { ANY_SOCKET } from "../../src/state/rows.ts";
import { sessionRow, StateFileError, StateStore } from "../../src/state/store.ts";
import { v1Row, writeV1StateFile } from "./v1-file.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-store-v2-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function open(path: string): StateStore {
  const { store } = StateStore.open(path, { checkpointer: () => INLINE_CHECKPOINTS });
  cleanups.push(() => store.close().catch(() => {}));
  return store;
}

const NOW = 1_700_000_000_000;

function session(id: string, idleMs: number, host = 1): SessionSnapshot {
  return {
    id,
    idleMs,
    peers: [
      { address: `10.0.0.${host}`, port: 1000, idleMs: idleMs + 5, proven: true },
      { address: `10.0.1.${host}`, port: 2000, idleMs, proven: false },
    ],
  };
}

/** The rows of the file as they are, oldest first. */
function rawRows(path: string): { seq: number; id: unknown; active_at_ms: unknown; peers: unknown }[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.query("SELECT seq, id, active_at_ms, peers FROM sessions ORDER BY seq").all() as never;
  } finally {
    db.close();
  }
}

function metaOf(path: string): Record<string, string> {
  const db = new Database(path, { readonly: true });
  try {
    return Object.fromEntries((db.query("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
  } finally {
    db.close();
  }
}

describe("format 2: rows with instants", () => {
  it("stores instants of the wall clock; a load counts idle time from them", () => {
    const path = join(tempDir(), "s.db");
    const store = open(path);
    store.save([session("a", 100), session("b", 2000, 2)], NOW);
    expect(rawRows(path).map((r) => [r.id, r.active_at_ms])).toEqual([
      ["a", NOW - 100],
      ["b", NOW - 2000],
    ]);
    expect(JSON.parse(rawRows(path)[0]!.peers as string)).toEqual([
      { address: "10.0.0.1", port: 1000, seenAtMs: NOW - 105, proven: true },
      { address: "10.0.1.1", port: 2000, seenAtMs: NOW - 100, proven: false },
    ]);
    const loaded = store.load(ANY_SOCKET, NOW + 5000);
    expect(loaded.state?.savedAtMs).toBe(NOW);
    // Oldest activity first, as the table restores them.
    expect(loaded.state?.sessions).toEqual([session("b", 7000, 2), session("a", 5100)]);
    expect(loaded.state?.rows).toEqual([2, 1]);
    expect(loaded.malformed).toEqual({});
    expect(loaded.index.sessions).toBe(2);
    expect(store.rowCount).toBe(2);
  });

  it("is in WAL mode, 0600, and leaves no side file once closed", async () => {
    const dir = tempDir();
    const path = join(dir, "s.db");
    const { store } = StateStore.open(path);
    store.transact((rows) => rows.append(sessionRow(session("a", 1), NOW)), NOW);
    const db = new Database(path, { readonly: true });
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    db.close();
    await store.close();
    expect(readdirSync(dir)).toEqual(["s.db"]);
  });

  it("an id's newest row counts: a later row replaces it, a removal row hides it", () => {
    const path = join(tempDir(), "s.db");
    const store = open(path);
    store.transact((rows) => {
      rows.append(sessionRow(session("a", 100), NOW));
      rows.append(sessionRow(session("b", 100, 2), NOW));
      rows.append(sessionRow(session("c", 100, 3), NOW));
    }, NOW);
    store.transact((rows) => {
      rows.append(sessionRow(session("a", 0, 4), NOW + 1000));
      rows.appendRemoval("b");
    }, NOW + 1000);
    const loaded = store.load(ANY_SOCKET, NOW + 1000);
    expect(loaded.state?.sessions).toEqual([session("c", 1100, 3), session("a", 0, 4)]);
    expect(loaded.index.holdsSession("a")).toBe(true);
    expect(loaded.index.holdsSession("b")).toBe(false);
    expect(loaded.index.isNewestRemoval("b", 5)).toBe(true);
    expect(loaded.index.isNewestSession("a", 1)).toBe(false);
    expect(loaded.index.isNewestSession("a", 4)).toBe(true);
    expect(store.rowCount).toBe(5);
  });

  it("copy appends a row as it is, drop deletes one; the oldest rows come in seq order", () => {
    const path = join(tempDir(), "s.db");
    const store = open(path);
    store.save([session("a", 1), session("b", 2, 2), session("c", 3, 3)], NOW);
    store.transact((rows) => {
      expect(rows.oldest(0, 2).map((r) => [r.seq, r.id, r.removal])).toEqual([
        [1, "a", false],
        [2, "b", false],
      ]);
      expect(rows.copy(1)).toBe(4);
      rows.drop(1);
      rows.drop(2);
      expect(rows.oldest(0, 10).map((r) => r.seq)).toEqual([3, 4]);
    }, NOW);
    expect(store.rowCount).toBe(2);
    expect(rawRows(path).map((r) => [r.seq, r.id])).toEqual([
      [3, "c"],
      [4, "a"],
    ]);
    expect(store.load(ANY_SOCKET, NOW).state?.sessions.map((s) => s.id).sort()).toEqual(["a", "c"]);
  });

  it("a transaction that throws leaves the previous content and row count, and the store usable", () => {
    const path = join(tempDir(), "s.db");
    const store = open(path);
    store.save([session("a", 1)], NOW);
    expect(() =>
      store.transact((rows) => {
        rows.append(sessionRow(session("b", 1, 2), NOW + 1));
        rows.drop(1);
        throw new Error("disk on fire");
      }, NOW + 1),
    ).toThrow("disk on fire");
    expect(store.rowCount).toBe(1);
    expect(rawRows(path).map((r) => r.id)).toEqual(["a"]);
    expect(metaOf(path).saved_at_ms).toBe(String(NOW));
    store.transact((rows) => rows.append(sessionRow(session("c", 1, 3), NOW + 2)), NOW + 2);
    expect(rawRows(path).map((r) => r.id)).toEqual(["a", "c"]);
  });

  it("a process killed in the middle of a transaction leaves the last commit", async () => {
    const path = join(tempDir(), "s.db");
    const storeModule = join(import.meta.dir, "../../src/state/store.ts");
    const script = `
      import { StateStore, sessionRow } from ${JSON.stringify(storeModule)};
      const row = (id, i) => sessionRow({ id, idleMs: 1, peers: [{ address: "10.0.0." + (i % 250 + 1), port: 1000 + i, idleMs: 1 }] }, 5000);
      const { store } = StateStore.open(${JSON.stringify(path)});
      store.transact((rows) => { for (let i = 0; i < 3; i++) rows.append(row("old" + i, i)); }, 1000);
      store.transact((rows) => {
        for (let i = 0; i < 50; i++) rows.append(row("new" + i, i));
        rows.drop(1);
        console.log("writing");
        // Holds the transaction open until the process is killed.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      }, 2000);
    `;
    const proc = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: "inherit" });
    cleanups.push(() => proc.kill("SIGKILL"));
    let out = "";
    for await (const chunk of proc.stdout) {
      out += new TextDecoder().decode(chunk);
      if (out.includes("writing")) break;
    }
    expect(out).toContain("writing");
    proc.kill("SIGKILL");
    await proc.exited;
    const store = open(path);
    const loaded = store.load(ANY_SOCKET, 5000);
    expect(loaded.state?.savedAtMs).toBe(1000);
    expect(loaded.state?.sessions.map((s) => s.id).sort()).toEqual(["old0", "old1", "old2"]);
    expect(store.rowCount).toBe(3);
  });
});

describe("format 1 files are migrated", () => {
  const SAVED = NOW - 60_000;

  it("reads idle times relative to the save plus the downtime, rewrites the rows as instants, and drops malformed ones", () => {
    const path = join(tempDir(), "s.db");
    writeV1StateFile(
      path,
      [
        v1Row(session("paired", 1000)),
        v1Row({ id: "waiting", idleMs: 50, peers: [{ address: "10.0.9.9", port: 9, idleMs: 50 }] }),
        ["bad-port", 10, JSON.stringify([{ address: "10.0.0.7", port: 70_000, idleMs: 1 }])],
        ["negative", -3, JSON.stringify([{ address: "10.0.0.8", port: 8, idleMs: 1 }])],
      ],
      SAVED,
    );
    const store = open(path);
    const loaded = store.load(ANY_SOCKET, NOW);
    expect(loaded.unreadable).toBeUndefined();
    expect(loaded.migrated).toEqual({ from: "1", rows: 2 });
    expect(loaded.malformed).toEqual({ "bad-port": 1, "bad-idle": 1 });
    expect(loaded.state?.savedAtMs).toBe(SAVED);
    // 60 s of downtime added, as format 1 was read.
    expect(loaded.state?.sessions).toEqual([session("paired", 61_000), { id: "waiting", idleMs: 60_050, peers: [{ address: "10.0.9.9", port: 9, idleMs: 60_050 }] }]);
    expect(loaded.index.sessions).toBe(2);

    // The file is of format 2 now, with every restorable row in the new form and nothing else.
    expect(metaOf(path).format_version).toBe("2");
    expect(rawRows(path).map((r) => [r.id, r.active_at_ms])).toEqual([
      ["paired", SAVED - 1000],
      ["waiting", SAVED - 50],
    ]);
    const again = open(path).load(ANY_SOCKET, NOW);
    expect(again.migrated).toBeUndefined();
    expect(again.state?.sessions).toEqual(loaded.state!.sessions);
  });

  it("a format-1 file never saved becomes an empty format-2 file", () => {
    const path = join(tempDir(), "s.db");
    writeV1StateFile(path, []);
    const store = open(path);
    const loaded = store.load(ANY_SOCKET, NOW);
    expect(loaded.state).toBeUndefined();
    expect(loaded.migrated).toEqual({ from: "1", rows: 0 });
    expect(metaOf(path).format_version).toBe("2");
  });

  it("opening a format-1 file changes nothing until it is loaded", () => {
    const path = join(tempDir(), "s.db");
    writeV1StateFile(path, [v1Row(session("a", 1))], SAVED);
    const { store } = StateStore.open(path);
    store.close();
    expect(metaOf(path).format_version).toBe("1");
    const db = new Database(path, { readonly: true });
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "delete" });
    db.close();
  });
});

describe("files that are not of this relay, or not readable", () => {
  function refused(build: (db: Database) => void): string {
    const path = join(tempDir(), "s.db");
    const db = new Database(path, { create: true });
    build(db);
    db.close();
    try {
      StateStore.open(path);
    } catch (error) {
      expect(error).toBeInstanceOf(StateFileError);
      return (error as Error).message;
    }
    throw new Error("opened");
  }

  it("refuses a sessions table whose seq is not the INTEGER PRIMARY KEY (no log order, duplicates possible)", () => {
    const message = refused((db) => db.run("CREATE TABLE sessions (seq INTEGER, id TEXT NOT NULL, active_at_ms REAL, peers TEXT)"));
    expect(message).toContain(
      "table 'sessions' is declared (seq INTEGER, id TEXT, active_at_ms REAL, peers TEXT), expected (seq INTEGER PRIMARY KEY, id TEXT, active_at_ms REAL, peers TEXT)",
    );
    expect(message).toContain("it was left untouched");
  });

  it("refuses a file that says format 1 but has other tables", () => {
    const message = refused((db) => {
      db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      db.run("INSERT INTO meta VALUES ('format_version', '1')");
      db.run("CREATE TABLE sessions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, active_at_ms REAL, peers TEXT)");
    });
    expect(message).toContain("table 'sessions' has columns (seq,id,active_at_ms,peers), expected (id,idle_ms,peers)");
  });

  it("sets a file of an unknown version aside with its WAL side files, and starts a new one", () => {
    const dir = tempDir();
    const path = join(dir, "s.db");
    const db = new Database(path, { create: true });
    db.run("PRAGMA journal_mode = WAL");
    db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db.run("INSERT INTO meta VALUES ('format_version', '7')");
    // A second connection keeps the log from being folded in when the first closes.
    const holder = new Database(path);
    holder.query("SELECT 1 FROM meta").get();
    db.close();
    expect(existsSync(`${path}-wal`)).toBe(true);
    const store = open(path);
    const loaded = store.load();
    holder.close();
    expect(loaded.unreadable?.reason).toBe("format version 7");
    const movedTo = loaded.unreadable!.movedTo!;
    expect(existsSync(movedTo)).toBe(true);
    expect(existsSync(`${movedTo}-wal`)).toBe(true);
    // The new file did not take the old one's log for its own.
    expect(metaOf(path).format_version).toBe("2");
    expect(metaOf(movedTo).format_version).toBe("7");
    expect(store.load().unreadable).toBeUndefined();
  });

  it("a saved_at_ms that is not a number makes the file unreadable: set aside", () => {
    const path = join(tempDir(), "s.db");
    const store = open(path);
    store.save([session("a", 1)], NOW);
    const db = new Database(path);
    db.run("UPDATE meta SET value = 'yesterday' WHERE key = 'saved_at_ms'");
    db.close();
    const loaded = store.load();
    expect(loaded.unreadable?.reason).toBe("saved_at_ms is not a number: yesterday");
    expect(loaded.state).toBeUndefined();
  });
});
