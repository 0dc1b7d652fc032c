/**
 * The drain before a stop, in-process: /readyz 503 `draining` while sessions forward, REGs are
 * answered and /healthz stays 200; the ways it ends; the stop after it. The signal wiring and the
 * process's exit are tested with real processes in test/cli/drain.test.ts.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS, type RelayConfig } from "../../src/config/config.ts";
import { RelayService } from "../../src/service/relay-service.ts";
import { StateStore } from "../../src/state/store.ts";
import { bytes, pairedPeers, register, TestPeer, text } from "../utils.ts";

const base: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, dataplane: "ts", logLevel: "error", metricsListen: "127.0.0.1:0" };

describe("relay service: drain", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function start(config: Partial<RelayConfig> = {}) {
    const service = new RelayService({ ...base, ...config });
    await service.start();
    cleanup.push(() => service.stop());
    const url = `http://127.0.0.1:${service.metricsPort}`;
    const get = async (path: string) => {
      const response = await fetch(`${url}${path}`);
      return `${response.status} ${(await response.text()).trim()}`;
    };
    return { service, port: service.local!.port, get, url };
  }

  async function peers(port: number) {
    const pair = await pairedPeers(port);
    cleanup.push(() => (pair.a.close(), pair.b.close()));
    return pair;
  }

  async function roundTrip(a: TestPeer, b: TestPeer, port: number, payload: string): Promise<void> {
    a.send(bytes(payload), port);
    expect(text((await b.next(3000)).data)).toBe(payload);
  }

  it("answers /readyz 503 draining and /healthz 200, forwards, answers REGs; ends when asked", async () => {
    const { service, port, get, url } = await start();
    const { a, b, session } = await peers(port);
    expect(await get("/readyz")).toBe("200 ok");

    const drained = service.drain(600_000);
    expect(await get("/readyz")).toBe("503 draining");
    expect(await get("/healthz")).toBe("200 ok");
    await roundTrip(a, b, port, "during the drain a->b");
    await roundTrip(b, a, port, "during the drain b->a");
    // A keepalive, and a new session (a peer that was on its way when the drain began).
    expect(await register(a, port, session)).toBe("ACK\n");
    const c = await TestPeer.open("127.0.0.4");
    cleanup.push(() => c.close());
    expect(await register(c, port, "arrived-during-the-drain")).toBe("ACK\n");
    expect(service.sessionCount).toBe(2);

    service.endDrain();
    expect(await drained).toBe("asked to stop");
    await service.stop();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it("ends at once without sessions, and as soon as the last one expires", async () => {
    const empty = await start();
    expect(await empty.service.drain(600_000)).toBe("no sessions left");

    const { service, port, get } = await start({ sessionTimeoutSecs: 0.3 });
    await peers(port);
    const drained = service.drain(600_000);
    expect(await get("/readyz")).toBe("503 draining");
    expect(await drained).toBe("no sessions left");
  });

  it("ends when its time is up", async () => {
    const { service, port } = await start();
    await peers(port);
    expect(await service.drain(50)).toBe("time up");
    expect(service.sessionCount).toBe(1);
  });

  it("stop() during a drain ends it and stops; the state file holds the sessions", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-drain-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, "s.db");
    const { service, port } = await start({ stateFile });
    await peers(port);
    const drained = service.drain(600_000);
    await service.stop();
    expect(await drained).toBe("asked to stop");
    const { store } = StateStore.open(stateFile);
    expect(store.load().state?.sessions).toHaveLength(1);
    store.close();
  });

  it("takes --drain-secs and --shutdown-timeout-secs from a reload, without a restart", async () => {
    const { service } = await start();
    expect(service.stopSettings).toEqual({ drainSecs: 0, shutdownTimeoutSecs: DEFAULTS.shutdownTimeoutSecs });
    expect(service.reload({ config: { ...base, drainSecs: 30, shutdownTimeoutSecs: 9 } })).toEqual([]);
    expect(service.stopSettings).toEqual({ drainSecs: 30, shutdownTimeoutSecs: 9 });
  });
});
