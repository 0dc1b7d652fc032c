/**
 * UDP sockets for the fleet capacity generator, straight on libc through bun:ffi: batches of
 * datagrams in one sendmmsg / recvmmsg call each, received datagrams counted without copying their
 * payload (MSG_TRUNC into 16-byte buffers), and epoll to find the sockets with something to read.
 * Linux on a 64-bit CPU only (struct layouts below).
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SO_MEMINFO = 55;
const SK_MEMINFO_DROPS = 8;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
/** struct mmsghdr: msghdr (56 bytes) + msg_len; msg_iov at 16, msg_iovlen at 24, msg_len at 56. */
const MMSG = 64;
/** struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16). */
const EPOLL_EVENT = process.arch === "x64" ? 12 : 16;
const EPOLL_DATA = process.arch === "x64" ? 4 : 8;
const RX_BATCH = 64;
const RX_PEEK = 16;

const { symbols: libc } = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  sendmmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.u32, FFIType.i32], returns: FFIType.i32 },
  recvmmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  epoll_create1: { args: [FFIType.i32], returns: FFIType.i32 },
  epoll_ctl: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  epoll_wait: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
});

function fail(call: string): never {
  const at = libc.__errno_location();
  throw new Error(`${call} failed (errno ${at ? read.i32(at, 0) : "?"})`);
}

/** struct sockaddr_in for an IPv4 address and port. */
function sockaddr(host: string, port: number): Uint8Array {
  const a = new Uint8Array(16);
  const v = new DataView(a.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  host.split(".").forEach((octet, i) => (a[4 + i] = Number(octet)));
  return a;
}

function setInt(fd: number, name: number, fallback: number, value: number): void {
  const v = new Int32Array([value]);
  if (libc.setsockopt(fd, SOL_SOCKET, name, v, 4) !== 0) libc.setsockopt(fd, SOL_SOCKET, fallback, v, 4);
}

/** A non-blocking UDP socket bound to `host` (any port), with `bufferBytes` of send and receive buffer. */
export function openUdp(host: string, bufferBytes: number): number {
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) fail("socket");
  setInt(fd, SO_RCVBUFFORCE, SO_RCVBUF, bufferBytes);
  setInt(fd, SO_SNDBUFFORCE, SO_SNDBUF, bufferBytes);
  if (libc.bind(fd, sockaddr(host, 0), 16) !== 0) fail(`bind ${host}`);
  return fd;
}

export function connectUdp(fd: number, host: string, port: number): void {
  if (libc.connect(fd, sockaddr(host, port), 16) !== 0) fail(`connect ${host}:${port}`);
}

export function sendTo(fd: number, data: Uint8Array, host: string, port: number): void {
  libc.sendto(fd, data, data.length, 0, sockaddr(host, port), 16);
}

/** One datagram waiting on the socket, or undefined when none is. */
export function receiveOne(fd: number, buffer: Uint8Array): Uint8Array | undefined {
  const n = Number(libc.recv(fd, buffer, buffer.length, MSG_DONTWAIT));
  return n >= 0 ? buffer.subarray(0, n) : undefined;
}

/** Datagrams the kernel dropped at this socket for a full receive buffer (SO_MEMINFO). */
export function socketDrops(fd: number): number {
  const mem = new Uint32Array(9);
  const len = new Uint32Array([mem.byteLength]);
  return libc.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, len) === 0 ? mem[SK_MEMINFO_DROPS]! : 0;
}

export function closeUdp(fd: number): void {
  libc.close(fd);
}

/** `count` messages that all carry the same payload, for sendmmsg on a connected socket. */
export class SendBatch {
  private readonly vec: Uint8Array;
  private readonly iov = new BigUint64Array(2);
  private readonly vecPtr: number;

  constructor(readonly payload: Uint8Array, readonly count: number) {
    this.iov[0] = BigInt(ptr(payload));
    this.iov[1] = BigInt(payload.length);
    this.vec = new Uint8Array(MMSG * count);
    const view = new DataView(this.vec.buffer);
    for (let i = 0; i < count; i++) {
      view.setBigUint64(i * MMSG + 16, BigInt(ptr(this.iov)), true);
      view.setBigUint64(i * MMSG + 24, 1n, true);
    }
    this.vecPtr = ptr(this.vec);
  }

  /** Datagrams the kernel took (0 when the socket's buffer is full). */
  send(fd: number): number {
    return Math.max(0, libc.sendmmsg(fd, this.vecPtr, this.count, MSG_DONTWAIT));
  }
}

/** Receives up to 64 datagrams per call, keeping each one's length and first bytes. */
export class ReceiveRing {
  private readonly vec = new Uint8Array(MMSG * RX_BATCH);
  private readonly lengths: Uint32Array;
  private readonly vecPtr: number;
  readonly heads = new Uint8Array(RX_PEEK * RX_BATCH);
  private readonly iovs = new BigUint64Array(2 * RX_BATCH);

  constructor() {
    const view = new DataView(this.vec.buffer);
    for (let i = 0; i < RX_BATCH; i++) {
      this.iovs[2 * i] = BigInt(ptr(this.heads) + i * RX_PEEK);
      this.iovs[2 * i + 1] = BigInt(RX_PEEK);
      view.setBigUint64(i * MMSG + 16, BigInt(ptr(this.iovs) + i * 16), true);
      view.setBigUint64(i * MMSG + 24, 1n, true);
    }
    this.lengths = new Uint32Array(this.vec.buffer);
    this.vecPtr = ptr(this.vec);
  }

  /** Reads what is queued on `fd` (up to 64); returns how many, or 0. */
  receive(fd: number): number {
    return Math.max(0, libc.recvmmsg(fd, this.vecPtr, RX_BATCH, MSG_DONTWAIT | MSG_TRUNC, null));
  }

  /** Full length of the i-th datagram of the last receive. */
  length(i: number): number {
    return this.lengths[(i * MMSG + 56) / 4]!;
  }

  /** Byte `offset` (< 16) of the i-th datagram of the last receive. */
  byte(i: number, offset: number): number {
    return this.heads[i * RX_PEEK + offset]!;
  }

  static readonly BATCH = RX_BATCH;
}

/** An epoll set of sockets, each registered with its index as data. */
export class ReadySet {
  private readonly ep: number;
  private readonly events: Uint8Array;
  private readonly view: DataView;
  private readonly eventsPtr: number;

  constructor(private readonly capacity: number) {
    this.ep = libc.epoll_create1(0);
    if (this.ep < 0) fail("epoll_create1");
    this.events = new Uint8Array(EPOLL_EVENT * capacity);
    this.view = new DataView(this.events.buffer);
    this.eventsPtr = ptr(this.events);
  }

  add(fd: number, index: number): void {
    const ev = new Uint8Array(16);
    const v = new DataView(ev.buffer);
    v.setUint32(0, EPOLLIN, true);
    v.setUint32(EPOLL_DATA, index, true);
    if (libc.epoll_ctl(this.ep, EPOLL_CTL_ADD, fd, ev) !== 0) fail("epoll_ctl");
  }

  /** Indices of the sockets with datagrams waiting, after at most `timeoutMs`. */
  wait(timeoutMs: number, out: number[]): number {
    const n = libc.epoll_wait(this.ep, this.eventsPtr, this.capacity, timeoutMs);
    for (let i = 0; i < n; i++) out[i] = this.view.getUint32(i * EPOLL_EVENT + EPOLL_DATA, true);
    return Math.max(0, n);
  }

  close(): void {
    libc.close(this.ep);
  }
}
