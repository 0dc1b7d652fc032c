import { describe, expect, it } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { ANY_SOCKET } from "../../src/state/rows.ts";
import { StateFileError, StateStore } from "../../src/state/store.ts";
import { setup } from "../sessions/fixtures.ts";

function tempFile(): { path: string; dir: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-store-"));
  return { dir, path: join(dir, "state.db"), done: () => rmSync(dir, { recursive: true, force: true }) };
}

describe("session table export and restore", () => {
  it("round-trips paired and waiting sessions and reinstalls routes", () => {
    const one = setup();
    one.reg("paired", "10.0.0.1:1000");
    one.clock.advance(1000);
    one.reg("paired", "10.0.0.2:2000");
    one.clock.advance(500);
    one.reg("alone", "10.0.0.3:3000");
    one.clock.advance(100);
    const saved = one.table.exportSessions();
    // toMatchObject: peers may carry more than these fields (whether they proved their address).
    expect(saved).toMatchObject([
      { id: "paired", idleMs: 600, peers: [{ address: "10.0.0.1", port: 1000, idleMs: 1600 }, { address: "10.0.0.2", port: 2000, idleMs: 600 }] },
      { id: "alone", idleMs: 100, peers: [{ address: "10.0.0.3", port: 3000, idleMs: 100 }] },
    ]);

    const two = setup();
    expect(two.table.restoreSessions(saved)).toBe(2);
    expect(two.table.sessionCount).toBe(2);
    expect(two.table.pairedCount).toBe(1);
    expect(two.sink.routeFrom("10.0.0.1:1000")).toBe("10.0.0.2:2000");
    expect(two.sink.routeFrom("10.0.0.2:2000")).toBe("10.0.0.1:1000");
    // Data from a restored peer is forwarded; the waiting peer pairs with a newcomer as usual.
    two.sink.take();
    two.data("10.0.0.1:1000", "hello");
    expect(two.sink.take()).toEqual([{ kind: "forward", to: "10.0.0.2:2000", data: "hello" }]);
    two.reg("alone", "10.0.0.4:4000");
    expect(two.sink.routeFrom("10.0.0.4:4000")).toBe("10.0.0.3:3000");
    expect(two.table.exportSessions().map((s) => s.id)).toEqual(["paired", "alone"]);
  });

  it("expires restored sessions on their saved idle time, oldest first", () => {
    const t = setup({ timeoutMs: 10_000 });
    t.table.restoreSessions([
      { id: "fresh", idleMs: 1000, peers: [{ address: "10.0.0.1", port: 1, idleMs: 1000 }] },
      { id: "old", idleMs: 8000, peers: [{ address: "10.0.0.2", port: 2, idleMs: 8000 }] },
    ]);
    t.clock.advance(2500);
    expect(t.table.expire()).toBe(1);
    expect(t.table.session("old")).toBeUndefined();
    expect(t.table.session("fresh")).toBeDefined();
    t.clock.advance(7000);
    expect(t.table.expire()).toBe(1);
    expect(t.table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
  });

  it("skips expired, malformed and colliding snapshots", () => {
    const t = setup({ timeoutMs: 10_000 });
    t.reg("live", "10.0.0.9:9");
    const restored = t.table.restoreSessions([
      { id: "expired", idleMs: 10_000, peers: [{ address: "10.0.0.1", port: 1, idleMs: 10_000 }] },
      { id: "empty", idleMs: 0, peers: [] },
      { id: "three", idleMs: 0, peers: [1, 2, 3].map((port) => ({ address: "10.0.0.2", port, idleMs: 0 })) },
      { id: "same-twice", idleMs: 0, peers: [{ address: "10.0.0.3", port: 3, idleMs: 0 }, { address: "10.0.0.3", port: 3, idleMs: 0 }] },
      { id: "live", idleMs: 0, peers: [{ address: "10.0.0.4", port: 4, idleMs: 0 }] },
      { id: "taken-address", idleMs: 0, peers: [{ address: "10.0.0.9", port: 9, idleMs: 0 }] },
      { id: "ok", idleMs: 0, peers: [{ address: "10.0.0.5", port: 5, idleMs: 0 }] },
    ]);
    expect(restored).toBe(1);
    expect([...t.table.exportSessions().map((s) => s.id)].sort()).toEqual(["live", "ok"]);
  });
});

describe("state file", () => {
  it("saves and loads sessions; a later save replaces the earlier one", () => {
    const f = tempFile();
    try {
      const { store } = StateStore.open(f.path);
      expect(store.load().state).toBeUndefined();
      store.save([{ id: "a", idleMs: 5, peers: [{ address: "::ffff:10.0.0.1", port: 1, idleMs: 5 }] }], 1000);
      store.save([{ id: "b", idleMs: 7, peers: [{ address: "2001:db8::1", port: 2, idleMs: 7 }] }], 2000);
      store.close();
      const { store: again } = StateStore.open(f.path);
      // Read back at the moment of the save: the idle times as they were saved.
      expect(again.load(ANY_SOCKET, 2000).state).toMatchObject({
        savedAtMs: 2000,
        sessions: [{ id: "b", idleMs: 7, peers: [{ address: "2001:db8::1", port: 2, idleMs: 7 }] }],
      });
      again.close();
    } finally {
      f.done();
    }
  });

  it("counts the time since the save as idle time", () => {
    const f = tempFile();
    try {
      const { store } = StateStore.open(f.path);
      store.save([{ id: "a", idleMs: 100, peers: [{ address: "10.0.0.1", port: 1, idleMs: 300 }] }], 10_000);
      expect(store.load(ANY_SOCKET, 12_500).state?.sessions).toEqual([{ id: "a", idleMs: 2600, peers: [{ address: "10.0.0.1", port: 1, idleMs: 2800 }] }]);
      store.close();
    } finally {
      f.done();
    }
  });

  it("refuses a file that is not a database and leaves it as it was", () => {
    const f = tempFile();
    try {
      const garbage = "this is not sqlite, just some text that is long enough to have a header".repeat(20);
      writeFileSync(f.path, garbage);
      expect(() => StateStore.open(f.path)).toThrow(/is not a usable quic-relay state file \(file is not a database\); it was left untouched/);
      expect(readFileSync(f.path, "utf8")).toBe(garbage);
      expect(readdirSync(f.dir)).toEqual(["state.db"]);
    } finally {
      f.done();
    }
  });

  it("sets aside a database of another format version", () => {
    const f = tempFile();
    try {
      const db = new Database(f.path, { create: true });
      db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      db.run("INSERT INTO meta VALUES ('format_version', '99'), ('saved_at_ms', '5')");
      db.close();
      const { store } = StateStore.open(f.path);
      const loaded = store.load();
      expect(loaded.state).toBeUndefined();
      expect(loaded.unreadable?.reason).toBe("format version 99");
      expect(loaded.unreadable?.movedTo).toContain(".unreadable-");
      // The replacement is an empty state file of this version.
      const replacement = store.load();
      expect(replacement).toMatchObject({ state: undefined, malformed: {}, refused: [] });
      expect(replacement.unreadable).toBeUndefined();
      store.close();
    } finally {
      f.done();
    }
  });

  it("fails with StateFileError when the directory does not exist", () => {
    expect(() => StateStore.open("/nonexistent-dir-for-quic-relay/state.db")).toThrow(StateFileError);
  });
});
