import { isAck, parseErr } from "../protocol/replies.ts";

/**
 * What a datagram from the relay means to a client. Once paired, the relay forwards everything
 * else unchanged, so only an exact `ACK\n` or a short `ERR ...\n` is control; the rest is data.
 */
export type RelayReply = { kind: "ack" } | { kind: "err"; code: string } | { kind: "data" };

export function classifyRelayDatagram(data: Uint8Array): RelayReply {
  if (isAck(data)) return { kind: "ack" };
  const code = parseErr(data);
  if (code !== undefined) return { kind: "err", code };
  return { kind: "data" };
}
