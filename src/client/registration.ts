/**
 * The REG/ACK life cycle of one client socket, without I/O: the caller sends the REG datagrams it
 * is handed and feeds back what the relay answers. Timers are injected so tests can run on a fake
 * clock.
 *
 * - First registration: REG, then retries with exponential backoff until ACK, ERR, or `maxTries`.
 * - Registered: a keepalive REG every `keepaliveMs` keeps the relay session and the NAT mapping
 *   alive (and moves the relay to our new public port after a NAT rebinding). A keepalive without
 *   ACK is retried with backoff until an ACK comes back (e.g. after a relay restart); never gives up.
 * - Silence: once `silentAfter` REGs in a row got no answer at all (no ACK, RETRY or ERR), each
 *   further REG is sent with a `silent` report, before and after the first ACK. The caller may then
 *   `restart()` at another relay address (RelayTunnel does); otherwise the retries go on.
 * - Return routability (docs/integration.md): a `RETRY <cookie>` is answered at once with the REG
 *   carrying that cookie, within the same attempt, at most MAX_RETRIES_PER_ATTEMPT times. The
 *   latest cookie is kept and sent in every later REG (keepalives). `ERR short` (or a bare `ERR`)
 *   to a REG too short to be answered with a RETRY is answered once per attempt with a placeholder
 *   cookie, which makes the REG long enough.
 */
import { encodeReg } from "../protocol/reg.ts";
import { RETRY_LENGTH } from "../protocol/replies.ts";
import { classifyRelayDatagram } from "./control.ts";

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
}

/** With the default spacing (500 ms doubling), 3 unanswered REGs are 3.5 s of silence. */
export const DEFAULT_SILENT_AFTER = 3;

export const defaultRegistrationSettings: RegistrationSettings = {
  ackTimeoutMs: 500,
  maxBackoffMs: 4000,
  maxTries: 5,
  keepaliveMs: 10_000,
  silentAfter: DEFAULT_SILENT_AFTER,
};

/** RETRYs answered within one attempt; more mean a misbehaving relay, and the attempt times out. */
export const MAX_RETRIES_PER_ATTEMPT = 3;

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
}

export class RelayRegistration {
  private timer: unknown = undefined;
  private attempts = 0;
  private sentAt = 0;
  private everRegistered = false;
  private awaiting = false;
  private stopped = false;
  private readonly plainReg: Uint8Array;
  /** The relay's latest cookie, echoed in every REG after it came. */
  private cookie: string | undefined;
  /** The cookie of the REG sent last (PLACEHOLDER_COOKIE for the placeholder step). */
  private lastSentCookie: string | undefined;
  private retriesThisAttempt = 0;
  private retriesSinceAck = 0;
  /** The ERR code that made this attempt send the placeholder, if it did. */
  private placeholderAfter: string | undefined;
  /** Attempts in a row that timed out with no reply at all. */
  private unanswered = 0;
  private answeredThisAttempt = false;

  constructor(
    private readonly sessionId: string,
    private readonly settings: RegistrationSettings,
    private readonly events: RegistrationEvents,
    private readonly timers: Timers = realTimers,
  ) {
    this.plainReg = encodeReg(sessionId);
  }

  get registered(): boolean {
    return this.everRegistered && !this.awaiting;
  }

  start(): void {
    this.attempt();
  }

  /** Send a REG now (e.g. the caller suspects the relay lost us) unless one is outstanding. */
  refresh(): void {
    if (!this.stopped && !this.awaiting) this.attempt();
  }

  /**
   * Register afresh because the caller now sends REGs to another relay: the cookie is dropped (it
   * was the old relay's), attempts and silence count from zero, and a REG goes out at once. Resumes
   * a registration that stopped (e.g. `unreachable`). Whether it was ever registered is kept, so an
   * ERR from the new relay after the first ACK is retried, as from any relay.
   */
  restart(): void {
    this.stopped = false;
    this.awaiting = false;
    this.attempts = 0;
    this.unanswered = 0;
    this.retriesSinceAck = 0;
    this.cookie = undefined;
    this.attempt();
  }

  /**
   * Feed a datagram that came from the relay's address. Returns true when it was a relay reply
   * (ACK, RETRY, ERR), which is consumed here; false when it is data for the app.
   */
  onRelayDatagram(data: Uint8Array): boolean {
    const reply = classifyRelayDatagram(data);
    switch (reply.kind) {
      case "ack":
        this.onAck();
        return true;
      case "retry":
        this.onRetry(reply.cookie);
        return true;
      case "err":
        this.onErr(reply.code);
        return true;
      case "data":
        return false;
    }
  }

  onAck(): void {
    if (this.stopped || !this.awaiting) return;
    const first = !this.everRegistered;
    const rttMs = this.timers.now() - this.sentAt;
    const attempts = this.attempts;
    const retries = this.retriesSinceAck;
    this.answered();
    this.everRegistered = true;
    this.awaiting = false;
    this.attempts = 0;
    this.retriesSinceAck = 0;
    this.schedule(this.settings.keepaliveMs, () => this.attempt());
    this.events.registered({ first, rttMs, attempts, retries });
  }

  /** `RETRY <cookie>`: repeat the REG at once with the cookie; same attempt, same backoff step. */
  onRetry(cookie: string): void {
    if (this.stopped || !this.awaiting) return;
    this.answered();
    // Past the bound the RETRY is ignored: the attempt runs out and the next one backs off.
    if (this.retriesThisAttempt >= MAX_RETRIES_PER_ATTEMPT) return;
    this.retriesThisAttempt++;
    this.retriesSinceAck++;
    this.cookie = cookie;
    this.resend(cookie);
  }

  onErr(code: string): void {
    if (this.stopped) return;
    this.answered();
    if (this.awaiting && this.placeholderAfter === undefined && (code === "short" || code === "") && this.sentShortPlainReg()) {
      this.placeholderAfter = code;
      this.resend(PLACEHOLDER_COOKIE);
      return;
    }
    // A relay that reads no cookies refuses the placeholder as a bad id: its first answer stands.
    if (this.awaiting && this.placeholderAfter !== undefined && this.lastSentCookie === PLACEHOLDER_COOKIE && code === "bad-id") {
      code = this.placeholderAfter;
    }
    const first = !this.everRegistered;
    if (first) this.stop();
    else this.schedule(this.settings.maxBackoffMs, () => this.attempt());
    this.events.refused({ first, code });
  }

  stop(): void {
    this.stopped = true;
    this.awaiting = false;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private attempt(): void {
    if (this.stopped) return;
    // Called with a REG outstanding: that attempt timed out (after ERR: its backoff ran out).
    if (this.awaiting && !this.answeredThisAttempt) this.unanswered++;
    this.answeredThisAttempt = false;
    if (!this.everRegistered && this.attempts >= this.settings.maxTries) {
      this.stop();
      this.events.unreachable({ tries: this.attempts });
      return;
    }
    if (this.everRegistered && this.awaiting && this.attempts === 1) this.events.lost({ attempts: 1 });
    this.attempts++;
    this.awaiting = true;
    this.sentAt = this.timers.now();
    this.retriesThisAttempt = 0;
    this.placeholderAfter = undefined;
    this.schedule(this.backoff(), () => this.attempt());
    this.send(this.cookie);
    // After the send: a caller that restarts elsewhere from here leaves a consistent state behind.
    if (this.unanswered >= (this.settings.silentAfter ?? DEFAULT_SILENT_AFTER)) this.events.silent?.({ unanswered: this.unanswered });
  }

  private answered(): void {
    this.answeredThisAttempt = true;
    this.unanswered = 0;
  }

  /** A REG within the current attempt: the registration time still counts from the attempt's start. */
  private resend(cookie: string): void {
    this.schedule(this.backoff(), () => this.attempt());
    this.send(cookie);
  }

  private send(cookie: string | undefined): void {
    this.lastSentCookie = cookie;
    this.events.sendReg(cookie === undefined ? this.plainReg : encodeReg(this.sessionId, cookie), cookie);
  }

  /** The last REG carried no cookie and is shorter than a RETRY, which the relay may not send back. */
  private sentShortPlainReg(): boolean {
    return this.lastSentCookie === undefined && this.plainReg.length < RETRY_LENGTH;
  }

  private backoff(): number {
    return Math.min(this.settings.ackTimeoutMs * 2 ** (this.attempts - 1), this.settings.maxBackoffMs);
  }

  private schedule(ms: number, fn: () => void): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
  }
}
