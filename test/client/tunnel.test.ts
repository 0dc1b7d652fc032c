import { afterEach, describe, expect, it } from "bun:test";
import type { udp } from "bun";
import { RegistrationRefusedError, RelayUnreachableError } from "../../src/client/errors.ts";
import { RelayTunnel, type TunnelMode } from "../../src/client/tunnel.ts";
import { FakeRelay } from "./fake-relay.ts";

const quiet = { info() {}, warn() {}, debug() {} };
const fast = { ackTimeoutMs: 100, maxBackoffMs: 400, maxTries: 3, keepaliveMs: 300 };
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

type Received = { data: string; port: number; address: string };

async function endpoint(hostname = "127.0.0.1") {
  const inbox: Received[] = [];
  const socket: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: { data: (_s, d, port, address) => void inbox.push({ data: new TextDecoder().decode(d), port, address }) },
  });
  cleanups.push(() => socket.close());
  return { socket, inbox };
}

function tunnel(relay: FakeRelay, mode: TunnelMode, session = "s1", registration = fast) {
  const t = new RelayTunnel({ relay: { host: "127.0.0.1", port: relay.port }, sessionId: session, mode, registration, log: quiet });
  cleanups.push(() => t.close());
  return t;
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

describe("RelayTunnel over loopback", () => {
  it("carries datagrams both ways between a listen-side app and a forward-side server", async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const server = await endpoint();
    const client = await endpoint();
    const serverSide = tunnel(relay, { kind: "forward", target: { host: "127.0.0.1", port: server.socket.port } });
    const clientSide = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    await serverSide.start();
    await clientSide.start();
    const listen = clientSide.appAddress;

    client.socket.send(new TextEncoder().encode("hello"), listen.port, listen.host);
    await until(() => server.inbox.length === 1);
    expect(server.inbox[0]!.data).toBe("hello");
    expect(server.inbox[0]!.port).toBe(serverSide.appAddress.port);

    const from = server.inbox[0]!;
    server.socket.send(new TextEncoder().encode("world"), from.port, from.address);
    await until(() => client.inbox.length === 1);
    expect(client.inbox[0]).toMatchObject({ data: "world", port: listen.port });
    await Bun.sleep(700); // several keepalives pass: their ACKs must not reach the apps
    expect(client.inbox.map((r) => r.data)).toEqual(["world"]);
    expect(server.inbox.map((r) => r.data)).toEqual(["hello"]);
    expect(clientSide.stats.registrations).toBeGreaterThanOrEqual(2);
  });

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

  it("re-registers after the relay forgets the session (restart) and traffic flows again", async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const server = await endpoint();
    const client = await endpoint();
    const serverSide = tunnel(relay, { kind: "forward", target: { host: "127.0.0.1", port: server.socket.port } });
    const clientSide = tunnel(relay, { kind: "listen", local: { host: "127.0.0.1", port: 0 } });
    await serverSide.start();
    await clientSide.start();
    relay.reset();
    const regsAfterReset = relay.regs.length;
    await until(() => relay.regs.length >= regsAfterReset + 2, 2000);
    const listen = clientSide.appAddress;
    client.socket.send(new TextEncoder().encode("again"), listen.port, listen.host);
    await until(() => server.inbox.some((r) => r.data === "again"));
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
    for (let i = 0; i < 5; i++) {
      app.socket.send(new TextEncoder().encode(`to-nowhere-${i}`), listen.port, listen.host);
      await Bun.sleep(20);
    }
    await until(() => serverSide.stats.socketErrors > 0, 3000);
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
