/**
 * A state file that cannot hurt the relay: malformed rows are skipped and counted on both data
 * planes (through the CLI, and in-process with the socket and fleet membership known), a file that
 * is no state file stops startup with one line and is left as it was, and the file is private.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS, dataPlaneOptions, type RelayConfig } from "../../src/config/config.ts";
import type { DataPlaneKind } from "../../src/dataplane/types.ts";
import { createDataPlane } from "../../src/dataplane/select.ts";
import { BridgeCodec } from "../../src/fleet/bridge-codec.ts";
import { type Fleet, prepareFleet } from "../../src/fleet/fleet.ts";
import { createLogger } from "../../src/log.ts";
import { emptyOperationsCounters } from "../../src/metrics/relay-metrics.ts";
import { Relay } from "../../src/relay.ts";
import type { SessionSnapshot } from "../../src/sessions/table.ts";
import { StatePersister } from "../../src/state/persister.ts";
import { StateStore } from "../../src/state/store.ts";
import { RelayProcess, freeUdpPort } from "../cli/relay-process.ts";
import { bytes, planesUnderTest, TestPeer, testPeers, text } from "../utils.ts";

type Cell = string | number | Uint8Array | null;
/** A row as stored: id, active_at_ms (given as milliseconds before now), peers (JSON text unless given otherwise). */
type RawRow = [Cell, Cell, Cell];

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-validation-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A real state file: the good sessions saved by the store, then raw rows inserted as they are (a
 * numeric time is taken as milliseconds before now, anything else is stored as it is).
 */
function writeStateFile(path: string, good: SessionSnapshot[], raw: RawRow[]): void {
  const { store } = StateStore.open(path);
  store.save(good);
  store.close();
  const db = new Database(path);
  const insert = db.prepare("INSERT INTO sessions (id, active_at_ms, peers) VALUES (?, ?, ?)");
  const now = Date.now();
  for (const [id, before, peers] of raw) insert.run(id, typeof before === "number" && before >= 0 ? now - before : before, peers);
  // A non-finite REAL can only be written as a literal.
  db.run(`INSERT INTO sessions (id, active_at_ms, peers) VALUES ('infinite-idle', 9e999, '${pair(6001)}')`);
  db.close();
}

const pair = (port: number, host = "127.0.0.9") => JSON.stringify([{ address: host, port, seenAtMs: Date.now() }, { address: host, port: port + 1, seenAtMs: Date.now() }]);
const peersOf = (...list: [string, number][]) => JSON.stringify(list.map(([address, port]) => ({ address, port, seenAtMs: Date.now() })));

/** Every malformed kind whose verdict needs nothing about the socket; paired, so routes would be installed. */
const MALFORMED: RawRow[] = [
  ["peers-object", 1, JSON.stringify({ address: "127.0.0.9", port: 5001, idleMs: 1 })],
  ["peers-not-json", 1, "[{address: 127.0.0.9"],
  ["peers-blob", 1, new Uint8Array([0x5b, 0x5d])],
  ["not-an-ip", 1, peersOf(["relay.example", 5011], ["127.0.0.9", 5012])],
  ["port-70000", 1, peersOf(["127.0.0.9", 70_000], ["127.0.0.9", 5021])],
  ["port-minus-1", 1, peersOf(["127.0.0.9", -1], ["127.0.0.9", 5022])],
  ["port-0", 1, peersOf(["127.0.0.9", 0], ["127.0.0.9", 5023])],
  ["port-1.5", 1, peersOf(["127.0.0.9", 1.5], ["127.0.0.9", 5024])],
  ["negative-idle", -5, pair(5031)],
  ["text-idle", "abc", pair(5033)],
  ["", 1, pair(5041)],
  ["x".repeat(129), 1, pair(5043)],
  ["y".repeat(10_240), 1, pair(5045)],
  ["bell\u0007id", 1, pair(5047)],
  [new Uint8Array([0x61, 0x62]), 1, pair(5049)],
  ["same-address-twice", 1, peersOf(["127.0.0.9", 5061], ["127.0.0.9", 5061])],
  ["three-peers", 1, peersOf(["127.0.0.9", 5071], ["127.0.0.9", 5072], ["127.0.0.9", 5073])],
  ["no-peers", 1, "[]"],
];
const MALFORMED_COUNTS = {
  "bad-peers": 3,
  "bad-address": 1,
  "bad-port": 4,
  "bad-idle": 3, // with the infinite one writeStateFile adds
  "empty-id": 1,
  "long-id": 2,
  "bad-id": 2, // a NULL id is kept out by the schema (NOT NULL); hostile-file.test.ts has one anyway
  "duplicate-peer": 1,
  "peer-count": 2,
};
/** Verdicts that need the socket (IPv4 here) and fleet membership (none). */
const NEEDS_CONTEXT: RawRow[] = [
  ["ipv6-on-ipv4", 1, peersOf(["127.0.0.9", 5081], ["2001:db8::1", 5082])],
  ["fleet-peer-without-fleet", 1, peersOf(["127.0.0.9", 5091], ["fleet:127.0.0.14:4433", 1])],
];

function snapshot(id: string, ...peers: (TestPeer | { address: string; port: number })[]): SessionSnapshot {
  return { id, idleMs: 10, peers: peers.map((p) => ({ address: "host" in p ? p.host : p.address, port: p.port, idleMs: 10 })) };
}

/** Sends until `payload` arrives (the relay may still be binding); fails after a few seconds. */
async function delivered(from: TestPeer, to: TestPeer, port: number, payload: string, host = "127.0.0.1"): Promise<void> {
  for (let i = 0; i < 20; i++) {
    from.send(bytes(payload), port, host);
    const got = await to.next(200).catch(() => undefined);
    if (got) return expect(text(got.data)).toBe(payload);
  }
  throw new Error(`'${payload}' never arrived`);
}

/** The counts of the one "rows skipped as malformed" warning (pretty log format). */
function skippedReasons(output: string): Record<string, number> {
  const m = /state file rows skipped as malformed .*reasons=(\{[^}]*\})/.exec(output);
  if (!m) throw new Error(`no malformed-rows warning in:\n${output}`);
  return JSON.parse(m[1]!) as Record<string, number>;
}

describe.each(planesUnderTest())("malformed state-file rows through the CLI (%s plane)", (plane) => {
  const open = testPeers();

  it("restores the good rows, skips and counts the bad ones in one warning, and does not crash", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    const [a, b, c, d] = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"].map(open));
    writeStateFile(stateFile, [snapshot("good-paired", a!, b!), snapshot("good-waiting", c!)], [...MALFORMED, ...NEEDS_CONTEXT]);
    const port = await freeUdpPort();
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(port), "--dataplane", plane, "--workers", "1", "--state-file", stateFile]);
    cleanups.push(() => relay.kill());
    await relay.waitFor("listening");

    await delivered(a!, b!, port, "a->b after restart");
    await delivered(b!, a!, port, "b->a after restart");
    // The waiting session pairs with a newcomer as usual.
    d!.send("REG:good-waiting\n", port);
    expect(await d!.nextText()).toBe("ACK\n");
    await delivered(d!, c!, port, "d->c");

    const output = relay.output();
    expect(relay.count("state file rows skipped as malformed")).toBe(1);
    expect(skippedReasons(output)).toMatchObject(MALFORMED_COUNTS);
    expect(output).toMatch(/sessions restored from state file .*restored=\d+ skipped=\d+ malformed=\d+/);
    expect(output).not.toContain("TypeError");
    expect(output).not.toContain("internal error");
    expect((await relay.signal("SIGTERM")).code).toBe(0);
  });
});

describe.each(planesUnderTest())("malformed rows restored in-process, socket and fleet known (%s plane)", (kind: DataPlaneKind) => {
  const open = testPeers();
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  /** The relay as RelayService assembles it: plane (in a fleet plane), relay, persister, start, restore. */
  async function startWithState(host: string, stateFile: string, fleet?: { remote: TestPeer; secret: string }) {
    const config: RelayConfig = { ...DEFAULTS, host, port: 0, logLevel: "error", workers: 1 };
    const logger = createLogger("error");
    const { plane } = createDataPlane(kind, dataPlaneOptions(config));
    let member: Fleet | undefined;
    if (fleet) {
      const advertise = "127.0.0.1:9";
      const options = { redisUrl: "redis://127.0.0.1:1", advertise, advertiseEndpoint: { address: "127.0.0.1", port: 9 }, secrets: [fleet.secret], prefix: "t", heartbeatMs: 200, replayWindowMs: 30_000 };
      member = prepareFleet(plane, options, config.maxDatagramSize, logger);
    }
    const relay = new Relay({ config, plane, logger, remote: member?.bridge });
    const persister = StatePersister.open(stateFile, relay.table, logger, emptyOperationsCounters());
    await relay.start();
    stop = async () => {
      await member?.stop();
      await relay.stop();
      persister.close(false);
    };
    const restored = persister.restore({ socket: relay.local, fleet: member !== undefined });
    await member?.start(relay);
    return { relay, persister, restored, port: relay.local.port };
  }

  it("IPv4 socket: IPv6 and fleet peers are refused, an IPv4-mapped peer comes back in plain form", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    const [a, b] = await Promise.all(["127.0.0.2", "127.0.0.3"].map(open));
    const mapped = { address: `::ffff:${a!.host}`, port: a!.port };
    writeStateFile(stateFile, [snapshot("good-mapped", mapped, b!)], [...MALFORMED, ...NEEDS_CONTEXT]);
    const { persister, restored, port, relay } = await startWithState("127.0.0.1", stateFile);
    expect(restored).toBe(1);
    expect(persister.malformedRows).toEqual({ ...MALFORMED_COUNTS, "wrong-family": 1, "virtual-peer": 1 });
    expect(relay.table.peerAt({ address: a!.host, port: a!.port })?.session.id).toBe("good-mapped");
    await delivered(a!, b!, port, "a->b");
    await delivered(b!, a!, port, "b->a");
  });

  it("dual-stack socket: IPv4 peers come back as ::ffff:a.b.c.d, IPv6 peers as they are", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    const [a, b, c, d] = await Promise.all(["127.0.0.2", "127.0.0.3", "::1", "::1"].map(open));
    writeStateFile(stateFile, [snapshot("plain-v4", a!, b!), snapshot("v6", c!, d!)], MALFORMED);
    const { persister, restored, port, relay } = await startWithState("::", stateFile);
    expect(restored).toBe(2);
    expect(persister.malformedRows).toEqual(MALFORMED_COUNTS);
    expect(relay.table.session("plain-v4")?.peers.map((p) => p.endpoint.address)).toEqual(["::ffff:127.0.0.2", "::ffff:127.0.0.3"]);
    await delivered(a!, b!, port, "a->b over v4");
    await delivered(b!, a!, port, "b->a over v4");
    await delivered(c!, d!, port, "c->d over v6", "::1");
    await delivered(d!, c!, port, "d->c over v6", "::1");
  });

  it("fleet member: a bridged session's virtual peer comes back and the bridge resumes; malformed ones are refused", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    const [remote, local] = await Promise.all(["127.0.0.14", "127.0.0.2"].map(open));
    const relayId = `${remote!.host}:${remote!.port}`;
    const bridged = { id: "bridged", idleMs: 10, peers: [{ address: local!.host, port: local!.port, idleMs: 10 }, { address: `fleet:${relayId}`, port: 7, idleMs: 10 }] };
    writeStateFile(stateFile, [bridged], [
      ["fleet-bad-relay", 1, peersOf(["127.0.0.9", 5101], ["fleet:relay.example:4433", 8])],
      ["fleet-v6-relay", 1, peersOf(["127.0.0.9", 5103], ["fleet:[2001:db8::9]:4433", 9])],
      ["fleet-port-taken", 1, peersOf(["127.0.0.9", 5105], [`fleet:${relayId}`, 7])],
    ]);
    const secret = "in-process-fleet-secret-0123";
    const { persister, restored, port } = await startWithState("127.0.0.1", stateFile, { remote: remote!, secret });
    expect(restored).toBe(1);
    expect(persister.malformedRows).toEqual({ "virtual-peer": 2, "wrong-family": 1, "bad-idle": 1 });
    local!.send("to the remote peer", port);
    const wrapped = await remote!.next();
    const decoded = new BridgeCodec({ self: relayId, secrets: [secret] }).decode("127.0.0.1:9", wrapped.data);
    expect(decoded.ok && decoded.frame.sessionId).toBe("bridged");
    expect(decoded.ok && text(decoded.frame.payload)).toBe("to the remote peer");
  });
});

describe("a file that is not a state file stops startup with one line and is left as it was", () => {
  async function startupFails(stateFile: string): Promise<string[]> {
    const port = await freeUdpPort();
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(port), "--dataplane", "ts", "--state-file", stateFile]);
    cleanups.push(() => relay.kill());
    expect(await relay.exited()).toBe(1);
    return relay.lines();
  }

  it("not SQLite at all", async () => {
    const dir = tempDir();
    const stateFile = join(dir, "sessions.db");
    const garbage = "#!/bin/sh\necho this is not a database\n".repeat(50);
    writeFileSync(stateFile, garbage);
    expect(await startupFails(stateFile)).toEqual([
      `quic-relay: ${stateFile} is not a usable quic-relay state file (file is not a database); it was left untouched: move it away or choose another --state-file`,
    ]);
    expect(readFileSync(stateFile, "utf8")).toBe(garbage);
    expect(readdirSync(dir)).toEqual(["sessions.db"]);
  });

  it("another application's SQLite database", async () => {
    const dir = tempDir();
    const stateFile = join(dir, "app.db");
    const db = new Database(stateFile);
    db.run("CREATE TABLE users (name TEXT, password TEXT)");
    db.run("INSERT INTO users VALUES ('alice', 'x')");
    db.close();
    const before = readFileSync(stateFile);
    const lines = await startupFails(stateFile);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(`quic-relay: ${stateFile} is not a usable quic-relay state file (unknown table "users"); it was left untouched: move it away or choose another --state-file`);
    expect(readFileSync(stateFile).equals(before)).toBe(true);
  });

  it("the right tables with the wrong columns", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    const db = new Database(stateFile);
    db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db.run("CREATE TABLE sessions (id TEXT PRIMARY KEY, peers TEXT)");
    db.close();
    const lines = await startupFails(stateFile);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("table 'sessions' has columns (id,peers), expected (seq,id,active_at_ms,peers)");
  });
});

describe("the state file is private to the relay", () => {
  const modeOf = (path: string) => statSync(path).mode & 0o777;

  it("is created 0600 whatever the umask, and stays so across saves", () => {
    const path = join(tempDir(), "sessions.db");
    const umask = process.umask(0);
    try {
      const { store, modes } = StateStore.open(path);
      expect(modes).toEqual([]);
      expect(modeOf(path)).toBe(0o600);
      store.save([{ id: "s", idleMs: 1, peers: [{ address: "127.0.0.2", port: 1, idleMs: 1 }] }]);
      store.close();
      expect(modeOf(path)).toBe(0o600);
      expect(readdirSync(join(path, "..")).filter((n) => n !== "sessions.db")).toEqual([]);
    } finally {
      process.umask(umask);
    }
  });

  it("a file of another format version is set aside, and its replacement is 0600", () => {
    const path = join(tempDir(), "sessions.db");
    const db = new Database(path);
    db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db.run("INSERT INTO meta VALUES ('format_version', '3'), ('saved_at_ms', '5')");
    db.close();
    chmodSync(path, 0o644);
    const { store } = StateStore.open(path);
    const { unreadable } = store.load();
    store.close();
    expect(unreadable?.reason).toBe("format version 3");
    expect(modeOf(unreadable!.movedTo!)).toBe(0o600);
    expect(modeOf(path)).toBe(0o600);
  });

  it("an existing file open to others is restricted to 0600, with a warning (CLI)", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    writeStateFile(stateFile, [], []);
    chmodSync(stateFile, 0o644);
    const port = await freeUdpPort();
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(port), "--dataplane", "ts", "--state-file", stateFile]);
    cleanups.push(() => relay.kill());
    await relay.waitFor("listening");
    expect(modeOf(stateFile)).toBe(0o600);
    expect(relay.output()).toMatch(/WARN +state file was open to other users; restricted to 0600 .*was=0644/);
    expect((await relay.signal("SIGTERM")).code).toBe(0);
    expect(modeOf(stateFile)).toBe(0o600);
  });

  it.skipIf(process.geteuid?.() !== 0)("a file another user owns is left as it is, with a warning that others can read it (CLI, as root)", async () => {
    const stateFile = join(tempDir(), "sessions.db");
    writeStateFile(stateFile, [], []);
    chmodSync(stateFile, 0o644);
    chownSync(stateFile, 65_534, 65_534);
    const port = await freeUdpPort();
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(port), "--dataplane", "ts", "--state-file", stateFile]);
    cleanups.push(() => relay.kill());
    await relay.waitFor("listening");
    expect(modeOf(stateFile)).toBe(0o644);
    expect(relay.output()).toMatch(/WARN +state file is open to other users and could not be restricted.* mode=0644 reason=owned by uid 65534/);
    expect((await relay.signal("SIGTERM")).code).toBe(0);
    expect(existsSync(stateFile)).toBe(true);
  });
});
