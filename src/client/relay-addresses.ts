/**
 * Where the relay is: every address its name resolves to right now, and which one to move to when
 * the one in use stops answering. A fleet of relays behind one DNS name (docs/fleet.md) hands out
 * several addresses; the client re-resolves each time it needs a relay, so a relay taken out of DNS
 * is left and a new one is found. Resolution is injected (`RelayResolver`) so tests need no DNS.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { formatHostPort, type HostPort, hostOf } from "../net/address.ts";
import { RelayResolveError } from "./errors.ts";

/** Every address the relay can be reached at now, preferred first. Throws when there is none. */
export type RelayResolver = () => Promise<HostPort[]>;

/** All A and AAAA addresses of a name. */
export type LookupAll = (host: string) => Promise<string[]>;

export const lookupAll: LookupAll = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/** One relay address as a map key and as people read it (IPv4-mapped IPv6 shown as IPv4). */
export function relayKey(relay: HostPort): string {
  return formatHostPort({ host: hostOf(relay.host), port: relay.port });
}

/**
 * A resolver over `targets` (IPs or names, each with its port): names are looked up afresh on every
 * call, all their addresses in the order the system gives them, targets in the order given,
 * duplicates dropped. A target that fails is skipped while another yields addresses; when none does,
 * the call throws RelayResolveError.
 */
export function relayResolver(targets: readonly HostPort[], lookupAddresses: LookupAll = lookupAll): RelayResolver {
  const text = targets.map(formatHostPort).join(",");
  return async () => {
    const results = await Promise.allSettled(
      targets.map(async (t) => (isIP(t.host) ? [t] : (await lookupAddresses(t.host)).map((host) => ({ host, port: t.port })))),
    );
    const found = new Map<string, HostPort>();
    const failures: string[] = [];
    for (const [i, result] of results.entries()) {
      if (result.status === "rejected") {
        failures.push(`${targets[i]!.host}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`);
        continue;
      }
      for (const hp of result.value) if (!found.has(relayKey(hp))) found.set(relayKey(hp), hp);
    }
    if (found.size === 0) throw new RelayResolveError(text, failures.length > 0 ? failures.join("; ") : "no addresses");
    return [...found.values()];
  };
}

/**
 * The address to move to from `current`: any other usable candidate, the ones that never failed
 * first (in resolver order), then the one that failed longest ago. Undefined when `current` is the
 * only one: the caller keeps retrying it.
 */
export function pickNextRelay(
  candidates: readonly HostPort[],
  current: HostPort,
  failedAt: ReadonlyMap<string, number>,
  usable: (relay: HostPort) => boolean = () => true,
): HostPort | undefined {
  const currentKey = relayKey(current);
  let best: HostPort | undefined;
  let bestFailedAt = Infinity;
  for (const candidate of candidates) {
    const key = relayKey(candidate);
    if (key === currentKey || !usable(candidate)) continue;
    const failed = failedAt.get(key) ?? -Infinity;
    if (best === undefined || failed < bestFailedAt) {
      best = candidate;
      bestFailedAt = failed;
    }
  }
  return best;
}

/** Wildcard bind address that reaches every candidate: `::` (dual stack) when one is IPv6. */
export function wildcardForAll(candidates: readonly HostPort[]): string {
  return candidates.some((c) => isIP(hostOf(c.host)) === 6) ? "::" : "0.0.0.0";
}

/** Whether a socket bound to `wildcard` can send to `relay` (a dual-stack socket reaches both families). */
export function reachableFrom(wildcard: string, relay: HostPort): boolean {
  return isIP(wildcard) === 6 || isIP(hostOf(relay.host)) === 4;
}

/** What `RelayChoice.next` found: an address to move to, none (stay), or a failed resolution. */
export type NextRelay = { kind: "move"; to: HostPort } | { kind: "stay" } | { kind: "resolve-failed"; error: Error };

/** Whether a relay named by a MOVE is one of the relay's addresses (`RelayChoice.knows`). */
export type KnownRelay = { kind: "known" } | { kind: "unknown" } | { kind: "resolve-failed"; error: Error };

/**
 * The relay a client uses, and the next one when it stops answering. With a fixed address there is
 * never a next one. Before the first registration (`starting`) each address is tried once, so a
 * start with every relay dead ends; after it, addresses that failed are used again, oldest first.
 */
export class RelayChoice {
  private readonly resolve: RelayResolver | undefined;
  private currentRelay: HostPort;
  /** Bind address for the relay socket; only addresses it can reach are chosen. */
  wildcard = "0.0.0.0";
  private readonly failedAt = new Map<string, number>();
  /** The latest resolution: the only addresses a MOVE may send us to. */
  private resolved: HostPort[] = [];
  /** Addresses that answered the `move` flag with `ERR bad-id` (relays older than the flag). */
  private readonly flagRefusedAt = new Set<string>();

  constructor(
    relay: HostPort | RelayResolver,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.resolve = typeof relay === "function" ? relay : undefined;
    this.currentRelay = typeof relay === "function" ? { host: "", port: 0 } : relay;
    if (typeof relay !== "function") this.resolved = [relay];
  }

  get current(): HostPort {
    return this.currentRelay;
  }

  get canMove(): boolean {
    return this.resolve !== undefined;
  }

  /** Resolve and take the first address; returns all of them. Throws RelayResolveError. */
  async first(): Promise<HostPort[]> {
    const candidates = this.resolve ? await this.resolve() : [this.currentRelay];
    this.resolved = candidates;
    this.currentRelay = candidates[0]!;
    this.wildcard = wildcardForAll(candidates);
    return candidates;
  }

  /** The current relay stopped answering: pick another address from a fresh resolution. */
  async next(starting: boolean): Promise<NextRelay> {
    if (!this.resolve) return { kind: "stay" };
    let candidates: HostPort[];
    try {
      candidates = await this.resolve();
    } catch (error) {
      return { kind: "resolve-failed", error: asError(error) };
    }
    this.resolved = candidates;
    const usable = (c: HostPort) => reachableFrom(this.wildcard, c) && !(starting && this.failedAt.has(relayKey(c)));
    this.failedAt.set(relayKey(this.currentRelay), this.now());
    const to = pickNextRelay(candidates, this.currentRelay, this.failedAt, usable);
    return to ? { kind: "move", to } : { kind: "stay" };
  }

  moveTo(to: HostPort): void {
    this.currentRelay = to;
  }

  /**
   * Whether `relay` (named by a MOVE) is one of the relay's addresses that the socket can reach:
   * in the latest resolution, or else in a fresh one. A forged MOVE cannot send us elsewhere.
   */
  async knows(relay: HostPort): Promise<KnownRelay> {
    const listed = () => this.resolved.some((c) => relayKey(c) === relayKey(relay)) && reachableFrom(this.wildcard, relay);
    if (listed()) return { kind: "known" };
    if (!this.resolve) return { kind: "unknown" };
    try {
      this.resolved = await this.resolve();
    } catch (error) {
      return { kind: "resolve-failed", error: asError(error) };
    }
    return listed() ? { kind: "known" } : { kind: "unknown" };
  }

  /** `relay` answered the `move` flag with `ERR bad-id`: REGs to it go without the flag from now on. */
  refusedMoveFlag(relay: HostPort): void {
    this.flagRefusedAt.add(relayKey(relay));
  }

  takesMoveFlag(relay: HostPort): boolean {
    return !this.flagRefusedAt.has(relayKey(relay));
  }

  /** Addresses that stopped answering, other than the current one (before the first ACK: the ones tried). */
  leftBehind(): string[] {
    const current = relayKey(this.currentRelay);
    return [...this.failedAt.keys()].filter((key) => key !== current);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
