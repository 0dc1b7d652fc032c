import { describe, expect, it } from "bun:test";
import { MAX_RETRIES_PER_ATTEMPT, PLACEHOLDER_COOKIE } from "../../src/client/registration.ts";
import { encodeReg } from "../../src/protocol/reg.ts";
import { encodeRetry } from "../../src/protocol/replies.ts";
import { C1, C2, C3, C4, LONG_ID, setup } from "./registration-harness.ts";

describe("RelayRegistration", () => {
  it("sends REG at once and reports the first ACK with its round trip", () => {
    const { clock, log, sends, reg } = setup();
    reg.start();
    expect(sends).toEqual([0]);
    clock.advance(30);
    reg.onAck();
    expect(log).toEqual(["registered first=true attempts=1 retries=0 rtt=30"]);
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

describe("RelayRegistration with return-routability cookies", () => {
  it("answers RETRY at once with the cookie, in the same attempt, and times the registration from the first REG", () => {
    const { clock, log, sends, cookies, datagrams, reg } = setup();
    reg.start();
    clock.advance(20);
    reg.onRetry(C1);
    expect(sends).toEqual([0, 20]);
    expect(cookies).toEqual(["-", C1]);
    expect(datagrams[0]).toEqual(encodeReg(LONG_ID));
    expect(datagrams[1]).toEqual(encodeReg(LONG_ID, C1));
    clock.advance(20);
    reg.onAck();
    expect(log).toEqual(["registered first=true attempts=1 retries=1 rtt=40"]);
  });

  it("gives the REG that answers a RETRY a full ACK timeout, without counting a new attempt", () => {
    const { clock, sends, cookies, reg } = setup();
    reg.start();
    clock.advance(400);
    reg.onRetry(C1);
    clock.advance(499);
    expect(sends).toEqual([0, 400]);
    clock.advance(1);
    // Attempt 2 (backoff 1000 ms from here) still carries the cookie it was given.
    expect(sends).toEqual([0, 400, 900]);
    expect(cookies).toEqual(["-", C1, C1]);
  });

  it("answers at most 3 RETRYs per attempt, then lets the attempt time out and backs off", () => {
    expect(MAX_RETRIES_PER_ATTEMPT).toBe(3);
    const { clock, log, sends, cookies, reg } = setup();
    reg.start();
    for (const c of [C1, C2, C3, C4]) reg.onRetry(c);
    expect(cookies).toEqual(["-", C1, C2, C3]);
    clock.advance(499);
    expect(sends.length).toBe(4);
    clock.advance(1);
    expect(cookies.at(-1)).toBe(C3);
    for (const c of [C4, C1, C2, C3]) reg.onRetry(c);
    expect(cookies.slice(4)).toEqual([C3, C4, C1, C2]);
    expect(log).toEqual([]);
  });

  it("ends as unreachable, like a silent relay, against a relay that answers every REG with RETRY", () => {
    const { clock, log, sends, reg } = setup();
    let answered = 0;
    const relayAnswers = () => {
      for (; answered < sends.length; answered++) reg.onRetry(answered % 2 ? C1 : C2);
    };
    reg.start();
    relayAnswers();
    for (let t = 0; t < 60_000; t += 100) {
      clock.advance(100);
      relayAnswers();
    }
    expect(log).toEqual(["unreachable 4"]);
    // Each of the 4 attempts: one REG and the answers to 3 RETRYs; 0, 500, 1500, 3500 ms.
    expect(sends.length).toBe(4 * (1 + MAX_RETRIES_PER_ATTEMPT));
    expect([...new Set(sends)]).toEqual([0, 500, 1500, 3500]);
  });

  it("keeps the cookie and echoes it in keepalives", () => {
    const { clock, log, cookies, reg } = setup();
    reg.start();
    reg.onRetry(C1);
    reg.onAck();
    for (let i = 0; i < 3; i++) {
      clock.advance(10_000);
      reg.onAck(); // the relay knows us at this address: a stale cookie is still ACKed
    }
    expect(cookies).toEqual(["-", C1, C1, C1, C1]);
    expect(log.slice(1)).toEqual(Array(3).fill("registered first=false attempts=1 retries=0 rtt=0"));
  });

  it("replaces the cookie when a keepalive gets a new RETRY (NAT rebinding, expiry)", () => {
    const { clock, log, sends, cookies, reg } = setup();
    reg.start();
    reg.onRetry(C1);
    reg.onAck();
    clock.advance(10_000);
    clock.advance(15);
    reg.onRetry(C2); // our public address changed: the relay asks again
    clock.advance(15);
    reg.onAck();
    clock.advance(10_000);
    expect(sends).toEqual([0, 0, 10_000, 10_015, 20_030]);
    expect(cookies).toEqual(["-", C1, C1, C2, C2]);
    expect(log).toEqual(["registered first=true attempts=1 retries=1 rtt=0", "registered first=false attempts=1 retries=1 rtt=30"]);
    expect(log).not.toContain("lost");
  });

  it("ignores a RETRY when no REG is outstanding", () => {
    const { clock, cookies, reg } = setup();
    reg.start();
    reg.onAck();
    reg.onRetry(C1);
    clock.advance(10_000);
    expect(cookies).toEqual(["-", "-"]);
  });

  it.each([
    ["ERR short", "short"],
    ["a bare ERR", ""],
  ])("answers %s to a short REG with the placeholder cookie, then the RETRY, in one attempt", (_name, code) => {
    const { clock, log, sends, cookies, datagrams, reg } = setup({}, "s1");
    reg.start();
    clock.advance(10);
    reg.onErr(code);
    expect(datagrams[1]).toEqual(new TextEncoder().encode(`REG:s1 ${PLACEHOLDER_COOKIE}\n`));
    clock.advance(10);
    reg.onRetry(C1);
    clock.advance(10);
    reg.onAck();
    expect(sends).toEqual([0, 10, 20]);
    expect(cookies).toEqual(["-", PLACEHOLDER_COOKIE, C1]);
    expect(log).toEqual(["registered first=true attempts=1 retries=1 rtt=30"]);
    clock.advance(10_000);
    expect(cookies.at(-1)).toBe(C1);
  });

  it("sends the placeholder once per attempt, and a refusal of it is final", () => {
    const { log, cookies, reg } = setup({}, "s1");
    reg.start();
    reg.onErr("short");
    reg.onErr("full");
    expect(cookies).toEqual(["-", PLACEHOLDER_COOKIE]);
    expect(log).toEqual(["refused first=true full"]);
  });

  it("reports the first answer when a relay that reads no cookies refuses the placeholder as a bad id", () => {
    const { log, reg } = setup({}, "s1");
    reg.start();
    reg.onErr("");
    reg.onErr("bad-id");
    expect(log).toEqual(["refused first=true "]);
  });

  it("treats ERR short or a bare ERR to a REG long enough for a RETRY as a refusal", () => {
    const { log, cookies, reg } = setup();
    reg.start();
    reg.onErr("");
    expect(cookies).toEqual(["-"]);
    expect(log).toEqual(["refused first=true "]);
  });

  it("classifies relay datagrams: RETRY, ACK and ERR are consumed, anything else is data", () => {
    const { cookies, log, reg } = setup();
    reg.start();
    expect(reg.onRelayDatagram(encodeRetry(C1))).toBe(true);
    expect(cookies).toEqual(["-", C1]);
    expect(reg.onRelayDatagram(new TextEncoder().encode("\xc0quic"))).toBe(false);
    expect(reg.onRelayDatagram(new TextEncoder().encode("ACK\n"))).toBe(true);
    expect(log).toEqual(["registered first=true attempts=1 retries=1 rtt=0"]);
    expect(reg.onRelayDatagram(new TextEncoder().encode("ERR busy\n"))).toBe(true);
    expect(log.at(-1)).toBe("refused first=false busy");
  });
});
