/**
 * What a route copies up to the control plane (`observed: true`) besides forwarding: the rule
 * every TypeScript plane applies, mirrored by `Route::wantsCopy` in native/route_table.h.
 */
import { isLongHeader, MAX_CID_LENGTH } from "../protocol/quic.ts";
import { MAX_OBSERVE_BUDGET } from "./types.ts";

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

/** Bytes one kept DCID takes in a store: a flag (1 once one is kept), then up to MAX_CID_LENGTH bytes. */
const DCID_STRIDE = 1 + MAX_CID_LENGTH;

/**
 * Whether `data` is a short header whose DCID (bytes [1, 1 + length)) differs from the one kept in
 * `store` at `at`, or the first; if so it becomes the kept one. `shortHeaderDcid` in
 * src/protocol/quic.ts reads the same bytes.
 */
function dcidChanged(store: Uint8Array, at: number, length: number, data: Uint8Array): boolean {
  if (data.length < 1 + length || isLongHeader(data)) return false;
  if (store[at] === 1) {
    let i = 0;
    while (i < length && store[at + 1 + i] === data[1 + i]) i++;
    if (i === length) return false;
  }
  // Copied byte by byte: its own bytes, and no view allocated (the datagram itself is handed up).
  store[at] = 1;
  for (let i = 0; i < length; i++) store[at + 1 + i] = data[1 + i]!;
  return true;
}

/**
 * The destination connection ID a route last forwarded in a short header, as an object (the
 * in-memory test plane's routes). Only routes whose source's CID length is known have one.
 */
export class DcidWatch {
  private readonly kept: Uint8Array;

  constructor(readonly length: number) {
    this.kept = new Uint8Array(1 + length);
  }

  /** Whether `data` is a short header carrying a DCID other than the last one; if so it becomes the last one. */
  changed(data: Uint8Array): boolean {
    return dcidChanged(this.kept, 0, this.length, data);
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

/**
 * The same state for a block of routes in columns, route `i` at index `i` of each: no object per
 * route. `dcids` (DCID_STRIDE bytes a route) is allocated once a route of the block watches one.
 */
export interface ObserveColumns {
  /** Observations left (at most MAX_OBSERVE_BUDGET: budgets above are cut to it). */
  observe: Int16Array;
  /** 0: the DCID is not watched. */
  cidLength: Uint8Array;
  dcids: Uint8Array | undefined;
}

/** Starts route `i`'s observation with setRoute's budget and cidLength (as cidLengthOf gave it): no DCID yet. */
export function observeAt(columns: ObserveColumns, i: number, observeBudget: number, cidLength: number): void {
  columns.observe[i] = Math.min(MAX_OBSERVE_BUDGET, Math.max(0, Math.floor(observeBudget)));
  columns.cidLength[i] = cidLength;
  if (cidLength > 0) (columns.dcids ??= new Uint8Array(columns.cidLength.length * DCID_STRIDE))[i * DCID_STRIDE] = 0;
}

/** takesCopy for route `i` of a block in columns. */
export function takesCopyAt(columns: ObserveColumns, i: number, data: Uint8Array): boolean {
  if (columns.observe[i]! <= 0) return false;
  const length = columns.cidLength[i]!;
  if (!isLongHeader(data) && (length === 0 || !dcidChanged(columns.dcids!, i * DCID_STRIDE, length, data))) return false;
  columns.observe[i]!--;
  return true;
}
