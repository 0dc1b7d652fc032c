import { isIP } from "node:net";
import { COOKIE_LENGTH, isCookieText } from "./cookie.ts";
import type { RefusalCode } from "./errors.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../net/address.ts";

export const ACK = new Uint8Array([0x41, 0x43, 0x4b, 0x0a]); // "ACK\n"
const BARE_ERR = new Uint8Array([0x45, 0x52, 0x52, 0x0a]); // "ERR\n"
const RETRY_PREFIX = "RETRY ";

/** Bytes of a `RETRY <cookie>\n` reply; a REG shorter than this cannot be answered with one. */
export const RETRY_LENGTH = RETRY_PREFIX.length + COOKIE_LENGTH + 1;

/**
 * Longest datagram that may be a line of the relay protocol (`ACK\n`, `ERR ...\n`, `RETRY ...\n`).
 * Every QUIC packet is longer than any such line is likely to be, but the guard below is only a
 * cheap filter: the exact test is isRelayLine.
 */
export const RELAY_LINE_MAX = 32;

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

/** `RETRY <cookie>\n`: the relay asks the sender to repeat its REG with this cookie. */
export function encodeRetry(cookie: string): Uint8Array {
  return new TextEncoder().encode(`${RETRY_PREFIX}${cookie}\n`);
}

/** The cookie of a `RETRY <cookie>\n` reply, or undefined if the datagram is not one. */
export function parseRetry(data: Uint8Array): string | undefined {
  if (data.length !== RETRY_LENGTH || data[data.length - 1] !== 0x0a) return undefined;
  const text = new TextDecoder("latin1").decode(data);
  if (!text.startsWith(RETRY_PREFIX)) return undefined;
  const cookie = text.slice(RETRY_PREFIX.length, -1);
  return isCookieText(cookie) ? cookie : undefined;
}

const MOVE_PREFIX = "MOVE ";

/**
 * `MOVE <ip>:<port>\n` (`[v6]:port` for IPv6): the answer to a REG carrying the `move` flag when,
 * in a fleet, the session's other peer is on another relay: register there instead. Undefined
 * when it would be larger than the REG (`requestLength`): then the relay registers the peer
 * itself (a reply is never larger than its request).
 */
export function encodeMove(target: HostPort, requestLength: number): Uint8Array | undefined {
  const reply = new TextEncoder().encode(`${MOVE_PREFIX}${formatHostPort(target)}\n`);
  return reply.length <= requestLength ? reply : undefined;
}

/** The relay named by a `MOVE <ip>:<port>\n` reply (an IP address, never a name), or undefined if the datagram is not one. */
export function parseMove(data: Uint8Array): HostPort | undefined {
  if (data.length < MOVE_PREFIX.length + 4 || data.length > 64 || data[data.length - 1] !== 0x0a || data[0] !== 0x4d) return undefined;
  const text = new TextDecoder("latin1").decode(data);
  if (!text.startsWith(MOVE_PREFIX)) return undefined;
  const address = text.slice(MOVE_PREFIX.length, -1);
  if (address.trim() !== address) return undefined;
  const target = parseHostPort(address);
  if (!target || isIP(target.host) === 0 || target.port === 0) return undefined;
  return target;
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

/**
 * Cheap filter the data planes apply before forwarding: a short datagram ending in `\n` that
 * starts like `ACK`, `ERR` or `RETRY` may be a relay speaking the relay protocol, and is handed to
 * the control plane instead (native/wire_checks.h applies the same test). QUIC packets pass:
 * of the few QUIC packets of 32 bytes or less, about 2 in 10,000 have these first and last bytes,
 * and those still reach the partner through the control plane.
 */
export function mayBeRelayLine(data: Uint8Array): boolean {
  const n = data.length;
  if (n < 4 || n > RELAY_LINE_MAX || data[n - 1] !== 0x0a) return false;
  const first = data[0];
  return first === 0x41 || first === 0x45 || first === 0x52;
}

const ERR_CODE = /^[a-z0-9-]{1,24}$/;

/**
 * A line only a relay sends: `ACK\n`, `ERR\n`, `ERR <code>\n` or `RETRY <cookie>\n`. Peers never
 * send these, so an address that does is a relay (or someone forging one): it is never forwarded
 * to, and two of them are never paired (docs/security.md, "Forwarding loops").
 */
export function isRelayLine(data: Uint8Array): boolean {
  if (!mayBeRelayLine(data)) return false;
  if (isAck(data) || parseRetry(data) !== undefined) return true;
  const code = parseErr(data);
  return code !== undefined && (data.length === 4 || ERR_CODE.test(code));
}
