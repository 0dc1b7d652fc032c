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
  /** Session or peer idle time that is not a finite number >= 0. */
  BadIdle: "bad-idle",
  /** The peers column is not a JSON array of `{ address, port, idleMs, proven? }` with those types. */
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
  idle_ms: unknown;
  peers: unknown;
}

export interface CheckedRows {
  sessions: SessionSnapshot[];
  malformed: ProblemCounts;
}

/**
 * The rows that may be restored, peer addresses in the socket's form, and the others counted by
 * problem. Virtual peers' ports must be unique across rows: the bridge finds links by port.
 */
export function checkRows(rows: Iterable<StoredRow>, rules: RowRules = ANY_SOCKET): CheckedRows {
  const sessions: SessionSnapshot[] = [];
  const malformed: ProblemCounts = {};
  const virtualPorts = new Set<number>();
  for (const row of rows) {
    const checked = checkRow(row, rules);
    const problem = typeof checked === "string" ? checked : claimVirtualPort(checked, virtualPorts);
    if (problem) malformed[problem] = (malformed[problem] ?? 0) + 1;
    else sessions.push(checked as SessionSnapshot);
  }
  return { sessions, malformed };
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

/** One row on its own: the session to restore, or its first problem. */
export function checkRow(row: StoredRow, rules: RowRules): SessionSnapshot | RowProblem {
  const idProblem = sessionIdProblem(row.id);
  if (idProblem) return idProblem;
  if (!isIdle(row.idle_ms)) return RowProblem.BadIdle;
  const raw = jsonArray(row.peers);
  if (!raw) return RowProblem.BadPeers;
  if (raw.length < 1 || raw.length > 2) return RowProblem.PeerCount;
  const peers: PeerSnapshot[] = [];
  for (const item of raw) {
    const peer = checkPeer(item, rules);
    if (typeof peer === "string") return peer;
    peers.push(peer);
  }
  const [a, b] = peers;
  if (a && b && sameEndpoint(a, b)) return RowProblem.DuplicatePeer;
  if (a && b && isVirtualAddress(a.address) && isVirtualAddress(b.address)) return RowProblem.VirtualPeer;
  return { id: row.id as string, idleMs: row.idle_ms as number, peers };
}

const encoder = new TextEncoder();

/** The REG parser's verdict on an id, so a file holds exactly the ids a live REG can register. */
function sessionIdProblem(id: unknown): RowProblem | undefined {
  if (typeof id !== "string") return RowProblem.BadId;
  const reg = parseReg(encoder.encode(`REG:${id}`));
  if (!reg.ok) return reg.code === RefusalCode.EmptyId ? RowProblem.EmptyId : reg.code === RefusalCode.LongId ? RowProblem.LongId : RowProblem.BadId;
  // The parser takes off a line ending and a cookie: an id that ends in either came from no REG.
  return reg.sessionId === id && reg.cookie === undefined ? undefined : RowProblem.BadId;
}

function isIdle(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function jsonArray(text: unknown): unknown[] | undefined {
  if (typeof text !== "string") return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function checkPeer(item: unknown, rules: RowRules): PeerSnapshot | RowProblem {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return RowProblem.BadPeers;
  const { address, port, idleMs, proven } = item as Record<string, unknown>;
  if (typeof address !== "string" || typeof port !== "number" || typeof idleMs !== "number") return RowProblem.BadPeers;
  if (proven !== undefined && typeof proven !== "boolean") return RowProblem.BadPeers;
  if (!isIdle(idleMs)) return RowProblem.BadIdle;
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
  const version = isIP(host);
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

function isVirtualAddress(address: string): boolean {
  return address.startsWith(VIRTUAL_ADDRESS_PREFIX);
}
