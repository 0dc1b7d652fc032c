import { afterEach, describe, expect, it } from "bun:test";
import { RelayService } from "../../src/service/relay-service.ts";
import { DEFAULTS, type RelayConfig } from "../../src/config/config.ts";
import { resolveSecurityOptions, type SecurityOptions } from "../../src/security/options.ts";
import { mintToken } from "../../src/security/token.ts";
import { pairedPeers, register, TestPeer, text } from "../utils.ts";

describe("relay service settings reach the relay", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  const base: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, dataplane: "ts", logLevel: "error" };

  async function start(config: Partial<RelayConfig>, security?: SecurityOptions) {
    const service = new RelayService({ ...base, ...config }, { security });
    await service.start();
    cleanup.push(() => service.stop());
    const port = service.local!.port;
    const { a, b } = await pairedPeers(port);
    const moved = await TestPeer.open("127.0.0.2");
    cleanup.push(() => (a.close(), b.close(), moved.close()));
    return { service, port, b, moved };
  }

  it("by default follows a silent peer's new port without auth, and not with auth", async () => {
    const open = await start({});
    await Bun.sleep(1100);
    open.moved.send("from a new port", open.port);
    expect(text((await open.b.next()).data)).toBe("from a new port");
    const secret = "service-test-secret-0123456789";
    const service = new RelayService({ ...base }, { security: resolveSecurityOptions({ authSecret: [secret] }, {}) });
    await service.start();
    cleanup.push(() => service.stop());
    const port = service.local!.port;
    const field = mintToken(secret, "authed-session", Math.floor(Date.now() / 1000) + 60);
    const [a, b, moved] = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.2"].map((h) => TestPeer.open(h)));
    cleanup.push(() => (a!.close(), b!.close(), moved!.close()));
    expect(await register(a!, port, field)).toBe("ACK\n");
    expect(await register(b!, port, field)).toBe("ACK\n");
    await Bun.sleep(1100);
    moved!.send("from a new port", port);
    expect(await b!.silence(300)).toEqual([]);
  });

  it("--rebind-quiet-secs off: bare data from a new port of a silent peer's IP is not followed", async () => {
    const { port, b, moved } = await start({ rebindQuietSecs: -1 });
    await Bun.sleep(100);
    moved.send("from a new port", port);
    expect(await b.silence(300)).toEqual([]);
  });

  it("--rebind-quiet-secs 0.05 follows it, and a reload to off stops following", async () => {
    const { service, port, b, moved } = await start({ rebindQuietSecs: 0.05 });
    await Bun.sleep(100);
    moved.send("from a new port", port);
    expect(text((await b.next()).data)).toBe("from a new port");
    expect(service.reload({ config: { ...base, rebindQuietSecs: -1 } })).toEqual([]);
    const third = await TestPeer.open("127.0.0.2");
    cleanup.push(() => third.close());
    await Bun.sleep(100);
    third.send("from yet another port", port);
    expect(await b.silence(300)).toEqual([]);
  });
});
