import { isIP } from "node:net";
import { envName } from "../config/config.ts";
import { type HostPort, parseHostPort } from "../net/address.ts";
import { ConfigError } from "../config/errors.ts";
import { readSecretFile, type SecretFileInfo, secretFileInfo } from "../security/secret-file.ts";
import type { SentinelOptions } from "./sentinel.ts";

/** Passwords themselves are read from the environment only: never a flag (`ps`), never a config key. */
const ENV_ONLY = "fleet-redis-password";
const SENTINEL_ENV_ONLY = "fleet-sentinel-password";
/** `QUIC_RELAY_FLEET_REDIS_PASSWORD`; other tools' names (`REDISCLI_AUTH`) are not read. */
export const REDIS_PASSWORD_ENV = envName(ENV_ONLY);
/** `QUIC_RELAY_FLEET_SENTINEL_PASSWORD`: the sentinels' own password, when they have one. */
export const SENTINEL_PASSWORD_ENV = envName(SENTINEL_ENV_ONLY);
/** The fleet's variables that are no flag's (for `unknownEnvWarnings`). */
export const FLEET_ENV_ONLY_VARIABLES = [REDIS_PASSWORD_ENV, SENTINEL_PASSWORD_ENV] as const;
const envOnly = (name: string) => name === ENV_ONLY || name === SENTINEL_ENV_ONLY;
/** What turns the fleet on, for messages. */
const ENABLED_BY = "--fleet-redis or --fleet-redis-sentinel";

/** Fleet flags for the relay command (citty arg definitions). All off unless `--fleet-redis` or `--fleet-redis-sentinel` is set. */
export const fleetArgs = {
  "fleet-redis": {
    type: "string",
    description: "Redis/Valkey URL of the fleet's session directory (redis://host:port); enables the fleet. With --fleet-redis-sentinel: scheme, user and db only (rediss://user@/0), or omitted",
  },
  "fleet-redis-sentinel": {
    type: "string",
    description: `Sentinels naming the directory's current primary, host:port[,host:port...]; enables the fleet (sentinels' password: ${envName(SENTINEL_ENV_ONLY)})`,
  },
  "fleet-redis-master": { type: "string", description: "Name the sentinels monitor the primary under (default mymaster)" },
  "fleet-redis-password-file": {
    type: "string",
    description: `File holding the Redis password (first non-comment line), kept out of the URL; or set ${REDIS_PASSWORD_ENV}`,
  },
  "fleet-advertise": { type: "string", description: "ip:port other relays reach this relay's UDP port on (required in a fleet)" },
  "fleet-secret": { type: "string", description: "Shared secret authenticating relay-to-relay datagrams, 16+ chars (prefer --fleet-secret-file or QUIC_RELAY_FLEET_SECRET)" },
  "fleet-secret-file": {
    type: "string",
    description: "File of fleet secrets, one a line (# comments): the first signs, all are accepted (rotation); instead of --fleet-secret",
  },
  "fleet-prefix": { type: "string", description: "Key and channel prefix in Redis, to run several fleets on one Redis (default quic-relay)" },
  "fleet-heartbeat-secs": { type: "string", description: "Health heartbeat period; a relay silent for 3 periods counts as gone (default 2)" },
  "fleet-replay-window-secs": { type: "string", description: "Accepted clock difference on relay-to-relay datagrams (default 30)" },
} as const;

export type FleetFlagName = keyof typeof fleetArgs;
/** As a CLI parser hands them over (citty `args` can be passed as is). */
export type RawFleetFlags = Partial<Record<FleetFlagName, unknown>>;
/** A config file's values keyed by flag name. */
export interface FleetFile {
  path: string;
  values: Record<string, unknown>;
}

export interface FleetOptions {
  /**
   * Connection URL, with the password from a password file or the environment filled in: log it
   * only through `maskRedisUrl`. With `sentinel` it names no host (`redis://`, `rediss://user:pw@/2`):
   * `redisUrlFor` puts in the primary the sentinels name.
   */
  redisUrl: string;
  /** `host:port` as given; also this relay's id in the directory. */
  advertise: string;
  advertiseEndpoint: { address: string; port: number };
  /** Fleet secrets, never empty: the first signs bridge datagrams, every one is accepted. */
  secrets: string[];
  /** Set when the directory's primary is found through Redis Sentinel. */
  sentinel?: SentinelOptions;
  prefix: string;
  heartbeatMs: number;
  replayWindowMs: number;
  /** The secret files read (fleet secret, Redis password), for the permission check (`secretFileWarning`). */
  secretFiles?: SecretFileInfo[];
}

export const FLEET_SECRET_MIN_LENGTH = 16;

interface Setting {
  name: string;
  text: string;
  /** What set it, for messages: `--fleet-secret`, `QUIC_RELAY_FLEET_SECRET`, `'fleet-secret' in relay.toml`. */
  source: string;
}

/**
 * Validates the fleet settings; undefined when `--fleet-redis` is not set, which leaves the relay
 * exactly a single relay. Throws ConfigError. Each setting comes from the first source that sets
 * it: flags, then `QUIC_RELAY_FLEET_*` variables, then the config file. The secret and the Redis
 * password are each one setting with two spellings (value or file): the first source that gives
 * either wins, and a source giving both is an error.
 */
export function resolveFleetOptions(flags: RawFleetFlags, env: Record<string, string | undefined>, file?: FleetFile): FleetOptions | undefined {
  const sources: ((name: string) => Setting | undefined)[] = [
    (name) => {
      let raw = envOnly(name) ? undefined : (flags as Record<string, unknown>)[name];
      if (Array.isArray(raw)) raw = raw[raw.length - 1];
      if (raw === undefined || raw === false || raw === null) return undefined;
      return { name, text: String(raw).trim(), source: `--${name}` };
    },
    (name) => {
      const raw = env[envName(name)];
      return raw === undefined || raw.trim() === "" ? undefined : { name, text: raw.trim(), source: envName(name) };
    },
    (name) => {
      const raw = envOnly(name) ? undefined : file?.values[name];
      if (raw === undefined) return undefined;
      return { name, text: typeof raw === "boolean" ? "" : String(raw).trim(), source: `'${name}' in ${file!.path}` };
    },
  ];
  const value = (name: string): Setting | undefined => {
    for (const source of sources) {
      const found = source(name);
      if (found) return found;
    }
    return undefined;
  };
  const eitherOf = (a: string, b: string): Setting | undefined => {
    for (const source of sources) {
      const [first, second] = [source(a), source(b)];
      if (first && second) throw new ConfigError(`${first.source} and ${second.source} both set; give one of them`, b);
      if (first || second) return first ?? second;
    }
    return undefined;
  };

  const redis = value("fleet-redis");
  const sentinelSetting = value("fleet-redis-sentinel");
  if (!redis && !sentinelSetting) {
    for (const name of [...Object.keys(fleetArgs), ENV_ONLY, SENTINEL_ENV_ONLY]) {
      const v = value(name);
      if (v) throw new ConfigError(`${v.source} needs ${ENABLED_BY}`, name);
    }
    return undefined;
  }
  if (!sentinelSetting) {
    for (const name of ["fleet-redis-master", SENTINEL_ENV_ONLY]) {
      const v = value(name);
      if (v) throw new ConfigError(`${v.source} needs --fleet-redis-sentinel`, name);
    }
  }
  if (redis && !sentinelSetting && !/^(redis|rediss|valkey|valkeys):\/\/[^\s]+$/.test(redis.text))
    throw new ConfigError(`${redis.source} must be a redis:// (or rediss://, valkey://) URL, got '${maskRedisUrl(redis.text)}'`, "fleet-redis");
  const template = redis?.text ?? "redis://";
  const sentinel = sentinelSetting ? sentinelOptions(sentinelSetting, template, redis, value("fleet-redis-master"), value(SENTINEL_ENV_ONLY)) : undefined;

  const advertise = value("fleet-advertise");
  if (!advertise) throw new ConfigError(`--fleet-advertise ip:port is required with ${ENABLED_BY}`, "fleet-advertise");
  const hp = parseHostPort(advertise.text);
  if (!hp || isIP(hp.host) === 0 || hp.port === 0 || hp.host === "0.0.0.0" || hp.host === "::")
    throw new ConfigError(`${advertise.source} must be a reachable ip:port (e.g. 203.0.113.7:4433 or [2001:db8::7]:4433), got '${advertise.text}'`, "fleet-advertise");

  const secretFiles: SecretFileInfo[] = [];
  const fromFile = (setting: Setting): string => {
    const read = readSecretFile(setting.text, setting.source, setting.name);
    secretFiles.push(secretFileInfo(read));
    return read.lines[0]!;
  };

  const secretSetting = eitherOf("fleet-secret", "fleet-secret-file");
  if (!secretSetting)
    throw new ConfigError(`--fleet-secret-file, --fleet-secret or QUIC_RELAY_FLEET_SECRET is required with ${ENABLED_BY}`, "fleet-secret");
  let secrets: string[];
  if (secretSetting.name === "fleet-secret-file") {
    const read = readFleetSecretFile(secretSetting.text, secretSetting.source);
    secretFiles.push(secretFileInfo(read));
    secrets = read.lines;
  } else {
    // The message never echoes the secret.
    if (secretSetting.text.length < FLEET_SECRET_MIN_LENGTH)
      throw new ConfigError(`${secretSetting.source}: the secret must be at least ${FLEET_SECRET_MIN_LENGTH} characters`, secretSetting.name);
    secrets = [secretSetting.text];
  }

  const passwordSetting = eitherOf(ENV_ONLY, "fleet-redis-password-file");
  let redisUrl = template;
  if (passwordSetting) {
    if (redisUrlPassword(template) !== undefined)
      throw new ConfigError(`${redis!.source} already carries a password, and ${passwordSetting.source} gives another; keep one`, passwordSetting.name);
    const password = passwordSetting.name === ENV_ONLY ? passwordSetting.text : fromFile(passwordSetting);
    redisUrl = withRedisPassword(template, password);
  }

  const prefix = value("fleet-prefix")?.text ?? "quic-relay";
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) throw new ConfigError(`--fleet-prefix must be 1-64 of A-Z a-z 0-9 . _ : -, got '${prefix}'`, "fleet-prefix");

  return {
    redisUrl,
    advertise: advertise.text,
    advertiseEndpoint: { address: hp.host, port: hp.port },
    secrets,
    ...(sentinel ? { sentinel } : {}),
    prefix,
    heartbeatMs: seconds(value("fleet-heartbeat-secs"), 2, 0.1, 3600) * 1000,
    replayWindowMs: seconds(value("fleet-replay-window-secs"), 30, 1, 3600) * 1000,
    secretFiles,
  };
}

/** Every secret line of the file, in order, each checked; messages never show a secret. */
function readFleetSecretFile(path: string, source: string) {
  const read = readSecretFile(path, source, "fleet-secret-file");
  const seen = new Map<string, number>();
  for (const [i, secret] of read.lines.entries()) {
    const which = read.lines.length > 1 ? `secret ${i + 1} of ${read.lines.length}` : "the secret";
    if (secret.length < FLEET_SECRET_MIN_LENGTH)
      throw new ConfigError(`${source}: ${which} must be at least ${FLEET_SECRET_MIN_LENGTH} characters`, "fleet-secret-file");
    const earlier = seen.get(secret);
    if (earlier !== undefined) throw new ConfigError(`${source}: secrets ${earlier + 1} and ${i + 1} are the same; list each once`, "fleet-secret-file");
    seen.set(secret, i);
  }
  return read;
}

/**
 * The sentinel settings. With sentinels `--fleet-redis` is a template: scheme (redis:// or
 * rediss://, also used to reach the sentinels), optional user (and password), optional db; the
 * host comes from the sentinels, so a host in it is refused rather than silently ignored.
 */
function sentinelOptions(list: Setting, template: string, redis: Setting | undefined, master: Setting | undefined, password: Setting | undefined): SentinelOptions {
  const parts = splitUserinfo(template);
  if (!parts || (parts.scheme !== "redis://" && parts.scheme !== "rediss://") || !/^(\/[0-9]{1,5})?$/.test(parts.rest) || /\s/.test(template))
    throw new ConfigError(
      `${redis?.source ?? "--fleet-redis"} with --fleet-redis-sentinel gives only the scheme, user and db (redis://, rediss://relay@/0): the sentinels name the host; got '${maskRedisUrl(template)}'`,
      "fleet-redis",
    );
  const sentinels: HostPort[] = [];
  for (const item of list.text.split(",")) {
    const hp = parseHostPort(item);
    const host = hp?.host ?? "";
    if (!hp || hp.port === 0 || (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(host)))
      throw new ConfigError(`${list.source} must be host:port[,host:port...] (e.g. 10.0.0.5:26379,10.0.0.6:26379), got '${item.trim()}'`, list.name);
    if (sentinels.some((s) => s.host === hp.host && s.port === hp.port)) throw new ConfigError(`${list.source} names ${item.trim()} twice`, list.name);
    sentinels.push(hp);
  }
  const masterName = master?.text ?? "mymaster";
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(masterName))
    throw new ConfigError(`${master!.source} must be 1-64 of A-Z a-z 0-9 . _ : -, got '${masterName}'`, "fleet-redis-master");
  return { sentinels, masterName, scheme: parts.scheme, ...(password ? { password: password.text } : {}) };
}

/** The data connection's URL for a primary (`host:port` or `[v6]:port`) the sentinels named. */
export function redisUrlFor(template: string, primary: string): string {
  const parts = splitUserinfo(template)!;
  return `${parts.scheme}${parts.userinfo === undefined ? "" : `${parts.userinfo}@`}${primary}${parts.rest}`;
}

function seconds(v: Setting | undefined, fallback: number, min: number, max: number): number {
  if (!v) return fallback;
  const n = Number(v.text);
  if (!/^[0-9.]+$/.test(v.text) || !Number.isFinite(n) || n < min || n > max)
    throw new ConfigError(`${v.source} must be a number from ${min} to ${max}, got '${v.text}'`, v.name);
  return n;
}

/**
 * `scheme://` + userinfo + `@` + the rest. The userinfo ends at the last `@`, so a password with
 * a raw `@` or `/` in it is still treated (and masked) as a whole.
 */
function splitUserinfo(url: string): { scheme: string; userinfo: string | undefined; rest: string } | undefined {
  const start = url.indexOf("://");
  if (start < 0) return undefined;
  const scheme = url.slice(0, start + 3);
  const at = url.lastIndexOf("@");
  if (at < scheme.length) return { scheme, userinfo: undefined, rest: url.slice(scheme.length) };
  return { scheme, userinfo: url.slice(scheme.length, at), rest: url.slice(at + 1) };
}

/** The password in a Redis URL (`redis://[user]:password@host`), still percent-encoded; undefined when it has none. */
export function redisUrlPassword(url: string): string | undefined {
  const userinfo = splitUserinfo(url)?.userinfo;
  const colon = userinfo?.indexOf(":") ?? -1;
  if (userinfo === undefined || colon < 0 || colon === userinfo.length - 1) return undefined;
  return userinfo.slice(colon + 1);
}

/** The URL with `password` as its userinfo password, percent-encoded (Bun's RedisClient decodes it); any user name is kept. */
export function withRedisPassword(url: string, password: string): string {
  const parts = splitUserinfo(url)!;
  const user = parts.userinfo === undefined ? "" : parts.userinfo.split(":")[0]!;
  return `${parts.scheme}${user}:${encodeURIComponent(password)}@${parts.rest}`;
}

/** The URL for logs and messages: the password, if any, replaced by `***`; the user name stays. */
export function maskRedisUrl(url: string): string {
  const parts = splitUserinfo(url);
  if (!parts || parts.userinfo === undefined || !parts.userinfo.includes(":")) return url;
  return `${parts.scheme}${parts.userinfo.split(":")[0]}:***@${parts.rest}`;
}
