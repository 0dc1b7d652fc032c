import type { Endpoint } from "../../src/net/address.ts";
import { SessionTable } from "../../src/sessions/table.ts";
import type { AdmissionCheck, Clock, Peer, RegProof, SessionEvent, SessionLimits, SessionSink } from "../../src/sessions/types.ts";

export class FakeClock implements Clock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export type Effect =
  | { kind: "reply"; to: string; data: string }
  | { kind: "forward"; to: string; data: string }
  | { kind: "route"; from: string; to: string; peer: number; proven: boolean; cidLength: number }
  | { kind: "unroute"; peer: number }
  | { kind: "challenge"; to: string; session: string };

/** Records what the table asks for, and keeps the route table a data plane would hold. */
export class RecordingSink implements SessionSink {
  effects: Effect[] = [];
  events: SessionEvent[] = [];
  routes = new Map<number, { from: string; to: string }>();
  /** What `observing` answers: false plays a data plane that lost a change report. */
  watching = true;
  reply(to: Endpoint, data: Uint8Array): void {
    this.effects.push({ kind: "reply", to: ep(to), data: new TextDecoder().decode(data) });
  }
  forward(to: Endpoint, data: Uint8Array): void {
    this.effects.push({ kind: "forward", to: ep(to), data: new TextDecoder().decode(data) });
  }
  route(peer: Peer, to: Peer, _direction: string, cidLength: number): void {
    this.routes.set(peer.id, { from: ep(peer.endpoint), to: ep(to.endpoint) });
    this.effects.push({ kind: "route", from: ep(peer.endpoint), to: ep(to.endpoint), peer: peer.id, proven: to.proven, cidLength });
  }
  observing(): boolean {
    return this.watching;
  }
  challenge(to: Endpoint, session: string): void {
    this.effects.push({ kind: "challenge", to: ep(to), session });
  }
  unroute(peer: number): void {
    this.routes.delete(peer);
    this.effects.push({ kind: "unroute", peer });
  }
  event(event: SessionEvent): void {
    this.events.push(event);
  }
  take(): Effect[] {
    const e = this.effects;
    this.effects = [];
    return e;
  }
  /** Where a datagram from `from` would go through the installed routes. */
  routeFrom(from: string): string | undefined {
    for (const r of this.routes.values()) if (r.from === from) return r.to;
    return undefined;
  }
}

export function ep(e: Endpoint): string {
  return `${e.address}:${e.port}`;
}

export function at(s: string): Endpoint {
  const i = s.lastIndexOf(":");
  return { address: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

export function setup(limits: Partial<SessionLimits> = {}, admit?: AdmissionCheck) {
  const clock = new FakeClock();
  const sink = new RecordingSink();
  const table = new SessionTable(clock, sink, { timeoutMs: 300_000, ...limits }, admit);
  const enc = (s: string) => new TextEncoder().encode(s);
  const reg = (session: string, from: string, proof: RegProof = "none") =>
    table.register(session, at(from), enc(`REG:${session}${proof === "none" ? "" : " AAAAAAAAAAAAAAAA"}\n`), proof);
  const data = (from: string, payload: string | Uint8Array) =>
    table.datagram(at(from), typeof payload === "string" ? enc(payload) : payload);
  return { clock, sink, table, reg, data };
}
