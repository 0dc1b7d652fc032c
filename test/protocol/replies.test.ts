import { describe, expect, it } from "bun:test";
import { RefusalCode } from "../../src/protocol/errors.ts";
import { ACK, encodeMove, isAck, parseErr, parseMove, refusalReply } from "../../src/protocol/replies.ts";
import { bytes, text } from "../utils.ts";

describe("replies", () => {
  it("ACK is exactly ACK\\n", () => {
    expect(text(ACK)).toBe("ACK\n");
    expect(isAck(bytes("ACK\n"))).toBe(true);
    expect(isAck(bytes("ACK"))).toBe(false);
  });

  it.each(Object.values(RefusalCode))("refusal %s is never larger than its request", (code) => {
    for (let length = 0; length <= 40; length++) {
      const reply = refusalReply(code, length);
      if (reply) expect(reply.length).toBeLessThanOrEqual(length);
    }
  });

  it("carries the reason when it fits, a bare ERR when only that fits, nothing otherwise", () => {
    expect(text(refusalReply(RefusalCode.Full, 100)!)).toBe("ERR full\n");
    expect(text(refusalReply(RefusalCode.EmptyId, 5)!)).toBe("ERR\n");
    expect(refusalReply(RefusalCode.EmptyId, 3)).toBeUndefined();
  });

  it("parseErr reads codes and ignores non-ERR datagrams", () => {
    expect(parseErr(bytes("ERR full\n"))).toBe("full");
    expect(parseErr(bytes("ERR\n"))).toBe("");
    expect(parseErr(bytes("ACK\n"))).toBeUndefined();
    expect(parseErr(bytes("ERRx"))).toBeUndefined();
  });
});

describe("MOVE", () => {
  it("round-trips IPv4 and IPv6 relays, and is never larger than the REG it answers", () => {
    for (const target of [{ host: "203.0.113.10", port: 4433 }, { host: "2001:db8::1", port: 443 }]) {
      const reply = encodeMove(target, 64)!;
      expect(parseMove(reply)).toEqual(target);
      expect(encodeMove(target, reply.length)).toEqual(reply);
      expect(encodeMove(target, reply.length - 1)).toBeUndefined();
    }
    expect(new TextDecoder().decode(encodeMove({ host: "2001:db8::1", port: 443 }, 64))).toBe("MOVE [2001:db8::1]:443\n");
  });

  it.each(["MOVE relay.example:4433\n", "MOVE 203.0.113.10:0\n", "MOVE 203.0.113.10:4433", "MOVE 2001:db8::1:443\n", "MOVE  203.0.113.10:4433\n", "MOVE 203.0.113.10:99999\n", "ACK\n", "MOVE \n"])(
    "refuses %j",
    (text) => {
      expect(parseMove(new TextEncoder().encode(text))).toBeUndefined();
    },
  );
});
