import { endpointKey, type Endpoint } from "../net/address.ts";

/**
 * Addresses heard speaking the relay protocol (`ACK`, `ERR`, `RETRY` lines), which only relays
 * send. Two of them are never paired: that is how forged REGs would make relays forward to each
 * other in a loop. Bounded: at most `capacity` addresses, each remembered for `ttlMs` after it
 * last spoke; the oldest is forgotten first.
 */
export class RelaySpeakers {
  /** Insertion order is age order: an address that speaks again moves to the back. */
  private readonly heard = new Map<string, number>();

  constructor(
    private readonly capacity = 4096,
    private readonly ttlMs = 600_000,
  ) {}

  get size(): number {
    return this.heard.size;
  }

  note(from: Endpoint, now: number): void {
    const key = endpointKey(from.address, from.port);
    this.heard.delete(key);
    this.heard.set(key, now);
    if (this.heard.size > this.capacity) this.heard.delete(this.heard.keys().next().value!);
  }

  has(e: Endpoint, now: number): boolean {
    const at = this.heard.get(endpointKey(e.address, e.port));
    return at !== undefined && now - at < this.ttlMs;
  }

  /** Forgets what aged out; called from the expiry sweep. */
  expire(now: number): void {
    for (const [key, at] of this.heard) {
      if (now - at < this.ttlMs) break;
      this.heard.delete(key);
    }
  }
}
