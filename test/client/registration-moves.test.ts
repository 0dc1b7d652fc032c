import { describe, expect, it } from "bun:test";
import { MAX_MOVES_PER_ROUND, PLACEHOLDER_COOKIE } from "../../src/client/registration.ts";
import { MAX_SESSION_ID_LENGTH } from "../../src/protocol/reg.ts";
import { RETRY_LENGTH } from "../../src/protocol/replies.ts";
import { C1, LONG_ID, setup } from "./registration-harness.ts";

const R2 = { host: "192.0.2.2", port: 4433 };
const R3 = { host: "192.0.2.3", port: 4433 };
const FLAGGED = `REG:${LONG_ID} move`;
const PLAIN = `REG:${LONG_ID}`;

describe("RelayRegistration and the move flag", () => {
  it("carries the flag in every REG, keepalives included, when MOVEs are handled", () => {
    const { clock, texts, reg } = setup({}, LONG_ID, true);
    reg.start();
    reg.onAck();
    clock.advance(10_000);
    reg.onAck();
    clock.advance(10_000);
    expect(texts()).toEqual([FLAGGED, FLAGGED, FLAGGED]);
  });

  it("carries one peer token with the flag, the same in every REG and after a move; none without the flag", () => {
    const { clock, tokens, reg } = setup({}, LONG_ID, true);
    reg.start();
    reg.onAck();
    clock.advance(10_000);
    reg.restart();
    reg.restart({ moveFlag: false });
    const seen = tokens();
    expect(seen[0]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(seen.slice(0, 3)).toEqual([seen[0], seen[0], seen[0]]);
    expect(seen[3]).toBeUndefined();
  });

  it.each([
    ["followMoves: false", { followMoves: false }, true],
    ["no moveOffered handler", {}, false],
  ])("sends no flag with %s", (_name, overrides, withMoves) => {
    const { clock, texts, reg } = setup(overrides, LONG_ID, withMoves);
    reg.start();
    reg.onAck();
    clock.advance(10_000);
    expect(texts()).toEqual([PLAIN, PLAIN]);
  });

  it("offers a MOVE answering the flagged REG; followMove registers afresh, same id, no cookie, flag on", () => {
    const { clock, log, texts, moves, offers, reg } = setup({}, LONG_ID, true);
    reg.start();
    reg.onRetry(C1);
    clock.advance(10);
    reg.onMove(R2);
    expect(moves).toEqual(["offer 1 192.0.2.2:4433 1"]);
    expect(reg.pendingMove).toEqual(offers[0]);
    expect(reg.followMove(offers[0]!.id)).toBe(true);
    expect(reg.pendingMove).toBeUndefined();
    clock.advance(10);
    reg.onAck();
    // The cookie was the first relay's: the REG to the new one goes without it.
    expect(texts()).toEqual([FLAGGED, `REG:${LONG_ID} ${C1} move`, FLAGGED]);
    // The RETRY answered at the first relay still counts: proof was asked on the way to this ACK.
    expect(log).toEqual(["registered first=true attempts=1 retries=1 rtt=10"]);
    expect(reg.followMove(offers[0]!.id)).toBe(false);
  });

  it("declineMove sends the REG again at once without the flag, with the cookie; the flag stays off at this relay", () => {
    const { clock, texts, moves, offers, reg } = setup({}, LONG_ID, true);
    reg.start();
    reg.onRetry(C1);
    reg.onMove(R2);
    expect(reg.declineMove(offers[0]!.id, "unknown-relay")).toBe(true);
    expect(moves).toEqual(["offer 1 192.0.2.2:4433 1", "refused 192.0.2.2:4433 unknown-relay"]);
    reg.onAck();
    clock.advance(10_000);
    expect(texts()).toEqual([FLAGGED, `REG:${LONG_ID} ${C1} move`, `REG:${LONG_ID} ${C1}`, `REG:${LONG_ID} ${C1}`]);
    expect(reg.declineMove(offers[0]!.id, "unknown-relay")).toBe(false);
    // Another relay (a failover): the flag again.
    reg.restart();
    expect(texts().at(-1)).toBe(FLAGGED);
  });

  it(`declines MOVE number ${MAX_MOVES_PER_ROUND + 1} since the last ACK by itself, and counts from zero after an ACK`, () => {
    const { texts, moves, offers, reg } = setup({}, LONG_ID, true);
    reg.start();
    for (let i = 0; i < MAX_MOVES_PER_ROUND; i++) {
      reg.onMove(i % 2 ? R3 : R2);
      reg.followMove(offers.at(-1)!.id);
    }
    reg.onMove(R2);
    expect(moves).toEqual([
      "offer 1 192.0.2.2:4433 1",
      "offer 2 192.0.2.3:4433 2",
      "offer 3 192.0.2.2:4433 3",
      "refused 192.0.2.2:4433 too-many",
    ]);
    expect(texts()).toEqual([FLAGGED, FLAGGED, FLAGGED, FLAGGED, PLAIN]);
    reg.onAck();
    reg.restart();
    reg.onMove(R3);
    expect(moves.at(-1)).toBe("offer 4 192.0.2.3:4433 1");
  });

  it("declines a MOVE left undecided when the REG's retry timer runs out, and goes on without the flag", () => {
    const { clock, sends, texts, moves, offers, reg } = setup({}, LONG_ID, true);
    reg.start();
    reg.onMove(R2);
    clock.advance(500);
    expect(moves).toEqual(["offer 1 192.0.2.2:4433 1", "refused 192.0.2.2:4433 undecided"]);
    expect(sends).toEqual([0, 500]);
    expect(texts()).toEqual([FLAGGED, PLAIN]);
    expect(reg.followMove(offers[0]!.id)).toBe(false);
  });

  it("ignores a MOVE that answers no flagged REG: before start, after the ACK, to a flagless REG, while one is pending", () => {
    const { texts, moves, reg } = setup({}, LONG_ID, true);
    reg.onMove(R2);
    reg.start();
    reg.onAck();
    reg.onMove(R2);
    reg.restart();
    reg.onMove(R2);
    reg.onMove(R3);
    reg.declineMove(1, "unknown-relay");
    reg.onMove(R3);
    expect(moves).toEqual([
      "ignored 192.0.2.2:4433",
      "ignored 192.0.2.2:4433",
      "offer 1 192.0.2.2:4433 1",
      "ignored 192.0.2.3:4433",
      "refused 192.0.2.2:4433 unknown-relay",
      "ignored 192.0.2.3:4433",
    ]);
    expect(texts()).toEqual([FLAGGED, FLAGGED, PLAIN]);
  });

  it("answers ERR bad-id to a flagged REG with the same REG without the flag, at once, and sends no flag there again", () => {
    const { clock, log, sends, texts, moves, reg } = setup({}, LONG_ID, true);
    reg.start();
    clock.advance(5);
    reg.onErr("bad-id");
    clock.advance(5);
    reg.onAck();
    clock.advance(10_000);
    expect(moves).toEqual(["flag-refused"]);
    expect(sends).toEqual([0, 5, 10_010]);
    expect(texts()).toEqual([FLAGGED, PLAIN, PLAIN]);
    expect(log).toEqual(["registered first=true attempts=1 retries=0 rtt=10"]);
    // The caller knows this address is an older relay; another address gets the flag.
    reg.restart({ moveFlag: false });
    reg.restart();
    expect(texts().slice(3)).toEqual([PLAIN, FLAGGED]);
  });

  it("takes ERR long-id to a flagged REG as an older relay's too when the id itself is short enough", () => {
    const id = "x".repeat(MAX_SESSION_ID_LENGTH); // with " move" too long for an older relay
    const fits = setup({}, id, true);
    fits.reg.start();
    fits.reg.onErr("long-id");
    expect(fits.texts()).toEqual([`REG:${id} move`, `REG:${id}`]);
    expect(fits.moves).toEqual(["flag-refused"]);
    const tooLong = setup({}, `${id}x`, true);
    tooLong.reg.start();
    tooLong.reg.onErr("long-id");
    expect(tooLong.log).toEqual(["refused first=true long-id"]);
    expect(tooLong.moves).toEqual([]);
  });

  it("reports ERR bad-id to the REG without the flag as the refusal it is", () => {
    const { log, texts, reg } = setup({}, LONG_ID, true);
    reg.start();
    reg.onErr("bad-id");
    reg.onErr("bad-id");
    expect(texts()).toEqual([FLAGGED, PLAIN]);
    expect(log).toEqual(["refused first=true bad-id"]);
  });

  it("with a short id: the flagged REG (with its token) is long enough for a RETRY; an older relay's ERR bad-id, then ERR short, then the placeholder without the flag", () => {
    const { log, texts, moves, reg, datagrams } = setup({}, "s1", true);
    reg.start();
    expect(datagrams[0]!.length).toBeGreaterThanOrEqual(RETRY_LENGTH);
    reg.onErr("bad-id");
    reg.onErr("short");
    reg.onRetry(C1);
    reg.onAck();
    expect(texts()).toEqual(["REG:s1 move", "REG:s1", `REG:s1 ${PLACEHOLDER_COOKIE}`, `REG:s1 ${C1}`]);
    expect(moves).toEqual(["flag-refused"]);
    expect(log).toEqual(["registered first=true attempts=1 retries=1 rtt=0"]);
  });

  it("consumes exact MOVE lines from the relay; anything else like them is data", () => {
    const { moves, reg } = setup({}, LONG_ID, true);
    reg.start();
    const line = (text: string) => new TextEncoder().encode(text);
    expect(reg.onRelayDatagram(line("MOVE [2001:db8::2]:4433\n"))).toBe(true);
    expect(reg.onRelayDatagram(line("MOVE relay.example:4433\n"))).toBe(false);
    expect(reg.onRelayDatagram(line("MOVE 192.0.2.2:4433"))).toBe(false);
    expect(moves).toEqual(["offer 1 2001:db8::2:4433 1"]);
  });
});
