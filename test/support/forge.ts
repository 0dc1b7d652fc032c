/**
 * Forged source addresses, as an attacker on a network without source filtering sends them:
 * IPv4/UDP datagrams written to a raw socket (IPPROTO_RAW, header included) with any source
 * address and port. Root only; `Forger.open()` says why when it cannot. Used by the security
 * suites and by bench/flood.ts.
 */
import type { Endpoint } from "../../src/net/address.ts";

type SendTo = (fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrlen: number) => number | bigint;

export class Forger {
  private readonly packet = new Uint8Array(28 + 65_507);
  private readonly view = new DataView(this.packet.buffer);
  private readonly sockaddr = new Uint8Array(16);
  sent = 0;

  private constructor(
    private readonly fd: number,
    private readonly sendto: SendTo,
    private readonly closeFd: (fd: number) => number,
  ) {}

  /** A forger, or the one-line reason there is none (not root, no raw sockets). */
  static open(): Forger | string {
    if (process.getuid?.() !== 0) return "forging source addresses needs root (raw sockets)";
    try {
      const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
      const libc = dlopen("libc.so.6", {
        socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
        close: { args: [FFIType.i32], returns: FFIType.i32 },
      });
      const fd = libc.symbols.socket(2 /* AF_INET */, 3 /* SOCK_RAW */, 255 /* IPPROTO_RAW */);
      if (fd < 0) return "cannot open a raw socket";
      return new Forger(fd, libc.symbols.sendto as SendTo, libc.symbols.close as (fd: number) => number);
    } catch (error) {
      return `raw sockets unavailable: ${(error as Error).message}`;
    }
  }

  /** Sends `data` to `to` as if from `from` (IPv4 addresses, `::ffff:` forms accepted). */
  send(data: Uint8Array | string, from: Endpoint, to: Endpoint): void {
    const payload = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const v = this.view;
    v.setUint16(20, from.port);
    v.setUint16(22, to.port);
    v.setUint16(24, 8 + payload.length);
    v.setUint16(26, 0); // no UDP checksum (allowed on IPv4)
    this.packet.set(payload, 28);
    this.sendIp(17 /* UDP */, from.address, to, 8 + payload.length);
  }

  /**
   * An ICMP "fragmentation needed" from `router` to `to`, about a datagram `about.from` sent to
   * `about.to`: it claims the path to `about.to` takes only `mtu` bytes. The kernel that owns
   * `about.from` believes it (the quoted headers are all it checks) and keeps that path MTU for
   * minutes, for every socket that sends there and uses the kernel's path MTU.
   */
  sendFragmentationNeeded(router: string, to: Endpoint, about: { from: Endpoint; to: Endpoint; length: number }, mtu: number): void {
    const icmp = new Uint8Array(8 + 28);
    const iv = new DataView(icmp.buffer);
    icmp[0] = 3; // destination unreachable
    icmp[1] = 4; // fragmentation needed and DF set
    iv.setUint16(6, mtu);
    // The quoted datagram: its IPv4 header (DF set) and the first 8 bytes, its UDP header.
    icmp[8] = 0x45;
    iv.setUint16(10, 28 + about.length);
    iv.setUint16(14, 0x4000);
    icmp[16] = 64;
    icmp[17] = 17;
    icmp.set(ipv4(about.from.address), 20);
    icmp.set(ipv4(about.to.address), 24);
    iv.setUint16(28, about.from.port);
    iv.setUint16(30, about.to.port);
    iv.setUint16(32, 8 + about.length);
    iv.setUint16(2, internetChecksum(icmp));
    this.packet.set(icmp, 20);
    this.sendIp(1 /* ICMP */, router, to, icmp.length);
  }

  /** Puts an IPv4 header before the `bodyLength` bytes at packet[20..] and sends the packet to `to`. */
  private sendIp(protocol: number, from: string, to: Endpoint, bodyLength: number): void {
    const p = this.packet;
    const v = this.view;
    const length = 20 + bodyLength;
    p[0] = 0x45; // IPv4, 20-byte header; the kernel fills in the id and the header checksum
    p[1] = 0;
    v.setUint16(2, length);
    v.setUint32(4, 0);
    p[8] = 64;
    p[9] = protocol;
    v.setUint16(10, 0);
    p.set(ipv4(from), 12);
    p.set(ipv4(to.address), 16);
    this.sockaddr.fill(0);
    this.sockaddr[0] = 2;
    new DataView(this.sockaddr.buffer).setUint16(2, to.port);
    this.sockaddr.set(ipv4(to.address), 4);
    this.sendto(this.fd, p, length, 0, this.sockaddr, 16);
    this.sent++;
  }

  close(): void {
    this.closeFd(this.fd);
  }
}

function ipv4(address: string): number[] {
  const text = address.startsWith("::ffff:") ? address.slice(7) : address;
  const parts = text.split(".").map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) throw new RangeError(`not an IPv4 address: ${address}`);
  return parts;
}

/** The ones' complement of the ones' complement sum of 16-bit words (RFC 1071). */
function internetChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
