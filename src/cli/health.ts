import { defineCommand } from "citty";
import { parseHostPort } from "../net/address.ts";

/** The metrics address the relay reads from its environment (docs/operations.md: `QUIC_RELAY_<FLAG>`). */
const METRICS_ENV = "QUIC_RELAY_METRICS_LISTEN";
const FALLBACK_URL = "http://127.0.0.1:9464/healthz";

/**
 * `quic-relay health`: asks a relay's `/healthz` (or any URL given) over HTTP and exits 0 on a
 * 200, 1 on anything else, with one line either way. For container health checks, where the image
 * has no curl: the Dockerfile's HEALTHCHECK runs it.
 */
export const healthCommand = defineCommand({
  meta: {
    name: "health",
    description: `Check a relay's health endpoint: exit 0 when it answers 200, 1 otherwise, one line (default URL: /healthz on ${METRICS_ENV}, else ${FALLBACK_URL})`,
  },
  args: {
    url: { type: "string", description: `URL to ask, e.g. http://127.0.0.1:9464/readyz (default: /healthz on ${METRICS_ENV}, else ${FALLBACK_URL})`, valueHint: "url" },
    "timeout-ms": { type: "string", default: "2000", description: "Give up after this long (connect and answer)" },
  },
  async run({ args }) {
    const timeout = Number(args["timeout-ms"]);
    if (!/^[0-9]+$/.test(String(args["timeout-ms"]).trim()) || timeout < 1 || timeout > 600_000) {
      return usageError(`--timeout-ms must be an integer from 1 to 600000, got '${args["timeout-ms"]}'`);
    }
    let url: string;
    try {
      url = args.url !== undefined ? checkedUrl(String(args.url)) : defaultUrl(process.env[METRICS_ENV]);
    } catch (error) {
      return usageError((error as Error).message);
    }
    const result = await check(url, timeout);
    if (result.ok) process.stdout.write(`healthy: ${url} answered ${result.detail}\n`);
    else process.stderr.write(`unhealthy: ${url} ${result.detail}\n`);
    process.exit(result.ok ? 0 : 1);
  },
});

/** /healthz on the relay's metrics address from the environment; a wildcard address is asked on loopback. */
export function defaultUrl(metricsListen: string | undefined): string {
  if (metricsListen === undefined || metricsListen.trim() === "") return FALLBACK_URL;
  const hp = parseHostPort(metricsListen);
  if (!hp) throw new Error(`${METRICS_ENV} must be host:port (e.g. 127.0.0.1:9464), got '${metricsListen}'; or give --url`);
  const host = hp.host === "" || hp.host === "0.0.0.0" ? "127.0.0.1" : /^[0:]+$/.test(hp.host) ? "::1" : hp.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${hp.port}/healthz`;
}

function checkedUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`--url must be an http:// URL, got '${text}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`--url must be an http:// URL, got '${text}'`);
  return text;
}

async function check(url: string, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    const body = (await response.text()).trim().split("\n")[0]!.slice(0, 80);
    const detail = `${response.status}${body ? ` ${body}` : ""}`;
    return { ok: response.status === 200, detail: response.status === 200 ? detail : `answered ${detail}` };
  } catch (error) {
    const e = error as Error & { code?: string };
    if (e.name === "TimeoutError" || e.name === "AbortError") return { ok: false, detail: `did not answer within ${timeoutMs} ms` };
    return { ok: false, detail: `cannot be reached: ${e.code ?? e.message}` };
  }
}

function usageError(message: string): never {
  process.stderr.write(`quic-relay health: ${message}\n`);
  process.exit(2);
}
