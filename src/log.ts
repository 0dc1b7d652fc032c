import { createConsola, type ConsolaInstance, type LogObject } from "consola";
import type { LogLevel } from "./config/config.ts";

const CONSOLA_LEVEL: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

export type Logger = ConsolaInstance;

/** Logs go to stderr, one line each; `json` writes one JSON object per line. */
export function createLogger(level: LogLevel, format: "pretty" | "json" = "pretty"): Logger {
  const reporters =
    format === "json"
      ? [
          {
            log(entry: LogObject) {
              const [message, ...rest] = entry.args;
              process.stderr.write(jsonLogLine(entry.type, String(message), Object.assign({}, ...rest.filter(isRecord)), entry.date) + "\n");
            },
          },
        ]
      : [
          {
            log(entry: LogObject) {
              const text = entry.args.map((a) => (isRecord(a) ? formatFields(a) : String(a))).join(" ");
              process.stderr.write(`${entry.date.toISOString()} ${entry.type.toUpperCase().padEnd(5)} ${text}\n`);
            },
          },
        ];
  return createConsola({ level: CONSOLA_LEVEL[level], reporters });
}

export function levelEnabled(logger: Logger, level: LogLevel): boolean {
  return logger.level >= CONSOLA_LEVEL[level];
}

/** A line of the json format, without the newline: `time`, `level`, `msg`, then the line's fields. */
export function jsonLogLine(level: string, message: string, fields: Record<string, unknown> = {}, date = new Date()): string {
  return JSON.stringify({ time: date.toISOString(), level, msg: message, ...fields });
}

/** Colour for a stream: only a terminal, and neither NO_COLOR (set, not empty: no-color.org) nor TERM=dumb. */
export function colorEnabled(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && !env.NO_COLOR && env.TERM !== "dumb";
}

export interface FatalError {
  message: string;
  exitCode: number;
  /** Where to look next, e.g. `run 'quic-relay --help' for usage`; for mistakes in how the relay was started. */
  hint?: string;
  /** For an unexpected exception: written as a field in the json format only. */
  stack?: string;
}

/**
 * The text that reports a fatal error before the process exits (newline included). In the json
 * format, one line like every log line, at level error, with `exit_code` and `hint` as fields, so
 * a log pipeline parses it too. Otherwise `quic-relay: <message>`, and the hint on a second line.
 */
export function formatFatal(error: FatalError, format: "pretty" | "json", color: boolean): string {
  if (format === "json") {
    return jsonLogLine("error", error.message, { exit_code: error.exitCode, ...(error.hint ? { hint: error.hint } : {}), ...(error.stack ? { stack: error.stack } : {}) }) + "\n";
  }
  const paint = (code: string, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  return `${paint("1;31", "quic-relay:")} ${error.message}\n${error.hint ? `${paint("2", error.hint)}\n` : ""}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Error);
}

function formatFields(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/** Lets at most `perSecond` lines through per second and reports how many it held back. */
export class LogRateLimit {
  private windowStart = 0;
  private used = 0;
  suppressed = 0;
  constructor(private readonly perSecond: number) {}

  /** True if this line may be logged; `flushed` gets the count suppressed in the previous window. */
  allow(now: number, flushed: (suppressed: number) => void): boolean {
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) flushed(this.suppressed);
      this.windowStart = now;
      this.used = 0;
      this.suppressed = 0;
    }
    if (this.used < this.perSecond) {
      this.used++;
      return true;
    }
    this.suppressed++;
    return false;
  }
}
