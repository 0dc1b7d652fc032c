import { describe, expect, it } from "bun:test";
import { BRIDGE_TAG_LENGTH, BridgeCodec, BridgeEncodeError, BridgeError, bridgeOverhead, isBridgeDatagram } from "../../src/fleet/bridge-codec.ts";

const SECRET = "fleet-secret-for-tests-0123456789";
const NOW = 1_780_000_000_000;

describe("bridge codec", () => {
  const codec = new BridgeCodec(SECRET);

  it("round-trips payloads of every size, unchanged", () => {
    for (const size of [0, 1, 63, 1200, 1500, 9000, 65_000]) {
      const payload = crypto.getRandomValues(new Uint8Array(size));
      const wire = codec.encode("session-1", payload, NOW);
      expect(wire.length).toBe(payload.length + bridgeOverhead(9));
      expect(isBridgeDatagram(wire)).toBe(true);
      const got = codec.decode(wire, NOW + 5);
      expect(got.ok).toBe(true);
      if (!got.ok) continue;
      expect(got.sessionId).toBe("session-1");
      expect(got.sentAt).toBe(NOW);
      expect(new Uint8Array(got.payload)).toEqual(payload);
    }
  });

  it("accepts a receiver with the same secret and rejects one with another", () => {
    const wire = codec.encode("s", new Uint8Array([1, 2, 3]), NOW);
    expect(new BridgeCodec(SECRET).decode(wire, NOW).ok).toBe(true);
    expect(new BridgeCodec(SECRET + "x").decode(wire, NOW)).toEqual({ ok: false, error: BridgeError.BadTag });
  });

  it("rejects any single flipped bit: header, session id, payload or tag", () => {
    const wire = codec.encode("abc", crypto.getRandomValues(new Uint8Array(40)), NOW);
    for (let i = 0; i < wire.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = wire.slice();
        bad[i]! ^= bit;
        const got = codec.decode(bad, NOW);
        expect(got.ok).toBe(false);
      }
    }
  });

  it("names the error: magic, version, session id length, truncation, tag", () => {
    const wire = codec.encode("abc", new Uint8Array(10), NOW);
    const withByte = (at: number, value: number) => {
      const w = wire.slice();
      w[at] = value;
      return w;
    };
    expect(codec.decode(withByte(0, 0x51), NOW)).toEqual({ ok: false, error: BridgeError.BadMagic });
    expect(codec.decode(withByte(4, 2), NOW)).toEqual({ ok: false, error: BridgeError.BadVersion });
    expect(codec.decode(withByte(5, 0), NOW)).toEqual({ ok: false, error: BridgeError.BadSessionId });
    expect(codec.decode(withByte(5, 200), NOW)).toEqual({ ok: false, error: BridgeError.BadSessionId });
    expect(codec.decode(withByte(5, 60), NOW)).toEqual({ ok: false, error: BridgeError.Truncated });
    expect(codec.decode(wire.subarray(0, wire.length - 1), NOW)).toEqual({ ok: false, error: BridgeError.BadTag });
    for (let n = 0; n < bridgeOverhead(1); n++) {
      expect(codec.decode(wire.subarray(0, n), NOW)).toEqual({ ok: false, error: BridgeError.Truncated });
    }
    expect(codec.decode(withByte(wire.length - BRIDGE_TAG_LENGTH, wire[wire.length - BRIDGE_TAG_LENGTH]! ^ 1), NOW)).toEqual({
      ok: false,
      error: BridgeError.BadTag,
    });
  });

  it("rejects datagrams outside the replay window, in either direction", () => {
    const windowed = new BridgeCodec(SECRET, 1000);
    const wire = windowed.encode("s", new Uint8Array(4), NOW);
    expect(windowed.decode(wire, NOW + 999).ok).toBe(true);
    expect(windowed.decode(wire, NOW - 999).ok).toBe(true);
    expect(windowed.decode(wire, NOW + 1001)).toEqual({ ok: false, error: BridgeError.Stale });
    expect(windowed.decode(wire, NOW - 1001)).toEqual({ ok: false, error: BridgeError.Stale });
  });

  it("tells bridge datagrams from QUIC and REG by the first bytes", () => {
    expect(isBridgeDatagram(new TextEncoder().encode("REG:abc\n"))).toBe(false);
    expect(isBridgeDatagram(new Uint8Array([0xc0, 0, 0, 0, 1]))).toBe(false);
    expect(isBridgeDatagram(new Uint8Array([0x40, 0x71, 0x72, 0x62]))).toBe(false);
    expect(isBridgeDatagram(new Uint8Array([0x00, 0x71, 0x72]))).toBe(false);
  });

  it("refuses to encode session ids the protocol does not allow", () => {
    expect(() => codec.encode("", new Uint8Array(1))).toThrow(BridgeEncodeError);
    expect(() => codec.encode("x".repeat(129), new Uint8Array(1))).toThrow(BridgeEncodeError);
  });

  it("never throws on random input", () => {
    for (let i = 0; i < 2000; i++) {
      const junk = crypto.getRandomValues(new Uint8Array(i % 200));
      if (i % 2) junk.set([0x00, 0x71, 0x72, 0x62, 1].slice(0, junk.length));
      expect(codec.decode(junk, NOW).ok).toBe(false);
    }
  });
});
