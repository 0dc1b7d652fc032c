import { readFileSync } from "node:fs";
import { repeatedFlag } from "../security/options.ts";
import { envName, type FileValues, LOG_FORMATS, nearestName, SETTINGS } from "./config.ts";
import { ConfigError } from "./errors.ts";

/** Keys a config file may hold: every relay flag except `--config` itself, same spelling. */
export const RELAY_FILE_KEYS: readonly string[] = Object.values(SETTINGS).map((s) => s.flag);

export interface LoadedConfigFile {
  path: string;
  values: FileValues;
}

/**
 * Reads an optional TOML config file whose keys are the relay's flag names (`port = 4433`,
 * `session-timeout-secs = 300`, `metrics-listen = "127.0.0.1:9464"`). Unknown keys are errors, so
 * a typo does not silently fall back to a default. `extraKeys` admits flags defined elsewhere
 * (security options).
 */
export function loadConfigFile(path: string, extraKeys: readonly string[] = []): LoadedConfigFile {
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, "config");
  }
  let parsed: unknown;
  try {
    parsed = Bun.TOML.parse(source);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid TOML: ${firstLine(error)}`, "config");
  }
  const values = parsed as FileValues;
  const known = new Set([...RELAY_FILE_KEYS, ...extraKeys]);
  for (const [key, value] of Object.entries(values)) {
    if (!known.has(key)) {
      const hint = suggestion(key, known);
      throw new ConfigError(`unknown key '${key}' in ${path}${hint ? ` (did you mean '${hint}'?)` : ""}`, "config");
    }
    if (typeof value === "object" && value !== null) {
      throw new ConfigError(`'${key}' in ${path} must be a plain value, not a table or array`, "config");
    }
  }
  return { path, values };
}

/** The config file path: `--config`, else QUIC_RELAY_CONFIG, else none. */
export function configPath(flag: string | boolean | undefined, env: Record<string, string | undefined>): string | undefined {
  if (typeof flag === "string" && flag.trim() !== "") return flag.trim();
  if (flag !== undefined) throw new ConfigError("--config needs a file path", "config");
  return env.QUIC_RELAY_CONFIG?.trim() || undefined;
}

/** A known key a few edits away from `key` (snake_case for kebab-case, small typos). */
function suggestion(key: string, known: Set<string>): string | undefined {
  const kebab = key.replaceAll("_", "-").toLowerCase();
  return known.has(kebab) ? kebab : nearestName(kebab, known);
}

/**
 * The log format that flags, QUIC_RELAY_LOG_FORMAT or the config file ask for (first that sets it,
 * as for every setting), found without validating anything else: so a fatal error can be written
 * in that format even when the configuration is what failed. Anything unreadable counts as pretty.
 */
export function declaredLogFormat(rawArgs: readonly string[], env: Record<string, string | undefined>): (typeof LOG_FORMATS)[number] {
  const format = (value: unknown) => (value === "json" ? "json" : "pretty");
  const flag = repeatedFlag(rawArgs, "log-format");
  if (flag.length > 0) return format(flag.at(-1));
  const fromEnv = env[envName("log-format")];
  if (fromEnv) return format(fromEnv);
  try {
    const path = configPath(repeatedFlag(rawArgs, "config").at(-1), env);
    return path === undefined ? "pretty" : format((Bun.TOML.parse(readFileSync(path, "utf8")) as FileValues)["log-format"]);
  } catch {
    return "pretty";
  }
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n")[0]!;
}
