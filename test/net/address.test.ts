import { describe, expect, it } from "bun:test";
import { formatEndpoint, hostOf, ipBytes, ipFromBytes, ipv6Prefix64, parseHostPort, sameEndpoint, sameHost, sourceGroup } from "../../src/net/address.ts";

describe("parseHostPort", () => {
  it("parses host:port forms", () => {
    expect(parseHostPort("127.0.0.1:9464")).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(parseHostPort("[::1]:9464")).toEqual({ host: "::1", port: 9464 });
    expect(parseHostPort(":9464")).toEqual({ host: "", port: 9464 });
    expect(parseHostPort(" relay.example:1 ")).toEqual({ host: "relay.example", port: 1 });
  });

  it.each(["::1:9464", "host:99999", "host:", "[::1]9464", "127.0.0.1"])("refuses %p", (text) => {
    expect(parseHostPort(text)).toBeUndefined();
  });
});

describe("host comparison and formatting", () => {
  it("folds IPv4-mapped addresses to IPv4", () => {
    expect(hostOf("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(hostOf("2001:DB8::1")).toBe("2001:db8::1");
    expect(sameHost("::ffff:127.0.0.1", "127.0.0.1")).toBe(true);
    expect(sameHost("127.0.0.2", "127.0.0.1")).toBe(false);
    expect(sameEndpoint({ address: "::ffff:10.0.0.1", port: 5 }, { address: "10.0.0.1", port: 5 })).toBe(true);
    expect(sameEndpoint({ address: "10.0.0.1", port: 6 }, { address: "10.0.0.1", port: 5 })).toBe(false);
  });

  it("formats endpoints as people read them", () => {
    expect(formatEndpoint({ address: "::ffff:192.0.2.7", port: 4433 })).toBe("192.0.2.7:4433");
    expect(formatEndpoint({ address: "2001:db8::1", port: 4433 })).toBe("[2001:db8::1]:4433");
  });
});

describe("sourceGroup", () => {
  it("treats an IPv6 /64 as one source and IPv4 addresses one by one", () => {
    expect(sourceGroup("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2");
    expect(sourceGroup("2001:DB8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2");
    expect(sourceGroup("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(sourceGroup("192.0.2.7")).toBe("192.0.2.7");
  });

  it("expands the /64 prefix of any IPv6 spelling", () => {
    expect(ipv6Prefix64("::1")).toBe("0:0:0:0");
    expect(ipv6Prefix64("fe80::1%eth0")).toBe("fe80:0:0:0");
    expect(ipv6Prefix64("2001:db8::")).toBe("2001:db8:0:0");
    expect(ipv6Prefix64("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0");
    expect(ipv6Prefix64("1:2:3:4:5:6:7:8")).toBe("1:2:3:4");
    expect(ipv6Prefix64("1::2::3")).toBeUndefined();
    expect(ipv6Prefix64("1:2:3")).toBeUndefined();
  });
});

describe("ipBytes and ipFromBytes", () => {
  const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex") : undefined);

  it.each([
    ["192.0.2.1", "c0000201", "192.0.2.1"],
    ["::ffff:192.0.2.1", "c0000201", "192.0.2.1"],
    ["::1", "00000000000000000000000000000001", "::1"],
    ["::", "00000000000000000000000000000000", "::"],
    ["2001:db8:1234:5678:11:2233:4455:6677", "20010db8123456780011223344556677", "2001:db8:1234:5678:11:2233:4455:6677"],
    ["2001:DB8::1", "20010db8000000000000000000000001", "2001:db8::1"],
    ["fe80::1%eth0", "fe800000000000000000000000000001", "fe80::1"],
    ["64:ff9b::192.0.2.1", "0064ff9b0000000000000000c0000201", "64:ff9b::c000:201"],
    ["2001:db8:0:0:1:0:0:1", "20010db8000000000001000000000001", "2001:db8::1:0:0:1"],
  ])("%p -> %p -> %p", (text, bytes, back) => {
    expect(hex(ipBytes(text))).toBe(bytes);
    expect(ipFromBytes(ipBytes(text)!)).toBe(back);
  });

  it.each(["", "bad", "1.2.3", "1.2.3.256", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g"])("refuses %p", (text) => {
    expect(ipBytes(text)).toBeUndefined();
  });
});
