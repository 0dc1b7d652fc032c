import { isIP } from "node:net";
import { envName } from "../config.ts";
import { parseHostPort } from "../net/address.ts";
import { ConfigError } from "../protocol/errors.ts";

/** Fleet flags for the relay command (citty arg definitions). All off unless `--fleet-redis` is set. */
export const fleetArgs = {
  "fleet-redis": { type: "string", description: "Redis/Valkey URL of the fleet's session directory (redis://host:port); enables the fleet" },
  "fleet-advertise": { type: "string", description: "ip:port other relays reach this relay's UDP port on (required with --fleet-redis)" },
  "fleet-secret": { type: "string", description: "Shared secret authenticating relay-to-relay datagrams, 16+ chars (prefer QUIC_RELAY_FLEET_SECRET)" },
  "fleet-prefix": { type: "string", description: "Key and channel prefix in Redis, to run several fleets on one Redis (default quic-relay)" },
  "fleet-heartbeat-secs": { type: "string", description: "Health heartbeat period; a relay silent for 3 periods counts as gone (default 2)" },
  "fleet-replay-window-secs": { type: "string", description: "Accepted clock difference on relay-to-relay datagrams (default 30)" },
} as const;

export type FleetFlagName = keyof typeof fleetArgs;
/** As a CLI parser hands them over (citty `args` can be passed as is). */
export type RawFleetFlags = Partial<Record<FleetFlagName, unknown>>;

export interface FleetOptions {
  redisUrl: string;
  /** `host:port` as given; also this relay's id in the directory. */
  advertise: string;
  advertiseEndpoint: { address: string; port: number };
  secret: string;
  prefix: string;
  heartbeatMs: number;
  replayWindowMs: number;
}

export const FLEET_SECRET_MIN_LENGTH = 16;

/**
 * Validates the fleet flags (each also settable as `QUIC_RELAY_FLEET_*`); undefined when
 * `--fleet-redis` is not set, which leaves the relay exactly a single relay. Throws ConfigError.
 */
export function resolveFleetOptions(flags: RawFleetFlags, env: Record<string, string | undefined>): FleetOptions | undefined {
  const value = (flag: FleetFlagName): { text: string; source: string } | undefined => {
    let raw = flags[flag];
    if (Array.isArray(raw)) raw = raw[raw.length - 1];
    if (raw !== undefined && raw !== false && raw !== null) return { text: String(raw).trim(), source: `--${flag}` };
    const fromEnv = env[envName(flag)];
    if (fromEnv !== undefined && fromEnv.trim() !== "") return { text: fromEnv.trim(), source: envName(flag) };
    return undefined;
  };
  const redis = value("fleet-redis");
  if (!redis) {
    for (const flag of Object.keys(fleetArgs) as FleetFlagName[]) {
      const v = value(flag);
      if (v) throw new ConfigError(`${v.source} needs --fleet-redis`, flag);
    }
    return undefined;
  }
  if (!/^(redis|rediss|valkey|valkeys):\/\/[^\s]+$/.test(redis.text))
    throw new ConfigError(`${redis.source} must be a redis:// (or rediss://, valkey://) URL, got '${redis.text}'`, "fleet-redis");

  const advertise = value("fleet-advertise");
  if (!advertise) throw new ConfigError("--fleet-advertise ip:port is required with --fleet-redis", "fleet-advertise");
  const hp = parseHostPort(advertise.text);
  if (!hp || isIP(hp.host) === 0 || hp.port === 0 || hp.host === "0.0.0.0" || hp.host === "::")
    throw new ConfigError(`${advertise.source} must be a reachable ip:port (e.g. 203.0.113.7:4433 or [2001:db8::7]:4433), got '${advertise.text}'`, "fleet-advertise");

  const secret = value("fleet-secret");
  if (!secret) throw new ConfigError("--fleet-secret (or QUIC_RELAY_FLEET_SECRET) is required with --fleet-redis", "fleet-secret");
  if (secret.text.length < FLEET_SECRET_MIN_LENGTH)
    throw new ConfigError(`${secret.source} must be at least ${FLEET_SECRET_MIN_LENGTH} characters`, "fleet-secret");

  const prefix = value("fleet-prefix")?.text ?? "quic-relay";
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) throw new ConfigError(`--fleet-prefix must be 1-64 of A-Z a-z 0-9 . _ : -, got '${prefix}'`, "fleet-prefix");

  return {
    redisUrl: redis.text,
    advertise: advertise.text,
    advertiseEndpoint: { address: hp.host, port: hp.port },
    secret: secret.text,
    prefix,
    heartbeatMs: seconds(value("fleet-heartbeat-secs"), 2, 0.1, 3600) * 1000,
    replayWindowMs: seconds(value("fleet-replay-window-secs"), 30, 1, 3600) * 1000,
  };
}

function seconds(v: { text: string; source: string } | undefined, fallback: number, min: number, max: number): number {
  if (!v) return fallback;
  const n = Number(v.text);
  if (!/^[0-9.]+$/.test(v.text) || !Number.isFinite(n) || n < min || n > max)
    throw new ConfigError(`${v.source} must be a number from ${min} to ${max}, got '${v.text}'`, v.source.replace(/^--/, ""));
  return n;
}
