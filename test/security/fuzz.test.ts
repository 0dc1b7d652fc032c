import { afterEach, describe, expect, it } from "bun:test";
import type { TestRelay } from "../utils.ts";
import { eventually, planesUnderTest, register, TestPeer, text } from "../utils.ts";
import { fuzzDatagram, prng } from "./fuzz-gen.ts";
import { fieldFor, SECRET, startSecureRelay } from "./helpers.ts";

const DATAGRAMS = Number(process.env.FUZZ_DATAGRAMS ?? 20_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const MAX_DATAGRAM = 9000;
const FUZZ_HOSTS = Array.from({ length: 32 }, (_, i) => `127.0.0.${10 + i}`);
const PAIR_HOSTS: [string, string][] = [["127.0.0.2", "127.0.0.3"], ["127.0.0.4", "127.0.0.5"], ["127.0.0.6", "127.0.0.7"], ["127.0.0.8", "127.0.0.8"]];

type Outcome = { kind: "oversize" } | { kind: "drop" } | { kind: "refused"; code: string | undefined; length: number };

/** What the protocol says happens to a datagram from a stranger when every REG must carry a token. */
function expectedOutcome(d: Uint8Array): Outcome {
  if (d.length > MAX_DATAGRAM) return { kind: "oversize" };
  if (!(d.length >= 4 && d[0] === 0x52 && d[1] === 0x45 && d[2] === 0x47 && d[3] === 0x3a)) return { kind: "drop" };
  let end = d.length;
  if (end > 4 && d[end - 1] === 0x0a) {
    end--;
    if (end > 4 && d[end - 1] === 0x0d) end--;
  }
  // After the id, tokens after single spaces: a cookie, the move flag, a peer token (docs/protocol.md).
  const [id, ...tokens] = String.fromCharCode(...d.subarray(4, end)).split(" ");
  const known = (t: string) => /^[A-Za-z0-9_-]{16}$/.test(t) || t === "move" || /^peer=[A-Za-z0-9_-]{16,43}$/.test(t);
  const distinct = new Set(tokens.map((t) => (t.startsWith("peer=") ? "peer" : t.length === 16 ? "cookie" : t))).size === tokens.length;
  if (tokens.length > 0 && tokens.every(known) && distinct) end = 4 + id!.length;
  // Tokens that do not parse: the whole field is the id, less a trailing " <16 base64url characters>" (a cookie).
  else {
    const tail = String.fromCharCode(...d.subarray(Math.max(4, end - 17), end));
    if (end - 4 > 17 && /^ [A-Za-z0-9_-]{16}$/.test(tail)) end -= 17;
  }
  const n = end - 4;
  if (n === 0) return { kind: "refused", code: "empty-id", length: d.length };
  if (n > 128) return { kind: "refused", code: "long-id", length: d.length };
  for (let i = 4; i < end; i++) if (d[i]! < 0x21 || d[i]! > 0x7e) return { kind: "refused", code: "bad-id", length: d.length };
  // Without tokens: ACK, or rate. With tokens (verified mode): auth, or a RETRY for a genuine token.
  return { kind: "refused", code: undefined, length: d.length };
}

/** Paired sessions with traffic both ways; counts what each side sent and got. */
async function realSessions(relay: TestRelay, peers: TestPeer[], auth: boolean) {
  const pairs: { a: TestPeer; b: TestPeer; sent: number; got: number }[] = [];
  for (const [ha, hb] of PAIR_HOSTS) {
    const a = await TestPeer.open(ha);
    const b = await TestPeer.open(hb);
    peers.push(a, b);
    const session = `real-${crypto.randomUUID()}`;
    expect(await register(a, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    expect(await register(b, relay.port, fieldFor(session, auth))).toBe("ACK\n");
    pairs.push({ a, b, sent: 0, got: 0 });
  }
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const p of pairs) {
        p.a.send(new Uint8Array([0x41, 0x5a, p.sent & 255, 1, 2, 3, 4, 5, 6, 7]), relay.port);
        p.sent++;
      }
      await Bun.sleep(2); // pacing: steady traffic alongside the fuzzer, not synchronisation
    }
  })();
  const isTraffic = (r: { data: Uint8Array }) => r.data.length === 10 && r.data[1] === 0x5a;
  return {
    pairs,
    async stop() {
      running = false;
      await loop;
      // A marker after the traffic on each route (resent: the storm may have cost the first its
      // place in a buffer); what had not arrived before it was lost.
      for (const p of pairs) {
        await eventually(() => {
          p.a.send("end of traffic", relay.port);
          return p.b.inbox.some((r) => text(r.data) === "end of traffic");
        }, 10_000, 50);
        const end = p.b.inbox.findIndex((r) => text(r.data) === "end of traffic");
        p.got = p.b.inbox.splice(0).slice(0, end).filter(isTraffic).length;
      }
    },
  };
}

/** Sends from a fuzz socket, waiting when the socket's buffer is full rather than losing the datagram. */
async function sendAll(peer: TestPeer, data: Uint8Array, port: number): Promise<void> {
  while (!peer.socket.send(data, port, "127.0.0.1")) await Bun.sleep(1);
}

describe.each(planesUnderTest().flatMap((plane) => [[plane, true], [plane, false]] as const))(
  "datagram fuzzer against a live relay (%s plane, auth %p)",
  (plane, auth) => {
    let relay: TestRelay;
    const peers: TestPeer[] = [];
    afterEach(async () => {
      for (const p of peers.splice(0)) p.close();
      await relay?.stop();
    });

    it(`survives ${DATAGRAMS} random and mutated datagrams from ${FUZZ_HOSTS.length} hosts (seed ${SEED})`, async () => {
      ({ relay } = await startSecureRelay(
        plane,
        { secrets: auth ? [SECRET] : [], regRate: 50, regBurst: 10, maxSessions: 5000, maxSessionsPerHost: 64 },
        { config: { maxDatagramSize: MAX_DATAGRAM } },
      ));
      const r = prng(SEED + (auth ? 1 : 0) + (plane === "native" ? 2 : 0));
      const real = await realSessions(relay, peers, auth);
      const challengedBefore = relay.relay.table.stats.challenges; // the real peers' own RETRYs
      const fuzzers: TestPeer[] = [];
      for (const host of FUZZ_HOSTS) fuzzers.push(await TestPeer.open(host));
      peers.push(...fuzzers);
      const sentBy = new Map<TestPeer, Uint8Array[]>(fuzzers.map((f) => [f, []]));
      const expected = { oversize: 0, drop: 0, refused: 0, byCode: {} as Record<string, number> };
      const table = relay.relay.table;
      const handled = () => {
        const s = table.stats;
        const refusals = Object.values(s.refusals).reduce((a, b) => a + (b ?? 0), 0);
        return relay.relay.plane.counters().oversize + (s.drops["unknown-source"] ?? 0) + refusals + s.challenges + (s.drops["retry-budget"] ?? 0) + table.sessionCount;
      };
      const base = handled();
      let sent = 0;
      let batchBytes = 0;
      try {
        for (let i = 0; i < DATAGRAMS; i++) {
          const d = fuzzDatagram(r, SECRET);
          const from = fuzzers[r.int(fuzzers.length)]!;
          await sendAll(from, d, relay.port);
          sentBy.get(from)!.push(d);
          sent++;
          const o = expectedOutcome(d);
          if (o.kind === "oversize") expected.oversize++;
          else if (o.kind === "drop") expected.drop++;
          else {
            expected.refused++;
            if (o.code) expected.byCode[o.code] = (expected.byCode[o.code] ?? 0) + 1;
          }
          batchBytes += d.length;
          // Flow control: let the relay catch up so the kernel never drops and counts stay exact.
          if (auth && (i % 256 === 255 || batchBytes > 1_000_000)) {
            batchBytes = 0;
            await eventually(() => handled() - base >= sent, 10_000, 2).catch((e) => {
              throw new Error(`relay accounted for ${handled() - base} of ${sent} datagrams: ${JSON.stringify({ stats: table.stats, counters: relay.relay.plane.counters(), expected })}`);
            });
          } else if (!auth && (i % 256 === 255 || batchBytes > 1_000_000)) {
            // Pacing only: without tokens strangers pair up and forward, so there is no exact count to wait for.
            batchBytes = 0;
            await Bun.sleep(5);
          }
        }
        // Everything the fuzzer sent was dealt with before the replies and counters are read.
        if (auth) await eventually(() => handled() - base >= sent, 10_000);
        else await eventually(() => relay.relay.plane.counters().oversize === expected.oversize, 10_000);
      } finally {
        await real.stop();
      }

      // No crash, no internal error, and the real sessions kept forwarding.
      expect(relay.relay.internalErrors).toBe(0);
      for (const p of real.pairs) {
        expect(p.got).toBeGreaterThanOrEqual(Math.floor(p.sent * 0.99));
        p.a.send("after the storm", relay.port);
        await p.b.takeUntil("after the storm"); // behind, at most, a resent end-of-traffic marker
      }
      const stats = table.stats;
      const counters = relay.relay.plane.counters();
      expect(counters.oversize).toBe(expected.oversize);

      // Every reply is the relay's own and never longer than the request it answers: per source, in
      // order, one reply for each REG the data plane let through (UDP keeps order on loopback).
      for (const f of fuzzers) {
        const requests = sentBy.get(f)!.filter((d) => expectedOutcome(d).kind === "refused");
        // With tokens every request is answered exactly once: wait for all the answers.
        if (auth) await eventually(() => f.inbox.length >= requests.length, 10_000);
        const replies = f.inbox.splice(0).map((x) => text(x.data));
        if (!auth) {
          const own = replies.filter((t) => t === "ACK\n" || /^ERR( [a-z-]+)?\n$/.test(t));
          expect(own.length).toBeLessThanOrEqual(requests.length);
          continue;
        }
        expect(replies.length).toBe(requests.length);
        requests.forEach((d, i) => {
          const o = expectedOutcome(d) as { code: string | undefined; length: number };
          const reply = replies[i]!;
          expect(reply.length).toBeLessThanOrEqual(d.length);
          const allowed = (o.code ? [o.code] : ["auth"]).map((c) => (`ERR ${c}\n`.length <= d.length ? `ERR ${c}\n` : "ERR\n"));
          if (allowed.includes(reply)) return;
          expect(o.code).toBeUndefined();
          expect(reply).toMatch(/^RETRY [A-Za-z0-9_-]{16}\n$/); // a genuine token, asked for proof of its address
        });
      }
      for (const n of Object.values(stats.rebinds)) expect(n).toBe(0);
      if (auth) {
        // With tokens required no stranger creates state, and each datagram is accounted for once.
        expect(table.sessionCount).toBe(PAIR_HOSTS.length);
        expect(stats.drops["unknown-source"] ?? 0).toBe(expected.drop);
        const refusals = { ...stats.refusals };
        for (const [code, n] of Object.entries(expected.byCode)) expect(refusals[code as keyof typeof refusals]).toBe(n);
        const unproven = (refusals.auth ?? 0) + stats.challenges - challengedBefore + (stats.drops["retry-budget"] ?? 0);
        expect(unproven).toBe(expected.refused - Object.values(expected.byCode).reduce((a, b) => a + b, 0));
        // In verified mode REGs without a cookie never spend a source's rate (forged ones could
        // drain a real host's); and no fuzzed token passes authentication, so none is challenged.
        expect(refusals.rate ?? 0).toBe(0);
        expect(stats.challenges).toBe(challengedBefore);
        expect(refusals.auth ?? 0).toBeGreaterThan(0);
        expect(counters.controlQueueDrops).toBe(0);
      } else {
        expect(table.sessionCount).toBeLessThanOrEqual(5000);
        expect(table.sessionCount).toBeGreaterThan(PAIR_HOSTS.length);
      }
      const sizes = table.indexSizes();
      expect(sizes.peersByKey).toBe(sizes.peersById);
    }, 180_000);
  },
);
