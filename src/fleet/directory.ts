import { RedisClient } from "bun";
import type { Logger } from "../log.ts";
import { maskRedisUrl, redisUrlFor } from "./options.ts";
import { PrimaryResolver, type SentinelOptions } from "./sentinel.ts";

/** While the directory stays down, one reminder line per this period. */
const OUTAGE_LOG_PERIOD_MS = 30_000;

/** A message on a relay's channel: another relay holds the other peer of `session`. */
export interface JoinMessage {
  kind: "join";
  session: string;
  /** The sending relay's id (its advertised ip:port). */
  relay: string;
  /** The identity (peer-token hash) of the sending relay's peer, when it sent a token. */
  identity?: string;
}

/** A message on a relay's channel: the peer of `session` with `identity` registered at `relay` (it left this one). */
export interface LeftMessage {
  kind: "left";
  session: string;
  relay: string;
  identity: string;
}

export type RelayMessage = JoinMessage | LeftMessage;

/** What one relay holds of a session, as its field in the session's entry says. */
export interface Holder {
  peers: number;
  /** The identity of its one peer, when that peer sent a token. */
  identity?: string;
}

/** The field holding the identity of `relay`'s one peer of a session (next to the peer-count field). */
const IDENTITY_FIELD_SUFFIX = "#peer";

export interface DirectoryStats {
  /** Commands that failed (Redis unreachable, timeouts, errors). */
  errors: number;
  /** Times the directory went from reachable to unreachable. */
  outages: number;
  commands: number;
  messages: number;
  /** Times the sentinels named a different primary than the one in use (failovers seen). */
  failovers: number;
}

export interface DirectoryOptions {
  /** Find the primary through Redis Sentinel; the URL then names no host (see `redisUrlFor`). */
  sentinel?: SentinelOptions;
  /** How the primary (`host:port`) is found; by default the sentinels are asked. Set by tests. */
  findPrimary?: () => Promise<string | undefined>;
}

/** A Lua script, run by its SHA1 (EVALSHA) and sent whole only to a server that does not have it yet. */
interface Script {
  body: string;
  sha: string;
}

function script(body: string): Script {
  return { body, sha: new Bun.CryptoHasher("sha1").update(body).digest("hex") };
}

/**
 * Writes a session's entry (this relay's field = its local peer count; `<relay>#peer` = the
 * identity of its one peer, or none), renews the TTL, returns all fields.
 */
const ANNOUNCE = script(`redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], ARGV[1] .. '#peer') else redis.call('HSET', KEYS[1], ARGV[1] .. '#peer', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGETALL', KEYS[1])`);

/** Renews a session entry's TTL if it still holds this relay's field (1), else changes nothing (0). */
const RENEW = script(`if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`);

/** What `run` gives for a script the server does not have (NOSCRIPT): send it whole. */
const NO_SCRIPT = Symbol("NOSCRIPT");

/**
 * The fleet's session directory in Redis: which relays hold peers of which session, relay health,
 * and a channel per relay. Every call is safe while Redis is down: it fails fast (no offline
 * queue), counts the error and returns undefined; `maintain()` reconnects and resubscribes.
 * With sentinels, every reconnection first asks them for the primary, and a `READONLY` reply
 * (the primary was demoted) drops the connection so that the next `maintain()` asks again.
 *
 * Keys (prefix p): `p:session:<id>` hash relay -> local peer count, TTL = session timeout;
 * `p:relay:<relay>` health, TTL = 3 heartbeats; `p:relays` the set of members' ids (a relay's
 * address is never registered as a peer: docs/security.md, "Forwarding loops");
 * channel `p:relay:<relay>:events`.
 * Each script touches one key, so this also runs on Redis Cluster.
 */
export class FleetDirectory {
  readonly stats: DirectoryStats = { errors: 0, outages: 0, commands: 0, messages: 0, failovers: 0 };
  /** Undefined with sentinels until they name a primary. */
  private cmd: RedisClient | undefined;
  private sub: RedisClient | undefined;
  private maintaining: Promise<void> | undefined;
  /** Set with sentinels: every (re)connection asks it for the primary first. */
  private readonly findPrimary: (() => Promise<string | undefined>) | undefined;
  /** The primary in use (`host:port`) with sentinels. */
  private primary: string | undefined;
  /** The URL connected to: `url`, or with sentinels `url` filled in with the primary. */
  private dataUrl: string;
  private up = false;
  private closed = false;
  private lastErrorLog = 0;
  private lastSentinelLog = 0;
  /** Called when the directory becomes reachable again after an outage (and at first contact). */
  onReachable: () => void = () => {};

  constructor(
    private readonly url: string,
    private readonly prefix: string,
    private readonly self: string,
    private readonly logger: Logger,
    private readonly onMessage: (message: RelayMessage) => void,
    private readonly options: DirectoryOptions = {},
  ) {
    this.dataUrl = url;
    if (options.findPrimary) this.findPrimary = options.findPrimary;
    else if (options.sentinel) {
      const resolver = new PrimaryResolver(options.sentinel);
      this.findPrimary = () => resolver.resolve();
    } else this.cmd = this.client();
  }

  private get masterName(): string {
    return this.options.sentinel?.masterName ?? "the directory";
  }

  get reachable(): boolean {
    return this.up;
  }

  sessionKey(sessionId: string): string {
    return `${this.prefix}:session:${sessionId}`;
  }
  relayKey(relay: string): string {
    return `${this.prefix}:relay:${relay}`;
  }
  membersKey(): string {
    return `${this.prefix}:relays`;
  }
  channel(relay: string): string {
    return `${this.prefix}:relay:${relay}:events`;
  }

  /** Connects what is not connected. Never throws; call it from a timer (calls while one runs share it). */
  maintain(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.maintaining ??= this.connect()
      .catch((error) => this.failed(error))
      .finally(() => (this.maintaining = undefined));
    return this.maintaining;
  }

  private async connect(): Promise<void> {
    if (this.findPrimary && (!this.cmd?.connected || !this.sub?.connected)) {
      const primary = await this.findPrimary();
      if (this.closed) return;
      if (primary === undefined && this.primary === undefined) return this.failed(new Error(`no sentinel named a primary for '${this.masterName}'`));
      // Sentinels all silent: the last primary may well still serve; connecting to it will tell.
      if (primary === undefined) this.sentinelsSilent();
      else if (primary !== this.primary) this.switchTo(primary);
    }
    const cmd = this.cmd!;
    if (!cmd.connected) {
      try {
        await cmd.connect();
        if (this.findPrimary) await this.checkPrimary(cmd);
      } catch (error) {
        if (this.findPrimary) cmd.close();
        return this.failed(error);
      }
    }
    if (!this.sub || !this.sub.connected) {
      // A fresh subscriber each time: a reconnected client does not restore its subscriptions.
      this.sub?.close();
      const sub = (this.sub = this.client());
      try {
        await sub.connect();
        await sub.subscribe(this.channel(this.self), (message) => this.message(message));
      } catch (error) {
        sub.close();
        this.failed(error);
      }
    }
  }

  /** New clients for a primary the sentinels named; the old ones (and their subscription) are dropped. */
  private switchTo(primary: string): void {
    const previous = this.primary;
    this.primary = primary;
    this.dataUrl = redisUrlFor(this.url, primary);
    this.cmd?.close();
    this.sub?.close();
    this.sub = undefined;
    this.cmd = this.client();
    // Reaching the new primary counts as coming back: the relay re-enters its sessions, which
    // the new primary may lack (replication is asynchronous).
    this.up = false;
    if (previous === undefined) return this.logger.info(`fleet directory primary is ${primary}`, { master: this.masterName });
    this.stats.failovers++;
    this.logger.warn(`fleet directory primary is now ${primary}`, { previous, master: this.masterName, failovers: this.stats.failovers });
  }

  private sentinelsSilent(): void {
    const now = Date.now();
    if (now - this.lastSentinelLog < OUTAGE_LOG_PERIOD_MS) return;
    this.lastSentinelLog = now;
    this.logger.warn(`fleet directory: no sentinel named a primary for '${this.masterName}'; trying the last one, ${this.primary}`);
  }

  /** Sentinels can lag behind a failover: a server they name must itself say it is the primary. */
  private async checkPrimary(cmd: RedisClient): Promise<void> {
    const role = await cmd.send("ROLE", []);
    if (!Array.isArray(role) || role[0] !== "master") throw new Error(`${this.primary} is not the primary (role ${Array.isArray(role) ? String(role[0]) : "unknown"})`);
  }

  /** Records this relay's local peer count (and its one peer's identity) for a session; what the other relays hold, or undefined. */
  async announce(sessionId: string, localPeers: number, ttlMs: number, identity?: string): Promise<Map<string, Holder> | undefined> {
    const reply = await this.eval(ANNOUNCE, this.sessionKey(sessionId), [this.self, String(localPeers), String(Math.ceil(ttlMs)), identity ?? ""]);
    return this.others(reply);
  }

  /**
   * Renews a session entry's time to live, written before by `announce` and unchanged since: a
   * fraction of announce's cost in Redis and here (no fields written or read back). False when the
   * entry no longer holds this relay's field (it expired, the directory lost it, another relay
   * dropped it): then announce it again. Undefined when unreachable.
   */
  async renew(sessionId: string, ttlMs: number): Promise<boolean | undefined> {
    const reply = await this.eval(RENEW, this.sessionKey(sessionId), [this.self, String(Math.ceil(ttlMs))]);
    return reply === undefined ? undefined : Number(reply) === 1;
  }

  /** What each relay holds of a session (this relay left out), without writing; undefined when unreachable. */
  async holders(sessionId: string): Promise<Map<string, Holder> | undefined> {
    const reply = await this.run("HGETALL", [this.sessionKey(sessionId)]);
    return this.others(reply);
  }

  /** An HGETALL reply of a session entry as relay -> what it holds, this relay left out. */
  private others(reply: unknown): Map<string, Holder> | undefined {
    let fields: [string, string][];
    if (Array.isArray(reply)) {
      fields = [];
      for (let i = 0; i + 1 < reply.length; i += 2) fields.push([String(reply[i]), String(reply[i + 1])]);
    } else if (reply !== null && typeof reply === "object") {
      // Bun's client may hand a hash over as an object.
      fields = Object.entries(reply as Record<string, unknown>).map(([k, v]) => [k, String(v)]);
    } else return reply === null ? new Map() : undefined;
    const holders = new Map<string, Holder>();
    for (const [field, value] of fields) {
      if (field.endsWith(IDENTITY_FIELD_SUFFIX) || field === this.self) continue;
      holders.set(field, { peers: Number(value) });
    }
    for (const [field, value] of fields) {
      if (!field.endsWith(IDENTITY_FIELD_SUFFIX)) continue;
      const holder = holders.get(field.slice(0, -IDENTITY_FIELD_SUFFIX.length));
      if (holder) holder.identity = value;
    }
    return holders;
  }

  async withdraw(sessionId: string): Promise<void> {
    await this.run("HDEL", [this.sessionKey(sessionId), this.self, `${this.self}${IDENTITY_FIELD_SUFFIX}`]);
  }

  /** Drops a relay's fields from a session entry (that relay is gone, or its peer left it). */
  async forget(sessionId: string, relay: string): Promise<void> {
    await this.run("HDEL", [this.sessionKey(sessionId), relay, `${relay}${IDENTITY_FIELD_SUFFIX}`]);
  }

  async heartbeat(info: Record<string, unknown>, ttlMs: number): Promise<boolean> {
    const ok = (await this.run("SET", [this.relayKey(this.self), JSON.stringify(info), "PX", String(Math.ceil(ttlMs))])) !== undefined;
    if (ok) await this.run("SADD", [this.membersKey(), this.self]);
    return ok;
  }

  /** Ids of the relays that have joined the fleet (live or not), or undefined when unreachable. */
  async members(): Promise<string[] | undefined> {
    const reply = await this.run("SMEMBERS", [this.membersKey()]);
    return Array.isArray(reply) ? reply.map(String) : undefined;
  }

  /** Takes a relay that is gone out of the member set. */
  async dropMember(relay: string): Promise<void> {
    await this.run("SREM", [this.membersKey(), relay]);
  }

  async alive(relay: string): Promise<boolean | undefined> {
    const n = await this.run("EXISTS", [this.relayKey(relay)]);
    return n === undefined ? undefined : Number(n) > 0;
  }

  async join(toRelay: string, sessionId: string, identity?: string): Promise<void> {
    const message: JoinMessage = { kind: "join", session: sessionId, relay: this.self, ...(identity ? { identity } : {}) };
    await this.run("PUBLISH", [this.channel(toRelay), JSON.stringify(message)]);
  }

  /** Tells `toRelay` that the peer `identity` of `sessionId` registered here: its registration there is stale. */
  async left(toRelay: string, sessionId: string, identity: string): Promise<void> {
    const message: LeftMessage = { kind: "left", session: sessionId, relay: this.self, identity };
    await this.run("PUBLISH", [this.channel(toRelay), JSON.stringify(message)]);
  }

  close(): void {
    this.closed = true;
    this.cmd?.close();
    this.sub?.close();
  }

  private client(): RedisClient {
    // Reconnection is ours (maintain): predictable, and commands fail fast instead of queueing.
    return new RedisClient(this.dataUrl, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: 2000 });
  }

  /** Runs `s` on one key: by its SHA1, and sent whole only when the server does not have it (a new or restarted server). */
  private async eval(s: Script, key: string, args: string[]): Promise<unknown> {
    const reply = await this.run("EVALSHA", [s.sha, "1", key, ...args]);
    return reply === NO_SCRIPT ? this.run("EVAL", [s.body, "1", key, ...args]) : reply;
  }

  private async run(command: string, args: string[]): Promise<unknown> {
    if (this.closed) return undefined;
    this.stats.commands++;
    const cmd = this.cmd;
    if (!cmd) {
      this.failed(new Error(`no primary known yet for '${this.masterName}'`));
      return undefined;
    }
    try {
      const reply = await cmd.send(command, args);
      this.reached();
      return reply ?? null;
    } catch (error) {
      if (command === "EVALSHA" && String((error as Error)?.message).startsWith("NOSCRIPT")) {
        this.reached();
        return NO_SCRIPT;
      }
      // A demoted primary: drop the connection so that the next maintain() asks the sentinels.
      if (this.findPrimary && String((error as Error)?.message).startsWith("READONLY")) cmd.close();
      this.failed(error);
      return undefined;
    }
  }

  private message(text: string): void {
    this.stats.messages++;
    try {
      const m = JSON.parse(text) as Partial<JoinMessage | LeftMessage>;
      if (typeof m.session !== "string" || typeof m.relay !== "string" || (m.identity !== undefined && typeof m.identity !== "string")) return;
      if (m.kind === "join") this.onMessage(m as JoinMessage);
      else if (m.kind === "left" && typeof m.identity === "string") this.onMessage(m as LeftMessage);
    } catch {
      // Not ours: other writers may share the channel namespace.
    }
  }

  private reached(): void {
    if (this.up) return;
    this.up = true;
    this.logger.info("fleet directory reachable", { redis: maskRedisUrl(this.dataUrl), outages: this.stats.outages });
    this.onReachable();
  }

  private failed(error: unknown): void {
    this.stats.errors++;
    if (this.up) {
      this.up = false;
      this.stats.outages++;
      this.lastErrorLog = Date.now();
      this.logger.warn("fleet directory unreachable: serving sessions with both peers here, bridging paused", {
        redis: maskRedisUrl(this.dataUrl),
        error: String((error as Error)?.message ?? error),
      });
      return;
    }
    const now = Date.now();
    if (now - this.lastErrorLog < OUTAGE_LOG_PERIOD_MS) return;
    const first = this.lastErrorLog === 0;
    this.lastErrorLog = now;
    this.logger.warn(first ? "fleet directory unreachable: bridging paused until it answers" : "fleet directory still unreachable", { error: String((error as Error)?.message ?? error), errors: this.stats.errors });
  }
}
