/**
 * Rows of a state file as the relay may restore them. Each row is held to the rules a live
 * registration meets (the id as parseReg accepts it, one or two distinct peers at addresses the
 * socket can reach), so a damaged or edited file cannot restore what the relay would never have
 * created. Pure: no I/O, no logger.
 */
import { isIP } from "node:net";
import { VIRTUAL_ADDRESS_PREFIX } from "../fleet/bridge.ts";
import { type Endpoint, hostOf, parseHostPort, sameEndpoint } from "../net/address.ts";
import { RefusalCode } from "../protocol/errors.ts";
import { parseReg } from "../protocol/reg.ts";
import type { SessionSnapshot } from "../sessions/table.ts";

/** Why a row was not restored; the label it is counted under. */
export const RowProblem = {
  /** Session ids a live REG would refuse (the REG parser's own codes). */
  EmptyId: RefusalCode.EmptyId,
  LongId: RefusalCode.LongId,
  BadId: RefusalCode.BadId,
  /** A session or peer time that is not a finite number >= 0 (an idle time, or an instant in format 2). */
  BadIdle: "bad-idle",
  /**
   * The peers column is not a JSON array of `{ address, port, seenAtMs, proven? }` (format 1:
   * `idleMs` for `seenAtMs`) with those types, or is longer than MAX_PEERS_TEXT.
   */
  BadPeers: "bad-peers",
  /** No peer, or more than two. */
  PeerCount: "peer-count",
  /** A peer address that is not an IP address. */
  BadAddress: "bad-address",
  /** A peer port that is not an integer in 1..65535. */
  BadPort: "bad-port",
  /** A peer of an address family the socket cannot send to (IPv6 on an IPv4 socket, and the reverse). */
  WrongFamily: "wrong-family",
  /** Both peers at one transport address. */
  DuplicatePeer: "duplicate-peer",
  /**
   * A `fleet:<relay>` peer this relay cannot restore: not a fleet member, `<relay>` not ip:port,
   * port not a positive integer, two in one session, or a port another row's virtual peer has.
   */
  VirtualPeer: "virtual-peer",
  /** Valid by these rules but refused by the data plane when its routes were installed. */
  PlaneRefused: "plane-refused",
} as const;
export type RowProblem = (typeof RowProblem)[keyof typeof RowProblem];

export type ProblemCounts = Partial<Record<RowProblem, number>>;

/** What restored sessions must fit. */
export interface RestoreContext {
  /** The bound socket as the data plane reports it (`relay.local`). */
  socket: Endpoint;
  /** This relay is a fleet member: bridged sessions' virtual `fleet:<relay>` peers come back. */
  fleet: boolean;
}

/**
 * Which peer addresses a socket reaches: "ipv4" (bound to 0.0.0.0 or an IPv4 address), "dual"
 * (bound to `::`; IPv4 peers appear as `::ffff:a.b.c.d`), "ipv6" (bound to one IPv6 address),
 * "unknown" (not told: addresses are kept as written, either family).
 */
export type SocketFamily = "ipv4" | "dual" | "ipv6" | "unknown";

export interface RowRules {
  family: SocketFamily;
  virtualPeers: boolean;
}

/** Rules when nothing is known about the socket: every check but the address family. */
export const ANY_SOCKET: RowRules = { family: "unknown", virtualPeers: true };

export function rowRules(context: RestoreContext | undefined): RowRules {
  return context ? { family: socketFamily(context.socket), virtualPeers: context.fleet } : ANY_SOCKET;
}

export function socketFamily(socket: Endpoint): SocketFamily {
  const version = isIP(socket.address);
  if (version === 4) return "ipv4";
  if (version !== 6) return "unknown";
  // Both planes open `::` dual-stack; a socket bound to a mapped address speaks IPv4 in that form.
  const unspecified = /^[0:]+$/.test(socket.address);
  return unspecified || hostOf(socket.address) !== socket.address.toLowerCase() ? "dual" : "ipv6";
}

/** A row as the store reads it: SQLite values of any type. */
export interface StoredRow {
  id: unknown;
  /** The session's time column: `idle_ms` in format 1, `active_at_ms` in format 2. */
  time: unknown;
  peers: unknown;
}

/**
 * Longest peers column read: two peers of the longest form (a `fleet:[IPv6]:port` relay, a
 * 16-digit link number, an instant, `proven`) take under 300 characters. A longer one is refused
 * before it is parsed, so a damaged file cannot make a restore parse megabytes per row.
 */
export const MAX_PEERS_TEXT = 1024;

/**
 * How a format stores times, and how they become idle times now. Format 1 stored idle times as
 * of its save (`idleMs` in peers), format 2 stores wall-clock instants (`seenAtMs` in peers).
 */
export interface RowTimes {
  /** The peers' field that holds their time. */
  peerField: "idleMs" | "seenAtMs";
  /** Idle milliseconds now for a stored time, or undefined when it is not a valid time. */
  idle(stored: unknown): number | undefined;
}

/** Format 1: idle times as saved, plus `downMs`, the time since the save. */
export function idleTimes(downMs = 0): RowTimes {
  return { peerField: "idleMs", idle: (stored) => (isTime(stored) ? stored + downMs : undefined) };
}

/**
 * Format 2: instants in wall-clock milliseconds, idle for `nowMs` minus the instant. An instant
 * after `nowMs` (the clock was set back) counts as idle 0: the session gets a full timeout.
 */
export function instantTimes(nowMs: number): RowTimes {
  return { peerField: "seenAtMs", idle: (stored) => (isTime(stored) ? Math.max(0, nowMs - stored) : undefined) };
}

/**
 * Checks rows one by one, counting the refused ones by problem. Virtual peers' ports must be
 * unique across rows (the bridge finds links by port): the first row to claim one keeps it.
 */
export class RowChecker {
  readonly malformed: ProblemCounts = {};
  private readonly virtualPorts = new Set<number>();

  constructor(
    private readonly rules: RowRules = ANY_SOCKET,
    private readonly times: RowTimes = idleTimes(),
  ) {}

  /** The session to restore, peer addresses in the socket's form; undefined when refused (counted). */
  check(row: StoredRow): SessionSnapshot | undefined {
    const checked = checkRow(row, this.rules, this.times);
    const problem = typeof checked === "string" ? checked : claimVirtualPort(checked, this.virtualPorts);
    if (!problem) return checked as SessionSnapshot;
    this.malformed[problem] = (this.malformed[problem] ?? 0) + 1;
    return undefined;
  }
}

export interface CheckedRows {
  sessions: SessionSnapshot[];
  malformed: ProblemCounts;
}

/** The rows that may be restored and the others counted by problem (RowChecker over all of them). */
export function checkRows(rows: Iterable<StoredRow>, rules: RowRules = ANY_SOCKET, times: RowTimes = idleTimes()): CheckedRows {
  const checker = new RowChecker(rules, times);
  const sessions: SessionSnapshot[] = [];
  for (const row of rows) {
    const session = checker.check(row);
    if (session) sessions.push(session);
  }
  return { sessions, malformed: checker.malformed };
}

function claimVirtualPort(session: SessionSnapshot, taken: Set<number>): RowProblem | undefined {
  const virtual = session.peers.find((p) => isVirtualAddress(p.address));
  if (!virtual) return undefined;
  if (taken.has(virtual.port)) return RowProblem.VirtualPeer;
  taken.add(virtual.port);
  return undefined;
}

export function countOf(problems: ProblemCounts): number {
  let n = 0;
  for (const count of Object.values(problems)) n += count ?? 0;
  return n;
}

type PeerSnapshot = SessionSnapshot["peers"][number];

/** One row on its own: the session to restore (idle times as `times` reads them), or its first problem. */
export function checkRow(row: StoredRow, rules: RowRules, times: RowTimes = idleTimes()): SessionSnapshot | RowProblem {
  const idProblem = sessionIdProblem(row.id);
  if (idProblem) return idProblem;
  const idleMs = times.idle(row.time);
  if (idleMs === undefined) return RowProblem.BadIdle;
  const raw = jsonArray(row.peers);
  if (!raw) return RowProblem.BadPeers;
  if (raw.length < 1 || raw.length > 2) return RowProblem.PeerCount;
  const peers: PeerSnapshot[] = [];
  for (const item of raw) {
    const peer = checkPeer(item, rules, times);
    if (typeof peer === "string") return peer;
    peers.push(peer);
  }
  const [a, b] = peers;
  if (a && b && sameEndpoint(a, b)) return RowProblem.DuplicatePeer;
  if (a && b && isVirtualAddress(a.address) && isVirtualAddress(b.address)) return RowProblem.VirtualPeer;
  return { id: row.id as string, idleMs, peers };
}

const encoder = new TextEncoder();

/**
 * Ids the REG parser takes as they are: 1 to 128 printable ASCII characters, no space (so no
 * cookie) and no line ending. The parser is asked only about the others, for its refusal code.
 */
const PLAIN_ID = /^[\x21-\x7e]{1,128}$/;

/** The REG parser's verdict on an id, so a file holds exactly the ids a live REG can register. */
function sessionIdProblem(id: unknown): RowProblem | undefined {
  if (typeof id !== "string") return RowProblem.BadId;
  if (PLAIN_ID.test(id)) return undefined;
  const reg = parseReg(encoder.encode(`REG:${id}`));
  if (!reg.ok) return reg.code === RefusalCode.EmptyId ? RowProblem.EmptyId : reg.code === RefusalCode.LongId ? RowProblem.LongId : RowProblem.BadId;
  // The parser takes off a line ending and a cookie: an id that ends in either came from no REG.
  return reg.sessionId === id && reg.cookie === undefined ? undefined : RowProblem.BadId;
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function jsonArray(text: unknown): unknown[] | undefined {
  if (typeof text !== "string" || text.length > MAX_PEERS_TEXT) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function checkPeer(item: unknown, rules: RowRules, times: RowTimes): PeerSnapshot | RowProblem {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return RowProblem.BadPeers;
  const { address, port, proven, [times.peerField]: time } = item as Record<string, unknown>;
  if (typeof address !== "string" || typeof port !== "number" || typeof time !== "number") return RowProblem.BadPeers;
  if (proven !== undefined && typeof proven !== "boolean") return RowProblem.BadPeers;
  const idleMs = times.idle(time);
  if (idleMs === undefined) return RowProblem.BadIdle;
  const form = isVirtualAddress(address) ? virtualPeer(address, port, rules) : realPeer(address, port, rules.family);
  if (form.problem) return form.problem;
  return proven === undefined ? { address: form.address, port, idleMs } : { address: form.address, port, idleMs, proven };
}

type Form = { address: string; problem?: undefined } | { problem: RowProblem };

function realPeer(address: string, port: number, family: SocketFamily): Form {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return { problem: RowProblem.BadPort };
  return socketForm(address, family);
}

/** Kept as written: the coordinator compares `<relay>` with relay ids as the directory spells them. */
function virtualPeer(address: string, port: number, rules: RowRules): Form {
  if (!rules.virtualPeers || !Number.isSafeInteger(port) || port < 1) return { problem: RowProblem.VirtualPeer };
  const relay = parseHostPort(address.slice(VIRTUAL_ADDRESS_PREFIX.length));
  if (!relay || relay.port === 0) return { problem: RowProblem.VirtualPeer };
  const reachable = socketForm(relay.host, rules.family);
  if (reachable.problem) return { problem: reachable.problem === RowProblem.WrongFamily ? reachable.problem : RowProblem.VirtualPeer };
  return { address };
}

/** The address as the socket reports a datagram from it, so the table finds the restored peer. */
function socketForm(address: string, family: SocketFamily): Form {
  const lower = address.toLowerCase();
  const host = hostOf(lower);
  const version = ipVersion(host);
  if (version === 0) return { problem: RowProblem.BadAddress };
  switch (family) {
    case "ipv4":
      return version === 4 ? { address: host } : { problem: RowProblem.WrongFamily };
    case "ipv6":
      return version === 6 ? { address: host } : { problem: RowProblem.WrongFamily };
    case "dual":
      return { address: version === 4 ? `::ffff:${host}` : host };
    case "unknown":
      return { address: lower };
  }
}

/** Dotted IPv4 as node:net's isIP accepts it (no leading zeros); a million rows skip its slower path. */
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function ipVersion(host: string): number {
  return DOTTED_QUAD.test(host) ? 4 : isIP(host);
}

function isVirtualAddress(address: string): boolean {
  return address.startsWith(VIRTUAL_ADDRESS_PREFIX);
}
