/**
 * register() from quic-relay/client against the real relay on loopback: pairing, refusals,
 * keepalives, a NAT rebinding (a user-space NAT gives the client a new public port) and a relay
 * restart, each observed through events and datagrams, never through waiting a fixed time.
 */
import { afterEach, describe, expect, it } from "bun:test";
import {
  register,
  RegistrationRefusedError,
  type RegistrationEvent,
  RelayUnreachableError,
  type RelaySocket,
} from "../../src/api/client.ts";
import { type RelayHandle, startRelay } from "../../src/index.ts";
import { freeUdpPort } from "../cli/relay-process.ts";
import { UdpNat } from "./udp-nat.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function relayOn(port = 0): Promise<RelayHandle> {
  const relay = await startRelay({ host: "127.0.0.1", port, logLevel: "error" });
  cleanup.push(() => relay.stop());
  return relay;
}

/** A registered socket whose data and events are queued, with waits on them. */
async function peer(options: Parameters<typeof register>[0]) {
  const inbox: string[] = [];
  const events: RegistrationEvent[] = [];
  let wake = () => {};
  const changed = () => {
    const w = wake;
    wake = () => {};
    w();
  };
  const socket: RelaySocket = await register({
    ...options,
    onData: (data) => {
      inbox.push(new TextDecoder().decode(data));
      changed();
    },
    onEvent: (event) => {
      events.push(event);
      changed();
    },
  });
  cleanup.push(() => socket.close());
  /** Resolves when `check` holds after a datagram or an event; a deadline, not a measurement. */
  const until = async (check: () => boolean, what: string, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  };
  return {
    socket,
    inbox,
    events,
    until,
    next: async (what = "a datagram") => {
      await until(() => inbox.length > 0, what);
      return inbox.shift()!;
    },
  };
}

describe("register", () => {
  it("pairs two sockets in a session; what one sends the other receives, both ways", async () => {
    const relay = await relayOn();
    const sessionId = crypto.randomUUID();
    const a = await peer({ relay: relay.address, sessionId, localHost: "127.0.0.2" });
    const b = await peer({ relay: `127.0.0.1:${relay.address.port}`, sessionId, localHost: "127.0.0.3" });
    expect(a.socket.registered && b.socket.registered).toBe(true);
    expect(a.socket.verified).toBe(false);
    expect(a.socket.local.host).toBe("127.0.0.2");
    a.socket.send("from a");
    expect(await b.next()).toBe("from a");
    b.socket.send(new Uint8Array([1, 2, 3]));
    expect(await a.next()).toBe("\u0001\u0002\u0003");
  });

  it("answers a relay that requires proof (RETRY) and reports it as verified", async () => {
    const relay = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "error", verifySource: true });
    cleanup.push(() => relay.stop());
    const a = await peer({ relay: relay.address, sessionId: crypto.randomUUID() });
    expect(a.socket.verified).toBe(true);
  });

  it("rejects with RegistrationRefusedError on ERR, and RelayUnreachableError when nothing answers", async () => {
    const relay = await relayOn();
    const sessionId = crypto.randomUUID();
    await peer({ relay: relay.address, sessionId, localHost: "127.0.0.2" });
    await peer({ relay: relay.address, sessionId, localHost: "127.0.0.3" });
    // A third host in a full session: ERR full.
    const third = await register({ relay: relay.address, sessionId, localHost: "127.0.0.4" }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(RegistrationRefusedError);
    expect((third as RegistrationRefusedError).code).toBe("full");
    const nobody = await freeUdpPort();
    const silent = await register({ relay: `127.0.0.1:${nobody}`, sessionId, settings: { maxTries: 2, ackTimeoutMs: 50 } }).catch((e: unknown) => e);
    expect(silent).toBeInstanceOf(RelayUnreachableError);
    expect(await register({ relay: "nonsense", sessionId }).catch((e: Error) => e.message)).toContain("relay must be host:port");
  });

  it("keeps the registration alive: keepalive REGs are acknowledged", async () => {
    const relay = await relayOn();
    const a = await peer({ relay: relay.address, sessionId: crypto.randomUUID(), settings: { keepaliveMs: 50 } });
    await a.until(() => a.events.filter((e) => e.type === "registered").length >= 2, "two keepalive ACKs");
    expect(a.events.every((e) => e.type === "registered")).toBe(true);
  });

  it("follows a NAT rebinding: the next keepalive comes from the new public port and the relay moves the session", async () => {
    const relay = await relayOn();
    const sessionId = crypto.randomUUID();
    const nat = await UdpNat.open(relay.address, "127.0.0.2");
    cleanup.push(() => nat.close());
    const a = await peer({ relay: nat.inside, sessionId, settings: { keepaliveMs: 100 } });
    const b = await peer({ relay: relay.address, sessionId, localHost: "127.0.0.3" });
    b.socket.send("before");
    expect(await a.next()).toBe("before");

    const oldPort = nat.publicPort;
    await nat.rebind();
    expect(nat.publicPort).not.toBe(oldPort);
    // The ACK that counts is the one after the relay moved the peer (an ACK to a keepalive sent just
    // before the rebinding may still come through the old port).
    const acked = a.events.length;
    const moved = () => relay.metrics().includes('quic_relay_rebinds_total{kind="reg"} 1');
    await a.until(() => moved() && a.events.slice(acked).some((e) => e.type === "registered"), "a keepalive ACK through the new port");

    b.socket.send("after");
    expect(await a.next("the partner's datagram at the new port")).toBe("after");
    a.socket.send("from the new port");
    expect(await b.next()).toBe("from the new port");
  });

  it("registers again after the relay restarts: lost, then registered, and the session works", async () => {
    const first = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "error" });
    const port = first.address.port;
    const sessionId = crypto.randomUUID();
    const a = await peer({
      relay: first.address,
      sessionId,
      localHost: "127.0.0.2",
      settings: { keepaliveMs: 100, ackTimeoutMs: 100, maxBackoffMs: 200 },
    });
    await first.stop();
    await a.until(() => a.events.some((e) => e.type === "lost"), "the lost registration");
    expect(a.socket.registered).toBe(false);

    const second = await relayOn(port);
    const lostAt = a.events.findIndex((e) => e.type === "lost");
    await a.until(() => a.events.slice(lostAt).some((e) => e.type === "registered"), "registration with the new relay");
    expect(a.socket.registered).toBe(true);
    const b = await peer({ relay: second.address, sessionId, localHost: "127.0.0.3" });
    b.socket.send("after the restart");
    expect(await a.next()).toBe("after the restart");
  });

  it("close() stops the keepalives and the socket", async () => {
    const relay = await relayOn();
    const a = await peer({ relay: relay.address, sessionId: crypto.randomUUID(), settings: { keepaliveMs: 50 } });
    a.socket.close();
    expect(a.socket.registered).toBe(false);
    expect(a.socket.send("x")).toBe(false);
    a.socket.close();
  });
});
