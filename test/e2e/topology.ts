/**
 * A small internet in network namespaces, built and removed by the tests:
 *
 *   peer A 192.0.2.2 ── NAT A ── 203.0.113.2 ┐
 *                     (192.0.2.1)            ├─ br0 in "pub": relay 203.0.113.1 (+ 203.0.113.11)
 *   peer B 198.51.100.2 ── NAT B ── 203.0.113.3 ┘
 *                     (198.51.100.1)
 *
 * Both NATs masquerade with fully random ports (symmetric-like: every new flow gets a fresh
 * random public port), and "pub" has no route to the private ranges, so nothing bypasses them.
 * A suite may build either NAT port-preserving instead (plain masquerade: Linux keeps the source
 * port while it is free, so one socket shows one public address to every destination, which is
 * endpoint-independent mapping); see `natMapping`.
 * TEST-NET ranges only; names carry a per-run prefix so parallel runs cannot collide.
 */
import { spawnSync } from "node:child_process";

export const ADDR = {
  relay: "203.0.113.1",
  relayAlt: "203.0.113.11",
  natAWan: "203.0.113.2",
  natBWan: "203.0.113.3",
  natALan: "192.0.2.1",
  peerA: "192.0.2.2",
  natBLan: "198.51.100.1",
  peerB: "198.51.100.2",
} as const;

export type Node = "pub" | "natA" | "natB" | "a" | "b";

/**
 * How a NAT picks public ports. "symmetric": fully random per flow (the default, what every suite
 * relies on). "port-preserving": plain masquerade, the private source port kept when free.
 */
export type NatMapping = "symmetric" | "port-preserving";

export class TopologyError extends Error {
  override name = "TopologyError";
}

/** Run a command synchronously; throws with its stderr on failure. */
export function run(cmd: string[], input?: string): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { input, encoding: "utf8", timeout: 15_000 });
  if (r.status !== 0) throw new TopologyError(`${cmd.join(" ")} failed (${r.status}): ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout;
}

export class Topology {
  readonly ns: Record<Node, string>;
  private created: string[] = [];
  private readonly mappings: Record<"natA" | "natB", NatMapping> = { natA: "symmetric", natB: "symmetric" };

  constructor(readonly prefix = `qre2e${process.pid}`) {
    this.ns = { pub: `${prefix}-pub`, natA: `${prefix}-na`, natB: `${prefix}-nb`, a: `${prefix}-a`, b: `${prefix}-b` };
  }

  /**
   * Sets how `nat` maps (symmetric unless set), before build(). Throws once the namespaces exist:
   * the rule is made at build time.
   */
  natMapping(nat: "natA" | "natB", mapping: NatMapping): this {
    if (this.created.length > 0) throw new TopologyError(`${nat}: the NAT mapping is chosen before build()`);
    this.mappings[nat] = mapping;
    return this;
  }

  /** How `nat` is (or will be) built. */
  mappingOf(nat: "natA" | "natB"): NatMapping {
    return this.mappings[nat];
  }

  /** Argument vector that runs `cmd` inside a node's namespace. */
  exec(node: Node, cmd: string[]): string[] {
    return ["ip", "netns", "exec", this.ns[node], ...cmd];
  }

  sh(node: Node, cmd: string[], input?: string): string {
    return run(this.exec(node, cmd), input);
  }

  build(useIptables = false): void {
    sweepStaleNamespaces();
    try {
      for (const node of Object.keys(this.ns) as Node[]) {
        run(["ip", "netns", "add", this.ns[node]]);
        this.created.push(this.ns[node]);
        this.ip(node, "link set lo up");
      }
      this.ip("pub", "link add br0 type bridge");
      this.ip("pub", "link set br0 up");
      this.ip("pub", `addr add ${ADDR.relay}/24 dev br0`);
      this.ip("pub", `addr add ${ADDR.relayAlt}/24 dev br0`);
      this.router("natA", "a", "pa", ADDR.natAWan, ADDR.natALan, ADDR.peerA, useIptables);
      this.router("natB", "b", "pb", ADDR.natBWan, ADDR.natBLan, ADDR.peerB, useIptables);
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  private ip(node: Node, args: string): void {
    run(["ip", "-n", this.ns[node], ...args.split(" ")]);
  }

  private router(nat: "natA" | "natB", peer: Node, bridgePort: string, wan: string, lan: string, peerAddr: string, useIptables: boolean): void {
    this.ip(nat, `link add wan type veth peer name ${bridgePort} netns ${this.ns.pub}`);
    this.ip("pub", `link set ${bridgePort} master br0`);
    this.ip("pub", `link set ${bridgePort} up`);
    this.ip(nat, `addr add ${wan}/24 dev wan`);
    this.ip(nat, "link set wan up");
    this.ip(nat, `link add lan type veth peer name eth0 netns ${this.ns[peer]}`);
    this.ip(nat, `addr add ${lan}/24 dev lan`);
    this.ip(nat, "link set lan up");
    this.ip(peer, `addr add ${peerAddr}/24 dev eth0`);
    this.ip(peer, "link set eth0 up");
    this.ip(peer, `route add default via ${lan}`);
    this.sh(nat, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    const random = this.mappings[nat] === "symmetric";
    if (useIptables) {
      this.sh(nat, ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE", ...(random ? ["--random-fully"] : [])]);
    } else {
      this.sh(nat, ["nft", "-f", "-"], [
        "table ip nat {",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        `    oifname "wan" masquerade${random ? " fully-random" : ""}`,
        "  }",
        "}",
      ].join("\n"));
    }
  }

  /** Public UDP ports NAT `nat` maps the private `sport` to toward `dst:dport` (conntrack reply tuples). */
  publicPorts(nat: "natA" | "natB", dst: string, dport: number, sport: number): number[] {
    const out = spawnSync("ip", ["netns", "exec", this.ns[nat], "conntrack", "-L", "-p", "udp"], { encoding: "utf8" }).stdout ?? "";
    const ports: number[] = [];
    for (const line of out.split("\n")) {
      // original: src=<peer> dst=<dst> sport=S dport=<dport> ... reply: src=<dst> dst=<wan> sport=<dport> dport=<public>
      const m = line.match(/dst=(\S+) sport=(\d+) dport=(\d+) .*src=\S+ dst=\S+ sport=\d+ dport=(\d+)/);
      if (m && m[1] === dst && Number(m[2]) === sport && Number(m[3]) === dport) ports.push(Number(m[4]));
    }
    return ports;
  }

  /** Wait until something listens on UDP `port` inside a node (e.g. a server finished starting). */
  async waitUdpListening(node: Node, port: number, ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    for (;;) {
      const out = spawnSync("ip", ["netns", "exec", this.ns[node], "ss", "-Hunl", `sport = :${port}`], { encoding: "utf8" }).stdout ?? "";
      if (out.trim() !== "") return;
      if (performance.now() > deadline) throw new TopologyError(`nothing listens on udp port ${port} in ${node} after ${ms} ms`);
      await Bun.sleep(20);
    }
  }

  /** Forget every UDP mapping of a NAT: the next packet of each flow gets a new random public port. */
  flushNat(nat: "natA" | "natB"): void {
    spawnSync("ip", ["netns", "exec", this.ns[nat], "conntrack", "-D", "-p", "udp"], { encoding: "utf8" });
  }

  /** Kill whatever still runs inside the namespaces, then delete them. Safe to call repeatedly. */
  destroy(): void {
    for (const name of this.created.splice(0)) {
      const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout?.trim();
      if (pids) for (const pid of pids.split(/\s+/)) spawnSync("kill", ["-9", pid]);
      spawnSync("ip", ["netns", "del", name]);
    }
  }
}

/** Remove namespaces left by an earlier run that was killed hard (its pid is in the name and gone). */
export function sweepStaleNamespaces(): void {
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = name.match(/^qr[a-z](\d+)-(pub|na|nb|a|b)$/);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (alive) continue;
    const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout?.trim();
    if (pids) for (const p of pids.split(/\s+/)) spawnSync("kill", ["-9", p]);
    spawnSync("ip", ["netns", "del", name]);
  }
}
