import { afterEach, describe, expect, it } from "bun:test";
import type { udp } from "bun";
import { RegistrationRefusedError, RelayUnreachableError } from "../../src/client/errors.ts";
import { registerOnce } from "../../src/client/register-once.ts";
import { MAX_RETRIES_PER_ATTEMPT, PLACEHOLDER_COOKIE } from "../../src/client/registration.ts";
import { RelayTunnel, type TunnelMode } from "../../src/client/tunnel.ts";
import { eventually } from "../utils.ts";
import { FakeRelay, type FakeRelayOptions } from "./fake-relay.ts";

const quiet = { info() {}, warn() {}, debug() {} };
const fast = { ackTimeoutMs: 100, maxBackoffMs: 400, maxTries: 3, keepaliveMs: 300 };
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

type Received = { data: string; port: number; address: string };

async function endpoint(hostname = "127.0.0.1", port = 0) {
  const inbox: Received[] = [];
  const socket: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname,
    port,
    binaryType: "uint8array",
    socket: { data: (_s, d, port, address) => void inbox.push({ data: new TextDecoder().decode(d), port, address }) },
  });
  cleanups.push(() => socket.close());
  return { socket, inbox };
}

/** A local port free on every address (registerOnce binds the wildcard): bound once, then released. */
async function freePort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "0.0.0.0", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

function tunnel(relay: FakeRelay, mode: TunnelMode, session = "s1", registration = fast) {
  const t = new RelayTunnel({ relay: { host: "127.0.0.1", port: relay.port }, sessionId: session, mode, registration, log: quiet });
  cleanups.push(() => t.close());
  return t;
}

const until = (check: () => boolean, ms = 5000) => eventually(check, ms, 5);

/** A relay, a server behind a forward-side tunnel and a client app behind a listen-side one, started. */
async function tunnelPair(options: FakeRelayOptions, session: string) {
  const relay = await FakeRelay.start(options);
  cleanups.push(() => relay.close());
  const server = await endpoint();
  const client = await endpoint();
  const serverSide = tunnel(relay, { kind: "forward", target: { host: "127.0.0.1", port: server.socket.port } }, session);
  const clientSide = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } }, session);
  await serverSide.start();
  await clientSide.start();
  return { relay, server, client, serverSide, clientSide };
}

const LONG_ID = "5b3c1f0e-8d2a-4c7b-9e61-0a4f2d7c8b19";

/** Relays with and without return-routability proof; short ids take the ERR short / placeholder path. */
const flavours: { name: string; options: FakeRelayOptions; session: string; proof: boolean }[] = [
  { name: "a relay that asks for no proof", options: {}, session: "s1", proof: false },
  { name: "a relay requiring proof (REG, RETRY, REG with cookie)", options: { requireCookies: true }, session: LONG_ID, proof: true },
  { name: "a relay requiring proof, 10-char id (ERR short, placeholder, RETRY)", options: { requireCookies: true }, session: "session-10", proof: true },
  { name: "a relay requiring proof, 2-char id (bare ERR, placeholder, RETRY)", options: { requireCookies: true }, session: "s1", proof: true },
];

/** What each client address sent: the cookie of every REG, "-" for none. */
function cookiesByAddress(relay: FakeRelay): Map<number, string[]> {
  const by = new Map<number, string[]>();
  for (const r of relay.regs) by.set(r.port, [...(by.get(r.port) ?? []), r.cookie ?? "-"]);
  return by;
}

describe.each(flavours)("against $name", ({ options, session, proof }) => {
  it("carries datagrams both ways between a listen-side app and a forward-side server, keepalives echo the cookie", async () => {
    const { relay, server, client, serverSide, clientSide } = await tunnelPair(options, session);
    const listen = clientSide.appAddress;

    client.socket.send(new TextEncoder().encode("hello"), listen.port, listen.host);
    await until(() => server.inbox.length === 1);
    expect(server.inbox[0]!.data).toBe("hello");
    expect(server.inbox[0]!.port).toBe(serverSide.appAddress.port);

    const from = server.inbox[0]!;
    server.socket.send(new TextEncoder().encode("world"), from.port, from.address);
    await until(() => client.inbox.length === 1);
    expect(client.inbox[0]).toMatchObject({ data: "world", port: listen.port });
    // Several keepalives pass: their ACKs must not reach the apps.
    await until(() => clientSide.stats.registrations >= 3 && serverSide.stats.registrations >= 3);
    expect(client.inbox.map((r) => r.data)).toEqual(["world"]);
    expect(server.inbox.map((r) => r.data)).toEqual(["hello"]);

    expect(clientSide.stats.retries).toBe(proof ? 1 : 0);
    for (const [, cookies] of cookiesByAddress(relay)) {
      if (!proof) {
        expect(cookies.every((c) => c === "-")).toBe(true);
        continue;
      }
      const short = session.length < 18;
      const cookie = cookies[short ? 2 : 1]!;
      expect(relay.retries).toContain(cookie);
      // Plain REG first; the placeholder only for a short id; then the cookie in every later REG.
      expect(cookies.slice(0, short ? 2 : 1)).toEqual(short ? ["-", PLACEHOLDER_COOKIE] : ["-"]);
      expect(cookies.slice(short ? 2 : 1).every((c) => c === cookie)).toBe(true);
    }
  });

  it("re-registers after the relay restarts (new cookie key) and traffic flows again", async () => {
    const { relay, server, client, serverSide, clientSide } = await tunnelPair(options, session);
    const retriesBefore = relay.retries.length;
    relay.reset();
    const regsAfterReset = relay.regs.length;
    await until(() => clientSide.stats.registrations >= 2 && serverSide.stats.registrations >= 2 && relay.regs.length >= regsAfterReset + 2);
    const listen = clientSide.appAddress;
    await until(() => {
      client.socket.send(new TextEncoder().encode("again"), listen.port, listen.host);
      return server.inbox.some((r) => r.data === "again");
    });
    if (proof) {
      // The old cookies no longer verify: each side was asked again and now sends its new cookie.
      const fresh = relay.retries.slice(retriesBefore);
      expect(fresh.length).toBe(2);
      for (const [, cookies] of cookiesByAddress(relay)) expect(fresh).toContain(cookies.at(-1)!);
    } else {
      expect(relay.retries).toEqual([]);
    }
  });

  it("registerOnce answers RETRY from the chosen port; the app that binds the port next is the session's peer", async () => {
    const relay = await FakeRelay.start(options);
    cleanups.push(() => relay.close());
    const server = await endpoint();
    const serverSide = tunnel(relay, { kind: "forward", target: { host: "127.0.0.1", port: server.socket.port } }, session);
    await serverSide.start();
    const port = await freePort();
    const result = await registerOnce({ host: "127.0.0.1", port: relay.port }, session, port, fast);
    expect(result.verified).toBe(proof);
    expect(result.rttMs).toBeGreaterThanOrEqual(0);
    const app = await endpoint("127.0.0.1", port);
    app.socket.send(new TextEncoder().encode("from-app"), relay.port, "127.0.0.1");
    await until(() => server.inbox.some((r) => r.data === "from-app"));
  });
});

describe("RelayTunnel over loopback", () => {
  it("retries unanswered REGs and registers once the relay answers", async () => {
    const relay = await FakeRelay.start({ dropRegs: 2 });
    cleanups.push(() => relay.close());
    const t = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    await t.start();
    expect(relay.regs.length).toBe(3);
  });

  it("fails with RelayUnreachableError after the configured tries", async () => {
    const relay = await FakeRelay.start({ dropRegs: 1000 });
    cleanups.push(() => relay.close());
    const t = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    await expect(t.start()).rejects.toBeInstanceOf(RelayUnreachableError);
    expect(relay.regs.length).toBe(3);
  });

  it("reports the relay's refusal reason", async () => {
    const relay = await FakeRelay.start({ refuseWith: "ERR full\n" });
    cleanups.push(() => relay.close());
    const t = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    const error = await t.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistrationRefusedError);
    expect((error as Error).message).toContain("ERR full");
  });

  it("fails with RelayUnreachableError against a relay that only ever answers RETRY", async () => {
    const relay = await FakeRelay.start({ retryForever: true });
    cleanups.push(() => relay.close());
    const t = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } }, LONG_ID);
    await expect(t.start()).rejects.toBeInstanceOf(RelayUnreachableError);
    expect(relay.regs.length).toBe(fast.maxTries * (1 + MAX_RETRIES_PER_ATTEMPT));
  });

  it("reports ERR busy as a refusal", async () => {
    const relay = await FakeRelay.start({ refuseWith: "ERR busy\n" });
    cleanups.push(() => relay.close());
    const error = await registerOnce({ host: "127.0.0.1", port: relay.port }, LONG_ID, await freePort(), fast).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistrationRefusedError);
    expect((error as Error).message).toContain("ERR busy");
  });

  it("queues app datagrams sent before the first ACK and delivers them after it", async () => {
    const relay = await FakeRelay.start({ dropRegs: 1 });
    cleanups.push(() => relay.close());
    const server = await endpoint();
    const serverSide = tunnel(relay, { kind: "forward", target: { host: "127.0.0.1", port: server.socket.port } });
    await serverSide.start();
    const client = await endpoint();
    const clientSide = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    const starting = clientSide.start();
    await until(() => {
      try {
        return clientSide.appAddress.port > 0;
      } catch {
        return false;
      }
    });
    const listen = clientSide.appAddress;
    client.socket.send(new TextEncoder().encode("early"), listen.port, listen.host);
    await starting;
    await until(() => server.inbox.some((r) => r.data === "early"));
  });
});

describe("RelayTunnel resilience", () => {
  it("keeps running when the local server is gone (ICMP port unreachable on the app socket)", async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const gone = await endpoint();
    const deadPort = gone.socket.port;
    gone.socket.close();
    const serverSide = tunnel(relay, { kind: "forward", target: { host: "127.0.0.1", port: deadPort } });
    const clientSide = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    await serverSide.start();
    await clientSide.start();
    const app = await endpoint();
    const listen = clientSide.appAddress;
    // Resent until the ICMP error for one of them has come back to the forward side's app socket.
    let sent = 0;
    await eventually(() => {
      app.socket.send(new TextEncoder().encode(`to-nowhere-${sent++}`), listen.port, listen.host);
      return serverSide.stats.socketErrors > 0;
    }, 5000, 20);
    // The tunnel is still alive: a new server on the same port gets traffic again.
    const reborn: { data: string }[] = [];
    const socket = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: deadPort,
      binaryType: "uint8array",
      socket: { data: (_s, d) => void reborn.push({ data: new TextDecoder().decode(d) }) },
    });
    cleanups.push(() => socket.close());
    app.socket.send(new TextEncoder().encode("hello-again"), listen.port, listen.host);
    await until(() => reborn.some((r) => r.data === "hello-again"));
  });
});
