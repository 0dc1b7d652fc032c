import type { udp } from "bun";

/**
 * A one-client NAT in user space, on loopback: the client sends to `inside`; the NAT sends on to
 * the relay from its public socket (on `publicHost`, a port of its own) and hands back what the
 * relay answers there. `rebind()` gives the client a new public port, as a NAT does when its
 * mapping times out: the relay sees the same host, a new port, and the old port goes dead.
 */
export class UdpNat {
  private client: { address: string; port: number } | undefined;
  private outside!: udp.Socket<"uint8array">;
  /** Datagrams the relay sent to a public port after it was given up (they go nowhere). */
  stale = 0;

  private constructor(
    private readonly inner: udp.Socket<"uint8array">,
    private readonly relay: { host: string; port: number },
    private readonly publicHost: string,
  ) {}

  static async open(relay: { host: string; port: number }, publicHost: string): Promise<UdpNat> {
    let nat!: UdpNat;
    const inner = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      binaryType: "uint8array",
      socket: {
        data(_s, data, port, address) {
          nat.client = { address, port };
          nat.outside.send(data, nat.relay.port, nat.relay.host);
        },
      },
    });
    nat = new UdpNat(inner, relay, publicHost);
    nat.outside = await nat.openOutside();
    return nat;
  }

  /** Where the client sends: the relay's address as the client sees it. */
  get inside(): { host: string; port: number } {
    return { host: "127.0.0.1", port: this.inner.port };
  }

  /** The client's public port as the relay sees it now. */
  get publicPort(): number {
    return this.outside.port;
  }

  async rebind(): Promise<void> {
    const old = this.outside;
    this.outside = await this.openOutside();
    old.close();
  }

  close(): void {
    this.outside.close();
    this.inner.close();
  }

  private async openOutside(): Promise<udp.Socket<"uint8array">> {
    const socket: udp.Socket<"uint8array"> = await Bun.udpSocket({
      hostname: this.publicHost,
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (s, data) => {
          if (s !== this.outside) {
            this.stale++;
            return;
          }
          if (this.client) this.inner.send(data, this.client.port, this.client.address);
        },
      },
    });
    return socket;
  }
}
