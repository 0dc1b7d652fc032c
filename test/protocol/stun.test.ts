/**
 * The STUN codec against RFC 5769's test vectors (the samples RFC 8489 points to) where they
 * apply: this server's answers carry no SOFTWARE and no MESSAGE-INTEGRITY, so the checks are the
 * attributes it does write (XOR-MAPPED-ADDRESS, FINGERPRINT), byte for byte, and the reading of
 * the sample request with every attribute an ICE agent sends.
 */
import { describe, expect, it } from "bun:test";
import {
  encodeBindingRequest,
  encodeBindingSuccess,
  encodeUnknownAttributes,
  fingerprintOf,
  hasStunHeader,
  readBindingSuccess,
  readStun,
  type BindingRequest,
} from "../../src/protocol/stun.ts";

const hex = (text: string) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** RFC 5769 section 2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT. */
const SAMPLE_REQUEST = hex(`
  0001 0058 2112a442 b7e7a701 bc34d686 fa87dfae
  8022 0010 5354554e 20746573 7420636c 69656e74
  0024 0004 6e0001ff
  8029 0008 932ff9b1 51263b36
  0006 0009 6576746a 3a683676 59202020
  0008 0014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  8028 0004 e57a3bcf`);

/** RFC 5769 section 2.2: IPv4 response for 192.0.2.1:32853 (SOFTWARE, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT). */
const SAMPLE_V4_RESPONSE = hex(`
  0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022 000b 74657374 20766563 746f7220
  0020 0008 0001a147 e112a643
  0008 0014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  8028 0004 c07d4c96`);

/** RFC 5769 section 2.3: IPv6 response for [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
const SAMPLE_V6_RESPONSE = hex(`
  0101 0048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022 000b 74657374 20766563 746f7220
  0020 0014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  0008 0014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  8028 0004 c8fb0b4c`);

const TRANSACTION = SAMPLE_REQUEST.slice(4, 20);

function request(overrides: Partial<BindingRequest> = {}): BindingRequest {
  return { classic: false, transaction: TRANSACTION, fingerprint: false, changeRequest: false, changeFlags: 0, unknown: [], ...overrides };
}

/** The XOR-MAPPED-ADDRESS attribute (header and value) inside a message. */
function xorMappedAttribute(message: Uint8Array): string {
  const at = toHex(message).indexOf("0020000");
  return toHex(message).slice(at, at + (message[at / 2 + 3]! + 4) * 2);
}

describe("STUN against RFC 5769's test vectors", () => {
  it("FINGERPRINT: the CRC-32 over everything before it, XORed with 0x5354554e, for all three samples", () => {
    for (const sample of [SAMPLE_REQUEST, SAMPLE_V4_RESPONSE, SAMPLE_V6_RESPONSE]) {
      const at = sample.length - 8;
      expect(fingerprintOf(sample, at).toString(16).padStart(8, "0")).toBe(toHex(sample.subarray(at + 4)));
    }
  });

  it("reads the sample request: a Binding request with a valid FINGERPRINT and nothing it refuses", () => {
    const read = readStun(SAMPLE_REQUEST);
    expect(read.kind).toBe("request");
    if (read.kind !== "request") return;
    expect(read.request.classic).toBe(false);
    expect(read.request.fingerprint).toBe(true);
    expect(read.request.unknown).toEqual([]);
    expect(toHex(read.request.transaction)).toBe(toHex(TRANSACTION));
  });

  it("the sample request with one byte changed fails its FINGERPRINT", () => {
    const broken = SAMPLE_REQUEST.slice();
    broken[30] ^= 0x01; // inside SOFTWARE
    expect(readStun(broken)).toEqual({ kind: "malformed", reason: "FINGERPRINT does not match" });
  });

  it("writes XOR-MAPPED-ADDRESS exactly as the IPv4 and IPv6 samples do", () => {
    const v4 = encodeBindingSuccess(request(), { mapped: { address: "192.0.2.1", port: 32853 } });
    expect(xorMappedAttribute(v4)).toBe(xorMappedAttribute(SAMPLE_V4_RESPONSE));
    const v6 = encodeBindingSuccess(request(), { mapped: { address: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 } });
    expect(xorMappedAttribute(v6)).toBe(xorMappedAttribute(SAMPLE_V6_RESPONSE));
  });

  it("a whole answer, byte for byte: header, XOR-MAPPED-ADDRESS, FINGERPRINT over its own bytes", () => {
    const answer = encodeBindingSuccess(request({ fingerprint: true }), { mapped: { address: "192.0.2.1", port: 32853 } });
    const expected = hex(`0101 0014 2112a442 b7e7a701 bc34d686 fa87dfae 0020 0008 0001a147 e112a643 8028 0004 00000000`);
    expected.set(hex(fingerprintOf(expected, 32).toString(16).padStart(8, "0")), 36);
    expect(toHex(answer)).toBe(toHex(expected));
    // And the sample responses read back to their addresses (SOFTWARE, MESSAGE-INTEGRITY skipped).
    expect(readBindingSuccess(SAMPLE_V4_RESPONSE, TRANSACTION)?.mapped).toEqual({ address: "192.0.2.1", port: 32853 });
    expect(readBindingSuccess(SAMPLE_V6_RESPONSE, TRANSACTION)?.mapped).toEqual({ address: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 });
  });
});

describe("STUN codec", () => {
  it("answer sizes: a bare request gets 32 bytes (IPv4 requester) or 44 (IPv6); FINGERPRINT adds 8", () => {
    expect(encodeBindingSuccess(request(), { mapped: { address: "198.51.100.7", port: 1 } }).length).toBe(32);
    expect(encodeBindingSuccess(request(), { mapped: { address: "2001:db8::7", port: 1 } }).length).toBe(44);
    expect(encodeBindingSuccess(request({ fingerprint: true }), { mapped: { address: "198.51.100.7", port: 1 } }).length).toBe(40);
  });

  it("an IPv4-mapped IPv6 source (a dual-stack socket) is answered as IPv4", () => {
    const answer = encodeBindingSuccess(request(), { mapped: { address: "::ffff:192.0.2.1", port: 32853 } });
    expect(xorMappedAttribute(answer)).toBe(xorMappedAttribute(SAMPLE_V4_RESPONSE));
  });

  it("a request and its answer round-trip, OTHER-ADDRESS included when asked", () => {
    const { datagram, transaction } = encodeBindingRequest({ askOtherAddress: true });
    const read = readStun(datagram);
    if (read.kind !== "request") throw new Error(`not read as a request: ${read.kind}`);
    expect(read.request.changeRequest).toBe(true);
    expect(read.request.changeFlags).toBe(0);
    expect(read.request.fingerprint).toBe(true);
    const answer = encodeBindingSuccess(read.request, { mapped: { address: "203.0.113.2", port: 40_000 }, other: { address: "203.0.113.1", port: 3479 } });
    expect(readBindingSuccess(answer, transaction)).toEqual({ mapped: { address: "203.0.113.2", port: 40_000 }, other: { address: "203.0.113.1", port: 3479 } });
    // Another transaction's answer is not ours.
    expect(readBindingSuccess(answer, encodeBindingRequest().transaction)).toBeUndefined();
  });

  it("a classic (RFC 3489) request: 16-byte id, answered with a plain MAPPED-ADDRESS and CHANGED-ADDRESS", () => {
    // As Debian's stun-client sends it: no cookie, CHANGE-REQUEST with no flag.
    const classic = hex("0001 0008 0174155011eda52769eaec6f0965120b 0003 0004 00000000");
    const read = readStun(classic);
    if (read.kind !== "request") throw new Error(`not read as a request: ${read.kind}`);
    expect(read.request.classic).toBe(true);
    expect(read.request.changeRequest).toBe(true);
    const answer = encodeBindingSuccess(read.request, { mapped: { address: "127.0.0.1", port: 40_000 }, other: { address: "127.0.0.2", port: 3479 } });
    expect(toHex(answer)).toBe(toHex(hex("0101 0018 0174155011eda52769eaec6f0965120b 0001 0008 0001 9c40 7f000001 0005 0008 0001 0d97 7f000002")));
    // Change flags are seen (the responder refuses them).
    const change = hex("0001 0008 0274155011eda52769eaec6f0965120b 0003 0004 00000006");
    const flagged = readStun(change);
    expect(flagged.kind === "request" && flagged.request.changeFlags).toBe(6);
  });

  it("420 answer: ERROR-CODE 420 and the refused types in UNKNOWN-ATTRIBUTES", () => {
    const answer = encodeUnknownAttributes(request(), [0x0027, 0x7777]);
    expect(hasStunHeader(answer)).toBe(true);
    expect(toHex(answer.subarray(0, 2))).toBe("0111");
    expect(toHex(answer)).toContain(`0009001500000414${toHex(new TextEncoder().encode("Unknown Attribute"))}`);
    expect(toHex(answer)).toContain("000a000400277777");
  });

  it("tells STUN from everything else on the relay's port", () => {
    expect(readStun(new TextEncoder().encode("REG:0123456789abcdef0123456789abcdef\n")).kind).toBe("other");
    expect(readStun(new TextEncoder().encode("ACK\n")).kind).toBe("other");
    // A QUIC short header: the fixed bit makes the first byte >= 0x40.
    expect(readStun(Uint8Array.from([0x41, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42, ...new Uint8Array(12)])).kind).toBe("other");
    // Lengths that do not add up, or not a multiple of four.
    const bad = encodeBindingRequest().datagram;
    expect(readStun(bad.subarray(0, bad.length - 4)).kind).toBe("other");
    expect(readStun(SAMPLE_V4_RESPONSE).kind).toBe("not-request");
  });

  it("broken attributes are malformed, never a crash: overrun, truncated header, data after FINGERPRINT", () => {
    const overrun = hex("0001 0008 2112a442 000102030405060708090a0b 8022 0010 41414141");
    expect(readStun(overrun)).toEqual({ kind: "malformed", reason: "attribute runs past the message" });
    const extended = new Uint8Array(SAMPLE_REQUEST.length + 4);
    extended.set(SAMPLE_REQUEST);
    extended.set(hex("0024 0000"), SAMPLE_REQUEST.length);
    extended[3] = extended[3]! + 4;
    expect(readStun(extended).kind).toBe("malformed");
    // Every truncation and every single-byte corruption of the sample reads without throwing.
    for (let n = 0; n <= SAMPLE_REQUEST.length; n++) readStun(SAMPLE_REQUEST.subarray(0, n));
    for (let i = 0; i < SAMPLE_REQUEST.length; i++) {
      const copy = SAMPLE_REQUEST.slice();
      copy[i] ^= 0xff;
      readStun(copy);
    }
  });

  it("lists unknown comprehension-required attributes, ignores unknown optional ones", () => {
    const message = hex("0001 0010 2112a442 000102030405060708090a0b 7777 0000 0027 0004 00500000 c0de 0000");
    const read = readStun(message);
    if (read.kind !== "request") throw new Error(`not read as a request: ${read.kind}`);
    expect(read.request.unknown).toEqual([0x7777, 0x0027]);
  });
});
