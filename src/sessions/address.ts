import type { Endpoint } from "../dataplane/types.ts";

/** Host part used to compare peers: IPv4-mapped IPv6 addresses compare equal to their IPv4 form. */
export function hostOf(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address.toLowerCase();
}

/** Map key of one transport address. */
export function endpointKey(address: string, port: number): string {
  return `${address}|${port}`;
}

export function formatEndpoint(e: Endpoint): string {
  const host = hostOf(e.address);
  return host.includes(":") ? `[${host}]:${e.port}` : `${host}:${e.port}`;
}
