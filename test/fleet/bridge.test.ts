/**
 * The fleet bridge in-process, with the directory unreachable: bridged sessions restored from a
 * state snapshot keep working, bridge datagrams are unwrapped for the local peer, the local peer's
 * datagrams are wrapped for the remote relay, local sessions are untouched.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { DEFAULTS, type RelayConfig } from "../../src/config/config.ts";
import { createDataPlane } from "../../src/dataplane/select.ts";
import { BridgeCodec } from "../../src/fleet/bridge-codec.ts";
import { type Fleet, prepareFleet } from "../../src/fleet/fleet.ts";
import { createLogger } from "../../src/log.ts";
import { Relay } from "../../src/relay.ts";
import { eventually, planesUnderTest, TestPeer, text, testPeers } from "../utils.ts";

const SECRET = "in-process-fleet-secret-0123";

describe.each(planesUnderTest())("fleet bridge on the %s plane, directory unreachable", (kind) => {
  let relay: Relay | undefined;
  let fleet: Fleet | undefined;
  const open = testPeers();
  afterEach(async () => {
    await fleet?.stop();
    await relay?.stop();
  });

  async function start(remote: TestPeer) {
    const config: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, logLevel: "error" };
    const { plane } = createDataPlane(kind, { host: "127.0.0.1", port: 0, maxDatagramSize: 65_507, socketBufferBytes: 1 << 20, workers: 1, gro: false });
    const logger = createLogger("error");
    fleet = prepareFleet(
      plane,
      {
        redisUrl: "redis://127.0.0.1:1",
        advertise: "127.0.0.1:9",
        advertiseEndpoint: { address: "127.0.0.1", port: 9 },
        secrets: [SECRET],
        prefix: "t",
        heartbeatMs: 200,
        replayWindowMs: 30_000,
      },
      65_507,
      logger,
    );
    relay = new Relay({ config, plane, logger, remote: fleet.bridge });
    await relay.start();
    return { relay, fleet, remoteId: `${remote.host}:${remote.port}` };
  }

  it("resumes a restored bridged session: wraps for the remote relay, unwraps for the local peer", async () => {
    const remoteRelay = await open("127.0.0.14");
    const local = await open("127.0.0.2");
    const { relay, fleet, remoteId } = await start(remoteRelay);
    const restored = relay.table.restoreSessions([
      {
        id: "bridged-1",
        idleMs: 10,
        peers: [
          { address: local.host, port: local.port, idleMs: 10 },
          { address: `fleet:${remoteId}`, port: 7, idleMs: 10 },
        ],
      },
    ]);
    expect(restored).toBe(1);
    await fleet.start(relay);
    // The remote relay's side of the bridge: frames to and from this relay (advertised as 127.0.0.1:9).
    const codec = new BridgeCodec({ self: remoteId, secrets: [SECRET] });
    const self = "127.0.0.1:9";
    const port = relay.local.port;

    local.send("to the remote peer", port);
    const wrapped = await remoteRelay.next();
    const decoded = codec.decode(self, wrapped.data);
    expect(decoded.ok && decoded.frame.sessionId).toBe("bridged-1");
    expect(decoded.ok && text(decoded.frame.payload)).toBe("to the remote peer");

    remoteRelay.send(codec.encode(self, "bridged-1", new TextEncoder().encode("from the remote peer")), port);
    const got = await local.next();
    expect(text(got.data)).toBe("from the remote peer");
    expect(got.port).toBe(port);

    // Forged: a wrong secret is dropped and counted, nothing reaches the local peer.
    remoteRelay.send(new BridgeCodec({ self: remoteId, secrets: ["some-other-secret-xyz"] }).encode(self, "bridged-1", new Uint8Array(5)), port);
    const refused = () => (fleet.stats()!.bridge.rejected["bad-tag"] ?? 0) + (fleet.stats()!.bridge.rejected["unknown-key"] ?? 0);
    await eventually(() => refused() === 1);
    // An authentic datagram after it takes the same path: nothing arrived before it.
    remoteRelay.send(codec.encode(self, "bridged-1", new TextEncoder().encode("marker")), port);
    expect(await local.takeUntil("marker")).toEqual([]);
    expect(refused()).toBe(1);
    expect(fleet.stats()!.reachable).toBe(false);
  });

  it("serves local sessions and answers REG while Redis is unreachable", async () => {
    const remoteRelay = await open("127.0.0.14");
    const { relay, fleet } = await start(remoteRelay);
    await fleet.start(relay);
    const a = await open("127.0.0.2");
    const b = await open("127.0.0.3");
    const port = relay.local.port;
    a.send("REG:local-1\n", port);
    expect(await a.nextText()).toBe("ACK\n");
    b.send("REG:local-1\n", port);
    expect(await b.nextText()).toBe("ACK\n");
    a.send("hello", port);
    expect(await b.nextText()).toBe("hello");
    b.send("back", port);
    expect(await a.nextText()).toBe("back");
    expect(fleet.stats()!.directory.errors).toBeGreaterThan(0);
  });
});
