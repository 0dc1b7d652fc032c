/**
 * Bridged vs local session through a fleet: `bun bench/fleet.ts [--quick]`.
 * Starts redis-server and two relays (test/support/relay-with-fleet.ts) per data plane, then measures
 * for a session with both peers on relay 1 (local) and one with a peer on each relay (bridged):
 * round-trip time (sequential ping-pong, 64 B) and delivered packets/s plus relay CPU per packet
 * at a fixed offered load of 1200 B datagrams (CPU: both relays' user+system time for bridged
 * sessions, over delivered packets). Kernel receive-buffer drops are counted machine-wide, so a
 * loaded machine shows where loss happened. Prints a table and one JSON line.
 */
import type { udp } from "bun";
import { readFileSync } from "node:fs";
import { availablePlanes } from "../src/dataplane/select.ts";
import { setSocketBuffers } from "../src/dataplane/socket-buffers.ts";
import { type FleetRelay, REDIS_SERVER, startFleetRelay, startRedis } from "../test/support/fleet-harness.ts";

const quick = process.argv.includes("--quick");
const PINGS = quick ? 500 : 3000;
const RATES = quick ? [20_000] : [20_000, 60_000];
const SECONDS = quick ? 1.5 : 3;
/** USER_HZ: the unit of CPU times in /proc/<pid>/stat on Linux. */
const TICKS = 100;

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

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
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

async function rtt(a: Peer, ra: FleetRelay, b: Peer, rb: FleetRelay): Promise<{ p50: number; p99: number; lost: number }> {
  b.onData = (d) => b.socket.send(d, rb.port, rb.host);
  const samples: number[] = [];
  let lost = 0;
  const ping = new Uint8Array(64);
  for (let i = 0; i < PINGS; i++) {
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

async function flow(a: Peer, ra: FleetRelay, b: Peer, relays: FleetRelay[], rate: number) {
  const payload = new Uint8Array(1200);
  const batch = 32;
  const packets: (Uint8Array | number | string)[] = [];
  for (let i = 0; i < batch; i++) packets.push(payload, ra.port, ra.host);
  b.received = 0;
  const cpu0 = relays.map((r) => cpuSeconds(r.pid));
  const rcvbuf0 = rcvbufErrors();
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < SECONDS * 1000) {
    const due = ((performance.now() - start) / 1000) * rate;
    while (sent + batch <= due) {
      a.socket.sendMany(packets);
      sent += batch;
    }
    await new Promise((r) => setImmediate(r));
  }
  await Bun.sleep(300);
  const cpu = relays.reduce((sum, r, i) => sum + cpuSeconds(r.pid) - cpu0[i]!, 0);
  const delivered = b.received;
  return {
    offered: rate,
    sent,
    deliveredPps: Math.round(delivered / SECONDS),
    loss: +(1 - delivered / sent).toFixed(4),
    rcvbufDrops: rcvbufErrors() - rcvbuf0,
    cpuUsPerPacket: +((cpu / delivered) * 1e6).toFixed(2),
  };
}

/** Time from the second peer's ACK (on the other relay) until the first peer's next datagram reaches it. */
async function bridgeSetup(r1: FleetRelay, r2: FleetRelay, count: number): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const a = await peer("127.0.0.2");
    const b = await peer("127.0.0.3");
    const session = crypto.randomUUID();
    const acked = (p: Peer) => new Promise<void>((resolve) => (p.onData = () => resolve()));
    let wait = acked(a);
    a.socket.send(`REG:${session}\n`, r1.port, r1.host);
    await wait;
    wait = acked(b);
    b.socket.send(`REG:${session}\n`, r2.port, r2.host);
    await wait;
    const t = performance.now();
    const arrived = acked(b);
    a.socket.send("first", r1.port, r1.host);
    await Promise.race([arrived, Bun.sleep(2000)]);
    samples.push(performance.now() - t);
    a.socket.close();
    b.socket.close();
  }
  samples.sort((x, y) => x - y);
  const q = (f: number) => +samples[Math.min(samples.length - 1, Math.floor(samples.length * f))]!.toFixed(2);
  return { p50: q(0.5), p99: q(0.99) };
}

if (!REDIS_SERVER) {
  console.error("bench/fleet: redis-server is not installed (apt-get install -y redis-server)");
  process.exit(2);
}
const results: Record<string, unknown>[] = [];
const redis = await startRedis();
try {
  for (const plane of availablePlanes()) {
    const relays = await Promise.all(["127.0.0.51", "127.0.0.52"].map((host) => startFleetRelay({ host, redisUrl: redis.url, plane, logLevel: "warn", heartbeatSecs: 1 })));
    const [r1, r2] = relays as [FleetRelay, FleetRelay];
    try {
      const setup = await bridgeSetup(r1, r2, quick ? 20 : 100);
      console.log(`${plane}: bridge setup (second peer's ACK to first datagram through) p50 ${setup.p50} ms, p99 ${setup.p99} ms`);
      results.push({ plane, bridgeSetupP50Ms: setup.p50, bridgeSetupP99Ms: setup.p99 });
      for (const kind of ["local", "bridged"] as const) {
        const a = await peer("127.0.0.2");
        const b = await peer("127.0.0.3");
        const rb = kind === "local" ? r1 : r2;
        await registerPair(a, r1, b, rb);
        const latency = await rtt(a, r1, b, rb);
        for (const rate of RATES) {
          const f = await flow(a, r1, b, kind === "local" ? [r1] : [r1, r2], rate);
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
console.log("plane   session  rtt p50/p99 us  offered pps  delivered pps  loss    rcvbuf drops  relay CPU us/pkt");
for (const r of results.filter((x) => "session" in x))
  console.log(
    `${String(r.plane).padEnd(7)} ${String(r.session).padEnd(8)} ${`${r.rttP50Us}/${r.rttP99Us}`.padEnd(15)} ${String(r.offered).padEnd(12)} ${String(r.deliveredPps).padEnd(14)} ${String(r.loss).padEnd(7)} ${String(r.rcvbufDrops).padEnd(13)} ${r.cpuUsPerPacket}`,
  );
console.log(JSON.stringify({ bench: "fleet", at: new Date().toISOString(), results }));
