/**
 * The native plane's bridge routes through the addon itself, with real sockets on loopback: two
 * NativeRelays stand for two fleet relays. Frames made by the C++ threads decode with the
 * TypeScript codec; the threads deliver a genuine frame once, and refuse a replay, a tampered
 * frame and a frame from any other address. The nonce store is shared with the control plane.
 */
import { expect, it } from "bun:test";

import { loadNativeAddon, type NativeRelayHandle } from "../../src/dataplane/native-addon.ts";
import { BridgeCodec } from "../../src/fleet/bridge-codec.ts";
import { closedAfterEach, nativeDescribe, text, until } from "./native-helpers.ts";

const suite = nativeDescribe();
const SECRET = "native bridge test secret";
const SESSION = "3b0e8e0a-0d5c-4c7e-9a51-5f4a2c1d9e77";

suite("native bridge routes", () => {
  const { cleanup, peer } = closedAfterEach();

  /** A raw NativeRelay whose wake-ups are ignored: control datagrams stay pending until taken. */
  function openRelay(host: string): NativeRelayHandle & { id: string; port: number } {
    const loaded = loadNativeAddon();
    if (!loaded.ok) throw new Error(loaded.reason);
    const relay = new loaded.addon.NativeRelay({ host, port: 0, maxDatagramSize: 1500, socketBufferBytes: 1 << 20, workers: 1, gro: false }, () => {});
    cleanup.push(() => relay.close());
    const port = relay.local().port;
    return Object.assign(relay, { id: `${host}:${port}`, port });
  }

  /** Gives each relay the other's keys, as the fleet bridge does (BridgeCodec.pairKeys). */
  function key(r1: ReturnType<typeof openRelay>, r2: ReturnType<typeof openRelay>) {
    const c1 = new BridgeCodec({ self: r1.id, secrets: [SECRET] });
    const c2 = new BridgeCodec({ self: r2.id, secrets: [SECRET] });
    const k12 = c1.pairKeys(r2.id);
    const k21 = c2.pairKeys(r1.id);
    r1.setBridgeMember("127.0.0.72", r2.port, k12.tx.id, k12.tx.key, k12.rx.map((k) => k.id), k12.rx.map((k) => k.key), 30_000);
    r2.setBridgeMember("127.0.0.71", r1.port, k21.tx.id, k21.tx.key, k21.rx.map((k) => k.id), k21.rx.map((k) => k.key), 30_000);
    return { c2 };
  }

  /** Waits for the next control datagram of `relay`. */
  async function nextControl(relay: NativeRelayHandle): Promise<{ data: Uint8Array; address: string; port: number }> {
    let batch: ReturnType<NativeRelayHandle["takeControl"]> = null;
    await until(() => (batch = relay.takeControl(1)) !== null, 5000, "a control datagram");
    const b = batch!;
    return { data: new Uint8Array(b.data.slice(b.meta[0]!, b.meta[0]! + b.meta[1]!)), address: b.addresses[0]!, port: b.meta[4]! };
  }

  it("wraps a peer's datagrams in frames the TypeScript codec verifies, and delivers a frame once", async () => {
    const r1 = openRelay("127.0.0.71");
    const r2 = openRelay("127.0.0.72");
    const { c2 } = key(r1, r2);
    const p1 = await peer("127.0.0.2");
    const p2 = await peer("127.0.0.3");
    r1.setBridgeRoute(1, "out", SESSION, "127.0.0.2", p1.port, "127.0.0.72", r2.port, 0, 0, 0, false, false);

    // r2 has no inbound route yet: the frame goes up to its control plane, untouched.
    p1.send(text("first"), r1.port, "127.0.0.71");
    const frame = await nextControl(r2);
    expect(frame.port).toBe(r1.port);
    const decoded = c2.decode(r1.id, frame.data);
    expect(decoded.ok && decoded.frame.sessionId === SESSION && new TextDecoder().decode(decoded.frame.payload)).toBe("first");
    expect(r1.counters().bridgeFramed).toBe(1);

    r2.setBridgeRoute(2, "in", SESSION, "127.0.0.3", p2.port, "127.0.0.71", r1.port, 0, 0, 0, false, false);
    p1.send(text("second"), r1.port, "127.0.0.71");
    await p2.waitFor(1);
    expect(new TextDecoder().decode(p2.received[0]!.data)).toBe("second");
    expect(p2.received[0]!.port).toBe(r2.port);
    expect(r2.counters().bridgeDelivered).toBe(1);

    // The first frame (never admitted on r2: the test decoded it with its own codec) is delivered
    // once when r1's socket sends it again, then refused as a replay, and a tampered copy fails its tag.
    const tampered = frame.data.slice();
    tampered[tampered.length - 17]! ^= 1; // the payload's last byte
    for (const data of [frame.data, frame.data, frame.data, tampered]) r1.sendBatch([data], ["127.0.0.72"], [r2.port]);
    await until(() => r2.counters().bridgeReplayed === 2 && r2.counters().bridgeBadTag === 1, 5000, "replays and the tampered frame refused");
    await p2.waitFor(2);
    expect(p2.received.map((r) => new TextDecoder().decode(r.data))).toEqual(["second", "first"]);

    // The same frame from an address that is not r1's goes up to the control plane, not to p2.
    const stranger = await peer("127.0.0.99");
    stranger.send(frame.data, r2.port, "127.0.0.72");
    const up = await nextControl(r2);
    expect(up.address).toBe("127.0.0.99");
    expect(p2.received.length).toBe(2);
  });

  it("the control plane draws nonces from, and records them in, the threads' sequence and window", async () => {
    const r1 = openRelay("127.0.0.71");
    const r2 = openRelay("127.0.0.72");
    const { c2 } = key(r1, r2);
    const p1 = await peer("127.0.0.2");
    r1.setBridgeRoute(1, "out", SESSION, "127.0.0.2", p1.port, "127.0.0.72", r2.port, 0, 0, 0, false, false);
    const [epoch, first] = r1.bridgeNonce("127.0.0.72", r2.port);
    p1.send(text("x"), r1.port, "127.0.0.71");
    const frame = await nextControl(r2);
    const view = new DataView(frame.data.buffer, frame.data.byteOffset);
    // The thread's frame took the nonce after the one the control plane drew.
    expect(view.getUint16(14) * 2 ** 32 + view.getUint32(16)).toBe(epoch!);
    expect(view.getUint32(20)).toBe(first! + 1);
    expect(Array.from(r1.bridgeNonce("127.0.0.72", r2.port))).toEqual([epoch!, first! + 2]);
    expect(c2.decode(r1.id, frame.data).ok).toBe(true);

    expect(r2.bridgeAdmit("127.0.0.71", r1.port, epoch!, 7)).toBe(true);
    expect(r2.bridgeAdmit("127.0.0.71", r1.port, epoch!, 7)).toBe(false);
    expect(r2.bridgeAdmit("127.0.0.71", r1.port, epoch! - 1, 8)).toBe(false);
    // Forgotten, the relay's next sequence starts at a later epoch, and the window is empty.
    r1.forgetBridgeMember("127.0.0.72", r2.port);
    expect(r1.bridgeNonce("127.0.0.72", r2.port)[0]!).toBeGreaterThan(epoch!);
    r2.forgetBridgeMember("127.0.0.71", r1.port);
    expect(r2.bridgeAdmit("127.0.0.71", r1.port, epoch!, 7)).toBe(true);
  });

  it("refuses bad arguments with a TypeError and keeps working", () => {
    const r1 = openRelay("127.0.0.71");
    const key = new Uint8Array(16);
    expect(() => r1.setBridgeMember("127.0.0.72", 1, 0, new Uint8Array(15), [0], [key], 1000)).toThrow(TypeError);
    expect(() => r1.setBridgeMember("127.0.0.72", 1, 0, key, [0, 1], [key], 1000)).toThrow(TypeError);
    expect(() => r1.setBridgeMember("not an address", 1, 0, key, [0], [key], 1000)).toThrow(TypeError);
    expect(() => r1.setBridgeRoute(1, "sideways" as "in", SESSION, "127.0.0.2", 1, "127.0.0.72", 1, 0, 0, 0, false, false)).toThrow(TypeError);
    expect(() => r1.setBridgeRoute(1, "out", "", "127.0.0.2", 1, "127.0.0.72", 1, 0, 0, 0, false, false)).toThrow(TypeError);
    expect(() => r1.setBridgeRoute(1, "out", "x".repeat(129), "127.0.0.2", 1, "127.0.0.72", 1, 0, 0, 0, false, false)).toThrow(TypeError);
    expect(() => r1.bridgeAdmit("127.0.0.72", 1, -1, 0)).toThrow(TypeError);
    expect(() => r1.bridgeAdmit("127.0.0.72", 1, 0, 2 ** 32)).toThrow(TypeError);
    r1.setBridgeMember("127.0.0.72", 1, 0, key, [0], [key], 1000);
    expect(r1.bridgeNonce("127.0.0.72", 1).length).toBe(2);
  });
});
