import type { Endpoint } from "../net/address.ts";

/**
 * What the table knows of one peer's QUIC connection IDs (docs/protocol.md, "Connection-ID
 * evidence"). Allocated on the first QUIC-looking packet; peers that never send one carry nothing.
 */
export interface PeerCids {
  /**
   * Length in bytes of the connection IDs this peer issued, from the SCID of its first long
   * header (never changed afterwards); its partner's short headers carry one of them. -1: unknown.
   */
  ownLength: number;
  /** The destination ID the peer's short headers carry now (hex), as last reported. */
  current: string | undefined;
  /** When `current` was first reported. */
  since: number;
  /** When the partner was first seen sending after `since`; NaN until then. */
  answeredAt: number;
  /** IDs that met the rule, oldest first, with the time they did. */
  confirmed: { cid: string; at: number }[];
  /** The address the peer left on its last move on connection-ID evidence, when, and the ID that moved it. */
  left: Endpoint | undefined;
  leftAt: number;
  movedBy: string | undefined;
  /** Moves on connection-ID evidence are not followed before this time (two addresses claimed the peer). */
  disputedUntil: number;
}

/** IDs shorter than this many bytes collide too easily to count as evidence. */
export const MIN_EVIDENCE_CID_BYTES = 4;
/** Confirmed IDs kept per peer; the oldest goes first. */
export const MAX_CONFIRMED_PER_PEER = 4;

export function newPeerCids(): PeerCids {
  return {
    ownLength: -1,
    current: undefined,
    since: 0,
    answeredAt: Number.NaN,
    confirmed: [],
    left: undefined,
    leftAt: 0,
    movedBy: undefined,
    disputedUntil: 0,
  };
}

/** A newly reported destination ID: its time starts now, unanswered. A repeat changes nothing. */
export function noteDcid(c: PeerCids, dcid: string, now: number): void {
  if (c.current === dcid) return;
  c.current = dcid;
  c.since = now;
  c.answeredAt = Number.NaN;
}

/** The partner was heard at `now`: the first time after `current` appeared is its answer. */
export function noteAnswer(c: PeerCids, now: number): void {
  if (c.current !== undefined && Number.isNaN(c.answeredAt) && now > c.since) c.answeredAt = now;
}

/**
 * Whether the peer's current ID has met the rule, given that the peer was heard sending at or
 * after `heardFrom`: the partner answered, and the peer kept sending with the same ID for at least
 * `answerMs` after that, with no other ID reported in between.
 */
export function meetsRule(c: PeerCids, heardFrom: number, answerMs: number): boolean {
  return c.current !== undefined && !Number.isNaN(c.answeredAt) && heardFrom >= c.answeredAt + answerMs && !isConfirmed(c, c.current);
}

export function isConfirmed(c: PeerCids, cid: string): boolean {
  return c.confirmed.some((e) => e.cid === cid);
}

export function confirmedAt(c: PeerCids, cid: string): number {
  return c.confirmed.find((e) => e.cid === cid)?.at ?? Number.POSITIVE_INFINITY;
}
