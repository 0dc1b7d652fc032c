import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Registration tokens, in the style of the TURN REST API's ephemeral credentials.
 *
 * The REG session field becomes `<session_id>:<expiry>:<mac>` where
 * - `expiry` is a Unix time in whole seconds (decimal digits), after which the token is refused;
 * - `mac` is base64url (no padding) of HMAC-SHA256(secret, "<session_id>:<expiry>"), i.e. the MAC
 *   covers exactly the bytes in front of it, so any language can mint one in a line.
 * The field is split from the right, so a session id may itself contain ':'.
 */

/** Length of base64url(SHA-256 digest) without padding. */
export const MAC_LENGTH = 43;
/** Expiry digits accepted (Unix seconds until the year 33658). */
const MAX_EXPIRY_DIGITS = 12;

export type TokenFailure = "malformed" | "expired" | "bad-mac";

export type TokenCheck = { ok: true; sessionId: string; expiresAt: number } | { ok: false; reason: TokenFailure };

export interface TokenParts {
  sessionId: string;
  /** Unix seconds. */
  expiry: number;
  mac: string;
  /** The text the MAC covers: everything before the last ':'. */
  signed: string;
}

/** The MAC of `<sessionId>:<expiry>` under `secret`, base64url without padding. */
export function tokenMac(secret: Uint8Array | string, sessionId: string, expiry: number): string {
  return createHmac("sha256", secret).update(`${sessionId}:${expiry}`).digest("base64url");
}

/** The REG session field for `sessionId`, valid until `expiry` (Unix seconds). */
export function mintToken(secret: Uint8Array | string, sessionId: string, expiry: number): string {
  if (!Number.isSafeInteger(expiry) || expiry < 0) throw new RangeError(`expiry must be a non-negative integer, got ${expiry}`);
  return `${sessionId}:${expiry}:${tokenMac(secret, sessionId, expiry)}`;
}

/** Splits a session field into its parts without checking the MAC; undefined when it is not token-shaped. */
export function splitToken(field: string): TokenParts | undefined {
  const macAt = field.lastIndexOf(":");
  if (macAt <= 0 || field.length - macAt - 1 !== MAC_LENGTH) return undefined;
  const expiryAt = field.lastIndexOf(":", macAt - 1);
  if (expiryAt <= 0) return undefined;
  const expiryText = field.slice(expiryAt + 1, macAt);
  if (expiryText.length === 0 || expiryText.length > MAX_EXPIRY_DIGITS || !/^[0-9]+$/.test(expiryText)) return undefined;
  const mac = field.slice(macAt + 1);
  if (!/^[A-Za-z0-9_-]+$/.test(mac)) return undefined;
  return { sessionId: field.slice(0, expiryAt), expiry: Number(expiryText), mac, signed: field.slice(0, macAt) };
}

/**
 * Checks a session field against every secret (rotation: old and new both valid).
 * `nowMs` is wall-clock milliseconds. The MAC comparison is constant-time for each secret,
 * and every secret is tried, so timing does not tell which one matched.
 */
export function verifyToken(field: string, secrets: readonly Uint8Array[], nowMs: number): TokenCheck {
  const parts = splitToken(field);
  if (!parts) return { ok: false, reason: "malformed" };
  const given = Buffer.from(parts.mac, "latin1");
  let matched = false;
  for (const secret of secrets) {
    const expected = Buffer.from(createHmac("sha256", secret).update(parts.signed).digest("base64url"), "latin1");
    if (expected.length === given.length && timingSafeEqual(expected, given)) matched = true;
  }
  if (!matched) return { ok: false, reason: "bad-mac" };
  // Checked after the MAC so that an expired-but-genuine token is told apart only for its holder's logs.
  if (parts.expiry * 1000 <= nowMs) return { ok: false, reason: "expired" };
  return { ok: true, sessionId: parts.sessionId, expiresAt: parts.expiry };
}
