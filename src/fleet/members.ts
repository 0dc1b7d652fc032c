import type { Endpoint } from "../net/address.ts";
import { endpointKey, hostOf, parseHostPort } from "../net/address.ts";
import type { FleetDirectory } from "./directory.ts";

/**
 * A relay stays a member this long after the directory last named it: a restarted, empty Redis
 * lists each relay again only at its next heartbeat, and bridges must not stop meanwhile.
 */
const FORGET_MS = 60_000;

/** Frames from unknown addresses read the member set again at most this often (10 reads a second at most, whatever the junk rate). */
const REFRESH_MS = 100;

interface Member {
  relay: string;
  /** When the directory (member set, a session entry, a join message) last named it. */
  seenAt: number;
}

/**
 * The fleet's relays by the address they send from (their advertised ip:port): bridge frames are
 * decoded only from these, and REGs from these are never registered. Learnt from the directory
 * (the member set every heartbeat, session entries, messages), read again soon when a frame
 * comes from an unknown address (a relay that just joined).
 */
export class FleetMembers {
  private readonly byAddress = new Map<string, Member>();
  private readAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly directory: FleetDirectory,
    private readonly self: string,
    /** Called after a read of the member set that `senderOf` asked for (frames from unknown addresses wait for it). */
    private readonly onRefreshed: () => void = () => {},
  ) {}

  /** The member relay at `from`, or undefined (and, with `refresh`, the member set is read again soon). */
  senderOf(from: Endpoint, refresh = true): string | undefined {
    const member = this.byAddress.get(endpointKey(hostOf(from.address), from.port));
    if (member === undefined && refresh) this.refreshSoon();
    return member?.relay;
  }

  has(from: Endpoint): boolean {
    return this.byAddress.has(endpointKey(hostOf(from.address), from.port));
  }

  /** A relay the directory named: its frames are accepted from its address from now on. */
  learn(relay: string, now = Date.now()): void {
    const hp = parseHostPort(relay);
    if (hp && hp.host !== "") this.byAddress.set(endpointKey(hostOf(hp.host), hp.port), { relay, seenAt: now });
  }

  /** Re-reads the member set; members whose health key is gone leave it (here, after FORGET_MS). */
  async refresh(): Promise<void> {
    this.readAt = Date.now();
    const members = await this.directory.members();
    if (!members) return;
    const now = Date.now();
    for (const relay of members) this.learn(relay, now);
    for (const [key, member] of this.byAddress) if (now - member.seenAt > FORGET_MS) this.byAddress.delete(key);
    const others = members.filter((m) => m !== this.self);
    const alive = await Promise.all(others.map((relay) => this.directory.alive(relay)));
    for (const [i, relay] of others.entries()) if (alive[i] === false) void this.directory.dropMember(relay);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private refreshSoon(): void {
    if (this.stopped || this.timer) return;
    const wait = Math.max(0, this.readAt + REFRESH_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) void this.refresh().finally(() => this.stopped || this.onRefreshed());
    }, wait);
  }
}
