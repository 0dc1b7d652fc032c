import { describe, expect, it } from "bun:test";
import { createHmac } from "node:crypto";
import { MAC_LENGTH, mintToken, splitToken, tokenMac, verifyToken } from "../../src/security/token.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const OLD = enc("old-secret-0123456789");
const NEW = enc("new-secret-9876543210");
const NOW = 1_800_000_000_000; // ms
const LATER = NOW / 1000 + 60; // s

describe("REG tokens", () => {
  it("is <session>:<expiry>:<base64url HMAC-SHA256 of the text before the MAC>", () => {
    const token = mintToken(NEW, "abc", LATER);
    const expected = createHmac("sha256", NEW).update(`abc:${LATER}`).digest("base64url");
    expect(token).toBe(`abc:${LATER}:${expected}`);
    expect(expected).toHaveLength(MAC_LENGTH);
    expect(expected).not.toContain("=");
  });

  it("verifies and yields the bare session id", () => {
    expect(verifyToken(mintToken(NEW, "session-1", LATER), [NEW], NOW)).toEqual({ ok: true, sessionId: "session-1", expiresAt: LATER });
  });

  it("accepts every configured secret (rotation)", () => {
    expect(verifyToken(mintToken(OLD, "s", LATER), [NEW, OLD], NOW).ok).toBe(true);
    expect(verifyToken(mintToken(NEW, "s", LATER), [NEW, OLD], NOW).ok).toBe(true);
    expect(verifyToken(mintToken(OLD, "s", LATER), [NEW], NOW)).toEqual({ ok: false, reason: "bad-mac" });
  });

  it("refuses an expired token, at the second it expires", () => {
    expect(verifyToken(mintToken(NEW, "s", NOW / 1000), [NEW], NOW)).toEqual({ ok: false, reason: "expired" });
    expect(verifyToken(mintToken(NEW, "s", NOW / 1000 + 1), [NEW], NOW).ok).toBe(true);
    expect(verifyToken(mintToken(NEW, "s", LATER), [NEW], LATER * 1000 + 1)).toEqual({ ok: false, reason: "expired" });
  });

  it("binds the token to the session id and the expiry", () => {
    const token = mintToken(NEW, "victim", LATER);
    const mac = token.slice(-MAC_LENGTH);
    expect(verifyToken(`attacker:${LATER}:${mac}`, [NEW], NOW)).toEqual({ ok: false, reason: "bad-mac" });
    expect(verifyToken(`victim:${LATER + 1000}:${mac}`, [NEW], NOW)).toEqual({ ok: false, reason: "bad-mac" });
    expect(verifyToken(`victim:0${LATER}:${mac}`, [NEW], NOW)).toEqual({ ok: false, reason: "bad-mac" });
  });

  it("refuses any flipped MAC character", () => {
    const token = mintToken(NEW, "s", LATER);
    for (let i = token.length - MAC_LENGTH; i < token.length; i++) {
      const c = token[i] === "A" ? "B" : "A";
      expect(verifyToken(token.slice(0, i) + c + token.slice(i + 1), [NEW], NOW).ok).toBe(false);
    }
  });

  it("allows ':' inside the session id (split from the right)", () => {
    const token = mintToken(NEW, "room:42:x", LATER);
    expect(verifyToken(token, [NEW], NOW)).toEqual({ ok: true, sessionId: "room:42:x", expiresAt: LATER });
  });

  it.each([
    ["a bare id", "just-an-id"],
    ["no expiry", `s::${"A".repeat(MAC_LENGTH)}`],
    ["no session", `:${LATER}:${"A".repeat(MAC_LENGTH)}`],
    ["short mac", `s:${LATER}:${"A".repeat(MAC_LENGTH - 1)}`],
    ["long mac", `s:${LATER}:${"A".repeat(MAC_LENGTH + 1)}`],
    ["non-digit expiry", `s:12x:${"A".repeat(MAC_LENGTH)}`],
    ["huge expiry", `s:${"9".repeat(13)}:${"A".repeat(MAC_LENGTH)}`],
    ["mac outside base64url", `s:${LATER}:${"+".repeat(MAC_LENGTH)}`],
    ["empty", ""],
  ])("calls %s malformed", (_label, field) => {
    expect(verifyToken(field, [NEW], NOW)).toEqual({ ok: false, reason: "malformed" });
  });

  it("splits without verifying", () => {
    const mac = tokenMac(NEW, "x", 5);
    expect(splitToken(`x:5:${mac}`)).toEqual({ sessionId: "x", expiry: 5, mac, signed: "x:5" });
  });

  it("refuses to mint a negative or fractional expiry", () => {
    expect(() => mintToken(NEW, "s", -1)).toThrow(RangeError);
    expect(() => mintToken(NEW, "s", 1.5)).toThrow(RangeError);
  });
});
