/** Sockets for bench/flood.ts: established session pairs with steady traffic, and flood sources. */
import type { udp } from "bun";
import { readFileSync } from "node:fs";

export interface RelayStats {
  port: number;
  plane: string;
  sessions: number;
  peers: number;
  refusals: Record<string, number>;
  unknownSource: number;
  controlPackets: number;
  forwardedPackets: number;
  controlQueueDrops: number;
  sendErrors: number;
  internalErrors: number;
  limiterBytes: number;
  /** Memory right after a full collection the bench asked for (SIGUSR2). */
  settled?: { rss: number; heap: number; at: number };
}

/** Resident set size of a process, from /proc. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  return kb ? Number(kb[1]) * 1024 : 0;
}

type Socket = udp.Socket<"uint8array">;

async function socketOn(host: string, onData: (data: Uint8Array, socket: Socket) => void): Promise<Socket> {
  return Bun.udpSocket({
    hostname: host,
    port: 0,
    binaryType: "uint8array",
    socket: { data: (s, data) => onData(data, s), error: () => {} },
  });
}

/** Paired sessions between 127.0.0.(2..) hosts, each side sending a numbered datagram every 10 ms. */
export class Pairs {
  private timer: ReturnType<typeof setInterval> | undefined;
  private sent = 0;
  private received = 0;
  private constructor(private readonly sockets: [Socket, Socket][]) {}

  static async open(port: number, count: number, reg: (session: string) => string): Promise<Pairs> {
    const pairs: [Socket, Socket][] = [];
    let acks = 0;
    let pairsRef: Pairs | undefined;
    /** The REG each socket sends; a RETRY (the relay asks for proof of the address) adds its cookie. */
    const regs = new Map<Socket, string>();
    const onData = (data: Uint8Array, socket: Socket) => {
      if (data.length === 4 && data[0] === 0x41 && data[3] === 0x0a) acks++;
      else if (data.length === 23 && data[0] === 0x52 && data[22] === 0x0a) {
        const cookie = new TextDecoder().decode(data.subarray(6, 22));
        const line = regs.get(socket)!.replace(/ [A-Za-z0-9_-]{16}\n$|\n$/, ` ${cookie}\n`);
        regs.set(socket, line);
        socket.send(line, port, "127.0.0.1");
      } else if (data.length === 64 && data[0] === 0x5a && pairsRef) pairsRef.received++;
    };
    for (let i = 0; i < count; i++) {
      const a = await socketOn(`127.0.0.${2 + 2 * i}`, onData);
      const b = await socketOn(`127.0.0.${3 + 2 * i}`, onData);
      const session = `established-${crypto.randomUUID()}`;
      for (const s of [a, b]) {
        const before = acks;
        regs.set(s, reg(session));
        // Resent every 20 ms as a client would; the limit is a generous deadline (10 s), not a measurement.
        for (let attempt = 0; acks === before; attempt++) {
          if (attempt > 500) throw new Error("established session not acknowledged");
          s.send(regs.get(s)!, port, "127.0.0.1");
          await Bun.sleep(20);
        }
      }
      pairs.push([a, b]);
    }
    pairsRef = new Pairs(pairs);
    return pairsRef;
  }

  start(port: number): void {
    const payload = new Uint8Array(64).fill(0x5a);
    this.timer = setInterval(() => {
      for (const [a, b] of this.sockets) {
        a.send(payload, port, "127.0.0.1");
        b.send(payload, port, "127.0.0.1");
        this.sent += 2;
      }
    }, 10);
  }

  /** Stops sending; what was sent keeps being counted as it arrives. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  resetCounts(): void {
    this.sent = 0;
    this.received = 0;
  }

  delivery(): { sent: number; received: number; pct: number } {
    return { sent: this.sent, received: this.received, pct: this.sent ? Math.round((this.received / this.sent) * 1000) / 10 : 0 };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const [a, b] of this.sockets) {
      a.close();
      b.close();
    }
  }
}

/** Flood sources on distinct loopback addresses 127.20.x.y; what the relay answers is only counted. */
export class FloodSockets {
  replies = 0;
  private constructor(private readonly sockets: Socket[]) {}

  static async open(count: number): Promise<FloodSockets> {
    const sockets: Socket[] = [];
    let flood: FloodSockets | undefined;
    for (let i = 0; i < count; i++) {
      sockets.push(
        await socketOn(`127.20.${1 + (i >> 7)}.${1 + (i & 127)}`, () => {
          if (flood) flood.replies++;
        }),
      );
    }
    flood = new FloodSockets(sockets);
    return flood;
  }

  send(data: Uint8Array | string, port: number, i: number): void {
    this.sockets[i % this.sockets.length]!.send(data, port, "127.0.0.1");
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

/**
 * Spoofed sources: IPv4+UDP datagrams written to a raw socket (root only) with any source
 * address and port, as an attacker who forges sources would send them. Datagram `i` comes from
 * 127.30.(i>>8 & 255).(i & 255) port 1024 + (i >> 16): 65,536 hosts, a fresh port per round.
 */
export class SpoofedSources {
  private readonly packet = new Uint8Array(28 + 65_507);
  private readonly view = new DataView(this.packet.buffer);
  private readonly sockaddr = new Uint8Array(16);
  private constructor(
    private readonly fd: number,
    private readonly sendto: (fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrlen: number) => number | bigint,
  ) {}

  static open(): SpoofedSources | undefined {
    try {
      const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
      const libc = dlopen("libc.so.6", {
        socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
      });
      const fd = libc.symbols.socket(2 /* AF_INET */, 3 /* SOCK_RAW */, 255 /* IPPROTO_RAW: header included */);
      if (fd < 0) return undefined;
      return new SpoofedSources(fd, libc.symbols.sendto as never);
    } catch {
      return undefined;
    }
  }

  send(data: Uint8Array | string, port: number, i: number): void {
    const payload = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const p = this.packet;
    const v = this.view;
    const length = 28 + payload.length;
    p[0] = 0x45; // IPv4, 20-byte header; the kernel fills in the id and checksum
    v.setUint16(2, length);
    p[8] = 64;
    p[9] = 17; // UDP
    p[12] = 127;
    p[13] = 30;
    p[14] = (i >> 8) & 255;
    p[15] = i & 255;
    p.set([127, 0, 0, 1], 16);
    v.setUint16(20, 1024 + ((i >>> 16) % 60_000));
    v.setUint16(22, port);
    v.setUint16(24, 8 + payload.length);
    v.setUint16(26, 0); // no UDP checksum (allowed on IPv4)
    p.set(payload, 28);
    this.sockaddr[0] = 2;
    new DataView(this.sockaddr.buffer).setUint16(2, port);
    this.sockaddr.set([127, 0, 0, 1], 4);
    this.sendto(this.fd, p, length, 0, this.sockaddr, 16);
  }

  close(): void {
    const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    dlopen("libc.so.6", { close: { args: [FFIType.i32], returns: FFIType.i32 } }).symbols.close(this.fd);
  }
}
