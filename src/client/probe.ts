import type { udp } from "bun";
import { formatHostPort, type HostPort, sameHost } from "../net/address.ts";
import { wildcardFor } from "./endpoint.ts";
import { type FirstRegistration, registrationUntilAck } from "./register-once.ts";
import { encodeReg } from "../protocol/reg.ts";
import { defaultRegistrationSettings } from "./registration.ts";

export interface ProbeOptions {
  relay: HostPort;
  sessionId: string;
  count: number;
  size: number;
  intervalMs: number;
  /** How long to wait for each REG's ACK before retrying, and how many tries. */
  ackTimeoutMs: number;
  tries: number;
  /** Wait after the last send for stragglers. */
  drainMs: number;
  /** Told about every REG attempt (not the REGs answering a RETRY within one), for progress output. */
  onRegAttempt?: (socket: 1 | 2, attempt: number, tries: number) => void;
}

/**
 * A REG from each registered socket this often keeps the session alive while the probe waits (for
 * the second ACK, between slow datagrams, for stragglers): the relay expires a probe's session
 * after 10 s of silence (src/sessions/types.ts, isProbeSessionId), so that it is gone soon after
 * the probe.
 */
export const PROBE_KEEPALIVE_MS = 3000;

export interface ProbeResult {
  relay: string;
  sessionId: string;
  /** REG→ACK time of the first and the second socket, ms (a RETRY round trip included). */
  registrationMs: [number, number];
  /** The relay asked for return-routability proof (RETRY) before acknowledging. */
  verified: boolean;
  sent: number;
  received: number;
  lossPercent: number;
  rttMs: { min: number; p50: number; p99: number; max: number } | null;
  size: number;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

const MAGIC = 0x51525042; // "QRPB": marks probe datagrams so stray bytes are never counted
const HEADER = 8;

type Socket = udp.Socket<"uint8array">;
type Listener = (data: Uint8Array) => void;

async function openSocket(relay: HostPort, onRelay: () => Listener): Promise<Socket> {
  return Bun.udpSocket({
    hostname: wildcardFor(relay.host),
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        if (port === relay.port && sameHost(address, relay.host)) onRelay()(data);
      },
      // ICMP errors from a dead relay port: the REG retries and the loss figures account for them.
      error() {},
    },
  });
}

/**
 * Pair two local sockets through a fresh session, then bounce `count` datagrams A→relay→B→relay→A
 * and time each round trip. Each socket registers as `connect` does (RETRY answered, timed from the
 * first REG). Throws RelayUnreachableError / RegistrationRefusedError when pairing fails.
 */
export async function runProbe(options: ProbeOptions): Promise<ProbeResult> {
  const { relay } = options;
  const relayText = formatHostPort(relay);
  let listenerA: Listener = () => {};
  let listenerB: Listener = () => {};
  const a = await openSocket(relay, () => listenerA);
  const b = await openSocket(relay, () => listenerB);
  let keepalive: ReturnType<typeof setInterval> | undefined;
  try {
    const settings = {
      ackTimeoutMs: options.ackTimeoutMs,
      maxBackoffMs: options.ackTimeoutMs * 4,
      maxTries: options.tries,
      keepaliveMs: defaultRegistrationSettings.keepaliveMs, // never reached: each registration stops at its ACK
    };
    const registered: Socket[] = [];
    keepalive = setInterval(() => {
      for (const socket of registered) socket.send(encodeReg(options.sessionId), relay.port, relay.host);
    }, PROBE_KEEPALIVE_MS);
    const register = async (socket: Socket, which: 1 | 2, set: (l: Listener) => void): Promise<FirstRegistration> => {
      // A REG sent while a relay datagram is being handled answers it (RETRY, ERR short) within
      // the attempt; any other REG starts an attempt (the first, or a retry after the timeout).
      let answering = false;
      let attempt = 0;
      const { registration, acknowledged } = registrationUntilAck(relay, options.sessionId, settings, (datagram) => {
        if (!answering) options.onRegAttempt?.(which, ++attempt, settings.maxTries);
        socket.send(datagram, relay.port, relay.host);
      });
      set((data) => {
        answering = true;
        try {
          registration.onRelayDatagram(data);
        } finally {
          answering = false;
        }
      });
      registration.start();
      try {
        const result = await acknowledged;
        registered.push(socket);
        return result;
      } finally {
        registration.stop();
        set(() => {});
      }
    };
    const regA = await register(a, 1, (l) => (listenerA = l));
    const regB = await register(b, 2, (l) => (listenerB = l));

    const size = Math.max(HEADER, options.size);
    const sentAt = new Float64Array(options.count);
    const rtts: number[] = [];
    const seen = new Uint8Array(options.count);
    listenerB = (data) => {
      // Echo probe datagrams back through the relay unchanged.
      if (data.length >= HEADER && new DataView(data.buffer, data.byteOffset).getUint32(0) === MAGIC) {
        b.send(data, relay.port, relay.host);
      }
    };
    listenerA = (data) => {
      if (data.length < HEADER) return;
      const view = new DataView(data.buffer, data.byteOffset);
      if (view.getUint32(0) !== MAGIC) return;
      const seq = view.getUint32(4);
      if (seq >= options.count || seen[seq]) return;
      seen[seq] = 1;
      rtts.push(performance.now() - sentAt[seq]!);
    };
    for (let seq = 0; seq < options.count; seq++) {
      const packet = new Uint8Array(size);
      const view = new DataView(packet.buffer);
      view.setUint32(0, MAGIC);
      view.setUint32(4, seq);
      sentAt[seq] = performance.now();
      a.send(packet, relay.port, relay.host);
      if (options.intervalMs > 0 && seq + 1 < options.count) await Bun.sleep(options.intervalMs);
    }
    const deadline = performance.now() + options.drainMs;
    while (rtts.length < options.count && performance.now() < deadline) await Bun.sleep(10);

    const sorted = rtts.slice().sort((x, y) => x - y);
    return {
      relay: relayText,
      sessionId: options.sessionId,
      registrationMs: [round(regA.rttMs), round(regB.rttMs)],
      verified: regA.verified || regB.verified,
      sent: options.count,
      received: rtts.length,
      lossPercent: round(((options.count - rtts.length) / options.count) * 100),
      rttMs:
        sorted.length === 0
          ? null
          : {
              min: round(sorted[0]!),
              p50: round(percentile(sorted, 50)),
              p99: round(percentile(sorted, 99)),
              max: round(sorted[sorted.length - 1]!),
            },
      size,
    };
  } finally {
    clearInterval(keepalive);
    a.close();
    b.close();
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
