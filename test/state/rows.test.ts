/** The rules a state-file row must meet to be restored (src/state/rows.ts): pure, no file, no socket. */
import { describe, expect, it } from "bun:test";
import { isIP } from "node:net";
import { parseReg } from "../../src/protocol/reg.ts";
import { checkRow, checkRows, idleTimes, instantTimes, MAX_PEERS_TEXT, RowChecker, type RowRules, rowRules, socketFamily, type StoredRow } from "../../src/state/rows.ts";
import { type ModeFs, restrictToOwner } from "../../src/state/file-mode.ts";

const V4: RowRules = { family: "ipv4", virtualPeers: false };
const DUAL: RowRules = { family: "dual", virtualPeers: false };
const V6: RowRules = { family: "ipv6", virtualPeers: false };
const FLEET_V4: RowRules = { family: "ipv4", virtualPeers: true };

/** A format-1 row (idle times as stored: checkRow's default reading). */
function row(peers: unknown, id: unknown = "s", idle: unknown = 5): StoredRow {
  return { id, time: idle, peers: typeof peers === "string" ? peers : JSON.stringify(peers) };
}
const peer = (address: string, port = 4000, idleMs = 5) => ({ address, port, idleMs });

describe("socket family", () => {
  it.each([
    ["0.0.0.0", "ipv4"],
    ["127.0.0.1", "ipv4"],
    ["::", "dual"],
    ["0:0:0:0:0:0:0:0", "dual"],
    ["::ffff:127.0.0.1", "dual"],
    ["::1", "ipv6"],
    ["2001:db8::7", "ipv6"],
    ["localhost", "unknown"],
  ])("a socket bound to %s is %s", (address, family) => {
    expect(socketFamily({ address, port: 1 })).toBe(family as never);
  });

  it("without a context every family is accepted as written and fleet peers are kept", () => {
    expect(rowRules(undefined)).toEqual({ family: "unknown", virtualPeers: true });
    expect(rowRules({ socket: { address: "127.0.0.1", port: 5 }, fleet: false })).toEqual(V4);
  });
});

describe("a row is restored only as a live REG could have made it", () => {
  it.each([
    ["empty id", row([peer("10.0.0.1")], ""), "empty-id"],
    ["129-byte id", row([peer("10.0.0.1")], "x".repeat(129)), "long-id"],
    ["10 kB id", row([peer("10.0.0.1")], "x".repeat(10_240)), "long-id"],
    ["id with a control character", row([peer("10.0.0.1")], "a\u0001b"), "bad-id"],
    ["id with a space", row([peer("10.0.0.1")], "a b"), "bad-id"],
    ["id ending in a line feed (a REG strips it)", row([peer("10.0.0.1")], "abc\n"), "bad-id"],
    ["id ending in a cookie (a REG takes it off)", row([peer("10.0.0.1")], `abc ${"A".repeat(43)}`), "bad-id"],
    ["non-ASCII id", row([peer("10.0.0.1")], "caf\u00e9"), "bad-id"],
    ["id stored as a BLOB", row([peer("10.0.0.1")], new Uint8Array([0x61])), "bad-id"],
    ["id NULL", row([peer("10.0.0.1")], null), "bad-id"],
    ["negative idle", row([peer("10.0.0.1")], "s", -1), "bad-idle"],
    ["infinite idle", row([peer("10.0.0.1")], "s", Infinity), "bad-idle"],
    ["idle stored as text", row([peer("10.0.0.1")], "s", "abc"), "bad-idle"],
    ["peer with negative idle", row([peer("10.0.0.1", 4000, -3)]), "bad-idle"],
    ["peers not JSON", row("{not json"), "bad-peers"],
    ["peers an object, not an array", row({ address: "10.0.0.1", port: 1 }), "bad-peers"],
    ["peers stored as a BLOB", { id: "s", time: 1, peers: new Uint8Array([0x5b, 0x5d]) }, "bad-peers"],
    ["peers longer than MAX_PEERS_TEXT", row(JSON.stringify([peer("10.0.0.1")]) + " ".repeat(MAX_PEERS_TEXT)), "bad-peers"],
    ["peers of 10 MB", row(`[${" ".repeat(10_000_000)}]`), "bad-peers"],
    ["peer port as a string", row([{ address: "10.0.0.1", port: "4000", idleMs: 1 }]), "bad-peers"],
    ["peer without an address", row([{ port: 4000, idleMs: 1 }]), "bad-peers"],
    ["peer that is a number", row([7]), "bad-peers"],
    ["proven not a boolean", row([{ ...peer("10.0.0.1"), proven: "yes" }]), "bad-peers"],
    ["no peer", row([]), "peer-count"],
    ["three peers", row([peer("10.0.0.1", 1), peer("10.0.0.1", 2), peer("10.0.0.1", 3)]), "peer-count"],
    ["address not an IP", row([peer("relay.example.com")]), "bad-address"],
    ["address empty", row([peer("")]), "bad-address"],
    ["port 70000", row([peer("10.0.0.1", 70_000)]), "bad-port"],
    ["port -1", row([peer("10.0.0.1", -1)]), "bad-port"],
    ["port 0", row([peer("10.0.0.1", 0)]), "bad-port"],
    ["port 1.5", row([peer("10.0.0.1", 1.5)]), "bad-port"],
    ["IPv6 peer on an IPv4 socket", row([peer("2001:db8::1")]), "wrong-family"],
    ["same address twice", row([peer("10.0.0.1"), peer("10.0.0.1")]), "duplicate-peer"],
    ["same address twice, once IPv4-mapped", row([peer("10.0.0.1"), peer("::ffff:10.0.0.1")]), "duplicate-peer"],
    ["fleet peer on a relay outside a fleet", row([peer("10.0.0.1"), peer("fleet:10.0.0.9:4433", 1)]), "virtual-peer"],
  ])("%s: %s", (_name, stored, problem) => {
    expect(checkRow(stored as StoredRow, V4)).toBe(problem as never);
  });

  it("IPv4 peers: plain on an IPv4 socket, ::ffff: on a dual-stack one, whichever form was stored", () => {
    for (const stored of ["10.0.0.1", "::ffff:10.0.0.1", "::FFFF:10.0.0.1"]) {
      expect(checkRow(row([peer(stored)]), V4)).toEqual({ id: "s", idleMs: 5, peers: [peer("10.0.0.1")] });
      expect(checkRow(row([peer(stored)]), DUAL)).toEqual({ id: "s", idleMs: 5, peers: [peer("::ffff:10.0.0.1")] });
      expect(checkRow(row([peer(stored)]), V6)).toBe("wrong-family");
    }
    expect(checkRow(row([peer("2001:DB8::1")]), DUAL)).toEqual({ id: "s", idleMs: 5, peers: [peer("2001:db8::1")] });
    expect(checkRow(row([peer("2001:db8::1")]), V6)).toEqual({ id: "s", idleMs: 5, peers: [peer("2001:db8::1")] });
  });

  it("keeps what a live relay writes: ids up to 128 printable bytes, two peers on one host, proven flags", () => {
    const id = "!~".repeat(64);
    const stored = row([{ ...peer("10.0.0.1", 1), proven: true }, peer("10.0.0.1", 2)], id, 0);
    expect(checkRow(stored, V4)).toEqual({ id, idleMs: 0, peers: [{ ...peer("10.0.0.1", 1), proven: true }, peer("10.0.0.1", 2)] });
  });

  it("fleet members keep bridged sessions' virtual peers, and check their shape", () => {
    const bridged = row([peer("10.0.0.1"), peer("fleet:10.0.0.9:4433", 7)]);
    expect(checkRow(bridged, FLEET_V4)).toEqual({ id: "s", idleMs: 5, peers: [peer("10.0.0.1"), peer("fleet:10.0.0.9:4433", 7)] });
    // A bridged session whose local peer left keeps its virtual peer alone.
    expect(checkRow(row([peer("fleet:10.0.0.9:4433", 7)]), FLEET_V4)).not.toBeString();
    expect(checkRow(row([peer("10.0.0.1"), peer("fleet:[2001:db8::9]:4433", 7)]), { family: "dual", virtualPeers: true })).not.toBeString();
    // Virtual ports are the bridge's link numbers: any positive integer, not bounded by 65535.
    expect(checkRow(row([peer("fleet:10.0.0.9:4433", 70_000)]), FLEET_V4)).not.toBeString();
    for (const [address, port] of [
      ["fleet:", 7],
      ["fleet:relay.example.com:4433", 7],
      ["fleet:10.0.0.9", 7],
      ["fleet:10.0.0.9:0", 7],
      ["fleet:10.0.0.9:4433", 0],
      ["fleet:10.0.0.9:4433", 2.5],
    ] as const) {
      expect(checkRow(row([peer("10.0.0.1"), peer(address, port)]), FLEET_V4)).toBe("virtual-peer");
    }
    expect(checkRow(row([peer("fleet:10.0.0.9:4433", 1), peer("fleet:10.0.0.8:4433", 2)]), FLEET_V4)).toBe("virtual-peer");
    expect(checkRow(row([peer("10.0.0.1"), peer("fleet:[2001:db8::9]:4433", 7)]), FLEET_V4)).toBe("wrong-family");
  });

  it("counts rows by problem; a virtual port already taken by an earlier row is refused", () => {
    const { sessions, malformed } = checkRows(
      [
        row([peer("10.0.0.1")], "good"),
        row([peer("10.0.0.2", 70_000)], "port"),
        row([peer("10.0.0.3", -1)], "port-2"),
        row([peer("10.0.0.4")], ""),
        row([peer("10.0.0.5"), peer("fleet:10.0.0.9:4433", 3)], "bridged"),
        row([peer("10.0.0.6"), peer("fleet:10.0.0.8:4433", 3)], "same-link-port"),
      ],
      FLEET_V4,
    );
    expect(sessions.map((s) => s.id)).toEqual(["good", "bridged"]);
    expect(malformed).toEqual({ "bad-port": 2, "empty-id": 1, "virtual-peer": 1 });
  });
});

describe("times: format 1 idle times, format 2 instants", () => {
  const NOW = 1_700_000_000_000;
  const v2 = (activeAt: unknown, seenAt: unknown[], id = "s"): StoredRow => ({
    id,
    time: activeAt,
    peers: JSON.stringify(seenAt.map((t, i) => ({ address: "10.0.0.1", port: 1000 + i, seenAtMs: t }))),
  });

  it("format 2: idle = now - instant; an instant in the future counts as idle 0", () => {
    expect(checkRow(v2(NOW - 4000, [NOW - 5000, NOW - 4000]), V4, instantTimes(NOW))).toEqual({
      id: "s",
      idleMs: 4000,
      peers: [
        { address: "10.0.0.1", port: 1000, idleMs: 5000 },
        { address: "10.0.0.1", port: 1001, idleMs: 4000 },
      ],
    });
    expect(checkRow(v2(NOW + 60_000, [NOW + 1]), V4, instantTimes(NOW))).toMatchObject({ idleMs: 0, peers: [{ idleMs: 0 }] });
  });

  it("format 2: an instant that is not a finite number >= 0 is bad-idle, a peer with idleMs instead of seenAtMs bad-peers", () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, "1700000000000", null]) {
      expect(checkRow(v2(bad, [NOW]), V4, instantTimes(NOW))).toBe("bad-idle");
      // JSON has no NaN or Infinity (they are written as null): only -1 reaches the peer as a number.
      expect(checkRow(v2(NOW, [bad]), V4, instantTimes(NOW))).toBe(bad === -1 ? "bad-idle" : "bad-peers");
    }
    expect(checkRow(row([peer("10.0.0.1")], "s", NOW), V4, instantTimes(NOW))).toBe("bad-peers");
  });

  it("format 1: idle times as saved plus the downtime", () => {
    expect(checkRow(row([peer("10.0.0.1", 4000, 300)], "s", 100), V4, idleTimes(2500))).toEqual({ id: "s", idleMs: 2600, peers: [peer("10.0.0.1", 4000, 2800)] });
    expect(checkRow(row([{ address: "10.0.0.1", port: 1, seenAtMs: 5 }]), V4, idleTimes(0))).toBe("bad-peers");
  });

  it("RowChecker counts what it refuses across rows", () => {
    const checker = new RowChecker(V4, instantTimes(NOW));
    expect(checker.check(v2(NOW, [NOW]))).toBeDefined();
    expect(checker.check(v2(NOW, [NOW], ""))).toBeUndefined();
    expect(checker.check(v2(-5, [NOW]))).toBeUndefined();
    expect(checker.malformed).toEqual({ "empty-id": 1, "bad-idle": 1 });
  });
});

describe("fast paths agree with the REG parser and node:net", () => {
  const encoder = new TextEncoder();

  it("an id is accepted exactly when a REG carrying it registers that id", () => {
    const ids = ["a", "x".repeat(128), "x".repeat(129), "a b", "a\tb", "abc\r", "\u00e9", "", "~!", "A".repeat(43), `x ${"A".repeat(43)}`];
    for (let c = 0; c < 0x100; c++) ids.push(String.fromCharCode(c), `id${String.fromCharCode(c)}`, `${String.fromCharCode(c)}id`);
    for (const id of ids) {
      const reg = parseReg(encoder.encode(`REG:${id}`));
      const registers = reg.ok && reg.sessionId === id && reg.cookie === undefined;
      expect({ id, accepted: typeof checkRow(row([peer("10.0.0.1")], id), V4) !== "string" }).toEqual({ id, accepted: registers });
    }
  });

  it("an IPv4 peer address is accepted exactly when node:net says it is one", () => {
    const addresses = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", "1..2.3", "a.b.c.d", "99.199.249.255"];
    for (const address of addresses) {
      const accepted = typeof checkRow(row([peer(address)]), V4) !== "string";
      expect({ address, accepted }).toEqual({ address, accepted: isIP(address) === 4 });
    }
  });
});

describe("state file permissions", () => {
  function fakeFs(files: Record<string, { mode: number; uid: number }>, euid: number, chmodError?: string) {
    const changed: [string, number][] = [];
    const fs: ModeFs = {
      stat: (path) => files[path],
      chmod(path, mode) {
        if (chmodError) throw new Error(chmodError);
        changed.push([path, mode]);
      },
      euid,
    };
    return { fs, changed };
  }

  it("restricts an owned file and its side files open to group or others, and leaves private ones alone", () => {
    const { fs, changed } = fakeFs(
      { "/s.db": { mode: 0o100644, uid: 7 }, "/s.db-journal": { mode: 0o100640, uid: 7 }, "/s.db-wal": { mode: 0o100600, uid: 7 } },
      7,
    );
    expect(restrictToOwner("/s.db", fs)).toEqual([
      { file: "/s.db", restricted: true, was: "0644" },
      { file: "/s.db-journal", restricted: true, was: "0640" },
    ]);
    expect(changed).toEqual([
      ["/s.db", 0o600],
      ["/s.db-journal", 0o600],
    ]);
  });

  it("does not change a file someone else owns, and says why it stays readable", () => {
    const { fs, changed } = fakeFs({ "/s.db": { mode: 0o100644, uid: 1000 } }, 0);
    expect(restrictToOwner("/s.db", fs)).toEqual([
      { file: "/s.db", restricted: false, mode: "0644", reason: "owned by uid 1000, not by this relay (uid 0)" },
    ]);
    expect(changed).toEqual([]);
  });

  it("reports a failed chmod", () => {
    const { fs } = fakeFs({ "/s.db": { mode: 0o100604, uid: 7 } }, 7, "EROFS: read-only file system");
    expect(restrictToOwner("/s.db", fs)).toEqual([{ file: "/s.db", restricted: false, mode: "0604", reason: "EROFS: read-only file system" }]);
  });
});
