import { afterEach, describe, expect, it } from "bun:test";
import { resolveSecurityOptions, securityFlags } from "../../src/security/options.ts";
import { createRegPolicy } from "../../src/security/policy.ts";
import { mintToken } from "../../src/security/token.ts";
import { planesUnderTest, register, startRelay, type TestRelay, TestPeer, text, testPeers } from "../utils.ts";
import { fieldFor, regFor, SECRET, startSecureRelay } from "./helpers.ts";

describe.each(planesUnderTest())("REG policy on a live relay, %s plane", (plane) => {
  let relay: TestRelay;
  const open = testPeers();
  afterEach(async () => {
    await relay?.stop();
  });
  const ask = async (peer: TestPeer, datagram: string) => {
    peer.send(datagram, relay.port);
    return peer.nextText();
  };

  it("with a secret: pairs token holders, keys the session by the bare id, forwards", async () => {
    ({ relay } = await startSecureRelay(plane, { secrets: [SECRET] }));
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    // Tokens imply verified mode: the first REG gets a RETRY, which register() answers.
    expect(await ask(a, regFor("room-1", true))).toMatch(/^RETRY [A-Za-z0-9_-]{16}\n$/);
    expect(relay.relay.table.sessionCount).toBe(0);
    expect(await register(a, relay.port, fieldFor("room-1", true))).toBe("ACK\n");
    expect(await register(b, relay.port, fieldFor("room-1", true, 120))).toBe("ACK\n");
    expect(relay.relay.table.session("room-1")!.peers).toHaveLength(2);
    // A keepalive REG with a fresh token is the same session, and from the known address needs no cookie.
    expect(await ask(a, regFor("room-1", true, 300))).toBe("ACK\n");
    expect(relay.relay.table.sessionCount).toBe(1);
    a.send("hello", relay.port);
    expect(await b.nextText()).toBe("hello");
  });

  it("with a secret: refuses missing, expired, forged and foreign tokens with ERR auth, creating nothing", async () => {
    let policy;
    ({ relay, policy } = await startSecureRelay(plane, { secrets: [SECRET] }));
    const a = await open("127.0.0.2");
    const now = Math.floor(Date.now() / 1000);
    const genuine = mintToken(SECRET, "room-2", now + 60);
    const requests = [
      "REG:room-2\n",
      `REG:${mintToken(SECRET, "room-2", now - 1)}\n`,
      `REG:${mintToken("some-other-secret-0123", "room-2", now + 60)}\n`,
      `REG:room-3${genuine.slice("room-2".length)}\n`,
    ];
    for (const r of requests) expect(await ask(a, r)).toBe("ERR auth\n");
    expect(relay.relay.table.indexSizes()).toEqual({ sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 });
    expect(relay.relay.table.stats.refusals.auth).toBe(4);
    expect(policy.authFailures).toEqual({ malformed: 1, expired: 1, "bad-mac": 2 });
    // A refusal is never larger than the request.
    a.send("REG:x", relay.port);
    expect(text((await a.next()).data)).toBe("ERR\n");
    a.send("REG:", relay.port);
    expect(text((await a.next()).data)).toBe("ERR\n"); // 4 bytes for 4 bytes
  });

  it("without a secret: the original protocol, any printable id (a token is just an id)", async () => {
    ({ relay } = await startSecureRelay(plane));
    const a = await open("127.0.0.2");
    expect(await register(a, relay.port, "plain-id")).toBe("ACK\n");
    const tokenish = mintToken(SECRET, "x", 1);
    expect(await register(await open("127.0.0.2"), relay.port, tokenish)).toBe("ACK\n");
    expect(relay.relay.table.session(tokenish)).toBeDefined();
  });

  it("refuses sessions beyond --max-sessions and --max-sessions-per-host with ERR limit", async () => {
    ({ relay } = await startSecureRelay(plane, { maxSessions: 3, maxSessionsPerHost: 2 }));
    const a = await open("127.0.0.2");
    const a2 = await open("127.0.0.2");
    const a3 = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    const c = await open("127.0.0.4");
    expect(await register(a, relay.port, "limit-1")).toBe("ACK\n");
    expect(await register(a2, relay.port, "limit-2")).toBe("ACK\n");
    expect(await register(a3, relay.port, "limit-3")).toBe("ERR limit\n");
    expect(await register(b, relay.port, "limit-3")).toBe("ACK\n");
    expect(await register(c, relay.port, "limit-4")).toBe("ERR limit\n");
    // Joining an existing session is not a new session.
    expect(await register(c, relay.port, "limit-1")).toBe("ACK\n");
    a.send("still forwarding", relay.port);
    expect(await c.nextText()).toBe("still forwarding");
    expect(relay.relay.table.stats.refusals.limit).toBe(2);
  });

  it("rate-limits REG per source host with ERR rate; members keep their session", async () => {
    ({ relay } = await startSecureRelay(plane, { regRate: 1, regBurst: 3 }));
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    expect(await register(a, relay.port, "rated")).toBe("ACK\n");
    expect(await register(b, relay.port, "rated")).toBe("ACK\n");
    expect(await register(a, relay.port, "rated")).toBe("ACK\n");
    expect(await register(a, relay.port, "rated")).toBe("ACK\n");
    expect(await register(a, relay.port, "rated")).toBe("ERR rate\n");
    expect(relay.relay.table.stats.refusals.rate).toBe(1);
    a.send("data is not rate-limited", relay.port);
    expect(await b.nextText()).toBe("data is not rate-limited");
  });

  it("runs with options resolved from command-line flags, as the relay command wires them", async () => {
    const rawArgs = ["--auth-secret", "first-secret-0123456789", "--auth-secret", new TextDecoder().decode(SECRET), "--max-sessions", "1"];
    const args = { "auth-secret": new TextDecoder().decode(SECRET), "max-sessions": "1" };
    const options = resolveSecurityOptions(securityFlags(args, rawArgs), {});
    relay = await startRelay(plane, { policy: createRegPolicy(options) });
    const a = await open("127.0.0.2");
    // Minted with the second (older) secret: rotation keeps it valid.
    expect(await register(a, relay.port, fieldFor("wired", true))).toBe("ACK\n");
    expect(await ask(a, "REG:wired\n")).toBe("ERR auth\n");
    expect(await register(await open("127.0.0.3"), relay.port, fieldFor("wired-2", true))).toBe("ERR limit\n");
  });
});
