/**
 * What RelayRegistration (registration.ts) is configured with and reports through: settings,
 * timers, bounds, and the events the caller handles.
 */
import type { HostPort } from "../net/address.ts";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => performance.now(),
};

export interface RegistrationSettings {
  /** Wait for the first ACK before the first retry; doubles per retry. */
  ackTimeoutMs: number;
  /** Cap of the retry backoff. */
  maxBackoffMs: number;
  /** REG attempts before the first registration is declared unreachable. */
  maxTries: number;
  /** Interval of keepalive REGs once registered. */
  keepaliveMs: number;
  /** Unanswered REGs in a row after which the relay counts as silent (default DEFAULT_SILENT_AFTER). */
  silentAfter?: number;
  /** Send the `move` flag and offer MOVE replies to `moveOffered` (default true; no flag without that handler). */
  followMoves?: boolean;
}

/** With the default spacing (500 ms doubling), 3 unanswered REGs are 3.5 s of silence. */
export const DEFAULT_SILENT_AFTER = 3;

export const defaultRegistrationSettings: RegistrationSettings = {
  ackTimeoutMs: 500,
  maxBackoffMs: 4000,
  maxTries: 5,
  keepaliveMs: 10_000,
  silentAfter: DEFAULT_SILENT_AFTER,
  followMoves: true,
};

/** RETRYs answered within one attempt; more mean a misbehaving relay, and the attempt times out. */
export const MAX_RETRIES_PER_ATTEMPT = 3;

/** MOVEs offered between two ACKs; more mean relays sending each other's address, and are declined. */
export const MAX_MOVES_PER_ROUND = 3;

/** A `MOVE <to>` that answered a flagged REG; `moves`: MOVEs since the last ACK, this one included. */
export interface MoveOffer {
  id: number;
  to: HostPort;
  moves: number;
}

/**
 * Why a MOVE was not followed: more than MAX_MOVES_PER_ROUND, no decision before the REG's retry
 * timer ran out, or the caller's reasons (the target is not one of the relay's addresses, or is
 * the relay that sent it).
 */
export type MoveRefusal = "too-many" | "undecided" | "unknown-relay" | "same-relay";

/** A cookie that never verifies: it only makes a short REG long enough to be answered with RETRY. */
export const PLACEHOLDER_COOKIE = "AAAAAAAAAAAAAAAA";

export interface RegistrationEvents {
  /** Send `datagram` (a REG) to the relay from the registered socket; `cookie` is the one it carries. */
  sendReg(datagram: Uint8Array, cookie: string | undefined): void;
  /**
   * Every ACK that answers an outstanding REG; `first` for the very first one. `retries`: RETRYs
   * answered since the previous ACK; above 0 the relay asked us to prove our address (always, for a
   * relay that requires proof, on the first registration; later after a NAT rebinding or a restart).
   */
  registered(info: { first: boolean; rttMs: number; attempts: number; retries: number }): void;
  /** A keepalive went unanswered; re-registration is in progress. */
  lost(info: { attempts: number }): void;
  /** ERR reply; `first` when it refused the initial registration (fatal for callers). */
  refused(info: { first: boolean; code: string }): void;
  /** The initial registration got no answer after `maxTries`. */
  unreachable(info: { tries: number }): void;
  /**
   * The last `unanswered` REGs (at least `silentAfter`) timed out with no answer at all: the relay
   * looks dead. Reported as the next REG goes out, and again with each further one while retries go on.
   */
  silent?(info: { unanswered: number }): void;
  /**
   * `MOVE <to>` answered the outstanding flagged REG: the relay did not register us. Answer with
   * `followMove(offer.id)` or `declineMove(offer.id, reason)`; the REG's retry timer keeps running,
   * and when it runs out first the MOVE is declined as `undecided`. Without this handler no REG
   * carries the flag.
   */
  moveOffered?(offer: MoveOffer): void;
  /** A MOVE was declined (by `declineMove` or here): the REG went again without the flag. */
  moveRefused?(info: { to: HostPort; reason: MoveRefusal }): void;
  /** A MOVE that answered no outstanding flagged REG (late, duplicated or forged): ignored. */
  moveIgnored?(info: { to: HostPort }): void;
  /** `ERR bad-id` answered a flagged REG: the relay predates the flag; the REG went again without it. */
  moveFlagRefused?(): void;
}
