import type { Endpoint } from "../dataplane/types.ts";
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
}

/** Composes token authentication, the per-source REG rate limit and the session caps. */
export function createRegPolicy(options: RegPolicyOptions): SecurityPolicy {
  const secrets = [...options.secrets];
  const limiter = options.regRate > 0 ? new RegRateLimiter(options.regRate, options.regBurst, options.regRateSlots) : undefined;
  const authFailures: AuthFailures = { malformed: 0, expired: 0, "bad-mac": 0 };
  const policy: SecurityPolicy = {
    authFailures,
    limiter,
    authEnabled: secrets.length > 0,
    admit: sessionCaps(options),
  };
  if (limiter) policy.allowReg = (from: Endpoint, now: number) => limiter.allow(from.address, now);
  if (secrets.length > 0) {
    policy.authenticate = (field: string, _from: Endpoint, now: number) => {
      const check = verifyToken(field, secrets, now);
      if (check.ok) return { ok: true, sessionId: check.sessionId };
      authFailures[check.reason]++;
      return { ok: false, code: RefusalCode.Auth };
    };
  }
  return policy;
}
