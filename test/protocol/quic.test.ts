import { describe, expect, it } from "bun:test";
import { isLongHeader, readLongHeaderIds, shortHeaderDcid } from "../../src/protocol/quic.ts";
import { longHeader } from "../utils.ts";


describe("QUIC header reading", () => {
  it("reads both connection IDs of a long header", () => {
    const packet = longHeader([1, 2, 3, 4, 5, 6, 7, 8], [0xaa, 0xbb, 0xcc, 0xdd]);
    expect(isLongHeader(packet)).toBe(true);
    expect(readLongHeaderIds(packet)).toEqual({ dcid: "0102030405060708", scid: "aabbccdd" });
  });

  it("handles empty connection IDs", () => {
    expect(readLongHeaderIds(longHeader([], []))).toEqual({ dcid: "", scid: "" });
  });

  it.each([
    ["too short", new Uint8Array([0xc0, 0, 0, 0, 1])],
    ["DCID longer than 20", new Uint8Array([0xc0, 0, 0, 0, 1, 21, ...new Array(30).fill(1)])],
    ["SCID beyond the end", new Uint8Array([0xc0, 0, 0, 0, 1, 1, 9, 8, 1])],
    ["short header", new Uint8Array([0x40, 1, 2, 3, 4, 5, 6, 7, 8])],
  ])("returns undefined for %s", (_name, packet) => {
    expect(readLongHeaderIds(packet)).toBeUndefined();
  });

  it("reads a short header DCID of a given length", () => {
    const packet = new Uint8Array([0x41, 9, 8, 7, 6, 5]);
    expect(shortHeaderDcid(packet, 4)).toBe("09080706");
    expect(shortHeaderDcid(packet, 6)).toBeUndefined();
    expect(shortHeaderDcid(new Uint8Array([0xc1, 1, 2]), 1)).toBeUndefined();
  });

  it("never throws on random bytes", () => {
    for (let i = 0; i < 2000; i++) {
      const packet = crypto.getRandomValues(new Uint8Array(i % 64));
      readLongHeaderIds(packet);
      shortHeaderDcid(packet, (i % 20) + 1);
    }
  });
});
