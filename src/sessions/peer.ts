import type { Peer } from "./types.ts";

/** The other peer of a paired session. */
export function partnerOf(peer: Peer): Peer | undefined {
  const peers = peer.session.peers;
  if (peers.length !== 2) return undefined;
  return peers[0] === peer ? peers[1] : peers[0];
}
