/**
 * What a route copies up to the control plane (`observed: true`) besides forwarding: the rule
 * every TypeScript plane applies, mirrored by `Route::wantsCopy` in native/route_table.h.
 */
import { isLongHeader, MAX_CID_LENGTH } from "../protocol/quic.ts";

/**
 * setRoute's `cidLength` as every plane takes it: an integer in 0..MAX_CID_LENGTH, or a
 * TypeError (the addon throws the same for a bad argument).
 */
export function cidLengthOf(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_CID_LENGTH) {
    throw new TypeError(`cidLength must be an integer in [0, ${MAX_CID_LENGTH}]`);
  }
  return value;
}

/**
 * The destination connection ID a route last forwarded in a short header: bytes [1, 1 + length)
 * (`shortHeaderDcid` in src/protocol/quic.ts reads the same bytes). Only routes whose source's
 * CID length is known have one.
 */
export class DcidWatch {
  private last: Uint8Array | undefined;

  constructor(readonly length: number) {}

  /** Whether `data` is a short header carrying a DCID other than the last one; if so it becomes the last one. */
  changed(data: Uint8Array): boolean {
    const n = this.length;
    if (data.length < 1 + n || isLongHeader(data)) return false;
    const last = this.last;
    if (last !== undefined) {
      let i = 0;
      while (i < n && last[i] === data[1 + i]) i++;
      if (i === n) return false;
    }
    // Its own bytes (Buffer#slice would be a view into the datagram, which is handed up).
    (this.last ??= new Uint8Array(n)).set(data.subarray(1, 1 + n));
    return true;
  }
}

/** A route's observation state: the budget setRoute gave it and, with a cidLength, its DCID watch. */
export interface Observing {
  observe: number;
  dcid: DcidWatch | undefined;
}

/**
 * Whether a datagram the route forwards is also copied up, spending one of its budget: a long
 * header, or a short header whose DCID changed. Once the budget is spent nothing more is copied,
 * so the DCID is no longer tracked either.
 */
export function takesCopy(route: Observing, data: Uint8Array): boolean {
  if (route.observe <= 0) return false;
  if (!isLongHeader(data) && (route.dcid === undefined || !route.dcid.changed(data))) return false;
  route.observe--;
  return true;
}

export function dcidWatchFor(cidLength: number): DcidWatch | undefined {
  const length = cidLengthOf(cidLength);
  return length > 0 ? new DcidWatch(length) : undefined;
}
