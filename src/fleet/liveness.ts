/**
 * Whether other relays of the fleet answer, found out over the bridge itself: an authenticated
 * ping, repeated a few times, and a verdict after a bound. Any authentic frame from a relay counts as an
 * answer (replays are refused by the codec, so only a live relay can produce one). The directory's
 * health key says the same thing three heartbeats late; this says it within `timeoutMs`, which is
 * what lets a peer whose relay died resume its session on another relay at once.
 */

export interface LivenessOptions {
  /** No answer within this after the first ping: the relay is gone. */
  timeoutMs: number;
  /** The ping is sent again every this often until the timeout, in case one was lost (or refused by a relay that did not know this one yet). */
  retryMs: number;
  /**
   * A relay heard within this is live without asking. Short: the question comes up when a peer
   * seems to have left a relay, which may have died a moment after it was last heard.
   */
  freshMs: number;
  /** A relay found gone is taken as gone without asking for this long (unless heard from). */
  goneMs: number;
  clock?: () => number;
}

export const DEFAULT_LIVENESS: LivenessOptions = { timeoutMs: 750, retryMs: 250, freshMs: 100, goneMs: 5000 };

export type Liveness = "live" | "gone" | "unknown";

interface Check {
  nonce: Uint8Array;
  done: Promise<boolean>;
  answer: (live: boolean) => void;
  timers: ReturnType<typeof setTimeout>[];
}

export class RelayLiveness {
  private readonly heardAt = new Map<string, number>();
  private readonly goneAt = new Map<string, number>();
  private readonly checks = new Map<string, Check>();
  private readonly clock: () => number;
  /** Pings sent, checks that found a relay gone. */
  readonly counts = { pings: 0, gone: 0 };

  constructor(
    /** Sends a ping carrying `nonce` to `relay`; false when the relay has no address to send to. */
    private readonly ping: (relay: string, nonce: Uint8Array) => boolean,
    private readonly options: LivenessOptions = DEFAULT_LIVENESS,
  ) {
    this.clock = options.clock ?? Date.now;
  }

  /** What is known without asking: heard lately, found gone since last heard, or neither. */
  known(relay: string): Liveness {
    const freshMs = this.options.freshMs;
    const now = this.clock();
    const heard = this.heardAt.get(relay);
    if (heard !== undefined && now - heard <= freshMs) return "live";
    const gone = this.goneAt.get(relay);
    if (gone !== undefined && now - gone <= this.options.goneMs && (heard === undefined || gone > heard)) return "gone";
    return "unknown";
  }

  /** An authentic frame came from `relay`. */
  heard(relay: string): void {
    this.heardAt.set(relay, this.clock());
    this.goneAt.delete(relay);
  }

  /** A pong: answers the check in progress when it echoes that check's nonce. */
  answered(relay: string, payload: Uint8Array): void {
    const check = this.checks.get(relay);
    if (!check || !sameBytes(check.nonce, payload)) return;
    this.heard(relay);
    check.answer(true);
  }

  /**
   * True when `relay` answers (or was heard lately), false when it does not (or was found gone
   * lately); one check per relay at a time. `ask` pings even a relay heard lately: having been
   * heard a moment ago does not mean it did not die since.
   */
  check(relay: string, ask = false): Promise<boolean> {
    const known = this.known(relay);
    if (known === "gone" || (known === "live" && !ask)) return Promise.resolve(known === "live");
    const running = this.checks.get(relay);
    if (running) return running.done;
    const nonce = crypto.getRandomValues(new Uint8Array(8));
    let answer!: (live: boolean) => void;
    const done = new Promise<boolean>((resolve) => (answer = resolve));
    const check: Check = { nonce, done, answer, timers: [] };
    check.answer = (live) => {
      if (this.checks.get(relay) !== check) return;
      this.checks.delete(relay);
      for (const t of check.timers) clearTimeout(t);
      if (!live) {
        this.goneAt.set(relay, this.clock());
        this.counts.gone++;
      }
      answer(live);
    };
    this.checks.set(relay, check);
    const send = () => {
      this.counts.pings++;
      if (!this.ping(relay, nonce)) check.answer(false);
    };
    for (let at = this.options.retryMs; at < this.options.timeoutMs; at += this.options.retryMs) check.timers.push(setTimeout(send, at));
    check.timers.push(setTimeout(() => check.answer(false), this.options.timeoutMs));
    send();
    return done;
  }

  /** Drops what is known about a relay that left the fleet. */
  forget(relay: string): void {
    this.heardAt.delete(relay);
    this.goneAt.delete(relay);
    this.checks.get(relay)?.answer(false);
  }

  /** Ends every check in progress (as unanswered) and its timers. */
  stop(): void {
    for (const check of [...this.checks.values()]) check.answer(false);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
