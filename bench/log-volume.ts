/**
 * Log volume under forged REG churn (the review's attack 5): a relay process at the default log
 * level and limits, and a raw socket forging, from 256 source addresses, REGs that alternate
 * between two session ids for 10 s. Reports the bytes and lines the relay wrote to stderr.
 * Root only (raw sockets).
 *
 *   bun bench/log-volume.ts [--seconds 10] [--rate 150]     (rate: REGs per second per source)
 */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Forger } from "../test/support/forge.ts";
import { REPO_ROOT } from "./relays.ts";

const argv = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const SECONDS = arg("seconds", 10);
const RATE = arg("rate", 150);
const SOURCES = 256;

const opened = Forger.open();
if (typeof opened === "string") {
  console.error(`log-volume bench needs forged sources: ${opened}`);
  process.exit(2);
}
const forger: Forger = opened;

async function freePort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

async function run(plane: "ts" | "native") {
  const dir = join(REPO_ROOT, "bench/build/logs");
  mkdirSync(dir, { recursive: true });
  const logPath = join(dir, `log-volume-${plane}.log`);
  const port = await freePort();
  const log = Bun.file(logPath).writer();
  const proc = Bun.spawn([process.execPath, join(REPO_ROOT, "src/cli/main.ts"), "--host", "127.0.0.1", "--port", String(port), "--dataplane", plane], {
    stdout: "ignore",
    stderr: "pipe",
  });
  const copying = (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) log.write(chunk);
  })();
  // Wait until it answers a REG.
  const answered = Promise.withResolvers<void>();
  const ready = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, binaryType: "uint8array", socket: { data: () => answered.resolve() } });
  for (let i = 0; i < 100; i++) {
    ready.send("REG:log-volume-ready\n", port, "127.0.0.1");
    if (await Promise.race([answered.promise.then(() => true), Bun.sleep(100).then(() => false)])) break;
  }
  ready.close();
  const relay = { address: "127.0.0.1", port };
  const ids = ["churn-session-a", "churn-session-b"];
  const started = performance.now();
  let sent = 0;
  for (let round = 0; performance.now() - started < SECONDS * 1000; round++) {
    const due = Math.floor(((performance.now() - started) / 1000) * RATE);
    for (; sent < due; sent++) {
      for (let i = 0; i < SOURCES; i++) forger.send(`REG:${ids[sent % 2]}\n`, { address: `127.31.${i >> 7}.${(i & 127) + 1}`, port: 40_000 }, relay);
    }
    await Bun.sleep(1);
  }
  const elapsed = (performance.now() - started) / 1000;
  await Bun.sleep(1200); // the last second's "not logged" summary lines
  proc.kill("SIGTERM");
  await proc.exited;
  await copying;
  await log.end();
  const bytes = statSync(logPath).size;
  const lines = (await Bun.file(logPath).text()).split("\n").filter(Boolean).length;
  return { plane, seconds: Math.round(elapsed * 10) / 10, regs: sent * SOURCES, bytes, lines, mbPer10s: Math.round((bytes / elapsed) * 10 / 1e4) / 100 };
}

const results = [];
for (const plane of ["ts", "native"] as const) results.push(await run(plane));
forger.close();
console.log("| plane | seconds | forged REGs | log bytes | log lines | MB per 10 s |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of results) console.log(`| ${r.plane} | ${r.seconds} | ${r.regs} | ${r.bytes} | ${r.lines} | ${r.mbPer10s} |`);
mkdirSync(join(REPO_ROOT, "bench/results"), { recursive: true });
writeFileSync(join(REPO_ROOT, "bench/results/log-volume.json"), `${JSON.stringify({ at: new Date().toISOString(), sources: SOURCES, ratePerSource: RATE, results }, null, 2)}\n`);
