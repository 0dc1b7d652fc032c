import { describe, expect, it } from "bun:test";
import { ID_BYTES, idCode, NO_ID, readId, sameId, UUID_LOWER, UUID_UPPER, writeId } from "../../src/sessions/compact-id.ts";

/** Session ids as the compact store packs them (pure logic). */
describe("compact session ids", () => {
  const roundTrip = (id: string): string => {
    const code = idCode(id);
    expect(code).not.toBe(NO_ID);
    const bytes = new Uint8Array(ID_BYTES + 4).fill(0xee);
    writeId(id, code, bytes, 2);
    // Nothing written outside the id's ID_BYTES.
    expect([bytes[0], bytes[1], bytes[ID_BYTES + 2], bytes[ID_BYTES + 3]]).toEqual([0xee, 0xee, 0xee, 0xee]);
    return readId(bytes, 2, code);
  };

  it("keeps a canonical UUID in 16 bytes, lowercase or uppercase, and reads it back exactly", () => {
    for (let i = 0; i < 200; i++) {
      const id = crypto.randomUUID();
      expect(idCode(id)).toBe(UUID_LOWER);
      expect(roundTrip(id)).toBe(id);
      expect(idCode(id.toUpperCase())).toBe(UUID_UPPER);
      expect(roundTrip(id.toUpperCase())).toBe(id.toUpperCase());
    }
    expect(roundTrip("00000000-0000-0000-0000-000000000000")).toBe("00000000-0000-0000-0000-000000000000");
    expect(roundTrip("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")).toBe("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF");
  });

  it("keeps other short ASCII ids as they are", () => {
    for (const id of ["", "a", "s1", "burst-42", "x".repeat(ID_BYTES), "0123456789abcdef"]) {
      expect(idCode(id)).toBe(id.length);
      expect(roundTrip(id)).toBe(id);
    }
  });

  it("does not pack what it could not read back exactly", () => {
    const uuid = "3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f";
    for (const id of [
      "3f2b9c1e-8a4d-4c6b-9e1f-2A3B4C5D6E7F", // mixed case
      "3f2b9c1e_8a4d-4c6b-9e1f-2a3b4c5d6e7f", // not a hyphen
      "3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7g", // not hex
      `${uuid}0`, // 37
      `probe-${uuid}`,
      "x".repeat(ID_BYTES + 1),
      "é",
      "\u{1F600}",
    ]) {
      expect(idCode(id)).toBe(NO_ID);
    }
  });

  it("tells ids apart by form and value", () => {
    const write = (id: string) => {
      const code = idCode(id);
      const bytes = new Uint8Array(ID_BYTES);
      writeId(id, code, bytes, 0);
      return { code, bytes };
    };
    const same = (a: string, b: string) => {
      const x = write(a), y = write(b);
      return sameId(x.bytes, 0, x.code, y.bytes, 0, y.code);
    };
    const id = crypto.randomUUID();
    expect(same(id, id)).toBe(true);
    expect(same(id, id.toUpperCase())).toBe(false);
    expect(same(id, crypto.randomUUID())).toBe(false);
    expect(same("ab", "ab")).toBe(true);
    expect(same("ab", "abc")).toBe(false);
    expect(same("ab", "ac")).toBe(false);
    // 16 raw bytes and a UUID whose value has the same bytes are different ids.
    const raw = "0123456789abcdef";
    const uuidOfSameBytes = readId(new TextEncoder().encode(raw), 0, UUID_LOWER);
    expect(same(raw, uuidOfSameBytes)).toBe(false);
  });
});
