/** What RelayTunnel (tunnel.ts) is given and what it reports. */
import type { HostPort } from "../net/address.ts";
import type { RelayResolver } from "./relay-addresses.ts";
import type { RegistrationSettings } from "./registration.ts";

/**
 * `listen`: the local app sends to `local`; we forward to the relay and send replies back to the
 * app's most recent address. `forward`: relayed datagrams go to the local server at `target` from
 * one local socket; whatever the server sends back to that socket goes to the relay.
 */
export type TunnelMode = { kind: "listen"; local: HostPort } | { kind: "forward"; target: HostPort };

export interface TunnelLogger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** The tunnel left a relay; REGs and datagrams go to `to` from now on. */
export interface RelayChange {
  from: HostPort;
  to: HostPort;
  /** `from` stopped answering, or answered a REG with `MOVE <to>` (the partner's relay). */
  reason: "stopped-answering" | "moved";
  /** REGs in a row that `from` left unanswered (0 when moved). */
  unanswered: number;
}

export interface TunnelOptions {
  /**
   * The relay: one IP address, or a resolver (`relayResolver`) giving all its current addresses.
   * A resolver is called at start (the first address is used) and each time the relay in use stops
   * answering (`registration.silentAfter` REGs in a row), to pick another address to move to.
   * With a resolver the REGs carry the `move` flag (unless `registration.followMoves` is false),
   * and a `MOVE <relay>` reply is followed when it names one of the resolved addresses.
   */
  relay: HostPort | RelayResolver;
  sessionId: string;
  mode: TunnelMode;
  registration: RegistrationSettings;
  /** Local port of the relay-facing socket (0: any). */
  relayLocalPort?: number;
  /** App datagrams queued while the first registration is pending. */
  maxPending?: number;
  log: TunnelLogger;
  /** Each move to another relay address, as it happens (the registration there follows), with its reason. */
  onRelayChange?(change: RelayChange): void;
}

export interface TunnelStats {
  toRelayPackets: number;
  toRelayBytes: number;
  fromRelayPackets: number;
  fromRelayBytes: number;
  registrations: number;
  /** RETRYs answered on the way to an ACK (return-routability proof the relay asked for). */
  retries: number;
  /** Relay datagrams dropped because no app address is known yet (listen mode). */
  noAppDrops: number;
  /** App datagrams dropped while unregistered (queue full) or refused by the socket. */
  sendDrops: number;
  strayDrops: number;
  /** Errors reported by the sockets (ICMP unreachable and the like). */
  socketErrors: number;
  /** Moves to another relay address: after the one in use stopped answering, or told by MOVE. */
  relayChanges: number;
  /** MOVEs followed to the partner's relay (counted in relayChanges too). */
  movesFollowed: number;
  /** MOVEs declined: not one of the relay's addresses, or one too many since the last ACK; the REG went again without the flag. */
  movesRefused: number;
  /** MOVEs from another address than the relay in use, or answering no flagged REG. */
  movesIgnored: number;
  /** Resolver calls that failed while looking for another relay (retried at the next unanswered REG). */
  resolveFailures: number;
}

export function newTunnelStats(): TunnelStats {
  return {
    toRelayPackets: 0,
    toRelayBytes: 0,
    fromRelayPackets: 0,
    fromRelayBytes: 0,
    registrations: 0,
    retries: 0,
    noAppDrops: 0,
    sendDrops: 0,
    strayDrops: 0,
    socketErrors: 0,
    relayChanges: 0,
    movesFollowed: 0,
    movesRefused: 0,
    movesIgnored: 0,
    resolveFailures: 0,
  };
}
