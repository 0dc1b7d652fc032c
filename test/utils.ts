import type { udp } from "bun";
import { afterEach } from "bun:test";
import { DEFAULTS, dataPlaneOptions, type RelayConfig } from "../src/config/config.ts";
import { availablePlanes, createDataPlane } from "../src/dataplane/select.ts";
import { setSocketBuffers } from "../src/dataplane/socket-buffers.ts";
import type { DataPlaneKind } from "../src/dataplane/types.ts";
import { createLogger } from "../src/log.ts";
import { Relay } from "../src/relay.ts";
import type { Clock, RegPolicy, SessionLimits } from "../src/sessions/types.ts";
import { StunResponder, type StunResponderOptions } from "../src/discovery/responder.ts";
import { SECURITY_DEFAULTS } from "../src/security/options.ts";

/** Planes every forwarding suite runs on. In CI (`CI=true`) both must be available. */
export function planesUnderTest(): DataPlaneKind[] {
  const planes = availablePlanes();
  if (process.env.CI === "true" && !planes.includes("native")) {
    throw new Error("CI requires the native data plane, but the addon did not load");
  }
  return planes;
}

export interface TestRelay {
  relay: Relay;
  port: number;
  host: string;
  /** The STUN responder (config.stun, on by default as in the relay), for its counters. */
  stun: StunResponder | undefined;
  stop(): Promise<void>;
}

/**
 * A relay on a real data plane. With `clock` (a FakeClock from test/sessions/fixtures.ts) rules
 * about time run on that clock: advance it, then call `relay.sweep()` to apply expiry at once.
 */
export async function startRelay(
  plane: DataPlaneKind,
  options: {
    config?: Partial<RelayConfig>; limits?: Partial<SessionLimits>; policy?: RegPolicy; clock?: Clock; workClock?: () => number;
    stun?: Partial<StunResponderOptions>;
  } = {},
): Promise<TestRelay> {
  const config: RelayConfig = { ...DEFAULTS, host: "127.0.0.1", port: 0, logLevel: "error", workers: 1, ...options.config };
  const { plane: dataPlane } = createDataPlane(plane, dataPlaneOptions(config));
  const stun = config.stun ? new StunResponder({ rate: SECURITY_DEFAULTS.regRate, burst: SECURITY_DEFAULTS.regBurst, ...options.stun }) : undefined;
  const relay = new Relay({ config, plane: dataPlane, logger: createLogger("error"), limits: options.limits, policy: options.policy, clock: options.clock, workClock: options.workClock, stun });
  await relay.start();
  return { relay, port: relay.local.port, host: config.host, stun, stop: () => relay.stop() };
}

export interface Received {
  data: Uint8Array;
  port: number;
  address: string;
}

/** A UDP socket standing for one host (bind it to 127.0.0.x) with a queue of what it received. */
export class TestPeer {
  readonly inbox: Received[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: udp.Socket<"uint8array">) {}

  static async open(host = "127.0.0.1", port = 0): Promise<TestPeer> {
    let peer!: TestPeer;
    const socket = await Bun.udpSocket({
      hostname: host,
      port,
      binaryType: "uint8array",
      socket: {
        data(_s, data, port, address) {
          peer.inbox.push({ data: new Uint8Array(data), port, address });
          const waiters = peer.waiters;
          peer.waiters = [];
          for (const w of waiters) w();
        },
        error() {
          // ICMP port unreachable before the relay listens: the test retries.
        },
      },
    });
    // Bursts in tests must not be lost in the test's own receive buffer.
    setSocketBuffers(socket as unknown as udp.Socket<"buffer">, 4 * 1024 * 1024);
    peer = new TestPeer(socket);
    return peer;
  }

  get port(): number {
    return this.socket.port;
  }
  get host(): string {
    return this.socket.hostname;
  }

  send(data: Uint8Array | string, port: number, host = "127.0.0.1"): void {
    this.socket.send(typeof data === "string" ? new TextEncoder().encode(data) : data, port, host);
  }

  /** Next datagram, or throws after `timeoutMs` (generous: a deadline, not a measurement). */
  async next(timeoutMs = 5000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no datagram within ${timeoutMs} ms at ${this.host}:${this.port}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.inbox.shift()!;
  }

  async nextText(timeoutMs = 5000): Promise<string> {
    return text((await this.next(timeoutMs)).data);
  }

  /**
   * Waits for the datagram whose text is `marker` and returns what arrived before it, consuming
   * both. A negative check without a fixed wait: send the marker along the path an unwanted
   * datagram would take, after it; whatever the relay sent earlier on that path arrives first.
   */
  async takeUntil(marker: string, timeoutMs = 5000): Promise<Received[]> {
    const at = () => this.inbox.findIndex((r) => text(r.data) === marker);
    await eventually(() => at() >= 0, timeoutMs).catch(() => {
      throw new Error(`marker ${JSON.stringify(marker)} never arrived at ${this.host}:${this.port}`);
    });
    const before = this.inbox.splice(0, at() + 1);
    before.pop();
    return before;
  }



  close(): void {
    this.socket.close();
  }
}

export function text(data: Uint8Array): string {
  return new TextDecoder().decode(data);
}

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/**
 * REG and wait for the reply; returns the reply text. A relay that asks for proof (`RETRY
 * <cookie>`) gets the REG again with the cookie, as the project's clients do.
 */
export async function register(peer: TestPeer, relayPort: number, session: string): Promise<string> {
  peer.send(`REG:${session}\n`, relayPort);
  const reply = await peer.nextText();
  if (!reply.startsWith("RETRY ")) return reply;
  peer.send(`REG:${session} ${reply.slice(6, -1)}\n`, relayPort);
  return peer.nextText();
}

/** Two peers on different hosts registered and paired in a fresh session. */
export async function pairedPeers(
  relayPort: number,
  hosts: [string, string] = ["127.0.0.2", "127.0.0.3"],
  open: (host: string) => Promise<TestPeer> = (host) => TestPeer.open(host),
) {
  const a = await open(hosts[0]);
  const b = await open(hosts[1]);
  const session = crypto.randomUUID();
  if ((await register(a, relayPort, session)) !== "ACK\n") throw new Error("A not acknowledged");
  if ((await register(b, relayPort, session)) !== "ACK\n") throw new Error("B not acknowledged");
  return { a, b, session };
}

/** `open(host)` for peers that are closed after each test of the describe block it is called in. */
export function testPeers(): (host: string) => Promise<TestPeer> {
  const peers: TestPeer[] = [];
  afterEach(() => {
    for (const p of peers.splice(0)) p.close();
  });
  return async (host) => {
    const p = await TestPeer.open(host);
    peers.push(p);
    return p;
  };
}

/**
 * Per-test relay and peers, cleaned up after each test: call from a describe block.
 * `h.relay` is set by `h.start()`; `h.open(host)` opens a peer that is closed afterwards.
 */
export function relayHarness(plane: DataPlaneKind) {
  const open = testPeers();
  const h = {
    relay: undefined as unknown as TestRelay,
    async start(options: Parameters<typeof startRelay>[1] = {}): Promise<TestRelay> {
      h.relay = await startRelay(plane, options);
      return h.relay;
    },
    open,
    /** Paired peers in a fresh session, closed after the test. */
    pair: (hosts?: [string, string]) => pairedPeers(h.relay.port, hosts, open),
  };
  afterEach(async () => {
    await h.relay?.stop();
  });
  return h;
}

/** Poll until `check` holds; throws after `timeoutMs` (a generous deadline, not a measurement). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(stepMs);
  }
}

export const CLIENT_CID = [1, 2, 3, 4, 5, 6, 7, 8];
export const SERVER_CID = [9, 9, 9, 9, 8, 8, 8, 8];

/**
 * A QUIC-like handshake through a paired session (A the client, B the server), then short
 * headers both ways (A's carry SERVER_CID, B's CLIENT_CID) until the relay confirmed both IDs
 * (docs/protocol.md: the partner answered and the peer kept its ID for cidAnswerMs of the relay's
 * clock). With `clock` (the relay's fake clock) each round trip moves it 20 ms and sweeps.
 * Leaves both inboxes empty.
 */
export async function quicHandshake(relay: TestRelay, a: TestPeer, b: TestPeer, clock?: { advance(ms: number): void }): Promise<void> {
  a.send(longHeader([7, 7, 7, 7, 7, 7, 7, 7], CLIENT_CID), relay.port);
  await b.next();
  b.send(longHeader(CLIENT_CID, SERVER_CID), relay.port);
  await a.next();
  const deadline = Date.now() + 10_000;
  for (let n = 0; relay.relay.table.indexSizes().cids! < 2; n++) {
    if (Date.now() > deadline) throw new Error("the relay did not confirm the connection IDs");
    a.send(new Uint8Array([0x41, ...SERVER_CID, 0xcc, n & 255]), relay.port);
    b.send(new Uint8Array([0x41, ...CLIENT_CID, 0xcc, n & 255]), relay.port);
    // One round trip at a time: each side's datagram has arrived before the next round.
    await Promise.all([a.next(), b.next()]);
    if (clock) {
      clock.advance(20);
      relay.relay.sweep();
    }
  }
}

/** A QUIC v1 long header with the given connection IDs and some payload. */
export function longHeader(dcid: number[], scid: number[], type = 0xc0): Uint8Array {
  return new Uint8Array([type, 0, 0, 0, 1, dcid.length, ...dcid, scid.length, ...scid, 0x00, 0x41, 0x02, 0x03]);
}

/** A QUIC short header addressed to `dcid`, with a payload. */
export function shortHeader(dcid: number[], payload: number[] = [0x11, 0x22, 0x33]): Uint8Array {
  return new Uint8Array([0x41, ...dcid, ...payload]);
}
