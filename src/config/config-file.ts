import { readFileSync } from "node:fs";
import { type FileValues, SETTINGS } from "./config.ts";
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
  if (known.has(kebab)) return kebab;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = distance(kebab, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function distance(a: string, b: string): number {
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

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n")[0]!;
}
