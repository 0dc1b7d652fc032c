import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { RefusalCode } from "../../src/protocol/errors.ts";
import { readLongHeaderIds, shortHeaderDcid } from "../../src/protocol/quic.ts";
import { COOKIE_LENGTH, isCookieText } from "../../src/protocol/cookie.ts";
import { encodeReg, isReg, MAX_SESSION_ID_LENGTH, parseReg } from "../../src/protocol/reg.ts";
import { isAck, isRelayLine, mayBeRelayLine, parseErr, refusalReply } from "../../src/protocol/replies.ts";
import { mintToken, splitToken, verifyToken } from "../../src/security/token.ts";

const RUNS = Number(process.env.PROPERTY_RUNS ?? 2000);
const printableChar = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const sessionId = fc.string({ unit: printableChar, minLength: 1, maxLength: MAX_SESSION_ID_LENGTH });
const anyBytes = fc.uint8Array({ maxLength: 300 });
/** Bytes that start with `REG:`, so the parser's full path runs. */
const regBytes = fc.uint8Array({ maxLength: 200 }).map((tail) => new Uint8Array([0x52, 0x45, 0x47, 0x3a, ...tail]));
const codes = Object.values(RefusalCode);
const secret = fc.uint8Array({ minLength: 16, maxLength: 64 });

describe("codec properties", () => {
  it("parseReg never throws on any bytes, and accepts exactly printable ids of legal length", () => {
    fc.assert(
      fc.property(fc.oneof(anyBytes, regBytes), (data) => {
        if (!isReg(data)) return;
        const r = parseReg(data);
        let end = data.length;
        if (end > 4 && data[end - 1] === 0x0a) end--;
        if (end > 4 && data[end - 1] === 0x0d && data[data.length - 1] === 0x0a) end--;
        // Oracle: after "REG:", the id up to the first space, then tokens after single spaces,
        // each the flag "move", a cookie (16 base64url chars) or a peer token, at most one of each.
        const text = String.fromCharCode(...data.subarray(4, end));
        const [id, ...tokens] = text.split(" ");
        const body = Uint8Array.from(id!, (ch) => ch.charCodeAt(0));
        const cookies = tokens.filter((t) => t.length === COOKIE_LENGTH && isCookieText(t));
        const moves = tokens.filter((t) => t === "move");
        const peers = tokens.filter((t) => /^peer=[A-Za-z0-9_-]{16,43}$/.test(t));
        const cookie = cookies[0];
        const legal =
          cookies.length <= 1 && moves.length <= 1 && peers.length <= 1 && cookies.length + moves.length + peers.length === tokens.length &&
          body.length >= 1 && body.length <= MAX_SESSION_ID_LENGTH && body.every((b) => b >= 0x21 && b <= 0x7e);
        expect(r.ok).toBe(legal);
        if (r.ok) expect(r).toEqual({ ok: true, sessionId: id, cookie, move: moves.length === 1, peer: peers[0]?.slice(5) });
        else expect(codes).toContain(r.code);
      }),
      { numRuns: RUNS },
    );
  });

  it("REG round-trips with \\n, \\r\\n or no terminator", () => {
    fc.assert(
      fc.property(sessionId, fc.constantFrom("\n", "\r\n", ""), (id, end) => {
        const text = new TextEncoder().encode(`REG:${id}${end}`);
        expect(parseReg(text)).toEqual({ ok: true, sessionId: id, cookie: undefined, move: false });
        expect(parseReg(encodeReg(id))).toEqual({ ok: true, sessionId: id, cookie: undefined, move: false });
      }),
      { numRuns: RUNS },
    );
  });

  it("REG with a cookie round-trips, and the cookie never leaks into the id", () => {
    const cookie = fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), minLength: COOKIE_LENGTH, maxLength: COOKIE_LENGTH });
    fc.assert(
      fc.property(sessionId, cookie, fc.constantFrom("\n", "\r\n", ""), (id, c, end) => {
        expect(parseReg(new TextEncoder().encode(`REG:${id} ${c}${end}`))).toEqual({ ok: true, sessionId: id, cookie: c, move: false });
        expect(parseReg(encodeReg(id, c))).toEqual({ ok: true, sessionId: id, cookie: c, move: false });
      }),
      { numRuns: RUNS },
    );
  });

  it("no relay line is a REG, and every reply the relay sends is a relay line", () => {
    fc.assert(
      fc.property(fc.oneof(anyBytes, regBytes), (data) => {
        if (isRelayLine(data)) {
          expect(isReg(data)).toBe(false);
          expect(mayBeRelayLine(data)).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
    for (const code of codes) for (const n of [4, 9, 64]) {
      const reply = refusalReply(code, n);
      if (reply) expect(isRelayLine(reply)).toBe(true);
    }
  });

  it("a refusal is never larger than its request, and parses back to its code", () => {
    fc.assert(
      fc.property(fc.constantFrom(...codes), fc.nat(200), (code, length) => {
        const reply = refusalReply(code, length);
        if (reply === undefined) return expect(length).toBeLessThan(4);
        expect(reply.length).toBeLessThanOrEqual(length);
        expect(["", code]).toContain(parseErr(reply)!);
        expect(isAck(reply)).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it("reply decoders never throw on any bytes", () => {
    fc.assert(
      fc.property(anyBytes, (data) => {
        isAck(data);
        parseErr(data);
      }),
      { numRuns: RUNS },
    );
  });

  it("QUIC header readers never throw and stay inside the datagram", () => {
    fc.assert(
      fc.property(anyBytes, fc.nat(24), (data, length) => {
        const ids = readLongHeaderIds(data);
        if (ids) {
          expect(ids.dcid.length / 2 + ids.scid.length / 2 + 7).toBeLessThanOrEqual(data.length);
          expect(ids.dcid.length / 2).toBeLessThanOrEqual(20);
          expect(ids.scid.length / 2).toBeLessThanOrEqual(20);
        }
        const dcid = shortHeaderDcid(data, length);
        if (dcid !== undefined) expect(dcid.length).toBe(2 * length);
      }),
      { numRuns: RUNS },
    );
  });

  it("long-header connection IDs round-trip", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 50 }), (d, s, payload) => {
        const packet = new Uint8Array([0xc0, 0, 0, 0, 1, d.length, ...d, s.length, ...s, ...payload]);
        const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
        expect(readLongHeaderIds(packet)).toEqual({ dcid: hex(d), scid: hex(s) });
      }),
      { numRuns: RUNS },
    );
  });

  it("tokens round-trip through a REG datagram and bind the session id", () => {
    const nowMs = 1_800_000_000_000;
    fc.assert(
      fc.property(secret, fc.string({ unit: printableChar, minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 10 ** 6 }), (key, id, ttl) => {
        const expiry = nowMs / 1000 + ttl;
        const field = mintToken(key, id, expiry);
        const reg = parseReg(encodeReg(field));
        expect(reg.ok).toBe(true);
        if (!reg.ok) return;
        expect(verifyToken(reg.sessionId, [key], nowMs)).toEqual({ ok: true, sessionId: id, expiresAt: expiry });
        expect(verifyToken(reg.sessionId, [key], expiry * 1000).ok).toBe(false);
        expect(verifyToken(mintToken(key, `${id}x`, expiry), [key], nowMs)).toMatchObject({ ok: true, sessionId: `${id}x` });
        expect(verifyToken(`${id}x${field.slice(id.length)}`, [key], nowMs).ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it("token checks never throw and never accept a string nobody minted", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 150 }), secret, (field, key) => {
        const r = verifyToken(field, [key], 0);
        expect(r.ok).toBe(false);
        splitToken(field);
      }),
      { numRuns: RUNS },
    );
  });
});
