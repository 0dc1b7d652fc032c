import { isLongHeader, readLongHeaderIds, shortHeaderDcid } from "../protocol/quic.ts";
import { partnerOf } from "./peer.ts";
import { hostOf } from "../net/address.ts";
import { NO_CIDS, type Peer, type Session } from "./types.ts";

/**
 * QUIC connection IDs seen in clear in long headers, mapped to the peer that sends packets
 * carrying that destination CID. A packet from an unknown address whose DCID is known, from the
 * same host as that peer, is evidence that the peer's NAT binding moved.
 * A CID seen in two sessions is ambiguous and forgotten: ambiguous evidence is no evidence.
 */
export class CidIndex {
  private readonly senders = new Map<string, Peer>();
  /** How many indexed CIDs have each length; short headers do not carry the DCID length. */
  private readonly lengths = new Map<number, number>();

  get size(): number {
    return this.senders.size;
  }

  learn(peer: Peer, partner: Peer | undefined, data: Uint8Array, maxPerSession: number): void {
    const ids = readLongHeaderIds(data);
    if (!ids) return;
    this.add(ids.dcid, peer, maxPerSession);
    if (partner) this.add(ids.scid, partner, maxPerSession);
  }

  /** The peer on `host` that this packet's DCID says sent it, if any. */
  claimant(data: Uint8Array, host: string): Peer | undefined {
    if (data.length === 0) return undefined;
    if (isLongHeader(data)) {
      const ids = readLongHeaderIds(data);
      const peer = ids && this.senders.get(ids.dcid);
      return peer && hostOf(peer.endpoint.address) === host ? peer : undefined;
    }
    for (const length of this.lengths.keys()) {
      const dcid = shortHeaderDcid(data, length / 2);
      const peer = dcid === undefined ? undefined : this.senders.get(dcid);
      if (peer && hostOf(peer.endpoint.address) === host) return peer;
    }
    return undefined;
  }

  forgetSession(session: Session): void {
    for (const cid of session.cids) {
      const peer = this.senders.get(cid);
      if (peer && peer.session === session) this.delete(cid);
    }
    session.cids = NO_CIDS;
  }

  private add(cid: string, peer: Peer, maxPerSession: number): void {
    // Short CIDs (0-3 bytes) are too easy to collide with to count as evidence.
    if (cid.length < 8) return;
    const known = this.senders.get(cid);
    if (known === peer) return;
    if (known) {
      this.delete(cid);
      return;
    }
    const session = peer.session;
    if (session.cids.length >= maxPerSession || !partnerOf(peer)) return;
    this.senders.set(cid, peer);
    this.lengths.set(cid.length, (this.lengths.get(cid.length) ?? 0) + 1);
    if (session.cids === NO_CIDS) session.cids = [];
    session.cids.push(cid);
  }

  private delete(cid: string): void {
    if (!this.senders.delete(cid)) return;
    const n = (this.lengths.get(cid.length) ?? 1) - 1;
    if (n <= 0) this.lengths.delete(cid.length);
    else this.lengths.set(cid.length, n);
  }
}
