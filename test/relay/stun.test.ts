/**
 * STUN Binding on the relay's port, on both data planes with real sockets: a stranger (or a peer
 * whose session still waits) gets its address back; a paired peer's STUN is its session's traffic
 * and goes to the partner unchanged; with STUN off the request is junk from an unknown source;
 * broken requests get nothing and unknown comprehension-required attributes a 420, and none of it
 * disturbs an established session. Answers are decoded here by hand (and FINGERPRINT recomputed
 * with a CRC-32 of this file's own), not only with the codec under test.
 */
import { describe, expect, it } from "bun:test";
import { DropReason } from "../../src/protocol/errors.ts";
import { encodeBindingRequest, readBindingSuccess } from "../../src/protocol/stun.ts";
import { planesUnderTest, relayHarness, register, type TestPeer } from "../utils.ts";

const COOKIE = 0x2112a442;
const FINGERPRINT = 0x8028;
const XOR_MAPPED_ADDRESS = 0x0020;
const MAPPED_ADDRESS = 0x0001;
const ERROR_CODE = 0x0009;
const UNKNOWN_ATTRIBUTES = 0x000a;
const RESPONSE_PORT = 0x0027;

/** CRC-32 (IEEE), written out here so FINGERPRINT is not checked with the code under test. */
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Attr {
  type: number;
  value: Uint8Array;
  /** Offset of the attribute header in the message. */
  at: number;
}

/** Header fields and attributes of a STUN message; throws on anything malformed. */
function parse(data: Uint8Array): { type: number; length: number; transaction: Uint8Array; attrs: Attr[] } {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < 20) throw new Error(`not STUN: ${data.length} bytes`);
  const length = v.getUint16(2);
  if (length + 20 !== data.length) throw new Error(`STUN length ${length} for ${data.length} bytes`);
  const attrs: Attr[] = [];
  for (let at = 20; at < data.length; ) {
    const type = v.getUint16(at);
    const len = v.getUint16(at + 2);
    if (at + 4 + len > data.length) throw new Error("attribute overruns the message");
    attrs.push({ type, value: data.slice(at + 4, at + 4 + len), at });
    at += 4 + ((len + 3) & ~3);
  }
  return { type: v.getUint16(0), length, transaction: data.slice(4, 20), attrs };
}

/** XOR-MAPPED-ADDRESS decoded by hand (RFC 8489 14.2). */
function xorMapped(value: Uint8Array, transaction: Uint8Array): { address: string; port: number } {
  const family = value[1];
  const port = ((value[2]! << 8) | value[3]!) ^ (COOKIE >>> 16);
  if (family === 0x01) return { address: [...value.slice(4, 8)].map((b, i) => b ^ transaction[i]!).join("."), port };
  const ip = [...value.slice(4, 20)].map((b, i) => b ^ transaction[i]!);
  const groups = Array.from({ length: 8 }, (_, i) => ((ip[2 * i]! << 8) | ip[2 * i + 1]!).toString(16));
  return { address: groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::"), port };
}

/** A STUN message from parts: `cookie` false makes a classic (RFC 3489) 16-byte transaction id. */
function message(type: number, attrs: { type: number; value: Uint8Array }[], options: { cookie?: boolean; fingerprint?: boolean } = {}) {
  const transaction = crypto.getRandomValues(new Uint8Array(16));
  if (options.cookie !== false) new DataView(transaction.buffer).setUint32(0, COOKIE);
  let length = attrs.reduce((n, a) => n + 4 + ((a.value.length + 3) & ~3), 0);
  if (options.fingerprint) length += 8;
  const out = new Uint8Array(20 + length);
  const v = new DataView(out.buffer);
  v.setUint16(0, type);
  v.setUint16(2, length);
  out.set(transaction, 4);
  let at = 20;
  for (const a of attrs) {
    v.setUint16(at, a.type);
    v.setUint16(at + 2, a.value.length);
    out.set(a.value, at + 4);
    at += 4 + ((a.value.length + 3) & ~3);
  }
  if (options.fingerprint) {
    v.setUint16(at, FINGERPRINT);
    v.setUint16(at + 2, 4);
    v.setUint32(at + 4, (crc32(out.subarray(0, at)) ^ 0x5354554e) >>> 0);
  }
  return { datagram: out, transaction };
}

const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y));
const at = (peer: TestPeer) => ({ address: peer.host, port: peer.port });

/** Whether this host can bind ::1 (the IPv6 case is skipped without it). */
const ipv6 = await Bun.udpSocket({ hostname: "::1", port: 0 }).then(
  (s) => (s.close(), true),
  () => false,
);
if (!ipv6) console.log("STUN over IPv6 skipped: cannot bind ::1 on this host");

describe.each(planesUnderTest())("STUN on the relay port (%s plane)", (plane) => {
  const h = relayHarness(plane);

  it("answers a stranger with its own address and port; FINGERPRINT only when asked; a bare request gets 32 bytes", async () => {
    const relay = await h.start();
    const stranger = await h.open("127.0.0.31");

    const asked = encodeBindingRequest(); // with FINGERPRINT
    stranger.send(asked.datagram, relay.port);
    const answer = await stranger.next();
    expect([answer.address, answer.port]).toEqual(["127.0.0.1", relay.port]);
    expect(readBindingSuccess(answer.data, asked.transaction)?.mapped).toEqual(at(stranger));
    const m = parse(answer.data);
    expect(m.type).toBe(0x0101);
    expect(same(m.transaction, asked.transaction)).toBe(true);
    expect(m.attrs.map((a) => a.type)).toEqual([XOR_MAPPED_ADDRESS, FINGERPRINT]);
    expect(xorMapped(m.attrs[0]!.value, asked.transaction)).toEqual(at(stranger));
    const fp = m.attrs.at(-1)!;
    expect(fp.value.length).toBe(4);
    expect(new DataView(fp.value.buffer).getUint32(0)).toBe((crc32(answer.data.subarray(0, fp.at)) ^ 0x5354554e) >>> 0);

    // Type 0x0001, length 0, the cookie, a 12-byte id: nothing else.
    const bare = message(0x0001, []);
    expect(bare.datagram.length).toBe(20);
    stranger.send(bare.datagram, relay.port);
    const small = await stranger.next();
    expect(small.data.length).toBe(32);
    const s = parse(small.data);
    expect(s.type).toBe(0x0101);
    expect(same(s.transaction, bare.transaction)).toBe(true);
    expect(s.attrs.map((a) => a.type)).toEqual([XOR_MAPPED_ADDRESS]);
    expect(xorMapped(s.attrs[0]!.value, bare.transaction)).toEqual(at(stranger));
    expect(relay.stun!.counters).toMatchObject({ answered: 2, rateLimited: 0, malformed: 0, bytesIn: asked.datagram.length + 20, bytesOut: answer.data.length + 32 });
    expect(relay.relay.table.sessionCount).toBe(0);
  });

  it("answers a classic (RFC 3489) request with a plain MAPPED-ADDRESS and its 16-byte id", async () => {
    const relay = await h.start();
    const stranger = await h.open("127.0.0.32");
    const classic = message(0x0001, [], { cookie: false });
    stranger.send(classic.datagram, relay.port);
    const answer = await stranger.next();
    const m = parse(answer.data);
    expect(m.type).toBe(0x0101);
    expect(same(m.transaction, classic.transaction)).toBe(true);
    expect(m.attrs.map((a) => a.type)).toEqual([MAPPED_ADDRESS]);
    const value = m.attrs[0]!.value;
    expect([value[1], (value[2]! << 8) | value[3]!, [...value.slice(4, 8)].join(".")]).toEqual([0x01, stranger.port, "127.0.0.32"]);
  });

  it.skipIf(!ipv6)("answers an IPv6 requester (::1) with 44 bytes when the relay is bound to ::", async () => {
    const relay = await h.start({ config: { host: "::" } });
    const v6 = await h.open("::1");
    const bare = message(0x0001, []);
    v6.send(bare.datagram, relay.port, "::1");
    const answer = await v6.next();
    expect(answer.data.length).toBe(44);
    const m = parse(answer.data);
    expect(m.attrs.map((a) => a.type)).toEqual([XOR_MAPPED_ADDRESS]);
    expect(xorMapped(m.attrs[0]!.value, bare.transaction)).toEqual({ address: "::1", port: v6.port });
    expect(readBindingSuccess(answer.data, bare.transaction)?.mapped).toEqual({ address: "::1", port: v6.port });
    // An IPv4 requester of the same dual-stack socket is told its IPv4 address (not ::ffff:...): 32 bytes.
    const v4 = await h.open("127.0.0.44");
    const second = message(0x0001, []);
    v4.send(second.datagram, relay.port, "127.0.0.1");
    const small = await v4.next();
    expect(small.data.length).toBe(32);
    expect(xorMapped(parse(small.data).attrs[0]!.value, second.transaction)).toEqual(at(v4));
  });

  it("forwards a paired peer's STUN byte for byte to its partner and never answers it", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair(["127.0.0.33", "127.0.0.34"]);
    const requests = [encodeBindingRequest().datagram, message(0x0001, []).datagram, encodeBindingRequest({ askOtherAddress: true, fingerprint: false }).datagram];
    for (const r of requests) a.send(r, relay.port);
    const fromB = encodeBindingRequest().datagram;
    b.send(fromB, relay.port);
    const atB = [await b.next(), await b.next(), await b.next()];
    expect(atB.every((r, i) => same(r.data, requests[i]!))).toBe(true);
    expect(same((await a.next()).data, fromB)).toBe(true);
    // Were an answer sent, it would have left the relay before the partner got the request; a
    // marker along the relay-to-sender path comes after it.
    b.send("marker-to-a", relay.port);
    a.send("marker-to-b", relay.port);
    expect(await a.takeUntil("marker-to-a")).toEqual([]);
    expect(await b.takeUntil("marker-to-b")).toEqual([]);
    // A stranger's request after all that is the responder's first and only one.
    const stranger = await h.open("127.0.0.35");
    const asked = encodeBindingRequest();
    stranger.send(asked.datagram, relay.port);
    expect(readBindingSuccess((await stranger.next()).data, asked.transaction)?.mapped).toEqual(at(stranger));
    expect(relay.stun!.counters).toEqual({
      answered: 1,
      unknownAttribute: 0,
      rateLimited: 0,
      budget: 0,
      malformed: 0,
      changeRefused: 0,
      bytesIn: asked.datagram.length,
      bytesOut: 40,
    });
  });

  it("forwards a paired peer's STUN that reaches the control plane (no route: a partner on another relay) instead of answering it", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair(["127.0.0.42", "127.0.0.43"]);
    // Both planes forward a routed peer's STUN themselves; a peer whose partner is elsewhere has no
    // route, and the plane hands its datagrams up like this.
    const request = encodeBindingRequest().datagram;
    relay.relay.handleBatch([{ data: request, address: a.host, port: a.port, routeId: -1, observed: false }]);
    expect(same((await b.next()).data, request)).toBe(true);
    b.send("marker", relay.port);
    expect(await a.takeUntil("marker")).toEqual([]);
    expect(relay.stun!.counters).toMatchObject({ answered: 0, bytesIn: 0 });
  });

  it("answers a peer whose session still waits for its partner, and does not hold the request for the partner", async () => {
    const relay = await h.start();
    const a = await h.open("127.0.0.36");
    const session = crypto.randomUUID();
    expect(await register(a, relay.port, session)).toBe("ACK\n");
    const asked = encodeBindingRequest();
    a.send(asked.datagram, relay.port);
    const answer = await a.next();
    expect(readBindingSuccess(answer.data, asked.transaction)?.mapped).toEqual(at(a));
    expect(relay.stun!.counters.answered).toBe(1);
    expect(relay.relay.table.stats.heldAccepted).toBe(0);
    // The partner arrives: its first datagram is its ACK, and nothing but A's marker follows.
    const b = await h.open("127.0.0.37");
    expect(await register(b, relay.port, session)).toBe("ACK\n");
    a.send("marker", relay.port);
    expect(await b.takeUntil("marker")).toEqual([]);
  });

  it("with STUN off, a stranger's request is junk from an unknown source: dropped, no answer", async () => {
    const relay = await h.start({ config: { stun: false } });
    expect(relay.stun).toBeUndefined();
    const stranger = await h.open("127.0.0.38");
    const table = relay.relay.table;
    expect(table.stats.drops[DropReason.UnknownSource] ?? 0).toBe(0);
    stranger.send(encodeBindingRequest().datagram, relay.port);
    stranger.send(message(0x0001, []).datagram, relay.port);
    // The REG after them from the same socket: its ACK is the first datagram back.
    stranger.send(`REG:${crypto.randomUUID()}\n`, relay.port);
    expect(await stranger.nextText()).toBe("ACK\n");
    expect(table.stats.drops[DropReason.UnknownSource]).toBe(2);
    expect(stranger.inbox).toEqual([]);
  });

  it("does not answer broken requests, answers unknown comprehension-required attributes with 420, and leaves a live session alone", async () => {
    const relay = await h.start();
    const { a, b } = await h.pair(["127.0.0.39", "127.0.0.40"]);
    const stranger = await h.open("127.0.0.41");

    const badFingerprint = message(0x0001, [], { fingerprint: true }).datagram;
    badFingerprint[badFingerprint.length - 1]! ^= 0xff;
    // USERNAME claiming 100 bytes in a message of 8 bytes of attributes.
    const overrun = message(0x0001, [{ type: 0x0006, value: new Uint8Array(4) }]).datagram;
    new DataView(overrun.buffer).setUint16(22, 100);
    // A valid FINGERPRINT (over the final length) followed by a USERNAME.
    const trailing = message(0x0001, [], { fingerprint: true }).datagram;
    const withTail = new Uint8Array(trailing.length + 8);
    withTail.set(trailing);
    new DataView(withTail.buffer).setUint16(2, trailing.length - 20 + 8);
    new DataView(withTail.buffer).setUint32(24, (crc32(withTail.subarray(0, 20)) ^ 0x5354554e) >>> 0);
    withTail.set([0x00, 0x06, 0x00, 0x04, 0x61, 0x62, 0x63, 0x64], trailing.length);
    const unknown = message(0x0001, [{ type: 0x7777, value: new Uint8Array(4) }]);
    const responsePort = message(0x0001, [{ type: RESPONSE_PORT, value: new Uint8Array([0x30, 0x39, 0, 0]) }], { fingerprint: true });
    const good = encodeBindingRequest();
    for (const d of [badFingerprint, overrun, withTail, unknown.datagram, responsePort.datagram, good.datagram]) stranger.send(d, relay.port);
    // Same socket, same order: once the good request's answer is in, the others were dealt with.
    const got = [await stranger.next(), await stranger.next(), await stranger.next()];
    expect(readBindingSuccess(got[2]!.data, good.transaction)?.mapped).toEqual(at(stranger));
    for (const [reply, request, listed] of [
      [got[0]!, unknown, 0x7777],
      [got[1]!, responsePort, RESPONSE_PORT],
    ] as const) {
      const m = parse(reply.data);
      expect(m.type).toBe(0x0111);
      expect(same(m.transaction, request.transaction)).toBe(true);
      const code = m.attrs.find((x) => x.type === ERROR_CODE)!.value;
      expect((code[2]! & 7) * 100 + code[3]!).toBe(420);
      const list = m.attrs.find((x) => x.type === UNKNOWN_ATTRIBUTES)!.value;
      expect([...Array(list.length / 2).keys()].map((i) => (list[2 * i]! << 8) | list[2 * i + 1]!)).toEqual([listed]);
    }
    // The request that had a FINGERPRINT gets one back.
    expect(parse(got[1]!.data).attrs.at(-1)!.type).toBe(FINGERPRINT);
    expect(parse(got[0]!.data).attrs.at(-1)!.type).toBe(UNKNOWN_ATTRIBUTES);
    expect(relay.stun!.counters).toMatchObject({ answered: 1, unknownAttribute: 2, malformed: 3, rateLimited: 0 });
    // STUN, even broken, is not junk from an unknown source.
    expect(relay.relay.table.stats.drops[DropReason.UnknownSource] ?? 0).toBe(0);

    // The session is untouched: both directions forward, a peer's broken STUN included.
    a.send(badFingerprint, relay.port);
    a.send("a-to-b", relay.port);
    b.send("b-to-a", relay.port);
    const toB = await b.takeUntil("a-to-b");
    expect(toB.length).toBe(1);
    expect(same(toB[0]!.data, badFingerprint)).toBe(true);
    expect(await a.takeUntil("b-to-a")).toEqual([]);
    expect(relay.relay.table.pairedCount).toBe(1);
    expect(relay.stun!.counters.malformed).toBe(3);
  });
});
