import type { udp } from "bun";

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;

type SetSockOpt = (fd: number, level: number, name: number, value: Uint8Array, length: number) => number;
let setsockopt: SetSockOpt | null | undefined;

function loadSetSockOpt(): SetSockOpt | null {
  if (setsockopt !== undefined) return setsockopt;
  setsockopt = null;
  if (process.platform !== "linux") return null;
  try {
    const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    const libc = dlopen("libc.so.6", {
      setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    });
    setsockopt = (fd, level, name, value, length) => libc.symbols.setsockopt(fd, level, name, value, length);
  } catch {
    setsockopt = null;
  }
  return setsockopt;
}

/**
 * Enlarge the kernel's receive and send buffers of a Bun UDP socket (the default ~212 KB drops
 * bursts at ~150 kpps). Tries the FORCE variants first (root may exceed net.core.rmem_max).
 * Best effort: returns false when it could not apply them.
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
  const fd = (socket as unknown as { fd?: number }).fd;
  const call = loadSetSockOpt();
  if (!call || typeof fd !== "number" || fd < 0) return false;
  const off = new Uint8Array(4);
  const v4 = call(fd, IPPROTO_IP, IP_RECVERR, off, 4) === 0;
  const v6 = call(fd, IPPROTO_IPV6, IPV6_RECVERR, off, 4) === 0;
  return v4 || v6;
}
