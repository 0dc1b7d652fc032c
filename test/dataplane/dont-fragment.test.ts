/**
 * What the relay sends leaves whole, with the Don't Fragment bit (QUIC datagrams must not be
 * fragmented, RFC 9000 section 14), on both planes: forwarded datagrams and its own replies. The
 * attacker forges an ICMP "fragmentation needed" claiming a tiny path MTU towards a peer; a
 * relay that used the kernel's path MTU would then cut that peer's datagrams into fragments (and
 * a QUIC peer's path MTU probes through it would succeed when they should not). Captured on the
 * wire with a packet socket; root only (raw and packet sockets), skipped with the reason otherwise.
 * The peers have addresses of their own: the forged path MTU would stay with the kernel for
 * minutes; the test flushes it.
 */
import { afterAll, describe, expect, it } from "bun:test";

import type { TestPeer } from "../utils.ts";
import { eventually, planesUnderTest, relayHarness, text } from "../utils.ts";
import { Forger } from "../support/forge.ts";
import { type Captured, Sniffer } from "../support/sniff.ts";

const sniffer = Sniffer.open();
const forger = Forger.open();
const hasIp = Bun.which("ip") !== null;
const why = typeof sniffer === "string" ? sniffer : typeof forger === "string" ? forger : !hasIp ? "iproute2 (ip) is not installed" : undefined;
if (why) console.warn(`don't-fragment tests skipped: ${why}`);
const suite = why ? describe.skip : describe;

const HOSTS: [string, string] = ["127.0.0.211", "127.0.0.212"];
/** Large enough to be cut by the forged path MTU, small enough for any real path. */
const LENGTH = 1200;

/** The path MTU the kernel keeps for `address` (`ip route get`), or undefined when it keeps none. */
function pathMtu(address: string): number | undefined {
  const out = Bun.spawnSync(["ip", "route", "get", address]).stdout.toString();
  const mtu = /\bmtu (\d+)/.exec(out);
  return mtu ? Number(mtu[1]) : undefined;
}

afterAll(() => {
  if (typeof sniffer !== "string") sniffer.close();
  if (typeof forger !== "string") forger.close();
});

suite.each(planesUnderTest())("%s plane: Don't Fragment", (plane) => {
  const sniff = sniffer as Sniffer;
  const forge = forger as Forger;
  const h = relayHarness(plane);

  /**
   * Sends LENGTH bytes from `a` through the relay and returns the datagram as captured leaving
   * the relay for `b`, whole; undefined when no whole one left in five attempts (the packet socket
   * may drop under other loopback traffic; fragments are never whole).
   */
  const forwarded = async (a: TestPeer, b: TestPeer, relayPort: number): Promise<Captured | undefined> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      sniff.drain();
      const payload = new Uint8Array(LENGTH).fill(0x30 + attempt);
      a.send(payload, relayPort);
      expect((await b.next()).data).toEqual(payload);
      const out = sniff.drain().find((c) => c.from.port === relayPort && c.to.address === b.host && c.to.port === b.port);
      if (out) return out;
    }
    return undefined;
  };

  it("forwarded datagrams and the relay's own replies leave whole, with the bit set", async () => {
    const relay = await h.start();
    sniff.drain();
    const { a, b } = await h.pair(HOSTS);
    const acks = sniff.drain().filter((c) => c.from.port === relay.port && text(c.data) === "ACK\n");
    expect(acks.length).toBeGreaterThan(0);
    expect(acks.every((c) => c.dontFragment)).toBe(true);
    const out = await forwarded(a, b, relay.port);
    expect(out?.data.length).toBe(LENGTH);
    expect(out?.dontFragment).toBe(true);
  });

  it("a forged ICMP 'fragmentation needed' towards a peer does not get its datagrams fragmented", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair(HOSTS);
    const relayAt = { address: relay.host, port: relay.port };
    // As if a router between the relay and B could pass 552 bytes only (the kernel's floor).
    forge.sendFragmentationNeeded("127.0.0.213", relayAt, { from: relayAt, to: { address: b.host, port: b.port }, length: LENGTH }, 552);
    try {
      // The kernel believed it: it now keeps that path MTU towards B.
      await eventually(() => pathMtu(b.host) === 552);
      const out = await forwarded(a, b, relay.port);
      expect(out?.data.length).toBe(LENGTH);
      expect(out?.dontFragment).toBe(true);
    } finally {
      // The forged path MTU would outlive the test by minutes (ip_rt_mtu_expires).
      Bun.spawnSync(["ip", "route", "flush", "cache"]);
    }
  });
});
