/**
 * Unmodified apps through `quic-relay connect`: ngtcp2's gtlsserver behind NAT A and gtlsclient
 * behind NAT B know nothing about the relay; a `connect --forward` tunnel next to the server and
 * a `connect --listen` tunnel next to the client register, keep alive and shuttle the datagrams.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { announceSkip, MAIN, PLANES, RELAY_PORT, skipReason, startRelay } from "./env.ts";
import { natSuite } from "./suite.ts";
import { assertSymmetricNats } from "./nat-check.ts";
import { waitFor, type Proc } from "./procs.ts";
import { ADDR, type Node } from "./topology.ts";

const reason = skipReason(["ip", "conntrack", "tc", "gtlsserver", "gtlsclient", "openssl", "node"]);
announceSkip(reason, "connect-tunnel e2e (ngtcp2)");

const MB = 1024 * 1024;
const FILE_BYTES = 12 * MB;
const SERVER_PORT = 4443;
const LISTEN_PORT = 5443;

describe.skipIf(reason !== undefined)("e2e connect tunnels: unmodified ngtcp2 apps behind symmetric NATs", () => {
  const { topo, procs, work } = natSuite("qrt");
  let blobSha = "";
  let smallBlob = Buffer.alloc(0);
  beforeAll(() => {
    const blob = randomBytes(FILE_BYTES);
    writeFileSync(join(work().dir, "www", "blob"), blob);
    smallBlob = randomBytes(256 * 1024);
    writeFileSync(join(work().dir, "www", "small"), smallBlob);
    blobSha = createHash("sha256").update(blob).digest("hex");
  });

  function connect(node: Node, name: string, args: string[]): Proc {
    return procs.spawn(name, topo.exec(node, ["bun", MAIN, "connect", ...args]));
  }

  /** Server side (A): gtlsserver on loopback + `connect --forward`; client side (B): `connect --listen`. */
  async function tunnels(port: number, session: string, keepaliveSecs: number, clientKeepaliveSecs = keepaliveSecs) {
    const relay = `${ADDR.relay}:${port}`;
    const server = procs.spawn(`gtlsserver ${session}`, topo.exec("a", [
      "gtlsserver", "-q", "-d", join(work().dir, "www"), "127.0.0.1", String(SERVER_PORT), work().key, work().cert,
    ]));
    await topo.waitUdpListening("a", SERVER_PORT, 10_000);
    const serverSide = connect("a", `connect-forward ${session}`, [
      "--relay", relay, "--session", session, "--forward", `127.0.0.1:${SERVER_PORT}`, "--keepalive-secs", String(keepaliveSecs),
    ]);
    const clientSide = connect("b", `connect-listen ${session}`, [
      "--relay", relay, "--session", session, "--listen", `127.0.0.1:${LISTEN_PORT}`, "--keepalive-secs", String(clientKeepaliveSecs),
    ]);
    const stop = async () => {
      for (const p of [clientSide, serverSide]) p.kill("SIGTERM");
      server.kill();
      await Promise.all([clientSide.exitCode(5000), serverSide.exitCode(5000), server.exited]);
    };
    try {
      await serverSide.waitOutput(/tunnel up/, 15_000);
      await clientSide.waitOutput(/tunnel up/, 15_000);
    } catch (error) {
      await stop();
      throw error;
    }
    return { server, serverSide, clientSide, stop };
  }

  function download(session: string, name = "blob"): { client: Proc; file: string } {
    const dir = join(work().dir, `dl-${session}`);
    mkdirSync(dir, { recursive: true });
    const client = procs.spawn(`gtlsclient ${session}`, topo.exec("b", [
      "gtlsclient", "-q", "--timeout=10s", "127.0.0.1", String(LISTEN_PORT), `https://127.0.0.1:${LISTEN_PORT}/${name}`,
      `--download=${dir}`, "--exit-on-all-streams-close",
    ]));
    return { client, file: join(dir, name) };
  }

  function fileSha(file: string): string {
    return existsSync(file) ? createHash("sha256").update(readFileSync(file)).digest("hex") : "(missing)";
  }

  function sizeOf(file: string): number {
    return existsSync(file) ? statSync(file).size : 0;
  }

  it("the NATs are symmetric-like: one socket gets a different public port per destination", async () => {
    await assertSymmetricNats(topo, procs);
  }, 30_000);

  describe.each(PLANES.map((plane, i) => [plane, RELAY_PORT + i] as const))("relay on the %s data plane", (plane, port) => {
    let relay: Proc | undefined;
    beforeAll(async () => {
      relay = await startRelay(topo, procs, plane, port);
    }, 30_000);
    afterAll(() => relay?.kill("SIGTERM"));

    it(`downloads ${FILE_BYTES / MB} MB with gtlsclient from gtlsserver through two connect tunnels`, async () => {
      if (!relay) return console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      const session = `gtls-${plane}-${process.pid}`;
      const t = await tunnels(port, session, 10);
      try {
        const started = performance.now();
        const { client, file } = download(session);
        const code = await client.exitCode(60_000);
        const ms = Math.round(performance.now() - started);
        const sha = fileSha(file);
        console.log(`[e2e] ${plane} connect+ngtcp2: gtlsclient exit ${code}, ${sizeOf(file)} B in ${ms} ms (${((sizeOf(file) * 8) / ms / 1000).toFixed(1)} Mbit/s), sha256 ${sha === blobSha ? "ok" : "MISMATCH"}`);
        // gtlsclient exits 0 even when the download failed: the file's hash is the verdict.
        expect(sha).toBe(blobSha);
        t.clientSide.kill("SIGTERM");
        expect(await t.clientSide.exitCode(5000)).toBe(0);
        expect(t.clientSide.output).toMatch(/SIGTERM: closing/);
      } finally {
        await t.stop();
      }
    }, 120_000);

    it("late partner through tunnels: the client's Initial waits at the relay, not for a retransmit", async () => {
      if (!relay) return console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      const session = `gtls-late-${plane}-${process.pid}`;
      const relayAddr = `${ADDR.relay}:${port}`;
      const clientSide = connect("b", `connect-listen ${session}`, ["--relay", relayAddr, "--session", session, "--listen", `127.0.0.1:${LISTEN_PORT}`]);
      let serverSide: Proc | undefined;
      let server: Proc | undefined;
      try {
        await clientSide.waitOutput(/tunnel up/, 15_000);
        const clientStarted = performance.now();
        const { client, file } = download(session, "small");
        // The scenario, in real time: the partner comes after the client's first Initial timer ran out.
        await Bun.sleep(1500);
        server = procs.spawn(`gtlsserver ${session}`, topo.exec("a", [
          "gtlsserver", "-q", "-d", join(work().dir, "www"), "127.0.0.1", String(SERVER_PORT), work().key, work().cert,
        ]));
        // The server must listen before its tunnel registers: the held Initial arrives right after the ACK.
        await topo.waitUdpListening("a", SERVER_PORT, 10_000);
        serverSide = connect("a", `connect-forward ${session}`, ["--relay", relayAddr, "--session", session, "--forward", `127.0.0.1:${SERVER_PORT}`]);
        await serverSide.waitOutput(/tunnel up/, 15_000);
        const serverUp = performance.now();
        const code = await client.exitCode(30_000);
        const done = performance.now();
        const sha = fileSha(file);
        const expected = createHash("sha256").update(smallBlob).digest("hex");
        console.log(`[e2e] ${plane} late partner via tunnels: server side registered ${Math.round(serverUp - clientStarted)} ms after gtlsclient started; download (256 KiB) done ${Math.round(done - serverUp)} ms after that, exit ${code}, sha256 ${sha === expected ? "ok" : "MISMATCH"}`);
        expect(sha).toBe(expected);
        // The Initial waited at the relay and went over on pairing. How soon the download follows
        // (without holding, ngtcp2's next retransmit comes ~1.5 s later still) is a figure for the bench.
        await relay!.waitOutput(new RegExp(`session paired session=${session} .*held=[1-9]`), 5000);
      } finally {
        for (const p of [clientSide, serverSide]) p?.kill("SIGTERM");
        server?.kill();
        await Promise.all([clientSide.exitCode(5000), serverSide?.exitCode(5000), server?.exited]);
      }
    }, 60_000);

    it("probe from behind NAT B pairs its two sockets and measures RTT and loss", async () => {
      if (!relay) return console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      const probe = procs.spawn(`probe ${plane}`, topo.exec("b", [
        "bun", MAIN, "probe", "--relay", `${ADDR.relay}:${port}`, "--count", "200", "--interval-ms", "2", "--json",
      ]));
      expect(await probe.exitCode(30_000)).toBe(0);
      const result = JSON.parse(probe.stdout.trim().split("\n").at(-1)!);
      console.log(`[e2e] ${plane} probe through NAT B: registration ${result.registrationMs.join("/")} ms, rtt p50 ${result.rttMs.p50} ms p99 ${result.rttMs.p99} ms, loss ${result.lossPercent}%`);
      expect(result.received).toBeGreaterThanOrEqual(190);
    }, 40_000);

    it("quic-portal-style hand-over: REG from the app's port, then the app itself talks to the relay", async () => {
      if (!relay) return console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      const session = `portal-${plane}-${process.pid}`;
      const relayAddr = `${ADDR.relay}:${port}`;
      const clientPort = 45000;
      let server: Proc | undefined;
      // gtlsclient cannot choose its port: pin the namespace's ephemeral range to one port.
      topo.sh("b", ["sysctl", "-qw", `net.ipv4.ip_local_port_range=${clientPort} ${clientPort}`]);
      try {
        const serverReg = connect("a", `register ${session} A`, ["--relay", relayAddr, "--session", session, "--register-only", "--local-port", String(SERVER_PORT)]);
        expect(await serverReg.exitCode(15_000)).toBe(0);
        server = procs.spawn(`gtlsserver portal ${session}`, topo.exec("a", [
          "gtlsserver", "-q", "-d", join(work().dir, "www"), "0.0.0.0", String(SERVER_PORT), work().key, work().cert,
        ]));
        await topo.waitUdpListening("a", SERVER_PORT, 10_000);
        const clientReg = connect("b", `register ${session} B`, ["--relay", relayAddr, "--session", session, "--register-only", "--local-port", String(clientPort)]);
        expect(await clientReg.exitCode(15_000)).toBe(0);
        const dir = join(work().dir, `dl-${session}`);
        mkdirSync(dir, { recursive: true });
        const started = performance.now();
        const client = procs.spawn(`gtlsclient portal ${session}`, topo.exec("b", [
          "gtlsclient", "-q", "--timeout=10s", ADDR.relay, String(port), `https://${relayAddr}/blob`, `--download=${dir}`, "--exit-on-all-streams-close",
        ]));
        const code = await client.exitCode(60_000);
        const file = join(dir, "blob");
        const ms = Math.round(performance.now() - started);
        console.log(`[e2e] ${plane} quic-portal-style (no tunnel): gtlsclient exit ${code}, ${sizeOf(file)} B in ${ms} ms, sha256 ${fileSha(file) === blobSha ? "ok" : "MISMATCH"}`);
        expect(fileSha(file)).toBe(blobSha);
      } finally {
        topo.sh("b", ["sysctl", "-qw", "net.ipv4.ip_local_port_range=32768 60999"]);
        server?.kill();
        await server?.exited;
      }
    }, 90_000);

    it("survives NAT rebinding of both tunnels mid-download (conntrack -D)", async () => {
      if (!relay) return console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      const session = `gtls-rebind-${plane}-${process.pid}`;
      // Slow the server's uplink so the download lasts long enough to rebind in the middle of it.
      // Server side: keepalives far apart, so connection-ID evidence in its data packets has to move
      // the relay. Client side: it only receives, and after its NAT forgets it, nothing it sends
      // reaches anybody until its next datagram; connect's keepalive REG (2 s here) is that datagram.
      topo.sh("natA", ["tc", "qdisc", "replace", "dev", "wan", "root", "tbf", "rate", "24mbit", "burst", "64kb", "latency", "200ms"]);
      try {
        const t = await tunnels(port, session, 60, 2);
        const started = performance.now();
        const { client, file } = download(session);
        await waitFor(() => sizeOf(file) >= 3 * MB || client.code !== undefined, 40_000, () => `download stalled at ${sizeOf(file)} B`);
        topo.flushNat("natA");
        const atA = sizeOf(file);
        await waitFor(() => sizeOf(file) >= atA + 2 * MB || client.code !== undefined, 40_000, () => `download stalled at ${sizeOf(file)} B after rebinding NAT A`);
        topo.flushNat("natB");
        const atB = sizeOf(file);
        const code = await client.exitCode(60_000);
        const ms = Math.round(performance.now() - started);
        const sha = fileSha(file);
        console.log(`[e2e] ${plane} connect+ngtcp2 rebinding: NAT A flushed at ${atA} B, NAT B at ${atB} B; exit ${code}, ${sizeOf(file)} B in ${ms} ms, sha256 ${sha === blobSha ? "ok" : "MISMATCH"}`);
        console.log(relay.output.split("\n").filter((l) => /rebound/.test(l) && l.includes(session)).join("\n"));
        if (sha !== blobSha) console.log(`relay:\n${relay.tail(Number(process.env.E2E_RELAY_TAIL ?? 12))}\nclient tunnel:\n${t.clientSide.tail(8)}\nserver tunnel:\n${t.serverSide.tail(8)}`);
        expect(sha).toBe(blobSha);
        // NAT A's new port was followed by connection-ID evidence (the server side sent no REG).
        expect(relay.output).toMatch(new RegExp(`rebound session=${session} via=cid from=${ADDR.natAWan.replaceAll(".", "\\.")}:`));
        await t.stop();
      } finally {
        topo.sh("natA", ["tc", "qdisc", "del", "dev", "wan", "root"]);
      }
    }, 150_000);
  });
});
