import { describe, expect, it } from "bun:test";
import { RelayRegistration, type RegistrationSettings, type Timers } from "../../src/client/registration.ts";

class FakeClock implements Timers {
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

const settings: RegistrationSettings = { ackTimeoutMs: 500, maxBackoffMs: 4000, maxTries: 4, keepaliveMs: 10_000 };

function setup(overrides: Partial<RegistrationSettings> = {}) {
  const clock = new FakeClock();
  const log: string[] = [];
  const sends: number[] = [];
  const reg = new RelayRegistration(
    { ...settings, ...overrides },
    {
      sendReg: () => sends.push(clock.now()),
      registered: (i) => log.push(`registered first=${i.first} attempts=${i.attempts} rtt=${i.rttMs}`),
      lost: () => log.push("lost"),
      refused: (i) => log.push(`refused first=${i.first} ${i.code}`),
      unreachable: (i) => log.push(`unreachable ${i.tries}`),
    },
    clock,
  );
  return { clock, log, sends, reg };
}

describe("RelayRegistration", () => {
  it("sends REG at once and reports the first ACK with its round trip", () => {
    const { clock, log, sends, reg } = setup();
    reg.start();
    expect(sends).toEqual([0]);
    clock.advance(30);
    reg.onAck();
    expect(log).toEqual(["registered first=true attempts=1 rtt=30"]);
    expect(reg.registered).toBe(true);
  });

  it("retries with exponential backoff and gives up as unreachable after maxTries", () => {
    const { clock, log, sends, reg } = setup();
    reg.start();
    clock.advance(20_000);
    expect(sends).toEqual([0, 500, 1500, 3500]);
    expect(log).toEqual(["unreachable 4"]);
    clock.advance(60_000);
    expect(sends.length).toBe(4);
  });

  it("treats ERR on the first registration as final", () => {
    const { clock, log, sends, reg } = setup();
    reg.start();
    reg.onErr("full");
    clock.advance(60_000);
    expect(log).toEqual(["refused first=true full"]);
    expect(sends.length).toBe(1);
  });

  it("sends keepalive REGs at the configured interval while ACKs come back", () => {
    const { clock, sends, reg } = setup();
    reg.start();
    reg.onAck();
    for (let i = 0; i < 3; i++) {
      clock.advance(10_000);
      reg.onAck();
    }
    expect(sends).toEqual([0, 10_000, 20_000, 30_000]);
  });

  it("re-registers promptly after a lost keepalive ACK and never gives up once registered", () => {
    const { clock, log, sends, reg } = setup();
    reg.start();
    reg.onAck();
    clock.advance(10_000); // keepalive sent, no ACK (relay restarted)
    clock.advance(30_000);
    expect(log).toContain("lost");
    expect(log.some((l) => l.startsWith("unreachable"))).toBe(false);
    expect(sends.slice(0, 5)).toEqual([0, 10_000, 10_500, 11_500, 13_500]);
    expect(reg.registered).toBe(false);
    reg.onAck();
    expect(reg.registered).toBe(true);
    expect(log.at(-1)).toMatch(/registered first=false/);
  });

  it("ignores unsolicited ACKs and keeps retrying after a later ERR", () => {
    const { clock, log, sends, reg } = setup();
    reg.start();
    reg.onAck();
    reg.onAck();
    expect(log.length).toBe(1);
    clock.advance(10_000);
    reg.onErr("full");
    expect(log.at(-1)).toBe("refused first=false full");
    clock.advance(4000);
    expect(sends.length).toBe(3);
  });

  it("stop() silences everything", () => {
    const { clock, sends, reg } = setup();
    reg.start();
    reg.stop();
    clock.advance(60_000);
    reg.onAck();
    expect(sends.length).toBe(1);
  });
});
