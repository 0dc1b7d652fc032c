/**
 * `startRelay(options)`: the relay embedded in an app. A thin layer over RelayService (the same
 * assembly the `quic-relay` command runs): options are validated by the same rules as flags and
 * config-file keys, missing ones take the command's defaults, and the handle exposes what the
 * service already offers. No signals are handled here: the app decides when to call `stop()`.
 */
import { DEFAULTS, type RelayConfig, resolveRelayConfig, SETTINGS } from "../config/config.ts";
import { ConfigError } from "../config/errors.ts";
import { hostOf, parseHostPort } from "../net/address.ts";
import { resolveSecurityOptions, securityArgs } from "../security/options.ts";
import { RelayService } from "../service/relay-service.ts";

/** Settings that only shape how the command stops on SIGTERM: an app calls stop() itself. */
const SIGNAL_SETTINGS = ["shutdownTimeoutSecs", "drainSecs"] as const;

/** Settings of the relay command that an embedded relay takes, by their RelayConfig names. */
type EmbeddedSettings = Omit<RelayConfig, (typeof SIGNAL_SETTINGS)[number] | "rebindQuietSecs">;

/**
 * What `startRelay` accepts: every key is optional and defaults as the command's flag does
 * (`quic-relay --help`, docs/operations.md). Environment variables and config files are not read.
 */
export interface RelayOptions extends Partial<EmbeddedSettings> {
  /** Rebind rule 3: seconds of silence, `"off"`, or `"auto"` (default). */
  rebindQuietSecs?: number | "auto" | "off";
  /** HMAC secrets for REG tokens (docs/security.md), 16 bytes or more each; the first mints. Off when empty. */
  authSecrets?: readonly string[];
  /** File with one secret per line, as `--auth-secret-file`. */
  authSecretFile?: string;
  /** Sessions held at once (default 100000). */
  maxSessions?: number;
  /** New sessions refused once a source IP has this many peers (default 1024; 0 = no limit). */
  maxSessionsPerHost?: number;
  /** REG per second per source IP or IPv6 /64 (default 200; 0 = no limit). */
  regRate?: number;
  /** REG burst per source (default 400). */
  regBurst?: number;
}

/** Counts for a quick look: sessions, the session table's stats, the data plane's counters. */
export type RelayStatus = ReturnType<RelayService["status"]>;

export interface RelayHandle {
  /** The UDP address the relay listens on, as bound (port 0 in the options gives the real port here). */
  readonly address: { host: string; port: number };
  /** Base URL of `/metrics`, `/healthz`, `/readyz` when `metricsListen` was given. */
  readonly metricsUrl: string | undefined;
  /** The settings in force, defaults filled in. */
  readonly config: Readonly<RelayConfig>;
  /** The Prometheus exposition text, as `/metrics` serves it (docs/operations.md lists the series). */
  metrics(): string;
  status(): RelayStatus;
  /** Stops receiving, saves the state file (if any), closes the metrics port. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const SOURCE = "startRelay() options";

/** Security keys, as the command's flags spell them, by option name. */
const SECURITY_KEYS = {
  authSecrets: "auth-secret",
  authSecretFile: "auth-secret-file",
  maxSessions: "max-sessions",
  maxSessionsPerHost: "max-sessions-per-host",
  regRate: "reg-rate",
  regBurst: "reg-burst",
} as const satisfies Record<string, keyof typeof securityArgs>;

/**
 * Starts a relay in this process and resolves once it is listening (saved sessions restored, the
 * metrics port open). Rejects with ConfigError for an option out of range or unknown, StartupError
 * when something cannot be bound or opened, DataPlaneUnavailableError for `dataplane: "native"`
 * without the addon.
 */
export async function startRelay(options: RelayOptions = {}): Promise<RelayHandle> {
  const { config, security } = resolveOptions(options);
  const service = new RelayService(config, { security });
  await service.start();
  const local = service.local!;
  const address = { host: hostOf(local.address), port: local.port };
  const metricsUrl = config.metricsListen === undefined ? undefined : metricsBase(config.metricsListen, service.metricsPort!);
  const stop = () => service.stop();
  return {
    address,
    metricsUrl,
    config,
    metrics: () => service.metricsText(),
    status: () => service.status(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The options as a config file would hold them (keys spelled like the flags), through the same
 * resolvers as the command, with no flags and no environment: one set of rules and messages
 * (`options.port must be an integer from 0 to 65535, got '70000'`).
 */
function resolveOptions(options: RelayOptions) {
  const flagOf = new Map<string, string>([
    ...(Object.entries(SETTINGS) as [string, { flag: string }][])
      .filter(([key]) => !(SIGNAL_SETTINGS as readonly string[]).includes(key))
      .map(([key, s]) => [key, s.flag] as [string, string]),
    ...Object.entries(SECURITY_KEYS),
  ]);
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const flag = flagOf.get(key);
    if (flag === undefined) throw new ConfigError(`startRelay(): unknown option '${key}'`, key);
    if (value === undefined) continue;
    if (key === "authSecrets") {
      if (!Array.isArray(value) || value.some((s) => typeof s !== "string"))
        throw new ConfigError("options.authSecrets must be an array of strings", key);
      if (value.length === 0) continue;
    }
    values[flag] = value;
  }
  const file = { path: SOURCE, values };
  try {
    const config = resolveRelayConfig({}, {}, file);
    const security = resolveSecurityOptions({}, {}, file);
    return { config: { ...config, shutdownTimeoutSecs: DEFAULTS.shutdownTimeoutSecs, drainSecs: DEFAULTS.drainSecs }, security };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Name the option as the app spells it: `options.sessionTimeoutSecs`, not the file key.
    for (const [key, flag] of flagOf) {
      for (const said of [`'${flag}' in ${SOURCE}`, `--${flag}`]) {
        if (error.message.startsWith(said) && !/^[\w-]/.test(error.message.slice(said.length))) {
          throw new ConfigError(error.message.replace(said, `options.${key}`), key);
        }
      }
    }
    throw error;
  }
}

function metricsBase(listen: string, port: number): string {
  const host = parseHostPort(listen)?.host || "0.0.0.0";
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}
