import type { Endpoint } from "../net/address.ts";
import type { DropReason, RefusalCode } from "../protocol/errors.ts";
import type { PeerCids } from "./cid-evidence.ts";

export interface Clock {
  /** Milliseconds, monotonic enough for timeouts. */
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

export interface HeldDatagram {
  data: Uint8Array;
  at: number;
}

export interface Peer {
  readonly id: number;
  readonly session: Session;
  endpoint: Endpoint;
  /** Last REG or datagram seen from this peer. */
  lastSeen: number;
  /**
   * Proved it receives at `endpoint`: a REG from there carried a valid cookie (or, in verified
   * mode, the peer moved there on connection-ID evidence from a proven address).
   */
  proven: boolean;
  /** Its QUIC connection IDs, once it sent a QUIC-looking packet the table saw. */
  cids: PeerCids | undefined;
  /**
   * Hash of the peer token its REGs carry (`peer=`), if any: who it is beyond its address, so a
   * fleet can tell the same peer registering at another relay (docs/protocol.md, "Peer token").
   */
  identity: string | undefined;
}

export interface Session {
  readonly id: string;
  peers: Peer[];
  lastActivity: number;
  /** Datagrams the first peer sent before the second registered. */
  held: HeldDatagram[];
  heldBytes: number;
  /** Confirmed connection IDs of this session's peers (keys in the table's CID index). */
  cids: string[];
  /** Its slot in the table's store (compact-store.ts): its place in the order of last activity. */
  slot: number;
}

/**
 * Most sessions never hold a datagram nor learn a connection ID: they share these empty arrays
 * until they do (saves two arrays per session at 100k sessions). Never push into them.
 */
export const NONE_HELD: HeldDatagram[] = [];
export const NO_CIDS: string[] = [];

export type RebindKind = "reg" | "cid" | "quiet";

/** Which way a route carries a session's datagrams: `first` is the peer that created the session. */
export type Direction = "first_to_second" | "second_to_first";

export interface SessionLimits {
  /** Idle time after which a session and all its state are removed. */
  timeoutMs: number;
  /**
   * Idle time after which a probe's session (an id `isProbeSessionId` recognises) is removed, when
   * shorter than `timeoutMs`: `quic-relay probe` leaves nothing behind for long.
   */
  probeTimeoutMs: number;
  /** Early datagrams held per unpaired session. */
  heldMaxCount: number;
  heldMaxBytes: number;
  heldMaxAgeMs: number;
  /** Early datagram bytes held across all sessions (each datagram also counts its overhead). */
  heldMaxTotalBytes: number;
  /** Early datagram bytes held for the sessions of one source host (IPv4 address or IPv6 /64). */
  heldMaxHostBytes: number;
  /** Confirmed connection IDs remembered per session. */
  maxCidsPerSession: number;
  /**
   * A peer's destination connection ID counts as evidence once the partner answered and the peer
   * kept sending with that ID for this long after the answer (docs/protocol.md).
   */
  cidAnswerMs: number;
  /** A packet from the address a peer left on connection-ID evidence, this soon after, is a dispute. */
  cidReturnMs: number;
  /** After a dispute, the peer is not moved on connection-ID evidence for this long. */
  cidDisputeMs: number;
  /**
   * Bare data from a new port of a host follows the only peer on that host once that peer has
   * been silent this long; a negative value turns the rule off.
   */
  rebindQuietMs: number;
  /**
   * Verified mode: a REG that would add or move a peer must carry a valid cookie; without one it
   * is answered with a challenge (docs/protocol.md, "Return routability").
   */
  requireProof: boolean;
  /**
   * A member whose session had traffic this recently is not moved into another session by a REG
   * without a cookie (a forged REG must not steal or disturb a live session).
   */
  memberHoldMs: number;
  /**
   * A settled session (table.compact()) is packed into the compact store once it was not active
   * for this long; a negative value keeps every session expanded. Short: a session packed too
   * soon costs one expansion when the rules need it again, while every session registered in the
   * last compactAfterMs is a dozen objects (at 50k REG/s and 1 s, 50k sessions: peak RSS at 100k
   * sessions 200 MB, and what the garbage collector kept after it 4 MB more than at 100 ms).
   */
  compactAfterMs: number;
}

export const defaultSessionLimits: SessionLimits = {
  timeoutMs: 300_000,
  probeTimeoutMs: 10_000,
  heldMaxCount: 8,
  heldMaxBytes: 16 * 1024,
  heldMaxAgeMs: 10_000,
  heldMaxTotalBytes: 32 * 1024 * 1024,
  heldMaxHostBytes: 1024 * 1024,
  maxCidsPerSession: 8,
  cidAnswerMs: 500,
  cidReturnMs: 60_000,
  cidDisputeMs: 120_000,
  rebindQuietMs: 1000,
  requireProof: false,
  memberHoldMs: 30_000,
  compactAfterMs: 100,
};

/**
 * Session ids `quic-relay probe` registers: `probe-` and a random UUID in its canonical lowercase
 * form (what crypto.randomUUID() returns). The wire protocol has no way to unregister, and a new
 * datagram for it would need proof of the sender's address (in plain mode anyone can forge a
 * peer's source). The id itself marks the session short-lived instead: the relay expires it after
 * `probeTimeoutMs` of silence. Only the session of that id is affected, and knowing an id already
 * gives its holder every power over that session, so the mark takes nothing from anyone.
 */
const PROBE_SESSION_ID = /^probe-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isProbeSessionId(id: string): boolean {
  return id.length === 42 && PROBE_SESSION_ID.test(id);
}

/** What an admission check may read of the table. */
export interface TableView {
  readonly sessionCount: number;
  /** Peers (of any session) whose address is in this source group (sourceGroup: IPv4 address or IPv6 /64). */
  peersInGroup(group: string): number;
}

/** Decides whether a new session may be created (limits); returns a refusal or undefined. */
export type AdmissionCheck = (sessionId: string, from: Endpoint, raw: Uint8Array, view: TableView) => RefusalCode | undefined;

/**
 * Policy applied by the relay to REG datagrams before the session rules (security, limits).
 * Every hook is optional; without a policy the relay speaks the original protocol.
 */
export interface RegPolicy {
  /** REG tokens are required; they imply verified mode (a token is no proof of the address). */
  readonly authEnabled?: boolean;
  /** Every REG, before parsing. False refuses it with `ERR rate`. Must keep bounded state. */
  allowReg?(from: Endpoint, now: number): boolean;
  /** Maps the REG's session field (what follows `REG:`) to a session id, or refuses it (auth). */
  authenticate?(field: string, from: Endpoint, now: number): { ok: true; sessionId: string } | { ok: false; code: RefusalCode };
  /** New sessions only: limits on sessions, per-host sessions. */
  admit?: AdmissionCheck;
}

/** What becomes of a REG that finds its session full while one peer stands for a peer on another relay. */
export type StandInVerdict =
  /** That relay is gone: the stand-in gives way to the registrant. */
  | "gone"
  /** Being found out: the REG is dropped now and offered again once the answer is known. */
  | "checking"
  /** That relay is alive: the REG is refused as any third host's. */
  | "live";

/**
 * Peers in the table that stand for peers registered on another relay (a fleet's bridge). A peer
 * whose relay died registers again elsewhere: on the relay that holds its partner, it takes the
 * stand-in's place once that relay is known to be gone.
 */
export interface StandIns {
  isStandIn(endpoint: Endpoint): boolean;
  check(sessionId: string, standIn: Endpoint, from: Endpoint, raw: Uint8Array): StandInVerdict;
}

/** What a REG carried as proof that its sender receives at its address. */
export type RegProof = "valid" | "invalid" | "none";

/** What the table asks the outside world to do. Implemented by the relay; recorded by tests. */
export interface SessionSink {
  reply(to: Endpoint, data: Uint8Array): void;
  forward(to: Endpoint, data: Uint8Array): void;
  /**
   * Datagrams from `peer.endpoint` now go to `to.endpoint`. `to.proven` tells whether the
   * destination proved it receives there (unproven destinations get a bound on unanswered bytes);
   * `direction` says which of the session's two directions this route carries; `cidLength` is
   * the length of the connection IDs `to` issued (0: unknown), which `peer`'s short headers carry
   * and whose changes the data plane reports.
   */
  route(peer: Peer, to: Peer, direction: Direction, cidLength: number): void;
  /**
   * Whether every change of the destination connection ID in `peer`'s datagrams since `since` was
   * reported (the data plane's observation budget for its route lasts, no control datagram lost).
   */
  observing(peer: Peer, since: number): boolean;
  /**
   * The route of the peer with route id `peerId` goes; `standIn`: the peer stands in for a peer of
   * another relay (its route is the fleet bridge's, not the data plane's).
   */
  unroute(peerId: number, standIn: boolean): void;
  /** Ask `to` to prove it receives there: a RETRY with a cookie for `sessionId`. */
  challenge(to: Endpoint, sessionId: string): void;
  event(event: SessionEvent): void;
}

export type SessionEvent =
  /** A REG was acknowledged (new member, keepalive or REG rebind); comes with or after the other events of that REG. */
  | { kind: "registered"; session: string; peer: Endpoint }
  | { kind: "created"; session: string; peer: Endpoint }
  | { kind: "paired"; session: string; peers: [Endpoint, Endpoint]; held: number }
  | { kind: "rebound"; session: string; via: RebindKind; from: Endpoint; to: Endpoint }
  | { kind: "moved"; from: string; to: string; peer: Endpoint }
  | { kind: "refused"; session: string | undefined; code: RefusalCode; peer: Endpoint }
  | { kind: "expired"; session: string; idleMs: number; peers: number }
  | { kind: "relay-pair"; session: string; peers: Endpoint[] }
  /** Two addresses of one host claimed a peer with different confirmed connection IDs. */
  | { kind: "cid-dispute"; session: string; kept: Endpoint; refused: Endpoint };

export interface SessionStats {
  sessionsCreated: number;
  sessionsPaired: number;
  sessionsExpired: number;
  rebinds: Record<RebindKind, number>;
  refusals: Partial<Record<RefusalCode, number>>;
  drops: Partial<Record<DropReason, number>>;
  heldAccepted: number;
  heldDelivered: number;
  /** REGs answered with a RETRY (cookie challenge). */
  challenges: number;
  /** Stand-ins for peers on a relay that is gone, replaced by the peer registering here (fleet failover). */
  standInsReplaced: number;
}
