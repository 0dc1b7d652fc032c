import type { HostPort } from "../net/address.ts";
import { isAck, parseErr, parseMove, parseRetry } from "../protocol/replies.ts";

/**
 * What a datagram from the relay means to a client. Once paired, the relay forwards everything
 * else unchanged, so only an exact `ACK\n`, an exact `RETRY <cookie>\n`, a short `ERR ...\n` or
 * an exact `MOVE <ip>:<port>\n` is control; the rest is data.
 */
export type RelayReply =
  | { kind: "ack" }
  | { kind: "retry"; cookie: string }
  | { kind: "err"; code: string }
  | { kind: "move"; to: HostPort }
  | { kind: "data" };

export function classifyRelayDatagram(data: Uint8Array): RelayReply {
  if (isAck(data)) return { kind: "ack" };
  const cookie = parseRetry(data);
  if (cookie !== undefined) return { kind: "retry", cookie };
  const code = parseErr(data);
  if (code !== undefined) return { kind: "err", code };
  const to = parseMove(data);
  if (to !== undefined) return { kind: "move", to };
  return { kind: "data" };
}
