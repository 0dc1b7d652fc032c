/**
 * Address discovery on the relay's port: answers STUN Binding requests with the address the
 * relay saw them from. It can be aimed at a victim (a forged source gets the answer), so every
 * answer spends a per-source token (the REG rate) and one from a global budget, and an answer is
 * at most a few times its request (docs/protocol.md, "Address discovery").
 */
import { type Endpoint, hostOf } from "../net/address.ts";
import { encodeBindingSuccess, encodeUnknownAttributes, readStun, StunAttr } from "../protocol/stun.ts";
import { RegRateLimiter } from "../security/rate-limit.ts";
import { TokenBucket } from "../security/token-bucket.ts";

/** Answers per second across all sources: bounds the CPU and bandwidth a flood can take. */
export const STUN_GLOBAL_RATE = 20_000;

/** Per-source buckets; a smaller table than the REG limiter's, collisions only make it stricter. */
const SOURCE_SLOTS = 16_384;

/** What became of the STUN Binding requests the relay was sent, by outcome. */
export interface StunCounters {
  /** Answered with the requester's address. */
  answered: number;
  /** Answered with 420: an attribute this server does not honour (RESPONSE-PORT, a change request...). */
  unknownAttribute: number;
  /** Not answered: the source was over its rate. */
  rateLimited: number;
  /** Not answered: the global answer budget was spent. */
  budget: number;
  /** Not answered: a broken message (bad lengths, wrong FINGERPRINT). */
  malformed: number;
  /** Not answered: a classic (RFC 3489) request for an answer from another address or port. */
  changeRefused: number;
  /** Bytes of the requests taken in, and of the answers sent. */
  bytesIn: number;
  bytesOut: number;
}

export interface StunResponderOptions {
  /** Answers per second per source (IPv4 address or IPv6 /64), and the burst; the REG rate by default. */
  rate: number;
  burst: number;
  globalRate?: number;
}

export type StunOutcome =
  /** Not a STUN Binding request: the caller handles the datagram as it would anything else. */
  | { kind: "not-stun" }
  /** A request that gets no answer (counted). */
  | { kind: "dropped" }
  | { kind: "answer"; data: Uint8Array };

export class StunResponder {
  readonly counters: StunCounters = { answered: 0, unknownAttribute: 0, rateLimited: 0, budget: 0, malformed: 0, changeRefused: 0, bytesIn: 0, bytesOut: 0 };
  private readonly perSource: RegRateLimiter | undefined;
  private readonly global: TokenBucket;
  /**
   * The relay's second discovery address (--stun-alt-listen), given to requesters that ask for it
   * (a CHANGE-REQUEST with no flag set) so they can compare mappings (RFC 5780 OTHER-ADDRESS).
   */
  other: Endpoint | undefined;

  constructor(options: StunResponderOptions) {
    this.perSource = options.rate > 0 ? new RegRateLimiter(options.rate, options.burst, SOURCE_SLOTS) : undefined;
    const globalRate = options.globalRate ?? STUN_GLOBAL_RATE;
    this.global = new TokenBucket(globalRate, globalRate);
  }

  /** What to do with `data` from `from` at `now` (ms, monotonic). */
  handle(data: Uint8Array, from: Endpoint, now: number): StunOutcome {
    const read = readStun(data);
    if (read.kind === "other" || read.kind === "not-request") return { kind: "not-stun" };
    const c = this.counters;
    c.bytesIn += data.length;
    if (read.kind === "malformed") return this.drop("malformed");
    const request = read.request;
    const refused = request.changeFlags !== 0 ? [StunAttr.ChangeRequest, ...request.unknown] : request.unknown;
    // A classic client reads any answer to a change request as the change honoured: no answer is the truth.
    if (request.classic && refused.length > 0) return this.drop("changeRefused");
    if (this.perSource && !this.perSource.allow(from.address, now)) return this.drop("rateLimited");
    if (!this.global.take(now)) return this.drop("budget");
    let answer: Uint8Array;
    if (refused.length > 0) {
      answer = encodeUnknownAttributes(request, refused);
      c.unknownAttribute++;
    } else {
      const other = request.changeRequest ? this.otherFor(from, request.classic) : undefined;
      answer = encodeBindingSuccess(request, { mapped: { address: hostOf(from.address), port: from.port }, other });
      c.answered++;
    }
    c.bytesOut += answer.length;
    return { kind: "answer", data: answer };
  }

  private drop(reason: "malformed" | "changeRefused" | "rateLimited" | "budget"): StunOutcome {
    this.counters[reason]++;
    return { kind: "dropped" };
  }

  /**
   * OTHER-ADDRESS for a requester: the second address as bound. Bound to a wildcard, the relay
   * cannot know which of its addresses the requester reached, so it says the unspecified address
   * of the requester's family, read as "the address you sent this request to" (the project's
   * client does; docs/protocol.md). Classic clients would take it literally: they get none.
   */
  private otherFor(from: Endpoint, classic: boolean): Endpoint | undefined {
    const other = this.other;
    if (!other) return undefined;
    const v4Requester = !hostOf(from.address).includes(":");
    const wildcard = other.address === "" || other.address === "::" || other.address === "0.0.0.0";
    if (wildcard) return classic ? undefined : { address: v4Requester ? "0.0.0.0" : "::", port: other.port };
    const v4Other = !hostOf(other.address).includes(":");
    return v4Other === v4Requester ? { address: hostOf(other.address), port: other.port } : undefined;
  }
}
