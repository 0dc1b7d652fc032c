/**
 * A relay process started on a state file of a million paired sessions (written directly with
 * SQLite, as a relay would have saved them) restores every one on each data plane, and one of
 * them, whose peers are real sockets, forwards both ways without a REG. Its final save writes at
 * most that session. The run takes seconds per plane: a million rows are read, checked and their
 * routes installed at startup.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateStore } from "../../src/state/store.ts";
import { freeUdpPort, RelayProcess } from "../cli/relay-process.ts";
import { bytes, planesUnderTest, type TestPeer, testPeers, text } from "../utils.ts";

const SESSIONS = 1_000_000;

let dir = "";
let template = "";

/** Two peers at `a` and `b`, active at `at`, as the relay writes them. */
const pairJson = (at: number, a: string, pa: number, b: string, pb: number) =>
  `[{"address":"${a}","port":${pa},"seenAtMs":${at},"proven":false},{"address":"${b}","port":${pb},"seenAtMs":${at},"proven":false}]`;

/** A format-2 file of `n` paired sessions at 10.x.y.z:1000 / 11.x.y.z:2000, active a second ago. */
async function writeBigStateFile(path: string, n: number): Promise<void> {
  const { store } = StateStore.open(path);
  await store.close();
  const db = new Database(path);
  const at = Date.now() - 1000;
  const insert = db.prepare("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?, ?, ?)");
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const host = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      insert.run(`million-${i}`, at, pairJson(at, `10.${host}`, 1000, `11.${host}`, 2000));
    }
    db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('saved_at_ms', ?)", [String(at)]);
  })();
  db.close();
}

/** Adds a session between the sockets `a` and `b`, active now. */
function addPair(path: string, id: string, a: TestPeer, b: TestPeer): void {
  const db = new Database(path);
  const at = Date.now();
  db.query("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?, ?, ?)").run(id, at, pairJson(at, a.host, a.port, b.host, b.port));
  db.close();
}

function rowCount(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("SELECT count(*) AS n FROM sessions").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Sends until `payload` arrives (the relay may still be binding); fails after a few seconds. */
async function delivered(from: TestPeer, to: TestPeer, port: number, payload: string): Promise<void> {
  for (let i = 0; i < 25; i++) {
    from.send(bytes(payload), port);
    const got = await to.next(200).catch(() => undefined);
    if (got) return expect(text(got.data)).toBe(payload);
  }
  throw new Error(`'${payload}' never arrived`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "quic-relay-million-"));
  template = join(dir, "template.db");
  await writeBigStateFile(template, SESSIONS);
}, 60_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each(planesUnderTest())("a restart from a state file of a million sessions (%s plane)", (plane) => {
  const open = testPeers();
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0)) f();
  });

  it("restores all of them; a restored pair forwards both ways; the final save writes only what changed", async () => {
    const stateFile = join(dir, `${plane}.db`);
    copyFileSync(template, stateFile);
    const [a, b] = (await Promise.all(["127.0.0.2", "127.0.0.3"].map(open))) as [TestPeer, TestPeer];
    addPair(stateFile, "real-peers", a, b);
    const port = await freeUdpPort();
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(port), "--dataplane", plane, "--workers", "1", "--state-file", stateFile]);
    cleanup.push(() => relay.kill());
    await relay.waitFor("quic-relay listening", 150_000);
    expect(relay.output()).toContain(`restored=${SESSIONS + 1} skipped=0 malformed=0`);

    await delivered(a, b, port, `a->b after a restart with a million sessions (${plane})`);
    await delivered(b, a, port, `b->a after a restart with a million sessions (${plane})`);

    expect((await relay.signal("SIGTERM")).code).toBe(0);
    expect(relay.output()).toContain(`state saved file=${stateFile} sessions=${SESSIONS + 1}`);
    // At most one row appended, for the session that carried traffic (the native plane reports
    // its routes' activity at the next sweep, which a quick SIGTERM may come before); nothing else.
    expect(rowCount(stateFile)).toBeGreaterThanOrEqual(SESSIONS + 1);
    expect(rowCount(stateFile)).toBeLessThanOrEqual(SESSIONS + 2);
    rmSync(stateFile, { force: true });
  }, 180_000);
});
