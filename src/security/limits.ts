import type { Endpoint } from "../net/address.ts";
import { RefusalCode } from "../protocol/errors.ts";
import { sourceGroup } from "../net/address.ts";
import type { AdmissionCheck, TableView } from "../sessions/types.ts";

export interface SessionCaps {
  /** Sessions the table may hold at once; a REG that would create one more is refused. */
  maxSessions: number;
  /**
   * Peers (of any session) already in the REG's source group (sourceGroup: its IPv4 address, or
   * the /64 of its IPv6 address) at which it may not open a new session.
   */
  maxSessionsPerHost: number;
}

/**
 * Admission for new sessions only: re-REGs, joins of an existing session and rebinds are
 * never refused here, so a full table cannot break sessions that already exist.
 */
export function sessionCaps(caps: SessionCaps): AdmissionCheck {
  return (_sessionId: string, from: Endpoint, _raw: Uint8Array, view: TableView) => {
    if (view.sessionCount >= caps.maxSessions) return RefusalCode.Limit;
    if (view.peersInGroup(sourceGroup(from.address)) >= caps.maxSessionsPerHost) return RefusalCode.Limit;
    return undefined;
  };
}
