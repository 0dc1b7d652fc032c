import { describe, expect, it } from "bun:test";
import { DEFAULTS, type RelayConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log.ts";
import { Relay } from "../../src/relay.ts";
import { FakeClock } from "../sessions/fixtures.ts";
import { MemoryPlane } from "../support/memory-plane.ts";

/** The control plane on an in-memory plane with a fake clock: rules about time, deterministically. */
async function relayOn(config: Partial<RelayConfig> = {}) {
  const clock = new FakeClock();
  const plane = new MemoryPlane();
  const lines: string[] = [];
  const logger = createLogger("info");
  logger.setReporters([{ log: (entry) => lines.push(entry.args.map(String).join(" ")) }]);
  const relay = new Relay({ config: { ...DEFAULTS, logLevel: "info", ...config }, plane, logger, clock });
  await relay.start();
  return { relay, plane, clock, lines, stop: () => relay.stop() };
}
const at = (n: number) => ({ address: `10.1.${n >> 8}.${n & 255}`, port: 40_000 });

describe("relay control plane (in-memory plane, fake clock)", () => {
  it("rate-limits every kind of lifecycle line, and counts what it held back", async () => {
    const { relay, plane, clock, lines, stop } = await relayOn();
    // 500 sessions created and 500 REGs refused (busy) within one second of the relay's clock.
    for (let i = 0; i < 500; i++) plane.receive(at(i), `REG:session-number-${i}\n`);
    for (let i = 0; i < 500; i++) plane.receive(at(i), `REG:another-session-${i}\n`);
    expect(relay.table.sessionCount).toBe(500);
    expect(relay.table.stats.refusals.busy).toBe(500);
    expect(lines.filter((l) => l.startsWith("session created"))).toHaveLength(20);
    expect(lines.filter((l) => l.startsWith("registration refused"))).toHaveLength(20);
    expect(relay.logSuppressed).toEqual({ created: 480, refused: 480 });
    // The next second starts with one summary line per kind.
    clock.advance(1000);
    plane.receive(at(600), "REG:one-more-session\n");
    plane.receive(at(600), "REG:and-another-one\n");
    expect(lines.filter((l) => l.includes("lines not logged"))).toEqual([
      expect.stringContaining("created lines not logged in the last second"),
      expect.stringContaining("refused lines not logged in the last second"),
    ]);
    await stop();
  });

  it("answers a cookie that aged out with a fresh RETRY, and accepts the fresh one", async () => {
    const { relay, plane, clock, stop } = await relayOn({ verifySource: true });
    const a = at(1);
    const id = "3f2b9c1e-8a4d-4c6b-9e1f-2a3b4c5d6e7f";
    plane.receive(a, `REG:${id}\n`);
    const [first] = plane.take(a);
    expect(first).toMatch(/^RETRY [A-Za-z0-9_-]{16}\n$/);
    clock.advance(121_000);
    plane.receive(a, `REG:${id} ${first!.slice(6, -1)}\n`);
    const [second] = plane.take(a);
    expect(second).toMatch(/^RETRY /);
    expect(second).not.toBe(first);
    expect(relay.cookieFailures.expired).toBe(1);
    plane.receive(a, `REG:${id} ${second!.slice(6, -1)}\n`);
    expect(plane.take(a)).toEqual(["ACK\n"]);
    expect(relay.table.session(id)!.peers[0]!.proven).toBe(true);
    await stop();
  });

  it("pauses forwarding to an unproven peer after the bound, until it speaks", async () => {
    const { relay, plane, stop } = await relayOn({ maxUnansweredBytes: 3000 });
    const [a, b] = [at(1), at(2)];
    plane.receive(a, "REG:bounded-session\n");
    plane.receive(b, "REG:bounded-session\n");
    plane.take();
    const kb = new Uint8Array(1000).fill(0x41);
    for (let i = 0; i < 5; i++) plane.receive(a, kb);
    expect(plane.take(b)).toHaveLength(3);
    expect(relay.plane.counters().unansweredDrops).toBe(2);
    plane.receive(b, "an acknowledgement");
    plane.receive(a, kb);
    expect(plane.take(b)).toHaveLength(1);
    await stop();
  });
});
