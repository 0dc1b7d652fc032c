import type { Direction, Peer } from "./types.ts";

/** The other peer of a paired session. */
export function partnerOf(peer: Peer): Peer | undefined {
  const peers = peer.session.peers;
  if (peers.length !== 2) return undefined;
  return peers[0] === peer ? peers[1] : peers[0];
}

/** Which of its session's directions the peer's datagrams travel: the first peer is the one that created it. */
export function directionOf(peer: Peer): Direction {
  return peer.session.peers[0] === peer ? "first_to_second" : "second_to_first";
}
