import type { Server } from "bun";
import { parseHostPort } from "../net/address.ts";
import { StartupError } from "../service/errors.ts";
import { EXPOSITION_CONTENT_TYPE } from "./exposition.ts";

export interface HealthSource {
  /** Process alive and the relay socket open. */
  healthy(): boolean;
  /** Started, state restored, not draining nor shutting down: worth sending peers to. */
  ready(): boolean;
  /** One word for the body of a 503 from /readyz (`draining`, `stopping`); `unavailable` without it. */
  phase?(): string;
  /** The exposition text. */
  metrics(): string;
}

export interface MetricsServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * The HTTP side port: `/metrics` (Prometheus text), `/healthz` and `/readyz` (200 or 503 with a
 * one-word body: `ok`, or why not). Anything else is 404. Off unless `--metrics-listen` is set.
 * Answers come from the event loop: whatever runs long in the process (a state save) must yield to
 * it, which the state persister does.
 */
export function startMetricsServer(listen: string, source: HealthSource): MetricsServer {
  const parsed = parseHostPort(listen);
  if (!parsed) throw new StartupError(`--metrics-listen: cannot parse '${listen}'`);
  let server: Server<undefined>;
  try {
    server = Bun.serve({
      hostname: parsed.host === "" ? "0.0.0.0" : parsed.host,
      port: parsed.port,
      fetch(request) {
        const path = new URL(request.url).pathname;
        if (request.method !== "GET" && request.method !== "HEAD") return new Response("method not allowed\n", { status: 405 });
        switch (path) {
          case "/metrics":
            return new Response(source.metrics(), { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
          case "/healthz":
            return status(source.healthy());
          case "/readyz":
            return source.ready() ? status(true) : status(false, source.phase?.());
          default:
            return new Response("not found\n", { status: 404 });
        }
      },
      error() {
        return new Response("internal error\n", { status: 500 });
      },
    });
  } catch (error) {
    throw new StartupError(`cannot listen for metrics on ${listen}: ${(error as Error).message}`);
  }
  const port = server.port ?? parsed.port;
  const host = parsed.host.includes(":") ? `[${parsed.host}]` : parsed.host || "0.0.0.0";
  return {
    url: `http://${host}:${port}`,
    port,
    async stop() {
      await server.stop(true);
    },
  };
}

function status(ok: boolean, why = "unavailable"): Response {
  return new Response(ok ? "ok\n" : `${why}\n`, { status: ok ? 200 : 503, headers: { "content-type": "text/plain" } });
}
