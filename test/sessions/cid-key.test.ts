/** CID_KEYS (src/sessions/cid-key.ts): which connection IDs pack, and that they read back exactly. */
import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { NO_KEY } from "../../src/collections/packed-key.ts";
import { CID_KEYS } from "../../src/sessions/cid-key.ts";
import { readLongHeaderIds } from "../../src/protocol/quic.ts";

describe("CID_KEYS", () => {
  it("packs every ID the QUIC header reader gives, of 0 to 20 bytes, into its bytes, and reads it back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 20 }), (bytes) => {
        // A long header carrying `bytes` as its DCID: the ID as the relay reads it.
        const packet = Uint8Array.from([0xc0, 0, 0, 0, 1, bytes.length, ...bytes, 0, 0]);
        const cid = readLongHeaderIds(packet)!.dcid;
        const code = CID_KEYS.code(cid);
        expect(code).toBe(bytes.length);
        const out = new Uint8Array(CID_KEYS.bytes);
        CID_KEYS.write(cid, code, out, 0);
        expect(out.subarray(0, code)).toEqual(bytes);
        expect(CID_KEYS.read(out, 0, code)).toBe(cid);
      }),
    );
  });

  it("does not pack what is no ID of the reader's form: uppercase, odd length, past 20 bytes, not hex", () => {
    for (const s of ["0A", "abc", "0".repeat(42), "zz", "0x12", "é0"]) expect(CID_KEYS.code(s)).toBe(NO_KEY);
  });
});
