import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { ConfigError } from "../config/errors.ts";

/** A secret file the relay read: where it is, what named it, and its permission bits. */
export interface SecretFileInfo {
  path: string;
  /** What named the file, for messages: `--auth-secret-file`, `QUIC_RELAY_AUTH_SECRET_FILE`, `'auth-secret-file' in relay.toml`. */
  source: string;
  /** Permission bits (`mode & 0o777`) when the file was read. */
  mode: number;
}

export interface SecretFile extends SecretFileInfo {
  /** Its lines, trimmed, without empty lines and `#` comments; never empty. */
  lines: string[];
}

/**
 * Reads a file of secrets: one per line, blank lines and lines starting with `#` skipped. The
 * mode comes from the same open file as the text. Throws ConfigError blaming `source` (`flag` is
 * the flag it belongs to); messages never contain the file's text.
 */
export function readSecretFile(path: string | boolean, source: string, flag: string): SecretFile {
  if (typeof path !== "string" || path.trim() === "") throw new ConfigError(`${source} needs a path`, flag);
  const file = path.trim();
  let text: string;
  let mode: number;
  try {
    const fd = openSync(file, "r");
    try {
      mode = fstatSync(fd).mode & 0o777;
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new ConfigError(`${source} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, flag);
  }
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (lines.length === 0) throw new ConfigError(`${source} '${file}' holds no secret`, flag);
  return { path: file, source, mode, lines };
}

/** The file without its text, for options objects that outlive the read. */
export function secretFileInfo(file: SecretFile): SecretFileInfo {
  return { path: file.path, source: file.source, mode: file.mode };
}

/**
 * The one permission check for every secret file: a warning when group or others have any access
 * (`mode & 0o077`), else undefined. The relay still starts; the operator is told how to fix it.
 */
export function secretFileWarning(file: SecretFileInfo): string | undefined {
  if ((file.mode & 0o077) === 0) return undefined;
  return `secret file ${file.path} (${file.source}) is open to group or others, mode ${octalMode(file.mode)}; run chmod 600 ${file.path}`;
}

/** `0644` for 0o644. */
export function octalMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}
