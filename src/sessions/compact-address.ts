import { ipBytes, ipFromBytes, V4_MAPPED_PREFIX as MAPPED_PREFIX } from "../net/address.ts";

/**
 * Transport addresses as four 32-bit words and a form, for the compact session store: the form
 * says how the socket wrote the address, so the exact string comes back from the words. Only
 * addresses that come back exactly are compact; any other stays a string in an expanded session.
 */
export const AddressForm = {
  None: 0,
  /** `1.2.3.4`: the IPv4 address in word 3. */
  V4: 1,
  /** `::ffff:1.2.3.4` (an IPv4 peer of a dual-stack socket): the IPv4 address in word 3. */
  Mapped: 2,
  /** An IPv6 address in its canonical text form (ipFromBytes), all four words. */
  V6: 3,
} as const;
export type AddressForm = (typeof AddressForm)[keyof typeof AddressForm];

/**
 * Reads `address` into `words` (4 entries) and returns its form, or None when the string would
 * not come back exactly from words and form (leading zeros, upper case, zones, other notations).
 */
export function readAddress(address: string, words: Uint32Array): AddressForm {
  const v4 = dottedQuad(address, 0);
  if (v4 >= 0) {
    words[0] = words[1] = words[2] = 0;
    words[3] = v4;
    return AddressForm.V4;
  }
  if (address.startsWith(MAPPED_PREFIX)) {
    const mapped = dottedQuad(address, MAPPED_PREFIX.length);
    if (mapped >= 0) {
      words[0] = words[1] = words[2] = 0;
      words[3] = mapped;
      return AddressForm.Mapped;
    }
  }
  if (!address.includes(":")) return AddressForm.None;
  const bytes = ipBytes(address);
  if (!bytes || bytes.length !== 16 || ipFromBytes(bytes) !== address) return AddressForm.None;
  for (let w = 0; w < 4; w++) words[w] = ((bytes[4 * w]! << 24) | (bytes[4 * w + 1]! << 16) | (bytes[4 * w + 2]! << 8) | bytes[4 * w + 3]!) >>> 0;
  return AddressForm.V6;
}

/** The address string `readAddress` read into `words` and `form`. */
export function writeAddress(form: AddressForm, words: ArrayLike<number>): string {
  if (form === AddressForm.V4) return quadText(words[3]!);
  if (form === AddressForm.Mapped) return MAPPED_PREFIX + quadText(words[3]!);
  const bytes = new Uint8Array(16);
  for (let w = 0; w < 4; w++) {
    const v = words[w]!;
    bytes[4 * w] = v >>> 24;
    bytes[4 * w + 1] = (v >>> 16) & 0xff;
    bytes[4 * w + 2] = (v >>> 8) & 0xff;
    bytes[4 * w + 3] = v & 0xff;
  }
  return ipFromBytes(bytes);
}

function quadText(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/**
 * The IPv4 address written from `start` to the end of `text` in canonical dotted form (no
 * leading zeros), as an unsigned 32-bit number; -1 for anything else. No allocation.
 */
function dottedQuad(text: string, start: number): number {
  let value = 0;
  let parts = 0;
  let i = start;
  const n = text.length;
  while (parts < 4) {
    const first = i;
    let part = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      part = part * 10 + (c - 48);
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || part > 255 || (digits > 1 && text.charCodeAt(first) === 48)) return -1;
    value = value * 256 + part;
    parts++;
    if (parts < 4) {
      if (i >= n || text.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === n ? value : -1;
}
