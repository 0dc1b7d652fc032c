import { describe, expect, it } from "bun:test";
import { C1, setup } from "./registration-harness.ts";

/** Answers every REG sent so far with `answer` (the relay is alive but does not ACK). */
function answerAll(sends: number[], answer: () => void): () => void {
  let answered = 0;
  return () => {
    for (; answered < sends.length; answered++) answer();
  };
}

describe("RelayRegistration silence", () => {
  it("reports a relay silent after 3 unanswered keepalive REGs, with each further REG, until an ACK", () => {
    const { clock, sends, silences, reg } = setup();
    reg.start();
    reg.onAck();
    clock.advance(10_000); // keepalive, never answered
    clock.advance(11_999);
    // REGs at 10 000, 10 500, 11 500 time out; the 4th REG (13 500) and later ones carry the report.
    expect(sends).toEqual([0, 10_000, 10_500, 11_500, 13_500, 17_500, 21_500]);
    expect(silences).toEqual([
      [13_500, 3],
      [17_500, 4],
      [21_500, 5],
    ]);
    reg.onAck();
    clock.advance(10_000);
    clock.advance(3000);
    expect(silences.length).toBe(3);
  });

  it("honours silentAfter", () => {
    const { clock, silences, reg } = setup({ silentAfter: 1 });
    reg.start();
    reg.onAck();
    clock.advance(10_500);
    expect(silences).toEqual([[10_500, 1]]);
  });

  it("reports silence before the first ACK too, and still ends as unreachable after maxTries", () => {
    const { clock, log, sends, silences, reg } = setup({ maxTries: 5 });
    reg.start();
    clock.advance(60_000);
    expect(sends).toEqual([0, 500, 1500, 3500, 7500]);
    expect(silences).toEqual([
      [3500, 3],
      [7500, 4],
    ]);
    expect(log).toEqual(["unreachable 5"]);
  });

  it.each([
    ["ERR busy", (reg: ReturnType<typeof setup>["reg"]) => reg.onErr("busy")],
    ["RETRY", (reg: ReturnType<typeof setup>["reg"]) => reg.onRetry(C1)],
  ])("never reports a relay that answers every REG with %s as silent", (_name, answer) => {
    const { clock, sends, silences, reg } = setup();
    reg.start();
    reg.onAck();
    const relayAnswers = answerAll(sends, () => answer(reg));
    for (let t = 0; t < 120_000; t += 100) {
      clock.advance(100);
      relayAnswers();
    }
    expect(sends.length).toBeGreaterThan(20);
    expect(silences).toEqual([]);
  });

  it("restart() sends a REG at once without the old relay's cookie and counts afresh", () => {
    const { clock, log, sends, cookies, silences, reg } = setup();
    reg.start();
    reg.onRetry(C1);
    reg.onAck();
    clock.advance(10_000);
    clock.advance(3500);
    expect(silences).toEqual([[13_500, 3]]);
    reg.restart();
    expect(sends.at(-1)).toBe(13_500);
    expect(cookies.slice(-2)).toEqual([C1, "-"]);
    clock.advance(20);
    reg.onAck();
    expect(log.at(-1)).toBe("registered first=false attempts=1 retries=0 rtt=20");
    // The next silence needs 3 new unanswered REGs.
    clock.advance(10_000 + 3499);
    expect(silences.length).toBe(1);
    clock.advance(1);
    expect(silences).toEqual([
      [13_500, 3],
      [27_020, 3],
    ]);
  });

  it("restart() resumes a registration that ended as unreachable; its ACK is the first registration", () => {
    const { clock, log, sends, reg } = setup({ maxTries: 2 });
    reg.start();
    clock.advance(10_000);
    expect(log).toEqual(["unreachable 2"]);
    reg.restart();
    expect(sends.length).toBe(3);
    reg.onAck();
    expect(log.at(-1)).toBe("registered first=true attempts=1 retries=0 rtt=0");
    expect(reg.registered).toBe(true);
  });
});
