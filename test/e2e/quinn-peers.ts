/**
 * The quinn (Rust) QUIC peer of the e2e suite: built offline from Debian's packaged crates, once
 * per source hash, then started inside the topology like the Node peers (quic-peers.ts).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { MAIN, PEERS, type WorkDir } from "./env.ts";
import type { Proc, ProcSet } from "./procs.ts";
import { END_EVENTS } from "./quic-peers.ts";
import { ADDR, type Topology } from "./topology.ts";

export const QUINN_SRC = join(PEERS, "quinn");
/** Debian's toolchain, not a rustup one that may be first on PATH: the packaged crates are built for it. */
const CARGO = "/usr/bin/cargo";
const RUSTC = "/usr/bin/rustc";
const DEBIAN_REGISTRY = "/usr/share/cargo/registry";
const CRATES = ["quinn-0.9.", "quinn-udp-0.3.", "rustls-0.20.", "rustls-pemfile-1.", "tokio-1.", "socket2-0.4.", "sha2-0.10."];
export const QUINN_APT_PACKAGES =
  "cargo rustc librust-quinn-dev librust-quinn-udp-dev librust-rustls-dev librust-rustls-pemfile-dev librust-tokio-dev librust-socket2-dev librust-sha2-dev";

/** Why the quinn peer cannot be built here, or undefined when it can. */
export function quinnSkipReason(): string | undefined {
  if (!existsSync(CARGO) || !existsSync(RUSTC)) return `needs Debian's cargo and rustc (apt-get install ${QUINN_APT_PACKAGES})`;
  const have = existsSync(DEBIAN_REGISTRY) ? readdirSync(DEBIAN_REGISTRY) : [];
  const missing = CRATES.filter((c) => !have.some((dir) => dir.startsWith(c)));
  if (missing.length) return `needs the Debian crates ${missing.map((c) => c.slice(0, -1)).join(", ")} in ${DEBIAN_REGISTRY} (apt-get install ${QUINN_APT_PACKAGES})`;
  return undefined;
}

function sourceFiles(): string[] {
  const src = readdirSync(join(QUINN_SRC, "src")).filter((f) => f.endsWith(".rs")).sort().map((f) => join("src", f));
  return ["Cargo.toml", join(".cargo", "config.toml"), ...src];
}

function toolVersions(): string {
  return [CARGO, RUSTC].map((tool) => spawnSync(tool, ["--version"], { encoding: "utf8" }).stdout.trim()).join("\n");
}

/** Where built binaries are kept across runs (E2E_CACHE_DIR overrides). */
export function cacheDir(): string {
  return process.env.E2E_CACHE_DIR ?? join(homedir(), ".cache", "quic-relay-e2e");
}

/**
 * Path of the quinn peer binary for the current sources, building it when no cached build matches
 * (about 100 s on two cores the first time; the dependencies' target dir is shared across source
 * versions, so a change to the peer alone rebuilds in seconds). Builds from a copy of the sources,
 * so no Cargo.lock or target/ appears in the work tree.
 */
export async function buildQuinnPeer(): Promise<{ bin: string; builtMs: number | undefined }> {
  const hash = createHash("sha256");
  for (const file of sourceFiles()) hash.update(`${file}\0`).update(readFileSync(join(QUINN_SRC, file))).update("\0");
  hash.update(toolVersions());
  const key = hash.digest("hex").slice(0, 16);
  const root = join(cacheDir(), "quinn-peer");
  const bin = join(root, "bin", key, "quinn-peer");
  if (existsSync(bin)) return { bin, builtMs: undefined };

  const work = join(root, "src", `${key}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  for (const file of sourceFiles()) {
    mkdirSync(dirname(join(work, file)), { recursive: true });
    copyFileSync(join(QUINN_SRC, file), join(work, file));
  }
  console.log(`[e2e] building the quinn peer (${key}) with Debian's cargo, offline; the first build takes a minute or two`);
  const started = performance.now();
  const target = join(root, "target");
  const cargo = Bun.spawn([CARGO, "build", "--release", "--offline"], {
    cwd: work,
    env: { ...process.env, RUSTC, CARGO_TARGET_DIR: target },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, err] = await Promise.all([cargo.exited, new Response(cargo.stderr).text()]);
  rmSync(work, { recursive: true, force: true });
  if (code !== 0) throw new Error(`cargo build of the quinn peer failed (${code}):\n${err.split("\n").slice(-30).join("\n")}`);
  const builtMs = Math.round(performance.now() - started);
  mkdirSync(join(root, "bin", key), { recursive: true });
  const partial = `${bin}.${process.pid}`;
  copyFileSync(join(target, "release", "quinn-peer"), partial);
  renameSync(partial, bin);
  return { bin, builtMs };
}

export interface QuinnPeerOptions {
  relayPort: number;
  /** The REG field: the session id, or a token (`quic-relay token`) when the relay checks them. */
  session: string;
  relayHost?: string;
  /** direct: REG from the QUIC socket; handover: REG from a helper socket that is closed before quinn binds the port. */
  mode?: "direct" | "handover";
  /** Direct mode only: REG keepalive interval (default 5000). */
  keepaliveMs?: number;
  idleMs?: number;
  /** Experiment only: keep the hand-over's helper socket open next to quinn's. */
  keepRegisterSocket?: boolean;
}

function commonArgs(o: QuinnPeerOptions): string[] {
  return [
    "--relay-host", o.relayHost ?? ADDR.relay, "--relay-port", String(o.relayPort), "--session", o.session,
    "--mode", o.mode ?? "direct", "--keepalive-ms", String(o.keepaliveMs ?? 5000), "--idle-ms", String(o.idleMs ?? 15000),
    "--keep-register-socket", o.keepRegisterSocket ? "1" : "0",
  ];
}

/** Server behind NAT A: serves `bytes` of deterministic data per stream; `listening` carries their sha256. */
export function startQuinnServer(topo: Topology, procs: ProcSet, bin: string, work: WorkDir, bytes: number, o: QuinnPeerOptions): Proc {
  return procs.spawn(`quinn-server ${o.mode ?? "direct"}`, topo.exec("a", [
    bin, "server", ...commonArgs(o), "--key", work.key, "--cert", work.cert, "--bytes", String(bytes),
  ]));
}

/** Client behind NAT B: connects to the relay's address, pins the server's certificate, downloads one stream. */
export function startQuinnClient(topo: Topology, procs: ProcSet, bin: string, work: WorkDir, o: QuinnPeerOptions & { timeoutMs: number }): Proc {
  return procs.spawn(`quinn-client ${o.mode ?? "direct"}`, topo.exec("b", [
    bin, "client", ...commonArgs(o), "--cert", work.cert, "--timeout-ms", String(o.timeoutMs),
  ]));
}

/**
 * The relay with extra flags (env.ts's startRelay takes none). Undefined when the native plane does
 * not start outside CI, as there.
 */
/** A REG token for `session`, minted by the relay's own CLI (docs/security.md). */
export function mintToken(secret: string, session: string, ttlSecs = 600): string {
  const r = spawnSync("bun", [MAIN, "token", "--session", session, "--secret", secret, "--ttl", String(ttlSecs)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`quic-relay token failed: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * The longest silence in the client's reports around time `t` (wall-clock ms): the largest gap
 * between consecutive progress events (or the last one and the end event) where the later one comes
 * after `t`. A transfer that dies shows its whole last silence, up to the idle timeout.
 */
export function largestGapAfter(client: Proc, t: number): { gapMs: number; fromBytes: number; toBytes: number } {
  const marks = client.events.filter((e) => e.event === "progress" || END_EVENTS.includes(e.event));
  let worst = { gapMs: 0, fromBytes: 0, toBytes: 0 };
  for (let i = 1; i < marks.length; i++) {
    const [prev, next] = [marks[i - 1]!, marks[i]!];
    if (next.t < t) continue;
    const gap = next.t - prev.t;
    if (gap > worst.gapMs) worst = { gapMs: gap, fromBytes: Number(prev.bytes ?? 0), toBytes: Number(next.bytes ?? prev.bytes ?? 0) };
  }
  return worst;
}
