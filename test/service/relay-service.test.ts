import { afterEach, describe, expect, it } from "bun:test";
import { RelayService } from "../../src/service/relay-service.ts";
import { DEFAULTS, type RelayConfig } from "../../src/config/config.ts";
import { resolveSecurityOptions, type SecurityOptions } from "../../src/security/options.ts";
import { mintToken } from "../../src/security/token.ts";
import { eventually, register, TestPeer, text } from "../utils.ts";

/** A sample of the service's metrics, 0 when absent. */
function metric(service: RelayService, name: string): number {
  const line = service.metricsText().split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}
const UNKNOWN_SOURCE = 'quic_relay_drops_total{reason="unknown-source"}';

/**
 * The service reads the system clock, so the quiet rule runs in real time here (the rule itself
 * is tested on a fake clock in test/relay). No fixed waits: a peer that moved resends until the
 * relay follows it, and a relay that must not follow is compared with one that, with the same
 * history, already did; a datagram that is not followed is seen dropped in the metrics.
 */
describe("relay service settings reach the relay", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  const base: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, dataplane: "ts", logLevel: "error" };

  async function start(config: Partial<RelayConfig>, security?: SecurityOptions, session?: string) {
    const service = new RelayService({ ...base, ...config }, { security });
    await service.start();
    cleanup.push(() => service.stop());
    const port = service.local!.port;
    const [a, b, moved] = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.2"].map((h) => TestPeer.open(h)));
    cleanup.push(() => (a!.close(), b!.close(), moved!.close()));
    const id = session ?? crypto.randomUUID();
    expect(await register(a!, port, id)).toBe("ACK\n");
    expect(await register(b!, port, id)).toBe("ACK\n");
    return { service, port, b: b!, moved: moved! };
  }

  /** Sends from `from` (a new port of A's host) until B gets it: the relay followed A there. */
  async function followed(from: TestPeer, port: number, b: TestPeer, payload: string): Promise<void> {
    await eventually(() => {
      from.send(payload, port);
      return b.inbox.some((r) => text(r.data) === payload);
    }, 10_000, 50);
    // Resends still on their way take the same route as this marker, so none is left behind it.
    from.send("followed", port);
    await b.takeUntil("followed");
  }

  /** One datagram from `from` is dropped (counted), and so B gets nothing. */
  async function notFollowed(service: RelayService, from: TestPeer, port: number, b: TestPeer): Promise<void> {
    const dropped = metric(service, UNKNOWN_SOURCE);
    from.send("from a new port", port);
    await eventually(() => metric(service, UNKNOWN_SOURCE) === dropped + 1);
    expect(b.inbox).toEqual([]);
  }

  it("by default follows a silent peer's new port without auth, and not with auth", async () => {
    const secret = "service-test-secret-0123456789";
    const field = mintToken(secret, "authed-session", Math.floor(Date.now() / 1000) + 60);
    // Paired first, so its peers have been silent at least as long as the open relay's.
    const authed = await start({}, resolveSecurityOptions({ authSecret: [secret] }, {}), field);
    const open = await start({});
    await followed(open.moved, open.port, open.b, "from a new port");
    await notFollowed(authed.service, authed.moved, authed.port, authed.b);
  });

  it("--rebind-quiet-secs off: bare data from a new port of a silent peer's IP is not followed", async () => {
    const { service, port, b, moved } = await start({ rebindQuietSecs: -1 });
    await notFollowed(service, moved, port, b);
  });

  it("--rebind-quiet-secs 0.05 follows it, and a reload to off stops following", async () => {
    const reloaded = await start({ rebindQuietSecs: 0.05 });
    const control = await start({ rebindQuietSecs: 0.05 }); // the same history, never reloaded
    await followed(reloaded.moved, reloaded.port, reloaded.b, "from a new port");
    await followed(control.moved, control.port, control.b, "from a new port");
    expect(reloaded.service.reload({ config: { ...base, rebindQuietSecs: -1 } })).toEqual([]);
    const [third, controlThird] = await Promise.all([TestPeer.open("127.0.0.2"), TestPeer.open("127.0.0.2")]);
    cleanup.push(() => (third.close(), controlThird.close()));
    // Once the control relay follows again, the reloaded relay's peer has been quiet long enough too.
    await followed(controlThird, control.port, control.b, "from yet another port");
    await notFollowed(reloaded.service, third, reloaded.port, reloaded.b);
  });
});

describe("relay service: STUN settings", () => {
  const base: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, dataplane: "ts", logLevel: "error" };

  it("--stun-alt-listen with --stun off is a startup error that names both, and binds nothing", async () => {
    const service = new RelayService({ ...base, stun: false, stunAltListen: "127.0.0.1:0" });
    await expect(service.start()).rejects.toThrow("--stun-alt-listen answers STUN: it needs --stun on");
    expect(service.local).toBeUndefined();
  });

  it("an alt address that cannot be bound is a startup error naming it, and the relay's socket is closed again", async () => {
    const taken = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const service = new RelayService({ ...base, stunAltListen: `127.0.0.1:${taken.port}` });
      await expect(service.start()).rejects.toThrow(`cannot listen on udp 127.0.0.1:${taken.port} for --stun-alt-listen`);
      // The relay port it had bound is free again: another socket can take it.
      const port = service.local?.port;
      expect(port).toBeGreaterThan(0);
      const again = await Bun.udpSocket({ hostname: "127.0.0.1", port: port! });
      again.close();
    } finally {
      taken.close();
    }
  });
});
