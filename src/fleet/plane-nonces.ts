import type { BridgeOffload } from "../dataplane/types.ts";
import { type Endpoint, parseHostPort } from "../net/address.ts";
import { BridgeEncodeError } from "./bridge-codec.ts";
import type { BridgeNonces } from "./bridge-nonces.ts";

/** Relay ids parsed once; the cap only bounds a caller passing many ids. */
const MAX_CACHED = 4096;

/**
 * The nonces of a data plane that makes bridge frames itself: the control plane's frames draw from
 * the sequence the plane's threads use, and record what they accept in the same window, so no
 * nonce is used twice under a key and a frame accepted by either side is refused by both after.
 * Relay ids are their advertised `host:port`, which is where their frames come from.
 */
export class PlaneNonces implements BridgeNonces {
  private readonly endpoints = new Map<string, Endpoint | undefined>();

  constructor(private readonly plane: BridgeOffload) {}

  next(to: string): { epoch: number; counter: number } {
    const at = this.endpoint(to);
    if (!at) throw new BridgeEncodeError(`relay id ${JSON.stringify(to)} is not host:port`);
    return this.plane.nextNonce(at);
  }

  admit(from: string, epoch: number, counter: number): boolean {
    const at = this.endpoint(from);
    return at !== undefined && this.plane.admitNonce(at, epoch, counter);
  }

  forget(peer: string): void {
    const at = this.endpoint(peer);
    if (at) this.plane.forgetMember(at);
  }

  private endpoint(relay: string): Endpoint | undefined {
    if (this.endpoints.has(relay)) return this.endpoints.get(relay);
    const hp = parseHostPort(relay);
    const at = hp && hp.host !== "" ? { address: hp.host, port: hp.port } : undefined;
    if (this.endpoints.size >= MAX_CACHED) this.endpoints.clear();
    this.endpoints.set(relay, at);
    return at;
  }
}
