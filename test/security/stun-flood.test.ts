/**
 * STUN answers can be aimed at a victim (a forged source gets the answer), so they are bounded:
 * per source by a token bucket (the REG rate), across all sources by a global budget, and each
 * answer is a small multiple of its request. Checked on both data planes with the responder's
 * counters, never with timing; the forged-source cases need a raw socket (root).
 */
import { afterAll, describe, expect, it } from "bun:test";
import { DropReason } from "../../src/protocol/errors.ts";
import { encodeBindingRequest } from "../../src/protocol/stun.ts";
import { Forger } from "../support/forge.ts";
import { Pairs } from "../support/flood-peers.ts";
import { createRegPolicy } from "../../src/security/policy.ts";
import { FakeClock } from "../sessions/fixtures.ts";
import { OPEN_LIMITS } from "./helpers.ts";
import { eventually, planesUnderTest, relayHarness, type TestPeer, type TestRelay } from "../utils.ts";

const forger = Forger.open();
if (typeof forger === "string") console.log(`forged-source STUN floods skipped: ${forger}`);
afterAll(() => {
  if (typeof forger !== "string") forger.close();
});

const RELAY = "127.0.0.1";

/** The smallest Binding request (20 bytes: header only, RFC 8489 cookie, random id). */
function bareRequest(): Uint8Array {
  const d = crypto.getRandomValues(new Uint8Array(20));
  new DataView(d.buffer).setUint32(0, 0x0001_0000);
  new DataView(d.buffer).setUint32(4, 0x2112a442);
  return d;
}

/** Requests the responder has taken in (every one counts its bytes), for requests of `size` bytes. */
const taken = (relay: TestRelay, size: number) => relay.stun!.counters.bytesIn / size;

/**
 * Calls `send(i)` for i = 0..count-1, never more than `window` ahead of what the relay has taken in
 * (flow control on the counters: no socket buffer overflows, whatever the load).
 */
async function paced(count: number, send: (i: number) => void, takenSoFar: () => number, window = 200): Promise<void> {
  for (let i = 0; i < count; ) {
    const until = Math.min(count, i + window);
    for (; i < until; i++) send(i);
    await eventually(() => i - takenSoFar() <= window, 15_000, 1);
  }
}

/**
 * Waits for the ACK of a REG sent after everything else from `peer`; returns what came before it.
 * The same session each time (a REG for another session from a live peer would get ERR busy).
 */
async function afterOwnReg(peer: TestPeer, relayPort: number) {
  peer.send(`REG:marker-${peer.host}-${peer.port}\n`, relayPort);
  return peer.takeUntil("ACK\n", 15_000);
}

describe.each(planesUnderTest())("STUN flood from one source (%s plane)", (plane) => {
  const { start, open } = relayHarness(plane);

  it("answers exactly the burst, then what the rate refills, and counts every other request as rate-limited", async () => {
    const clock = new FakeClock();
    const relay = await start({ clock, stun: { rate: 1, burst: 50 } });
    const flooder = await open("127.0.0.61");
    const requests = 3000;
    await paced(requests, () => flooder.send(bareRequest(), relay.port), () => taken(relay, 20));
    const answers = await afterOwnReg(flooder, relay.port);
    const c = relay.stun!.counters;
    const arrived = taken(relay, 20);
    expect(arrived).toBeGreaterThan(50);
    // Every request that arrived is accounted for, and the clock did not move: the burst, exactly.
    expect(c.answered + c.rateLimited + c.budget).toBe(arrived);
    expect(c.answered).toBe(50);
    expect(c.budget).toBe(0);
    expect(answers.length).toBe(50);
    expect(answers.every((r) => r.data.length === 32 && r.data[0] === 0x01 && r.data[1] === 0x01)).toBe(true);
    // Amplification: 32 bytes per 20-byte request answered; overall a sliver of what came in.
    expect(c.bytesOut).toBe(32 * c.answered);
    expect(c.bytesOut).toBeLessThanOrEqual(2.2 * 20 * c.answered);
    expect(c.bytesOut / c.bytesIn).toBeLessThan(0.1);

    // Ten seconds of the relay's clock add ten answers (rate 1/s), no more.
    clock.advance(10_000);
    await paced(100, () => flooder.send(bareRequest(), relay.port), () => taken(relay, 20) - arrived);
    const more = await afterOwnReg(flooder, relay.port);
    expect(relay.stun!.counters.answered).toBe(60);
    expect(more.length).toBe(10);

    // Another source has its own bucket (two of them: a hash-slot collision only makes a source stricter).
    const others = [await open("127.0.0.62"), await open("127.0.0.63")];
    for (const o of others) o.send(bareRequest(), relay.port);
    const replies = await Promise.all(others.map((o) => afterOwnReg(o, relay.port)));
    expect(replies.some((r) => r.length === 1)).toBe(true);
  }, 30_000);

  it("on the real clock, answers stay within the burst plus the rate over the flood's whole life", async () => {
    const began = performance.now();
    const relay = await start({ stun: { rate: 1, burst: 50 } });
    const flooder = await open("127.0.0.64");
    const requests = 3000;
    await paced(requests, () => flooder.send(encodeBindingRequest().datagram, relay.port), () => taken(relay, 28));
    const answers = await afterOwnReg(flooder, relay.port);
    // A generous bound computed from elapsed time (never asserted on): everything since before the relay started.
    const seconds = (performance.now() - began) / 1000;
    const c = relay.stun!.counters;
    const arrived = taken(relay, 28);
    expect(arrived).toBeGreaterThan(50);
    expect(c.answered + c.rateLimited + c.budget).toBe(arrived);
    expect(c.answered).toBeGreaterThanOrEqual(50);
    expect(c.answered).toBeLessThanOrEqual(50 + Math.ceil(seconds) + 1);
    expect(answers.length).toBe(c.answered);
    // 40-byte answers (XOR-MAPPED-ADDRESS and FINGERPRINT) to 28-byte requests.
    expect(c.bytesOut).toBe(40 * c.answered);
    expect(c.bytesOut).toBeLessThanOrEqual(2.2 * 28 * c.answered);
  }, 30_000);

  it("a STUN flood does not spend the host's REG allowance", async () => {
    // Two REGs a host at once, none added on the fake clock; the STUN buckets are the responder's.
    const clock = new FakeClock();
    const policy = createRegPolicy({ ...OPEN_LIMITS, regRate: 1, regBurst: 2 });
    const relay = await start({ clock, policy, stun: { rate: 1, burst: 5 } });
    const host = await open("127.0.0.66");
    await paced(1000, () => host.send(bareRequest(), relay.port), () => taken(relay, 20));
    const before = await afterOwnReg(host, relay.port);
    expect(before.length).toBe(5);
    expect(relay.stun!.counters.rateLimited).toBe(taken(relay, 20) - 5);
    // The REG above spent one token; the second is still there, and a third REG is over the rate.
    expect((await afterOwnReg(host, relay.port)).length).toBe(0);
    host.send(`REG:marker-${host.host}-${host.port}\n`, relay.port);
    expect(await host.nextText()).toBe("ERR rate\n");
  }, 30_000);

  it("sessions keep their traffic while a socket floods STUN", async () => {
    const began = performance.now();
    const relay = await start({});
    const pairs = await Pairs.open(relay.port, 4, (id) => `REG:${id}\n`);
    const flooder = await open("127.0.0.65");
    try {
      pairs.start(relay.port);
      await eventually(() => pairs.delivery().received > 0);
      pairs.resetCounts();
      const count = 20_000;
      await paced(count, () => flooder.send(bareRequest(), relay.port), () => taken(relay, 20), 500);
      // The traffic stops; what is still on its way arrives (the deadline is generous, not measured).
      pairs.stop();
      await eventually(() => pairs.delivery().pct >= 99, 5000).catch(() => {});
      const delivery = pairs.delivery();
      expect(delivery.sent).toBeGreaterThan(0);
      expect(delivery.pct).toBeGreaterThanOrEqual(95);
      const c = relay.stun!.counters;
      // The default per-source rate (200/s, burst 400) over the test's whole life, generously.
      const seconds = (performance.now() - began) / 1000;
      expect(c.answered).toBeLessThanOrEqual(400 + 200 * Math.ceil(seconds) + 1);
      expect(c.rateLimited).toBeGreaterThan(0);
      expect(c.answered + c.rateLimited + c.budget).toBe(taken(relay, 20));
      expect(relay.relay.table.pairedCount).toBe(4);
    } finally {
      pairs.close();
    }
  }, 60_000);
});

describe.skipIf(typeof forger === "string").each(planesUnderTest())("forged-source STUN (%s plane)", (plane) => {
  const forge = forger as Forger;
  const { start, open } = relayHarness(plane);

  it("requests forged from a victim's address reflect at most the per-source burst onto it", async () => {
    const clock = new FakeClock();
    const burst = 20;
    const relay = await start({ clock, stun: { rate: 1, burst } });
    const victim = await open("127.0.0.70");
    const count = 2000;
    // The victim's own port, and ports around it: one source host, one bucket.
    await paced(
      count,
      (i) => forge.send(bareRequest(), { address: victim.host, port: i % 2 === 0 ? victim.port : 20_000 + i }, { address: RELAY, port: relay.port }),
      () => taken(relay, 20),
    );
    const reflected = await afterOwnReg(victim, relay.port);
    const c = relay.stun!.counters;
    expect(taken(relay, 20)).toBeGreaterThan(burst);
    expect(c.answered).toBe(burst);
    expect(c.answered + c.rateLimited + c.budget).toBe(taken(relay, 20));
    expect(reflected.length).toBeLessThanOrEqual(burst);
    expect(reflected.every((r) => r.data.length === 32)).toBe(true);
  }, 30_000);

  it("requests forged from many addresses are bounded by the global budget", async () => {
    const clock = new FakeClock();
    const relay = await start({ clock, stun: { rate: 1, burst: 5, globalRate: 300 } });
    const count = 4000; // 1000 forged hosts, 4 requests each
    await paced(
      count,
      (i) => forge.send(bareRequest(), { address: `127.31.${(i % 1000) >> 8}.${(i % 1000) & 255}`, port: 30_000 + (i % 7) }, { address: RELAY, port: relay.port }),
      () => taken(relay, 20),
    );
    await eventually(() => taken(relay, 20) === count, 15_000);
    const c = relay.stun!.counters;
    expect(c.answered).toBe(300);
    expect(c.budget + c.rateLimited).toBe(count - 300);
    expect(c.budget).toBeGreaterThan(0);
    expect(c.bytesOut).toBe(300 * 32);
  }, 30_000);

  it("never answers a request forged from the relay's own address: it is junk from an unknown source", async () => {
    const relay = await start({});
    const self = { address: RELAY, port: relay.port };
    const drops = relay.relay.table.stats.drops;
    forge.send(bareRequest(), self, self);
    await eventually(() => (drops[DropReason.UnknownSource] ?? 0) === 1);
    expect(relay.stun!.counters.bytesIn).toBe(0);
    // A REG forged from the same address after it (dropped as the relay's own address): had an
    // answer gone out to the relay itself, it would have come in before, as a second unknown-source drop.
    forge.send(`REG:${crypto.randomUUID()}\n`, self, self);
    await eventually(() => (drops[DropReason.RelayAddress] ?? 0) === 1);
    expect(drops[DropReason.UnknownSource]).toBe(1);
    expect(relay.stun!.counters.answered).toBe(0);
  }, 30_000);

  it("sessions keep their traffic while forged sources across many addresses flood STUN", async () => {
    const relay = await start({});
    const pairs = await Pairs.open(relay.port, 4, (id) => `REG:${id}\n`);
    try {
      pairs.start(relay.port);
      await eventually(() => pairs.delivery().received > 0);
      pairs.resetCounts();
      const count = 20_000;
      await paced(
        count,
        (i) => forge.send(bareRequest(), { address: `127.32.${(i >> 8) & 255}.${i & 255}`, port: 40_000 + (i >> 16) }, { address: RELAY, port: relay.port }),
        () => taken(relay, 20),
        500,
      );
      pairs.stop();
      await eventually(() => pairs.delivery().pct >= 99, 5000).catch(() => {});
      const delivery = pairs.delivery();
      expect(delivery.sent).toBeGreaterThan(0);
      expect(delivery.pct).toBeGreaterThanOrEqual(95);
      const c = relay.stun!.counters;
      expect(c.answered + c.rateLimited + c.budget).toBe(taken(relay, 20));
      expect(c.answered).toBeGreaterThan(0);
      expect(relay.relay.table.pairedCount).toBe(4);
    } finally {
      pairs.close();
    }
  }, 60_000);
});
