import type { udp } from "bun";

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;

type SetSockOpt = (fd: number, level: number, name: number, value: Uint8Array, length: number) => number;
type GetSockOpt = (fd: number, level: number, name: number, value: Uint8Array, length: Uint8Array) => number;
interface SockOpts {
  setsockopt: SetSockOpt;
  getsockopt: GetSockOpt;
}
let sockopts: SockOpts | null | undefined;

function loadSockOpts(): SockOpts | null {
  if (sockopts !== undefined) return sockopts;
  sockopts = null;
  if (process.platform !== "linux") return null;
  try {
    const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    const libc = dlopen("libc.so.6", {
      setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    });
    sockopts = {
      setsockopt: (fd, level, name, value, length) => libc.symbols.setsockopt(fd, level, name, value, length),
      getsockopt: (fd, level, name, value, length) => libc.symbols.getsockopt(fd, level, name, value, length),
    };
  } catch {
    sockopts = null;
  }
  return sockopts;
}

function loadSetSockOpt(): SetSockOpt | null {
  return loadSockOpts()?.setsockopt ?? null;
}

/**
 * Enlarge the kernel's receive and send buffers of a Bun UDP socket (the default ~212 KB drops
 * bursts at ~150 kpps). Tries the FORCE variants first (root may exceed net.core.rmem_max).
 * Best effort: returns false when it could not apply them. True does not mean granted in full:
 * without CAP_NET_ADMIN the kernel caps the request silently; readSocketBuffers tells.
 */
export function setSocketBuffers(socket: udp.Socket<"buffer">, bytes: number): boolean {
  const fd = (socket as unknown as { fd?: number }).fd;
  const call = loadSetSockOpt();
  if (!call || typeof fd !== "number" || fd < 0 || bytes <= 0) return false;
  const value = new Uint8Array(new Int32Array([bytes]).buffer);
  let ok = true;
  for (const [force, plain] of [
    [SO_RCVBUFFORCE, SO_RCVBUF],
    [SO_SNDBUFFORCE, SO_SNDBUF],
  ] as const) {
    if (call(fd, SOL_SOCKET, force, value, 4) !== 0 && call(fd, SOL_SOCKET, plain, value, 4) !== 0) ok = false;
  }
  return ok;
}

/** Receive and send buffer sizes of a socket, in the units of `--socket-buffer-bytes` (see usableBufferBytes). */
export interface GrantedBuffers {
  receive: number;
  send: number;
}

/**
 * What getsockopt(SO_RCVBUF / SO_SNDBUF) reports, turned into the figure the relay asked in. Linux
 * doubles every setsockopt request (the other half is for the kernel's bookkeeping) and reports the
 * doubled value, also for its default (net.core.rmem_default is the doubled figure already): half of
 * it is the usable size, comparable with `--socket-buffer-bytes`. Both planes report through this.
 */
export function usableBufferBytes(reported: number): number {
  return process.platform === "linux" ? Math.floor(reported / 2) : reported;
}

/**
 * The buffers the kernel granted a Bun UDP socket (usable figures, see usableBufferBytes), or
 * undefined when they cannot be read (no FFI, not Linux, no descriptor).
 */
export function readSocketBuffers(socket: udp.Socket<"buffer">): GrantedBuffers | undefined {
  const fd = (socket as unknown as { fd?: number }).fd;
  const opts = loadSockOpts();
  if (!opts || typeof fd !== "number" || fd < 0) return undefined;
  const read = (name: number): number | undefined => {
    const value = new Int32Array(1);
    const length = new Uint32Array([4]);
    const rc = opts.getsockopt(fd, SOL_SOCKET, name, new Uint8Array(value.buffer), new Uint8Array(length.buffer));
    return rc === 0 && length[0] === 4 ? value[0]! : undefined;
  };
  const receive = read(SO_RCVBUF);
  const send = read(SO_SNDBUF);
  if (receive === undefined || send === undefined) return undefined;
  return { receive: usableBufferBytes(receive), send: usableBufferBytes(send) };
}

const IPPROTO_IP = 0;
const IP_RECVERR = 11;
const IPPROTO_IPV6 = 41;
const IPV6_RECVERR = 25;

/**
 * Bun turns IP_RECVERR on for its UDP sockets. Then every ICMP error (port unreachable for a reply
 * to a forged or closed source) is queued on the relay socket and fails the next receive or send,
 * so a spoofed REG flood stalls forwarding. An unconnected relay socket has no use for them: off.
 */
export function ignoreIcmpErrors(socket: udp.Socket<"buffer">): boolean {
  return setForBothFamilies(socket, [IP_RECVERR, 0], [IPV6_RECVERR, 0]);
}

const IP_MTU_DISCOVER = 10;
const IP_PMTUDISC_PROBE = 3;
const IPV6_MTU_DISCOVER = 23;
const IPV6_PMTUDISC_PROBE = 3;

/**
 * Everything the relay sends leaves with the Don't Fragment bit, whatever its size, and is never
 * fragmented here (PMTUDISC_PROBE, as the native plane does in udp_socket.cc): QUIC datagrams must
 * not be fragmented (RFC 9000, section 14), and the peers find their path MTU through the relay
 * themselves, which a relay that fragmented their probes would mislead. The kernel's own path MTU
 * guess (from ICMP, which anyone can forge) is not used either. Best effort, as the buffers are:
 * false when neither option could be set.
 */
export function setDontFragment(socket: udp.Socket<"buffer">): boolean {
  return setForBothFamilies(socket, [IP_MTU_DISCOVER, IP_PMTUDISC_PROBE], [IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE]);
}

/**
 * Sets an int option (name, value) at the IPv4 level and one at the IPv6 level: an IPv6 socket
 * takes both (its IPv4-mapped peers go by the first), an IPv4 one refuses the second. True when
 * either was taken.
 */
function setForBothFamilies(socket: udp.Socket<"buffer">, v4: [number, number], v6: [number, number]): boolean {
  const fd = (socket as unknown as { fd?: number }).fd;
  const call = loadSetSockOpt();
  if (!call || typeof fd !== "number" || fd < 0) return false;
  const int = (value: number) => new Uint8Array(new Int32Array([value]).buffer);
  const ok4 = call(fd, IPPROTO_IP, v4[0], int(v4[1]), 4) === 0;
  const ok6 = call(fd, IPPROTO_IPV6, v6[0], int(v6[1]), 4) === 0;
  return ok4 || ok6;
}

/**
 * The start-up warning when the kernel granted smaller socket buffers than asked (it does so
 * silently: setsockopt succeeds, capped at net.core.rmem_max / wmem_max, unless the process has
 * CAP_NET_ADMIN for the FORCE variants). Undefined when everything asked for was granted or
 * nothing is known. Sizes are in the units of `--socket-buffer-bytes`.
 */
export function socketBufferShortfall(sizes: { asked: number; receive: number; send: number } | undefined): string | undefined {
  if (!sizes || (sizes.receive >= sizes.asked && sizes.send >= sizes.asked)) return undefined;
  const { asked, receive, send } = sizes;
  return (
    `socket buffers smaller than asked: receive ${receive} and send ${send} bytes granted of --socket-buffer-bytes ${asked}; ` +
    `bursts may be dropped in the kernel. Raise net.core.rmem_max and net.core.wmem_max to at least ${asked} ` +
    `(sysctl, docs/deploy.md "Kernel buffers for high packet rates") and restart the relay`
  );
}
