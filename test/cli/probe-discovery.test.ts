/**
 * `quic-relay probe`'s discovery step against the real relay process (`bun src/cli/main.ts`), on
 * each data plane: with a second discovery address (--stun-alt-listen) it sees no NAT and says
 * direct paths can work; --discover-only registers nothing; a relay with --stun off leaves the
 * mapping unknown while the probe itself still works.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { eventually, planesUnderTest } from "../utils.ts";
import { RelayProcess } from "./relay-process.ts";

const MAIN = `${import.meta.dir}/../../src/cli/main.ts`;

async function probe(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(["bun", MAIN, "probe", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  // A deadline for a hung probe, not a measurement.
  const timer = setTimeout(() => proc.kill("SIGKILL"), 25_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** `name{labels}` -> value from the relay's /metrics. */
async function scrape(metricsPort: number): Promise<Map<string, number>> {
  const doc = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of doc.split("\n")) {
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const PROBE_FAST = ["--count", "5", "--interval-ms", "0", "--drain-ms", "500"];

describe.each(planesUnderTest())("probe discovery against a relay process (%s plane)", (plane) => {
  const running: RelayProcess[] = [];
  afterEach(() => {
    for (const r of running.splice(0)) r.kill();
  });

  /** The relay on port 0 (no race for a port), with the ports it reports once listening. */
  async function relayProcess(args: string[]): Promise<{ relay: RelayProcess; port: number; alt?: number; metrics: number }> {
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", "0", "--dataplane", plane, "--metrics-listen", "127.0.0.1:0", ...args]);
    running.push(relay);
    await relay.waitFor("quic-relay listening");
    const out = relay.output();
    const port = Number(/listening on udp 127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const alt = /STUN also on udp 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
    const metrics = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(out)![1]);
    expect(out).toContain(`dataplane=${plane}`);
    return { relay, port, alt: alt === undefined ? undefined : Number(alt), metrics };
  }

  it(
    "--discover-only --json: the socket's own address, no NAT, direct paths possible, seen by the relay port and the second address",
    async () => {
      const { port, alt } = await relayProcess(["--stun-alt-listen", "127.0.0.1:0"]);
      expect(alt).toBeGreaterThan(0);
      const { code, stdout } = await probe("--relay", `127.0.0.1:${port}`, "--discover-only", "--json");
      expect(code).toBe(0);
      const result = JSON.parse(stdout);
      expect(result.relay).toBe(`127.0.0.1:${port}`);
      const d = result.discovery;
      expect(d.reflexive).toBe(`127.0.0.1:${d.localPort}`);
      expect(d.mapping).toBe("no-nat");
      expect(d.directPossible).toBe(true);
      expect(d.observations.map((o: { to: string }) => o.to)).toEqual([`127.0.0.1:${port}`, `127.0.0.1:${alt}`]);
      expect(d.observations.map((o: { mapped: string }) => o.mapped)).toEqual([d.reflexive, d.reflexive]);
      expect(d.silent).toEqual([]);
    },
    30_000,
  );

  it(
    "--discover-only registers nothing; the full probe in text mode prints its progress and ends with the verdict",
    async () => {
      const { relay, port, alt, metrics } = await relayProcess(["--stun-alt-listen", "127.0.0.1:0"]);
      const only = await probe("--relay", `127.0.0.1:${port}`, "--discover-only");
      expect(only.code).toBe(0);
      expect(only.stdout.trimEnd().split("\n").at(-1)).toStartWith("verdict      Direct hole punching can work here");
      const after = await scrape(metrics);
      // Both discovery addresses answered (a retry after a slow answer would add one).
      expect(after.get('quic_relay_stun_requests_total{outcome="answered"}')).toBeGreaterThanOrEqual(2);
      expect(after.get("quic_relay_sessions_created_total")).toBe(0);
      expect(after.get('quic_relay_sessions_active{state="waiting"}')).toBe(0);
      expect(after.get('quic_relay_sessions_active{state="paired"}')).toBe(0);
      expect(relay.output()).not.toContain("session created");

      const full = await probe("--relay", `127.0.0.1:${port}`, ...PROBE_FAST);
      expect(full.code).toBe(0);
      const lines = full.stdout.trimEnd().split("\n");
      expect(lines.at(-1)).toStartWith("verdict      ");
      expect(lines.at(-1)).toContain("Direct hole punching can work here");
      expect(full.stdout).toMatch(/5 sent, 5 returned, 0% loss/);
      // Each attempt is announced on stderr while it waits.
      expect(full.stderr).toContain(`asking 127.0.0.1:${port} how this host is seen (STUN, try 1/2)`);
      expect(full.stderr).toContain(`asking 127.0.0.1:${alt} how this host is seen (STUN, try 1/2)`);
      // The full probe did register: the check above could have seen it.
      await relay.waitFor("session created");
      expect((await scrape(metrics)).get("quic_relay_sessions_created_total")).toBe(1);
    },
    30_000,
  );

  /* docs/integration.md: "Each attempt is printed on stderr while it waits": stdout is the report. */
  it(
    "text mode prints the discovery attempts on stderr, not stdout",
    async () => {
      const { port } = await relayProcess([]);
      const { code, stdout, stderr } = await probe("--relay", `127.0.0.1:${port}`, "--discover-only");
      expect(code).toBe(0);
      expect(stderr).toContain(`asking 127.0.0.1:${port} how this host is seen (STUN, try 1/2)`);
      expect(stdout).not.toContain("asking ");
    },
    30_000,
  );

  it(
    "a relay with --stun off: --discover-only exits 1 with no address and the relay silent; the full probe still pairs",
    async () => {
      const { port, metrics } = await relayProcess(["--stun", "off"]);
      const only = await probe("--relay", `127.0.0.1:${port}`, "--discover-only", "--json");
      expect(only.code).toBe(1);
      const d = JSON.parse(only.stdout).discovery;
      expect(d.reflexive).toBeNull();
      expect(d.mapping).toBe("unknown");
      expect(d.directPossible).toBeNull();
      expect(d.observations).toEqual([]);
      expect(d.silent).toEqual([`127.0.0.1:${port}`]);
      // Both tries were junk from an unknown source to a relay without STUN (polled: the probe
      // gave up on them, the relay may still be counting).
      const junk = 'quic_relay_drops_total{reason="unknown-source"}';
      await eventually(async () => ((await scrape(metrics)).get(junk) ?? 0) >= 2).catch(() => {});
      const m = await scrape(metrics);
      expect(m.get(junk)).toBe(2);
      expect(m.has('quic_relay_stun_requests_total{outcome="answered"}')).toBe(false);

      const full = await probe("--relay", `127.0.0.1:${port}`, ...PROBE_FAST, "--json");
      expect(full.code).toBe(0);
      const result = JSON.parse(full.stdout);
      expect(result.received).toBe(5);
      expect(result.discovery.mapping).toBe("unknown");
      expect(result.discovery.reflexive).toBeNull();
    },
    30_000,
  );
});
