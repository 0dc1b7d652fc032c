/** The STUN responder's decisions and counts, on a fake clock (the relay's use is in test/relay/stun.test.ts). */
import { describe, expect, it } from "bun:test";
import { StunResponder } from "../../src/discovery/responder.ts";
import { encodeBindingRequest, readBindingSuccess, readStun } from "../../src/protocol/stun.ts";
import { FakeClock } from "../sessions/fixtures.ts";

const hex = (text: string) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const A = { address: "198.51.100.7", port: 40_000 };

function answerOf(outcome: ReturnType<StunResponder["handle"]>): Uint8Array {
  if (outcome.kind !== "answer") throw new Error(`expected an answer, got ${outcome.kind}`);
  return outcome.data;
}

describe("StunResponder", () => {
  it("answers with the requester's address; counts requests and bytes both ways", () => {
    const r = new StunResponder({ rate: 10, burst: 10 });
    const { datagram, transaction } = encodeBindingRequest();
    const answer = answerOf(r.handle(datagram, A, 0));
    expect(readBindingSuccess(answer, transaction)?.mapped).toEqual(A);
    expect(r.counters).toMatchObject({ answered: 1, bytesIn: datagram.length, bytesOut: answer.length });
  });

  it("anything that is not a Binding request is not its business", () => {
    const r = new StunResponder({ rate: 10, burst: 10 });
    expect(r.handle(new TextEncoder().encode("hello"), A, 0).kind).toBe("not-stun");
    const answer = answerOf(r.handle(encodeBindingRequest().datagram, A, 0));
    // A success response sent to the relay (a reflection attempt between two STUN servers) gets nothing.
    expect(r.handle(answer, A, 0).kind).toBe("not-stun");
    expect(r.counters.bytesIn).toBe(encodeBindingRequest().datagram.length);
  });

  it("per source: the burst, then the rate; another source is unaffected; IPv6 sources share their /64", () => {
    const clock = new FakeClock(0);
    const r = new StunResponder({ rate: 2, burst: 5 });
    const ask = (from: { address: string; port: number }) => r.handle(encodeBindingRequest().datagram, from, clock.now()).kind;
    const first = Array.from({ length: 8 }, () => ask(A));
    expect(first.filter((k) => k === "answer").length).toBe(5);
    expect(r.counters.rateLimited).toBe(3);
    expect(ask({ address: "198.51.100.8", port: 1 })).toBe("answer");
    clock.advance(1000); // two more tokens
    expect([ask(A), ask(A), ask(A)]).toEqual(["answer", "answer", "dropped"]);
    // A whole /64 is one source: rotating through it buys nothing.
    const v6 = Array.from({ length: 8 }, (_, i) => ask({ address: `2001:db8:1:2::${i + 1}`, port: 9 }));
    expect(v6.filter((k) => k === "answer").length).toBe(5);
  });

  it("the global budget caps answers across all sources", () => {
    const r = new StunResponder({ rate: 100, burst: 100, globalRate: 3 });
    const kinds = Array.from({ length: 5 }, (_, i) => r.handle(encodeBindingRequest().datagram, { address: `198.51.100.${i}`, port: 1 }, 0).kind);
    expect(kinds).toEqual(["answer", "answer", "answer", "dropped", "dropped"]);
    expect(r.counters.budget).toBe(2);
  });

  it("refuses with 420 what it will not honour: RESPONSE-PORT, change flags, unknown required attributes", () => {
    const r = new StunResponder({ rate: 100, burst: 100 });
    const responsePort = hex("0001 0008 2112a442 000102030405060708090a0b 0027 0004 00500000");
    const change = hex("0001 0008 2112a442 000102030405060708090a0c 0003 0004 00000006");
    for (const [request, listed] of [[responsePort, "0027"], [change, "0003"]] as const) {
      const answer = answerOf(r.handle(request, A, 0));
      expect(Buffer.from(answer.subarray(0, 2)).toString("hex")).toBe("0111");
      expect(Buffer.from(answer).toString("hex")).toContain(`000a0002${listed}`);
    }
    expect(r.counters.unknownAttribute).toBe(2);
  });

  it("classic requests for an answer from elsewhere get none (a classic client would take any answer as the change honoured)", () => {
    const r = new StunResponder({ rate: 100, burst: 100 });
    const classicChange = hex("0001 0008 0274155011eda52769eaec6f0965120b 0003 0004 00000004");
    expect(r.handle(classicChange, A, 0).kind).toBe("dropped");
    expect(r.counters.changeRefused).toBe(1);
  });

  it("malformed requests are counted, never answered, and spend no token", () => {
    const r = new StunResponder({ rate: 1, burst: 1 });
    const overrun = hex("0001 0008 2112a442 000102030405060708090a0b 8022 0010 41414141");
    expect(r.handle(overrun, A, 0).kind).toBe("dropped");
    expect(r.counters.malformed).toBe(1);
    expect(r.handle(encodeBindingRequest().datagram, A, 0).kind).toBe("answer");
  });

  it("OTHER-ADDRESS only to those who ask (CHANGE-REQUEST without flags); a wildcard bind says the unspecified address of the requester's family", () => {
    const r = new StunResponder({ rate: 100, burst: 100 });
    const plain = encodeBindingRequest();
    expect(readBindingSuccess(answerOf(r.handle(plain.datagram, A, 0)), plain.transaction)?.other).toBeUndefined();
    r.other = { address: "203.0.113.1", port: 3479 };
    const asked = encodeBindingRequest({ askOtherAddress: true });
    expect(readBindingSuccess(answerOf(r.handle(asked.datagram, A, 0)), asked.transaction)?.other).toEqual({ address: "203.0.113.1", port: 3479 });
    // An IPv6 requester is not pointed at an IPv4-only second address.
    const v6 = encodeBindingRequest({ askOtherAddress: true });
    expect(readBindingSuccess(answerOf(r.handle(v6.datagram, { address: "2001:db8::5", port: 1 }, 0)), v6.transaction)?.other).toBeUndefined();
    r.other = { address: "::", port: 3479 };
    for (const [from, unspecified] of [[A, "0.0.0.0"], [{ address: "2001:db8::5", port: 1 }, "::"]] as const) {
      const q = encodeBindingRequest({ askOtherAddress: true });
      expect(readBindingSuccess(answerOf(r.handle(q.datagram, from, 0)), q.transaction)?.other).toEqual({ address: unspecified, port: 3479 });
    }
    // Classic clients would take an unspecified address literally: they get none.
    const classic = hex("0001 0008 0174155011eda52769eaec6f0965120b 0003 0004 00000000");
    expect(readStun(classic).kind).toBe("request");
    expect(Buffer.from(answerOf(r.handle(classic, A, 0))).toString("hex")).not.toContain("00050008");
  });
});
