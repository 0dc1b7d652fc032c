import { ConfigError } from "../config/errors.ts";
import type { RegPolicyOptions } from "./policy.ts";
import { readSecretFile, type SecretFileInfo, secretFileInfo } from "./secret-file.ts";

/** Shortest secret accepted: 16 bytes keeps HMAC keys out of guessing range. */
export const MIN_SECRET_BYTES = 16;
export const SECRET_ENV = "QUIC_RELAY_AUTH_SECRET";
const SECRET_FILE_ENV = `${SECRET_ENV}_FILE`;

export interface SecurityOptions extends RegPolicyOptions {
  /** Where the secrets came from, for the startup log line (never the secrets themselves). */
  secretSource: "none" | "flag" | "file" | "flag+file" | "env" | "config";
  /** The secret files read, for the permission check (`secretFileWarning`) at startup and reload. */
  secretFiles: SecretFileInfo[];
}

export const SECURITY_DEFAULTS = {
  maxSessions: 100_000,
  maxSessionsPerHost: 1024,
  regRate: 200,
  regBurst: 400,
} as const;

/** citty args for the relay command; spread into its `args`. */
export const securityArgs = {
  "auth-secret": {
    type: "string",
    description: `HMAC secret for REG tokens (repeat or comma-separate for rotation; prefer --auth-secret-file or ${SECRET_ENV})`,
  },
  "auth-secret-file": { type: "string", description: "File with one secret per line (# comments); the first mints" },
  "max-sessions": { type: "string", description: `Sessions held at once (default ${SECURITY_DEFAULTS.maxSessions})` },
  "max-sessions-per-host": {
    type: "string",
    description: `New sessions refused once a source IP has this many peers (default ${SECURITY_DEFAULTS.maxSessionsPerHost}; 0 = no limit)`,
  },
  "reg-rate": { type: "string", description: `REG per second per source IP or IPv6 /64 (default ${SECURITY_DEFAULTS.regRate}; 0 = no limit)` },
  "reg-burst": { type: "string", description: `REG burst per source (default ${SECURITY_DEFAULTS.regBurst})` },
} as const;

export interface RawSecurityFlags {
  authSecret?: string | string[] | boolean;
  authSecretFile?: string | boolean;
  maxSessions?: string | boolean;
  maxSessionsPerHost?: string | boolean;
  regRate?: string | boolean;
  regBurst?: string | boolean;
}

/**
 * Flags as citty parsed them. citty keeps only the last value of a repeated flag, so every
 * `--auth-secret` is collected from the raw arguments.
 */
export function securityFlags(args: Record<string, unknown>, rawArgs: readonly string[]): RawSecurityFlags {
  const repeated = repeatedFlag(rawArgs, "auth-secret");
  return {
    authSecret: repeated.length > 0 ? repeated : (args["auth-secret"] as string | undefined),
    authSecretFile: args["auth-secret-file"] as string | undefined,
    maxSessions: args["max-sessions"] as string | undefined,
    maxSessionsPerHost: args["max-sessions-per-host"] as string | undefined,
    regRate: args["reg-rate"] as string | undefined,
    regBurst: args["reg-burst"] as string | undefined,
  };
}

/** Every value given for `--name` (`--name v` or `--name=v`), in order. */
export function repeatedFlag(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    if (arg === `--${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
  }
  return values;
}

/** A config file's values keyed by flag name, as the lead's config loader reads them. */
export interface SecurityFile {
  path: string;
  values: Record<string, unknown>;
}

/** `QUIC_RELAY_MAX_SESSIONS` for `max-sessions` (the relay's naming for every flag). */
export function securityEnvName(flag: string): string {
  return `QUIC_RELAY_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * Validates flags, environment and config file into typed options; throws ConfigError naming
 * the flag (or variable). Each setting comes from the first source that sets it: flags, then
 * QUIC_RELAY_* variables, then the file, then defaults. Secrets: `--auth-secret` and
 * `--auth-secret-file` together; else QUIC_RELAY_AUTH_SECRET (comma-separated) and
 * QUIC_RELAY_AUTH_SECRET_FILE; else the file's `auth-secret` / `auth-secret-file`; else none.
 */
export function resolveSecurityOptions(
  flags: RawSecurityFlags,
  env: Record<string, string | undefined>,
  file?: SecurityFile,
): SecurityOptions {
  // The value for a flag and the name to blame when it is wrong.
  const pick = (flag: string, value: string | boolean | undefined): Source => {
    if (value !== undefined) return { value, label: `--${flag}` };
    const name = securityEnvName(flag);
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv.trim() !== "") return { value: fromEnv, label: name };
    const fromFile = file?.values[flag];
    if (fromFile === undefined) return { value: undefined, label: `--${flag}` };
    return { value: typeof fromFile === "boolean" ? fromFile : String(fromFile), label: `'${flag}' in ${file!.path}` };
  };
  const { secrets, secretSource, secretFiles } = resolveSecrets(flags, env, file);
  const regRate = number("reg-rate", pick("reg-rate", flags.regRate), SECURITY_DEFAULTS.regRate, 0, 1_000_000);
  const regBurst = number("reg-burst", pick("reg-burst", flags.regBurst), Math.max(SECURITY_DEFAULTS.regBurst, regRate), 1, 1_000_000);
  const perHost = integer("max-sessions-per-host", pick("max-sessions-per-host", flags.maxSessionsPerHost), SECURITY_DEFAULTS.maxSessionsPerHost, 0, 100_000_000);
  return {
    secrets,
    secretSource,
    secretFiles,
    maxSessions: integer("max-sessions", pick("max-sessions", flags.maxSessions), SECURITY_DEFAULTS.maxSessions, 1, 100_000_000),
    maxSessionsPerHost: perHost === 0 ? Number.POSITIVE_INFINITY : perHost,
    regRate,
    regBurst,
  };
}

function resolveSecrets(
  flags: RawSecurityFlags,
  env: Record<string, string | undefined>,
  file: SecurityFile | undefined,
): { secrets: Uint8Array[]; secretSource: SecurityOptions["secretSource"]; secretFiles: SecretFileInfo[] } {
  let texts: string[] = [];
  let secretSource: SecurityOptions["secretSource"] = "none";
  const secretFiles: SecretFileInfo[] = [];
  const read = (path: string | boolean, source: string): string[] => {
    const secretFile = readSecretFile(path, source, "auth-secret-file");
    for (const s of secretFile.lines) checkSecret("auth-secret-file", s);
    secretFiles.push(secretFileInfo(secretFile));
    return secretFile.lines;
  };
  const envSecret = env[SECRET_ENV]?.trim() ? env[SECRET_ENV]! : undefined;
  const envFile = env[SECRET_FILE_ENV]?.trim() ? env[SECRET_FILE_ENV]! : undefined;
  if (flags.authSecret !== undefined || flags.authSecretFile !== undefined) {
    const fromFlags = flags.authSecret === undefined ? [] : splitSecrets("auth-secret", ([] as (string | boolean)[]).concat(flags.authSecret));
    const fromSecretFile = flags.authSecretFile === undefined ? [] : read(flags.authSecretFile, "--auth-secret-file");
    texts = [...fromFlags, ...fromSecretFile];
    secretSource = fromFlags.length > 0 && fromSecretFile.length > 0 ? "flag+file" : fromFlags.length > 0 ? "flag" : "file";
  } else if (envSecret !== undefined || envFile !== undefined) {
    texts = [...(envSecret === undefined ? [] : splitSecrets(SECRET_ENV, [envSecret])), ...(envFile === undefined ? [] : read(envFile, SECRET_FILE_ENV))];
    secretSource = "env";
  } else if (file && (file.values["auth-secret"] !== undefined || file.values["auth-secret-file"] !== undefined)) {
    const inline = file.values["auth-secret"];
    const values = inline === undefined ? [] : ([] as unknown[]).concat(inline).map((v) => (typeof v === "string" ? v : true));
    const path = file.values["auth-secret-file"];
    texts = [
      ...(values.length ? splitSecrets("auth-secret", values) : []),
      ...(path === undefined ? [] : read(typeof path === "string" ? path : true, `'auth-secret-file' in ${file.path}`)),
    ];
    secretSource = "config";
  }
  return { secrets: dedupe(texts).map((t) => new TextEncoder().encode(t)), secretSource, secretFiles };
}

function splitSecrets(flag: string, values: (string | boolean)[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    if (typeof value !== "string") throw new ConfigError(`--${flag} needs a value`, flag);
    for (const part of value.split(",")) {
      const secret = part.trim();
      if (secret === "") continue;
      checkSecret(flag, secret);
      out.push(secret);
    }
  }
  if (out.length === 0) throw new ConfigError(`${flag === SECRET_ENV ? SECRET_ENV : `--${flag}`} has no secret in it`, flag);
  return out;
}

function checkSecret(flag: string, secret: string): void {
  // The message never echoes the secret.
  if (new TextEncoder().encode(secret).length < MIN_SECRET_BYTES)
    throw new ConfigError(`${flag === SECRET_ENV ? SECRET_ENV : `--${flag}`}: a secret is shorter than ${MIN_SECRET_BYTES} bytes`, flag);
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}

function text(flag: string, from: Source): string {
  if (typeof from.value !== "string" || from.value.trim() === "") throw new ConfigError(`${from.label} needs a value`, flag);
  return from.value.trim();
}

interface Source {
  value: string | boolean | undefined;
  label: string;
}

function integer(flag: string, from: Source, fallback: number, min: number, max: number): number {
  if (from.value === undefined) return fallback;
  const t = text(flag, from);
  if (!/^[0-9]+$/.test(t) || Number(t) < min || Number(t) > max)
    throw new ConfigError(`${from.label} must be an integer from ${min} to ${max}, got '${t}'`, flag);
  return Number(t);
}

function number(flag: string, from: Source, fallback: number, min: number, max: number): number {
  if (from.value === undefined) return fallback;
  const t = text(flag, from);
  const n = Number(t);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(t) || n < min || n > max)
    throw new ConfigError(`${from.label} must be a number from ${min} to ${max}, got '${t}'`, flag);
  return n;
}
