import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { ClientConfigError } from "./errors.ts";

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parse `host:port` or `[v6]:port` (a bare IPv6 address is ambiguous and refused). Port 0 only
 * with `allowPortZero` (a local bind address). Throws ClientConfigError naming the flag.
 */
export function parseHostPort(text: string, flag: string, allowPortZero = false): HostPort {
  const value = text.trim();
  let host: string;
  let portText: string;
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0 || value[close + 1] !== ":") throw bad(flag, value);
    host = value.slice(1, close);
    portText = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(":");
    if (colon <= 0 || value.indexOf(":") !== colon) throw bad(flag, value);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) throw bad(flag, value);
  const port = Number(portText);
  if (port < (allowPortZero ? 0 : 1) || port > 65535 || host === "") throw bad(flag, value);
  return { host, port };
}

function bad(flag: string, value: string): ClientConfigError {
  return new ClientConfigError(`--${flag} must be host:port or [ipv6]:port with a port 1-65535, got '${value}'`, flag);
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

/** Compare a socket-reported address with a configured IP (IPv4-mapped forms compare equal). */
export function sameHost(reported: string, expected: string): boolean {
  const strip = (a: string) => (a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a.toLowerCase());
  return strip(reported) === strip(expected);
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
