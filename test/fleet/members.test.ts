/**
 * A relay that this relay has not heard of yet (it just joined, and the member set was read before
 * it did) sends the first frame of a session: the frame waits for the member set to be read again
 * and is delivered, instead of being refused as from an unknown sender. A frame from an address
 * the member set does not name is still refused.
 */
import { describe, expect, it } from "bun:test";
import { BridgeCodec } from "../../src/fleet/bridge-codec.ts";
import { eventually, planesUnderTest, testPeers } from "../utils.ts";
import { FLEET_SECRET, type FleetRelay, REDIS_SERVER } from "../support/fleet-harness.ts";
import { fleetPerTest } from "../support/fleet-suite.ts";
import { registerAt } from "../support/fleet-peers.ts";

if (!REDIS_SERVER) console.warn("fleet member tests skipped: redis-server is not installed (apt-get install -y redis-server)");
const suite = REDIS_SERVER ? describe : describe.skip;

suite.each(planesUnderTest())("frames from a relay not yet known, on the %s plane", (plane) => {
  const fleet = fleetPerTest(plane);
  const open = testPeers();

  it("wait for the member set to be read again: a new member's first frame is delivered, a stranger's refused", async () => {
    // A long heartbeat: the relay reads the member set at start, then only when asked to.
    const [relay] = (await fleet.start(["127.0.0.85"], { heartbeatSecs: 30 })) as [FleetRelay];
    const b = await open("127.0.0.3");
    const session = crypto.randomUUID();
    expect(await registerAt(b, relay, session)).toBe("ACK\n");

    // Another relay joins now: its health key and membership, as its heartbeat writes them.
    const newcomer = await open("127.0.0.86");
    const newcomerId = `127.0.0.86:${newcomer.port}`;
    await fleet.redis().command("SET", [`quic-relay:relay:${newcomerId}`, "{}", "PX", "60000"]);
    await fleet.redis().command("SADD", ["quic-relay:relays", newcomerId]);
    const codec = new BridgeCodec({ self: newcomerId, secrets: [FLEET_SECRET] });
    newcomer.send(codec.encode(relay.advertise, session, new TextEncoder().encode("first")), relay.port, relay.host);
    expect(new TextDecoder().decode((await b.next()).data)).toBe("first");
    const after = (await relay.stats()).fleet!;
    expect(after.bridge.rejected["unknown-sender"] ?? 0).toBe(0);
    expect(after.bridgedNow).toBe(1);

    // The same kind of frame from an address no member has: refused once the member set was read again.
    const stranger = await open("127.0.0.87");
    const strangerCodec = new BridgeCodec({ self: `127.0.0.87:${stranger.port}`, secrets: [FLEET_SECRET] });
    stranger.send(strangerCodec.encode(relay.advertise, session, new TextEncoder().encode("not a member")), relay.port, relay.host);
    await eventually(async () => ((await relay.stats()).fleet!.bridge.rejected["unknown-sender"] ?? 0) === 1);
    newcomer.send(codec.encode(relay.advertise, session, new TextEncoder().encode("second")), relay.port, relay.host);
    expect(new TextDecoder().decode((await b.next()).data)).toBe("second");
    expect(b.inbox).toEqual([]);
  }, 30_000);
});
