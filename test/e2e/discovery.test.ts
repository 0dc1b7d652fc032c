/**
 * Address discovery through real NATs: `quic-relay probe --discover-only` asks the relay and its
 * second discovery address (--stun-alt-listen, another port of the same address) from one socket.
 * Behind NAT A (fully random ports: symmetric) it must say the relay is needed; behind NAT B, built
 * port-preserving here (plain masquerade: endpoint-independent mapping), that direct can work.
 * Discovery registers nothing: the relay's metrics show no session and no peer afterwards. Debian's
 * classic RFC 3489 client (`stun`, package stun-client) reads its public address from the relay too.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { announceSkip, has, MAIN, PEERS, PLANES, RELAY_PORT, skipReason, startRelay } from "./env.ts";
import { type Proc, waitFor } from "./procs.ts";
import { natSuite } from "./suite.ts";
import { ADDR } from "./topology.ts";

const reason = skipReason(["ip", "conntrack", "node", "openssl"]);
announceSkip(reason, "address-discovery e2e");

/** Second discovery address: the relay's address, another port (separates EIM from APDM). */
const ALT_OFFSET = 100;
/** The relay's metrics endpoint on the loopback of "pub". */
const METRICS_OFFSET = 200;
/** Source port for the classic stun client (it binds this and the next); below the ephemeral range. */
const STUN_SRC_PORT = 20_000;

interface DiscoveryJson {
  relay: string;
  discovery: {
    reflexive: string | null;
    localPort: number;
    mapping: string;
    directPossible: boolean | null;
    basis: string;
    sentence: string;
    observations: { to: string; mapped: string; rttMs: number }[];
    silent: string[];
  };
}

const hostOf = (hostPort: string) => hostPort.slice(0, hostPort.lastIndexOf(":"));
const portOf = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));

describe.skipIf(reason !== undefined)("e2e address discovery: probe --discover-only behind a symmetric and a port-preserving NAT", () => {
  const { topo, procs } = natSuite("qrs");
  // Before natSuite's beforeAll builds the namespaces: NAT A stays symmetric, NAT B keeps ports.
  topo.natMapping("natB", "port-preserving");

  /** `probe --discover-only` inside a node; its exit code and output. */
  async function discoverOnly(node: "a" | "b", port: number, json: boolean): Promise<{ code: number; proc: Proc }> {
    const proc = procs.spawn(`probe ${node}:${port}${json ? " --json" : ""}`, topo.exec(node, [
      "bun", MAIN, "probe", "--relay", `${ADDR.relay}:${port}`, "--discover-only", ...(json ? ["--json"] : []),
    ]));
    // A guard against a hung process (killed, -1), not a bound on how fast discovery is.
    const code = await proc.exitCode(30_000);
    return { code, proc };
  }

  async function discoveryJson(node: "a" | "b", port: number): Promise<DiscoveryJson["discovery"]> {
    const { code, proc } = await discoverOnly(node, port, true);
    expect(code, proc.tail()).toBe(0);
    const line = proc.stdout.split("\n").find((l) => l.startsWith("{"));
    expect(line, proc.tail()).toBeDefined();
    const parsed = JSON.parse(line!) as DiscoveryJson;
    expect(parsed.relay).toBe(`${ADDR.relay}:${port}`);
    console.log(`[e2e] ${node}: ${parsed.discovery.mapping}, ${parsed.discovery.observations.map((o) => `${o.to} saw ${o.mapped}`).join(", ")} (local port ${parsed.discovery.localPort})`);
    return parsed.discovery;
  }

  /** The text form's last line (the verdict) and its "nat mapping" line. */
  async function discoveryText(node: "a" | "b", port: number): Promise<{ verdict: string; mapping: string }> {
    const { code, proc } = await discoverOnly(node, port, false);
    expect(code, proc.tail()).toBe(0);
    const lines = proc.stdout.split("\n").filter((l) => l.trim() !== "");
    return { verdict: lines.at(-1) ?? "", mapping: lines.find((l) => l.startsWith("nat mapping")) ?? "" };
  }

  /** The relay's /metrics, read from inside "pub" (the endpoint listens on its loopback). */
  async function metrics(port: number): Promise<Map<string, number>> {
    const url = `http://127.0.0.1:${port + METRICS_OFFSET}/metrics`;
    const proc = procs.spawn(`metrics ${port}`, topo.exec("pub", [
      "bun", "-e", `const r = await fetch(${JSON.stringify(url)}); if (!r.ok) process.exit(1); process.stdout.write(await r.text());`,
    ]));
    const code = await proc.exitCode(15_000);
    expect(code, proc.tail()).toBe(0);
    const values = new Map<string, number>();
    for (const line of proc.stdout.split("\n")) {
      const m = line.match(/^(\S+) (\S+)$/);
      if (m && !line.startsWith("#")) values.set(m[1]!, Number(m[2]));
    }
    return values;
  }

  it("the NATs as built: A gives each destination its own public port, B keeps the socket's port for all", async () => {
    // Ground truth without the relay: plain UDP echo servers on two addresses and two ports.
    const echo = procs.spawn("udp-echo", topo.exec("pub", ["node", join(PEERS, "udp-echo.mjs"), ADDR.relay, "7001", ADDR.relay, "7003", ADDR.relayAlt, "7002"]));
    try {
      await waitFor(() => echo.events.filter((e) => e.event === "listening").length >= 3, 10_000, () => echo.tail());
      for (const [node, wan] of [["a", ADDR.natAWan], ["b", ADDR.natBWan]] as const) {
        const ask = procs.spawn(`udp-ask ${node}`, topo.exec(node, ["node", join(PEERS, "udp-ask.mjs"), ADDR.relay, "7001", ADDR.relay, "7003", ADDR.relayAlt, "7002"]));
        const seen = (await ask.waitEvent("seen", 10_000)) as unknown as { localPort: number; seen: Record<string, string> };
        const views = [`${ADDR.relay}:7001`, `${ADDR.relay}:7003`, `${ADDR.relayAlt}:7002`].map((k) => seen.seen[k]!);
        console.log(`[e2e] NAT ${node} (${topo.mappingOf(node === "a" ? "natA" : "natB")}): local port ${seen.localPort} seen as ${views.join(", ")}`);
        for (const v of views) expect(hostOf(v)).toBe(wan);
        const ports = new Set(views.map(portOf));
        if (node === "a") expect(ports.size).toBe(3);
        else expect([...ports]).toEqual([seen.localPort]);
      }
    } finally {
      echo.kill();
    }
  }, 30_000);

  describe.each(PLANES.map((plane, i) => [plane, RELAY_PORT + i] as const))("relay on the %s data plane", (plane, port) => {
    let relay: Proc | undefined;
    beforeAll(async () => {
      relay = await startRelay(topo, procs, plane, port, [
        "--stun-alt-listen", `${ADDR.relay}:${port + ALT_OFFSET}`,
        "--metrics-listen", `127.0.0.1:${port + METRICS_OFFSET}`,
      ]);
    }, 30_000);
    afterAll(() => relay?.kill("SIGTERM"));
    const unavailable = () => {
      if (!relay) console.warn(`[e2e] ${plane} plane unavailable: test body skipped`);
      return !relay;
    };

    it("behind the symmetric NAT A: address-and-port-dependent, the relay is needed", async () => {
      if (unavailable()) return;
      const d = await discoveryJson("a", port);
      expect(hostOf(d.reflexive ?? "")).toBe(ADDR.natAWan);
      expect(d.mapping).toBe("address-and-port-dependent");
      expect(d.directPossible).toBe(false);
      expect(d.silent).toEqual([]);
      expect(d.observations.map((o) => o.to)).toEqual([`${ADDR.relay}:${port}`, `${ADDR.relay}:${port + ALT_OFFSET}`]);
      expect(d.observations[0]!.mapped).toBe(d.reflexive!);
      for (const o of d.observations) expect(hostOf(o.mapped)).toBe(ADDR.natAWan);
      expect(portOf(d.observations[0]!.mapped)).not.toBe(portOf(d.observations[1]!.mapped));

      const text = await discoveryText("a", port);
      expect(text.mapping).toStartWith("nat mapping  address-and-port-dependent");
      expect(text.verdict).toStartWith("verdict      This network needs the relay");
    }, 60_000);

    it("behind the port-preserving NAT B: endpoint-independent, direct hole punching can work", async () => {
      if (unavailable()) return;
      const d = await discoveryJson("b", port);
      expect(hostOf(d.reflexive ?? "")).toBe(ADDR.natBWan);
      expect(d.mapping).toBe("endpoint-independent");
      expect(d.directPossible).toBe(true);
      expect(d.silent).toEqual([]);
      expect(d.observations.map((o) => o.to)).toEqual([`${ADDR.relay}:${port}`, `${ADDR.relay}:${port + ALT_OFFSET}`]);
      for (const o of d.observations) expect(o.mapped).toBe(d.reflexive!);
      // Plain masquerade kept the socket's own port.
      expect(portOf(d.reflexive!)).toBe(d.localPort);

      const text = await discoveryText("b", port);
      expect(text.mapping).toStartWith("nat mapping  endpoint-independent");
      expect(text.verdict).toStartWith("verdict      Direct hole punching can work here");
    }, 60_000);

    it("--discover-only registers nothing: no session, no peer; the STUN answers are counted", async () => {
      if (unavailable()) return;
      const before = await metrics(port);
      for (const node of ["a", "b"] as const) {
        const { code, proc } = await discoverOnly(node, port, true);
        expect(code, proc.tail()).toBe(0);
      }
      const after = await metrics(port);
      const answered = 'quic_relay_stun_requests_total{outcome="answered"}';
      // Two probes, each answered by the relay port and by the second address (retries add more).
      expect(after.get(answered)! - before.get(answered)!).toBeGreaterThanOrEqual(4);
      expect(after.get("quic_relay_sessions_created_total")).toBe(0);
      expect(after.get('quic_relay_sessions_active{state="waiting"}')).toBe(0);
      expect(after.get('quic_relay_sessions_active{state="paired"}')).toBe(0);
      expect(after.get("quic_relay_peers_active")).toBe(0);
      expect(relay!.output).not.toContain("session created");
    }, 60_000);

    it("Debian's classic stun client behind NAT A reads NAT A's public address from the relay", async () => {
      if (unavailable()) return;
      if (!has("stun")) return console.warn("[e2e] stun (apt: stun-client) not installed: classic-client test skipped");
      const before = await metrics(port);
      const stun = procs.spawn(`stun ${port}`, topo.exec("a", ["stun", `${ADDR.relay}:${port}`, "-v", "-p", String(STUN_SRC_PORT)]));
      // The client's exit code is its NAT-type bitmask, not success; the guard only ends a hang.
      await stun.exitCode(30_000);
      const mapped = stun.output.match(/MappedAddress = (\d+\.\d+\.\d+\.\d+):(\d+)/);
      expect(mapped, stun.tail()).not.toBeNull();
      expect(mapped![1]).toBe(ADDR.natAWan);
      // The public port NAT A chose for the client's socket toward the relay (conntrack).
      expect(topo.publicPorts("natA", ADDR.relay, port, STUN_SRC_PORT)).toEqual([Number(mapped![2])]);
      const after = await metrics(port);
      // Its change requests (RFC 3489 tests II and III) get no answer rather than a false one.
      const refused = 'quic_relay_stun_requests_total{outcome="change-refused"}';
      expect(after.get(refused)! - before.get(refused)!).toBeGreaterThan(0);
      expect(after.get("quic_relay_sessions_created_total")).toBe(0);
      console.log(`[e2e] ${plane} stun client: MappedAddress ${mapped![1]}:${mapped![2]}; ${after.get(refused)! - before.get(refused)!} change requests refused`);
    }, 60_000);
  });
});
