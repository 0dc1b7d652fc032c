/**
 * QUIC connection IDs as the connection-ID index packs them: the relay reads an ID as lowercase
 * hex (protocol/quic.ts), up to MAX_CID_LENGTH bytes, and packs it back into its bytes; the code is
 * its length in bytes. Any other string (odd length, uppercase, longer) does not pack.
 */
import { NO_KEY, type KeyCodec } from "../collections/packed-key.ts";
import { MAX_CID_LENGTH } from "../protocol/quic.ts";

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** The value of lowercase hex digit `c` (a char code), or -1. */
function nibble(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  return c >= 0x61 && c <= 0x66 ? c - 0x61 + 10 : -1;
}

function cidCode(cid: string): number {
  if (cid.length % 2 !== 0 || cid.length > 2 * MAX_CID_LENGTH) return NO_KEY;
  for (let k = 0; k < cid.length; k++) if (nibble(cid.charCodeAt(k)) < 0) return NO_KEY;
  return cid.length / 2;
}

export const CID_KEYS: KeyCodec = {
  bytes: MAX_CID_LENGTH,
  code: cidCode,
  length: (code) => code,
  write(cid, code, out, at) {
    for (let b = 0; b < code; b++) out[at + b] = (nibble(cid.charCodeAt(2 * b)) << 4) | nibble(cid.charCodeAt(2 * b + 1));
  },
  read(bytes, at, code) {
    let cid = "";
    for (let b = 0; b < code; b++) cid += HEX[bytes[at + b]!];
    return cid;
  },
};
