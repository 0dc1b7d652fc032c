import type { DataPlaneChoice } from "./dataplane/select.ts";
import { DATA_PLANE_CHOICES } from "./dataplane/select.ts";
import { ConfigError } from "./protocol/errors.ts";

export const LOG_LEVELS = ["error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface RelayConfig {
  host: string;
  port: number;
  sessionTimeoutSecs: number;
  dataplane: DataPlaneChoice;
  logLevel: LogLevel;
  logFormat: "pretty" | "json";
  maxDatagramSize: number;
  socketBufferBytes: number;
  /** Native plane forwarding threads; 0 means pick for the machine. */
  workers: number;
  gro: boolean;
}

export const DEFAULTS: RelayConfig = {
  host: "::",
  port: 4433,
  sessionTimeoutSecs: 300,
  dataplane: "auto",
  logLevel: "info",
  logFormat: "pretty",
  maxDatagramSize: 65_507,
  socketBufferBytes: 4 * 1024 * 1024,
  workers: 0,
  gro: true,
};

/** Raw flag values as the CLI parsed them (strings), plus the environment. */
export type RawRelayFlags = Partial<Record<keyof RelayConfig, string | boolean | undefined>>;

/** Validate flags and environment into one typed config; throws ConfigError naming the flag. */
export function resolveRelayConfig(flags: RawRelayFlags, env: Record<string, string | undefined>): RelayConfig {
  const config: RelayConfig = { ...DEFAULTS };
  if (flags.host !== undefined) config.host = nonEmpty("host", flags.host);
  if (flags.port !== undefined) config.port = integer("port", flags.port, 0, 65_535);
  if (flags.sessionTimeoutSecs !== undefined)
    config.sessionTimeoutSecs = number("session-timeout-secs", flags.sessionTimeoutSecs, 0.05, 30 * 86_400);
  if (flags.dataplane !== undefined) config.dataplane = oneOf("dataplane", flags.dataplane, DATA_PLANE_CHOICES);
  if (flags.maxDatagramSize !== undefined)
    config.maxDatagramSize = integer("max-datagram-size", flags.maxDatagramSize, 64, 65_535);
  if (flags.socketBufferBytes !== undefined)
    config.socketBufferBytes = integer("socket-buffer-bytes", flags.socketBufferBytes, 0, 1 << 30);
  if (flags.workers !== undefined) config.workers = integer("workers", flags.workers, 0, 64);
  if (flags.gro !== undefined) config.gro = flags.gro === true || flags.gro === "true";
  if (flags.logFormat !== undefined) config.logFormat = oneOf("log-format", flags.logFormat, ["pretty", "json"] as const);
  config.logLevel = resolveLogLevel(flags.logLevel, env);
  return config;
}

/** `--log-level` wins, then LOG_LEVEL, then RUST_LOG (as users of the original set it), then info. */
export function resolveLogLevel(flag: string | boolean | undefined, env: Record<string, string | undefined>): LogLevel {
  if (flag !== undefined) return oneOf("log-level", flag, LOG_LEVELS);
  if (env.LOG_LEVEL) return oneOf("log-level", env.LOG_LEVEL.toLowerCase(), LOG_LEVELS, "LOG_LEVEL");
  if (env.RUST_LOG) return fromRustLog(env.RUST_LOG);
  return "info";
}

/**
 * RUST_LOG is a list of `level` or `target=level` directives (`info`, `quic_relay=debug,warn`).
 * Take the most verbose level named; unknown words fall back to info rather than failing startup.
 */
export function fromRustLog(value: string): LogLevel {
  let best = -1;
  for (const directive of value.split(",")) {
    const level = directive.split("=").pop()!.trim().toLowerCase();
    const index = (LOG_LEVELS as readonly string[]).indexOf(level === "off" ? "error" : level);
    if (index > best) best = index;
  }
  return best < 0 ? "info" : LOG_LEVELS[best]!;
}

function nonEmpty(flag: string, value: string | boolean): string {
  if (typeof value !== "string" || value.trim() === "") throw new ConfigError(`--${flag} needs a value`, flag);
  return value.trim();
}

function number(flag: string, value: string | boolean, min: number, max: number): number {
  const text = nonEmpty(flag, value);
  const n = Number(text);
  if (!Number.isFinite(n) || !/^[0-9.]+$/.test(text) || n < min || n > max)
    throw new ConfigError(`--${flag} must be a number from ${min} to ${max}, got '${text}'`, flag);
  return n;
}

function integer(flag: string, value: string | boolean, min: number, max: number): number {
  const text = nonEmpty(flag, value);
  if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max)
    throw new ConfigError(`--${flag} must be an integer from ${min} to ${max}, got '${text}'`, flag);
  return Number(text);
}

function oneOf<T extends string>(flag: string, value: string | boolean, choices: readonly T[], source = `--${flag}`): T {
  if (typeof value === "string" && (choices as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`${source} must be one of ${choices.join(", ")}, got '${String(value)}'`, flag);
}
