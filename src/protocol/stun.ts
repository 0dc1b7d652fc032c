/**
 * STUN Binding (RFC 8489), the part an address-discovery server and its client need: telling a
 * STUN message apart from everything else on the relay's port, reading a Binding request, and
 * writing the answers. Classic requests (RFC 3489: no magic cookie) are read too, and answered with
 * a plain MAPPED-ADDRESS as that RFC's clients expect. Pure; no I/O.
 */
import { ipBytes, ipFromBytes } from "../net/address.ts";

export const STUN_HEADER_LENGTH = 20;
export const MAGIC_COOKIE = 0x2112a442;
const FINGERPRINT_XOR = 0x5354554e;

export const StunType = {
  BindingRequest: 0x0001,
  BindingIndication: 0x0011,
  BindingSuccess: 0x0101,
  BindingError: 0x0111,
} as const;

export const StunAttr = {
  MappedAddress: 0x0001,
  ResponseAddress: 0x0002,
  ChangeRequest: 0x0003,
  ChangedAddress: 0x0005,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  XorMappedAddress: 0x0020,
  ResponsePort: 0x0027,
  Fingerprint: 0x8028,
  OtherAddress: 0x802c,
} as const;

/**
 * Comprehension-required attributes (types below 0x8000) a Binding request may carry and still be
 * answered: the credentials and ICE attributes are read past (this server authenticates nobody and
 * its answers carry no MESSAGE-INTEGRITY), CHANGE-REQUEST only with no flag set. RESPONSE-ADDRESS
 * and RESPONSE-PORT are refused on purpose: honouring them would send answers somewhere other
 * than the requester, which is what reflection attacks want.
 */
const UNDERSTOOD = new Set([
  0x0001, // MAPPED-ADDRESS
  0x0003, // CHANGE-REQUEST (flags checked separately)
  0x0006, // USERNAME
  0x0008, // MESSAGE-INTEGRITY
  0x0009, // ERROR-CODE
  0x000a, // UNKNOWN-ATTRIBUTES
  0x0014, // REALM
  0x0015, // NONCE
  0x001c, // MESSAGE-INTEGRITY-SHA256
  0x001d, // PASSWORD-ALGORITHM
  0x001e, // USERHASH
  0x0020, // XOR-MAPPED-ADDRESS
  0x0024, // PRIORITY
  0x0025, // USE-CANDIDATE
  0x0026, // PADDING
]);

/** At most this many unknown attribute types are listed in a 420 answer. */
const MAX_LISTED_UNKNOWN = 4;

export interface BindingRequest {
  /** RFC 3489 request: no magic cookie, a 16-byte transaction id. */
  classic: boolean;
  /** Bytes 4..20 of the request: magic cookie and transaction id (or the classic 16-byte id). */
  transaction: Uint8Array;
  /** The request ended with a valid FINGERPRINT; the answer carries one too. */
  fingerprint: boolean;
  /** CHANGE-REQUEST was present (its flags are in `changeFlags`). */
  changeRequest: boolean;
  changeFlags: number;
  /** Comprehension-required attributes this server does not honour (at most a few listed). */
  unknown: number[];
}

export type StunRead =
  /** Not STUN at all: someone else's bytes (QUIC, a REG, junk). */
  | { kind: "other" }
  /** STUN, but not a Binding request (a response, an indication, another method). */
  | { kind: "not-request" }
  /** Looks like STUN and is broken: bad attribute lengths, a wrong FINGERPRINT. */
  | { kind: "malformed"; reason: string }
  | { kind: "request"; request: BindingRequest };

function u16(data: Uint8Array, at: number): number {
  return (data[at]! << 8) | data[at + 1]!;
}

function u32(data: Uint8Array, at: number): number {
  return ((data[at]! << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!) >>> 0;
}

/** Whether the datagram carries the RFC 8489 magic cookie with a well-formed STUN header. */
export function hasStunHeader(data: Uint8Array): boolean {
  return data.length >= STUN_HEADER_LENGTH && (data[0]! & 0xc0) === 0 && u32(data, 4) === MAGIC_COOKIE && u16(data, 2) + STUN_HEADER_LENGTH === data.length && (data.length & 3) === 0;
}

/**
 * A classic (RFC 3489) Binding request: no cookie, so told apart by its exact type and length.
 * Only requests qualify; the relay never has to recognise classic responses.
 */
function isClassicBindingRequest(data: Uint8Array): boolean {
  return data.length >= STUN_HEADER_LENGTH && u16(data, 0) === StunType.BindingRequest && u16(data, 2) + STUN_HEADER_LENGTH === data.length && u32(data, 4) !== MAGIC_COOKIE;
}

/** Cheap test for the relay's hot path: could this be a STUN Binding request at all? */
export function mayBeBindingRequest(data: Uint8Array): boolean {
  return data.length >= STUN_HEADER_LENGTH && data[0] === 0x00 && data[1] === 0x01;
}

/** FINGERPRINT value for `data[0..end)` (RFC 8489 section 14.7). */
export function fingerprintOf(data: Uint8Array, end: number): number {
  return (Bun.hash.crc32(data.subarray(0, end)) ^ FINGERPRINT_XOR) >>> 0;
}

/** Reads a datagram as a Binding request, or says what else it is. */
export function readStun(data: Uint8Array): StunRead {
  const modern = hasStunHeader(data);
  const classic = !modern && isClassicBindingRequest(data);
  if (!modern && !classic) return { kind: "other" };
  if (u16(data, 0) !== StunType.BindingRequest) return { kind: "not-request" };
  const request: BindingRequest = {
    classic,
    transaction: data.slice(4, STUN_HEADER_LENGTH),
    fingerprint: false,
    changeRequest: false,
    changeFlags: 0,
    unknown: [],
  };
  let at = STUN_HEADER_LENGTH;
  while (at < data.length) {
    if (at + 4 > data.length) return { kind: "malformed", reason: "truncated attribute header" };
    const type = u16(data, at);
    const length = u16(data, at + 2);
    const value = at + 4;
    const padded = (length + 3) & ~3;
    if (value + padded > data.length) return { kind: "malformed", reason: "attribute runs past the message" };
    if (request.fingerprint) return { kind: "malformed", reason: "attribute after FINGERPRINT" };
    if (type === StunAttr.Fingerprint && !classic) {
      if (length !== 4) return { kind: "malformed", reason: "FINGERPRINT of wrong length" };
      if (u32(data, value) !== fingerprintOf(data, at)) return { kind: "malformed", reason: "FINGERPRINT does not match" };
      request.fingerprint = true;
    } else if (type === StunAttr.ChangeRequest) {
      if (length !== 4) return { kind: "malformed", reason: "CHANGE-REQUEST of wrong length" };
      request.changeRequest = true;
      request.changeFlags = u32(data, value) & 0x6;
    } else if (type < 0x8000 && !UNDERSTOOD.has(type) && request.unknown.length < MAX_LISTED_UNKNOWN) {
      request.unknown.push(type);
    }
    at = value + padded;
  }
  return { kind: "request", request };
}

/** A transport address as a STUN address value; XORed with the transaction when `xor` is set. */
function addressValue(address: string, port: number, transaction: Uint8Array | undefined): Uint8Array {
  const ip = ipBytes(address);
  if (!ip) throw new RangeError(`not an IP address: ${address}`);
  const value = new Uint8Array(4 + ip.length);
  value[1] = ip.length === 4 ? 0x01 : 0x02;
  const xport = transaction ? port ^ (MAGIC_COOKIE >>> 16) : port;
  value[2] = xport >> 8;
  value[3] = xport & 0xff;
  for (let i = 0; i < ip.length; i++) value[4 + i] = transaction ? ip[i]! ^ transaction[i]! : ip[i]!;
  return value;
}

/** Reads a (XOR-)MAPPED-ADDRESS style value back into address and port. */
export function readAddressValue(value: Uint8Array, transaction: Uint8Array | undefined): { address: string; port: number } | undefined {
  if (value.length < 8) return undefined;
  const family = value[1];
  const length = family === 0x01 ? 4 : family === 0x02 ? 16 : 0;
  if (length === 0 || value.length < 4 + length) return undefined;
  const port = transaction ? u16(value, 2) ^ (MAGIC_COOKIE >>> 16) : u16(value, 2);
  const ip = new Uint8Array(length);
  for (let i = 0; i < length; i++) ip[i] = transaction ? value[4 + i]! ^ transaction[i]! : value[4 + i]!;
  return { address: ipFromBytes(ip), port };
}

class MessageWriter {
  private readonly parts: { type: number; value: Uint8Array }[] = [];
  constructor(
    private readonly type: number,
    private readonly transaction: Uint8Array,
  ) {}

  add(type: number, value: Uint8Array): this {
    this.parts.push({ type, value });
    return this;
  }

  finish(fingerprint: boolean): Uint8Array {
    let length = 0;
    for (const part of this.parts) length += 4 + ((part.value.length + 3) & ~3);
    if (fingerprint) length += 8;
    const out = new Uint8Array(STUN_HEADER_LENGTH + length);
    out[0] = this.type >> 8;
    out[1] = this.type & 0xff;
    out[2] = length >> 8;
    out[3] = length & 0xff;
    out.set(this.transaction, 4);
    let at = STUN_HEADER_LENGTH;
    for (const part of this.parts) {
      writeAttrHeader(out, at, part.type, part.value.length);
      out.set(part.value, at + 4);
      at += 4 + ((part.value.length + 3) & ~3);
    }
    if (fingerprint) {
      writeAttrHeader(out, at, StunAttr.Fingerprint, 4);
      new DataView(out.buffer).setUint32(at + 4, fingerprintOf(out, at));
    }
    return out;
  }
}

function writeAttrHeader(out: Uint8Array, at: number, type: number, length: number): void {
  out[at] = type >> 8;
  out[at + 1] = type & 0xff;
  out[at + 2] = length >> 8;
  out[at + 3] = length & 0xff;
}

export interface BindingAnswer {
  /** The requester's transport address as the relay saw it. */
  mapped: { address: string; port: number };
  /** The relay's second discovery address (RFC 5780 OTHER-ADDRESS), when it has one and was asked. */
  other?: { address: string; port: number };
}

/**
 * Success answer to `request`: XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for a classic request), then
 * OTHER-ADDRESS (CHANGED-ADDRESS for a classic request) when given, then FINGERPRINT when the request had one. A bare 20-byte request gets
 * 32 bytes back for an IPv4 requester, 44 for IPv6.
 */
export function encodeBindingSuccess(request: BindingRequest, answer: BindingAnswer): Uint8Array {
  const w = new MessageWriter(StunType.BindingSuccess, request.transaction);
  const { mapped, other } = answer;
  if (request.classic) w.add(StunAttr.MappedAddress, addressValue(mapped.address, mapped.port, undefined));
  else w.add(StunAttr.XorMappedAddress, addressValue(mapped.address, mapped.port, request.transaction));
  // RFC 3489 named the second address CHANGED-ADDRESS; its clients test their NAT against it.
  if (other) w.add(request.classic ? StunAttr.ChangedAddress : StunAttr.OtherAddress, addressValue(other.address, other.port, undefined));
  return w.finish(request.fingerprint);
}

/** 420 (Unknown Attribute) answer listing the attribute types this server does not honour. */
export function encodeUnknownAttributes(request: BindingRequest, types: readonly number[]): Uint8Array {
  const reason = new TextEncoder().encode("Unknown Attribute");
  const code = new Uint8Array(4 + reason.length);
  code[2] = 4; // class: 4xx
  code[3] = 20; // number: 420
  code.set(reason, 4);
  const list = new Uint8Array(types.length * 2);
  types.forEach((t, i) => {
    list[2 * i] = t >> 8;
    list[2 * i + 1] = t & 0xff;
  });
  return new MessageWriter(StunType.BindingError, request.transaction).add(StunAttr.ErrorCode, code).add(StunAttr.UnknownAttributes, list).finish(request.fingerprint);
}

/** A Binding request with a fresh random transaction id; CHANGE-REQUEST (flags 0) asks for OTHER-ADDRESS. */
export function encodeBindingRequest(options: { askOtherAddress?: boolean; fingerprint?: boolean } = {}): { datagram: Uint8Array; transaction: Uint8Array } {
  const transaction = new Uint8Array(16);
  new DataView(transaction.buffer).setUint32(0, MAGIC_COOKIE);
  crypto.getRandomValues(transaction.subarray(4));
  const w = new MessageWriter(StunType.BindingRequest, transaction);
  if (options.askOtherAddress) w.add(StunAttr.ChangeRequest, new Uint8Array(4));
  return { datagram: w.finish(options.fingerprint ?? true), transaction };
}

export interface BindingResponse {
  mapped: { address: string; port: number };
  other?: { address: string; port: number };
}

/**
 * Reads a success answer to the request with `transaction`: undefined for anything else (another
 * transaction, an error answer, a broken message, a wrong FINGERPRINT).
 */
export function readBindingSuccess(data: Uint8Array, transaction: Uint8Array): BindingResponse | undefined {
  if (!hasStunHeader(data) || u16(data, 0) !== StunType.BindingSuccess) return undefined;
  for (let i = 0; i < 16; i++) if (data[4 + i] !== transaction[i]) return undefined;
  let mapped: BindingResponse["mapped"] | undefined;
  let plainMapped: BindingResponse["mapped"] | undefined;
  let other: BindingResponse["other"];
  let at = STUN_HEADER_LENGTH;
  while (at + 4 <= data.length) {
    const type = u16(data, at);
    const length = u16(data, at + 2);
    const value = data.subarray(at + 4, at + 4 + length);
    if (value.length < length) return undefined;
    if (type === StunAttr.XorMappedAddress) mapped = readAddressValue(value, transaction);
    else if (type === StunAttr.MappedAddress) plainMapped = readAddressValue(value, undefined);
    else if (type === StunAttr.OtherAddress) other = readAddressValue(value, undefined);
    else if (type === StunAttr.Fingerprint && (length !== 4 || u32(data, at + 4) !== fingerprintOf(data, at))) return undefined;
    at += 4 + ((length + 3) & ~3);
  }
  const found = mapped ?? plainMapped;
  return found ? { mapped: found, ...(other ? { other } : {}) } : undefined;
}
