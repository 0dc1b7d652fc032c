import type { Subprocess } from "bun";
import { RedisClient } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Path of redis-server, or undefined when it is not installed (the fleet suites skip then). */
export const REDIS_SERVER = Bun.which("redis-server") ?? undefined;
export const FLEET_SECRET = "fleet-test-secret-0123456789abcdef";
const ENTRY = join(import.meta.dir, "relay-with-fleet.ts");

async function freeTcpPort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** A free UDP port on `host` (bind, read, close: each relay has its own 127.0.0.x, so reuse races are unlikely). */
export async function freeUdpPort(host: string): Promise<number> {
  const s = await Bun.udpSocket({ hostname: host, port: 0 });
  const port = s.port;
  s.close();
  return port;
}

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (no persistence). */
  start(): Promise<void>;
  command(cmd: string, args: string[]): Promise<unknown>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freeTcpPort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: Subprocess | undefined;
  const start = async () => {
    proc = Bun.spawn([REDIS_SERVER!, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdout: "ignore",
      stderr: "ignore",
    });
    const deadline = Date.now() + 5000;
    for (;;) {
      const c = new RedisClient(url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: 500 });
      try {
        await c.connect();
        await c.send("PING", []);
        c.close();
        return;
      } catch {
        c.close();
        if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
        await Bun.sleep(50);
      }
    }
  };
  await start();
  return {
    url,
    port,
    start,
    async stop() {
      proc?.kill("SIGKILL");
      await proc?.exited;
    },
    async command(cmd, args) {
      const c = new RedisClient(url, { autoReconnect: false, enableOfflineQueue: false });
      try {
        await c.connect();
        return await c.send(cmd, args);
      } finally {
        c.close();
      }
    },
  };
}

/** A redis-server started for a test, its own process: `kill()` is SIGKILL. */
export interface TestRedisServer {
  port: number;
  /** `127.0.0.1:port`, as the sentinels name it. */
  address: string;
  url: string;
  kill(): Promise<void>;
  command(cmd: string, args: string[]): Promise<unknown>;
}

/** Spawns redis-server with `args` and waits until it answers PING (sentinels do too). */
async function spawnRedisServer(port: number, args: string[]): Promise<TestRedisServer> {
  const url = `redis://127.0.0.1:${port}`;
  const proc = Bun.spawn([REDIS_SERVER!, ...args], { stdout: "ignore", stderr: "ignore" });
  const server: TestRedisServer = {
    port,
    address: `127.0.0.1:${port}`,
    url,
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async command(cmd, commandArgs) {
      const c = new RedisClient(url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: 1000 });
      try {
        await c.connect();
        return await c.send(cmd, commandArgs);
      } finally {
        c.close();
      }
    },
  };
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      if ((await server.command("PING", [])) === "PONG") return server;
    } catch {
      // Not listening yet.
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      await server.kill();
      throw new Error(`redis-server ${args.join(" ")} did not start on port ${port}`);
    }
    await Bun.sleep(50);
  }
}

/** A replica of the Redis on `primaryPort`; nothing on disk (it loads the primary's data from the socket). */
export async function startRedisReplica(primaryPort: number): Promise<TestRedisServer> {
  const port = await freeTcpPort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-load", "swapdb"];
  return spawnRedisServer(port, [...args, "--replicaof", "127.0.0.1", String(primaryPort)]);
}

export interface TestSentinel extends TestRedisServer {
  /** Kills the sentinel and removes its directory (it rewrites its config file there). */
  stop(): Promise<void>;
  /** The replicas the sentinel has found for `masterName` and counts usable (not down). */
  replicas(): Promise<string[]>;
}

/**
 * A sentinel watching the primary on `primaryPort` as `masterName` (quorum 1), with a short
 * down-after (1 s) and failover timeout (3 s) so that a test's failover takes seconds.
 */
export async function startSentinel(primaryPort: number, masterName = "mymaster"): Promise<TestSentinel> {
  const port = await freeTcpPort();
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-sentinel-"));
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} 1`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 3000`,
      "",
    ].join("\n"),
  );
  let server: TestRedisServer;
  try {
    server = await spawnRedisServer(port, [conf, "--sentinel"]);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    ...server,
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
    async replicas() {
      const reply = await server.command("SENTINEL", ["replicas", masterName]);
      const out: string[] = [];
      for (const entry of Array.isArray(reply) ? reply : []) {
        // RESP3 gives a map, RESP2 a flat list of field, value.
        const fields: Record<string, unknown> = Array.isArray(entry) ? Object.fromEntries(entry.flatMap((v, i, all) => (i % 2 ? [] : [[v, all[i + 1]]]))) : entry;
        const flags = String(fields.flags ?? "");
        if (!flags.includes("down") && !flags.includes("disconnected")) out.push(`${fields.ip}:${fields.port}`);
      }
      return out;
    },
  };
}

export interface FleetRelayStats {
  sessions: number;
  table: { drops: Record<string, number>; sessionsPaired: number };
  plane: { forwardedPackets: number; forwardedBytes: number; controlPackets: number };
  fleet?: {
    reachable: boolean;
    directory: { errors: number; outages: number };
    bridge: { sent: number; delivered: number; rejected: Record<string, number>; noSession: number; dataPlane: { sent: number; delivered: number } };
    bridgedNow: number;
    bridgedTotal: number;
  };
}

export interface FleetRelay {
  host: string;
  pid: number;
  port: number;
  advertise: string;
  stats(): Promise<FleetRelayStats>;
  /** SIGKILL: the relay vanishes without cleaning up. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  stderr(): string;
}

export async function startFleetRelay(options: {
  host: string;
  redisUrl: string;
  plane: "ts" | "native";
  secret?: string;
  sessionTimeoutSecs?: number;
  heartbeatSecs?: number;
  logLevel?: string;
}): Promise<FleetRelay> {
  const port = await freeUdpPort(options.host);
  const advertise = `${options.host}:${port}`;
  const proc = Bun.spawn(
    [
      process.execPath,
      ENTRY,
      "--host", options.host,
      "--port", String(port),
      "--dataplane", options.plane,
      "--session-timeout-secs", String(options.sessionTimeoutSecs ?? 30),
      "--log-level", options.logLevel ?? "info",
      "--fleet-redis", options.redisUrl,
      "--fleet-advertise", advertise,
      "--fleet-secret", options.secret ?? FLEET_SECRET,
      "--fleet-heartbeat-secs", String(options.heartbeatSecs ?? 0.5),
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
  );
  let err = "";
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) err += new TextDecoder().decode(chunk);
  })();
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        for (const w of waiters.splice(0)) w();
      }
    }
  })();
  const nextLine = async (prefix: string, timeoutMs = 10_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return lines.splice(i, 1)[0]!;
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`relay ${advertise}: no '${prefix}' line; stderr:\n${err}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  await nextLine("ready ");
  const stdin = proc.stdin as import("bun").FileSink;
  return {
    host: options.host,
    pid: proc.pid,
    port,
    advertise,
    async stats() {
      stdin.write("stats\n");
      stdin.flush();
      return JSON.parse((await nextLine("stats ")).slice(6)) as FleetRelayStats;
    },
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await proc.exited;
      clearTimeout(t);
    },
    stderr: () => err,
  };
}
