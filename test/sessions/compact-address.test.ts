import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { ipFromBytes } from "../../src/net/address.ts";
import { AddressForm, readAddress, writeAddress } from "../../src/sessions/compact-address.ts";

describe("compact addresses", () => {
  it.each([
    ["1.2.3.4", AddressForm.V4],
    ["0.0.0.0", AddressForm.V4],
    ["255.255.255.255", AddressForm.V4],
    ["::ffff:10.0.0.1", AddressForm.Mapped],
    ["::1", AddressForm.V6],
    ["2001:db8::1", AddressForm.V6],
    ["fe80::1:2:3:4", AddressForm.V6],
  ])("packs %s and gives back the same string", (address, form) => {
    const words = new Uint32Array(4);
    expect(readAddress(address, words)).toBe(form);
    expect(writeAddress(form, words)).toBe(address);
  });

  it.each(["01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.256", "1.2.3.4 ", "", "2001:DB8::1", "2001:db8:0::1", "fe80::1%eth0", "64:ff9b::1.2.3.4", "relay:abc", "::ffff:01.2.3.4"])(
    "leaves %j unpacked: it would not come back as written",
    (address) => {
      expect(readAddress(address, new Uint32Array(4))).toBe(AddressForm.None);
    },
  );

  it("gives back every IPv4 and canonical IPv6 address it packs", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 0xffffffff }), (bytes, v4) => {
        const words = new Uint32Array(4);
        const v6 = ipFromBytes(bytes);
        const form = readAddress(v6, words);
        if (form !== AddressForm.None) expect(writeAddress(form, words)).toBe(v6);
        const dotted = `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
        expect(readAddress(dotted, words)).toBe(AddressForm.V4);
        expect(words[3]).toBe(v4);
        expect(writeAddress(AddressForm.V4, words)).toBe(dotted);
      }),
    );
  });
});
