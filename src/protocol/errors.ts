/**
 * Reasons a datagram is refused or dropped. The code is what goes on the wire after `ERR `
 * (when the request is long enough to carry it) and the label under which refusals are counted.
 */
export const RefusalCode = {
  /** REG whose session id is empty. */
  EmptyId: "empty-id",
  /** REG whose session id is longer than MAX_SESSION_ID_LENGTH. */
  LongId: "long-id",
  /** REG whose session id has bytes outside printable ASCII. */
  BadId: "bad-id",
  /** REG for a session that already has two live peers, from a host that is neither. */
  Full: "full",
  /** REG refused by an admission limit (sessions, per-IP, rate). */
  Limit: "limit",
  /** REG refused by authentication. */
  Auth: "auth",
  /** REG over the per-source registration rate. */
  Rate: "rate",
  /** REG for another session from an address whose own session is live (docs/protocol.md). */
  Busy: "busy",
  /** Verified mode: a REG without a valid cookie too short to be answered with RETRY. */
  Short: "short",
} as const;
export type RefusalCode = (typeof RefusalCode)[keyof typeof RefusalCode];

/** Datagrams dropped without a reply; counted by reason. */
export const DropReason = {
  /** Not a REG, from an address that belongs to no session. */
  UnknownSource: "unknown-source",
  /** Early datagram beyond the hold limits of an unpaired session. */
  EarlyOverflow: "early-overflow",
  /** Held early datagram that aged out or was discarded with its session. */
  EarlyExpired: "early-expired",
  /** Refusal whose reply would exceed the request: dropped silently instead. */
  SilentRefusal: "silent-refusal",
  /** Held early datagram pushed out so a host under its fair share could hold one. */
  EarlyEvicted: "early-evicted",
  /** A relay-protocol line (ACK, ERR, RETRY) sent to the relay: never forwarded. */
  RelayLine: "relay-line",
  /** REG from an address that is a relay (a fleet member, this relay itself): never registered. */
  RelayAddress: "relay-address",
  /** A pairing of two addresses that both speak the relay protocol (a forwarding loop): refused or undone. */
  RelayPair: "relay-pair",
  /** A datagram claiming, by connection ID, a peer whose connection-ID moves are suspended after a dispute. */
  CidDisputed: "cid-disputed",
  /** REG from an address with no valid cookie while a RETRY could not be sent (global RETRY budget spent). */
  RetryBudget: "retry-budget",
  /** REG for a full session whose other peer is on a relay being checked for liveness; offered again once known. */
  StandInCheck: "stand-in-check",
  /** REG with the `move` flag for a new session, held while the fleet's directory says where its partner is; answered MOVE or offered again. */
  DirectoryLookup: "directory-lookup",
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];
