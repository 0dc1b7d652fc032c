/** Starting the Node QUIC peers (@matrixai/quic) inside the topology. */
import { join } from "node:path";
import { PEERS, type WorkDir } from "./env.ts";
import type { Proc, ProcSet } from "./procs.ts";
import { ADDR, type Topology } from "./topology.ts";

export interface PeerOptions {
  relayPort: number;
  session: string;
  relayHost?: string;
  /** Keepalive REG interval; long values leave connection-ID evidence as the only rebinding signal. */
  keepaliveMs?: number;
  idleMs?: number;
}

export function startQuicServer(topo: Topology, procs: ProcSet, work: WorkDir, bytes: number, o: PeerOptions): Proc {
  return procs.spawn(`quic-server ${o.session}`, topo.exec("a", [
    "node", join(PEERS, "quic-server.mjs"),
    "--relay-host", o.relayHost ?? ADDR.relay, "--relay-port", String(o.relayPort), "--session", o.session,
    "--key", work.key, "--cert", work.cert, "--bytes", String(bytes),
    "--keepalive-ms", String(o.keepaliveMs ?? 5000), "--idle-ms", String(o.idleMs ?? 15000),
  ]));
}

export function startQuicClient(topo: Topology, procs: ProcSet, o: PeerOptions & { timeoutMs: number }): Proc {
  return procs.spawn(`quic-client ${o.session}`, topo.exec("b", [
    "node", join(PEERS, "quic-client.mjs"),
    "--relay-host", o.relayHost ?? ADDR.relay, "--relay-port", String(o.relayPort), "--session", o.session,
    "--keepalive-ms", String(o.keepaliveMs ?? 5000), "--idle-ms", String(o.idleMs ?? 15000), "--timeout-ms", String(o.timeoutMs),
  ]));
}

/** Bytes the client reported so far. */
export function progressOf(client: Proc): number {
  let bytes = 0;
  for (const e of client.events) if (e.event === "progress" || e.event === "done") bytes = Math.max(bytes, Number(e.bytes));
  return bytes;
}

export const END_EVENTS = ["done", "transfer-error", "connect-error", "timeout"];
