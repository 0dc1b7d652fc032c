import { ClientConfigError } from "./errors.ts";

const LEVELS: Record<string, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

/** consola level for a `--log-level` value. */
export function clientLogLevel(value: string): number {
  const level = LEVELS[value.toLowerCase()];
  if (level === undefined) throw new ClientConfigError(`--log-level must be one of ${Object.keys(LEVELS).join("|")}`, "log-level");
  return level;
}

export function positiveNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new ClientConfigError(`--${flag} must be a positive number, got '${value}'`, flag);
  return n;
}

export function nonNegativeInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ClientConfigError(`--${flag} must be a non-negative integer, got '${value}'`, flag);
  return n;
}
