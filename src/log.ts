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
              const line = { time: entry.date.toISOString(), level: entry.type, msg: String(message), ...Object.assign({}, ...rest.filter(isRecord)) };
              process.stderr.write(JSON.stringify(line) + "\n");
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
