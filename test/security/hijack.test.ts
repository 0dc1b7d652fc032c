import { afterEach, describe, expect, it } from "bun:test";
import { mintToken } from "../../src/security/token.ts";
import { FakeClock } from "../sessions/fixtures.ts";
import { eventually, longHeader, planesUnderTest, register, shortHeader, type TestRelay, text, testPeers } from "../utils.ts";
import { fieldFor, isTraffic, pumpTraffic, quicHandshake, regFor, SECRET, SERVER_CID, startSecureRelay } from "./helpers.ts";

const A_HOST = "127.0.0.2";
const B_HOST = "127.0.0.3";
const random = (n: number) => Array.from(crypto.getRandomValues(new Uint8Array(n)));

/**
 * A live QUIC-like session between A and B while attackers on A's and B's own IPs (CGNAT
 * neighbours, the same office) try every rebinding path the rules allow. None may receive a
 * byte of the session, redirect it, or lose it a datagram.
 */
describe.each(
  planesUnderTest().flatMap((plane) => [
    [plane, true],
    [plane, false],
  ] as const),
)("rebinding cannot steal or disturb a live session (%s plane, auth %p)", (plane, auth) => {
  let relay: TestRelay;
  const open = testPeers();
  afterEach(async () => {
    await relay?.stop();
  });

  it("holds against same-IP attackers while traffic flows", async () => {
    ({ relay } = await startSecureRelay(plane, { secrets: auth ? [SECRET] : [], regRate: 20, regBurst: 20 }));
    const session = `victim-${crypto.randomUUID()}`;
    const a = await open(A_HOST);
    const b = await open(B_HOST);
    // With tokens the relay is in verified mode: register() answers its RETRY.
    expect(await register(a, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    expect(await register(b, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    await quicHandshake(relay, a, b);
    const endpoints = relay.relay.table.session(session)!.peers.map((p) => `${p.endpoint.address}:${p.endpoint.port}`);

    const pump = pumpTraffic(relay, a, b);
    const attackers = [await open(A_HOST), await open(A_HOST), await open(B_HOST), await open(B_HOST)];
    const now = Math.floor(Date.now() / 1000);
    const attacks: (string | Uint8Array)[] = [
      "bare data from a neighbour",
      shortHeader(random(8)),
      shortHeader(random(20)),
      longHeader(random(8), random(8)),
      longHeader(SERVER_CID.map((x) => x ^ 1), random(8)), // a near miss of a real CID
      new Uint8Array([0x41, ...random(7)]), // shorter than the CIDs in use
      "REG:someone-else\n",
    ];
    if (auth) {
      attacks.push(
        `REG:${session}\n`, // the session id leaked, the token did not
        `REG:${mintToken(SECRET, session, now - 5)}\n`, // an old, expired token
        `REG:${session}:${now + 60}:${mintToken(SECRET, "attacker-own", now + 60).slice(-43)}\n`, // MAC of another session
        `REG:${mintToken("guessed-secret-000000", session, now + 60)}\n`,
        `REG:${mintToken(SECRET, "attacker-own", now + 60)}\n`, // a valid token, for its own session
      );
    }
    const trafficAt = (peer: typeof a, marker: 0xaa | 0xbb) => peer.inbox.filter((r) => isTraffic(r.data, marker)).length;
    for (let round = 0; round < 20; round++) {
      for (const attacker of attackers) for (const attack of attacks) attacker.send(attack, relay.port);
      // Interleaved with the session's traffic: the next round goes once more of it got through.
      const seen = trafficAt(b, 0xaa);
      await eventually(() => trafficAt(b, 0xaa) > seen, 10_000);
    }
    const sent = await pump.stop();
    await eventually(() => trafficAt(b, 0xaa) === sent && trafficAt(a, 0xbb) === sent, 10_000);

    // Without tokens, the rate limit the attackers exhausted on A's IP may refuse A's keepalive
    // REG (with them, A's keepalive from its known address needs no cookie and spends no rate).
    // Either way the answer comes from the control plane after it handled every attack before it.
    a.send(regFor(session, auth), relay.port);
    await eventually(() => a.inbox.some((r) => !isTraffic(r.data, 0xbb)), 10_000);
    const reply = a.inbox.splice(a.inbox.findIndex((r) => !isTraffic(r.data, 0xbb)), 1)[0]!;
    expect(["ACK\n", "ERR rate\n"]).toContain(text(reply.data));
    // Markers along the session's routes, after everything the relay did about the attacks.
    a.send("marker to B", relay.port);
    b.send("marker to A", relay.port);
    const [atA, atB] = [await a.takeUntil("marker to A"), await b.takeUntil("marker to B")];

    // Every datagram of the session arrived where it belongs, and only there.
    expect(atB.filter((r) => isTraffic(r.data, 0xaa)).length).toBe(sent);
    expect(atA.filter((r) => isTraffic(r.data, 0xbb)).length).toBe(sent);
    expect(atA.filter((r) => !isTraffic(r.data, 0xbb))).toEqual([]);
    expect(atB.filter((r) => !isTraffic(r.data, 0xaa))).toEqual([]);
    for (const attacker of attackers) {
      const got = attacker.inbox.splice(0);
      // Attackers hear replies to their REGs and each other (they pair up in their own sessions),
      // never a byte of the victim's session.
      expect(got.filter((r) => isTraffic(r.data, 0xaa) || isTraffic(r.data, 0xbb))).toEqual([]);
    }
    const victim = relay.relay.table.session(session)!;
    expect(victim.peers.map((p) => `${p.endpoint.address}:${p.endpoint.port}`)).toEqual(endpoints);
    expect(relay.relay.table.stats.rebinds).toEqual({ reg: 0, cid: 0, quiet: 0 });
    if (auth) {
      expect(relay.relay.table.stats.refusals.auth).toBeGreaterThan(0);
      // REGs without a cookie never reach the per-source rate; they were challenged instead.
      expect(relay.relay.table.stats.challenges).toBeGreaterThan(0);
    } else {
      expect(relay.relay.table.stats.refusals.rate).toBeGreaterThan(0);
    }

    // A stays in the session and its traffic still flows.
    a.send(shortHeader(SERVER_CID), relay.port);
    expect((await b.next()).data).toEqual(shortHeader(SERVER_CID));
  });

  it("still follows the real peer when it rebinds with its credentials", async () => {
    ({ relay } = await startSecureRelay(plane, { secrets: auth ? [SECRET] : [] }));
    const session = `mover-${crypto.randomUUID()}`;
    const a = await open(A_HOST);
    const b = await open(B_HOST);
    expect(await register(a, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    expect(await register(b, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    await quicHandshake(relay, a, b);
    // By REG with a fresh token from a new port (and, with tokens, a cookie for that port)...
    const a2 = await open(A_HOST);
    expect(await register(a2, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    b.send("to a2", relay.port);
    expect(await a2.nextText()).toBe("to a2");
    // ...and by connection ID from yet another port of the same host.
    const a3 = await open(A_HOST);
    a3.send(shortHeader(SERVER_CID), relay.port);
    expect((await b.next()).data).toEqual(shortHeader(SERVER_CID));
    b.send("to a3", relay.port);
    expect(await a3.nextText()).toBe("to a3");
    expect(relay.relay.table.stats.rebinds).toEqual({ reg: 1, cid: 1, quiet: 0 });
    // B's datagrams reached A's new ports; a route has one destination, so the old port got nothing.
    expect(a.inbox).toEqual([]);
  });
});

/**
 * Rule 3 (bare data follows a host's only peer once it has been quiet) is unauthenticated
 * evidence. With authentication on, operators turn it off (`rebindQuietMs: -1`); then a
 * neighbour on the victim's IP cannot take an idle session, whatever it sends and however long
 * the victim stays silent.
 */
describe.each(planesUnderTest())("idle sessions and rule 3 (%s plane)", (plane) => {
  let relay: TestRelay;
  const open = testPeers();
  afterEach(async () => {
    await relay?.stop();
  });

  /** A and B paired with a QUIC handshake, on a relay whose clock moves only when the test says. */
  async function idlePair(rebindQuietMs: number) {
    const clock = new FakeClock();
    ({ relay } = await startSecureRelay(plane, { secrets: [SECRET] }, { limits: { rebindQuietMs }, clock }));
    const session = `idle-${crypto.randomUUID()}`;
    const a = await open(A_HOST);
    const b = await open(B_HOST);
    expect(await register(a, relay.port, fieldFor(session, true))).toBe("ACK\n");
    expect(await register(b, relay.port, fieldFor(session, true))).toBe("ACK\n");
    await quicHandshake(relay, a, b, clock);
    relay.relay.sweep(); // the handshake's forwarding counts as activity now, before the clock moves
    return { a, b, clock };
  }
  const unknownSources = () => relay.relay.table.stats.drops["unknown-source"] ?? 0;

  it("with rule 3 off, a neighbour cannot take an idle peer's session", async () => {
    const { a, b, clock } = await idlePair(-1);
    const neighbour = await open(A_HOST);
    clock.advance(60_000); // A idle for a minute
    const dropped = unknownSources();
    for (let i = 0; i < 5; i++) neighbour.send(`bare ${i}`, relay.port);
    neighbour.send(shortHeader(random(8)), relay.port);
    // All six reached the control plane and were dropped there: nothing was forwarded for them.
    await eventually(() => unknownSources() === dropped + 6);
    b.send("for A", relay.port);
    expect(await a.nextText()).toBe("for A");
    expect(neighbour.inbox).toEqual([]);
    expect(relay.relay.table.stats.rebinds).toMatchObject({ reg: 0, cid: 0, quiet: 0 });
  });

  it("with rule 3 on, a neighbour's takeover of an idle peer ends when the peer speaks by its connection ID", async () => {
    const { a, b, clock } = await idlePair(200);
    const neighbour = await open(A_HOST);
    clock.advance(400);
    neighbour.send("bare data after silence", relay.port);
    expect(await b.nextText()).toBe("bare data after silence");
    expect(relay.relay.table.stats.rebinds.quiet).toBe(1);
    // The real peer speaks again from its own port with the connection ID the relay learned.
    a.send(shortHeader(SERVER_CID), relay.port);
    expect((await b.next()).data).toEqual(shortHeader(SERVER_CID));
    b.send("for A again", relay.port);
    expect(await a.nextText()).toBe("for A again");
    // A spoke just now (the clock has not moved): the neighbour's next datagram is dropped.
    const dropped = unknownSources();
    neighbour.send("more", relay.port);
    await eventually(() => unknownSources() === dropped + 1);
    expect(b.inbox).toEqual([]);
  });
});
