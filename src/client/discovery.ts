/**
 * Address discovery for apps that choose between a direct path and the relay: one socket asks the
 * relay (and its second discovery address, or other STUN servers) how it is seen, and the answers
 * say the public address and the NAT's mapping behaviour (src/client/nat-mapping.ts).
 */
import type { udp } from "bun";
import { networkInterfaces } from "node:os";
import { type Endpoint, formatHostPort, type HostPort, hostOf, sameHost } from "../net/address.ts";
import { encodeBindingRequest, readBindingSuccess } from "../protocol/stun.ts";
import { wildcardFor } from "./endpoint.ts";
import { classifyMapping, type MappingObservation, type MappingVerdict } from "./nat-mapping.ts";

export interface DiscoveryOptions {
  /** The relay (its STUN answers on the relay port). */
  relay: HostPort;
  /** More STUN servers to compare with (another relay, a public STUN server); IPs, not names. */
  also?: readonly HostPort[];
  /** Wait per attempt before retrying, ms; doubled each retry. */
  timeoutMs?: number;
  tries?: number;
  /** Told about every request sent, for progress output. */
  onAttempt?: (to: HostPort, attempt: number, tries: number) => void;
}

export interface DiscoveryResult extends MappingVerdict {
  /** The public address the relay saw; undefined when the relay did not answer STUN. */
  reflexive: Endpoint | undefined;
  /** The socket's local port. */
  localPort: number;
  /** What each destination that answered saw, in the order asked. */
  observations: (MappingObservation & { rttMs: number })[];
  /** Destinations that never answered. */
  silent: HostPort[];
}

type Socket = udp.Socket<"uint8array">;

/**
 * Asks the relay first (with a request for its second address), then that second address and every
 * `also` destination, all from one socket. Never throws for silence: a relay with STUN off gives a
 * result with `reflexive` undefined and mapping "unknown".
 */
export async function discover(options: DiscoveryOptions): Promise<DiscoveryResult> {
  // 0.4 s then 0.8 s: a relay without STUN (an older one) costs the probe 1.2 s, not more.
  const timeoutMs = options.timeoutMs ?? 400;
  const tries = options.tries ?? 2;
  let waiting: { to: HostPort; transaction: Uint8Array; done: (r: ReturnType<typeof readBindingSuccess>) => void } | undefined;
  const socket: Socket = await Bun.udpSocket({
    hostname: wildcardFor(options.relay.host),
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        if (!waiting || port !== waiting.to.port || !sameHost(address, waiting.to.host)) return;
        const answer = readBindingSuccess(data, waiting.transaction);
        if (answer) waiting.done(answer);
      },
      error() {},
    },
  });
  const ask = async (to: HostPort, askOtherAddress: boolean) => {
    for (let attempt = 1; attempt <= tries; attempt++) {
      options.onAttempt?.(to, attempt, tries);
      const { datagram, transaction } = encodeBindingRequest({ askOtherAddress });
      const started = performance.now();
      const answer = await new Promise<ReturnType<typeof readBindingSuccess>>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), timeoutMs * 2 ** (attempt - 1));
        waiting = { to, transaction, done: (r) => (clearTimeout(timer), resolve(r)) };
        socket.send(datagram, to.port, to.host);
      });
      waiting = undefined;
      if (answer) return { answer, rttMs: performance.now() - started };
    }
    return undefined;
  };
  try {
    const observations: DiscoveryResult["observations"] = [];
    const silent: HostPort[] = [];
    const first = await ask(options.relay, true);
    const next: HostPort[] = [];
    if (first) {
      observations.push({ to: options.relay, mapped: first.answer.mapped, rttMs: round(first.rttMs) });
      const other = first.answer.other;
      // An unspecified OTHER-ADDRESS means "the address you reached" (a relay bound to a wildcard).
      if (other) next.push({ host: isUnspecified(other.address) ? options.relay.host : other.address, port: other.port });
    } else {
      silent.push(options.relay);
    }
    next.push(...(options.also ?? []));
    for (const to of next) {
      const got = await ask(to, false);
      if (got) observations.push({ to, mapped: got.answer.mapped, rttMs: round(got.rttMs) });
      else silent.push(to);
    }
    const verdict = classifyMapping(observations, localAddresses(), socket.port);
    return { ...verdict, reflexive: first?.answer.mapped, localPort: socket.port, observations, silent };
  } finally {
    socket.close();
  }
}

function isUnspecified(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .map((i) => hostOf(i?.address ?? ""))
    .filter((a) => a !== "");
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** `203.0.113.1:4433 saw 198.51.100.7:40123` lines for people. */
export function describeObservation(o: MappingObservation): string {
  return `${formatHostPort(o.to)} saw ${formatHostPort({ host: hostOf(o.mapped.address), port: o.mapped.port })}`;
}
