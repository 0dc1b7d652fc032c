import { isIP } from "node:net";
import { envName } from "../config/config.ts";
import { parseHostPort } from "../net/address.ts";
import { ConfigError } from "../config/errors.ts";
import { readSecretFile, type SecretFileInfo, secretFileInfo } from "../security/secret-file.ts";

/** The Redis password itself is read from the environment only: never a flag (`ps`), never a config key. */
const ENV_ONLY = "fleet-redis-password";
/** `QUIC_RELAY_FLEET_REDIS_PASSWORD`; other tools' names (`REDISCLI_AUTH`) are not read. */
export const REDIS_PASSWORD_ENV = envName(ENV_ONLY);

/** Fleet flags for the relay command (citty arg definitions). All off unless `--fleet-redis` is set. */
export const fleetArgs = {
  "fleet-redis": { type: "string", description: "Redis/Valkey URL of the fleet's session directory (redis://host:port); enables the fleet" },
  "fleet-redis-password-file": {
    type: "string",
    description: `File holding the Redis password (first non-comment line), kept out of the URL; or set ${REDIS_PASSWORD_ENV}`,
  },
  "fleet-advertise": { type: "string", description: "ip:port other relays reach this relay's UDP port on (required with --fleet-redis)" },
  "fleet-secret": { type: "string", description: "Shared secret authenticating relay-to-relay datagrams, 16+ chars (prefer --fleet-secret-file or QUIC_RELAY_FLEET_SECRET)" },
  "fleet-secret-file": { type: "string", description: "File holding the fleet secret (first non-comment line); instead of --fleet-secret" },
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
  /** Connection URL, with the password from a password file or the environment filled in: log it only through `maskRedisUrl`. */
  redisUrl: string;
  /** `host:port` as given; also this relay's id in the directory. */
  advertise: string;
  advertiseEndpoint: { address: string; port: number };
  secret: string;
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
      let raw = name === ENV_ONLY ? undefined : (flags as Record<string, unknown>)[name];
      if (Array.isArray(raw)) raw = raw[raw.length - 1];
      if (raw === undefined || raw === false || raw === null) return undefined;
      return { name, text: String(raw).trim(), source: `--${name}` };
    },
    (name) => {
      const raw = env[envName(name)];
      return raw === undefined || raw.trim() === "" ? undefined : { name, text: raw.trim(), source: envName(name) };
    },
    (name) => {
      const raw = name === ENV_ONLY ? undefined : file?.values[name];
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
  if (!redis) {
    for (const name of [...Object.keys(fleetArgs), ENV_ONLY]) {
      const v = value(name);
      if (v) throw new ConfigError(`${v.source} needs --fleet-redis`, name);
    }
    return undefined;
  }
  if (!/^(redis|rediss|valkey|valkeys):\/\/[^\s]+$/.test(redis.text))
    throw new ConfigError(`${redis.source} must be a redis:// (or rediss://, valkey://) URL, got '${maskRedisUrl(redis.text)}'`, "fleet-redis");

  const advertise = value("fleet-advertise");
  if (!advertise) throw new ConfigError("--fleet-advertise ip:port is required with --fleet-redis", "fleet-advertise");
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
    throw new ConfigError("--fleet-secret-file, --fleet-secret or QUIC_RELAY_FLEET_SECRET is required with --fleet-redis", "fleet-secret");
  const secret = secretSetting.name === "fleet-secret-file" ? fromFile(secretSetting) : secretSetting.text;
  // The message never echoes the secret.
  if (secret.length < FLEET_SECRET_MIN_LENGTH)
    throw new ConfigError(`${secretSetting.source}: the secret must be at least ${FLEET_SECRET_MIN_LENGTH} characters`, secretSetting.name);

  const passwordSetting = eitherOf(ENV_ONLY, "fleet-redis-password-file");
  let redisUrl = redis.text;
  if (passwordSetting) {
    if (redisUrlPassword(redis.text) !== undefined)
      throw new ConfigError(`${redis.source} already carries a password, and ${passwordSetting.source} gives another; keep one`, passwordSetting.name);
    const password = passwordSetting.name === ENV_ONLY ? passwordSetting.text : fromFile(passwordSetting);
    redisUrl = withRedisPassword(redis.text, password);
  }

  const prefix = value("fleet-prefix")?.text ?? "quic-relay";
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) throw new ConfigError(`--fleet-prefix must be 1-64 of A-Z a-z 0-9 . _ : -, got '${prefix}'`, "fleet-prefix");

  return {
    redisUrl,
    advertise: advertise.text,
    advertiseEndpoint: { address: hp.host, port: hp.port },
    secret,
    prefix,
    heartbeatMs: seconds(value("fleet-heartbeat-secs"), 2, 0.1, 3600) * 1000,
    replayWindowMs: seconds(value("fleet-replay-window-secs"), 30, 1, 3600) * 1000,
    secretFiles,
  };
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
