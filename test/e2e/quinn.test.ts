/**
 * A third, independent QUIC stack: quinn (Rust, Debian's packaged crates) behind the two symmetric
 * NATs, in direct mode (REG from quinn's own socket) and in quic-portal's hand-over (REG from a
 * helper socket that is closed before quinn binds the port), and through NAT rebinding of either
 * peer in verified mode, where only QUIC connection-ID evidence can move a peer (rule 3 is off and
 * the peers send no keepalive REG during the transfer).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { announceSkip, PLANES, RELAY_PORT, skipReason, startRelay } from "./env.ts";
import { assertSymmetricNats } from "./nat-check.ts";
import { waitFor, type Proc } from "./procs.ts";
import { END_EVENTS, progressOf } from "./quic-peers.ts";
import { buildQuinnPeer, largestGapAfter, mintToken, quinnSkipReason, startQuinnClient, startQuinnServer } from "./quinn-peers.ts";
import { natSuite } from "./suite.ts";
import { ADDR } from "./topology.ts";

const reason = skipReason(["ip", "conntrack", "node", "openssl", "tc"]) ?? quinnSkipReason();
announceSkip(reason, "quinn QUIC e2e");

const MB = 1024 * 1024;
const ended = (p: Proc) => p.events.some((e) => END_EVENTS.includes(e.event));

describe.skipIf(reason !== undefined)("e2e: quinn (Rust) peers behind symmetric NATs", () => {
  const { topo, procs, work } = natSuite("qrq");
  let bin = "";
  const secret = randomBytes(24).toString("hex");

  beforeAll(async () => {
    const built = await buildQuinnPeer();
    bin = built.bin;
    console.log(`[e2e] quinn peer: ${bin}${built.builtMs === undefined ? " (cached)" : ` (built in ${(built.builtMs / 1000).toFixed(1)} s)`}`);
  }, 900_000);

  it("the NATs are symmetric-like: one socket gets a different public port per destination", async () => {
    await assertSymmetricNats(topo, procs);
  }, 30_000);

  describe.each(PLANES.map((plane, i) => [plane, RELAY_PORT + i, RELAY_PORT + 10 + i] as const))("relay on the %s data plane", (plane, port, verifiedPort) => {
    let relay: Proc | undefined;
    let verified: Proc | undefined;
    beforeAll(async () => {
      relay = await startRelay(topo, procs, plane, port);
      verified = relay && (await startRelay(topo, procs, plane, verifiedPort, ["--auth-secret", secret]));
    }, 40_000);
    afterAll(() => {
      relay?.kill("SIGTERM");
      verified?.kill("SIGTERM");
    });
    const unavailable = () => {
      if (!relay || !verified) console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      return !relay || !verified;
    };

    async function transfer(mode: "direct" | "handover", bytes: number): Promise<void> {
      const session = `quinn-${mode}-${plane}-${process.pid}`;
      const server = startQuinnServer(topo, procs, bin, work(), bytes, { relayPort: port, session, mode });
      await server.waitEvent("registered", 15_000);
      const client = startQuinnClient(topo, procs, bin, work(), { relayPort: port, session, mode, timeoutMs: 60_000 });
      const end = await client.waitEvent(END_EVENTS, 70_000);
      if (end.event !== "done") console.log(`${client.tail()}\n${server.tail()}`);
      expect(end.event).toBe("done");
      expect(end.bytes).toBe(bytes);
      expect(end.sha256).toBe(server.event("listening")!.sha256);
      console.log(`[e2e] ${plane} quinn ${mode}: handshake ${client.event("handshake")!.ms} ms, ${end.bytes} B in ${end.ms} ms (${end.mbps} Mbit/s), sha256 ok`);
      client.kill();
      server.kill();
    }

    it("direct mode: several MB intact; both peers REG from their own quinn socket", async () => {
      if (unavailable()) return;
      await transfer("direct", 6 * MB);
    }, 90_000);

    it("hand-over mode: REG from a helper socket on the port, closed before quinn binds it; intact", async () => {
      if (unavailable()) return;
      await transfer("handover", 6 * MB);
    }, 90_000);

    /**
     * Verified mode (--auth-secret): REG fields are tokens and rule 3 (quiet rebind) is off; both
     * peers' keepalive REGs are 10 minutes apart, so only connection-ID evidence can move the peer
     * whose NAT forgets its mapping. NAT A's uplink (the data direction) is shaped so that the
     * 12 MiB transfer is still running when the mapping goes.
     */
    async function rebindMidTransfer(side: "client" | "server"): Promise<void> {
      const session = `quinn-rebind-${side}-${plane}-${process.pid}`;
      const opts = { relayPort: verifiedPort, session: mintToken(secret, session), keepaliveMs: 600_000 };
      const bytes = 12 * MB;
      topo.sh("natA", ["tc", "qdisc", "replace", "dev", "wan", "root", "tbf", "rate", "24mbit", "burst", "64kb", "latency", "200ms"]);
      const server = startQuinnServer(topo, procs, bin, work(), bytes, opts);
      let client: Proc | undefined;
      try {
        await server.waitEvent("registered", 15_000);
        const c = (client = startQuinnClient(topo, procs, bin, work(), { ...opts, timeoutMs: 90_000 }));
        await waitFor(() => progressOf(c) >= 3 * MB || ended(c), 40_000, () => c.tail());
        expect(ended(c)).toBe(false);
        const nat = side === "client" ? "natB" : "natA";
        const localPort = Number(side === "client" ? c.event("socket")!.port : server.event("listening")!.port);
        const before = topo.publicPorts(nat, ADDR.relay, verifiedPort, localPort);
        const flushedAt = Date.now();
        const atBytes = progressOf(c);
        topo.flushNat(nat);
        const end = await c.waitEvent(END_EVENTS, 80_000);
        const after = topo.publicPorts(nat, ADDR.relay, verifiedPort, localPort);
        const stall = largestGapAfter(c, flushedAt);
        console.log(
          `[e2e] ${plane} quinn ${side} rebinding (verified mode): public port ${before} -> ${after} at ${atBytes} B; ` +
            `longest silence of the client after the flush ${stall.gapMs} ms (${stall.fromBytes} -> ${stall.toBytes} B); ` +
            `${end.event} ${end.bytes} B${end.ms === undefined ? "" : ` in ${end.ms} ms`}${end.message ? ` (${end.message})` : ""}`,
        );
        const relayLines = verified!.output.split("\n").filter((l) => l.includes(session));
        const rebound = relayLines.filter((l) => /rebound/.test(l));
        console.log(rebound.length ? rebound.join("\n") : `[e2e] the relay logged no rebinding for ${session}`);
        if (end.event !== "done") console.log(`client:\n${c.tail(4)}\nserver:\n${server.tail(4)}\nrelay:\n${relayLines.slice(-6).join("\n")}`);
        expect(end.event).toBe("done");
        expect(end.sha256).toBe(server.event("listening")!.sha256);
        expect(before.length).toBe(1);
        expect(after.length).toBe(1);
        expect(after[0]).not.toBe(before[0]);
        // No REG (keepalives 10 min apart) and no quiet rule (verified mode): connection-ID evidence moved it.
        const wan = side === "client" ? ADDR.natBWan : ADDR.natAWan;
        expect(rebound.join("\n")).toMatch(new RegExp(`rebound session=${session} via=cid from=${wan.replaceAll(".", "\\.")}:`));
      } finally {
        topo.sh("natA", ["tc", "qdisc", "del", "dev", "wan", "root"]);
        client?.kill();
        server.kill();
      }
    }

    it("verified mode: the CLIENT's NAT rebinds mid-transfer (conntrack -D); the transfer completes intact", async () => {
      if (unavailable()) return;
      await rebindMidTransfer("client");
    }, 150_000);

    // A quinn server switches to a client-issued connection ID right after the handshake, one only
    // ever sent encrypted: a relay that learns IDs from long headers alone fails this test at the
    // idle timeout (docs/integration.md, "quinn"; protocol.md, "Connection-ID evidence").
    it("verified mode: the SERVER's NAT rebinds mid-transfer (conntrack -D); the transfer completes intact", async () => {
      if (unavailable()) return;
      await rebindMidTransfer("server");
    }, 150_000);
  });
});
