import { describe, expect, it } from "bun:test";
import { type LivenessOptions, RelayLiveness } from "../../src/fleet/liveness.ts";

function setup(overrides: Partial<LivenessOptions> = {}, reachable = true) {
  let now = 1_000_000;
  const pings: { relay: string; nonce: Uint8Array }[] = [];
  const liveness = new RelayLiveness(
    (relay, nonce) => {
      pings.push({ relay, nonce });
      return reachable;
    },
    { timeoutMs: 40, retryMs: 10, freshMs: 100, goneMs: 5000, clock: () => now, ...overrides },
  );
  return { liveness, pings, advance: (ms: number) => (now += ms) };
}

describe("relay liveness", () => {
  it("a relay that echoes the ping's nonce is live; the check ends at the pong", async () => {
    const { liveness, pings } = setup();
    const done = liveness.check("r1");
    expect(pings).toHaveLength(1);
    liveness.answered("r1", pings[0]!.nonce);
    expect(await done).toBe(true);
    expect(liveness.known("r1")).toBe("live");
  });

  it("a pong with another nonce, or from another relay, answers nothing", async () => {
    const { liveness, pings } = setup();
    const done = liveness.check("r1");
    liveness.answered("r1", new Uint8Array(8));
    liveness.answered("r2", pings[0]!.nonce);
    expect(await done).toBe(false);
    expect(liveness.known("r1")).toBe("gone");
    expect(liveness.counts.gone).toBe(1);
  });

  it("no answer: pinged every retry period, then gone; gone is remembered for a while, and forgotten when heard from", async () => {
    const { liveness, pings, advance } = setup();
    expect(await liveness.check("r1")).toBe(false);
    expect(pings.length).toBe(4);
    expect(liveness.known("r1")).toBe("gone");
    // Known gone: no new ping.
    expect(await liveness.check("r1")).toBe(false);
    expect(pings.length).toBe(4);
    advance(5001);
    expect(liveness.known("r1")).toBe("unknown");
    liveness.heard("r1");
    expect(liveness.known("r1")).toBe("live");
    advance(101);
    expect(liveness.known("r1")).toBe("unknown");
  });

  it("one check per relay at a time; concurrent callers share it", async () => {
    const { liveness, pings } = setup();
    const first = liveness.check("r1");
    const second = liveness.check("r1");
    expect(pings).toHaveLength(1);
    liveness.answered("r1", pings[0]!.nonce);
    expect(await Promise.all([first, second])).toEqual([true, true]);
  });

  it("a relay heard lately is live without a ping", async () => {
    const { liveness, pings } = setup();
    liveness.heard("r1");
    expect(await liveness.check("r1")).toBe(true);
    expect(pings).toHaveLength(0);
  });

  it("a relay without an address is gone at once", async () => {
    const { liveness } = setup({}, false);
    expect(await liveness.check("r1")).toBe(false);
    expect(liveness.known("r1")).toBe("gone");
  });

  it("stop ends every check in progress", async () => {
    const { liveness } = setup({ timeoutMs: 60_000, retryMs: 30_000 });
    const done = liveness.check("r1");
    liveness.stop();
    expect(await done).toBe(false);
  });
});
