/**
 * Return-routability cookies (docs/protocol.md, "Return routability"): a stateless proof that
 * whoever sends a REG receives datagrams at the address it sends from, in the spirit of QUIC's
 * Retry token, DTLS's cookie and TURN's nonce.
 *
 *   cookie = base64url_nopad( issued (4 bytes, big-endian seconds) || mac (8 bytes) )   16 chars
 *   mac    = first 8 bytes of HMAC-SHA256(key, issued || "<host>|<port>|<session id>")
 *
 * The key is the relay's own and never leaves it; clients treat the cookie as opaque and echo it.
 * `host` is the address as hostOf gives it (IPv4-mapped IPv6 as plain IPv4).
 */
import { hostOf } from "../net/address.ts";

/** Characters of a cookie on the wire (base64url of 12 bytes, no padding). */
export const COOKIE_LENGTH = 16;
/** Seconds a cookie stays valid after the relay issued it. */
export const COOKIE_LIFETIME_SECS = 120;
/** A cookie stamped up to this far in the future (clock steps) is still accepted. */
const FUTURE_SLACK_SECS = 5;
const MAC_BYTES = 8;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function isCookieText(text: string): boolean {
  return text.length === COOKIE_LENGTH && BASE64URL.test(text);
}

export type CookieCheck = "ok" | "malformed" | "expired" | "bad-mac";

/** Mints and checks cookies under one relay key. Time is whole seconds of the caller's clock. */
export class CookieMinter {
  private readonly keyed: Bun.CryptoHasher;
  private readonly digest = new Uint8Array(64);
  private readonly encoder = new TextEncoder();

  constructor(key: Uint8Array = crypto.getRandomValues(new Uint8Array(32))) {
    this.keyed = new Bun.CryptoHasher("sha256", key);
  }

  mint(address: string, port: number, sessionId: string, nowSecs: number): string {
    const raw = new Uint8Array(4 + MAC_BYTES);
    new DataView(raw.buffer).setUint32(0, nowSecs >>> 0);
    raw.set(this.mac(raw.subarray(0, 4), address, port, sessionId), 4);
    return Buffer.from(raw).toString("base64url");
  }

  check(cookie: string, address: string, port: number, sessionId: string, nowSecs: number): CookieCheck {
    if (!isCookieText(cookie)) return "malformed";
    const raw = Buffer.from(cookie, "base64url");
    if (raw.length !== 4 + MAC_BYTES) return "malformed";
    const expected = this.mac(raw.subarray(0, 4), address, port, sessionId);
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= expected[i]! ^ raw[4 + i]!;
    if (diff !== 0) return "bad-mac";
    // Age in u32 arithmetic, so a relay clock that wrapped still compares right.
    const age = ((nowSecs >>> 0) - raw.readUInt32BE(0)) | 0;
    if (age > COOKIE_LIFETIME_SECS || age < -FUTURE_SLACK_SECS) return "expired";
    return "ok";
  }

  private mac(issued: Uint8Array, address: string, port: number, sessionId: string): Uint8Array {
    const h = this.keyed.copy();
    h.update(issued);
    h.update(this.encoder.encode(`${hostOf(address)}|${port}|${sessionId}`));
    h.digest(this.digest);
    return this.digest.subarray(0, MAC_BYTES);
  }
}
