import type { DataPlaneChoice } from "../dataplane/select.ts";
import type { DataPlaneOptions } from "../dataplane/types.ts";
import { DATA_PLANE_CHOICES } from "../dataplane/select.ts";
import { ConfigError } from "./errors.ts";
import { parseHostPort } from "../net/address.ts";

export const LOG_LEVELS = ["error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["pretty", "json"] as const;

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
  /** `host:port` of the HTTP metrics and health endpoint; off when undefined. */
  metricsListen: string | undefined;
  /** SQLite file the session table is saved to and restored from; off when undefined. */
  stateFile: string | undefined;
  stateSaveIntervalSecs: number;
  /** Longest a SIGTERM/SIGINT shutdown may take before the process exits anyway. */
  shutdownTimeoutSecs: number;
  /**
   * Rebind rule 3 (bare data from a new port after silence): seconds of silence, -1 for off, or
   * auto: 1 s without authentication, off with it (the rule needs no credential, so with tokens on
   * only REG and connection IDs may move a peer).
   */
  rebindQuietSecs: number | "auto";
  /**
   * Verified mode: every REG that adds or moves a peer must prove, with a cookie, that its sender
   * receives at its address (docs/protocol.md, "Return routability"). Always on with REG tokens.
   */
  verifySource: boolean;
  /**
   * Bytes forwarded to a peer that has not proved its address, counted since the last datagram
   * from it, beyond which forwarding to it pauses; 0 for no bound.
   */
  maxUnansweredBytes: number;
  /** Answer STUN Binding requests on the relay's port (address discovery; docs/protocol.md). */
  stun: boolean;
  /**
   * `host:port` of a second socket that answers STUN only, so clients can compare the mapping their
   * NAT gives toward two relay addresses (RFC 5780's OTHER-ADDRESS); off when undefined.
   */
  stunAltListen: string | undefined;
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
  metricsListen: undefined,
  stateFile: undefined,
  stateSaveIntervalSecs: 10,
  shutdownTimeoutSecs: 5,
  rebindQuietSecs: "auto",
  verifySource: false,
  maxUnansweredBytes: 1024 * 1024,
  stun: true,
  stunAltListen: undefined,
};

/** Raw values as the CLI parsed them (strings, booleans), keyed like RelayConfig. */
export type RawRelayFlags = Partial<Record<keyof RelayConfig, string | boolean | undefined>>;
/** Values read from a config file (TOML types), keyed by flag name (`session-timeout-secs`). */
export type FileValues = Record<string, unknown>;

type Parser = (name: string, value: unknown) => unknown;

/** Every setting: its flag (also the config-file key) and how its value is validated. */
export const SETTINGS: { [K in keyof RelayConfig]: { flag: string; parse: Parser } } = {
  host: { flag: "host", parse: (n, v) => nonEmpty(n, v) },
  port: { flag: "port", parse: (n, v) => integer(n, v, 0, 65_535) },
  sessionTimeoutSecs: { flag: "session-timeout-secs", parse: (n, v) => number(n, v, 0.05, 30 * 86_400) },
  dataplane: { flag: "dataplane", parse: (n, v) => oneOf(n, v, DATA_PLANE_CHOICES) },
  logLevel: { flag: "log-level", parse: (n, v) => oneOf(n, typeof v === "string" ? v.toLowerCase() : v, LOG_LEVELS) },
  logFormat: { flag: "log-format", parse: (n, v) => oneOf(n, v, LOG_FORMATS) },
  maxDatagramSize: { flag: "max-datagram-size", parse: (n, v) => integer(n, v, 64, 65_535) },
  socketBufferBytes: { flag: "socket-buffer-bytes", parse: (n, v) => integer(n, v, 0, 1 << 30) },
  workers: { flag: "workers", parse: (n, v) => integer(n, v, 0, 64) },
  gro: { flag: "gro", parse: (n, v) => boolean(n, v) },
  metricsListen: { flag: "metrics-listen", parse: (n, v) => hostPort(n, v) },
  stateFile: { flag: "state-file", parse: (n, v) => nonEmpty(n, v) },
  stateSaveIntervalSecs: { flag: "state-save-interval-secs", parse: (n, v) => number(n, v, 0.05, 86_400) },
  shutdownTimeoutSecs: { flag: "shutdown-timeout-secs", parse: (n, v) => number(n, v, 0.1, 600) },
  rebindQuietSecs: { flag: "rebind-quiet-secs", parse: (n, v) => (v === "off" || v === false ? -1 : v === "auto" ? "auto" : number(n, v, 0, 3600)) },
  verifySource: { flag: "verify-source", parse: (n, v) => boolean(n, v) },
  maxUnansweredBytes: { flag: "max-unanswered-bytes", parse: (n, v) => integer(n, v, 0, 1 << 30) },
  stun: { flag: "stun", parse: (n, v) => onOff(n, v) },
  stunAltListen: { flag: "stun-alt-listen", parse: (n, v) => hostPort(n, v) },
};

/** `QUIC_RELAY_SESSION_TIMEOUT_SECS` for `session-timeout-secs`. */
export function envName(flag: string): string {
  return `QUIC_RELAY_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * Validate flags, environment and config file into one typed config; the first source that sets a
 * value wins: flags, then `QUIC_RELAY_*` variables, then the file, then defaults. Throws ConfigError
 * naming the flag, variable or file key that is wrong.
 */
export function resolveRelayConfig(
  flags: RawRelayFlags,
  env: Record<string, string | undefined>,
  file: { path: string; values: FileValues } | undefined = undefined,
): RelayConfig {
  const config: Record<string, unknown> = { ...DEFAULTS };
  for (const [key, setting] of Object.entries(SETTINGS) as [keyof RelayConfig, { flag: string; parse: Parser }][]) {
    if (key === "logLevel") continue;
    const flag = flags[key];
    const fromEnv = env[envName(setting.flag)];
    const fromFile = file?.values[setting.flag];
    if (flag !== undefined) config[key] = setting.parse(`--${setting.flag}`, flag);
    else if (fromEnv !== undefined && fromEnv !== "") config[key] = setting.parse(envName(setting.flag), fromEnv);
    else if (fromFile !== undefined) config[key] = setting.parse(`'${setting.flag}' in ${file!.path}`, fromFile);
  }
  config.logLevel = resolveLogLevel(flags.logLevel, env, file);
  return config as unknown as RelayConfig;
}

/**
 * `--log-level` wins, then QUIC_RELAY_LOG_LEVEL, LOG_LEVEL, RUST_LOG (as users of the original set
 * it), then the config file, then info.
 */
export function resolveLogLevel(
  flag: string | boolean | undefined,
  env: Record<string, string | undefined>,
  file?: { path: string; values: FileValues },
): LogLevel {
  const parse = SETTINGS.logLevel.parse;
  if (flag !== undefined) return parse("--log-level", flag) as LogLevel;
  if (env.QUIC_RELAY_LOG_LEVEL) return parse("QUIC_RELAY_LOG_LEVEL", env.QUIC_RELAY_LOG_LEVEL) as LogLevel;
  if (env.LOG_LEVEL) return parse("LOG_LEVEL", env.LOG_LEVEL) as LogLevel;
  if (env.RUST_LOG) return fromRustLog(env.RUST_LOG);
  const fromFile = file?.values["log-level"];
  if (fromFile !== undefined) return parse(`'log-level' in ${file!.path}`, fromFile) as LogLevel;
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

/** The source name as it appears in messages: `--port` or `QUIC_RELAY_PORT` or `'port' in FILE`. */
function flagOf(name: string): string {
  const m = /^--(.+)$|^'(.+)' in /.exec(name);
  if (m) return m[1] ?? m[2]!;
  return name.replace(/^QUIC_RELAY_/, "").toLowerCase().replaceAll("_", "-");
}

function text(name: string, value: unknown): string {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string" || value.trim() === "") throw new ConfigError(`${name} needs a value`, flagOf(name));
  return value.trim();
}

function nonEmpty(name: string, value: unknown): string {
  if (typeof value !== "string") return text(name, undefined);
  return text(name, value);
}

function number(name: string, value: unknown, min: number, max: number): number {
  const t = text(name, value);
  const n = Number(t);
  if (!Number.isFinite(n) || !/^[0-9.]+$/.test(t) || n < min || n > max)
    throw new ConfigError(`${name} must be a number from ${min} to ${max}, got '${t}'`, flagOf(name));
  return n;
}

function integer(name: string, value: unknown, min: number, max: number): number {
  const t = text(name, value);
  if (!/^[0-9]+$/.test(t) || Number(t) < min || Number(t) > max)
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got '${t}'`, flagOf(name));
  return Number(t);
}

function boolean(name: string, value: unknown): boolean {
  if (value === true || value === "true" || value === "1") return true;
  if (value === false || value === "false" || value === "0") return false;
  throw new ConfigError(`${name} must be true or false, got '${String(value)}'`, flagOf(name));
}

function onOff(name: string, value: unknown): boolean {
  if (value === "on") return true;
  if (value === "off") return false;
  try {
    return boolean(name, value);
  } catch {
    throw new ConfigError(`${name} must be on or off, got '${String(value)}'`, flagOf(name));
  }
}

function hostPort(name: string, value: unknown): string {
  const t = text(name, value);
  if (!parseHostPort(t)) throw new ConfigError(`${name} must be host:port (e.g. 127.0.0.1:9464 or [::1]:9464), got '${t}'`, flagOf(name));
  return t;
}

function oneOf<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value === "string" && (choices as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`${name} must be one of ${choices.join(", ")}, got '${String(value)}'`, flagOf(name));
}

/**
 * Silence in ms after which rule 3 follows bare data, or -1 when the rule is off. `auto` is off in
 * verified mode (the rule moves a peer to an address that proved nothing), 1 s otherwise.
 */
export function rebindQuietMs(setting: RelayConfig["rebindQuietSecs"], verified: boolean): number {
  if (setting === "auto") return verified ? -1 : 1000;
  return setting < 0 ? -1 : setting * 1000;
}

/** What the data plane needs of the config; `workers` 0 leaves the choice to the plane. */
export function dataPlaneOptions(config: RelayConfig): DataPlaneOptions {
  return {
    host: config.host,
    port: config.port,
    maxDatagramSize: config.maxDatagramSize,
    socketBufferBytes: config.socketBufferBytes,
    workers: config.workers > 0 ? config.workers : undefined,
    gro: config.gro,
  };
}
