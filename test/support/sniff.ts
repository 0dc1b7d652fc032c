/**
 * Captures UDP datagrams on the loopback interface, as an attacker on the path between two relays
 * would: an AF_PACKET socket (root only) read without blocking. `Sniffer.open()` says why when it
 * cannot. Used to replay real relay-to-relay frames in the fleet trust suite.
 */
import type { Endpoint } from "../../src/net/address.ts";

type Recv = (fd: number, buf: Uint8Array, len: number, flags: number) => number | bigint;

const AF_PACKET = 17;
const SOCK_DGRAM = 2;
/** htons(ETH_P_ALL) */
const ETH_P_ALL_BE = 0x0300;
const MSG_DONTWAIT = 0x40;

export interface Captured {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
  /** The IPv4 header's Don't Fragment bit. (Fragments are not captured: drain skips them.) */
  dontFragment: boolean;
}

export class Sniffer {
  private readonly buffer = new Uint8Array(65_536);

  private constructor(
    private readonly fd: number,
    private readonly recv: Recv,
    private readonly closeFd: (fd: number) => number,
  ) {}

  static open(): Sniffer | string {
    if (process.getuid?.() !== 0) return "capturing packets needs root (AF_PACKET sockets)";
    try {
      const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
      const libc = dlopen("libc.so.6", {
        socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
        close: { args: [FFIType.i32], returns: FFIType.i32 },
      });
      const fd = libc.symbols.socket(AF_PACKET, SOCK_DGRAM, ETH_P_ALL_BE);
      if (fd < 0) return "cannot open an AF_PACKET socket";
      return new Sniffer(fd, libc.symbols.recv as Recv, libc.symbols.close as (fd: number) => number);
    } catch (error) {
      return `packet capture unavailable: ${(error as Error).message}`;
    }
  }

  /** IPv4/UDP datagrams captured since the last call (on every interface; filter by address). */
  drain(): Captured[] {
    const out: Captured[] = [];
    for (;;) {
      const n = Number(this.recv(this.fd, this.buffer, this.buffer.length, MSG_DONTWAIT));
      if (n <= 0) return out;
      const p = this.buffer;
      if (n < 28 || p[0]! >> 4 !== 4 || p[9] !== 17) continue;
      // A fragment (more to come, or an offset) is no whole datagram.
      if ((p[6]! & 0x20) !== 0 || ((p[6]! & 0x1f) | p[7]!) !== 0) continue;
      const ihl = (p[0]! & 0x0f) * 4;
      const view = new DataView(p.buffer, 0, n);
      const udpLength = view.getUint16(ihl + 4);
      if (ihl + udpLength > n || udpLength < 8) continue;
      out.push({
        from: { address: `${p[12]}.${p[13]}.${p[14]}.${p[15]}`, port: view.getUint16(ihl) },
        to: { address: `${p[16]}.${p[17]}.${p[18]}.${p[19]}`, port: view.getUint16(ihl + 2) },
        data: p.slice(ihl + 8, ihl + udpLength),
        dontFragment: (p[6]! & 0x40) !== 0,
      });
    }
  }

  close(): void {
    this.closeFd(this.fd);
  }
}
