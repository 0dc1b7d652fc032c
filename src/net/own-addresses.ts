import { networkInterfaces } from "node:os";
import { type Endpoint, hostOf } from "./address.ts";

/**
 * The transport addresses this relay itself receives on: its port on the address it is bound to,
 * or on every local interface address when bound to a wildcard. A REG "from" one of them is a
 * forged attempt to make the relay forward to itself.
 */
export class OwnAddresses {
  private port = -1;
  private readonly hosts = new Set<string>();

  learn(local: Endpoint): void {
    this.port = local.port;
    this.hosts.clear();
    const bound = hostOf(local.address);
    if (bound !== "::" && bound !== "0.0.0.0" && bound !== "") {
      this.hosts.add(bound);
      return;
    }
    this.hosts.add("127.0.0.1").add("::1");
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) this.hosts.add(hostOf(info.address.split("%")[0]!));
    }
  }

  has(e: Endpoint): boolean {
    return e.port === this.port && this.hosts.has(hostOf(e.address));
  }
}
