/**
 * What the state file's index of newest rows (src/state/row-index.ts) costs the relay's thread in
 * garbage collection at a million ids, against the structure it replaced: a Map from id strings
 * (a ShardedMap<number>, 64 Maps), in the same run. Each kind runs in a process of its own: it
 * holds N ids, then for a few seconds takes what a save of a filling relay gives it (new ids,
 * ids gone, ids rewritten: 20,000 of each a second, in batches due every 10 ms, with some garbage
 * per row as the rows' text makes) while a 5 ms timer measures how late it fires: the thread
 * held by the batches and by the collector. A Map walks each of its keys at a full collection and,
 * once a new key lands in it, all of them again at the next one.
 *
 *   bun bench/row-index-gc.ts                    # 1M ids, 6 s each: about half a minute
 *   bun bench/row-index-gc.ts --ids=200000 --seconds=4
 *
 * Prints a table; writes bench/results/row-index-gc-latest.{json,txt}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { heapStats } from "bun:jsc";

import { ShardedMap } from "../src/sessions/sharded-map.ts";
import { RowIndex } from "../src/state/row-index.ts";
import { renderTable } from "./table.ts";

const { values } = parseArgs({
  options: { ids: { type: "string", default: "1000000" }, seconds: { type: "string", default: "6" }, kind: { type: "string" } },
});
const IDS = Number(values.ids);
const SECONDS = Number(values.seconds);
/** New ids, gone ids and rewritten ids, each, per second; a batch every BATCH_MS. */
const RATE = 20_000;
const BATCH_MS = 10;
const LAG_TIMER_MS = 5;

type Kind = "map" | "row-index";
const KINDS: Record<Kind, string> = { map: "Map of id strings (before)", "row-index": "RowIndex (typed arrays)" };

interface Result {
  kind: Kind;
  ids: number;
  /** The JS heap with the ids held, after a full collection, MB. */
  heapMb: number;
  worstLagMs: number;
  p99LagMs: number;
  /** Timer samples over 10 ms. */
  over10: number;
  samples: number;
  /** Batches done: all that fell due when the thread keeps up. */
  batches: number;
  batchesDue: number;
}

/** The index under test, through the three operations a save makes. */
interface Index {
  set(id: string, seq: number): void;
  forget(id: string): void;
}

function makeIndex(kind: Kind): Index {
  if (kind === "row-index") {
    const index = new RowIndex();
    return { set: (id, seq) => void index.session(id, seq), forget: (id) => index.forget(id) };
  }
  const map = new ShardedMap<number>();
  return { set: (id, seq) => map.set(id, seq), forget: (id) => void map.delete(id) };
}

const uuid = (n: number) => `${(n >>> 0).toString(16).padStart(8, "0")}-7e57-4000-8000-${(n * 2654435761 >>> 0).toString(16).padStart(12, "0")}`;

async function child(kind: Kind): Promise<Result> {
  const index = makeIndex(kind);
  for (let n = 0; n < IDS; n++) index.set(uuid(n), n + 1);
  Bun.gc(true);
  const heapMb = heapStats().heapSize / 1e6;
  let next = IDS;
  let oldest = 0;
  let seq = IDS + 1;
  const perBatch = Math.round((RATE * BATCH_MS) / 1000);
  let garbage: string[] = [];
  let batches = 0;
  const lags: number[] = [];
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    let due = performance.now() + LAG_TIMER_MS;
    const tick = () => {
      const now = performance.now();
      lags.push(Math.max(0, now - due));
      if (now >= end) return resolve();
      due = now + LAG_TIMER_MS;
      setTimeout(tick, LAG_TIMER_MS);
    };
    setTimeout(tick, LAG_TIMER_MS);
    let batchDue = start + BATCH_MS;
    const batch = () => {
      if (performance.now() >= end) return;
      for (let k = 0; k < perBatch; k++) {
        const id = uuid(next++);
        index.set(id, seq++);
        index.forget(uuid(oldest++));
        index.set(uuid(oldest + ((k * 7919) % (next - oldest))), seq++);
        // A row's text, as sessionRow makes one: garbage once written.
        garbage.push(JSON.stringify({ id, at: seq, peers: [["10.1.2.3", 4433, 12], ["10.3.2.1", 4433, 8]] }));
      }
      if (garbage.length > 20_000) garbage = [];
      batches++;
      batchDue += BATCH_MS;
      setTimeout(batch, Math.max(0, batchDue - performance.now()));
    };
    setTimeout(batch, BATCH_MS);
  });
  const sorted = [...lags].sort((a, b) => a - b);
  return {
    kind,
    ids: IDS,
    heapMb,
    worstLagMs: sorted.at(-1) ?? 0,
    p99LagMs: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
    over10: lags.filter((l) => l > 10).length,
    samples: lags.length,
    batches,
    batchesDue: Math.floor((SECONDS * 1000) / BATCH_MS),
  };
}

if (values.kind) {
  const result = await child(values.kind as Kind);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const results: Result[] = [];
for (const kind of Object.keys(KINDS) as Kind[]) {
  const proc = Bun.spawnSync([process.execPath, import.meta.path, `--kind=${kind}`, `--ids=${IDS}`, `--seconds=${SECONDS}`], { stderr: "inherit" });
  if (proc.exitCode !== 0) throw new Error(`${kind}: exited ${proc.exitCode}`);
  results.push(JSON.parse(proc.stdout.toString().trim().split("\n").at(-1)!) as Result);
}
const base = results[0]!;
const rows = results.map((r) => [
  KINDS[r.kind],
  r.heapMb.toFixed(1),
  r.worstLagMs.toFixed(1),
  (r.worstLagMs / base.worstLagMs).toFixed(2),
  r.p99LagMs.toFixed(2),
  `${r.over10} / ${r.samples}`,
  `${r.batches} / ${r.batchesDue}`,
]);
const table = renderTable(["index", "heap MB", "worst lag ms", "x before", "p99 lag ms", "samples > 10 ms", "batches done"], rows, 1);
const head = `row index under a save's churn: ${IDS} ids, ${RATE}/s each of new, gone and rewritten ids, ${SECONDS} s, ${LAG_TIMER_MS} ms timer, ${new Date().toISOString()}`;
console.log(`${head}\n${table}`);
const resultsDir = join(import.meta.dir, "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, "row-index-gc-latest.json"), `${JSON.stringify({ at: new Date().toISOString(), ids: IDS, rate: RATE, seconds: SECONDS, results }, null, 2)}\n`);
writeFileSync(join(resultsDir, "row-index-gc-latest.txt"), `${head}\n${table}\n`);
