import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { type HostPort, parseHostPort } from "../net/address.ts";
import { ClientConfigError } from "./errors.ts";

/**
 * Parse a `--flag` value as `host:port` or `[v6]:port` (a bare IPv6 address is ambiguous and
 * refused). Port 0 only with `allowPortZero` (a local bind address). Throws ClientConfigError.
 */
export function parseHostPortFlag(text: string, flag: string, allowPortZero = false): HostPort {
  const hp = parseHostPort(text);
  if (!hp || hp.host === "" || hp.port < (allowPortZero ? 0 : 1)) throw bad(flag, text.trim());
  return hp;
}

function bad(flag: string, value: string): ClientConfigError {
  return new ClientConfigError(`--${flag} must be host:port or [ipv6]:port with a port 1-65535, got '${value}'`, flag);
}

/** A `--flag` value that lists one or more `host:port` separated by commas. Throws ClientConfigError. */
export function parseHostPortListFlag(text: string, flag: string): HostPort[] {
  return text.split(",").map((part) => parseHostPortFlag(part, flag));
}

/** Resolve a hostname to one IP address (IPs pass through). */
export async function resolveHostPort(hp: HostPort, flag: string): Promise<HostPort> {
  if (isIP(hp.host)) return hp;
  try {
    const found = await lookup(hp.host);
    return { host: found.address, port: hp.port };
  } catch (cause) {
    throw new ClientConfigError(`--${flag}: cannot resolve '${hp.host}': ${(cause as Error).message}`, flag);
  }
}

/** Wildcard bind address of the same family as `host`. */
export function wildcardFor(host: string): string {
  return isIP(host) === 6 ? "::" : "0.0.0.0";
}
