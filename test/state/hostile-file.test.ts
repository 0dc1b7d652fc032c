/**
 * A state file written by someone else: rows of every wrong shape and type, megabytes of peers,
 * an id many times over, a million junk rows. Each row is refused on its own and counted; the
 * relay restores the good ones, never throws, and its saves then clear the junk out of the file.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/log.ts";
import { emptyOperationsCounters } from "../../src/metrics/relay-metrics.ts";
import { StatePersister } from "../../src/state/persister.ts";
import { countOf } from "../../src/state/rows.ts";
import { StateStore } from "../../src/state/store.ts";
import { setup } from "../sessions/fixtures.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function stateFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-hostile-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "state.db");
}

const NOW = 1_700_000_000_000;
type Cell = string | number | Uint8Array | null;

/**
 * A format-2 file as someone else might write it: the relay's meta, a sessions table with the
 * right columns but without NOT NULL (so NULL ids get in), and `rows` as given, in order.
 */
function hostileFile(path: string, rows: [Cell, Cell, Cell][], extra?: (db: Database) => void): void {
  const db = new Database(path, { create: true });
  db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  db.run(`INSERT INTO meta VALUES ('format_version', '2'), ('saved_at_ms', '${NOW}')`);
  db.run("CREATE TABLE sessions (seq INTEGER PRIMARY KEY, id TEXT, active_at_ms REAL, peers TEXT)");
  const insert = db.prepare("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?, ?, ?)");
  db.transaction(() => {
    for (const row of rows) insert.run(...row);
    extra?.(db);
  })();
  db.close();
}

const peers = (...list: [string, number][]) => JSON.stringify(list.map(([address, port]) => ({ address, port, seenAtMs: NOW })));

function persisterOn(path: string, wall = NOW) {
  const t = setup({ timeoutMs: 300_000 });
  const counters = emptyOperationsCounters();
  const persister = StatePersister.open(path, t.table, createLogger("error"), counters, { wallClock: () => wall, compactSlack: 0 });
  cleanups.push(() => persister.close(false));
  return { ...t, persister, counters };
}

function ids(path: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("SELECT id FROM sessions WHERE peers IS NOT NULL ORDER BY seq").all() as { id: unknown }[]).map((r) => r.id);
  } finally {
    db.close();
  }
}

describe("hostile rows are refused one by one", () => {
  it("wrong types, megabytes of peers, NULL and BLOB ids, an id many times over: counted, the good rows restored", async () => {
    const path = stateFile();
    const good = peers(["10.0.0.1", 1000], ["10.0.0.2", 2000]);
    hostileFile(path, [
      ["good", NOW - 1000, good],
      ["huge-peers", NOW, `[${" ".repeat(10_000_000)}{"address":"10.0.0.3","port":1,"seenAtMs":${NOW}}]`],
      ["nested-peers", NOW, `${"[".repeat(500)}${"]".repeat(500)}`],
      ["peers-number", NOW, 42],
      ["peers-blob", NOW, new Uint8Array(1_000_000)],
      ["peers-strings", NOW, JSON.stringify(["10.0.0.4", 1])],
      ["port-as-text", NOW, JSON.stringify([{ address: "10.0.0.5", port: "1", seenAtMs: NOW }])],
      ["proven-yes", NOW, JSON.stringify([{ address: "10.0.0.6", port: 1, seenAtMs: NOW, proven: "yes" }])],
      ["time-text", "yesterday", peers(["10.0.0.7", 1])],
      ["time-blob", new Uint8Array([1, 2]), peers(["10.0.0.8", 1])],
      ["time-negative", -1, peers(["10.0.0.9", 1])],
      [null, NOW, peers(["10.0.0.10", 1])],
      [new Uint8Array(10_000), NOW, peers(["10.0.0.11", 1])],
      ["z".repeat(1_000_000), NOW, peers(["10.0.0.12", 1])],
      // One id four times: only its newest row counts (a session), the older ones are history.
      ["again", NOW - 10, peers(["10.0.1.1", 1])],
      ["again", NOW - 10, "not json"],
      ["again", -5, peers(["10.0.1.2", 1])],
      ["again", NOW - 20, peers(["10.0.1.3", 1])],
      // Newest row malformed: refused, the good older one is not taken instead.
      ["broken-later", NOW - 10, peers(["10.0.2.1", 1])],
      ["broken-later", NOW - 10, peers(["10.0.2.1", 0])],
      // From the future: counted as just active.
      ["future", 1e300, peers(["10.0.3.1", 1])],
    ]);
    const t = persisterOn(path);
    expect(t.persister.restore()).toBe(3);
    expect(t.persister.malformedRows).toEqual({ "bad-peers": 7, "bad-idle": 3, "bad-id": 2, "long-id": 1, "bad-port": 1 });
    expect(t.table.session("good")?.peers).toHaveLength(2);
    expect(t.table.session("again")?.peers.map((p) => p.endpoint.address)).toEqual(["10.0.1.3"]);
    expect(t.table.session("broken-later")).toBeUndefined();
    expect(t.table.session("future")?.lastActivity).toBe(t.clock.t);
    expect(t.sink.routeFrom("10.0.0.1:1000")).toBe("10.0.0.2:2000");
    // The next save records the refused ids as removed (NULL and BLOB ids cannot be named: they
    // are history to compaction) and compacts down to twice the sessions' rows; a restart
    // restores the same three and finds nothing malformed.
    await t.persister.save();
    expect(t.persister.lastSave).toMatchObject({ written: 0, removed: 12, copied: 3 });
    expect(t.persister.fileRows).toBe(6);
    expect(ids(path)).toEqual(["good", "again", "future"]);
    const again = persisterOn(path);
    expect(again.persister.restore()).toBe(3);
    expect(again.persister.malformedRows).toEqual({});
  });

  it("a sessions table without its INTEGER PRIMARY KEY is not opened at all", () => {
    const path = stateFile();
    const db = new Database(path, { create: true });
    db.run("CREATE TABLE sessions (seq INTEGER, id TEXT, active_at_ms REAL, peers TEXT)");
    db.run("INSERT INTO sessions VALUES (1, 'dup', 1, '[]'), (1, 'dup', 1, '[]')");
    db.close();
    expect(() => StateStore.open(path)).toThrow(/is not a usable quic-relay state file \(table 'sessions' is declared/);
  });
});

describe("a million junk rows", () => {
  it("are counted one by one without a crash, the good row restored, and later saves clear them out", async () => {
    const path = stateFile();
    const JUNK = 1_000_000;
    hostileFile(path, [["good", NOW, peers(["10.0.0.1", 1000], ["10.0.0.2", 2000])]], (db) => {
      const insert = db.prepare("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?, ?, ?)");
      const kinds: ((i: number) => [Cell, Cell, Cell])[] = [
        (i) => [`junk ${i}`, NOW, "[]"],
        (i) => [`junk-${i}`, -i, "[]"],
        (i) => [`junk-${i}`, NOW, `{"address":"10.${i & 255}.0.1"}`],
        (i) => [`junk-${i}`, NOW, peers([`10.${i & 255}.0.1`, 70_000 + i])],
        (i) => [`junk-${i}`, NOW, peers([`host-${i}.example`, 1])],
      ];
      for (let i = 0; i < JUNK; i++) insert.run(...kinds[i % kinds.length]!(i));
    });
    const t = persisterOn(path);
    expect(t.persister.restore()).toBe(1);
    expect(t.persister.malformedRows).toEqual({ "bad-id": JUNK / 5, "bad-idle": JUNK / 5, "bad-peers": JUNK / 5, "bad-port": JUNK / 5, "bad-address": JUNK / 5 });
    expect(countOf(t.persister.malformedRows)).toBe(JUNK);
    expect(t.sink.routeFrom("10.0.0.1:1000")).toBe("10.0.0.2:2000");

    // One save records the junk's removal and drops it (no session needs it): two rows left,
    // the good session's and one removal.
    expect(await t.persister.save()).toBe(true);
    expect(t.persister.lastSave).toMatchObject({ written: 0, removed: JUNK, copied: 1 });
    expect(t.persister.fileRows).toBe(2);
    expect(ids(path)).toEqual(["good"]);
  }, 120_000);
});

describe("row numbers a relay never writes", () => {
  it.each([
    ["zero", 0],
    ["negative", -5],
    ["beyond 2^52", 2 ** 60],
  ])("a row numbered %s makes the file unreadable: set aside, the relay starts empty", async (_name, seq) => {
    const path = stateFile();
    hostileFile(path, [["good", NOW, peers(["10.0.0.1", 1000])]], (db) => {
      db.query("INSERT INTO sessions (seq, id, active_at_ms, peers) VALUES (?, 'odd', ?, ?)").run(seq, NOW, peers(["10.0.0.2", 1]));
    });
    const t = persisterOn(path);
    expect(t.persister.restore()).toBe(0);
    await t.persister.save();
    expect(t.persister.fileRows).toBe(0);
  });
});
