import { isAck, parseErr, parseRetry } from "../protocol/replies.ts";

/**
 * What a datagram from the relay means to a client. Once paired, the relay forwards everything
 * else unchanged, so only an exact `ACK\n`, an exact `RETRY <cookie>\n` or a short `ERR ...\n`
 * is control; the rest is data.
 */
export type RelayReply =
  | { kind: "ack" }
  | { kind: "retry"; cookie: string }
  | { kind: "err"; code: string }
  | { kind: "data" };

export function classifyRelayDatagram(data: Uint8Array): RelayReply {
  if (isAck(data)) return { kind: "ack" };
  const cookie = parseRetry(data);
  if (cookie !== undefined) return { kind: "retry", cookie };
  const code = parseErr(data);
  if (code !== undefined) return { kind: "err", code };
  return { kind: "data" };
}
