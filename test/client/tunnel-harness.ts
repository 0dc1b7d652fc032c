import type { udp } from "bun";
import type { RelayResolver } from "../../src/client/relay-addresses.ts";
import type { RegistrationSettings } from "../../src/client/registration.ts";
import { type RelayChange, RelayTunnel, type TunnelMode } from "../../src/client/tunnel.ts";
import type { HostPort } from "../../src/net/address.ts";
import { eventually } from "../utils.ts";
import { FakeRelay, type FakeRelayOptions } from "./fake-relay.ts";

/**
 * Tunnels on fake relays over loopback, for the tests of moving between relay addresses
 * (failover, MOVE). Everything opened here is closed by `closeAll()`.
 */

/** Fast spacing: 3 unanswered REGs are 50 + 100 + 200 ms of silence. */
export const fast = { ackTimeoutMs: 50, maxBackoffMs: 200, maxTries: 3, keepaliveMs: 200, silentAfter: 3 } satisfies RegistrationSettings;
export const SESSION = "failover-0f8fad5b";

const cleanups: (() => void)[] = [];

/** Close what the harness opened; each test file that uses it calls this in its `afterEach`. */
export function closeAll(): void {
  for (const c of cleanups.splice(0).reverse()) c();
}

export const until = (check: () => boolean, ms = 10_000) => eventually(check, ms, 5);

export async function fakeRelay(host: string, options: FakeRelayOptions = {}): Promise<FakeRelay> {
  const relay = await FakeRelay.start(options, host);
  cleanups.push(() => relay.close());
  return relay;
}

export const addressOf = (relay: { host: string; port: number }): HostPort => ({ host: relay.host, port: relay.port });

/** A resolver that answers from `list()` each time and counts its calls. */
export function resolverOf(list: () => HostPort[]): { calls: number; resolve: RelayResolver } {
  const r = {
    calls: 0,
    resolve: async () => {
      r.calls++;
      return list();
    },
  };
  return r;
}

/** A UDP socket that records what it receives, as text, and from whom. */
export async function endpoint(hostname = "127.0.0.1") {
  const inbox: string[] = [];
  const senders: HostPort[] = [];
  const socket: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname,
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
  return { socket, inbox, senders, send, address: { host: hostname, port: socket.port } };
}

/** A tunnel that records its relay changes and its log lines (info and warn). */
export function tunnel(relay: RelayResolver | HostPort, mode: TunnelMode, registration: RegistrationSettings = fast, sessionId = SESSION) {
  const changes: RelayChange[] = [];
  const lines: string[] = [];
  const t = new RelayTunnel({
    relay,
    sessionId,
    mode,
    registration,
    log: { info: (m) => lines.push(m), warn: (m) => lines.push(m), debug() {} },
    onRelayChange: (change) => changes.push(change),
  });
  cleanups.push(() => t.close());
  return { t, changes, lines };
}

export const listenMode: TunnelMode = { kind: "listen", local: { host: "127.0.0.1", port: 0 } };

/**
 * A server behind a forward-side tunnel on `serverRelay` and an app behind a listen-side one on
 * `clientRelay` (the same unless given), the server side started first.
 */
export async function tunnelPair(serverRelay: RelayResolver, clientRelay = serverRelay, registration = fast) {
  const server = await endpoint();
  const app = await endpoint();
  const serverSide = tunnel(serverRelay, { kind: "forward", target: server.address }, registration);
  const clientSide = tunnel(clientRelay, listenMode, registration);
  await serverSide.t.start();
  await clientSide.t.start();
  /** The app sends `text` until the server has it, and the server answers until the app has the answer. */
  const roundTrip = async (text: string) => {
    await until(() => (app.send(text, clientSide.t.appAddress), server.inbox.includes(text)));
    await until(() => (server.send(`re:${text}`, server.senders[server.inbox.indexOf(text)]!), app.inbox.includes(`re:${text}`)));
  };
  return { server, app, serverSide, clientSide, roundTrip };
}
