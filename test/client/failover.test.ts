import { afterEach, describe, expect, it } from "bun:test";
import type { udp } from "bun";
import { RelayUnreachableError } from "../../src/client/errors.ts";
import type { RelayResolver } from "../../src/client/relay-addresses.ts";
import { type RelayChange, RelayTunnel, type TunnelMode } from "../../src/client/tunnel.ts";
import type { HostPort } from "../../src/net/address.ts";
import { eventually } from "../utils.ts";
import { FakeRelay } from "./fake-relay.ts";

/** Fast spacing: 3 unanswered REGs are 50 + 100 + 200 ms of silence. */
const fast = { ackTimeoutMs: 50, maxBackoffMs: 200, maxTries: 3, keepaliveMs: 200, silentAfter: 3 };
const SESSION = "failover-0f8fad5b";
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});
const until = (check: () => boolean, ms = 10_000) => eventually(check, ms, 5);

async function fakeRelay(host: string): Promise<FakeRelay> {
  const relay = await FakeRelay.start({}, host);
  cleanups.push(() => relay.close());
  return relay;
}

const addressOf = (relay: FakeRelay): HostPort => ({ host: relay.host, port: relay.port });

/** A resolver that answers from `list()` each time and counts its calls. */
function resolverOf(list: () => HostPort[]): { calls: number; resolve: RelayResolver } {
  const r = {
    calls: 0,
    resolve: async () => {
      r.calls++;
      return list();
    },
  };
  return r;
}

async function endpoint() {
  const inbox: string[] = [];
  const senders: HostPort[] = [];
  const socket: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (_s, d, port, host) => {
        inbox.push(new TextDecoder().decode(d));
        senders.push({ host, port });
      },
    },
  });
  cleanups.push(() => socket.close());
  const send = (text: string, to: HostPort) => socket.send(new TextEncoder().encode(text), to.port, to.host);
  return { socket, inbox, senders, send };
}

function tunnel(resolve: RelayResolver, mode: TunnelMode) {
  const changes: RelayChange[] = [];
  const lines: string[] = [];
  const t = new RelayTunnel({
    relay: resolve,
    sessionId: SESSION,
    mode,
    registration: fast,
    log: { info: (m) => lines.push(m), warn: (m) => lines.push(m), debug() {} },
    onRelayChange: (change) => changes.push(change),
  });
  cleanups.push(() => t.close());
  return { t, changes, lines };
}

/** A server behind a forward-side tunnel and an app behind a listen-side one, both on `resolve`. */
async function tunnelPair(resolve: RelayResolver) {
  const server = await endpoint();
  const app = await endpoint();
  const serverSide = tunnel(resolve, { kind: "forward", target: { host: "127.0.0.1", port: server.socket.port } });
  const clientSide = tunnel(resolve, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
  await serverSide.t.start();
  await clientSide.t.start();
  /** The app sends `text` until the server has it, and the server answers until the app has the answer. */
  const roundTrip = async (text: string) => {
    await until(() => (app.send(text, clientSide.t.appAddress), server.inbox.includes(text)));
    await until(() => (server.send(`re:${text}`, server.senders[server.inbox.indexOf(text)]!), app.inbox.includes(`re:${text}`)));
  };
  return { server, app, serverSide, clientSide, roundTrip };
}

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
      expect(side.changes).toEqual([{ from: addressOf(r1), to: addressOf(r2), unanswered: fast.silentAfter }]);
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
    const side = tunnel(resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    await side.t.start();
    expect(side.t.relay).toEqual(addressOf(r2));
    expect(side.changes.map((c) => c.to)).toEqual([addressOf(r2)]);
    expect(side.lines.at(-1)).toMatch(new RegExp(`^registered session ${SESSION} at 127\\.0\\.0\\.2:${r2.port} `));
  });

  it("fails with RelayUnreachableError naming every address when none answers at start", async () => {
    const [r1, r2] = [await fakeRelay("127.0.0.1"), await fakeRelay("127.0.0.2")];
    r1.silent = r2.silent = true;
    const side = tunnel(resolverOf(() => [addressOf(r1), addressOf(r2)]).resolve, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    const error = await side.t.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RelayUnreachableError);
    expect((error as Error).message).toBe(
      `relay 127.0.0.2:${r2.port} did not answer 3 REG attempts (unreachable, filtered, or not a quic-relay); neither did 127.0.0.1:${r1.port} before it`,
    );
    expect(r1.regs.length).toBe(fast.maxTries);
    expect(r2.regs.length).toBe(fast.maxTries);
  });
});
