/** What the e2e suite needs from the machine, and starting the relay inside the topology. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProcSet, Proc } from "./procs.ts";
import { ADDR, type Topology } from "./topology.ts";

export const ROOT = join(import.meta.dir, "..", "..");
export const MAIN = join(ROOT, "src", "cli", "main.ts");
export const PEERS = join(import.meta.dir, "peers");
export const RELAY_PORT = 4433;

export function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

/** NAT with nftables when present, else iptables (both give symmetric-like fully random ports); E2E_NAT=iptables forces it. */
export const USE_IPTABLES = process.env.E2E_NAT === "iptables" || (!has("nft") && has("iptables"));

/** Why the suite cannot run here, or undefined when it can. */
export function skipReason(tools: string[]): string | undefined {
  if (process.platform !== "linux") return "e2e needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "e2e needs root (network namespaces, nftables, conntrack)";
  const missing = tools.filter((t) => !has(t));
  if (!has("nft") && !has("iptables")) missing.push("nft or iptables");
  if (missing.length) return `e2e needs ${missing.join(", ")} on PATH (apt: iproute2 nftables conntrack ngtcp2-server ngtcp2-client openssl nodejs)`;
  if (!existsSync(join(ROOT, "node_modules", "@matrixai", "quic"))) return "e2e needs the @matrixai/quic dev dependency (bun install)";
  return undefined;
}

export function announceSkip(reason: string | undefined, suite: string): void {
  if (reason) console.warn(`[e2e] skipping ${suite}: ${reason}`);
}

export interface WorkDir {
  dir: string;
  key: string;
  cert: string;
  remove(): void;
}

/** A temp dir with a P-256 key and self-signed certificate for the QUIC servers. */
export function workDir(): WorkDir {
  const dir = mkdtempSync(join(tmpdir(), "quic-relay-e2e-"));
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  const r = spawnSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=quic-relay-e2e",
  ]);
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  mkdirSync(join(dir, "www"));
  return { dir, key, cert, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Start the relay on the public address. Returns undefined when the requested plane does not
 * start (e.g. native addon not built), so callers can skip that plane with a message.
 */
/** The relay in the public namespace; `flags` are added to its command line (e.g. `--auth-secret`). */
export async function startRelay(topo: Topology, procs: ProcSet, plane: "ts" | "native", port = RELAY_PORT, flags: string[] = []): Promise<Proc | undefined> {
  const relay = procs.spawn(`relay-${plane}:${port}`, topo.exec("pub", [
    "bun", MAIN, "--host", ADDR.relay, "--port", String(port), "--dataplane", plane, "--session-timeout-secs", "60", "--log-level", process.env.E2E_RELAY_LOG_LEVEL ?? "info",
    ...flags,
  ]));
  const started = await Promise.race([
    relay.waitOutput(/listening on udp/, 15_000).then(() => true, () => false),
    relay.exited.then(() => false),
  ]);
  if (!started) {
    relay.kill();
    // In CI both planes must run (as in the loopback suites); elsewhere a missing addon only skips.
    if (plane === "native" && process.env.CI !== "true") {
      console.warn(`[e2e] native data plane unavailable, its runs are skipped:\n${relay.tail(5)}`);
      return undefined;
    }
    throw new Error(`relay (${plane}) did not start:\n${relay.tail()}`);
  }
  return relay;
}

/** The in-test forwarder that pairs and forwards but never follows a NAT rebinding (negative control). */
export async function startPinnedForwarder(topo: Topology, procs: ProcSet, port: number): Promise<Proc> {
  const fwd = procs.spawn("pinned-forwarder", topo.exec("pub", ["node", join(PEERS, "pinned-forwarder.mjs"), ADDR.relay, String(port)]));
  await fwd.waitEvent("listening", 10_000);
  return fwd;
}

/** Planes to run: ts always; native when `--dataplane native` starts (checked per suite). */
export const PLANES = ["ts", "native"] as const;
