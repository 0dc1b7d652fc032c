import { describe, expect, it } from "bun:test";
import { createCipheriv, createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import {
  BRIDGE_TAG_LENGTH,
  BRIDGE_VERSION,
  BridgeCodec,
  type BridgeCodecOptions,
  type BridgeDecode,
  BridgeConfigError,
  BridgeEncodeError,
  BridgeError,
  BridgeFrameType,
  bridgeKeyId,
  bridgeOverhead,
  isBridgeDatagram,
} from "../../src/fleet/bridge-codec.ts";
import { type BridgeNonces, LocalNonces } from "../../src/fleet/bridge-nonces.ts";
import { REPLAY_WINDOW_SIZE } from "../../src/fleet/replay-window.ts";
import { mulberry32 } from "../support/prng.ts";

const OLD = "fleet-secret-for-tests-0123456789";
const NEW = "fleet-secret-after-rotation-abcdef";
const A = "203.0.113.10:4433";
const B = "203.0.113.11:4433";
const C = "198.51.100.7:4433";
const T = 1_780_000_000_000;

/** A clock the test moves by hand. */
function manualClock(start = T) {
  const clock = { now: start, read: () => clock.now };
  return clock;
}

function relay(self: string, secrets: string[] = [OLD], options: Partial<BridgeCodecOptions> = {}): BridgeCodec {
  return new BridgeCodec({ self, secrets, clock: () => T, ...options });
}

/** The header fields, read independently of the codec. */
function header(wire: Uint8Array) {
  const view = new DataView(wire.buffer, wire.byteOffset, wire.byteLength);
  const u48 = (at: number) => view.getUint16(at) * 2 ** 32 + view.getUint32(at + 2);
  return { version: wire[4], type: wire[5], keyId: wire[6], sidLength: wire[7], sentAt: u48(8), epoch: u48(14), counter: view.getUint32(20) };
}

function withByte(wire: Uint8Array, at: number, value: number): Uint8Array {
  const copy = wire.slice();
  copy[at] = value;
  return copy;
}

/** K(sender -> receiver) as the format defines it, computed without the codec. */
function pairKeyByHand(secret: string, sender: string, receiver: string): Buffer {
  return createHmac("sha256", secret).update(`quic-relay bridge v3\0${sender}\0${receiver}`).digest().subarray(0, 16);
}

/** The GMAC tag of a frame as the format defines it, computed without the codec. */
function tagByHand(key: Uint8Array, wire: Uint8Array): Buffer {
  const body = wire.subarray(0, wire.length - BRIDGE_TAG_LENGTH);
  const iv = Buffer.concat([wire.subarray(14, 24), Buffer.alloc(2)]);
  const gcm = createCipheriv("aes-128-gcm", key, iv);
  gcm.setAAD(body);
  expect(gcm.update(new Uint8Array(0)).length + gcm.final().length).toBe(0);
  return gcm.getAuthTag();
}

const payload = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const rejected = (error: BridgeError): BridgeDecode => ({ ok: false, error });

describe("bridge codec: format and keys", () => {
  it("round-trips data frames of every size, unchanged", () => {
    const a = relay(A);
    const b = relay(B);
    for (const size of [0, 1, 63, 1200, 1500, 9000, 65_000]) {
      const sent = payload(size);
      const wire = a.encode(B, "session-1", sent);
      expect(wire.length).toBe(sent.length + bridgeOverhead(9));
      expect(isBridgeDatagram(wire)).toBe(true);
      const got = b.decode(A, wire);
      expect(got).toEqual({ ok: true, frame: { type: BridgeFrameType.Data, sessionId: "session-1", payload: sent, sentAt: T } });
      if (got.ok) expect(got.frame.payload.buffer).toBe(wire.buffer);
    }
  });

  it.each([
    ["ping", BridgeFrameType.Ping, (c: BridgeCodec, to: string, p: Uint8Array) => c.encodePing(to, p)],
    ["pong", BridgeFrameType.Pong, (c: BridgeCodec, to: string, p: Uint8Array) => c.encodePong(to, p)],
  ] as const)("round-trips a %s with its payload and no session id", (_, type, encode) => {
    const nonce = payload(8);
    const wire = encode(relay(A), B, nonce);
    expect(wire.length).toBe(bridgeOverhead(0) + 8);
    expect(header(wire)).toMatchObject({ type, sidLength: 0 });
    expect(relay(B).decode(A, wire)).toEqual({ ok: true, frame: { type, sessionId: "", payload: nonce, sentAt: T } });
  });

  it("lays the frame out as specified, tagged under the key of the directed pair", () => {
    const wire = relay(A).encode(B, "abc", new Uint8Array([9, 8, 7]));
    expect(BRIDGE_VERSION).toBe(3);
    expect(Array.from(wire.subarray(0, 4))).toEqual([0x00, 0x71, 0x72, 0x62]);
    const keyId = createHash("sha256").update(`quic-relay bridge key id\0${OLD}`).digest()[0];
    expect(header(wire)).toEqual({ version: BRIDGE_VERSION, type: 0, keyId, sidLength: 3, sentAt: T, epoch: T, counter: 0 });
    expect(bridgeKeyId(OLD)).toBe(keyId!);
    expect(new TextDecoder().decode(wire.subarray(24, 27))).toBe("abc");
    expect(Array.from(wire.subarray(27, 30))).toEqual([9, 8, 7]);
    // GMAC: AES-128-GCM, key K(A -> B), IV = epoch | counter | 0x0000, no plaintext, all of the frame before the tag as AAD.
    const key = createHmac("sha256", OLD).update(`quic-relay bridge v3\0${A}\0${B}`).digest().subarray(0, 16);
    const iv = Buffer.alloc(12);
    iv.writeUIntBE(T, 0, 6);
    iv.writeUInt32BE(0, 6);
    const gcm = createCipheriv("aes-128-gcm", key, iv);
    gcm.setAAD(wire.subarray(0, 30));
    gcm.final();
    expect(Array.from(wire.subarray(30))).toEqual(Array.from(gcm.getAuthTag()));
    // The nonce is part of the IV: the next frame's tag differs although nothing else but the counter does.
    const second = relay(A);
    second.encode(B, "abc", new Uint8Array([9, 8, 7]));
    const next = second.encode(B, "abc", new Uint8Array([9, 8, 7]));
    expect(header(next).counter).toBe(1);
    expect(Array.from(next.subarray(30))).toEqual(Array.from(tagByHand(key, next)));
  });

  it("refuses a genuine version 2 frame as bad-version", () => {
    // The v2 layout, tagged as v2 did (HMAC-SHA256 under the v2 pair key, truncated): authentic but no longer spoken.
    const wire = new Uint8Array(24 + 1 + 4 + BRIDGE_TAG_LENGTH);
    const view = new DataView(wire.buffer);
    wire.set([0x00, 0x71, 0x72, 0x62, 2, BridgeFrameType.Data, bridgeKeyId(OLD), 1]);
    view.setUint16(8, Math.floor(T / 2 ** 32));
    view.setUint32(10, T % 2 ** 32);
    view.setUint16(14, Math.floor(T / 2 ** 32));
    view.setUint32(16, T % 2 ** 32);
    wire[24] = "s".charCodeAt(0);
    wire.set([1, 2, 3, 4], 25);
    const pair = createHmac("sha256", OLD).update(`quic-relay bridge v2\0${A}\0${B}`).digest();
    wire.set(createHmac("sha256", pair).update(wire.subarray(0, 29)).digest().subarray(0, BRIDGE_TAG_LENGTH), 29);
    expect(header(wire)).toEqual({ version: 2, type: 0, keyId: bridgeKeyId(OLD), sidLength: 1, sentAt: T, epoch: T, counter: 0 });
    expect(relay(B).decode(A, wire)).toEqual(rejected(BridgeError.BadVersion));
    // The same frame claiming version 3 fails on its tag.
    expect(relay(B).decode(A, withByte(wire, 4, 3))).toEqual(rejected(BridgeError.BadTag));
  });

  it("pairKeys gives the keys frames are tagged and verified with", () => {
    const a = relay(A, [NEW, OLD]);
    const b = relay(B, [OLD, NEW]);
    const keysA = a.pairKeys(B);
    const keysB = b.pairKeys(A);
    expect(keysA.tx).toEqual({ id: bridgeKeyId(NEW), key: new Uint8Array(pairKeyByHand(NEW, A, B)) });
    expect(keysA.tx.key.length).toBe(16);
    expect(keysA.rx).toEqual([
      { id: bridgeKeyId(NEW), key: new Uint8Array(pairKeyByHand(NEW, B, A)) },
      { id: bridgeKeyId(OLD), key: new Uint8Array(pairKeyByHand(OLD, B, A)) },
    ]);
    expect(keysB.tx).toEqual({ id: bridgeKeyId(OLD), key: new Uint8Array(pairKeyByHand(OLD, B, A)) });
    // What one relay sends under is what the other verifies with, under the same key id.
    expect(keysB.rx.find((k) => k.id === keysA.tx.id)).toEqual(keysA.tx);
    expect(keysA.rx.find((k) => k.id === keysB.tx.id)).toEqual(keysB.tx);
    for (const [from, to, fromId, toId, keys] of [[a, b, A, B, keysA], [b, a, B, A, keysB]] as const) {
      const wire = from.encode(toId, "session-1", payload(1200));
      expect(header(wire).keyId).toBe(keys.tx.id);
      expect(Array.from(wire.subarray(wire.length - BRIDGE_TAG_LENGTH))).toEqual(Array.from(tagByHand(keys.tx.key, wire)));
      expect(to.decode(fromId, wire).ok).toBe(true);
    }
    // A frame made by hand from the keys verifies at the codec.
    const made = a.encode(B, "session-1", payload(50));
    new DataView(made.buffer).setUint32(20, 77); // a nonce the codec did not hand out
    made.set(tagByHand(keysA.tx.key, made), made.length - BRIDGE_TAG_LENGTH);
    expect(b.decode(A, made).ok).toBe(true);
    // Copies: changing them changes neither the codec nor later answers.
    keysA.tx.key.fill(0);
    expect(a.pairKeys(B).tx.key).toEqual(new Uint8Array(pairKeyByHand(NEW, A, B)));
    expect(b.decode(A, a.encode(B, "s", payload(3))).ok).toBe(true);
  });

  it("verifies only for the receiver the frame was made for", () => {
    const wire = relay(A).encode(B, "s", payload(20));
    expect(relay(C).decode(A, wire)).toEqual(rejected(BridgeError.BadTag));
    expect(relay(B).decode(A, wire).ok).toBe(true);
  });

  it("verifies only for the sender the receiver names", () => {
    const wire = relay(A).encode(B, "s", payload(20));
    const b = relay(B);
    expect(b.decode(C, wire)).toEqual(rejected(BridgeError.BadTag));
    expect(b.decode(B, wire)).toEqual(rejected(BridgeError.BadTag));
    expect(b.decode(A, wire).ok).toBe(true);
  });

  it("rejects any single flipped bit, and the forgeries leave the genuine frame deliverable", () => {
    const wire = relay(A).encode(B, "abc", payload(40));
    const b = relay(B);
    for (let i = 0; i < wire.length; i++) {
      for (const bit of [0x01, 0x80]) expect(b.decode(A, withByte(wire, i, wire[i]! ^ bit)).ok).toBe(false);
    }
    expect(b.decode(A, wire).ok).toBe(true);
  });

  it("rejects another secret: unknown key id, or a bad tag when the ids collide", () => {
    const wire = relay(A, [NEW]).encode(B, "s", payload(5));
    expect(bridgeKeyId(NEW)).not.toBe(bridgeKeyId(OLD));
    expect(relay(B, [OLD]).decode(A, wire)).toEqual(rejected(BridgeError.UnknownKey));
    let twin = 0;
    while (bridgeKeyId(`twin-${twin}`) !== bridgeKeyId(OLD)) twin++;
    const forged = relay(A, [`twin-${twin}`]).encode(B, "s", payload(5));
    expect(relay(B, [OLD]).decode(A, forged)).toEqual(rejected(BridgeError.BadTag));
    // Secrets sharing a key id are each tried.
    expect(relay(B, [OLD, `twin-${twin}`]).decode(A, forged).ok).toBe(true);
  });

  it("during rotation accepts frames under the old and the new secret", () => {
    const both = relay(B, [NEW, OLD]);
    expect(both.decode(A, relay(A, [OLD]).encode(B, "s", payload(3))).ok).toBe(true);
    expect(both.decode(C, relay(C, [NEW]).encode(B, "s", payload(3))).ok).toBe(true);
    expect(relay(B, [OLD]).decode(C, relay(C, [NEW]).encode(B, "s", payload(3)))).toEqual(rejected(BridgeError.UnknownKey));
  });

  it("sends under the new first secret after setSecrets", () => {
    const a = relay(A, [OLD]);
    const before = a.encode(B, "s", payload(3));
    a.setSecrets([NEW, OLD]);
    const after = a.encode(B, "s", payload(3));
    expect(header(after).keyId).toBe(bridgeKeyId(NEW));
    expect(relay(B, [OLD]).decode(A, after)).toEqual(rejected(BridgeError.UnknownKey));
    const b = relay(B, [NEW]);
    expect(b.decode(A, after).ok).toBe(true);
    expect(b.decode(A, before)).toEqual(rejected(BridgeError.UnknownKey));
    // The sequence goes on across the change of key.
    expect(header(after).counter).toBe(header(before).counter + 1);
  });

  it("refuses options it cannot work with", () => {
    expect(() => relay(A, [])).toThrow(BridgeConfigError);
    expect(() => relay(A, [""])).toThrow(BridgeConfigError);
    expect(() => relay("")).toThrow(BridgeConfigError);
    expect(() => relay("a\0b")).toThrow(BridgeConfigError);
    expect(() => relay(A, [OLD], { replayWindowMs: 0 })).toThrow(BridgeConfigError);
    expect(() => relay(A, [OLD], { startCounter: -1 })).toThrow(BridgeConfigError);
    expect(() => relay(A, [OLD], { startCounter: 2 ** 32 })).toThrow(BridgeConfigError);
    expect(() => relay(A).setSecrets([])).toThrow(BridgeConfigError);
  });

  it("refuses to encode session ids the protocol does not allow", () => {
    expect(() => relay(A).encode(B, "", payload(1))).toThrow(BridgeEncodeError);
    expect(() => relay(A).encode(B, "x".repeat(129), payload(1))).toThrow(BridgeEncodeError);
    expect(relay(A).encode(B, "x".repeat(128), payload(1)).length).toBe(bridgeOverhead(128) + 1);
  });

  it("names the error: length, magic, version, type, session id length, key", () => {
    const wire = relay(A).encode(B, "abc", payload(10));
    const ping = relay(A).encodePing(B, payload(8));
    const b = relay(B);
    for (let n = 0; n < bridgeOverhead(0); n++) expect(b.decode(A, wire.subarray(0, n))).toEqual(rejected(BridgeError.Truncated));
    expect(b.decode(A, withByte(wire, 0, 0x51))).toEqual(rejected(BridgeError.BadMagic));
    for (const v of [0, 1, 2, 4, 255]) expect(b.decode(A, withByte(wire, 4, v))).toEqual(rejected(BridgeError.BadVersion));
    for (const t of [3, 4, 255]) expect(b.decode(A, withByte(wire, 5, t))).toEqual(rejected(BridgeError.BadType));
    expect(b.decode(A, withByte(wire, 7, 0))).toEqual(rejected(BridgeError.BadSessionId));
    expect(b.decode(A, withByte(wire, 7, 129))).toEqual(rejected(BridgeError.BadSessionId));
    expect(b.decode(A, withByte(ping, 7, 1))).toEqual(rejected(BridgeError.BadSessionId));
    expect(b.decode(A, withByte(wire, 5, BridgeFrameType.Ping))).toEqual(rejected(BridgeError.BadSessionId));
    expect(b.decode(A, withByte(wire, 7, 60))).toEqual(rejected(BridgeError.Truncated));
    expect(b.decode(A, withByte(wire, 6, wire[6]! ^ 1))).toEqual(rejected(BridgeError.UnknownKey));
    expect(b.decode(A, wire.subarray(0, wire.length - 1))).toEqual(rejected(BridgeError.BadTag));
    expect(b.decode(A, wire).ok).toBe(true);
  });

  it("tells bridge datagrams from QUIC and REG by the first bytes", () => {
    expect(isBridgeDatagram(new TextEncoder().encode("REG:abc\n"))).toBe(false);
    expect(isBridgeDatagram(new Uint8Array([0xc0, 0, 0, 0, 1]))).toBe(false);
    expect(isBridgeDatagram(new Uint8Array([0x40, 0x71, 0x72, 0x62]))).toBe(false);
    expect(isBridgeDatagram(new Uint8Array([0x00, 0x71, 0x72]))).toBe(false);
  });

  it("never throws on random input", () => {
    const b = relay(B, [OLD, NEW]);
    const prefix = [0x00, 0x71, 0x72, 0x62, BRIDGE_VERSION, 0, bridgeKeyId(OLD), 3];
    for (let i = 0; i < 2000; i++) {
      const junk = payload(i % 200);
      if (i % 2) junk.set(prefix.slice(0, Math.min(junk.length, 1 + (i % prefix.length))));
      expect(b.decode(i % 3 ? A : "", junk).ok).toBe(false);
    }
  });
});

describe("bridge codec: freshness and replay", () => {
  it("rejects sent-at outside the window, in either direction", () => {
    const wire = relay(A).encode(B, "s", payload(4));
    const at = (now: number) => relay(B, [OLD], { replayWindowMs: 1000, clock: () => now }).decode(A, wire);
    expect(at(T + 1000).ok).toBe(true);
    expect(at(T - 1000).ok).toBe(true);
    expect(at(T + 1001)).toEqual(rejected(BridgeError.Stale));
    expect(at(T - 1001)).toEqual(rejected(BridgeError.Stale));
  });

  it("rejects an epoch further ahead than the window", () => {
    const clock = manualClock(T + 60_000);
    const a = relay(A, [OLD], { clock: clock.read }); // its sequence cannot begin before now
    clock.now = T;
    const wire = a.encode(B, "s", payload(4));
    expect(header(wire)).toMatchObject({ sentAt: T, epoch: T + 60_000 });
    expect(relay(B).decode(A, wire)).toEqual(rejected(BridgeError.Stale));
    // At the edge of the window both times are in it.
    expect(relay(B, [OLD], { clock: () => T + 30_000 }).decode(A, wire).ok).toBe(true);
  });

  it("delivers a frame once, however often it is replayed", () => {
    const wire = relay(A).encode(B, "s", payload(4));
    const b = relay(B);
    const results = Array.from({ length: 100 }, () => b.decode(A, wire));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results[0]!.ok).toBe(true);
    expect(results.slice(1).every((r) => !r.ok && r.error === BridgeError.Replayed)).toBe(true);
  });

  it("keeps a window per sender and per direction", () => {
    const b = relay(B);
    expect(b.decode(A, relay(A).encode(B, "s", payload(1))).ok).toBe(true);
    expect(b.decode(C, relay(C).encode(B, "s", payload(1))).ok).toBe(true); // same nonce, other sender
  });

  it("accepts frames out of order within 1024 once each, and refuses older ones", () => {
    const a = relay(A);
    const frames = Array.from({ length: 3000 }, () => a.encode(B, "s", payload(2)));
    const b = relay(B);
    expect(b.decode(A, frames[2999]!).ok).toBe(true);
    for (let i = 2998; i > 2999 - REPLAY_WINDOW_SIZE; i--) expect(b.decode(A, frames[i]!).ok).toBe(true);
    for (let i = 2999 - REPLAY_WINDOW_SIZE; i > 2999 - REPLAY_WINDOW_SIZE - 10; i--) expect(b.decode(A, frames[i]!)).toEqual(rejected(BridgeError.Replayed));
    for (let i = 2998; i > 2999 - REPLAY_WINDOW_SIZE; i -= 97) expect(b.decode(A, frames[i]!)).toEqual(rejected(BridgeError.Replayed));
  });

  it("does not let a forged frame with a high counter or epoch move the window", () => {
    const a = relay(A);
    const frames = Array.from({ length: 5 }, () => a.encode(B, "s", payload(2)));
    const b = relay(B);
    expect(b.decode(A, frames[0]!).ok).toBe(true);
    const highCounter = frames[1]!.slice();
    new DataView(highCounter.buffer).setUint32(20, 1_000_000);
    expect(b.decode(A, highCounter)).toEqual(rejected(BridgeError.BadTag));
    const laterEpoch = frames[1]!.slice();
    new DataView(laterEpoch.buffer).setUint32(16, header(frames[1]!).epoch % 2 ** 32 + 1);
    expect(b.decode(A, laterEpoch)).toEqual(rejected(BridgeError.BadTag));
    for (const frame of frames.slice(1)) expect(b.decode(A, frame).ok).toBe(true);
  });

  it("accepts a restarted sender and refuses what the old instance sent", () => {
    const clock = manualClock();
    const before = relay(A, [OLD], { clock: clock.read });
    const old = [before.encode(B, "s", payload(2)), before.encode(B, "s", payload(2))];
    const b = relay(B, [OLD], { clock: clock.read });
    expect(b.decode(A, old[0]!).ok).toBe(true);
    clock.now += 5;
    const after = relay(A, [OLD], { clock: clock.read });
    const fresh = after.encode(B, "s", payload(2));
    expect(header(fresh)).toMatchObject({ epoch: T + 5, counter: 0 });
    expect(b.decode(A, fresh).ok).toBe(true);
    expect(b.decode(A, old[1]!)).toEqual(rejected(BridgeError.Replayed));
    expect(b.decode(A, after.encode(B, "s", payload(2))).ok).toBe(true);
  });

  it("starts a later epoch after the counter runs out", () => {
    const clock = manualClock();
    const a = relay(A, [OLD], { clock: clock.read, startCounter: 2 ** 32 - 2 });
    const b = relay(B, [OLD], { clock: clock.read });
    const frames = [0, 1, 2].map(() => a.encode(B, "s", payload(2)));
    expect(frames.map((f) => [header(f).epoch, header(f).counter])).toEqual([[T, 2 ** 32 - 2], [T, 2 ** 32 - 1], [T + 1, 0]]);
    for (const f of frames) expect(b.decode(A, f).ok).toBe(true);
    for (const f of frames) expect(b.decode(A, f)).toEqual(rejected(BridgeError.Replayed));
  });

  it("forget drops what it knew of a relay; a later sequence to it starts a later epoch", () => {
    const a = relay(A);
    const b = relay(B);
    const first = a.encode(B, "s", payload(2));
    expect(b.decode(A, first).ok).toBe(true);
    a.forget(B);
    const again = a.encode(B, "s", payload(2));
    expect(header(again)).toMatchObject({ epoch: T + 1, counter: 0 });
    expect(b.decode(A, again).ok).toBe(true);
    b.forget(A);
    expect(b.decode(A, first).ok).toBe(true); // forgotten: a fresh window takes it
  });

  it("accepts each distinct frame at most once in any order, and exactly once when within the window", () => {
    const a = relay(A);
    const frames = Array.from({ length: 3000 }, (_, i) => a.encode(B, `s${i % 7}`, new Uint8Array([i & 0xff, i >> 8])));
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 4000 }), (seed, spread) => {
        // Each frame arrives at i + [0, spread) and, one time in three, once more at another such point.
        const rand = mulberry32(seed);
        const arrivals: { at: number; index: number }[] = [];
        frames.forEach((_, index) => {
          arrivals.push({ at: index + rand() * spread, index });
          if (rand() < 1 / 3) arrivals.push({ at: index + rand() * spread, index });
        });
        arrivals.sort((x, y) => x.at - y.at);
        const b = relay(B);
        const accepted = new Array<number>(frames.length).fill(0);
        const inWindow = new Array<boolean>(frames.length).fill(false);
        let top = -1;
        for (const { index } of arrivals) {
          if (accepted[index] === 0 && (top < 0 || top - index < REPLAY_WINDOW_SIZE)) inWindow[index] = true;
          const got = b.decode(A, frames[index]!);
          if (!got.ok) {
            expect(got.error).toBe(BridgeError.Replayed);
            continue;
          }
          expect(got.frame.payload[0]! | (got.frame.payload[1]! << 8)).toBe(index);
          accepted[index]!++;
          top = Math.max(top, index);
        }
        for (let i = 0; i < frames.length; i++) {
          expect(accepted[i]).toBeLessThanOrEqual(1);
          if (inWindow[i]) expect(accepted[i]).toBe(1);
        }
        if (spread <= REPLAY_WINDOW_SIZE) expect(accepted.every((n) => n === 1)).toBe(true);
      }),
      { numRuns: 25 },
    );
  });
});

/** A nonce store that records what the codec asks of it and refuses every nonce. */
function refusingNonces() {
  const calls: string[] = [];
  let counter = 0;
  const store: BridgeNonces = {
    next: (to) => {
      calls.push(`next ${to}`);
      return { epoch: T - 5, counter: 40 + counter++ };
    },
    admit: (from, epoch, counter) => {
      calls.push(`admit ${from} ${epoch} ${counter}`);
      return false;
    },
    forget: (peer) => void calls.push(`forget ${peer}`),
  };
  return { store, calls };
}

describe("bridge codec: pluggable nonces", () => {
  it("sends under the nonces the store hands out", () => {
    const { store, calls } = refusingNonces();
    const a = relay(A, [OLD], { nonces: store, startCounter: 9 });
    const frames = [a.encode(B, "s", payload(3)), a.encodePing(C, payload(8)), a.encodePong(B, payload(8))];
    expect(calls).toEqual([`next ${B}`, `next ${C}`, `next ${B}`]);
    expect(frames.map((f) => [header(f).epoch, header(f).counter])).toEqual([[T - 5, 40], [T - 5, 41], [T - 5, 42]]);
    expect(relay(B).decode(A, frames[0]!).ok).toBe(true);
    expect(relay(C).decode(A, frames[1]!).ok).toBe(true);
  });

  it("asks the store to admit a nonce only after the tag and the clock checked out", () => {
    const { store, calls } = refusingNonces();
    const b = relay(B, [OLD], { nonces: store, replayWindowMs: 1000 });
    const a = relay(A);
    const wire = a.encode(B, "s", payload(4));
    const forged = withByte(wire, wire.length - 1, wire[wire.length - 1]! ^ 1);
    expect(b.decode(A, forged)).toEqual(rejected(BridgeError.BadTag));
    expect(b.decode(C, wire)).toEqual(rejected(BridgeError.BadTag));
    expect(b.decode(A, withByte(wire, 6, wire[6]! ^ 1))).toEqual(rejected(BridgeError.UnknownKey));
    expect(b.decode(A, wire.subarray(0, 20))).toEqual(rejected(BridgeError.Truncated));
    const late = relay(A, [OLD], { clock: () => T - 5000 }).encode(B, "s", payload(4));
    expect(b.decode(A, late)).toEqual(rejected(BridgeError.Stale));
    expect(calls).toEqual([]);
    expect(b.decode(A, wire)).toEqual(rejected(BridgeError.Replayed));
    expect(calls).toEqual([`admit ${A} ${T} 0`]);
  });

  it("passes forget on to the store", () => {
    const { store, calls } = refusingNonces();
    const a = relay(A, [OLD], { nonces: store });
    a.forget(B);
    expect(calls).toEqual([`forget ${B}`]);
    // Keys are derived again after forget, the same.
    expect(a.pairKeys(B).tx.key).toEqual(new Uint8Array(pairKeyByHand(OLD, A, B)));
  });

  it("refuses to send under a nonce the frame cannot carry", () => {
    for (const [epoch, counter] of [[2 ** 48, 0], [-1, 0], [T + 0.5, 0], [Number.NaN, 0], [T, 2 ** 32], [T, -1], [T, 1.5]] as const) {
      const store: BridgeNonces = { next: () => ({ epoch, counter }), admit: () => true, forget: () => {} };
      expect(() => relay(A, [OLD], { nonces: store }).encode(B, "s", payload(1))).toThrow(BridgeEncodeError);
    }
    const edge: BridgeNonces = { next: () => ({ epoch: 2 ** 48 - 1, counter: 2 ** 32 - 1 }), admit: () => true, forget: () => {} };
    expect(header(relay(A, [OLD], { nonces: edge }).encode(B, "s", payload(1)))).toMatchObject({ epoch: 2 ** 48 - 1, counter: 2 ** 32 - 1 });
  });
});

describe("LocalNonces", () => {
  it("counts up from the clock, one sequence per receiver", () => {
    const clock = manualClock();
    const nonces = new LocalNonces({ clock: clock.read });
    expect(nonces.next(B)).toEqual({ epoch: T, counter: 0 });
    clock.now += 50;
    expect(nonces.next(B)).toEqual({ epoch: T, counter: 1 });
    expect(nonces.next(C)).toEqual({ epoch: T + 50, counter: 0 });
    expect(nonces.next(B)).toEqual({ epoch: T, counter: 2 });
  });

  it("starts a later epoch when the counter rolls over", () => {
    const clock = manualClock();
    const nonces = new LocalNonces({ clock: clock.read, startCounter: 2 ** 32 - 2 });
    expect([nonces.next(B), nonces.next(B), nonces.next(B), nonces.next(B)]).toEqual([
      { epoch: T, counter: 2 ** 32 - 2 },
      { epoch: T, counter: 2 ** 32 - 1 },
      { epoch: T + 1, counter: 0 },
      { epoch: T + 1, counter: 1 },
    ]);
    // With the clock past the old epoch, the new epoch is the clock.
    const late = new LocalNonces({ clock: clock.read, startCounter: 2 ** 32 - 1 });
    expect(late.next(B)).toEqual({ epoch: T, counter: 2 ** 32 - 1 });
    clock.now = T + 700;
    expect(late.next(B)).toEqual({ epoch: T + 700, counter: 0 });
  });

  it("after forget, starts the sequence to that relay at a later epoch, even within one millisecond", () => {
    const nonces = new LocalNonces({ clock: () => T });
    expect(nonces.next(B)).toEqual({ epoch: T, counter: 0 });
    nonces.forget(B);
    expect(nonces.next(B)).toEqual({ epoch: T + 1, counter: 0 });
    nonces.forget(B);
    expect(nonces.next(B)).toEqual({ epoch: T + 2, counter: 0 });
    // Forgetting a relay never sent to moves nothing; sequences begun later start at the floor too.
    nonces.forget(C);
    expect(nonces.next(C)).toEqual({ epoch: T + 2, counter: 0 });
    expect(nonces.next(B)).toEqual({ epoch: T + 2, counter: 1 });
  });

  it("admits each nonce once per sender, and forget empties that sender's window", () => {
    const nonces = new LocalNonces({ clock: () => T });
    expect(nonces.admit(A, T, 5)).toBe(true);
    expect(nonces.admit(A, T, 5)).toBe(false);
    expect(nonces.admit(C, T, 5)).toBe(true);
    expect(nonces.admit(A, T, 4)).toBe(true);
    expect(nonces.admit(A, T, 5 + REPLAY_WINDOW_SIZE)).toBe(true);
    expect(nonces.admit(A, T, 5)).toBe(false); // now too far behind
    expect(nonces.admit(A, T + 1, 0)).toBe(true); // a later epoch supersedes
    expect(nonces.admit(A, T, 6 + REPLAY_WINDOW_SIZE)).toBe(false);
    nonces.forget(A);
    expect(nonces.admit(A, T, 5)).toBe(true);
    expect(nonces.admit(C, T, 5)).toBe(false);
  });

  it("refuses a start counter outside 0..2^32-1, and the codec reports it as a configuration error", () => {
    for (const startCounter of [-1, 2 ** 32, 0.5, Number.NaN]) {
      expect(() => new LocalNonces({ startCounter })).toThrow(RangeError);
      expect(() => relay(A, [OLD], { startCounter })).toThrow(BridgeConfigError);
    }
    expect(new LocalNonces({ startCounter: 2 ** 32 - 1, clock: () => T }).next(B)).toEqual({ epoch: T, counter: 2 ** 32 - 1 });
    expect(new LocalNonces({}).next(B).epoch).toBeGreaterThan(0);
  });
});

