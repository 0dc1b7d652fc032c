import type { Endpoint } from "../net/address.ts";
import type { AuthFailures, SecurityPolicy } from "../security/policy.ts";
import type { RegPolicy, TableView } from "../sessions/types.ts";
import type { RefusalCode } from "../protocol/errors.ts";

/**
 * The REG policy the relay holds for its whole life, delegating to the current security policy so
 * SIGHUP can swap secrets and limits without touching sessions. Every hook is always present; with
 * no current hook it lets the REG through unchanged, exactly as an absent hook would.
 */
export class ReloadablePolicy implements RegPolicy {
  private current: SecurityPolicy;
  private readonly banked: AuthFailures = { malformed: 0, expired: 0, "bad-mac": 0 };

  constructor(initial: SecurityPolicy) {
    this.current = initial;
  }

  get authEnabled(): boolean {
    return this.current.authEnabled;
  }

  /** Authentication failures by reason since start, across reloads. */
  authFailures(): AuthFailures {
    const now = this.current.authFailures;
    return { malformed: this.banked.malformed + now.malformed, expired: this.banked.expired + now.expired, "bad-mac": this.banked["bad-mac"] + now["bad-mac"] };
  }

  replace(next: SecurityPolicy): void {
    const old = this.current.authFailures;
    this.banked.malformed += old.malformed;
    this.banked.expired += old.expired;
    this.banked["bad-mac"] += old["bad-mac"];
    this.current = next;
  }

  allowReg(from: Endpoint, now: number): boolean {
    return this.current.allowReg ? this.current.allowReg(from, now) : true;
  }

  authenticate(field: string, from: Endpoint, now: number): { ok: true; sessionId: string } | { ok: false; code: RefusalCode } {
    return this.current.authenticate ? this.current.authenticate(field, from, now) : { ok: true, sessionId: field };
  }

  admit = (sessionId: string, from: Endpoint, raw: Uint8Array, view: TableView): RefusalCode | undefined =>
    this.current.admit ? this.current.admit(sessionId, from, raw, view) : undefined;
}
