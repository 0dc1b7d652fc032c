/**
 * Relay-to-relay bridge datagrams: a peer's datagram wrapped with the session it belongs to and an
 * HMAC under the fleet secret, so only fleet members can inject traffic into a session.
 *
 *   magic "\0qrb" (4) | version (1) | session id length (1) | sent-at ms, u48 (6) | session id | payload | tag (16)
 *
 * The tag is HMAC-SHA256 over everything before it, truncated to 16 bytes. The magic starts with a
 * zero byte, which no QUIC packet does (the fixed bit 0x40 is always set), so a relay can tell a
 * bridge datagram from a peer's packet with one byte compare before any decode.
 * Replay: a datagram is accepted while its timestamp is within the window of the receiver's clock;
 * a replay inside the window delivers a duplicate, which QUIC discards by packet number.
 */
import { MAX_SESSION_ID_LENGTH } from "../protocol/reg.ts";

export const BRIDGE_MAGIC = new Uint8Array([0x00, 0x71, 0x72, 0x62]);
export const BRIDGE_VERSION = 1;
export const BRIDGE_TAG_LENGTH = 16;
const FIXED_HEADER = 4 + 1 + 1 + 6;
/** Bytes a bridge datagram adds to the peer's payload for a session id of `sessionIdLength` bytes. */
export function bridgeOverhead(sessionIdLength: number): number {
  return FIXED_HEADER + sessionIdLength + BRIDGE_TAG_LENGTH;
}

/** Why a datagram was not accepted as a bridge datagram; also the label it is counted under. */
export const BridgeError = {
  /** Shorter than a header and a tag, or the session id runs past the end. */
  Truncated: "truncated",
  /** Does not start with the bridge magic. */
  BadMagic: "bad-magic",
  /** A version this relay does not speak. */
  BadVersion: "bad-version",
  /** Session id length 0 or above the protocol maximum. */
  BadSessionId: "bad-session-id",
  /** The tag does not match: wrong secret, tampered, or forged. */
  BadTag: "bad-tag",
  /** Timestamp outside the replay window. */
  Stale: "stale",
} as const;
export type BridgeError = (typeof BridgeError)[keyof typeof BridgeError];

/** Thrown by the encoder for inputs no caller should pass (a programming error, not traffic). */
export class BridgeEncodeError extends Error {
  override name = "BridgeEncodeError";
}

export type BridgeDecode =
  | { ok: true; sessionId: string; payload: Uint8Array; sentAt: number }
  | { ok: false; error: BridgeError };

/** Cheap check before any decode. */
export function isBridgeDatagram(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x00 && data[1] === 0x71 && data[2] === 0x72 && data[3] === 0x62;
}

/** Encodes and verifies bridge datagrams under one fleet secret. */
export class BridgeCodec {
  private readonly keyed: Bun.CryptoHasher;
  /** CryptoHasher.digest needs room for the largest digest. */
  private readonly digest = new Uint8Array(64);
  private readonly sessionIds = new Map<string, Uint8Array>();

  constructor(
    secret: string | Uint8Array,
    /** Largest accepted difference between the sender's timestamp and the receiver's clock. */
    readonly replayWindowMs = 30_000,
  ) {
    this.keyed = new Bun.CryptoHasher("sha256", typeof secret === "string" ? new TextEncoder().encode(secret) : secret);
  }

  encode(sessionId: string, payload: Uint8Array, now: number = Date.now()): Uint8Array {
    const sid = this.sessionIdBytes(sessionId);
    const out = new Uint8Array(bridgeOverhead(sid.length) + payload.length);
    out.set(BRIDGE_MAGIC, 0);
    out[4] = BRIDGE_VERSION;
    out[5] = sid.length;
    writeU48(out, 6, now);
    out.set(sid, FIXED_HEADER);
    out.set(payload, FIXED_HEADER + sid.length);
    const body = out.length - BRIDGE_TAG_LENGTH;
    this.tag(out.subarray(0, body));
    out.set(this.digest.subarray(0, BRIDGE_TAG_LENGTH), body);
    return out;
  }

  /** Never throws. The payload is a view into `data`. */
  decode(data: Uint8Array, now: number = Date.now()): BridgeDecode {
    if (data.length < FIXED_HEADER + 1 + BRIDGE_TAG_LENGTH) return fail(BridgeError.Truncated);
    if (!isBridgeDatagram(data)) return fail(BridgeError.BadMagic);
    if (data[4] !== BRIDGE_VERSION) return fail(BridgeError.BadVersion);
    const sidLength = data[5]!;
    if (sidLength === 0 || sidLength > MAX_SESSION_ID_LENGTH) return fail(BridgeError.BadSessionId);
    const body = data.length - BRIDGE_TAG_LENGTH;
    if (FIXED_HEADER + sidLength > body) return fail(BridgeError.Truncated);
    this.tag(data.subarray(0, body));
    let diff = 0;
    for (let i = 0; i < BRIDGE_TAG_LENGTH; i++) diff |= this.digest[i]! ^ data[body + i]!;
    if (diff !== 0) return fail(BridgeError.BadTag);
    const sentAt = readU48(data, 6);
    if (Math.abs(now - sentAt) > this.replayWindowMs) return fail(BridgeError.Stale);
    let sessionId = "";
    for (let i = FIXED_HEADER; i < FIXED_HEADER + sidLength; i++) sessionId += String.fromCharCode(data[i]!);
    return { ok: true, sessionId, payload: data.subarray(FIXED_HEADER + sidLength, body), sentAt };
  }

  private tag(bytes: Uint8Array): void {
    const h = this.keyed.copy();
    h.update(bytes);
    h.digest(this.digest);
  }

  private sessionIdBytes(sessionId: string): Uint8Array {
    let sid = this.sessionIds.get(sessionId);
    if (sid) return sid;
    sid = new TextEncoder().encode(sessionId);
    if (sid.length === 0 || sid.length > MAX_SESSION_ID_LENGTH) throw new BridgeEncodeError(`session id of ${sid.length} bytes cannot be bridged`);
    // Bounded cache: session ids of live bridged sessions only, cleared when it grows past them.
    if (this.sessionIds.size >= 65_536) this.sessionIds.clear();
    this.sessionIds.set(sessionId, sid);
    return sid;
  }
}

function fail(error: BridgeError): BridgeDecode {
  return { ok: false, error };
}

function writeU48(out: Uint8Array, at: number, value: number): void {
  const v = Math.max(0, Math.floor(value));
  const high = Math.floor(v / 2 ** 32) & 0xffff;
  const low = v >>> 0;
  out[at] = high >>> 8;
  out[at + 1] = high & 0xff;
  out[at + 2] = low >>> 24;
  out[at + 3] = (low >>> 16) & 0xff;
  out[at + 4] = (low >>> 8) & 0xff;
  out[at + 5] = low & 0xff;
}

function readU48(data: Uint8Array, at: number): number {
  const high = (data[at]! << 8) | data[at + 1]!;
  const low = ((data[at + 2]! << 24) | (data[at + 3]! << 16) | (data[at + 4]! << 8) | data[at + 5]!) >>> 0;
  return high * 2 ** 32 + low;
}
