import { afterEach, describe, expect, it } from "bun:test";
import type { Subprocess } from "bun";
import { join } from "node:path";
import { loadNativeAddon } from "../../src/dataplane/native-addon.ts";
import { eventually, TestPeer } from "../utils.ts";

const ROOT = join(import.meta.dir, "../..");
const loaded = loadNativeAddon();

function rssMb(pid: number): number {
  const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/**
 * A sender using UDP GSO hands the relay's socket coalesced bursts faster than any per-datagram
 * loop drains them. The TS plane must keep forwarding during the burst and keep its queues (and so
 * its memory) bounded, instead of waiting for an event-loop turn that does not come.
 */
describe.skipIf(!loaded.ok)("TS plane under a GSO burst", () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0).reverse()) f();
  });

  it("forwards during the burst with bounded memory", async () => {
    if (!loaded.ok) return;
    const port = await (async () => {
      const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
      const p = s.port;
      s.close();
      return p;
    })();
    const relay: Subprocess = Bun.spawn(["bun", "src/cli/main.ts", "--host", "127.0.0.1", "--port", String(port), "--dataplane", "ts", "--log-level", "warn"], {
      cwd: ROOT,
      stderr: "pipe",
      // The receiver never answers: without this the relay's bound on unanswered bytes (a defence
      // against reflection) would rightly stop the flow after the first MiB.
      env: { ...process.env, QUIC_RELAY_MAX_UNANSWERED_BYTES: "0" },
    });
    cleanup.push(() => relay.kill("SIGKILL"));
    const sender = new loaded.addon.GsoSocket("127.0.0.2");
    cleanup.push(() => sender.close());
    const receiver = await TestPeer.open("127.0.0.3");
    cleanup.push(() => receiver.close());
    const reg = new TextEncoder().encode("REG:gso-burst\n");
    // Register the sender's socket (one segment) and the receiver.
    let acked = false;
    for (let i = 0; i < 100 && !acked; i++) {
      sender.send(reg, reg.length, "127.0.0.1", port);
      receiver.send(reg, port);
      acked = await receiver.next(100).then(
        (r) => new TextDecoder().decode(r.data) === "ACK\n",
        () => false,
      );
    }
    expect(acked).toBe(true);

    const burst = new Uint8Array(1200 * 40).fill(0x42);
    // Only the burst's datagrams count (late ACKs to the retried REGs may still come in).
    const delivered = () => receiver.inbox.filter((r) => r.data.length === 1200 && r.data[0] === 0x42).length;
    let peak = 0;
    // Flat out, without yielding: the receiver's kernel buffer keeps what arrives meanwhile. A fixed
    // amount (a million datagrams, about 1.5 s here), not a fixed time.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 500; i++) sender.send(burst, 1200, "127.0.0.1", port);
      peak = Math.max(peak, rssMb(relay.pid));
    }
    // Forwarding goes on (or went on) through the burst; the relay's memory stays bounded meanwhile.
    await eventually(() => {
      peak = Math.max(peak, rssMb(relay.pid));
      return delivered() > 1000;
    }, 10_000);
    expect(peak).toBeLessThan(400);
  }, 20_000);
});
