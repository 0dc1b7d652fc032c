import type { Endpoint } from "../net/address.ts";
import { formatEndpoint, parseHostPort } from "../net/address.ts";
import type { Logger } from "../log.ts";
import { encodeMove } from "../protocol/replies.ts";
import type { Relay } from "../relay.ts";
import { TokenBucket } from "../security/token-bucket.ts";
import type { FleetDirectory } from "./directory.ts";
import type { HeldRegs } from "./held-regs.ts";

/**
 * Directory lookups for REGs with the `move` flag, a second (and the burst): a flood of forged
 * REGs must not become a flood of Redis commands. Beyond it, such REGs register here (the
 * relays bridge the session if its partner is elsewhere), as when the directory is down.
 */
const LOOKUP_RATE = 2000;

/** What became of REGs with the `move` flag for sessions new here. */
export interface PlacementCounts {
  /** Sent to the partner's relay (MOVE). */
  moved: number;
  /** Registered here after a lookup. */
  here: number;
  /** Registered here without one (directory down, lookup budget spent). */
  unlooked: number;
}

export interface PlacementDeps {
  relay: Relay;
  directory: FleetDirectory;
  held: HeldRegs;
  /** This relay's id. */
  self: string;
  /** Whether `relay` is known to be gone (no directory read, no ping). */
  knownGone(relay: string): boolean;
  logger: Logger;
}

/**
 * Peers of one session meet on one relay: a REG with the `move` flag (a client that follows
 * MOVE) for a session new here is looked up in the directory; if another live relay holds the
 * session's one peer, the client is sent there (`MOVE <relay>`) and nothing is registered here.
 * Otherwise, or when the directory cannot tell, the REG registers here as any other.
 */
export class Placement {
  readonly counts: PlacementCounts = { moved: 0, here: 0, unlooked: 0 };
  private readonly lookups = new TokenBucket(LOOKUP_RATE, LOOKUP_RATE);

  constructor(private readonly deps: PlacementDeps) {}

  place(sessionId: string, from: Endpoint, raw: Uint8Array): "here" | "checking" {
    const { held, directory } = this.deps;
    if (held.offering) return "here";
    const key = `place:${sessionId}`;
    // A lookup for this session is under way: the REG waits for its answer too.
    if (held.hold(key, from, raw)) {
      if (!directory.reachable || !this.lookups.take(performance.now())) {
        held.take(key);
        this.counts.unlooked++;
        return "here";
      }
      void this.partnerRelay(sessionId).then((relay) => this.placed(key, sessionId, relay));
    }
    return "checking";
  }

  /** The one live relay holding exactly one peer of the session, if the directory names one. */
  private async partnerRelay(sessionId: string): Promise<string | undefined> {
    const { directory, self, knownGone } = this.deps;
    const holders = await directory.holders(sessionId);
    if (!holders) return undefined;
    const candidates = [...holders].filter(([relay, h]) => h.peers === 1 && relay !== self).map(([relay]) => relay);
    if (candidates.length !== 1) return undefined;
    const relay = candidates[0]!;
    if (knownGone(relay)) return undefined;
    return (await directory.alive(relay)) ? relay : undefined;
  }

  private placed(key: string, sessionId: string, relay: string | undefined): void {
    const { held, logger } = this.deps;
    const table = this.deps.relay.table;
    const target = relay === undefined ? undefined : parseHostPort(relay);
    const here = [];
    for (const p of held.take(key)) {
      // A REG that arrived meanwhile may have registered the session here: then it stays here.
      const move = target && !table.session(sessionId) ? encodeMove(target, p.raw.length) : undefined;
      if (!move) {
        here.push(p);
        continue;
      }
      this.deps.relay.plane.send(move, p.from);
      this.counts.moved++;
      logger.debug("REG sent to the relay of its partner", { session: sessionId, peer: formatEndpoint(p.from), relay });
    }
    this.counts.here += here.length;
    held.offer(here);
  }
}
