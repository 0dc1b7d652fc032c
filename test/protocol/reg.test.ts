import { describe, expect, it } from "bun:test";
import { RefusalCode } from "../../src/protocol/errors.ts";
import { encodeReg, isReg, MAX_SESSION_ID_LENGTH, parseReg } from "../../src/protocol/reg.ts";
import { bytes } from "../utils.ts";

describe("parseReg", () => {
  it.each([
    ["REG:abc\n", "abc"],
    ["REG:abc", "abc"],
    ["REG:abc\r\n", "abc"],
    ["REG:3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f\n", "3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f"],
    ["REG:a:b:c\n", "a:b:c"],
  ])("accepts %j", (input, id) => {
    expect(parseReg(bytes(input))).toEqual({ ok: true, sessionId: id, cookie: undefined, move: false });
  });

  it.each([
    ["REG:", RefusalCode.EmptyId],
    ["REG:\n", RefusalCode.EmptyId],
    ["REG:\r\n", RefusalCode.EmptyId],
    ["REG:a b\n", RefusalCode.BadId],
    ["REG:abc\n\n", RefusalCode.BadId],
    ["REG:\tabc\n", RefusalCode.BadId],
    ["REG:é\n", RefusalCode.BadId],
    [`REG:${"x".repeat(MAX_SESSION_ID_LENGTH + 1)}\n`, RefusalCode.LongId],
  ])("refuses %j", (input, code) => {
    expect(parseReg(bytes(input))).toEqual({ ok: false, code });
  });

  it("accepts the longest allowed id", () => {
    const id = "x".repeat(MAX_SESSION_ID_LENGTH);
    expect(parseReg(bytes(`REG:${id}\n`))).toEqual({ ok: true, sessionId: id, cookie: undefined, move: false });
  });

  it("refuses binary bytes in the id", () => {
    expect(parseReg(new Uint8Array([0x52, 0x45, 0x47, 0x3a, 0x00, 0xff]))).toEqual({ ok: false, code: RefusalCode.BadId });
  });

  it("round-trips encodeReg", () => {
    expect(parseReg(encodeReg("s-1"))).toEqual({ ok: true, sessionId: "s-1", cookie: undefined, move: false });
  });
});

describe("isReg", () => {
  it.each([
    ["REG:x", true],
    ["REG:", true],
    ["REG", false],
    ["reg:x", false],
    ["ACK\n", false],
    ["", false],
  ])("%j -> %p", (input, expected) => {
    expect(isReg(bytes(input))).toBe(expected);
  });
});

describe("the move flag", () => {
  it.each([
    ["REG:abc move\n", undefined],
    ["REG:abc move", undefined],
    ["REG:abc AAAAAAAAAAAAAAAA move\r\n", "AAAAAAAAAAAAAAAA"],
    ["REG:abc move AAAAAAAAAAAAAAAA\n", "AAAAAAAAAAAAAAAA"],
  ])("is read from %j", (input, cookie) => {
    expect(parseReg(bytes(input))).toEqual({ ok: true, sessionId: "abc", cookie, move: true });
  });

  it.each(["REG:abc move move\n", "REG:abc mov\n", "REG:abc MOVE\n", "REG:abc  move\n", "REG:abc move \n", "REG: move\n"])("refuses %j as a bad id", (input) => {
    expect(parseReg(bytes(input))).toEqual({ ok: false, code: RefusalCode.BadId });
  });

  it("round-trips encodeReg with and without a cookie", () => {
    expect(parseReg(encodeReg("s-1", undefined, { move: true }))).toEqual({ ok: true, sessionId: "s-1", cookie: undefined, move: true });
    expect(parseReg(encodeReg("s-1", "AAAAAAAAAAAAAAAA", { move: true }))).toEqual({ ok: true, sessionId: "s-1", cookie: "AAAAAAAAAAAAAAAA", move: true });
    expect(new TextDecoder().decode(encodeReg("s-1", undefined, { move: true }))).toBe("REG:s-1 move\n");
  });
});

describe("the peer token", () => {
  const TOKEN = "Zm9vYmFyYmF6cXV4MTIzNA";
  it("is read in any order with the other tokens, and round-trips encodeReg", () => {
    expect(parseReg(bytes(`REG:abc peer=${TOKEN}\n`))).toEqual({ ok: true, sessionId: "abc", cookie: undefined, move: false, peer: TOKEN });
    expect(parseReg(bytes(`REG:abc move peer=${TOKEN} AAAAAAAAAAAAAAAA\n`))).toEqual({ ok: true, sessionId: "abc", cookie: "AAAAAAAAAAAAAAAA", move: true, peer: TOKEN });
    expect(parseReg(encodeReg("s-1", "AAAAAAAAAAAAAAAA", { move: true, peer: TOKEN }))).toEqual({ ok: true, sessionId: "s-1", cookie: "AAAAAAAAAAAAAAAA", move: true, peer: TOKEN });
  });

  it.each([`REG:abc peer=short\n`, `REG:abc peer=${"x".repeat(44)}\n`, `REG:abc peer=${TOKEN} peer=${TOKEN}\n`, `REG:abc peer=${TOKEN.slice(0, 15)}!\n`, "REG:abc peer=\n"])("refuses %j as a bad id", (input) => {
    expect(parseReg(bytes(input))).toEqual({ ok: false, code: RefusalCode.BadId });
  });
});
