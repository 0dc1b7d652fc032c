/**
 * What a relay's per-session indexes cost its thread in garbage collection at a million sessions,
 * against the structures they replaced, in the same run: the state file's index of newest rows
 * (src/state/row-index.ts; before, a Map from id strings to numbers), the fleet coordinator's
 * directory entries (src/fleet/announced.ts; before, a Map from id strings to an object per
 * write) and the connection-ID index's senders (src/sessions/cid-senders.ts; before, a Map from
 * 8-byte IDs in hex to a compact peer's ref, as a QUIC session confirms them). Each kind runs in a process of its own: it holds N ids, then for a few seconds takes
 * what a filling relay gives it (new ids, ids gone, ids rewritten: 20,000 of each a second, in
 * batches due every 10 ms, with a row's text of garbage per new id) while a 5 ms timer measures
 * how late it fires: the thread held by the batches and by the collector. A Map walks each of its
 * keys at a full collection and, once a new key or object lands in it, all of them again at the
 * next one.
 *
 *   bun bench/id-index-gc.ts                    # 1M ids, 6 s each kind: about 60 s
 *   bun bench/id-index-gc.ts --ids=200000 --seconds=4
 *
 * Prints a table; writes bench/results/id-index-gc-latest.{json,txt}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { heapStats } from "bun:jsc";

import { AnnouncedEntries } from "../src/fleet/announced.ts";
import { CidSenders } from "../src/sessions/cid-senders.ts";
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

type Kind = "map" | "row-index" | "entries-map" | "announced" | "cid-map" | "cid-senders";
const KINDS: Record<Kind, string> = {
  map: "row index: Map of id strings (before)",
  "row-index": "row index: RowIndex (typed arrays)",
  "entries-map": "fleet entries: Map of objects (before)",
  announced: "fleet entries: AnnouncedEntries",
  "cid-map": "connection IDs: Map of ID strings (before)",
  "cid-senders": "connection IDs: CidSenders",
};

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
  // Connection IDs name a compact peer by its ref (a number): what most of a million sessions' IDs name.
  if (kind === "cid-senders") {
    const senders = new CidSenders<object>();
    return { set: (cid, seq) => senders.set(cid, seq), forget: (cid) => void senders.delete(cid) };
  }
  if (kind === "cid-map") {
    const map = new ShardedMap<object | number>();
    return { set: (cid, seq) => map.set(cid, seq), forget: (cid) => void map.delete(cid) };
  }
  if (kind === "row-index") {
    const index = new RowIndex();
    return { set: (id, seq) => void index.session(id, seq), forget: (id) => index.forget(id) };
  }
  if (kind === "map") {
    const map = new ShardedMap<number>();
    return { set: (id, seq) => map.set(id, seq), forget: (id) => void map.delete(id) };
  }
  // The fleet coordinator's entries, each write queued for renewal.
  if (kind === "announced") {
    const entries = new AnnouncedEntries();
    return { set: (id, seq) => void entries.set(id, { localPeers: 1, identity: undefined, at: seq }), forget: (id) => void entries.delete(id) };
  }
  // The coordinator's entries before: a ShardedMap of an object per write. Its queue of the same
  // objects is left out, so the figure is if anything below what the coordinator cost.
  const map = new ShardedMap<{ id: string; localPeers: number; identity: string | undefined; at: number }>();
  return { set: (id, seq) => map.set(id, { id, localPeers: 1, identity: undefined, at: seq }), forget: (id) => void map.delete(id) };
}

const uuid = (n: number) => `${(n >>> 0).toString(16).padStart(8, "0")}-7e57-4000-8000-${(n * 2654435761 >>> 0).toString(16).padStart(12, "0")}`;
/** An 8-byte connection ID in hex, as the relay reads one. */
const cid = (n: number) => `${(n * 2654435761 >>> 0).toString(16).padStart(8, "0")}${(n >>> 0).toString(16).padStart(8, "0")}`;

async function child(kind: Kind): Promise<Result> {
  const index = makeIndex(kind);
  const keyOf = kind.startsWith("cid-") ? cid : uuid;
  for (let n = 0; n < IDS; n++) index.set(keyOf(n), n + 1);
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
        const id = keyOf(next++);
        index.set(id, seq++);
        index.forget(keyOf(oldest++));
        index.set(keyOf(oldest + ((k * 7919) % (next - oldest))), seq++);
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
// Kinds come in pairs, before then after: each is set against the first of its pair.
const rows = results.map((r, k) => [
  KINDS[r.kind],
  r.heapMb.toFixed(1),
  r.worstLagMs.toFixed(1),
  (r.worstLagMs / results[k - (k % 2)]!.worstLagMs).toFixed(2),
  r.p99LagMs.toFixed(2),
  `${r.over10} / ${r.samples}`,
  `${r.batches} / ${r.batchesDue}`,
]);
const table = renderTable(["index", "heap MB", "worst lag ms", "x before", "p99 lag ms", "samples > 10 ms", "batches done"], rows, 1);
const head = `per-session indexes under a filling relay's churn: ${IDS} ids, ${RATE}/s each of new, gone and rewritten ids, ${SECONDS} s, ${LAG_TIMER_MS} ms timer, ${new Date().toISOString()}`;
console.log(`${head}\n${table}`);
const resultsDir = join(import.meta.dir, "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, "id-index-gc-latest.json"), `${JSON.stringify({ at: new Date().toISOString(), ids: IDS, rate: RATE, seconds: SECONDS, results }, null, 2)}\n`);
writeFileSync(join(resultsDir, "id-index-gc-latest.txt"), `${head}\n${table}\n`);
