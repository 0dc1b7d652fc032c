/**
 * The relay's second discovery address (--stun-alt-listen): a socket that answers STUN Binding
 * requests and nothing else. A client that asks both addresses from one socket learns whether its
 * NAT keeps one public address for every destination (RFC 4787 mapping behaviour).
 */
import type { udp } from "bun";
import { type Endpoint, parseHostPort } from "../net/address.ts";
import { StartupError } from "../service/errors.ts";
import type { Clock } from "../sessions/types.ts";
import type { StunResponder } from "./responder.ts";

export interface StunAltListener {
  /** The bound address (a wildcard stays a wildcard: `::` or `0.0.0.0`). */
  readonly local: Endpoint;
  close(): void;
}

/** Binds `listen` (`host:port`; an empty host means every address) and answers with `responder`. */
export async function startStunAltListener(listen: string, responder: StunResponder, clock: Clock): Promise<StunAltListener> {
  const parsed = parseHostPort(listen);
  if (!parsed) throw new StartupError(`--stun-alt-listen: cannot parse '${listen}'`);
  const hostname = parsed.host === "" ? "::" : parsed.host;
  let socket: udp.Socket<"uint8array">;
  try {
    socket = await Bun.udpSocket({
      hostname,
      port: parsed.port,
      binaryType: "uint8array",
      socket: {
        data(s, data, port, address) {
          const outcome = responder.handle(data, { address, port }, clock.now());
          if (outcome.kind === "answer") s.send(outcome.data, port, address);
        },
        // ICMP errors for answers to forged sources: nothing to do.
        error() {},
      },
    });
  } catch (error) {
    throw new StartupError(`cannot listen on udp ${listen} for --stun-alt-listen: ${(error as Error).message}`);
  }
  return {
    local: { address: hostname, port: socket.port },
    close: () => socket.close(),
  };
}
