import { RefusalCode } from "./errors.ts";

export const MAX_SESSION_ID_LENGTH = 128;

const latin1 = new TextDecoder("latin1");

export type RegParse =
  | { ok: true; sessionId: string }
  | { ok: false; code: RefusalCode };

const R = 0x52, E = 0x45, G = 0x47, COLON = 0x3a, CR = 0x0d, LF = 0x0a;

/** Cheap check before any decode: does the datagram start with `REG:`? */
export function isReg(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === R && data[1] === E && data[2] === G && data[3] === COLON;
}

/**
 * Decode `REG:<session_id>` with an optional `\n` or `\r\n` terminator.
 * The id is printable ASCII (0x21-0x7e), 1..MAX_SESSION_ID_LENGTH bytes. Never throws.
 * Call only when isReg(data) holds.
 */
export function parseReg(data: Uint8Array): RegParse {
  let end = data.length;
  if (end > 4 && data[end - 1] === LF) {
    end--;
    if (end > 4 && data[end - 1] === CR) end--;
  }
  const length = end - 4;
  if (length <= 0) return { ok: false, code: RefusalCode.EmptyId };
  if (length > MAX_SESSION_ID_LENGTH) return { ok: false, code: RefusalCode.LongId };
  for (let i = 4; i < end; i++) {
    const b = data[i]!;
    if (b < 0x21 || b > 0x7e) return { ok: false, code: RefusalCode.BadId };
  }
  // One flat string: building it a character at a time leaves a rope per id in the table.
  return { ok: true, sessionId: latin1.decode(data.subarray(4, end)) };
}

/** Encode a REG datagram as clients send it. */
export function encodeReg(sessionId: string): Uint8Array {
  return new TextEncoder().encode(`REG:${sessionId}\n`);
}
