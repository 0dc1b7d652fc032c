/**
 * Redis and relays of a fleet bench run, started through the fleet test harness and killed by
 * their own pids on every way out (children.ts). On the way out any other child of this process
 * still running goes too (a relay that never printed `ready` is left running by the harness,
 * which throws without its pid).
 */
import { readdirSync, readFileSync } from "node:fs";
import { type FleetRelay, startFleetRelay, startRedis, type TestRedis } from "../test/support/fleet-harness.ts";
import { onCleanUp, trackPid } from "./children.ts";

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

/** Called before anything is started, so that a start that throws half-way is cleaned up too. */
export function killChildrenOnExit(): void {
  onCleanUp(() => {
    for (const pid of ownChildren()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** redis-server on a free port; its pid comes from `INFO server` (the harness does not expose it). */
export async function startBenchRedis(): Promise<TestRedis> {
  const redis = await startRedis();
  const info = String(await redis.command("INFO", ["server"]));
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
  const forget = pid > 0 ? trackPid(pid) : () => false;
  return {
    ...redis,
    async stop() {
      await redis.stop();
      forget();
    },
  };
}

export async function startBenchRelay(options: Parameters<typeof startFleetRelay>[0]): Promise<FleetRelay> {
  const relay = await startFleetRelay(options);
  const forget = trackPid(relay.pid);
  return {
    ...relay,
    async stop() {
      await relay.stop();
      forget();
    },
    async kill() {
      await relay.kill();
      forget();
    },
  };
}
