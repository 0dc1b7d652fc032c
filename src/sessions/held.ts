import { DropReason } from "../protocol/errors.ts";
import { NONE_HELD, type Session, type SessionLimits, type SessionStats } from "./types.ts";

/**
 * Early datagrams: what a registered peer sends before its partner arrives (a QUIC Initial,
 * typically). Bounded per session by count, bytes and age, and across sessions by bytes.
 */
export class HeldQueue {
  private readonly holding = new Set<Session>();
  totalBytes = 0;

  constructor(
    private readonly limits: SessionLimits,
    private readonly stats: SessionStats,
  ) {}

  hold(session: Session, data: Uint8Array, now: number): void {
    this.ageOut(session, now);
    const fits =
      session.held.length < this.limits.heldMaxCount &&
      session.heldBytes + data.length <= this.limits.heldMaxBytes &&
      this.totalBytes + data.length <= this.limits.heldMaxTotalBytes;
    if (!fits) return this.count(DropReason.EarlyOverflow, 1);
    // The data plane may reuse its receive buffers: keep a copy.
    if (session.held === NONE_HELD) session.held = [];
    session.held.push({ data: data.slice(), at: now });
    session.heldBytes += data.length;
    this.totalBytes += data.length;
    this.holding.add(session);
    this.stats.heldAccepted++;
  }

  /** Everything still fresh, in arrival order; the session holds nothing afterwards. */
  take(session: Session, now: number): Uint8Array[] {
    this.ageOut(session, now);
    const out = session.held.map((h) => h.data);
    this.clear(session);
    return out;
  }

  discard(session: Session): void {
    if (session.held.length) this.count(DropReason.EarlyExpired, session.held.length);
    this.clear(session);
  }

  expire(now: number): void {
    for (const session of this.holding) this.ageOut(session, now);
  }

  private ageOut(session: Session, now: number): void {
    let stale = 0;
    while (stale < session.held.length && now - session.held[stale]!.at > this.limits.heldMaxAgeMs) stale++;
    if (stale === 0) return;
    for (let i = 0; i < stale; i++) {
      const n = session.held[i]!.data.length;
      session.heldBytes -= n;
      this.totalBytes -= n;
    }
    session.held.splice(0, stale);
    this.count(DropReason.EarlyExpired, stale);
    if (session.held.length === 0) {
      session.held = NONE_HELD;
      this.holding.delete(session);
    }
  }

  private clear(session: Session): void {
    this.totalBytes -= session.heldBytes;
    session.held = NONE_HELD;
    session.heldBytes = 0;
    this.holding.delete(session);
  }

  private count(reason: DropReason, n: number): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + n;
  }
}
