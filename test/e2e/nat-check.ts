/** Proof that the topology's NATs are symmetric-like, so hole punching could not have worked. */
import { expect } from "bun:test";
import { join } from "node:path";
import { PEERS } from "./env.ts";
import { type ProcSet, waitFor } from "./procs.ts";
import { ADDR, type Topology } from "./topology.ts";

/** One socket behind each NAT asks two public echo servers how it is seen; the ports must differ. */
export async function assertSymmetricNats(topo: Topology, procs: ProcSet): Promise<void> {
  const echo = procs.spawn("udp-echo", topo.exec("pub", ["node", join(PEERS, "udp-echo.mjs"), ADDR.relay, "7001", ADDR.relayAlt, "7002"]));
  try {
    await echo.waitEvent("listening", 10_000);
    await waitFor(() => echo.events.filter((e) => e.event === "listening").length >= 2, 10_000, () => echo.tail());
    for (const [node, wan] of [["a", ADDR.natAWan], ["b", ADDR.natBWan]] as const) {
      const ask = procs.spawn(`udp-ask ${node}`, topo.exec(node, ["node", join(PEERS, "udp-ask.mjs"), ADDR.relay, "7001", ADDR.relayAlt, "7002"]));
      const seen = (await ask.waitEvent("seen", 10_000)) as unknown as { localPort: number; seen: Record<string, string> };
      const first = seen.seen[`${ADDR.relay}:7001`]!;
      const second = seen.seen[`${ADDR.relayAlt}:7002`]!;
      console.log(`[e2e] NAT ${node}: local port ${seen.localPort} seen as ${first} and ${second}`);
      expect(first.split(":")[0]).toBe(wan);
      expect(second.split(":")[0]).toBe(wan);
      expect(first.split(":")[1]).not.toBe(second.split(":")[1]);
    }
  } finally {
    echo.kill();
  }
}
