import type { udp } from "bun";

/**
 * A scriptable stand-in for the relay, for client tests that need failure modes the real relay
 * does not have on demand: swallowing ACKs, refusing with ERR, going silent. Pairs two addresses
 * per session and forwards between them (no holding, no rebinding).
 */
export interface FakeRelayOptions {
  /** Ignore this many REGs (no ACK) before answering. */
  dropRegs?: number;
  /** Answer every REG with this datagram instead of ACK (e.g. "ERR full\n"). */
  refuseWith?: string;
}

export class FakeRelay {
  regs: { address: string; port: number; session: string }[] = [];
  forwarded = 0;
  dropRegs: number;
  refuseWith?: string;
  private peers = new Map<string, string[]>();
  private partnerOf = new Map<string, { address: string; port: number }>();
  private constructor(
    private socket: udp.Socket<"uint8array">,
    options: FakeRelayOptions,
  ) {
    this.dropRegs = options.dropRegs ?? 0;
    this.refuseWith = options.refuseWith;
  }

  static async start(options: FakeRelayOptions = {}, hostname = "127.0.0.1"): Promise<FakeRelay> {
    let relay: FakeRelay | undefined;
    const socket = await Bun.udpSocket({
      hostname,
      port: 0,
      binaryType: "uint8array",
      socket: { data: (_s, data, port, address) => relay?.onDatagram(data, port, address) },
    });
    relay = new FakeRelay(socket, options);
    return relay;
  }

  get port(): number {
    return this.socket.port;
  }

  /** Forget all sessions, as a restarted relay would. */
  reset(): void {
    this.peers.clear();
    this.partnerOf.clear();
  }

  close(): void {
    this.socket.close();
  }

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    const key = `${address}|${port}`;
    const text = new TextDecoder().decode(data);
    if (text.startsWith("REG:")) {
      const session = text.slice(4).replace(/\r?\n$/, "");
      this.regs.push({ address, port, session });
      if (this.dropRegs > 0) {
        this.dropRegs--;
        return;
      }
      if (this.refuseWith !== undefined) {
        this.socket.send(new TextEncoder().encode(this.refuseWith), port, address);
        return;
      }
      const members = this.peers.get(session) ?? [];
      if (!members.includes(key) && members.length < 2) members.push(key);
      this.peers.set(session, members);
      if (members.length === 2) {
        const [a, b] = members.map((m) => {
          const [host, p] = m.split("|");
          return { address: host!, port: Number(p) };
        });
        this.partnerOf.set(members[0]!, b!);
        this.partnerOf.set(members[1]!, a!);
      }
      this.socket.send(new TextEncoder().encode("ACK\n"), port, address);
      return;
    }
    const partner = this.partnerOf.get(key);
    if (!partner) return;
    this.forwarded++;
    this.socket.send(data, partner.port, partner.address);
  }
}
