import { describe, expect, it } from "bun:test";
import { sessionCaps } from "../../src/security/limits.ts";
import { createRegPolicy } from "../../src/security/policy.ts";
import { mintToken } from "../../src/security/token.ts";
import { at, setup } from "../sessions/fixtures.ts";

const SECRET = new TextEncoder().encode("policy-test-secret-0123");
const base = { secrets: [], maxSessions: 1000, maxSessionsPerHost: 1000, regRate: 0, regBurst: 1 };

describe("session caps (admission)", () => {
  it("refuses new sessions over max sessions with ERR limit, and only new ones", () => {
    const { table, reg, sink } = setup({}, sessionCaps({ maxSessions: 2, maxSessionsPerHost: 100 }));
    reg("s1", "10.0.0.1:1");
    reg("s2", "10.0.0.2:1");
    sink.take();
    reg("session-3", "10.0.0.3:1");
    expect(sink.take()).toEqual([{ kind: "reply", to: "10.0.0.3:1", data: "ERR limit\n" }]);
    expect(table.sessionCount).toBe(2);
    expect(table.stats.refusals.limit).toBe(1);
    // Joining, re-REG and rebinding still work at the cap.
    reg("s1", "10.0.0.9:1");
    reg("s1", "10.0.0.9:1");
    reg("s1", "10.0.0.9:2");
    expect(sink.take().filter((e) => e.kind === "reply").map((e) => (e as { data: string }).data)).toEqual(["ACK\n", "ACK\n", "ACK\n"]);
    expect(table.session("s1")!.peers.map((p) => p.endpoint.port)).toEqual([1, 2]);
  });

  it("refuses a new session from a host that already has max peers", () => {
    const { table, reg, sink } = setup({}, sessionCaps({ maxSessions: 100, maxSessionsPerHost: 2 }));
    reg("a", "10.0.0.1:1");
    reg("b", "10.0.0.1:2");
    sink.take();
    reg("session-c", "10.0.0.1:3");
    expect(sink.take()).toEqual([{ kind: "reply", to: "10.0.0.1:3", data: "ERR limit\n" }]);
    reg("c", "10.0.0.2:1"); // another host is not affected
    expect(sink.take()[0]).toEqual({ kind: "reply", to: "10.0.0.2:1", data: "ACK\n" });
    // IPv4-mapped addresses count as the same host.
    reg("session-d", "::ffff:10.0.0.1:4");
    expect(sink.take()).toEqual([{ kind: "reply", to: "::ffff:10.0.0.1:4", data: "ERR limit\n" }]);
    expect(table.sessionCount).toBe(3);
  });

  it("counts the addresses of one IPv6 /64 as one host", () => {
    const { clock, table, reg, sink } = setup({ timeoutMs: 1000 }, sessionCaps({ maxSessions: 100, maxSessionsPerHost: 4 }));
    const replies = () => sink.take().filter((e) => e.kind === "reply").map((e) => (e as { data: string }).data);
    for (let i = 1; i <= 20; i++) reg(`session-v6-${i}`, `2001:db8:1:2::${i}:4433`);
    expect(replies()).toEqual([...Array(4).fill("ACK\n"), ...Array(16).fill("ERR limit\n")]);
    expect(table.sessionCount).toBe(4);
    expect(table.peersInGroup("2001:db8:1:2")).toBe(4);
    // Another /64 of the same /48 is another host; joining an existing session is not a new one.
    reg("v6-next", "2001:db8:1:3::1:4433");
    reg("session-v6-1", "2001:db8:1:2::99:4433");
    expect(replies()).toEqual(["ACK\n", "ACK\n"]);
    expect(table.peersInGroup("2001:db8:1:2")).toBe(5);
    clock.advance(1001);
    table.expire();
    expect(table.peersInGroup("2001:db8:1:2")).toBe(0);
    reg("v6-later", "2001:db8:1:2::7:4433");
    expect(replies()).toEqual(["ACK\n"]);
  });

  it("frees capacity when sessions expire", () => {
    const { clock, table, reg, sink } = setup({ timeoutMs: 1000 }, sessionCaps({ maxSessions: 1, maxSessionsPerHost: 1 }));
    reg("a", "10.0.0.1:1");
    clock.advance(1001);
    table.expire();
    sink.take();
    reg("b", "10.0.0.1:1");
    expect(sink.take()[0]).toEqual({ kind: "reply", to: "10.0.0.1:1", data: "ACK\n" });
  });
});

describe("createRegPolicy", () => {
  it("without secrets passes the field through as the session id: the original protocol", () => {
    const policy = createRegPolicy(base);
    expect(policy.authEnabled).toBe(false);
    expect(policy.authenticate!("any:thing:at-all", at("10.0.0.1:1"), Date.now())).toEqual({ ok: true, sessionId: "any:thing:at-all" });
    expect(policy.allowReg!(at("10.0.0.1:1"), 0)).toBe(true);
    expect(policy.limiter).toBeUndefined();
  });

  it("takes new secrets, caps and rates on update (SIGHUP), keeping the buckets when the rate is unchanged", () => {
    const policy = createRegPolicy({ ...base, regRate: 1, regBurst: 1 });
    const from = at("10.0.0.1:1");
    const now = Date.now();
    const exp = Math.floor(now / 1000) + 60;
    const NEXT = new TextEncoder().encode("next-secret-0123456789");
    expect(policy.allowReg!(from, 0)).toBe(true);
    policy.update({ ...base, regRate: 1, regBurst: 1, secrets: [NEXT, SECRET] });
    expect(policy.allowReg!(from, 0)).toBe(false); // same bucket
    expect(policy.authEnabled).toBe(true);
    expect(policy.authenticate!(mintToken(SECRET, "r", exp), from, now)).toEqual({ ok: true, sessionId: "r" });
    policy.update({ ...base, regRate: 5, regBurst: 5, secrets: [NEXT], maxSessions: 0 });
    expect(policy.allowReg!(from, 0)).toBe(true); // a new rate starts new buckets
    expect(policy.authenticate!(mintToken(SECRET, "r", exp), from, now)).toEqual({ ok: false, code: "auth" });
    expect(policy.admit!("new", from, new Uint8Array(10), { sessionCount: 0, peersInGroup: () => 0 })).toBe("limit");
    policy.update(base);
    expect(policy.authEnabled).toBe(false);
    expect(policy.admit!("new", from, new Uint8Array(10), { sessionCount: 0, peersInGroup: () => 0 })).toBeUndefined();
  });

  it("with secrets maps a valid token to the bare session id and refuses the rest with auth", () => {
    const policy = createRegPolicy({ ...base, secrets: [SECRET] });
    const now = Date.now();
    const exp = Math.floor(now / 1000) + 60;
    const from = at("10.0.0.1:5");
    expect(policy.authenticate!(mintToken(SECRET, "room", exp), from, now)).toEqual({ ok: true, sessionId: "room" });
    expect(policy.authenticate!("room", from, now)).toEqual({ ok: false, code: "auth" });
    expect(policy.authenticate!(mintToken(SECRET, "room", exp - 120), from, now)).toEqual({ ok: false, code: "auth" });
    expect(policy.authenticate!(mintToken("another-secret-12345", "room", exp), from, now)).toEqual({ ok: false, code: "auth" });
    expect(policy.authFailures).toEqual({ malformed: 1, expired: 1, "bad-mac": 1 });
  });

  it("rate-limits REG per source", () => {
    const policy = createRegPolicy({ ...base, regRate: 1, regBurst: 3 });
    const results = Array.from({ length: 5 }, () => policy.allowReg!(at("10.0.0.1:1"), 0));
    expect(results).toEqual([true, true, true, false, false]);
    expect(policy.allowReg!(at("10.0.0.1:1"), 1000)).toBe(true);
  });
});
