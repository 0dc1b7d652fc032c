/**
 * What the control plane tells the outside world, on an in-memory plane with a fake clock: one
 * event list per handled batch, in order, and the forwarding totals of each direction, kept
 * across route changes.
 */
import { describe, expect, it } from "bun:test";
import { DEFAULTS } from "../../src/config/config.ts";
import { createLogger } from "../../src/log.ts";
import { Relay } from "../../src/relay.ts";
import type { SessionEvent } from "../../src/sessions/types.ts";
import { FakeClock } from "../sessions/fixtures.ts";
import { MemoryPlane } from "../support/memory-plane.ts";

async function relayOn() {
  const plane = new MemoryPlane();
  const relay = new Relay({ config: { ...DEFAULTS, logLevel: "error" }, plane, logger: createLogger("error"), clock: new FakeClock() });
  await relay.start();
  return { relay, plane };
}

const A = { address: "10.0.0.1", port: 5000 };
const B = { address: "10.0.0.2", port: 6000 };
const B2 = { address: "10.0.0.2", port: 6001 };

describe("relay outputs", () => {
  it("publishes one list of session events per handled batch, in the order they happened", async () => {
    const { relay, plane } = await relayOn();
    const batches: (readonly SessionEvent[])[] = [];
    relay.onEvents((events) => batches.push(events));
    plane.receive(A, "REG:s1\n");
    plane.receive(B, "REG:s1\n");
    plane.receive(A, "forwarded by the route: no control batch");
    plane.receive(A, "REG:s1\n");
    plane.receive({ address: "10.0.0.9", port: 1 }, "junk from a stranger: handled, but changes nothing");
    expect(batches.map((b) => b.map((e) => e.kind))).toEqual([["created", "registered"], ["registered", "paired"], ["registered"]]);
    expect(batches[1]![0]).toEqual({ kind: "registered", session: "s1", peer: B });
    await relay.stop();
  });

  it("counts each direction, across a rebind of the second peer", async () => {
    const { relay, plane } = await relayOn();
    plane.receive(A, "REG:s1\n");
    plane.receive(B, "REG:s1\n");
    plane.receive(A, "a1");
    plane.receive(A, "a2");
    plane.receive(B, "b1");
    // B's NAT moved: a REG from its new port takes over (routes are replaced, counts banked).
    plane.receive(B2, "REG:s1\n");
    plane.receive(B2, "b2..");
    plane.receive(A, "a3");
    const totals = relay.forwardedByDirection();
    expect(totals.first_to_second).toEqual({ packets: 3, bytes: 6 });
    expect(totals.second_to_first).toEqual({ packets: 2, bytes: 6 });
    await relay.stop();
  });
});
