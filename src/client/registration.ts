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
 * - Meeting on one relay (docs/integration.md): with a `moveOffered` handler every REG carries the
 *   `move` flag (unless `followMoves: false`). `MOVE <relay>` answering a flagged REG means the
 *   relay did not register us and names our partner's relay: the caller follows (`followMove`,
 *   after it sends to that relay) or declines (`declineMove`: the REG goes again without the flag).
 *   At most MAX_MOVES_PER_ROUND MOVEs between two ACKs are offered; after a decline, and after
 *   `ERR bad-id` to a flagged REG (a relay older than the flag), this relay gets no flag any more.
 */
import type { HostPort } from "../net/address.ts";
import { RefusalCode } from "../protocol/errors.ts";
import { encodeReg, MAX_SESSION_ID_LENGTH } from "../protocol/reg.ts";
import { newPeerToken } from "../protocol/peer-token.ts";
import { RETRY_LENGTH } from "../protocol/replies.ts";
import { classifyRelayDatagram } from "./control.ts";
import {
  DEFAULT_SILENT_AFTER,
  MAX_MOVES_PER_ROUND,
  MAX_RETRIES_PER_ATTEMPT,
  type MoveOffer,
  type MoveRefusal,
  PLACEHOLDER_COOKIE,
  realTimers,
  type RegistrationEvents,
  type RegistrationSettings,
  type Timers,
} from "./registration-types.ts";

export * from "./registration-types.ts";

export class RelayRegistration {
  private timer: unknown = undefined;
  private attempts = 0;
  private sentAt = 0;
  private everRegistered = false;
  private awaiting = false;
  private stopped = false;
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
  /** Whether REGs carry the flag at all (settings and a `moveOffered` handler). */
  private readonly movesWanted: boolean;
  /** Whether REGs to the relay in use carry the flag: off after a decline or `ERR bad-id` there. */
  private moveFlag: boolean;
  private lastSentFlag = false;
  private lastSentLength = 0;
  private movesSinceAck = 0;
  private offer: MoveOffer | undefined;
  private offers = 0;
  /**
   * Who this peer is beyond its address, the same at every relay it registers at: sent with the
   * flag, so a fleet can tell it moved (its address differs per relay behind a symmetric NAT).
   */
  private readonly peerToken = newPeerToken();

  constructor(
    private readonly sessionId: string,
    private readonly settings: RegistrationSettings,
    private readonly events: RegistrationEvents,
    private readonly timers: Timers = realTimers,
  ) {
    this.movesWanted = (settings.followMoves ?? true) && events.moveOffered !== undefined;
    this.moveFlag = this.movesWanted;
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
   * ERR from the new relay after the first ACK is retried, as from any relay. `moveFlag: false`
   * for a relay known to refuse the flag.
   */
  restart(options: { moveFlag?: boolean } = {}): void {
    this.stopped = false;
    this.awaiting = false;
    this.attempts = 0;
    this.unanswered = 0;
    this.retriesSinceAck = 0;
    this.cookie = undefined;
    this.offer = undefined;
    this.moveFlag = this.movesWanted && (options.moveFlag ?? true);
    this.attempt();
  }

  /** The MOVE waiting for the caller's decision, if any. */
  get pendingMove(): MoveOffer | undefined {
    return this.offer;
  }

  /**
   * Follow the pending MOVE: the caller sends REGs to `offer.to` from now on. A restart there that
   * keeps the counts of MOVEs and RETRYs since the last ACK. False (and nothing changes) when `id`
   * is no longer pending: declined as undecided, answered by an ACK, or superseded by a restart.
   */
  followMove(id: number, options: { moveFlag?: boolean } = {}): boolean {
    if (this.offer?.id !== id) return false;
    const { movesSinceAck, retriesSinceAck } = this;
    this.restart(options);
    this.movesSinceAck = movesSinceAck;
    this.retriesSinceAck = retriesSinceAck;
    return true;
  }

  /** Decline the pending MOVE: the REG goes again without the flag, at once. False when `id` is no longer pending. */
  declineMove(id: number, reason: MoveRefusal): boolean {
    const offer = this.offer;
    if (offer?.id !== id) return false;
    this.refuseMove(offer.to, reason);
    this.resend(this.cookie);
    return true;
  }

  /**
   * Feed a datagram that came from the relay's address. Returns true when it was a relay reply
   * (ACK, RETRY, ERR, MOVE), which is consumed here; false when it is data for the app.
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
      case "move":
        this.onMove(reply.to);
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
    this.movesSinceAck = 0;
    this.offer = undefined;
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

  /** `MOVE <to>`: offered to the caller when it answers the outstanding flagged REG, else ignored. */
  onMove(to: HostPort): void {
    if (this.stopped || !this.awaiting || !this.lastSentFlag || this.offer !== undefined) {
      this.events.moveIgnored?.({ to });
      return;
    }
    this.answered();
    if (++this.movesSinceAck > MAX_MOVES_PER_ROUND) {
      this.refuseMove(to, "too-many");
      this.resend(this.cookie);
      return;
    }
    this.offer = { id: ++this.offers, to, moves: this.movesSinceAck };
    this.events.moveOffered?.(this.offer);
  }

  onErr(code: string): void {
    if (this.stopped) return;
    this.answered();
    if (this.awaiting && this.lastSentFlag && this.refusesFlag(code)) {
      // An older relay reads `move` as part of the id: the same REG without it, and never again here.
      this.moveFlag = false;
      this.events.moveFlagRefused?.();
      this.resend(this.lastSentCookie);
      return;
    }
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
    this.offer = undefined;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private attempt(): void {
    if (this.stopped) return;
    // Called with a REG outstanding: that attempt timed out (after ERR: its backoff ran out).
    if (this.awaiting && !this.answeredThisAttempt) this.unanswered++;
    this.answeredThisAttempt = false;
    if (this.offer) this.refuseMove(this.offer.to, "undecided");
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
  private resend(cookie: string | undefined): void {
    this.schedule(this.backoff(), () => this.attempt());
    this.send(cookie);
  }

  private send(cookie: string | undefined): void {
    const datagram = encodeReg(this.sessionId, cookie, { move: this.moveFlag, peer: this.moveFlag ? this.peerToken : undefined });
    this.lastSentCookie = cookie;
    this.lastSentFlag = this.moveFlag;
    this.lastSentLength = datagram.length;
    this.events.sendReg(datagram, cookie);
  }

  /** The flag stays off at this relay, which would otherwise send the same MOVE with each keepalive. */
  private refuseMove(to: HostPort, reason: MoveRefusal): void {
    this.offer = undefined;
    this.moveFlag = false;
    this.events.moveRefused?.({ to, reason });
  }

  /** How a relay older than the flag refuses it: a space in the id, or an id it reads as too long. */
  private refusesFlag(code: string): boolean {
    return code === RefusalCode.BadId || (code === RefusalCode.LongId && this.sessionId.length <= MAX_SESSION_ID_LENGTH);
  }

  /** The last REG carried no cookie and is shorter than a RETRY, which the relay may not send back. */
  private sentShortPlainReg(): boolean {
    return this.lastSentCookie === undefined && this.lastSentLength < RETRY_LENGTH;
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
