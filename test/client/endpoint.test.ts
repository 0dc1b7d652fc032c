import { describe, expect, it } from "bun:test";
import { classifyRelayDatagram } from "../../src/client/control.ts";
import { parseHostPortFlag } from "../../src/client/endpoint.ts";
import { sameHost } from "../../src/net/address.ts";
import { ClientConfigError } from "../../src/client/errors.ts";
import { percentile } from "../../src/client/probe.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("parseHostPortFlag", () => {
  it.each([
    ["127.0.0.1:4433", { host: "127.0.0.1", port: 4433 }],
    ["relay.example:1", { host: "relay.example", port: 1 }],
    ["[::1]:65535", { host: "::1", port: 65535 }],
    [" 203.0.113.1:5000 ", { host: "203.0.113.1", port: 5000 }],
  ])("accepts %p", (text, expected) => {
    expect(parseHostPortFlag(text, "relay")).toEqual(expected);
  });

  it.each(["127.0.0.1", ":4433", "host:0", "host:65536", "host:12x", "::1:4433", "[::1]4433", "[::1]:"])(
    "refuses %p with a flag-named error",
    (text) => {
      expect(() => parseHostPortFlag(text, "relay")).toThrow(ClientConfigError);
      expect(() => parseHostPortFlag(text, "relay")).toThrow(/--relay/);
    },
  );
});

describe("classifyRelayDatagram", () => {
  it.each([
    ["ACK\n", { kind: "ack" }],
    ["ERR full\n", { kind: "err", code: "full" }],
    ["ERR\n", { kind: "err", code: "" }],
    ["ERR short\n", { kind: "err", code: "short" }],
    ["RETRY AbCd-_0123456789\n", { kind: "retry", cookie: "AbCd-_0123456789" }],
    ["RETRY AbCd-_0123456789", { kind: "data" }],
    ["RETRY AbCd-_012345678\n", { kind: "data" }],
    ["RETRY AbCd+/0123456789\n", { kind: "data" }],
    ["ACK", { kind: "data" }],
    ["ACK\n\n", { kind: "data" }],
    ["ERROR", { kind: "data" }],
    ["\xc0quic-initial", { kind: "data" }],
  ])("%p is %p", (text, expected) => {
    expect(classifyRelayDatagram(enc(text))).toEqual(expected as never);
  });
});

describe("helpers", () => {
  it("compares IPv4-mapped addresses with their IPv4 form", () => {
    expect(sameHost("::ffff:127.0.0.1", "127.0.0.1")).toBe(true);
    expect(sameHost("127.0.0.2", "127.0.0.1")).toBe(false);
  });

  it("takes nearest-rank percentiles", () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
  });
});
