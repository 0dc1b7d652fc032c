import { type MoveOffer, RelayRegistration, type RegistrationEvents, type RegistrationSettings, type Timers } from "../../src/client/registration.ts";

/** Timers on a fake clock: `advance(ms)` runs what falls due, in order. */
export class FakeClock implements Timers {
  t = 0;
  private seq = 0;
  private pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.pending) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

export const settings: RegistrationSettings = { ackTimeoutMs: 500, maxBackoffMs: 4000, maxTries: 4, keepaliveMs: 10_000 };

/** 36 characters, like a UUID: its plain REG is long enough to be answered with RETRY. */
export const LONG_ID = "0f8fad5b-d9cb-469f-a165-70867728950e";

/**
 * A registration on a fake clock that records what it sends and reports. With `withMoves` it has
 * the MOVE handlers (so its REGs carry the flag): `moves` records them as `offer <id> <to> <moves>`,
 * `refused <to> <reason>`, `ignored <to>`, `flag-refused`.
 */
export function setup(overrides: Partial<RegistrationSettings> = {}, sessionId = LONG_ID, withMoves = false) {
  const clock = new FakeClock();
  const log: string[] = [];
  const sends: number[] = [];
  /** The cookie each REG carried ("-" for none), in send order. */
  const cookies: string[] = [];
  const datagrams: Uint8Array[] = [];
  /** Each `silent` report: when, and how many REGs had gone unanswered. */
  const silences: [number, number][] = [];
  const moves: string[] = [];
  const offers: MoveOffer[] = [];
  const at = (to: { host: string; port: number }) => `${to.host}:${to.port}`;
  const moveEvents: Partial<RegistrationEvents> = withMoves
    ? {
        moveOffered: (o) => void (offers.push(o), moves.push(`offer ${o.id} ${at(o.to)} ${o.moves}`)),
        moveRefused: (i) => void moves.push(`refused ${at(i.to)} ${i.reason}`),
        moveIgnored: (i) => void moves.push(`ignored ${at(i.to)}`),
        moveFlagRefused: () => void moves.push("flag-refused"),
      }
    : {};
  const reg = new RelayRegistration(
    sessionId,
    { ...settings, ...overrides },
    {
      sendReg: (datagram, cookie) => {
        sends.push(clock.now());
        cookies.push(cookie ?? "-");
        datagrams.push(datagram);
      },
      registered: (i) => log.push(`registered first=${i.first} attempts=${i.attempts} retries=${i.retries} rtt=${i.rttMs}`),
      lost: () => log.push("lost"),
      refused: (i) => log.push(`refused first=${i.first} ${i.code}`),
      unreachable: (i) => log.push(`unreachable ${i.tries}`),
      silent: (i) => silences.push([clock.now(), i.unanswered]),
      ...moveEvents,
    },
    clock,
  );
  /** Each REG's text without its newline, in send order. */
  // The REGs as sent, without the peer token (random per registration; tokens() has them).
  const texts = () => datagrams.map((d) => new TextDecoder().decode(d).trimEnd().replace(/ peer=[A-Za-z0-9_-]+/, ""));
  const tokens = () => datagrams.map((d) => / peer=([A-Za-z0-9_-]+)/.exec(new TextDecoder().decode(d))?.[1]);
  return { clock, log, sends, cookies, datagrams, silences, moves, offers, texts, tokens, reg };
}

/** Cookies as a relay would mint them: 16 base64url characters, opaque to the client. */
export const C1 = "c1c1c1c1c1c1c1c1";
export const C2 = "c2c2c2c2c2c2c2c2";
export const C3 = "c3c3c3c3c3c3c3c3";
export const C4 = "c4c4c4c4c4c4c4c4";
