/**
 * Redis and relays of a fleet bench run, started through the fleet test harness and killed by
 * their own pids on every way out: a normal end, an error, Ctrl-C or SIGTERM. On the way out any
 * other child of this process still running goes too (a relay that never printed `ready` is left
 * running by the harness, which throws without its pid).
 */
import { readdirSync, readFileSync } from "node:fs";
import { type FleetRelay, startFleetRelay, startRedis, type TestRedis } from "../test/support/fleet-harness.ts";

const running = new Set<number>();
let installed = false;

/** Pids of this process's children still running, from /proc/<pid>/stat (field 4 is the parent). */
function ownChildren(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === process.pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function killAll(): void {
  for (const pid of [...running, ...ownChildren()]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
}

/** Called before anything is started, so that a start that throws half-way is cleaned up too. */
export function killChildrenOnExit(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

function remember(pid: number): void {
  killChildrenOnExit();
  running.add(pid);
}

/** redis-server on a free port; its pid comes from `INFO server` (the harness does not expose it). */
export async function startBenchRedis(): Promise<TestRedis> {
  const redis = await startRedis();
  const info = String(await redis.command("INFO", ["server"]));
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
  if (pid > 0) remember(pid);
  return {
    ...redis,
    async stop() {
      await redis.stop();
      running.delete(pid);
    },
  };
}

export async function startBenchRelay(options: Parameters<typeof startFleetRelay>[0]): Promise<FleetRelay> {
  const relay = await startFleetRelay(options);
  remember(relay.pid);
  return {
    ...relay,
    async stop() {
      await relay.stop();
      running.delete(relay.pid);
    },
    async kill() {
      await relay.kill();
      running.delete(relay.pid);
    },
  };
}
