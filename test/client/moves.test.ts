import { afterEach, describe, expect, it } from "bun:test";
import { MAX_MOVES_PER_ROUND } from "../../src/client/registration.ts";
import { formatHostPort } from "../../src/net/address.ts";
import type { FakeRelay } from "./fake-relay.ts";
import { addressOf, closeAll, endpoint, fakeRelay, fast, listenMode, resolverOf, SESSION, tunnel, tunnelPair, until } from "./tunnel-harness.ts";

afterEach(closeAll);

/** The REGs `relay` got from one local port, in order. */
const regsFrom = (relay: FakeRelay, port: number) => relay.regs.filter((r) => r.port === port);

describe("RelayTunnel and MOVE", () => {
  it("follows a MOVE to another of the relay's addresses: registers there with the same id, and data flows through it", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    r1.moveTo = addressOf(r2);
    // The server side is on r2 already; the client side starts at r1, which sends it there.
    const { serverSide, clientSide, roundTrip } = await tunnelPair(
      resolverOf(() => [addressOf(r2), addressOf(r1)]).resolve,
      resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve,
    );
    await roundTrip("hello");
    const { t, changes, lines } = clientSide;
    expect(t.relay).toEqual(addressOf(r2));
    expect(changes).toEqual([{ from: addressOf(r1), to: addressOf(r2), reason: "moved", unanswered: 0 }]);
    expect(t.stats).toMatchObject({ movesFollowed: 1, relayChanges: 1, movesRefused: 0, movesIgnored: 0 });
    expect(lines.filter((l) => l.includes("moved session"))).toEqual([
      `relay ${formatHostPort(addressOf(r1))} moved session ${SESSION} to ${formatHostPort(addressOf(r2))}, its partner's relay`,
    ]);
    const port = t.relayAddress.port;
    expect(regsFrom(r1, port).map((r) => r.move)).toEqual([true]);
    expect(regsFrom(r2, port)[0]).toMatchObject({ session: SESSION, move: true, cookie: undefined });
    expect(r2.forwarded).toBeGreaterThanOrEqual(2);
    expect(r1.forwarded).toBe(0);
    expect(serverSide.t.stats.movesFollowed).toBe(0);
  });

  it("resolves the relay again when a MOVE names an address the last resolution did not list, and follows it when the new one does", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    // r2 is added to the name after the first resolution.
    const dns = resolverOf(() => (dns.calls === 1 ? [addressOf(r1)] : [addressOf(r1), addressOf(r2)]));
    const side = tunnel(dns.resolve, listenMode);
    r1.moveTo = addressOf(r2);
    await side.t.start();
    expect(side.t.relay).toEqual(addressOf(r2));
    expect(dns.calls).toBe(2);
    expect(side.t.stats.movesFollowed).toBe(1);
  });

  it("does not follow a MOVE to an address that is not the relay's: registers at the relay without the flag, and data flows there", async () => {
    const r1 = await fakeRelay("127.0.0.1");
    const elsewhere = await endpoint("127.0.0.3");
    const dns = resolverOf(() => [addressOf(r1)]);
    const { server, serverSide, clientSide, roundTrip } = await tunnelPair(resolverOf(() => [addressOf(r1)]).resolve, async () => {
      r1.moveTo = elsewhere.address; // a forged MOVE would name such an address
      return dns.resolve();
    });
    await roundTrip("hello");
    const { t, changes, lines } = clientSide;
    expect(t.relay).toEqual(addressOf(r1));
    expect(changes).toEqual([]);
    expect(t.stats).toMatchObject({ movesFollowed: 0, movesRefused: 1, relayChanges: 0 });
    expect(dns.calls).toBe(2); // at start, and once more for the MOVE
    expect(lines.filter((l) => l.includes("MOVE"))).toEqual([
      `relay ${formatHostPort(addressOf(r1))} sent MOVE ${formatHostPort(elsewhere.address)}: not followed (not one of the relay's addresses); registering there without the move flag`,
    ]);
    // Keepalives go on without the flag; nothing ever went to the named address.
    const port = t.relayAddress.port;
    await until(() => regsFrom(r1, port).length >= 5);
    expect(regsFrom(r1, port).map((r) => r.move)).toEqual([true, ...Array(regsFrom(r1, port).length - 1).fill(false)]);
    expect(elsewhere.inbox).toEqual([]);
    expect(server.inbox).toContain("hello");
    // The server side's next flagged keepalive got the same MOVE, and stayed too.
    expect(serverSide.t.relay).toEqual(addressOf(r1));
  });

  it(`stops after ${MAX_MOVES_PER_ROUND} moves between two relays that send each other there, and registers without the flag`, async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    r1.moveTo = addressOf(r2);
    r2.moveTo = addressOf(r1);
    const side = tunnel(resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve, listenMode);
    await side.t.start();
    const [a, b] = [addressOf(r1), addressOf(r2)];
    expect(side.changes.map((c) => [c.from, c.to, c.reason])).toEqual([
      [a, b, "moved"],
      [b, a, "moved"],
      [a, b, "moved"],
    ]);
    expect(side.t.relay).toEqual(b);
    expect(side.t.stats).toMatchObject({ movesFollowed: 3, movesRefused: 1, relayChanges: 3 });
    expect(r1.moves + r2.moves).toBe(4);
    expect(side.lines.filter((l) => l.includes("not followed"))).toEqual([
      `relay ${formatHostPort(b)} sent MOVE ${formatHostPort(a)}: not followed (3 moves since the last registration); registering there without the move flag`,
    ]);
    // Registered at r2; keepalives go there without the flag, and nothing moves any more.
    const port = side.t.relayAddress.port;
    const seen = regsFrom(r2, port).length;
    await until(() => regsFrom(r2, port).length >= seen + 3);
    expect(regsFrom(r2, port).slice(seen - 1).every((r) => !r.move)).toBe(true);
    expect(side.t.stats.relayChanges).toBe(3);
    expect(r1.moves + r2.moves).toBe(4);
  });

  it("answers ERR bad-id to the flag with the REG without it, and remembers that address across failovers", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1", { knowsMoveFlag: false }), await fakeRelay("127.0.0.2")];
    const dns = resolverOf(() => [addressOf(r1), addressOf(r2)]);
    const { clientSide, roundTrip } = await tunnelPair(dns.resolve);
    await roundTrip("before");
    const { t, lines } = clientSide;
    const port = t.relayAddress.port;
    await until(() => regsFrom(r1, port).length >= 4);
    // One flagged REG, refused; then the same REG without the flag, and keepalives without it.
    expect(regsFrom(r1, port).map((r) => r.move)).toEqual([true, ...Array(regsFrom(r1, port).length - 1).fill(false)]);
    expect(lines.filter((l) => l.includes("move flag"))).toEqual([`relay ${formatHostPort(addressOf(r1))} does not know the move flag (ERR bad-id); registering there without it`]);

    r1.silent = true; // over to r2, which knows the flag
    await until(() => t.stats.relayChanges === 1);
    await roundTrip("on r2");
    expect(regsFrom(r2, port).every((r) => r.move)).toBe(true);
    const back = regsFrom(r1, port).length;
    r1.silent = false;
    r2.silent = true; // and back to r1: no flag there from the first REG on
    await until(() => t.stats.relayChanges === 2);
    await roundTrip("back on r1");
    expect(regsFrom(r1, port).slice(back).length).toBeGreaterThan(0);
    expect(regsFrom(r1, port).slice(back).every((r) => !r.move)).toBe(true);
  });

  it("ignores a MOVE from another address, and one from the relay that answers no flagged REG", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    const dns = resolverOf(() => [addressOf(r1), addressOf(r2)]);
    // Keepalives far apart: after the ACK no REG is outstanding.
    const { app, clientSide, roundTrip } = await tunnelPair(dns.resolve, dns.resolve, { ...fast, keepaliveMs: 60_000 });
    await roundTrip("before");
    const { t } = clientSide;
    const move = `MOVE ${formatHostPort(addressOf(r2))}\n`;
    const stranger = await endpoint("127.0.0.4");
    stranger.send(move, { host: "127.0.0.1", port: t.relayAddress.port });
    await until(() => t.stats.movesIgnored === 1);
    r1.inject(move, { host: "127.0.0.1", port: t.relayAddress.port });
    await until(() => t.stats.movesIgnored === 2);
    await roundTrip("after");
    expect(t.relay).toEqual(addressOf(r1));
    expect(t.stats).toMatchObject({ movesFollowed: 0, movesRefused: 0, relayChanges: 0, strayDrops: 0 });
    expect(r2.regs).toEqual([]);
    expect(app.inbox.filter((d) => d.startsWith("MOVE"))).toEqual([]);
  });

  it("does not carry the cookie of a relay that asked for proof (RETRY) to the relay a MOVE names", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1", { requireCookies: true }), await fakeRelay("127.0.0.2", { requireCookies: true })];
    r1.moveTo = addressOf(r2);
    const side = tunnel(resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve, listenMode);
    await side.t.start();
    const port = side.t.relayAddress.port;
    const atR1 = regsFrom(r1, port);
    expect(atR1.map((r) => [r.cookie ?? "-", r.move])).toEqual([
      ["-", true],
      [r1.retries[0]!, true],
    ]);
    const atR2 = regsFrom(r2, port);
    expect(atR2.map((r) => [r.cookie ?? "-", r.move])).toEqual([
      ["-", true],
      [r2.retries[0]!, true],
    ]);
    expect(side.t.relay).toEqual(addressOf(r2));
    expect(side.t.stats).toMatchObject({ movesFollowed: 1, retries: 2 });
  });

  it("sends no flag with one fixed relay address (nowhere to move), nor with followMoves: false", async () => {
    const r1 = await fakeRelay("127.0.0.1");
    const fixed = tunnel(addressOf(r1), listenMode);
    const off = tunnel(resolverOf(() => [addressOf(r1)]).resolve, listenMode, { ...fast, followMoves: false });
    await fixed.t.start();
    await off.t.start();
    expect(r1.regs.map((r) => r.move)).toEqual([false, false]);
  });
});
