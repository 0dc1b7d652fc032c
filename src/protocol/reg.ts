import { RefusalCode } from "./errors.ts";
import { COOKIE_LENGTH, isCookieText } from "./cookie.ts";

export const MAX_SESSION_ID_LENGTH = 128;

const latin1 = new TextDecoder("latin1");

/** `field` is what follows `REG:` (a session id, or a token with authentication). */
export type RegParse =
  | { ok: true; sessionId: string; cookie: string | undefined }
  | { ok: false; code: RefusalCode };

const R = 0x52, E = 0x45, G = 0x47, COLON = 0x3a, CR = 0x0d, LF = 0x0a, SPACE = 0x20;

/** Cheap check before any decode: does the datagram start with `REG:`? */
export function isReg(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === R && data[1] === E && data[2] === G && data[3] === COLON;
}

/**
 * Decode `REG:<session_id>` or `REG:<session_id> <cookie>` with an optional `\n` or `\r\n`
 * terminator. The id is printable ASCII (0x21-0x7e), 1..MAX_SESSION_ID_LENGTH bytes; the cookie,
 * when present, is COOKIE_LENGTH base64url characters after one space (docs/protocol.md,
 * "Return routability"). Never throws. Call only when isReg(data) holds.
 */
export function parseReg(data: Uint8Array): RegParse {
  let end = data.length;
  if (end > 4 && data[end - 1] === LF) {
    end--;
    if (end > 4 && data[end - 1] === CR) end--;
  }
  let cookie: string | undefined;
  const spaceAt = end - COOKIE_LENGTH - 1;
  if (spaceAt > 4 && data[spaceAt] === SPACE) {
    const text = latin1.decode(data.subarray(spaceAt + 1, end));
    if (isCookieText(text)) {
      cookie = text;
      end = spaceAt;
    }
  }
  const length = end - 4;
  if (length <= 0) return { ok: false, code: RefusalCode.EmptyId };
  if (length > MAX_SESSION_ID_LENGTH) return { ok: false, code: RefusalCode.LongId };
  for (let i = 4; i < end; i++) {
    const b = data[i]!;
    if (b < 0x21 || b > 0x7e) return { ok: false, code: RefusalCode.BadId };
  }
  // One flat string: building it a character at a time leaves a rope per id in the table.
  return { ok: true, sessionId: latin1.decode(data.subarray(4, end)), cookie };
}

/** Encode a REG datagram as clients send it, with the relay's cookie when it asked for one. */
export function encodeReg(sessionId: string, cookie?: string): Uint8Array {
  return new TextEncoder().encode(cookie === undefined ? `REG:${sessionId}\n` : `REG:${sessionId} ${cookie}\n`);
}
