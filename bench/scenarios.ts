/** What the bench measures, in quick and full form. */

export type Scenario =
  | { kind: "flow"; id: string; size: number; sessions: number; rate: number }
  | { kind: "gso"; id: string; size: number; segs: number }
  | { kind: "rtt"; id: string; size: number; rate: number }
  | { kind: "memory"; id: string; sessions: number };

export interface Plan {
  quick: boolean;
  reps: number;
  warmup: number;
  duration: number;
  drain: number;
  rttDuration: number;
  scenarios: Scenario[];
}

function flow(size: number, sessions: number, rate: number): Scenario {
  const load = rate > 0 ? `${rate / 1000}k` : "flat";
  return { kind: "flow", id: `flow-${size}B-${sessions}s-${load}`, size, sessions, rate };
}

const GSO: Scenario = { kind: "gso", id: "gso-1200B-bulk", size: 1200, segs: 16 };
const RTT: Scenario = { kind: "rtt", id: "rtt-64B-1k", size: 64, rate: 1000 };
const MEMORY: Scenario = { kind: "memory", id: "memory-100k-idle", sessions: 100_000 };

export function makePlan(quick: boolean): Plan {
  if (quick) {
    return {
      quick, reps: 1, warmup: 0.3, duration: 1, drain: 0.2, rttDuration: 1,
      scenarios: [flow(64, 64, 0), flow(1200, 64, 0), GSO, RTT, MEMORY],
    };
  }
  return {
    quick, reps: 3, warmup: 0.4, duration: 1.5, drain: 0.2, rttDuration: 3,
    scenarios: [
      flow(64, 1, 0), flow(64, 64, 0), flow(64, 10_000, 0),
      flow(1200, 1, 0), flow(1200, 64, 0), flow(1200, 10_000, 0),
      GSO, RTT, MEMORY,
      // fixed offered loads last: if the time budget runs out, they are what is dropped
      flow(64, 64, 50_000), flow(64, 64, 150_000),
    ],
  };
}

/** Flat-out flow scenarios are where the throughput and CPU/packet targets are judged. */
export function isFlatFlow(s: Scenario): boolean {
  return s.kind === "flow" && s.rate === 0;
}
