/**
 * startRelay(): the relay command's assembly (RelayService) inside an app, with the command's
 * defaults and validation, on real sockets.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, DEFAULTS, type RelayHandle, StartupError, startRelay } from "../../src/index.ts";
import { register, TestPeer } from "../utils.ts";

const running: RelayHandle[] = [];
afterEach(async () => {
  for (const relay of running.splice(0)) await relay.stop();
});
async function start(options: Parameters<typeof startRelay>[0] = {}): Promise<RelayHandle> {
  const relay = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "error", ...options });
  running.push(relay);
  return relay;
}

describe("startRelay", () => {
  it("fills in the command's defaults and reports the bound address", async () => {
    const relay = await start();
    expect(relay.address.host).toBe("127.0.0.1");
    expect(relay.address.port).toBeGreaterThan(0);
    const { host: _h, port: _p, logLevel: _l, ...rest } = relay.config;
    const { host: _dh, port: _dp, logLevel: _dl, ...defaults } = DEFAULTS;
    expect(rest).toEqual(defaults);
    expect(relay.metricsUrl).toBeUndefined();
  });

  it("relays between two peers; status() and metrics() see the session; the metrics port serves it too", async () => {
    const relay = await start({ metricsListen: "127.0.0.1:0" });
    const a = await TestPeer.open("127.0.0.2");
    const b = await TestPeer.open("127.0.0.3");
    try {
      const session = crypto.randomUUID();
      expect(await register(a, relay.address.port, session)).toBe("ACK\n");
      expect(await register(b, relay.address.port, session)).toBe("ACK\n");
      a.send("through", relay.address.port);
      expect(await b.nextText()).toBe("through");
      expect(relay.status().sessions).toBe(1);
      expect(relay.metrics()).toContain('quic_relay_sessions_active{state="paired"} 1');
      const response = await fetch(`${relay.metricsUrl}/metrics`);
      expect(await response.text()).toContain('quic_relay_sessions_active{state="paired"} 1');
      expect((await fetch(`${relay.metricsUrl}/readyz`)).status).toBe(200);
    } finally {
      a.close();
      b.close();
    }
  });

  it("stop() closes the socket and the metrics port, and may be called again", async () => {
    const relay = await start({ metricsListen: "127.0.0.1:0" });
    const url = relay.metricsUrl!;
    await relay.stop();
    await relay.stop();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    // The port is free again: a new relay binds it.
    const again = await start({ port: relay.address.port });
    expect(again.address.port).toBe(relay.address.port);
  });

  it("`await using` stops it at the end of the scope", async () => {
    let port = 0;
    {
      await using relay = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "error" });
      port = relay.address.port;
    }
    const again = await start({ port });
    expect(again.address.port).toBe(port);
  });

  it("keeps sessions across a stop and a start with stateFile, as the command does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-api-state-"));
    const a = await TestPeer.open("127.0.0.2");
    const b = await TestPeer.open("127.0.0.3");
    const relays: RelayHandle[] = [];
    try {
      const first = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "error", stateFile: join(dir, "s.db") });
      relays.push(first);
      const port = first.address.port;
      const session = crypto.randomUUID();
      expect(await register(a, port, session)).toBe("ACK\n");
      expect(await register(b, port, session)).toBe("ACK\n");
      await first.stop();
      const second = await startRelay({ host: "127.0.0.1", port, logLevel: "error", stateFile: join(dir, "s.db") });
      relays.push(second);
      expect(second.status().sessions).toBe(1);
      a.send("no new REG", port);
      expect(await b.nextText()).toBe("no new REG");
    } finally {
      for (const relay of relays) await relay.stop();
      a.close();
      b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses options by the command's rules, named as the app spells them", async () => {
    const cases: [Parameters<typeof startRelay>[0], string][] = [
      [{ port: 70_000 }, "options.port must be an integer from 0 to 65535, got '70000'"],
      [{ sessionTimeoutSecs: 0 }, "options.sessionTimeoutSecs must be a number from 0.05"],
      [{ metricsListen: "9464" }, "options.metricsListen must be host:port"],
      [{ dataplane: "fast" as "ts" }, "options.dataplane must be one of"],
      [{ maxSessions: 0 }, "options.maxSessions must be an integer from 1"],
      [{ maxSessionsPerHost: -1 }, "options.maxSessionsPerHost must be an integer"],
      [{ authSecrets: ["too short"] }, "options.authSecrets: a secret is shorter than 16 bytes"],
      [{ sesionTimeoutSecs: 5 } as never, "startRelay(): unknown option 'sesionTimeoutSecs'"],
    ];
    for (const [options, message] of cases) {
      const error = await startRelay({ logLevel: "error", ...options }).then(
        (relay) => {
          running.push(relay);
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(message);
    }
  });

  it("rejects with StartupError when the port is taken", async () => {
    const relay = await start();
    const error = await startRelay({ host: "127.0.0.1", port: relay.address.port, logLevel: "error" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
  });

  it("takes the REG policy options: with authSecrets a plain REG is refused", async () => {
    const relay = await start({ authSecrets: ["a-secret-of-at-least-16-bytes"] });
    const peer = await TestPeer.open("127.0.0.2");
    try {
      expect(await register(peer, relay.address.port, crypto.randomUUID())).toBe("ERR auth\n");
    } finally {
      peer.close();
    }
  });
});
