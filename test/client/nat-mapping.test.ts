/** Mapping behaviour from observations (RFC 4787 section 4.1), and the sentence that goes with it. */
import { describe, expect, it } from "bun:test";
import { classifyMapping, type MappingObservation } from "../../src/client/nat-mapping.ts";

const LOCAL = ["10.0.0.5", "127.0.0.1"];
const obs = (to: string, mapped: string): MappingObservation => {
  const [th, tp] = to.split(":");
  const [mh, mp] = mapped.split(":");
  return { to: { host: th!, port: Number(tp) }, mapped: { address: mh!, port: Number(mp) } };
};

describe("classifyMapping", () => {
  it("nothing answered, or only one destination: unknown, and it says how to find out", () => {
    expect(classifyMapping([], LOCAL, 5000).mapping).toBe("unknown");
    const one = classifyMapping([obs("203.0.113.1:4433", "198.51.100.9:61000")], LOCAL, 5000);
    expect(one).toMatchObject({ mapping: "unknown", directPossible: undefined });
    expect(one.sentence).toContain("--stun-alt-listen");
  });

  it("the socket's own address seen: no NAT (even from one destination)", () => {
    expect(classifyMapping([obs("203.0.113.1:4433", "10.0.0.5:5000")], LOCAL, 5000)).toMatchObject({ mapping: "no-nat", directPossible: true });
    // The same address but another port is a NAT (one that changed the port).
    expect(classifyMapping([obs("203.0.113.1:4433", "10.0.0.5:5001")], LOCAL, 5000).mapping).toBe("unknown");
  });

  it("two ports of one address see different ports: address-and-port-dependent, the relay is needed", () => {
    const v = classifyMapping([obs("203.0.113.1:4433", "198.51.100.9:61000"), obs("203.0.113.1:3479", "198.51.100.9:61001")], LOCAL, 5000);
    expect(v).toMatchObject({ mapping: "address-and-port-dependent", directPossible: false });
    expect(v.sentence).toStartWith("This network needs the relay");
  });

  it("two ports see the same: endpoint-independent as far as ports show, direct can work", () => {
    const v = classifyMapping([obs("203.0.113.1:4433", "198.51.100.9:5000"), obs("203.0.113.1:3479", "198.51.100.9:5000")], LOCAL, 5000);
    expect(v).toMatchObject({ mapping: "endpoint-independent", directPossible: true });
    expect(v.basis).toContain("two ports of one relay address");
    expect(v.sentence).toStartWith("Direct hole punching can work here");
  });

  it("two addresses differ while two ports of one agree: address-dependent", () => {
    const v = classifyMapping(
      [obs("203.0.113.1:4433", "198.51.100.9:5000"), obs("203.0.113.1:3479", "198.51.100.9:5000"), obs("203.0.113.11:4433", "198.51.100.9:5002")],
      LOCAL,
      5000,
    );
    expect(v).toMatchObject({ mapping: "address-dependent", directPossible: false });
    expect(v.basis).toContain("two ports of one address saw the same");
  });

  it("two addresses differ and no ports compared: address-dependent, saying it may be stricter", () => {
    const v = classifyMapping([obs("203.0.113.1:4433", "198.51.100.9:5000"), obs("203.0.113.11:3479", "198.51.100.9:7000")], LOCAL, 5000);
    expect(v.mapping).toBe("address-dependent");
    expect(v.basis).toContain("may be address-and-port-dependent");
  });

  it("every destination, over addresses and ports, sees the same: endpoint-independent", () => {
    const v = classifyMapping(
      [obs("203.0.113.1:4433", "198.51.100.9:5000"), obs("203.0.113.11:3479", "198.51.100.9:5000"), obs("192.0.2.50:3478", "198.51.100.9:5000")],
      LOCAL,
      5000,
    );
    expect(v).toMatchObject({ mapping: "endpoint-independent", basis: "every destination saw the same public address" });
  });

  it("the public address changing (two NAT addresses, a pool) counts as a different mapping", () => {
    const v = classifyMapping([obs("203.0.113.1:4433", "198.51.100.9:5000"), obs("203.0.113.1:3479", "198.51.100.10:5000")], LOCAL, 5000);
    expect(v.mapping).toBe("address-and-port-dependent");
  });
});
