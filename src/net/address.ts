/**
 * Transport addresses: the one place that parses, formats and groups them. Pure; no I/O.
 * An address is kept in the form the socket reports it (IPv4 peers of a dual-stack socket look
 * like `::ffff:1.2.3.4`); comparisons go through hostOf, which folds that form to plain IPv4.
 */

export interface Endpoint {
  /** Address in the form the socket reports it. */
  address: string;
  port: number;
}

export interface HostPort {
  host: string;
  port: number;
}

/** How a dual-stack socket writes an IPv4 peer's address: this prefix, then the dotted address. */
export const V4_MAPPED_PREFIX = "::ffff:";

/** Host part used to compare peers: IPv4-mapped IPv6 addresses compare equal to their IPv4 form. */
export function hostOf(address: string): string {
  return address.startsWith(V4_MAPPED_PREFIX) && address.includes(".") ? address.slice(V4_MAPPED_PREFIX.length) : address.toLowerCase();
}

/** Whether a socket-reported address and a configured one name the same host. */
export function sameHost(a: string, b: string): boolean {
  return hostOf(a) === hostOf(b);
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && sameHost(a.address, b.address);
}

/** Map key of one transport address. */
export function endpointKey(address: string, port: number): string {
  return `${address}|${port}`;
}

/** `1.2.3.4:5` or `[::1]:5`. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** An endpoint as people read it: IPv4-mapped addresses shown as IPv4. */
export function formatEndpoint(e: Endpoint): string {
  return formatHostPort({ host: hostOf(e.address), port: e.port });
}

/**
 * Parses `host:port` or `[v6]:port`; the host may be empty ("all addresses"). A bare IPv6
 * address without brackets is ambiguous and refused. Undefined when malformed.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65_535) return undefined;
  return { host: m[1] ?? m[2] ?? "", port };
}

/**
 * What one source host is for limits: the IPv4 address, or the /64 prefix of an IPv6 address
 * (a subscriber or site usually holds a whole /64 and could rotate through it freely).
 */
export function sourceGroup(address: string): string {
  const host = hostOf(address);
  if (!host.includes(":")) return host;
  return ipv6Prefix64(host) ?? host;
}

/** First four groups of an IPv6 address, expanded (`2001:db8::1` -> `2001:db8:0:0`). */
export function ipv6Prefix64(address: string): string | undefined {
  const bytes = ipBytes(address);
  if (!bytes || bytes.length !== 16) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}

/**
 * The address as network-order bytes: 4 for IPv4 (IPv4-mapped IPv6 folded to IPv4), 16 for IPv6.
 * Undefined when it is not an IP address.
 */
export function ipBytes(address: string): Uint8Array | undefined {
  const host = hostOf(address);
  if (!host.includes(":")) return ipv4Bytes(host);
  const zone = host.indexOf("%");
  const text = zone >= 0 ? host.slice(0, zone) : host;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  // An embedded IPv4 tail (`::ffff:1.2.3.4` after folding failed, `64:ff9b::1.2.3.4`) is two groups.
  const last = tail.length > 0 ? tail : head;
  let v4: Uint8Array | undefined;
  if (last.length > 0 && last[last.length - 1]!.includes(".")) {
    v4 = ipv4Bytes(last.pop()!);
    if (!v4) return undefined;
  }
  const groups = head.length + tail.length + (v4 ? 2 : 0);
  const missing = 8 - groups;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const out = new Uint8Array(16);
  const words = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  for (let i = 0; i < words.length; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(words[i]!)) return undefined;
    const word = parseInt(words[i]!, 16);
    out[2 * i] = word >> 8;
    out[2 * i + 1] = word & 0xff;
  }
  if (v4) out.set(v4, 12);
  return out;
}

function ipv4Bytes(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return Uint8Array.from(parts.map(Number));
}

/** Text form of 4 or 16 address bytes (IPv6 compressed as usual: longest zero run as `::`). */
export function ipFromBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [bestAt, bestLength] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLength).join(":")}`;
}
