/**
 * Session ids as the compact store keeps them: ID_BYTES bytes and a one-byte code. A UUID in its
 * canonical form (36 characters, hyphens at 8, 13, 18 and 23, hex digits all lowercase or all
 * uppercase), which is what clients send, takes its 16 bytes of value; any other id of at most
 * ID_BYTES ASCII characters is kept as it is. Every other id does not pack (its session stays
 * expanded). The code tells the forms apart, so an id reads back exactly as it came: lowercase
 * and uppercase UUIDs are different ids, as they are on the wire.
 */

import { hashPacked, NO_KEY, samePacked, type KeyCodec } from "../collections/packed-key.ts";

export const ID_BYTES = 16;

/** Codes 0..ID_BYTES: an id kept as it is, of that many characters. */
export const UUID_LOWER = 0x80;
export const UUID_UPPER = 0x81;
/** The id does not pack. */
export const NO_ID = NO_KEY;

const UUID_LENGTH = 36;
const isHyphenAt = (k: number) => k === 8 || k === 13 || k === 18 || k === 23;

/** Two hex digits of each byte value, lowercase and uppercase. */
const LOWER = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
const UPPER = LOWER.map((h) => h.toUpperCase());

/** The value of hex digit `c` (a char code) in the given case, or -1. */
function nibble(c: number, upper: boolean): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const a = upper ? 0x41 : 0x61;
  return c >= a && c <= a + 5 ? c - a + 10 : -1;
}

/** The code `id` packs with (UUID_LOWER, UUID_UPPER, its length), or NO_ID. */
export function idCode(id: string): number {
  if (id.length === UUID_LENGTH) {
    const code = uuidCode(id);
    if (code !== NO_ID) return code;
  }
  if (id.length > ID_BYTES) return NO_ID;
  for (let k = 0; k < id.length; k++) if (id.charCodeAt(k) > 0x7f) return NO_ID;
  return id.length;
}

function uuidCode(id: string): number {
  let upper: boolean | undefined;
  for (let k = 0; k < UUID_LENGTH; k++) {
    const c = id.charCodeAt(k);
    if (isHyphenAt(k)) {
      if (c !== 0x2d) return NO_ID;
      continue;
    }
    if (c >= 0x30 && c <= 0x39) continue;
    const letterUpper = c >= 0x41 && c <= 0x46;
    if (!letterUpper && !(c >= 0x61 && c <= 0x66)) return NO_ID;
    if (upper === undefined) upper = letterUpper;
    else if (upper !== letterUpper) return NO_ID;
  }
  return upper ? UUID_UPPER : UUID_LOWER;
}

/** Writes `id` (of `code`, from idCode) at `at`: ID_BYTES bytes at most. */
export function writeId(id: string, code: number, out: Uint8Array, at: number): void {
  if (code === UUID_LOWER || code === UUID_UPPER) {
    const upper = code === UUID_UPPER;
    let k = 0;
    for (let b = 0; b < 16; b++) {
      if (isHyphenAt(k)) k++;
      out[at + b] = (nibble(id.charCodeAt(k), upper) << 4) | nibble(id.charCodeAt(k + 1), upper);
      k += 2;
    }
    return;
  }
  for (let k = 0; k < code; k++) out[at + k] = id.charCodeAt(k);
}

/** The bytes an id of `code` takes (the rest of its ID_BYTES are not its own). */
export function idLength(code: number): number {
  return code === UUID_LOWER || code === UUID_UPPER ? 16 : code;
}

/** A hash of the id packed at `at` with `code`, keyed by `seed` (a random one per index: ids are chosen by clients). */
export function hashId(seed: number, bytes: Uint8Array, at: number, code: number): number {
  return hashPacked(seed, bytes, at, code, idLength(code));
}

/** Whether the id stored at `at` with `code` is the one written at `wantAt` with `wantCode`. */
export function sameId(bytes: Uint8Array, at: number, code: number, want: Uint8Array, wantAt: number, wantCode: number): boolean {
  return samePacked(bytes, at, code, want, wantAt, wantCode, idLength(code));
}

/** The id stored at `at` with `code`, as a string again. */
export function readId(bytes: Uint8Array, at: number, code: number): string {
  if (code === UUID_LOWER || code === UUID_UPPER) {
    const hex = code === UUID_UPPER ? UPPER : LOWER;
    const h = (b: number) => hex[bytes[at + b]!]!;
    return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
  }
  // A loop, not String.fromCharCode(...subarray): spreading a typed array runs the iterator
  // protocol, about 30 µs an id (the fleet's withdrawals at stop spent most of their time there).
  let id = "";
  for (let k = 0; k < code; k++) id += String.fromCharCode(bytes[at + k]!);
  return id;
}

/** Session ids as the typed-array indexes pack them. */
export const SESSION_IDS: KeyCodec = { bytes: ID_BYTES, code: idCode, length: idLength, write: writeId, read: readId };
