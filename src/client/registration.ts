/**
 * The REG/ACK life cycle of one client socket, without I/O: the caller sends the REG datagram
 * and feeds back ACK/ERR replies. Timers are injected so tests can run on a fake clock.
 *
 * - First registration: REG, then retries with exponential backoff until ACK, ERR, or `maxTries`.
 * - Registered: a keepalive REG every `keepaliveMs` keeps the relay session and the NAT mapping
 *   alive (and moves the relay to our new public port after a NAT rebinding). A keepalive without
 *   ACK is retried with backoff until an ACK comes back (e.g. after a relay restart); never gives up.
 */

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
}

export const defaultRegistrationSettings: RegistrationSettings = {
  ackTimeoutMs: 500,
  maxBackoffMs: 4000,
  maxTries: 5,
  keepaliveMs: 10_000,
};

export interface RegistrationEvents {
  sendReg(): void;
  /** Every ACK that answers an outstanding REG; `first` for the very first one. */
  registered(info: { first: boolean; rttMs: number; attempts: number }): void;
  /** A keepalive went unanswered; re-registration is in progress. */
  lost(info: { attempts: number }): void;
  /** ERR reply; `first` when it refused the initial registration (fatal for callers). */
  refused(info: { first: boolean; code: string }): void;
  /** The initial registration got no answer after `maxTries`. */
  unreachable(info: { tries: number }): void;
}

export class RelayRegistration {
  private timer: unknown = undefined;
  private attempts = 0;
  private sentAt = 0;
  private everRegistered = false;
  private awaiting = false;
  private stopped = false;

  constructor(
    private readonly settings: RegistrationSettings,
    private readonly events: RegistrationEvents,
    private readonly timers: Timers = realTimers,
  ) {}

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

  onAck(): void {
    if (this.stopped || !this.awaiting) return;
    const first = !this.everRegistered;
    const rttMs = this.timers.now() - this.sentAt;
    const attempts = this.attempts;
    this.everRegistered = true;
    this.awaiting = false;
    this.attempts = 0;
    this.schedule(this.settings.keepaliveMs, () => this.attempt());
    this.events.registered({ first, rttMs, attempts });
  }

  onErr(code: string): void {
    if (this.stopped) return;
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
    if (!this.everRegistered && this.attempts >= this.settings.maxTries) {
      this.stop();
      this.events.unreachable({ tries: this.attempts });
      return;
    }
    if (this.everRegistered && this.awaiting && this.attempts === 1) this.events.lost({ attempts: 1 });
    this.attempts++;
    this.awaiting = true;
    this.sentAt = this.timers.now();
    const backoff = Math.min(this.settings.ackTimeoutMs * 2 ** (this.attempts - 1), this.settings.maxBackoffMs);
    this.schedule(backoff, () => this.attempt());
    this.events.sendReg();
  }

  private schedule(ms: number, fn: () => void): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
  }
}
