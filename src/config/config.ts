import { NO_NATIVE_ENV } from "../dataplane/native-addon.ts";
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
  /** Seconds a SIGTERM/SIGINT stop first drains (readyz 503, sessions keep forwarding); 0 for none. */
  drainSecs: number;
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
  drainSecs: 0,
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
  drainSecs: { flag: "drain-secs", parse: (n, v) => number(n, v, 0, 3600) },
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
 * it; only when it says something about the relay), then the config file, then info.
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
  const fromRust = env.RUST_LOG ? fromRustLog(env.RUST_LOG) : undefined;
  if (fromRust) return fromRust;
  const fromFile = file?.values["log-level"];
  if (fromFile !== undefined) return parse(`'log-level' in ${file!.path}`, fromFile) as LogLevel;
  return "info";
}

/** The original relay's crate: its log target. `quic-relay` is taken as the same name, as Cargo does. */
const RUST_CRATE = "quic_relay";
/** env_logger's level words, quietest first; `off` stands in for "nothing" at index 0. */
const RUST_LEVELS = ["off", ...LOG_LEVELS] as const;

/**
 * The relay's level from RUST_LOG, read as env_logger reads it: comma-separated directives, each
 * `level` (every target), `target=level`, or a bare `target` (all its levels). A target matches
 * when the relay's target (`quic_relay`) starts with it; the longest match wins, and of two equal
 * ones the later. Directives for modules inside the relay (`quic_relay::x=debug`) widen the level,
 * since the relay cannot filter by module. `off` is taken as `error`: the relay has no quieter
 * level. Undefined when no directive concerns the relay (`other_crate=debug`): env_logger would
 * then log nothing of it, not even errors, which no operator asked for; the next source decides.
 * A word that is neither a level nor the relay's target, a bad level after `=`, and a `/filter`
 * are ConfigErrors, as with LOG_LEVEL.
 */
export function fromRustLog(value: string): LogLevel | undefined {
  const invalid = () =>
    new ConfigError(`RUST_LOG must be a level (${RUST_LEVELS.join(", ")}) or target=level directives such as quic_relay=debug,warn, got '${value}'`, "log-level");
  if (value.includes("/")) throw new ConfigError(`RUST_LOG message filters ('/...') are not supported, got '${value}'`, "log-level");
  const levelOf = (word: string): number | undefined => {
    const index = (RUST_LEVELS as readonly string[]).indexOf(word.trim().toLowerCase());
    return index < 0 ? undefined : index;
  };
  const TRACE = RUST_LEVELS.length - 1;
  let root: { length: number; level: number } | undefined;
  const inside: number[] = [];
  for (const directive of value.split(",").map((d) => d.trim())) {
    if (directive === "") continue;
    const parts = directive.split("=");
    if (parts.length > 2) throw invalid();
    let target: string;
    let level: number | undefined;
    if (parts.length === 1) {
      level = levelOf(directive);
      target = level === undefined ? directive : "";
      level ??= TRACE;
    } else {
      target = parts[0]!.trim();
      level = parts[1]!.trim() === "" ? TRACE : levelOf(parts[1]!);
      if (level === undefined) throw invalid();
    }
    target = target.replaceAll("-", "_");
    // A level alone is the target "", which every target starts with: the global directive.
    const onRoot = RUST_CRATE.startsWith(target);
    const onModule = target.startsWith(`${RUST_CRATE}::`);
    // env_logger takes any other lone word for a target; here a misspelt level must not pass as one.
    if (parts.length === 1 && !onRoot && !onModule) throw invalid();
    if (onRoot && (!root || target.length >= root.length)) root = { length: target.length, level };
    else if (onModule) inside.push(level);
  }
  const levels = [...(root ? [root.level] : []), ...inside];
  if (levels.length === 0) return undefined;
  return LOG_LEVELS[Math.max(0, Math.max(...levels) - 1)]!;
}

/** QUIC_RELAY_* variables that are read, but are not relay settings: they draw no warning. */
const OTHER_VARIABLES = [
  "QUIC_RELAY_CONFIG",
  NO_NATIVE_ENV,
  // The original's client side (quic-portal's hosting/.env), often set where the relay runs.
  "QUIC_RELAY_IP",
  "QUIC_RELAY_ONLY",
];

/**
 * One warning per QUIC_RELAY_* variable that nothing reads, with the nearest known name when one
 * is close: a misspelt variable would otherwise leave its setting at the default without a word.
 * `knownFlags` are flags defined elsewhere (security, fleet) whose variables are read, and
 * `knownVariables` other names read as they are (QUIC_RELAY_FLEET_REDIS_PASSWORD).
 */
export function unknownEnvWarnings(
  env: Record<string, string | undefined>,
  knownFlags: readonly string[] = [],
  knownVariables: readonly string[] = [],
): string[] {
  const known = new Set([...Object.values(SETTINGS).map((s) => envName(s.flag)), ...knownFlags.map(envName), ...OTHER_VARIABLES, ...knownVariables]);
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith("QUIC_RELAY_") || env[name] === undefined || known.has(name)) continue;
    const hint = nearestName(name.toUpperCase().replaceAll("-", "_"), known);
    warnings.push(`${name} is not a setting${hint ? ` (did you mean ${hint}?)` : ""}`);
  }
  return warnings;
}

/** The candidate at most `maxEdits` edits from `name` (the nearest, the first of equals), if any. */
export function nearestName(name: string, candidates: Iterable<string>, maxEdits = 2): string | undefined {
  let best: string | undefined;
  let bestDistance = maxEdits + 1;
  for (const candidate of candidates) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
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
