/**
 * The TS plane's queue of datagrams for the control plane, bounded as the native plane's is
 * (native/control_queue.cc): the socket's receive handler only appends, and the control plane
 * takes a batch per event-loop turn. Handling datagrams in the receive handler itself would keep
 * Bun reading the socket for as long as a flood outpaces the handling, and no timer, health check
 * or scrape would run until it stopped; appending is cheap enough that the socket runs dry between
 * turns. What does not fit is dropped and counted; REGs have room kept for them, so that a flood
 * of other datagrams cannot keep registrations out.
 */
import type { InboundDatagram } from "./types.ts";

/** Datagrams and bytes the queue holds at most (REGs: RESERVE more), as on the native plane. */
export const CONTROL_QUEUE_DATAGRAMS = 8192;
export const CONTROL_QUEUE_BYTES = 8 << 20;
const REG_RESERVE_DATAGRAMS = 1024;
const REG_RESERVE_BYTES = 256 * 1024;

export class ControlQueue {
  private items: InboundDatagram[] = [];
  /** Index of the oldest datagram in `items`: taking a batch does not shift the array. */
  private head = 0;
  private bytes = 0;
  /**
   * Queued datagrams a new route may take over (not observed copies, not REGs or relay lines),
   * counted by source address: a route set while none from its source waits costs no walk.
   */
  private readonly waiting = new Map<string, number>();

  /**
   * `routable`: whether a route set later would forward `d` rather than leave it to the control
   * plane (not an observed copy, not a REG or a relay line); see takeOver.
   */
  constructor(
    private readonly routable: (d: InboundDatagram) => boolean,
    private readonly maxDatagrams = CONTROL_QUEUE_DATAGRAMS,
    private readonly maxBytes = CONTROL_QUEUE_BYTES,
  ) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Appends `d`, unless the queue is full: false then. `reg`: a REG, which may use the reserve. */
  push(d: InboundDatagram, reg: boolean): boolean {
    const size = d.data.length;
    const maxDatagrams = this.maxDatagrams + (reg ? REG_RESERVE_DATAGRAMS : 0);
    const maxBytes = this.maxBytes + (reg ? REG_RESERVE_BYTES : 0);
    if (this.length >= maxDatagrams || this.bytes + size > maxBytes) return false;
    this.items.push(d);
    this.bytes += size;
    if (this.routable(d)) this.waiting.set(d.address, (this.waiting.get(d.address) ?? 0) + 1);
    return true;
  }

  /** The oldest `max` datagrams at most, in order. */
  take(max: number): InboundDatagram[] {
    const end = Math.min(this.items.length, this.head + max);
    const batch = this.items.slice(this.head, end);
    this.head = end;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    for (const d of batch) {
      this.bytes -= d.data.length;
      if (this.waiting.size > 0 && this.routable(d)) this.unwait(d.address);
    }
    return batch;
  }

  /**
   * Hands the routable datagrams from `address`:`port` waiting here to `forward` (a new route's),
   * in order, and keeps what `forward` returns in their place (nothing when it returns undefined).
   */
  takeOver(address: string, port: number, forward: (d: InboundDatagram) => InboundDatagram | undefined): void {
    if (!this.waiting.has(address)) return;
    const kept: InboundDatagram[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const d = this.items[i]!;
      if (d.port !== port || d.address !== address || !this.routable(d)) {
        kept.push(d);
        continue;
      }
      this.bytes -= d.data.length;
      this.unwait(address);
      const copy = forward(d);
      if (copy) {
        kept.push(copy);
        this.bytes += copy.data.length;
      }
    }
    this.items = kept;
    this.head = 0;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    this.waiting.clear();
  }

  private unwait(address: string): void {
    const n = this.waiting.get(address)! - 1;
    if (n > 0) this.waiting.set(address, n);
    else this.waiting.delete(address);
  }
}
