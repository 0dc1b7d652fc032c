/**
 * Relay-to-relay bridge frames, version 3: a peer's datagram wrapped with its session id (type 0), or
 * a ping/pong between relays (types 1, 2; no session id). Big-endian:
 *
 *   magic "\0qrb" (4) | version 3 (1) | type (1) | key id (1) | session id length (1)
 *   | sent-at ms u48 (6) | epoch ms u48 (6) | counter u32 (4) | session id | payload | tag (16)
 *
 * The magic starts with a zero byte, which no QUIC packet does (the fixed bit 0x40 is set).
 * Bound to both relays: frames are authenticated (not encrypted) under the AES-128 key
 * K(sender -> receiver) = the first 16 bytes of HMAC-SHA256(secret, "quic-relay bridge v3\0" + sender
 * + "\0" + receiver). The tag is GMAC: AES-128-GCM under that key with an empty plaintext, all bytes
 * before the tag as additional data, and the 12-byte IV epoch u48 | counter u32 | 0x0000 (bytes 14..24
 * of the frame, then two zero bytes). No id is on the wire; the receiver names the sender by the
 * datagram's source address, so a frame verifies only at the relay it was made for and only as coming
 * from the relay that made it.
 * Rotation: a relay sends under its first secret and accepts any of them; the key id byte (first
 * byte of SHA-256 over "quic-relay bridge key id\0" + secret) picks the secret to verify with.
 * Nonces: (epoch, counter) is the IV, and GMAC needs it unique per key: two tags made under one key
 * and one IV give away the key's hash subkey, and with it tags for any frame under that key. As the
 * key belongs to one directed pair, a relay must never reuse (epoch, counter) towards one receiver
 * (the sequence goes on across rotation, so not under any secret either): the counter counts up, a
 * new epoch starts on counter rollover and after `forget`, and epochs are the wall clock (ms) when a
 * sequence starts, never below one this instance used. A restarted relay begins at its clock, so one
 * restarted after its clock stepped back by more than its previous uptime could repeat a nonce; keep
 * relay clocks from stepping back (they must be within the replay window of each other anyway).
 * Replay: the receiver accepts each nonce once per sender (BridgeNonces.admit; by default a
 * ReplayWindow per sender), and a restarted sender's later epoch supersedes its old one. Sent-at
 * within `replayWindowMs` of the receiver's clock bounds what a receiver that restarted with empty
 * windows can be fed: frames of the last window of time, each at most once (QUIC drops duplicates).
 * The nonces are kept by a BridgeNonces (bridge-nonces.ts), in this process unless the caller passes
 * another store, e.g. one shared with a native data plane that makes frames with `pairKeys`.
 */
import { createCipheriv, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { MAX_SESSION_ID_LENGTH } from "../protocol/reg.ts";
import { type BridgeNonces, LocalNonces, NONCE_COUNTER_LIMIT } from "./bridge-nonces.ts";

export const BRIDGE_MAGIC = new Uint8Array([0x00, 0x71, 0x72, 0x62]);
export const BRIDGE_VERSION = 3;
export const BRIDGE_TAG_LENGTH = 16;
const HEADER = 24;
const AT_VERSION = 4;
const AT_TYPE = 5;
const AT_KEY_ID = 6;
const AT_SID_LENGTH = 7;
const AT_SENT_AT = 8;
const AT_EPOCH = 14;
const AT_COUNTER = 20;
const EPOCH_LIMIT = 2 ** 48;
const KEY_ID_LABEL = "quic-relay bridge key id\0";
const PAIR_KEY_LABEL = "quic-relay bridge v3\0";
/** AES-128 key length. */
const PAIR_KEY_LENGTH = 16;
const IV_LENGTH = 12;
/** Derived keys are cheap to derive again; the cap only bounds a caller passing many relay ids. */
const MAX_CACHED_PEERS = 4096;
const MAX_CACHED_SESSION_IDS = 65_536;
const utf8 = new TextEncoder();

/** Bytes a bridge frame adds to its payload for a session id of `sessionIdLength` bytes (0 for ping/pong). */
export function bridgeOverhead(sessionIdLength: number): number {
  return HEADER + sessionIdLength + BRIDGE_TAG_LENGTH;
}

/** Cheap check before any decode. */
export function isBridgeDatagram(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x00 && data[1] === 0x71 && data[2] === 0x72 && data[3] === 0x62;
}

/** The key id byte frames made under `secret` carry. */
export function bridgeKeyId(secret: string | Uint8Array): number {
  return new Bun.CryptoHasher("sha256").update(KEY_ID_LABEL).update(secret).digest()[0]!;
}

export const BridgeFrameType = {
  /** A peer's datagram for a session. */
  Data: 0,
  /** A relay asking another whether it is reachable; the payload is echoed in the pong. */
  Ping: 1,
  Pong: 2,
} as const;
export type BridgeFrameType = (typeof BridgeFrameType)[keyof typeof BridgeFrameType];

/** Why a datagram was not accepted as a bridge frame; also the label it is counted under. */
export const BridgeError = {
  /** Shorter than a header and a tag, or the session id runs past the end. */
  Truncated: "truncated",
  /** Does not start with the bridge magic. */
  BadMagic: "bad-magic",
  /** A version this relay does not speak. */
  BadVersion: "bad-version",
  /** A frame type this relay does not know. */
  BadType: "bad-type",
  /** A data frame's session id length 0 or above the protocol maximum, or a ping/pong with one. */
  BadSessionId: "bad-session-id",
  /** The key id matches none of this relay's secrets: the sender rotated to a secret this relay lacks. */
  UnknownKey: "unknown-key",
  /** The tag does not match: another secret, another sender or receiver, tampered, or forged. */
  BadTag: "bad-tag",
  /** Sent-at outside the replay window of the receiver's clock, or an epoch beyond it. */
  Stale: "stale",
  /** A nonce this receiver already accepted from that sender, or one too far behind. */
  Replayed: "replayed",
} as const;
export type BridgeError = (typeof BridgeError)[keyof typeof BridgeError];

/** Thrown by the encoder for inputs no caller should pass (a programming error, not traffic). */
export class BridgeEncodeError extends Error {
  override name = "BridgeEncodeError";
}

/** Thrown when a codec is given unusable options or secrets. */
export class BridgeConfigError extends Error {
  override name = "BridgeConfigError";
}

export interface BridgeFrame {
  type: BridgeFrameType;
  /** Empty for ping and pong. */
  sessionId: string;
  /** A view into the decoded datagram. */
  payload: Uint8Array;
  /** The sender's clock when it sent the frame, ms. */
  sentAt: number;
}

export type BridgeDecode = { ok: true; frame: BridgeFrame } | { ok: false; error: BridgeError };

export interface BridgeCodecOptions {
  /** This relay's id, as the other relays name it (its advertised address). Must not contain "\0". */
  self: string;
  /** Fleet secrets: the first one signs what this relay sends, any of them verifies what it receives. */
  secrets: readonly (string | Uint8Array)[];
  /** Largest accepted difference between a frame's sent-at and the receiver's clock. Default 30 000. */
  replayWindowMs?: number;
  /** Milliseconds since the epoch; default Date.now. */
  clock?: () => number;
  /** Testing only: the counter a new sequence starts at, to reach the 2^32 rollover quickly. Default 0. Ignored with `nonces`. */
  startCounter?: number;
  /** Where nonces to send under come from and accepted ones are recorded. Default: new LocalNonces({ clock, startCounter }). */
  nonces?: BridgeNonces;
}

/** A pair key with the key id of the secret it is derived from, as a data plane that makes or verifies frames itself needs it. */
export interface BridgeKey {
  /** The key id byte frames under this key carry. */
  id: number;
  /** K(sender -> receiver), 16 bytes (AES-128). */
  key: Uint8Array;
}

/** A derived pair key, raw and ready for the cipher. */
interface PairKey {
  readonly bytes: Uint8Array;
  readonly cipherKey: KeyObject;
}

/** One fleet secret with the pair keys derived from it, by the other relay's id. */
interface FleetKey {
  readonly id: number;
  readonly secret: Uint8Array;
  readonly toPeer: Map<string, PairKey>;
  readonly fromPeer: Map<string, PairKey>;
}

/** Encodes frames to other relays and verifies frames from them, for one relay of a fleet. */
export class BridgeCodec {
  readonly self: string;
  readonly replayWindowMs: number;
  private readonly clock: () => number;
  private readonly nonces: BridgeNonces;
  private keys: FleetKey[] = [];
  /** The GMAC IV, rewritten for each frame (the cipher copies it); its last two bytes stay zero. */
  private readonly iv = new Uint8Array(IV_LENGTH);
  private readonly sessionIds = new Map<string, Uint8Array>();

  constructor(options: BridgeCodecOptions) {
    if (options.self.length === 0 || options.self.includes("\0")) throw new BridgeConfigError(`relay id ${JSON.stringify(options.self)} cannot name a bridge endpoint`);
    const replayWindowMs = options.replayWindowMs ?? 30_000;
    if (!(replayWindowMs > 0)) throw new BridgeConfigError(`replay window of ${replayWindowMs} ms must be positive`);
    this.self = options.self;
    this.replayWindowMs = replayWindowMs;
    this.clock = options.clock ?? Date.now;
    this.nonces = options.nonces ?? localNonces(this.clock, options.startCounter);
    this.setSecrets(options.secrets);
  }

  /** Replaces the secrets (rotation at run time); keys derived from the old ones are dropped. */
  setSecrets(secrets: readonly (string | Uint8Array)[]): void {
    if (secrets.length === 0) throw new BridgeConfigError("a bridge needs at least one fleet secret");
    this.keys = secrets.map((s) => {
      const secret = typeof s === "string" ? utf8.encode(s) : s.slice();
      if (secret.length === 0) throw new BridgeConfigError("a fleet secret must not be empty");
      return { id: bridgeKeyId(secret), secret, toPeer: new Map(), fromPeer: new Map() };
    });
  }

  /** A data frame to relay `to`. Throws BridgeEncodeError for a session id of 0 or > MAX_SESSION_ID_LENGTH bytes. */
  encode(to: string, sessionId: string, payload: Uint8Array): Uint8Array {
    return this.encodeFrame(to, BridgeFrameType.Data, this.sessionIdBytes(sessionId), payload);
  }

  encodePing(to: string, payload: Uint8Array): Uint8Array {
    return this.encodeFrame(to, BridgeFrameType.Ping, undefined, payload);
  }

  encodePong(to: string, payload: Uint8Array): Uint8Array {
    return this.encodeFrame(to, BridgeFrameType.Pong, undefined, payload);
  }

  /** Never throws. `from` is the sender's relay id. The payload is a view into `data`. Records the nonce only when everything checked out. */
  decode(from: string, data: Uint8Array): BridgeDecode {
    if (data.length < HEADER + BRIDGE_TAG_LENGTH) return fail(BridgeError.Truncated);
    if (!isBridgeDatagram(data)) return fail(BridgeError.BadMagic);
    if (data[AT_VERSION] !== BRIDGE_VERSION) return fail(BridgeError.BadVersion);
    const type = data[AT_TYPE]!;
    if (type > BridgeFrameType.Pong) return fail(BridgeError.BadType);
    const sidLength = data[AT_SID_LENGTH]!;
    const sidAllowed = type === BridgeFrameType.Data ? sidLength > 0 && sidLength <= MAX_SESSION_ID_LENGTH : sidLength === 0;
    if (!sidAllowed) return fail(BridgeError.BadSessionId);
    const body = data.length - BRIDGE_TAG_LENGTH;
    if (HEADER + sidLength > body) return fail(BridgeError.Truncated);
    const rejected = this.verify(from, data, body);
    if (rejected) return fail(rejected);
    const now = this.clock();
    const sentAt = readU48(data, AT_SENT_AT);
    const epoch = readU48(data, AT_EPOCH);
    if (Math.abs(now - sentAt) > this.replayWindowMs || epoch - now > this.replayWindowMs) return fail(BridgeError.Stale);
    // Only an authentic, fresh frame reaches the nonce store, so a forged one never moves a window.
    if (!this.nonces.admit(from, epoch, readU32(data, AT_COUNTER))) return fail(BridgeError.Replayed);
    let sessionId = "";
    for (let i = HEADER; i < HEADER + sidLength; i++) sessionId += String.fromCharCode(data[i]!);
    return { ok: true, frame: { type: type as BridgeFrameType, sessionId, payload: data.subarray(HEADER + sidLength, body), sentAt } };
  }

  /** Drops what this codec keeps about another relay (it left the fleet): its keys, and through the nonce store the nonces seen from it and sent to it. */
  forget(peer: string): void {
    this.nonces.forget(peer);
    for (const key of this.keys) {
      key.toPeer.delete(peer);
      key.fromPeer.delete(peer);
    }
  }

  /**
   * The pair keys for relay `peer`, for a data plane that makes and verifies frames itself: `tx` is
   * K(self -> peer) under the first (signing) secret, `rx` is K(peer -> self) under each secret, in
   * the secrets' order. Copies: changing them changes nothing here.
   */
  pairKeys(peer: string): { tx: BridgeKey; rx: BridgeKey[] } {
    const signing = this.keys[0]!;
    return {
      tx: { id: signing.id, key: pairKey(signing.secret, signing.toPeer, peer, this.self, peer).bytes.slice() },
      rx: this.keys.map((key) => ({ id: key.id, key: pairKey(key.secret, key.fromPeer, peer, peer, this.self).bytes.slice() })),
    };
  }

  private encodeFrame(to: string, type: BridgeFrameType, sid: Uint8Array | undefined, payload: Uint8Array): Uint8Array {
    const now = this.clock();
    const { epoch, counter } = this.nonces.next(to);
    // Written as they are: a nonce the frame cannot carry exactly would be truncated into one used before.
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= EPOCH_LIMIT || !Number.isInteger(counter) || counter < 0 || counter >= NONCE_COUNTER_LIMIT) {
      throw new BridgeEncodeError(`nonce (${epoch}, ${counter}) is not a u48 epoch and a u32 counter`);
    }
    const key = this.keys[0]!;
    const sidLength = sid ? sid.length : 0;
    const out = new Uint8Array(bridgeOverhead(sidLength) + payload.length);
    out.set(BRIDGE_MAGIC, 0);
    out[AT_VERSION] = BRIDGE_VERSION;
    out[AT_TYPE] = type;
    out[AT_KEY_ID] = key.id;
    out[AT_SID_LENGTH] = sidLength;
    writeU48(out, AT_SENT_AT, now);
    writeU48(out, AT_EPOCH, epoch);
    writeU32(out, AT_COUNTER, counter);
    if (sid) out.set(sid, HEADER);
    out.set(payload, HEADER + sidLength);
    const body = out.length - BRIDGE_TAG_LENGTH;
    out.set(this.tag(pairKey(key.secret, key.toPeer, to, this.self, to), out, body), body);
    return out;
  }

  /** Undefined when a secret with the frame's key id makes the same tag for `from` -> self. */
  private verify(from: string, data: Uint8Array, body: number): BridgeError | undefined {
    const keyId = data[AT_KEY_ID];
    let known = false;
    for (const key of this.keys) {
      if (key.id !== keyId) continue;
      known = true;
      const tag = this.tag(pairKey(key.secret, key.fromPeer, from, from, this.self), data, body);
      if (timingSafeEqual(tag, data.subarray(body, body + BRIDGE_TAG_LENGTH))) return undefined;
    }
    return known ? BridgeError.BadTag : BridgeError.UnknownKey;
  }

  /** The GMAC tag of `frame`'s first `body` bytes (its nonce among them) under `key`. */
  private tag(key: PairKey, frame: Uint8Array, body: number): Uint8Array {
    this.iv.set(frame.subarray(AT_EPOCH, HEADER));
    const gcm = createCipheriv("aes-128-gcm", key.cipherKey, this.iv);
    gcm.setAAD(frame.subarray(0, body));
    gcm.final();
    return gcm.getAuthTag();
  }

  private sessionIdBytes(sessionId: string): Uint8Array {
    let sid = this.sessionIds.get(sessionId);
    if (sid) return sid;
    sid = utf8.encode(sessionId);
    if (sid.length === 0 || sid.length > MAX_SESSION_ID_LENGTH) throw new BridgeEncodeError(`session id of ${sid.length} bytes cannot be bridged`);
    // Bounded cache: session ids of live bridged sessions only, cleared when it grows past them.
    if (this.sessionIds.size >= MAX_CACHED_SESSION_IDS) this.sessionIds.clear();
    this.sessionIds.set(sessionId, sid);
    return sid;
  }
}

/** K(sender -> receiver) under `secret`, cached in `cache` by the other relay's id, `peer`. */
function pairKey(secret: Uint8Array, cache: Map<string, PairKey>, peer: string, sender: string, receiver: string): PairKey {
  let pair = cache.get(peer);
  if (pair) return pair;
  const hmac = new Bun.CryptoHasher("sha256", secret).update(PAIR_KEY_LABEL + sender + "\0" + receiver).digest();
  const bytes = new Uint8Array(hmac.subarray(0, PAIR_KEY_LENGTH));
  pair = { bytes, cipherKey: createSecretKey(bytes) };
  if (cache.size >= MAX_CACHED_PEERS) cache.clear();
  cache.set(peer, pair);
  return pair;
}

/** The default nonce store; a start counter it refuses is a configuration error of the codec. */
function localNonces(clock: () => number, startCounter: number | undefined): LocalNonces {
  try {
    return new LocalNonces({ clock, startCounter });
  } catch (error) {
    if (error instanceof RangeError) throw new BridgeConfigError(error.message);
    throw error;
  }
}

function fail(error: BridgeError): BridgeDecode {
  return { ok: false, error };
}

function writeU48(out: Uint8Array, at: number, value: number): void {
  const v = Math.max(0, Math.floor(value));
  const high = Math.floor(v / 2 ** 32) & 0xffff;
  out[at] = high >>> 8;
  out[at + 1] = high & 0xff;
  writeU32(out, at + 2, v >>> 0);
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function readU48(data: Uint8Array, at: number): number {
  return ((data[at]! << 8) | data[at + 1]!) * 2 ** 32 + readU32(data, at + 2);
}

function readU32(data: Uint8Array, at: number): number {
  return ((data[at]! << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!) >>> 0;
}
