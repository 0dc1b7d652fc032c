import { isLongHeader, readLongHeaderIds, shortHeaderDcid } from "../protocol/quic.ts";
import { hostOf } from "../net/address.ts";
import { NO_CIDS, type Peer, type Session } from "./types.ts";
import { CidSenders } from "./cid-senders.ts";

/** Ambiguous IDs remembered, so that neither claimant gets one back. */
const MAX_AMBIGUOUS = 4096;

/** A packet's destination connection ID matched a confirmed ID of `peer`. */
export interface Claim {
  peer: Peer;
  cid: string;
}

/**
 * Confirmed QUIC connection IDs (docs/protocol.md, "Connection-ID evidence"), mapped to the peer
 * whose packets carry them. A packet from an unknown address whose DCID is confirmed for a peer on
 * the same host is evidence that the peer's NAT binding moved. An ID confirmed in two sessions is
 * ambiguous and forgotten: ambiguous evidence is no evidence.
 */
export class CidIndex {
  /** A peer, or the ref of a peer whose session is compact (see repoint); in typed arrays (cid-senders.ts). */
  private readonly senders = new CidSenders<Peer>();
  /** How many indexed IDs have each length (hex characters); short headers do not carry it. */
  private readonly lengths = new Map<number, number>();
  /** IDs claimed by two peers: never indexed again (the oldest are forgotten past a bound). */
  private readonly ambiguous = new Set<string>();

  /**
   * `expand(ref)` gives the peer of a compact session as an object (expanding its session, which
   * re-points its IDs here); `addressOf(ref)` its address, without expanding. Without a compact
   * store, no ref is ever indexed.
   */
  constructor(
    private readonly expand: (ref: number) => Peer = () => {
      throw new Error("no compact store");
    },
    private readonly addressOf: (ref: number) => string = () => "",
  ) {}

  get size(): number {
    return this.senders.size;
  }

  /**
   * An indexed ID now names its sender as `to(sender)`: the ref of its peer when the peer's
   * session is packed, the peer again when it is expanded. Nothing else changes.
   */
  repoint(cid: string, to: (sender: Peer | number) => Peer | number): void {
    this.senders.update(cid, to);
  }

  /** The peer `cid` is indexed for, as an object. */
  private sender(cid: string): Peer | undefined {
    const s = this.senders.get(cid);
    return typeof s === "number" ? this.expand(s) : s;
  }

  /** The peer on `host` whose confirmed ID this packet carries, if any. */
  claimant(data: Uint8Array, host: string): Claim | undefined {
    if (data.length === 0) return undefined;
    if (isLongHeader(data)) {
      const ids = readLongHeaderIds(data);
      return ids && this.match(ids.dcid, host);
    }
    for (const length of this.lengths.keys()) {
      const dcid = shortHeaderDcid(data, length / 2);
      const claim = dcid === undefined ? undefined : this.match(dcid, host);
      if (claim) return claim;
    }
    return undefined;
  }

  /** Indexes `cid` for `peer`; false when it is ambiguous or the session's share is used up. */
  add(cid: string, peer: Peer, maxPerSession: number): boolean {
    const known = this.sender(cid);
    if (known === peer) return true;
    if (known || this.ambiguous.has(cid)) {
      if (known) this.remove(cid, known);
      this.ban(cid);
      return false;
    }
    const session = peer.session;
    if (session.cids.length >= maxPerSession) return false;
    this.senders.set(cid, peer);
    this.lengths.set(cid.length, (this.lengths.get(cid.length) ?? 0) + 1);
    if (session.cids === NO_CIDS) session.cids = [];
    session.cids.push(cid);
    return true;
  }

  /** Never indexes `cid` again (it was claimed twice, or lost a dispute); forgets it now. */
  ban(cid: string): void {
    const peer = this.sender(cid);
    if (peer) this.remove(cid, peer);
    this.ambiguous.add(cid);
    if (this.ambiguous.size > MAX_AMBIGUOUS) this.ambiguous.delete(this.ambiguous.values().next().value!);
  }

  /** Forgets `cid` if it is indexed for `peer`. */
  remove(cid: string, peer: Peer): void {
    if (this.senders.get(cid) !== peer) return;
    this.delete(cid);
    const session = peer.session;
    session.cids = session.cids.filter((c) => c !== cid);
  }

  /** Forgets the IDs of an expanded session. */
  forgetSession(session: Session): void {
    for (const cid of session.cids) {
      const peer = this.senders.get(cid);
      if (typeof peer === "object" && peer.session === session) this.delete(cid);
    }
    session.cids = NO_CIDS;
  }

  private match(cid: string, host: string): Claim | undefined {
    const s = this.senders.get(cid);
    if (s === undefined || hostOf(typeof s === "number" ? this.addressOf(s) : s.endpoint.address) !== host) return undefined;
    return { peer: typeof s === "number" ? this.expand(s) : s, cid };
  }

  private delete(cid: string): void {
    if (!this.senders.delete(cid)) return;
    const n = (this.lengths.get(cid.length) ?? 1) - 1;
    if (n <= 0) this.lengths.delete(cid.length);
    else this.lengths.set(cid.length, n);
  }
}
