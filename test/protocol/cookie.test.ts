import { describe, expect, it } from "bun:test";
import { createHmac } from "node:crypto";
import { COOKIE_LENGTH, COOKIE_LIFETIME_SECS, CookieMinter } from "../../src/protocol/cookie.ts";
import { encodeReg, parseReg } from "../../src/protocol/reg.ts";
import { encodeRetry, isRelayLine, mayBeRelayLine, parseRetry, RETRY_LENGTH } from "../../src/protocol/replies.ts";
import { bytes } from "../utils.ts";

const KEY = new Uint8Array(32).fill(7);

describe("CookieMinter", () => {
  const minter = new CookieMinter(KEY);
  const cookie = minter.mint("192.0.2.1", 5000, "s-1", 1000);

  it("mints 16 base64url characters that check out for the same address, port and session", () => {
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(cookie.length).toBe(COOKIE_LENGTH);
    expect(minter.check(cookie, "192.0.2.1", 5000, "s-1", 1000)).toBe("ok");
    // The IPv4-mapped form of the same address is the same host.
    expect(minter.check(cookie, "::ffff:192.0.2.1", 5000, "s-1", 1000 + COOKIE_LIFETIME_SECS)).toBe("ok");
  });

  it("binds address, port, session and key", () => {
    expect(minter.check(cookie, "192.0.2.2", 5000, "s-1", 1000)).toBe("bad-mac");
    expect(minter.check(cookie, "192.0.2.1", 5001, "s-1", 1000)).toBe("bad-mac");
    expect(minter.check(cookie, "192.0.2.1", 5000, "s-2", 1000)).toBe("bad-mac");
    expect(new CookieMinter(new Uint8Array(32).fill(8)).check(cookie, "192.0.2.1", 5000, "s-1", 1000)).toBe("bad-mac");
  });

  it("expires, and refuses a timestamp it could not have issued", () => {
    expect(minter.check(cookie, "192.0.2.1", 5000, "s-1", 1001 + COOKIE_LIFETIME_SECS)).toBe("expired");
    expect(minter.check(cookie, "192.0.2.1", 5000, "s-1", 990)).toBe("expired");
    // Tampering with the time bytes breaks the MAC.
    const raw = Buffer.from(cookie, "base64url");
    raw[3]! ^= 1;
    expect(minter.check(raw.toString("base64url"), "192.0.2.1", 5000, "s-1", 1000)).toBe("bad-mac");
  });

  it("refuses malformed cookies", () => {
    expect(minter.check("short", "192.0.2.1", 5000, "s-1", 1000)).toBe("malformed");
    expect(minter.check("!".repeat(16), "192.0.2.1", 5000, "s-1", 1000)).toBe("malformed");
  });

  it("survives the 32-bit wrap of its clock", () => {
    const late = minter.mint("192.0.2.1", 5000, "s-1", 0xffff_fff0);
    expect(minter.check(late, "192.0.2.1", 5000, "s-1", 0x1_0000_0010)).toBe("ok");
  });
});

describe("the worked example of docs/protocol.md", () => {
  it("gives the documented cookie for K = 32 zero bytes and t = 1764547200", () => {
    const minter = new CookieMinter(new Uint8Array(32));
    const cookie = minter.mint("198.51.100.20", 50000, "3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f", 1764547200);
    expect(cookie).toBe("aSzagNOT9g_ZPlkk");
    expect(Buffer.from(cookie, "base64url").toString("hex")).toBe("692cda80d393f60fd93e5924");
    // The MAC as any HMAC library computes it, not through the minter.
    const time = Buffer.alloc(4);
    time.writeUInt32BE(1764547200);
    const mac = createHmac("sha256", Buffer.alloc(32)).update(Buffer.concat([time, Buffer.from("198.51.100.20|50000|3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f")]));
    expect(mac.digest("hex").slice(0, 16)).toBe("d393f60fd93e5924");
    expect(encodeReg("3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f", cookie).length).toBe(58);
  });
});

describe("RETRY and REG with a cookie", () => {
  it("round-trips RETRY, which is a relay line of RETRY_LENGTH bytes", () => {
    const retry = encodeRetry("AAAAAAAAAAAAAAAA");
    expect(retry.length).toBe(RETRY_LENGTH);
    expect(parseRetry(retry)).toBe("AAAAAAAAAAAAAAAA");
    expect(isRelayLine(retry)).toBe(true);
    expect(parseRetry(bytes("RETRY AAAAAAAAAAAAAAA!\n"))).toBeUndefined();
    expect(parseRetry(bytes("RETRY AAAAAAAAAAAAAAAA"))).toBeUndefined();
  });

  it("a REG that carries a cookie is never shorter than the RETRY it could get", () => {
    expect(encodeReg("x", "AAAAAAAAAAAAAAAA").length).toBeGreaterThanOrEqual(RETRY_LENGTH);
  });

  it("reads the cookie after the one space, and leaves ids with other spaces refused", () => {
    expect(parseReg(bytes("REG:abc AAAAAAAAAAAAAAAA\n"))).toEqual({ ok: true, sessionId: "abc", cookie: "AAAAAAAAAAAAAAAA", move: false });
    expect(parseReg(bytes("REG:abc AAAAAAAAAAAAAAA\n"))).toEqual({ ok: false, code: "bad-id" });
    expect(parseReg(bytes("REG:a b AAAAAAAAAAAAAAAA\n"))).toEqual({ ok: false, code: "bad-id" });
    expect(parseReg(bytes("REG: AAAAAAAAAAAAAAAA\n"))).toEqual({ ok: false, code: "bad-id" });
  });
});

describe("relay lines", () => {
  it.each(["ACK\n", "ERR\n", "ERR full\n", "ERR limit\n", "ERR some-other-relay-code\n", "RETRY AAAAAAAAAAAAAAAA\n"])("%j is one", (line) => {
    expect(isRelayLine(bytes(line))).toBe(true);
  });

  it.each(["ACK", "ACK\n\n", "ERR Full\n", "ERR \n", "REG:x\n", "hello\n", "RETRY x\n", `ERR ${"x".repeat(40)}\n`])("%j is not", (line) => {
    expect(isRelayLine(bytes(line))).toBe(false);
  });

  it("the data planes' filter lets QUIC-sized packets through", () => {
    const packet = new Uint8Array(1200).fill(0x41);
    packet[1199] = 0x0a;
    expect(mayBeRelayLine(packet)).toBe(false);
    expect(mayBeRelayLine(bytes("ACK\n"))).toBe(true);
  });
});
