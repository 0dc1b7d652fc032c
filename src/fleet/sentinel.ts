import { RedisClient } from "bun";
import { formatHostPort, type HostPort } from "../net/address.ts";

/** How long one sentinel may take to connect and to answer before the next one is asked. */
export const SENTINEL_TIMEOUT_MS = 1000;

/** Where the fleet's directory is found when Redis runs as a primary and replicas under Sentinel. */
export interface SentinelOptions {
  /** The sentinels, asked in this order. */
  sentinels: HostPort[];
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> ...`). */
  masterName: string;
  /** Sentinels' own password (`requirepass` in sentinel.conf), when they have one. */
  password?: string;
  /** `redis://` or `rediss://`: the sentinels are reached the way the data connection is. */
  scheme: "redis://" | "rediss://";
}

/**
 * The primary named by a `SENTINEL get-master-addr-by-name` reply: `[host, port]`; null when
 * the sentinel does not monitor that name. Undefined for anything else. Pure, no I/O.
 */
export function parsePrimaryReply(reply: unknown): HostPort | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  const [host, port] = reply;
  if (typeof host !== "string" || !/^[A-Za-z0-9.:_-]{1,253}$/.test(host)) return undefined;
  const text = typeof port === "number" ? String(port) : port;
  if (typeof text !== "string" || !/^[0-9]{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65_535 ? { host, port: n } : undefined;
}

/** Asks one sentinel; undefined when it cannot be reached in time, fails, or names no primary. */
export type AskSentinel = (sentinel: HostPort, options: SentinelOptions) => Promise<unknown>;

/**
 * Finds the current primary by asking the sentinels in turn, starting with the one that answered
 * last (the Sentinel client guidelines' order: a sentinel that is down costs one timeout, once).
 */
export class PrimaryResolver {
  private first = 0;

  constructor(
    private readonly options: SentinelOptions,
    private readonly ask: AskSentinel = askSentinel,
  ) {}

  /** `host:port` of the primary, or undefined when no sentinel named one. Never throws. */
  async resolve(): Promise<string | undefined> {
    const { sentinels } = this.options;
    for (let i = 0; i < sentinels.length; i++) {
      const at = (this.first + i) % sentinels.length;
      let reply: unknown;
      try {
        reply = await this.ask(sentinels[at]!, this.options);
      } catch {
        continue;
      }
      const primary = parsePrimaryReply(reply);
      if (!primary) continue;
      this.first = at;
      return formatHostPort(primary);
    }
    return undefined;
  }
}

/** One `SENTINEL get-master-addr-by-name` over a fresh connection, bounded by SENTINEL_TIMEOUT_MS. */
export async function askSentinel(sentinel: HostPort, options: SentinelOptions): Promise<unknown> {
  const auth = options.password === undefined ? "" : `:${encodeURIComponent(options.password)}@`;
  const client = new RedisClient(`${options.scheme}${auth}${formatHostPort(sentinel)}`, {
    autoReconnect: false,
    enableOfflineQueue: false,
    connectionTimeout: SENTINEL_TIMEOUT_MS,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("sentinel did not answer in time")), SENTINEL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      (async () => {
        await client.connect();
        return client.send("SENTINEL", ["get-master-addr-by-name", options.masterName]);
      })(),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
    client.close();
  }
}
