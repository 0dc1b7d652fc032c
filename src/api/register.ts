/**
 * `register(options)`: one UDP socket registered in a relay session, kept registered. The socket
 * is this module's (Bun.udpSocket); the REG exchange, backoff, keepalives, RETRY cookies and
 * re-registration are RelayRegistration's (src/client/registration.ts), unchanged.
 *
 * Keepalive and NAT rebinding: a REG goes out every `keepaliveMs` (10 s). When the NAT gives the
 * socket a new public port, the next keepalive REG comes from it and the relay moves the session
 * there before it answers (docs/protocol.md, rebinding rule 1). A keepalive without an ACK (relay
 * restarted, path down) is retried with backoff until one comes back; it never gives up while open.
 */
import type { udp } from "bun";
import { isIP } from "node:net";
import { formatHostPort, type HostPort, parseHostPort, sameHost } from "../net/address.ts";
import { resolveHostPort, wildcardFor } from "../client/endpoint.ts";
import { ClientConfigError, RegistrationRefusedError, RelayUnreachableError } from "../client/errors.ts";
import { defaultRegistrationSettings, RelayRegistration, type RegistrationSettings } from "../client/registration.ts";

export interface RegisterOptions {
  /** The relay: `host:port`, `[v6]:port`, or `{ host, port }` (a `startRelay` handle's `address` works as is). */
  relay: string | HostPort;
  /** The session id both peers register (1-128 printable ASCII characters; a UUID is a good one). */
  sessionId: string;
  /** Local address to bind (default: the wildcard of the relay's family). */
  localHost?: string;
  /** Local port to bind (default: any). */
  localPort?: number;
  /** Retries, backoff and keepalive interval; defaults: ackTimeoutMs 500, maxBackoffMs 4000, maxTries 5, keepaliveMs 10000. */
  settings?: Partial<RegistrationSettings>;
  /** Every datagram from the relay that is not a relay reply: what the partner sent. */
  onData?(data: Uint8Array): void;
  /** What happens to the registration after the first ACK. */
  onEvent?(event: RegistrationEvent): void;
}

export type RegistrationEvent =
  /** A keepalive (or re-registration) was acknowledged; `retries` > 0: the relay asked for address proof again (e.g. after a NAT rebinding). */
  | { type: "registered"; rttMs: number; attempts: number; retries: number }
  /** A keepalive went unanswered; REGs go on with backoff until an ACK comes. */
  | { type: "lost"; attempts: number }
  /** The relay answered a keepalive with `ERR <code>`; REGs go on after the longest backoff. */
  | { type: "refused"; code: string }
  /** The socket reported an error (e.g. ICMP port unreachable while the relay restarts). */
  | { type: "socket-error"; error: Error };

/** A socket registered in a session: what it sends goes to the partner through the relay. */
export interface RelaySocket {
  readonly relay: HostPort;
  /** The socket's local address. */
  readonly local: HostPort;
  readonly sessionId: string;
  /** Milliseconds from the first REG of the acknowledged attempt to its ACK. */
  readonly rttMs: number;
  /** The relay asked for return-routability proof (RETRY) before its first ACK. */
  readonly verified: boolean;
  /** True while the latest REG is acknowledged; false while a keepalive waits for its ACK. */
  readonly registered: boolean;
  /** Sends a datagram to the partner through the relay; false when the socket did not take it. */
  send(data: Uint8Array | string): boolean;
  /** Sends a REG now (e.g. after a network change) unless one is outstanding. */
  refresh(): void;
  /** Stops the keepalives and closes the socket. The relay forgets the session after its timeout. */
  close(): void;
  [Symbol.dispose](): void;
}

/**
 * Binds a socket, registers it in `sessionId` and resolves at the first ACK. Rejects with
 * RelayUnreachableError (no answer after `maxTries`), RegistrationRefusedError (`ERR <code>`), or
 * ClientConfigError (a relay address that cannot be used); the socket is closed then.
 */
export async function register(options: RegisterOptions): Promise<RelaySocket> {
  const relay = await relayAddress(options.relay);
  const settings: RegistrationSettings = { ...defaultRegistrationSettings, ...options.settings };
  const relayText = formatHostPort(relay);
  const first = Promise.withResolvers<{ rttMs: number; retries: number }>();
  let firstDone = false;
  let socket: udp.Socket<"uint8array"> | undefined;
  const emit = (event: RegistrationEvent) => {
    if (firstDone) options.onEvent?.(event);
  };
  const registration = new RelayRegistration(options.sessionId, settings, {
    sendReg: (datagram) => socket?.send(datagram, relay.port, relay.host),
    registered: ({ first: isFirst, rttMs, attempts, retries }) => {
      if (isFirst) first.resolve({ rttMs, retries });
      else emit({ type: "registered", rttMs, attempts, retries });
    },
    lost: ({ attempts }) => emit({ type: "lost", attempts }),
    refused: ({ first: isFirst, code }) => {
      if (isFirst) first.reject(new RegistrationRefusedError(relayText, code));
      else emit({ type: "refused", code });
    },
    unreachable: ({ tries }) => first.reject(new RelayUnreachableError(relayText, tries)),
  });
  try {
    socket = await Bun.udpSocket({
      hostname: options.localHost ?? wildcardFor(relay.host),
      port: options.localPort ?? 0,
      binaryType: "uint8array",
      socket: {
        data(_s, data, port, address) {
          if (port !== relay.port || !sameHost(address, relay.host)) return; // not the relay
          if (!registration.onRelayDatagram(data)) options.onData?.(data);
        },
        // Bun 1.4 calls error(err) although its types say error(socket, err): accept both.
        error(first: unknown, second?: unknown) {
          const error = first instanceof Error ? first : second instanceof Error ? second : new Error(String(second ?? first));
          emit({ type: "socket-error", error });
        },
      },
    });
  } catch (cause) {
    const where = formatHostPort({ host: options.localHost ?? wildcardFor(relay.host), port: options.localPort ?? 0 });
    throw new ClientConfigError(`cannot bind ${where}: ${(cause as Error).message}`, "localPort");
  }
  const bound = socket;
  registration.start();
  let done: { rttMs: number; retries: number };
  try {
    done = await first.promise;
  } catch (error) {
    registration.stop();
    bound.close();
    throw error;
  }
  firstDone = true;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    registration.stop();
    bound.close();
  };
  return {
    relay,
    local: { host: bound.hostname, port: bound.port },
    sessionId: options.sessionId,
    rttMs: done.rttMs,
    verified: done.retries > 0,
    get registered() {
      return !closed && registration.registered;
    },
    send: (data) => !closed && bound.send(typeof data === "string" ? new TextEncoder().encode(data) : data, relay.port, relay.host),
    refresh: () => registration.refresh(),
    close,
    [Symbol.dispose]: close,
  };
}

/** A relay address to send to: parsed, a name resolved once, a wildcard (a relay's bind address) made loopback. */
async function relayAddress(relay: string | HostPort): Promise<HostPort> {
  const given = typeof relay === "string" ? parseHostPort(relay) : relay;
  if (!given || given.host === "" || !Number.isInteger(given.port) || given.port < 1 || given.port > 65_535) {
    const text = typeof relay === "string" ? relay : JSON.stringify(relay);
    throw new ClientConfigError(`relay must be host:port or [ipv6]:port with a port 1-65535, got '${text}'`, "relay");
  }
  const resolved = await resolveHostPort(given, "relay").catch((error: Error) => {
    throw new ClientConfigError(error.message.replace(/^--relay/, "relay"), "relay");
  });
  if (resolved.host === "0.0.0.0") return { host: "127.0.0.1", port: resolved.port };
  if (isIP(resolved.host) === 6 && /^[0:]+$/.test(resolved.host)) return { host: "::1", port: resolved.port };
  return resolved;
}
