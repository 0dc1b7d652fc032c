/**
 * Peers of sessions spread over a fleet's relays, for the fleet suites: register, pair a peer on
 * one relay with a peer on another, and check that datagrams go both ways.
 */
import { expect } from "bun:test";
import type { TestPeer } from "../utils.ts";

/** Where a relay listens: all the peers need of it. */
export interface RelayAt {
  host: string;
  port: number;
}

export interface FleetPair {
  a: TestPeer;
  b: TestPeer;
  session: string;
  /** a's relay and b's relay. */
  ra: RelayAt;
  rb: RelayAt;
}

const decoder = new TextDecoder();

/** Sends `REG:<session>` to the relay; the first reply as text (throws when none comes in time). */
export async function registerAt(peer: TestPeer, relay: RelayAt, session: string, timeoutMs = 3000): Promise<string> {
  peer.send(`REG:${session}\n`, relay.port, relay.host);
  return peer.nextText(timeoutMs);
}

/** Opens a peer on each of `hosts` and registers them in one new session, a on `ra`, b on `rb`. */
export async function pairAcross(open: (host: string) => Promise<TestPeer>, ra: RelayAt, rb: RelayAt, hosts: [string, string] = ["127.0.0.2", "127.0.0.3"]): Promise<FleetPair> {
  const a = await open(hosts[0]);
  const b = await open(hosts[1]);
  const session = crypto.randomUUID();
  expect(await registerAt(a, ra, session)).toBe("ACK\n");
  expect(await registerAt(b, rb, session)).toBe("ACK\n");
  return { a, b, session, ra, rb };
}

/** One datagram each way, labelled; fails unless each arrives, unchanged, as the next thing received. */
export async function roundTrip(p: FleetPair, label: string, timeoutMs = 5000): Promise<void> {
  p.a.send(`${label}>`, p.ra.port, p.ra.host);
  expect(decoder.decode((await p.b.next(timeoutMs)).data)).toBe(`${label}>`);
  p.b.send(`${label}<`, p.rb.port, p.rb.host);
  expect(decoder.decode((await p.a.next(timeoutMs)).data)).toBe(`${label}<`);
}

/**
 * A round trip that may fail while the relays are still agreeing (a move under way): tried with a
 * short deadline until one succeeds, stale datagrams of failed tries dropped. The number of failed
 * tries, for the log.
 */
export async function roundTripOnceSettled(p: FleetPair, label: string, tries = 40, eachMs = 250): Promise<number> {
  for (let failed = 0; ; failed++) {
    try {
      await roundTrip(p, `${label} ${failed}`, eachMs);
      return failed;
    } catch (error) {
      if (failed >= tries) throw error;
      p.a.inbox.length = 0;
      p.b.inbox.length = 0;
    }
  }
}
