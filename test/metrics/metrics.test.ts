import { afterEach, describe, expect, it } from "bun:test";
import { RelayService } from "../../src/service/relay-service.ts";
import { DEFAULTS } from "../../src/config/config.ts";
import { ExpositionWriter } from "../../src/metrics/exposition.ts";
import { bytes, eventually, pairedPeers, planesUnderTest, register, TestPeer } from "../utils.ts";

/** `name{labels}` -> value, from an exposition document. */
function parse(doc: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of doc.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe("exposition format", () => {
  it("writes HELP, TYPE and escaped labels", () => {
    const text = new ExpositionWriter()
      .single("a_total", "counter", "Things\ncounted", 3)
      .family("b", "gauge", "B", [[{ kind: 'x"y\\z' }, 1.5], [{}, NaN]])
      .toString();
    expect(text).toBe(
      '# HELP a_total Things\\ncounted\n# TYPE a_total counter\na_total 3\n# HELP b B\n# TYPE b gauge\nb{kind="x\\"y\\\\z"} 1.5\nb NaN\n',
    );
  });
});

describe.each(planesUnderTest())("metrics and health endpoint (%s plane)", (plane) => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function start() {
    const service = new RelayService({ ...DEFAULTS, host: "127.0.0.1", port: 0, dataplane: plane, workers: 1, logLevel: "error", metricsListen: "127.0.0.1:0" });
    await service.start();
    cleanup.push(() => service.stop());
    const base = `http://127.0.0.1:${service.metricsPort}`;
    const scrape = async () => parse(await (await fetch(`${base}/metrics`)).text());
    return { service, port: service.local!.port, base, scrape };
  }

  it("answers /healthz and /readyz while running, 404 elsewhere, and stops with the relay", async () => {
    const { service, base } = await start();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe("ok\n");
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    await service.stop();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it("counts sessions, forwarding per direction, refusals, drops, early datagrams and rebinds", async () => {
    const { port, scrape } = await start();
    const before = await scrape();
    expect(before.get(`quic_relay_dataplane_info{kind="${plane}"${plane === "native" ? ',workers="1",gro="true",gso="true"' : ""}}`)).toBe(1);
    expect(before.get('quic_relay_sessions_active{state="paired"}')).toBe(0);

    const { a, b, session } = await pairedPeers(port);
    cleanup.push(() => (a.close(), b.close()));
    for (let i = 0; i < 3; i++) a.send(bytes("0123456789"), port);
    for (let i = 0; i < 2; i++) b.send(bytes("abcde"), port);
    await eventually(() => a.inbox.length === 2 && b.inbox.length === 3);

    // Early datagrams: c waits alone and sends two, d pairs and gets them.
    const c = await TestPeer.open("127.0.0.4");
    const d = await TestPeer.open("127.0.0.5");
    cleanup.push(() => (c.close(), d.close()));
    expect(await register(c, port, "early")).toBe("ACK\n");
    c.send("early-1", port);
    c.send("early-2", port);
    await eventually(async () => (await scrape()).get("quic_relay_early_datagrams_held_total") === 2);
    expect(await register(d, port, "early")).toBe("ACK\n");
    await eventually(() => d.inbox.length === 2);

    // A refusal, a drop from a stranger, a rebind by REG from a new port of a's host.
    const stranger = await TestPeer.open("127.0.0.6");
    const moved = await TestPeer.open("127.0.0.2");
    cleanup.push(() => (stranger.close(), moved.close()));
    expect(await register(stranger, port, "")).toBe("ERR\n");
    stranger.send("who am i", port);
    expect(await register(moved, port, session)).toBe("ACK\n");

    let m = new Map<string, number>();
    await eventually(async () => (m = await scrape()).get('quic_relay_drops_total{reason="unknown-source"}') === 1);

    expect(m.get('quic_relay_sessions_active{state="paired"}')).toBe(2);
    expect(m.get('quic_relay_sessions_active{state="waiting"}')).toBe(0);
    expect(m.get("quic_relay_peers_active")).toBe(4);
    expect(m.get("quic_relay_sessions_created_total")).toBe(2);
    expect(m.get("quic_relay_sessions_paired_total")).toBe(2);
    expect(m.get('quic_relay_forwarded_datagrams_total{direction="first_to_second"}')).toBe(3);
    expect(m.get('quic_relay_forwarded_datagrams_total{direction="second_to_first"}')).toBe(2);
    expect(m.get('quic_relay_forwarded_bytes_total{direction="first_to_second"}')).toBe(30);
    expect(m.get('quic_relay_forwarded_bytes_total{direction="second_to_first"}')).toBe(10);
    expect(m.get('quic_relay_dataplane_datagrams_total{path="forwarded"}')).toBe(5);
    expect(m.get("quic_relay_early_datagrams_held_total")).toBe(2);
    expect(m.get("quic_relay_early_datagrams_delivered_total")).toBe(2);
    // The control plane forwarded the two held datagrams itself; everything else went by routes.
    expect(m.get("quic_relay_control_forwarded_datagrams_total")).toBe(2);
    expect(m.get("quic_relay_control_forwarded_bytes_total")).toBe(14);
    expect(m.get("quic_relay_early_held_bytes")).toBe(0);
    // Early drops are counted once, as drops: the old per-reason early family and name are gone.
    expect(m.get('quic_relay_drops_total{reason="early-overflow"}')).toBe(0);
    expect([...m.keys()].filter((k) => k.startsWith("quic_relay_early_datagrams_dropped") || k.startsWith("quic_relay_early_bytes_held"))).toEqual([]);
    expect(m.get('quic_relay_refusals_total{reason="empty-id"}')).toBe(1);
    expect(m.get('quic_relay_drops_total{reason="unknown-source"}')).toBe(1);
    expect(m.get('quic_relay_rebinds_total{kind="reg"}')).toBe(1);
    expect(m.get("quic_relay_internal_errors_total")).toBe(0);

    // Directional totals survive the routes being replaced (the rebind) and keep counting.
    b.send(bytes("xyz"), port);
    await eventually(() => moved.inbox.length >= 1);
    const after = await scrape();
    expect(after.get('quic_relay_forwarded_datagrams_total{direction="second_to_first"}')).toBe(3);
    expect(after.get('quic_relay_forwarded_bytes_total{direction="second_to_first"}')).toBe(13);
    expect(after.get("quic_relay_control_forwarded_datagrams_total")).toBe(2);
  });

  it("uses only bounded label values", async () => {
    const { port, scrape } = await start();
    for (let i = 0; i < 3; i++) {
      const { a, b } = await pairedPeers(port, [`127.0.1.${i + 1}`, `127.0.2.${i + 1}`]);
      a.close();
      b.close();
    }
    const keys = [...(await scrape()).keys()];
    for (const key of keys) {
      expect(key).not.toMatch(/127\.0\.|[0-9a-f]{8}-[0-9a-f]{4}/);
    }
    // About 100 series (the event-loop histogram is 15 of them), whatever the number of sessions.
    expect(keys.length).toBeLessThan(120);
  });
});
