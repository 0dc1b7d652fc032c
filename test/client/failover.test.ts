import { afterEach, describe, expect, it } from "bun:test";
import { RelayUnreachableError } from "../../src/client/errors.ts";
import type { FakeRelay } from "./fake-relay.ts";
import { addressOf, closeAll, fakeRelay, fast, listenMode, resolverOf, SESSION, tunnel, tunnelPair, until } from "./tunnel-harness.ts";

afterEach(closeAll);

describe.each([
  ["goes silent (host up, no ICMP)", (r: FakeRelay) => void (r.silent = true)],
  ["closes its socket (ICMP port unreachable)", (r: FakeRelay) => r.close()],
])("RelayTunnel when its relay %s", (_name, kill) => {
  it("both ends move to the second address, register there with the same session id, and traffic flows", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    const dns = resolverOf(() => [addressOf(r1), addressOf(r2)]);
    const { server, serverSide, clientSide, roundTrip } = await tunnelPair(dns.resolve);
    const listen = clientSide.t.appAddress;
    await roundTrip("before");
    expect(r1.forwarded).toBeGreaterThanOrEqual(2);
    expect(clientSide.t.relay).toEqual(addressOf(r1));

    kill(r1);
    await until(() => serverSide.t.stats.relayChanges === 1 && clientSide.t.stats.relayChanges === 1);
    for (const side of [serverSide, clientSide]) {
      expect(side.changes).toEqual([{ from: addressOf(r1), to: addressOf(r2), reason: "stopped-answering", unanswered: fast.silentAfter }]);
      expect(side.t.relay).toEqual(addressOf(r2));
      const moves = side.lines.filter((l) => l.includes("stopped answering"));
      expect(moves).toEqual([`relay ${r1.host}:${r1.port} stopped answering (3 REGs unanswered); moving session ${SESSION} to ${r2.host}:${r2.port}`]);
    }
    await roundTrip("after");
    // Same session id, from the same relay-facing sockets; the app kept its local address.
    expect(new Set(r2.regs.map((r) => r.session))).toEqual(new Set([SESSION]));
    expect(new Set(r2.regs.map((r) => r.port))).toEqual(new Set([serverSide.t.relayAddress.port, clientSide.t.relayAddress.port]));
    expect(clientSide.t.appAddress).toEqual(listen);
    expect(r2.forwarded).toBeGreaterThanOrEqual(2);
    expect(server.inbox.filter((d) => d === "after").length).toBeGreaterThanOrEqual(1);
    expect(dns.calls).toBeGreaterThanOrEqual(4); // each tunnel: once at start, once for the move
  });
});

describe("RelayTunnel failover edge cases", () => {
  it("keeps retrying the only address without moving or failing, and carries on when it answers again", async () => {
    const r1 = await fakeRelay("127.0.0.1");
    const dns = resolverOf(() => [addressOf(r1)]);
    const { serverSide, clientSide, roundTrip } = await tunnelPair(dns.resolve);
    await roundTrip("before");
    r1.silent = true;
    const regs = r1.regs.length;
    const calls = dns.calls;
    // Several rounds of silence reports, each answered by a fresh resolution that finds nothing else.
    await until(() => r1.regs.length >= regs + 12 && dns.calls >= calls + 4);
    expect(clientSide.t.stats.relayChanges + serverSide.t.stats.relayChanges).toBe(0);
    expect(clientSide.lines.filter((l) => l.includes("no other relay address is known"))).toHaveLength(1);
    r1.silent = false;
    const registrations = clientSide.t.stats.registrations;
    await until(() => clientSide.t.stats.registrations > registrations);
    await roundTrip("after");
  });

  it("retries a resolver that throws, counts and logs the failures, and moves once it answers", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    let dnsDown = false;
    const dns = resolverOf(() => {
      if (dnsDown) throw new Error("dns down");
      return [addressOf(r1), addressOf(r2)];
    });
    const { serverSide, clientSide, roundTrip } = await tunnelPair(dns.resolve);
    dnsDown = true;
    r1.silent = true;
    await until(() => clientSide.t.stats.resolveFailures >= 2 && serverSide.t.stats.resolveFailures >= 2);
    expect(clientSide.t.relay).toEqual(addressOf(r1));
    expect(clientSide.lines.some((l) => /resolving the relay failed \(dns down\); retrying both/.test(l))).toBe(true);
    dnsDown = false;
    await until(() => clientSide.t.stats.relayChanges === 1 && serverSide.t.stats.relayChanges === 1);
    await roundTrip("after");
    expect(r2.forwarded).toBeGreaterThanOrEqual(2);
  });

  it("does not move on ERR to a keepalive: the relay is alive and is asked again", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    const dns = resolverOf(() => [addressOf(r1), addressOf(r2)]);
    const { clientSide } = await tunnelPair(dns.resolve);
    r1.refuseWith = "ERR busy\n";
    const regs = r1.regs.length;
    await until(() => r1.regs.length >= regs + 8);
    expect(clientSide.t.stats.relayChanges).toBe(0);
    expect(r2.regs).toEqual([]);
    expect(clientSide.lines.some((l) => l.includes("refused the registration: ERR busy; will retry"))).toBe(true);
  });

  it("starts on the next address when the first one does not answer", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    r1.silent = true;
    const side = tunnel(resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve, listenMode);
    await side.t.start();
    expect(side.t.relay).toEqual(addressOf(r2));
    expect(side.changes.map((c) => c.to)).toEqual([addressOf(r2)]);
    expect(side.lines.at(-1)).toMatch(new RegExp(`^registered session ${SESSION} at 127\\.0\\.0\\.2:${r2.port} `));
  });

  it("fails with RelayUnreachableError naming every address when none answers at start", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    r1.silent = r2.silent = true;
    const side = tunnel(resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve, listenMode);
    const error = await side.t.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RelayUnreachableError);
    expect((error as Error).message).toBe(
      `relay 127.0.0.2:${r2.port} did not answer 3 REG attempts (unreachable, filtered, or not a quic-relay); neither did 127.0.0.1:${r1.port} before it`,
    );
    expect(r1.regs.length).toBe(fast.maxTries);
    expect(r2.regs.length).toBe(fast.maxTries);
  });
});
