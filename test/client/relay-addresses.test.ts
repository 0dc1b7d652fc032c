import { describe, expect, it } from "bun:test";
import { RelayResolveError } from "../../src/client/errors.ts";
import { pickNextRelay, reachableFrom, RelayChoice, relayKey, relayResolver, wildcardForAll } from "../../src/client/relay-addresses.ts";
import type { HostPort } from "../../src/net/address.ts";

const hp = (host: string, port = 4433): HostPort => ({ host, port });

/** A DNS stand-in: names to addresses, a name mapped to an Error fails; every lookup is recorded. */
function fakeDns(table: Record<string, string[] | Error>) {
  const asked: string[] = [];
  const lookup = async (host: string) => {
    asked.push(host);
    const answer = table[host];
    if (answer === undefined) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { asked, lookup, table };
}

describe("relayResolver", () => {
  it("looks names up afresh on every call, all their addresses, and passes IPs through", async () => {
    const dns = fakeDns({ "relay.example": ["192.0.2.1", "2001:db8::1"] });
    const resolve = relayResolver([hp("relay.example"), hp("198.51.100.7", 5000)], dns.lookup);
    expect(await resolve()).toEqual([hp("192.0.2.1"), hp("2001:db8::1"), hp("198.51.100.7", 5000)]);
    dns.table["relay.example"] = ["192.0.2.2"];
    expect(await resolve()).toEqual([hp("192.0.2.2"), hp("198.51.100.7", 5000)]);
    expect(dns.asked).toEqual(["relay.example", "relay.example"]);
  });

  it("drops duplicates, IPv4-mapped IPv6 included", async () => {
    const dns = fakeDns({ a: ["192.0.2.1", "192.0.2.2"], b: ["::ffff:192.0.2.2", "192.0.2.3"] });
    const resolve = relayResolver([hp("a"), hp("b"), hp("192.0.2.1")], dns.lookup);
    expect((await resolve()).map(relayKey)).toEqual(["192.0.2.1:4433", "192.0.2.2:4433", "192.0.2.3:4433"]);
  });

  it("skips a name that fails while another one resolves", async () => {
    const dns = fakeDns({ good: ["192.0.2.1"], bad: new Error("SERVFAIL") });
    expect(await relayResolver([hp("bad"), hp("good")], dns.lookup)()).toEqual([hp("192.0.2.1")]);
  });

  it.each([
    ["every name fails", { bad: new Error("SERVFAIL") }, /cannot resolve relay bad:4433: bad: SERVFAIL/],
    ["a name has no addresses", { bad: [] }, /cannot resolve relay bad:4433: no addresses/],
  ])("throws RelayResolveError when %s", async (_name, table, message) => {
    const error = await relayResolver([hp("bad")], fakeDns(table).lookup)().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RelayResolveError);
    expect((error as Error).message).toMatch(message);
  });
});

describe("pickNextRelay", () => {
  const [a, b, c] = [hp("192.0.2.1"), hp("192.0.2.2"), hp("192.0.2.3")];
  it.each([
    ["another address, in resolver order", [a, b, c], a, [], b],
    ["one that never failed over ones that did", [a, b, c], a, [["192.0.2.2:4433", 5]], c],
    ["the one that failed longest ago when all did", [a, b, c], a, [["192.0.2.2:4433", 9], ["192.0.2.3:4433", 5]], c],
    ["nothing when the current address is the only one", [a], a, [], undefined],
    ["nothing when the resolver no longer lists others", [], a, [], undefined],
    ["not the current one in IPv4-mapped form", [hp("::ffff:192.0.2.1"), b], a, [], b],
  ] as [string, HostPort[], HostPort, [string, number][], HostPort | undefined][])("picks %s", (_name, candidates, current, failed, expected) => {
    expect(pickNextRelay(candidates, current, new Map(failed))).toEqual(expected);
  });

  it("skips addresses that are not usable", () => {
    expect(pickNextRelay([a, b, c], a, new Map(), (r) => r !== b)).toEqual(c);
  });
});

describe("RelayChoice", () => {
  const [a, b] = [hp("192.0.2.1"), hp("192.0.2.2")];

  it("with a fixed address never moves and never resolves", async () => {
    const choice = new RelayChoice(a);
    expect(await choice.first()).toEqual([a]);
    expect(choice.canMove).toBe(false);
    expect(await choice.next(false)).toEqual({ kind: "stay" });
  });

  it("tries each address once while starting, then goes back to the one that failed longest ago", async () => {
    let t = 0;
    const choice = new RelayChoice(async () => [a, b], () => t);
    await choice.first();
    expect(choice.current).toEqual(a);
    t = 1;
    const toB = await choice.next(true);
    expect(toB).toEqual({ kind: "move", to: b });
    choice.moveTo(b);
    t = 2;
    expect(await choice.next(true)).toEqual({ kind: "stay" });
    expect(choice.leftBehind()).toEqual(["192.0.2.1:4433"]);
    expect(await choice.next(false)).toEqual({ kind: "move", to: a });
  });

  it("reports a resolver that throws, and stays", async () => {
    let calls = 0;
    const choice = new RelayChoice(async () => {
      if (++calls > 1) throw new Error("dns down");
      return [a, b];
    });
    await choice.first();
    const next = await choice.next(false);
    expect(next.kind).toBe("resolve-failed");
    expect(choice.current).toEqual(a);
  });

  it("binds dual stack when an address is IPv6, and then reaches both families", async () => {
    expect(wildcardForAll([a, hp("::ffff:192.0.2.9")])).toBe("0.0.0.0");
    expect(wildcardForAll([a, hp("2001:db8::1")])).toBe("::");
    expect(reachableFrom("0.0.0.0", hp("2001:db8::1"))).toBe(false);
    expect(reachableFrom("::", a)).toBe(true);
    const choice = new RelayChoice(async () => [a, hp("2001:db8::1")]);
    await choice.first();
    expect(choice.wildcard).toBe("::");
    // Bound for IPv4 at start, the socket never moves to an IPv6 address that appears later.
    let addresses = [a];
    const v4only = new RelayChoice(async () => addresses);
    await v4only.first();
    addresses = [a, hp("2001:db8::1")];
    expect(await v4only.next(false)).toEqual({ kind: "stay" });
  });
});

describe("RelayChoice and MOVE targets", () => {
  const [a, b, c] = [hp("192.0.2.1"), hp("192.0.2.2"), hp("192.0.2.3")];

  it("knows the addresses of the latest resolution without resolving again, in any written form", async () => {
    let calls = 0;
    const choice = new RelayChoice(async () => (calls++, [a, b]));
    await choice.first();
    expect(await choice.knows(b)).toEqual({ kind: "known" });
    expect(await choice.knows(hp("::ffff:192.0.2.2"))).toEqual({ kind: "known" });
    expect(calls).toBe(1);
  });

  it("resolves once more for an address it does not list, and knows it only if the fresh resolution does", async () => {
    let addresses = [a, b];
    let calls = 0;
    const choice = new RelayChoice(async () => (calls++, addresses));
    await choice.first();
    expect(await choice.knows(c)).toEqual({ kind: "unknown" });
    expect(calls).toBe(2);
    addresses = [a, b, c];
    expect(await choice.knows(c)).toEqual({ kind: "known" });
    expect(await choice.knows(hp("192.0.2.3", 9999))).toEqual({ kind: "unknown" });
    expect(calls).toBe(4);
  });

  it("does not know an address when resolving fails, nor one the socket cannot reach, nor any but a fixed one", async () => {
    let calls = 0;
    const failing = new RelayChoice(async () => {
      if (++calls > 1) throw new Error("dns down");
      return [a];
    });
    await failing.first();
    const answer = await failing.knows(b);
    expect(answer.kind === "resolve-failed" && answer.error.message).toBe("dns down");
    // Bound for IPv4 at start: an IPv6 address that appears later cannot be reached from the socket.
    let addresses = [a];
    const v4only = new RelayChoice(async () => addresses);
    await v4only.first();
    addresses = [a, hp("2001:db8::1")];
    expect(await v4only.knows(hp("2001:db8::1"))).toEqual({ kind: "unknown" });
    const fixed = new RelayChoice(a);
    expect(await fixed.knows(a)).toEqual({ kind: "known" });
    expect(await fixed.knows(b)).toEqual({ kind: "unknown" });
  });

  it("remembers per address which relays refused the move flag", () => {
    const choice = new RelayChoice(a);
    choice.refusedMoveFlag(hp("::ffff:192.0.2.2"));
    expect(choice.takesMoveFlag(a)).toBe(true);
    expect(choice.takesMoveFlag(b)).toBe(false);
  });
});
