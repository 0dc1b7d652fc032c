import type { Endpoint } from "../net/address.ts";
import { RefusalCode } from "../protocol/errors.ts";
import type { RegPolicy } from "../sessions/types.ts";
import { sessionCaps } from "./limits.ts";
import { RegRateLimiter } from "./rate-limit.ts";
import { type TokenFailure, verifyToken } from "./token.ts";

export interface RegPolicyOptions {
  /** HMAC secrets; empty means no authentication (the original protocol). The first one mints. */
  secrets: readonly Uint8Array[];
  maxSessions: number;
  maxSessionsPerHost: number;
  /** REG datagrams per second per source (IPv4 address or IPv6 /64); 0 disables the limiter. */
  regRate: number;
  regBurst: number;
  /** Rate-limiter table size (slots); fixed for the relay's life. */
  regRateSlots?: number;
}

/** Counts of authentication failures by reason, for operators and tests. */
export type AuthFailures = Record<TokenFailure, number>;

export interface SecurityPolicy extends RegPolicy {
  readonly authFailures: AuthFailures;
  readonly limiter: RegRateLimiter | undefined;
  readonly authEnabled: boolean;
  /**
   * Applies new options to the running relay (SIGHUP): secrets (rotation, or turning
   * authentication on or off), session caps and the REG rate. Sessions are kept.
   */
  update(options: RegPolicyOptions): void;
}

/** Composes token authentication, the per-source REG rate limit and the session caps. */
export function createRegPolicy(initial: RegPolicyOptions): SecurityPolicy {
  let options = initial;
  let secrets = [...initial.secrets];
  let limiter = makeLimiter(initial);
  let admit = sessionCaps(initial);
  const authFailures: AuthFailures = { malformed: 0, expired: 0, "bad-mac": 0 };
  return {
    authFailures,
    get limiter() {
      return limiter;
    },
    get authEnabled() {
      return secrets.length > 0;
    },
    allowReg: (from: Endpoint, now: number) => (limiter ? limiter.allow(from.address, now) : true),
    // Without secrets the field is the session id, exactly as in the original protocol.
    authenticate: (field: string, _from: Endpoint, now: number) => {
      if (secrets.length === 0) return { ok: true, sessionId: field };
      const check = verifyToken(field, secrets, now);
      if (check.ok) return { ok: true, sessionId: check.sessionId };
      authFailures[check.reason]++;
      return { ok: false, code: RefusalCode.Auth };
    },
    admit: (sessionId, from, raw, view) => admit(sessionId, from, raw, view),
    update(next: RegPolicyOptions) {
      secrets = [...next.secrets];
      admit = sessionCaps(next);
      // Buckets survive a reload unless the rate itself changed.
      if (next.regRate !== options.regRate || next.regBurst !== options.regBurst || next.regRateSlots !== options.regRateSlots) {
        limiter = makeLimiter(next);
      }
      options = next;
    },
  };
}

function makeLimiter(o: RegPolicyOptions): RegRateLimiter | undefined {
  return o.regRate > 0 ? new RegRateLimiter(o.regRate, o.regBurst, o.regRateSlots) : undefined;
}
