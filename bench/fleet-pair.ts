/**
 * Bridged vs local session through a fleet, the first part of bench/fleet.ts. Starts redis-server
 * and two relays per data plane, then measures for a session with both peers on relay 1 (local)
 * and one with a peer on each relay (bridged): round-trip time (sequential ping-pong, 64 B) and
 * delivered packets/s plus relay CPU per packet at a fixed offered load of 1200 B datagrams (CPU:
 * both relays' user+system time for bridged sessions, over delivered packets; the receiver sends
 * a 64 B datagram back for every 10 it gets, as QUIC acknowledges), and how long a
 * bridge takes to set up. Kernel receive-buffer drops are counted machine-wide, so a loaded machine
 * shows where loss happened.
 */
import type { udp } from "bun";
import { readFileSync } from "node:fs";
import { setSocketBuffers } from "../src/dataplane/socket-buffers.ts";
import type { FleetRelay } from "../test/support/fleet-harness.ts";
import type { Plane } from "./fleet-capacity.ts";
import { startBenchRedis, startBenchRelay } from "./fleet-procs.ts";
import { cpuSeconds } from "./proc.ts";

export interface PairPlan {
  pings: number;
  rates: number[];
  seconds: number;
  setups: number;
}

export const pairPlan = (quick: boolean): PairPlan =>
  quick ? { pings: 500, rates: [20_000, 100_000], seconds: 1.5, setups: 20 } : { pings: 3000, rates: [20_000, 60_000, 100_000, 150_000], seconds: 3, setups: 100 };

interface Peer {
  socket: udp.Socket<"uint8array">;
  received: number;
  onData?: (data: Uint8Array) => void;
}

async function peer(host: string): Promise<Peer> {
  const p: Peer = { socket: undefined as never, received: 0 };
  p.socket = await Bun.udpSocket({
    hostname: host,
    binaryType: "uint8array",
    socket: {
      data(_s, data) {
        p.received++;
        p.onData?.(data);
      },
      error() {},
    },
  });
  // The receiver must not be what drops: 4 MB like the relays.
  setSocketBuffers(p.socket as unknown as udp.Socket<"buffer">, 4 * 1024 * 1024);
  return p;
}

/** Datagrams the kernel dropped for full receive buffers, machine-wide (any socket: relays or peers). */
function rcvbufErrors(): number {
  const lines = readFileSync("/proc/net/snmp", "utf8").split("\n").filter((l) => l.startsWith("Udp:"));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf("RcvbufErrors")]);
}

async function registerPair(a: Peer, ra: FleetRelay, b: Peer, rb: FleetRelay): Promise<void> {
  const session = crypto.randomUUID();
  for (const [p, r] of [[a, ra], [b, rb]] as const) {
    const got = new Promise<void>((resolve) => (p.onData = () => resolve()));
    p.socket.send(`REG:${session}\n`, r.port, r.host);
    await Promise.race([got, Bun.sleep(2000)]);
    p.onData = undefined;
  }
  await Bun.sleep(200); // the bridge is set up through the directory
}

async function rtt(plan: PairPlan, a: Peer, ra: FleetRelay, b: Peer, rb: FleetRelay): Promise<{ p50: number; p99: number; lost: number }> {
  b.onData = (d) => b.socket.send(d, rb.port, rb.host);
  const samples: number[] = [];
  let lost = 0;
  const ping = new Uint8Array(64);
  for (let i = 0; i < plan.pings; i++) {
    const t = performance.now();
    const back = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 200);
      a.onData = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    a.socket.send(ping, ra.port, ra.host);
    if (await back) samples.push((performance.now() - t) * 1000);
    else lost++;
  }
  a.onData = b.onData = undefined;
  samples.sort((x, y) => x - y);
  const q = (f: number) => Math.round(samples[Math.min(samples.length - 1, Math.floor(samples.length * f))] ?? NaN);
  return { p50: q(0.5), p99: q(0.99), lost };
}

/** Datagrams the receiver gets per datagram it sends back, as a QUIC receiver's acknowledgements. */
const ACK_EVERY = 10;
/** The receiver also sends one every this many ms, whatever it received (QUIC's max ACK delay is 25 ms). */
const ACK_TIMER_MS = 25;

async function flow(plan: PairPlan, a: Peer, ra: FleetRelay, b: Peer, rb: FleetRelay, relays: FleetRelay[], rate: number) {
  const payload = new Uint8Array(1200);
  const batch = 32;
  const packets: (Uint8Array | number | string)[] = [];
  for (let i = 0; i < batch; i++) packets.push(payload, ra.port, ra.host);
  b.received = 0;
  // A receiver that never speaks is cut off after --max-unanswered-bytes (docs/protocol.md).
  const ack = new Uint8Array(64);
  b.onData = () => {
    if (b.received % ACK_EVERY === 0) b.socket.send(ack, rb.port, rb.host);
  };
  // And on a timer, as a QUIC receiver's ACK delay and probes do: a receiver whose acknowledgements
  // were all lost in an overload speaks again, so the unanswered bound does not cut it off for good.
  const probe = setInterval(() => b.socket.send(ack, rb.port, rb.host), ACK_TIMER_MS);
  const cpu0 = relays.map((r) => cpuSeconds(r.pid) ?? Number.NaN);
  const controlDrops = async () => (await Promise.all(relays.map((r) => r.stats()))).reduce((sum, s) => sum + (s.plane as { controlQueueDrops?: number }).controlQueueDrops!, 0);
  const drops0 = await controlDrops();
  const rcvbuf0 = rcvbufErrors();
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < plan.seconds * 1000) {
    const due = ((performance.now() - start) / 1000) * rate;
    while (sent + batch <= due) {
      a.socket.sendMany(packets);
      sent += batch;
    }
    await new Promise((r) => setImmediate(r));
  }
  await Bun.sleep(300);
  clearInterval(probe);
  b.onData = undefined;
  const cpu = relays.reduce((sum, r, i) => sum + (cpuSeconds(r.pid) ?? Number.NaN) - cpu0[i]!, 0);
  const delivered = b.received;
  const drops = (await controlDrops()) - drops0;
  return {
    offered: rate,
    sent,
    deliveredPps: Math.round(delivered / plan.seconds),
    loss: +(1 - delivered / sent).toFixed(4),
    rcvbufDrops: rcvbufErrors() - rcvbuf0,
    cpuUsPerPacket: +((cpu / delivered) * 1e6).toFixed(2),
    controlQueueDrops: drops,
  };
}

/** The next datagram `p` receives within `ms`: true, or false when none came. */
function received(p: Peer, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.onData = () => {
      clearTimeout(timer);
      resolve(true);
    };
  });
}

/**
 * Time from the second peer's ACK (on the other relay) until the first peer's next datagram
 * reaches it; a REG unanswered or a datagram not through within 2 s counts as failed.
 */
async function bridgeSetup(r1: FleetRelay, r2: FleetRelay, count: number): Promise<{ p50: number; p99: number; failed: number }> {
  const samples: number[] = [];
  const open: Peer[] = [];
  let failed = 0;
  for (let i = 0; i < count; i++) {
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    const session = crypto.randomUUID();
    let wait = received(a, 2000);
    a.socket.send(`REG:${session}\n`, r1.port, r1.host);
    let ok = await wait;
    if (ok) {
      wait = received(b, 2000);
      b.socket.send(`REG:${session}\n`, r2.port, r2.host);
      ok = await wait;
    }
    if (ok) {
      const t = performance.now();
      wait = received(b, 2000);
      a.socket.send("first", r1.port, r1.host);
      ok = await wait;
      if (ok) samples.push(performance.now() - t);
    }
    if (!ok) failed++;
    // Closed at the end: a new socket on a port an earlier one had would be a member of that
    // earlier, still live session, and its REG for a new session is rightly not answered.
    open.push(a, b);
  }
  for (const p of open) p.socket.close();
  samples.sort((x, y) => x - y);
  const q = (f: number) => (samples.length ? +samples[Math.min(samples.length - 1, Math.floor(samples.length * f))]!.toFixed(2) : Number.NaN);
  return { p50: q(0.5), p99: q(0.99), failed };
}

export async function measurePairs(plan: PairPlan, planes: Plane[], log: (line: string) => void): Promise<Record<string, unknown>[]> {
  const results: Record<string, unknown>[] = [];
  const redis = await startBenchRedis();
  try {
    for (const plane of planes) {
      const relays: FleetRelay[] = [];
      try {
        for (const host of ["127.0.0.51", "127.0.0.52"]) relays.push(await startBenchRelay({ host, redisUrl: redis.url, plane, logLevel: "warn", heartbeatSecs: 1 }));
        const [r1, r2] = relays as [FleetRelay, FleetRelay];
        const setup = await bridgeSetup(r1, r2, plan.setups);
        log(`${plane}: bridge setup (second peer's ACK to first datagram through) p50 ${setup.p50} ms, p99 ${setup.p99} ms` +
          (setup.failed ? `, ${setup.failed} of ${plan.setups} failed (no ACK or nothing through within 2 s)` : ""));
        results.push({ plane, bridgeSetupP50Ms: setup.p50, bridgeSetupP99Ms: setup.p99, bridgeSetupFailed: setup.failed });
        for (const kind of ["local", "bridged"] as const) {
          const a = await peer("127.0.0.2");
          const b = await peer("127.0.0.3");
          const rb = kind === "local" ? r1 : r2;
          await registerPair(a, r1, b, rb);
          const latency = await rtt(plan, a, r1, b, rb);
          for (const rate of plan.rates) {
            const f = await flow(plan, a, r1, b, rb, kind === "local" ? [r1] : [r1, r2], rate);
            results.push({ plane, session: kind, rttP50Us: latency.p50, rttP99Us: latency.p99, ...f });
          }
          a.socket.close();
          b.socket.close();
        }
      } finally {
        await Promise.all(relays.map((r) => r.stop()));
      }
    }
  } finally {
    await redis.stop();
  }
  return results;
}

export function pairTable(results: Record<string, unknown>[]): string {
  const lines = ["plane   session  rtt p50/p99 us  offered pps  delivered pps  loss    rcvbuf drops  control-queue drops  relay CPU us/pkt"];
  const flows = results.filter((x) => "session" in x);
  for (const r of flows)
    lines.push(
      `${String(r.plane).padEnd(7)} ${String(r.session).padEnd(8)} ${`${r.rttP50Us}/${r.rttP99Us}`.padEnd(15)} ${String(r.offered).padEnd(12)} ${String(r.deliveredPps).padEnd(14)} ${String(r.loss).padEnd(7)} ${String(r.rcvbufDrops).padEnd(13)} ${String(r.controlQueueDrops ?? "-").padEnd(20)} ${r.cpuUsPerPacket}`,
    );
  // Bridged against local at the same offered load: the goal is >= 0.8x delivered.
  lines.push("", "plane   offered pps  bridged/local delivered  added rtt p50 us  goal");
  for (const b of flows.filter((x) => x.session === "bridged")) {
    const l = flows.find((x) => x.session === "local" && x.plane === b.plane && x.offered === b.offered);
    if (!l) continue;
    const ratio = Number(b.deliveredPps) / Number(l.deliveredPps);
    lines.push(`${String(b.plane).padEnd(7)} ${String(b.offered).padEnd(12)} ${`${ratio.toFixed(2)}x`.padEnd(24)} ${String(Number(b.rttP50Us) - Number(l.rttP50Us)).padEnd(17)} ${ratio >= 0.8 ? "PASS" : "MISS"} >= 0.8x`);
  }
  return lines.join("\n");
}
