import type { udp } from "bun";
import { formatHostPort, type HostPort, sameHost } from "../net/address.ts";
import { wildcardFor } from "./endpoint.ts";
import { RegistrationRefusedError, RelayUnreachableError } from "./errors.ts";
import { RelayRegistration, type RegistrationSettings, type Timers, realTimers } from "./registration.ts";

/** The outcome of a first registration. */
export interface FirstRegistration {
  /** From the first REG of the attempt that got the ACK to the ACK, RETRY round trips included. */
  rttMs: number;
  /** The relay asked for return-routability proof (RETRY) before it acknowledged. */
  verified: boolean;
}

/**
 * A registration of one socket that settles at its first ACK: `acknowledged` resolves, or rejects
 * with RegistrationRefusedError / RelayUnreachableError. The caller sends what `send` is given,
 * feeds the relay's datagrams to `registration.onRelayDatagram`, calls `registration.start()`, and
 * stops it when done (no keepalives are wanted here).
 */
export function registrationUntilAck(
  relay: HostPort,
  sessionId: string,
  settings: RegistrationSettings,
  send: (datagram: Uint8Array) => void,
  timers: Timers = realTimers,
): { registration: RelayRegistration; acknowledged: Promise<FirstRegistration> } {
  const relayText = formatHostPort(relay);
  const done = Promise.withResolvers<FirstRegistration>();
  const registration = new RelayRegistration(
    sessionId,
    settings,
    {
      sendReg: (datagram) => send(datagram),
      registered: ({ rttMs, retries }) => done.resolve({ rttMs, verified: retries > 0 }),
      lost: () => {},
      refused: ({ code }) => done.reject(new RegistrationRefusedError(relayText, code)),
      unreachable: ({ tries }) => done.reject(new RelayUnreachableError(relayText, tries)),
    },
    timers,
  );
  return { registration, acknowledged: done.promise };
}

/**
 * Register from a chosen local port, wait for the ACK, and close the socket so an app can bind
 * that port next (the quic-portal-style hand-over: the NAT mapping and the relay's record of
 * our public address stay valid because the app sends from the same local port). A relay that
 * requires proof is answered (RETRY) from this socket before it closes, so the proof is for the
 * address the app will use. Linux UDP has no TIME_WAIT, so the port is free the moment this resolves.
 * Its REG carries no `move` flag: the app sends to `relay`, so the peer must be registered there.
 */
export async function registerOnce(relay: HostPort, sessionId: string, localPort: number, settings: RegistrationSettings): Promise<FirstRegistration> {
  let socket: udp.Socket<"uint8array"> | undefined;
  const { registration, acknowledged } = registrationUntilAck(relay, sessionId, settings, (datagram) => {
    socket?.send(datagram, relay.port, relay.host);
  });
  socket = await Bun.udpSocket({
    hostname: wildcardFor(relay.host),
    port: localPort,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        if (port === relay.port && sameHost(address, relay.host)) registration.onRelayDatagram(data);
      },
      error() {},
    },
  });
  registration.start();
  try {
    return await acknowledged;
  } finally {
    registration.stop();
    socket.close();
  }
}
