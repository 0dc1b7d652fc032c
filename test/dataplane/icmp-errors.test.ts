import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Pairs, type RelayStats, SpoofedSources } from "../support/flood-peers.ts";
import { eventually, planesUnderTest } from "../utils.ts";

const RELAY = join(import.meta.dir, "../../bench/flood-relay.ts");

/** The flood bench's relay process: the CLI's Relay + createRegPolicy, printing its counters. */
async function relayProcess(plane: string, args: string[]) {
  const proc = Bun.spawn(["bun", RELAY, "--plane", plane, ...args], { stdout: "pipe", stderr: "inherit" });
  let last: RelayStats | undefined;
  (async () => {
    let buffered = "";
    for await (const chunk of proc.stdout) {
      buffered += new TextDecoder().decode(chunk);
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        last = JSON.parse(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
  })();
  await eventually(() => last !== undefined, 15_000).catch(() => {
    throw new Error("relay process did not start");
  });
  return { proc, stats: () => last! };
}

/**
 * REGs from forged sources: every reply draws an ICMP port-unreachable back to the relay's
 * socket. None of that may cost an established session a datagram. Needs a raw socket (root).
 */
describe.skipIf(!SpoofedSources.open())("replies to forged sources", () => {
  it.each(planesUnderTest())("do not disturb established sessions (%s plane)", async (plane) => {
    const relay = await relayProcess(plane, ["--auth-secret", "icmp-test-secret-0123456789"]);
    const port = relay.stats().port;
    const { mintToken } = await import("../../src/security/token.ts");
    const expiry = Math.floor(Date.now() / 1000) + 600;
    const pairs = await Pairs.open(port, 4, (id) => `REG:${mintToken("icmp-test-secret-0123456789", id, expiry)}\n`);
    const spoofed = SpoofedSources.open()!;
    try {
      pairs.start(port);
      await eventually(() => pairs.delivery().received > 0); // the sessions' traffic flows
      pairs.resetCounts();
      const count = 30_000;
      const started = performance.now();
      for (let i = 0; i < count; ) {
        const due = Math.min(count, Math.floor((performance.now() - started) * 10)); // 10k/s
        for (; i < due; i++) spoofed.send(`REG:ghost-${i}:1:${"A".repeat(43)}\n`, port, i);
        await Bun.sleep(1); // pacing the forged REGs at 10k/s: the load under test, not synchronisation
      }
      // The relay's counters (printed every 200 ms) show the forged REGs handled; the sessions'
      // traffic stops, and what is still on its way arrives.
      await eventually(() => (relay.stats().refusals.auth ?? 0) >= count * 0.99, 15_000).catch(() => {});
      pairs.stop();
      await eventually(() => pairs.delivery().pct >= 99, 5000).catch(() => {});
      const delivery = pairs.delivery();
      const stats = relay.stats();
      expect(stats.refusals.auth).toBeGreaterThanOrEqual(count * 0.99);
      expect(delivery.pct).toBeGreaterThanOrEqual(99);
      expect(stats.sendErrors).toBeLessThan(count / 100);
    } finally {
      spoofed.close();
      pairs.close();
      relay.proc.kill("SIGTERM");
      await relay.proc.exited;
    }
  }, 60_000);
});
