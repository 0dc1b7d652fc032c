import { encodeReg } from "../protocol/reg.ts";
import { classifyRelayDatagram } from "./control.ts";
import { formatHostPort, type HostPort, sameHost } from "../net/address.ts";
import { wildcardFor } from "./endpoint.ts";
import { RegistrationRefusedError, RelayUnreachableError } from "./errors.ts";
import { RelayRegistration, type RegistrationSettings } from "./registration.ts";

/**
 * Register from a chosen local port, wait for the ACK, and close the socket so an app can bind
 * that port next (the quic-portal-style hand-over: the NAT mapping and the relay's record of
 * our public address stay valid because the app sends from the same local port). Linux UDP has
 * no TIME_WAIT, so the port is free the moment this resolves. Returns the REG→ACK time in ms.
 */
export async function registerOnce(relay: HostPort, sessionId: string, localPort: number, settings: RegistrationSettings): Promise<number> {
  const relayText = formatHostPort(relay);
  const done = Promise.withResolvers<number>();
  const reg = encodeReg(sessionId);
  let registration: RelayRegistration | undefined;
  const socket = await Bun.udpSocket({
    hostname: wildcardFor(relay.host),
    port: localPort,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        if (port !== relay.port || !sameHost(address, relay.host)) return;
        const reply = classifyRelayDatagram(data);
        if (reply.kind === "ack") registration?.onAck();
        else if (reply.kind === "err") registration?.onErr(reply.code);
      },
      error() {},
    },
  });
  registration = new RelayRegistration(settings, {
    sendReg: () => void socket.send(reg, relay.port, relay.host),
    registered: ({ rttMs }) => done.resolve(rttMs),
    lost: () => {},
    refused: ({ code }) => done.reject(new RegistrationRefusedError(relayText, code)),
    unreachable: ({ tries }) => done.reject(new RelayUnreachableError(relayText, tries)),
  });
  registration.start();
  try {
    return await done.promise;
  } finally {
    registration.stop();
    socket.close();
  }
}
