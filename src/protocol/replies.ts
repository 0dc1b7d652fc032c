import type { RefusalCode } from "./errors.ts";

export const ACK = new Uint8Array([0x41, 0x43, 0x4b, 0x0a]); // "ACK\n"
const BARE_ERR = new Uint8Array([0x45, 0x52, 0x52, 0x0a]); // "ERR\n"

const encoded = new Map<string, Uint8Array>();

/**
 * The refusal reply for a request of `requestLength` bytes: `ERR <code>\n` when that fits,
 * else `ERR\n` when that fits, else undefined (stay silent). A reply is never larger than
 * its request, so the relay cannot be used as an amplifier.
 */
export function refusalReply(code: RefusalCode, requestLength: number): Uint8Array | undefined {
  let full = encoded.get(code);
  if (!full) {
    full = new TextEncoder().encode(`ERR ${code}\n`);
    encoded.set(code, full);
  }
  if (full.length <= requestLength) return full;
  if (BARE_ERR.length <= requestLength) return BARE_ERR;
  return undefined;
}

export function isAck(data: Uint8Array): boolean {
  return data.length === 4 && data[0] === 0x41 && data[1] === 0x43 && data[2] === 0x4b && data[3] === 0x0a;
}

/** `ERR ...\n` from the relay: returns the code ("" for a bare ERR), or undefined if not an ERR. */
export function parseErr(data: Uint8Array): string | undefined {
  if (data.length < 4 || data[0] !== 0x45 || data[1] !== 0x52 || data[2] !== 0x52) return undefined;
  const text = new TextDecoder().decode(data);
  if (text === "ERR\n") return "";
  if (!text.startsWith("ERR ") || !text.endsWith("\n") || text.length > 64) return undefined;
  return text.slice(4, -1);
}
