import type { Endpoint } from "../net/address.ts";
import type { Relay } from "../relay.ts";

/** REGs held per key at most; more of the same kind, while one question is open, are dropped. */
const MAX_HELD_PER_KEY = 256;

export interface HeldReg {
  from: Endpoint;
  raw: Uint8Array;
}

/**
 * REGs the relay cannot answer yet because the fleet is finding something out (whether a relay
 * is gone, where a session's partner is): held by the question's key and handed to the relay
 * again once the answer is known. While they are handed over, `offering` is true: the questions
 * they raised are settled then, and must not be asked again.
 */
export class HeldRegs {
  private readonly byKey = new Map<string, HeldReg[]>();
  private stopped = false;
  offering = false;

  constructor(private readonly relay: Relay) {}

  /** Holds a copy of the REG; true when it is the first under `key` (the caller starts finding out). */
  hold(key: string, from: Endpoint, raw: Uint8Array): boolean {
    let held = this.byKey.get(key);
    const first = held === undefined;
    if (!held) this.byKey.set(key, (held = []));
    if (held.length < MAX_HELD_PER_KEY) held.push({ from, raw: raw.slice() });
    return first;
  }

  /** The REGs held under `key`, no longer held. */
  take(key: string): HeldReg[] {
    const held = this.byKey.get(key) ?? [];
    this.byKey.delete(key);
    return held;
  }

  /** Hands REGs to the relay again, now that what they waited for is known. */
  offer(held: readonly HeldReg[]): void {
    if (this.stopped || held.length === 0) return;
    this.offering = true;
    try {
      this.relay.handleBatch(held.map((p) => ({ data: p.raw, address: p.from.address, port: p.from.port, routeId: -1, observed: false })));
    } finally {
      this.offering = false;
    }
  }

  stop(): void {
    this.stopped = true;
    this.byKey.clear();
  }
}
