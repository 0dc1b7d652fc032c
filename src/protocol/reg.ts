import { RefusalCode } from "./errors.ts";
import { COOKIE_LENGTH, isCookieText } from "./cookie.ts";
import { PEER_TOKEN_PREFIX, peerTokenOf } from "./peer-token.ts";

export const MAX_SESSION_ID_LENGTH = 128;

const latin1 = new TextDecoder("latin1");

/** `field` is what follows `REG:` (a session id, or a token with authentication). */
export type RegParse =
  | { ok: true; sessionId: string; cookie: string | undefined; move: boolean; peer?: string }
  | { ok: false; code: RefusalCode };

/**
 * The flag a client adds to its REG when it follows `MOVE <relay>` replies (docs/protocol.md,
 * "Meeting on one relay"): in a fleet, the relay may then send it to the relay its partner is on.
 */
export const MOVE_FLAG = "move";

const R = 0x52, E = 0x45, G = 0x47, COLON = 0x3a, CR = 0x0d, LF = 0x0a, SPACE = 0x20;

/** Cheap check before any decode: does the datagram start with `REG:`? */
export function isReg(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === R && data[1] === E && data[2] === G && data[3] === COLON;
}

/**
 * Decode `REG:<session_id>`, optionally followed by tokens, each after one space: a cookie
 * (COOKIE_LENGTH base64url characters, docs/protocol.md, "Return routability") and the flag
 * `move` and a peer token (`peer=<token>`, peer-token.ts), at most one of each, in any order; with an optional `\n` or `\r\n` terminator. The id
 * is printable ASCII (0x21-0x7e), 1..MAX_SESSION_ID_LENGTH bytes. Anything else after a space is
 * refused as a bad id, as a space inside an id always was. Never throws. Call only when
 * isReg(data) holds.
 */
export function parseReg(data: Uint8Array): RegParse {
  let end = data.length;
  if (end > 4 && data[end - 1] === LF) {
    end--;
    if (end > 4 && data[end - 1] === CR) end--;
  }
  let idEnd = 4;
  while (idEnd < end && data[idEnd] !== SPACE) idEnd++;
  let cookie: string | undefined;
  let move = false;
  let peer: string | undefined;
  for (let at = idEnd; at < end; ) {
    // `at` is a space: a token follows it, up to the next space or the end.
    let tokenEnd = at + 1;
    while (tokenEnd < end && data[tokenEnd] !== SPACE) tokenEnd++;
    const token = latin1.decode(data.subarray(at + 1, tokenEnd));
    if (token === MOVE_FLAG && !move) move = true;
    else if (cookie === undefined && token.length === COOKIE_LENGTH && isCookieText(token)) cookie = token;
    else if (peer === undefined && token.startsWith(PEER_TOKEN_PREFIX) && peerTokenOf(token) !== undefined) peer = peerTokenOf(token);
    else return { ok: false, code: unparsedFieldLength(data, end) > MAX_SESSION_ID_LENGTH ? RefusalCode.LongId : RefusalCode.BadId };
    at = tokenEnd;
  }
  const length = idEnd - 4;
  // `REG: <token>`: a space where the id should start is a bad id, as it always was.
  if (length <= 0) return { ok: false, code: idEnd < end ? RefusalCode.BadId : RefusalCode.EmptyId };
  if (length > MAX_SESSION_ID_LENGTH) return { ok: false, code: RefusalCode.LongId };
  for (let i = 4; i < idEnd; i++) {
    const b = data[i]!;
    if (b < 0x21 || b > 0x7e) return { ok: false, code: RefusalCode.BadId };
  }
  // One flat string: building it a character at a time leaves a rope per id in the table.
  const sessionId = latin1.decode(data.subarray(4, idEnd));
  return peer === undefined ? { ok: true, sessionId, cookie, move } : { ok: true, sessionId, cookie, move, peer };
}

/**
 * A REG whose tokens do not parse is refused as it always was: its whole field (what follows
 * `REG:`, less a trailing cookie) is the id, too long or holding a space.
 */
function unparsedFieldLength(data: Uint8Array, end: number): number {
  const cookieAt = end - COOKIE_LENGTH - 1;
  if (cookieAt > 4 && data[cookieAt] === SPACE && isCookieText(latin1.decode(data.subarray(cookieAt + 1, end)))) return cookieAt - 4;
  return end - 4;
}

/** Encode a REG datagram as clients send it: the relay's cookie when it asked for one, the `move` flag when the client follows MOVE replies, its peer token. */
export function encodeReg(sessionId: string, cookie?: string, options: { move?: boolean; peer?: string } = {}): Uint8Array {
  let text = `REG:${sessionId}`;
  if (cookie !== undefined) text += ` ${cookie}`;
  if (options.move) text += ` ${MOVE_FLAG}`;
  if (options.peer !== undefined) text += ` ${PEER_TOKEN_PREFIX}${options.peer}`;
  return new TextEncoder().encode(`${text}\n`);
}
