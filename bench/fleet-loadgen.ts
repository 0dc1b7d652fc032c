/**
 * The fleet capacity generator, its own process on its own core:
 *   bun bench/fleet-loadgen.ts '<GeneratorSpec as JSON>'
 * Registers every session's two peers at the relays the spec names (first peers, then, once the
 * directory holds every session, second peers; clients with `move` follow MOVE replies), then
 * sends 1200 B datagrams flat out from every peer, round-robin in batches, and counts what comes
 * back. Prints `phase:measure`, `phase:stop` and `phase:done` at the window's edges, then one
 * JSON line (GeneratorResult). Datagrams carry a tag: only those sent inside the window count.
 */
import { RedisClient } from "bun";
import { encodeReg } from "../src/protocol/reg.ts";
import { isAck, parseMove } from "../src/protocol/replies.ts";
import { closeUdp, connectUdp, openUdp, ReadySet, ReceiveRing, receiveOne, SendBatch, sendTo, socketDrops } from "./fleet-sockets.ts";

export interface GeneratorSpec {
  relays: { host: string; port: number }[];
  /** Index into relays of the relay each session's first and second peer picked. */
  sessions: { id: string; first: number; second: number }[];
  /** Peer k binds 127.<peerNet>.<k >> 8>.<k & 255 + 1>. */
  peerNet: number;
  move: boolean;
  redisUrl: string;
  directoryPrefix: string;
  size: number;
  batch: number;
  warmupS: number;
  durationS: number;
  drainS: number;
}

export interface GeneratorResult {
  registered: number;
  /** Second peers sent on to another relay by a MOVE reply. */
  moves: number;
  /** Sessions whose two peers ended up registered at different relays. */
  split: number;
  offered: number;
  delivered: number;
  sendErrors: number;
  /** Datagrams dropped at the generator's own sockets (full receive buffer). */
  genRxDrops: number;
  error?: string;
}

const PAYLOAD_FIRST = 0x40; // a QUIC short header's fixed bit
const TAG_WARMUP = 0;
const TAG_MEASURED = 1;
const BUFFER_BYTES = 1 << 20;

interface Peer {
  fd: number;
  relay: number;
}

const reply = new Uint8Array(256);

/** Sends `line` until a reply comes (every 250 ms, 5 s in all); the reply, or undefined. */
async function ask(fd: number, line: Uint8Array, host: string, port: number): Promise<Uint8Array | undefined> {
  for (let attempt = 0; attempt < 20; attempt++) {
    sendTo(fd, line, host, port);
    const deadline = performance.now() + 250;
    while (performance.now() < deadline) {
      const got = receiveOne(fd, reply);
      if (got) return got;
      await Bun.sleep(1);
    }
  }
  return undefined;
}

/** Registers one peer at relay `at`; with `move`, follows one MOVE. Returns the relay it is registered at. */
async function register(spec: GeneratorSpec, fd: number, session: string, at: number): Promise<number> {
  const line = encodeReg(session, undefined, { move: spec.move });
  for (let hops = 0; hops < 2; hops++) {
    const relay = spec.relays[at]!;
    const got = await ask(fd, line, relay.host, relay.port);
    if (!got) throw new Error(`no reply to REG from ${relay.host}:${relay.port}`);
    if (isAck(got)) return at;
    const target = parseMove(got);
    if (!target) throw new Error(`REG at ${relay.host}:${relay.port} answered ${JSON.stringify(new TextDecoder().decode(got))}`);
    at = spec.relays.findIndex((r) => r.host === target.host && r.port === target.port);
    if (at < 0) throw new Error(`MOVE to ${target.host}:${target.port}, not a relay of this fleet`);
  }
  throw new Error("MOVE after MOVE");
}

/** Waits (bounded) until the directory holds every session: then a second peer's lookup finds its partner. */
async function awaitDirectory(spec: GeneratorSpec): Promise<void> {
  const redis = new RedisClient(spec.redisUrl, { autoReconnect: false, enableOfflineQueue: false });
  try {
    await redis.connect();
    const deadline = performance.now() + 10_000;
    for (const s of spec.sessions) {
      while (Number(await redis.send("EXISTS", [`${spec.directoryPrefix}:session:${s.id}`])) !== 1) {
        if (performance.now() > deadline) throw new Error(`session ${s.id} never reached the directory`);
        await Bun.sleep(5);
      }
    }
  } finally {
    redis.close();
  }
}

function payload(spec: GeneratorSpec, tag: number): Uint8Array {
  const p = new Uint8Array(spec.size).fill(0x5a);
  p[0] = PAYLOAD_FIRST;
  p[1] = tag;
  return p;
}

/** Flat out from every peer, round-robin, draining whatever is ready between batches. */
function flow(spec: GeneratorSpec, peers: Peer[], result: GeneratorResult): void {
  const batches = [new SendBatch(payload(spec, TAG_WARMUP), spec.batch), new SendBatch(payload(spec, TAG_MEASURED), spec.batch)];
  const ring = new ReceiveRing();
  const ready = new ReadySet(peers.length);
  peers.forEach((p, i) => ready.add(p.fd, i));
  const readyNow: number[] = [];
  const t0 = performance.now();
  const tMeasure = t0 + spec.warmupS * 1000;
  const tStop = tMeasure + spec.durationS * 1000;
  const tEnd = tStop + spec.drainS * 1000;
  let phase = 0;
  let cursor = 0;
  for (;;) {
    const now = performance.now();
    if (phase === 0 && now >= tMeasure) {
      phase = 1;
      console.log("phase:measure");
    }
    if (phase === 1 && now >= tStop) {
      phase = 2;
      console.log("phase:stop");
    }
    if (now >= tEnd) break;
    if (phase < 2) {
      const tag = phase === 1 ? TAG_MEASURED : TAG_WARMUP;
      const sent = batches[tag]!.send(peers[cursor]!.fd);
      if (tag === TAG_MEASURED) {
        result.offered += sent;
        result.sendErrors += spec.batch - sent;
      }
      if (++cursor === peers.length) cursor = 0;
    }
    const n = ready.wait(phase === 2 ? 1 : 0, readyNow);
    for (let e = 0; e < n; e++) {
      const fd = peers[readyNow[e]!]!.fd;
      for (;;) {
        const got = ring.receive(fd);
        for (let i = 0; i < got; i++) {
          if (ring.length(i) === spec.size && ring.byte(i, 0) === PAYLOAD_FIRST && ring.byte(i, 1) === TAG_MEASURED) result.delivered++;
        }
        if (got < ReceiveRing.BATCH) break;
      }
    }
  }
  ready.close();
  console.log("phase:done");
}

async function main(spec: GeneratorSpec): Promise<GeneratorResult> {
  const result: GeneratorResult = { registered: 0, moves: 0, split: 0, offered: 0, delivered: 0, sendErrors: 0, genRxDrops: 0 };
  const peers: Peer[] = [];
  try {
    const open = () => {
      const k = peers.length;
      peers.push({ fd: openUdp(`127.${spec.peerNet}.${k >> 8}.${(k & 255) + 1}`, BUFFER_BYTES), relay: -1 });
      return peers[k]!;
    };
    const pairs = spec.sessions.map((s) => ({ s, a: open(), b: open() }));
    for (const { s, a } of pairs) a.relay = await register(spec, a.fd, s.id, s.first);
    await awaitDirectory(spec);
    for (const { s, b } of pairs) {
      b.relay = await register(spec, b.fd, s.id, s.second);
      if (b.relay !== s.second) result.moves++;
    }
    result.registered = peers.length;
    result.split = pairs.filter(({ a, b }) => a.relay !== b.relay).length;
    for (const p of peers) connectUdp(p.fd, spec.relays[p.relay]!.host, spec.relays[p.relay]!.port);
    flow(spec, peers, result);
    result.genRxDrops = peers.reduce((sum, p) => sum + socketDrops(p.fd), 0);
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
  } finally {
    for (const p of peers) closeUdp(p.fd);
  }
  return result;
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as GeneratorSpec;
  console.log(JSON.stringify(await main(spec)));
  process.exit(0);
}
