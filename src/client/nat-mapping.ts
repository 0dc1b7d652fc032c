/**
 * NAT mapping behaviour (RFC 4787 section 4.1) from what several servers saw of one local socket.
 * Pure: the observations come from src/client/discovery.ts.
 */
import { type Endpoint, type HostPort, hostOf, sameEndpoint } from "../net/address.ts";

export type MappingBehaviour =
  /** The address the servers saw is the socket's own: no NAT on the path. */
  | "no-nat"
  /** One public address for every destination: what hole punching needs. */
  | "endpoint-independent"
  /** A new public address per destination address (the same for two ports of one address). */
  | "address-dependent"
  /** A new public address per destination address and port ("symmetric"). */
  | "address-and-port-dependent"
  /** Fewer than two destinations answered: nothing to compare. */
  | "unknown";

export interface MappingObservation {
  /** Where the request went. */
  to: HostPort;
  /** The public address that destination saw. */
  mapped: Endpoint;
}

export interface MappingVerdict {
  mapping: MappingBehaviour;
  /** Whether direct hole punching can work, as far as mapping tells; undefined when unknown. */
  directPossible: boolean | undefined;
  /** How sure the classification is: what was compared, in a few words. */
  basis: string;
  /** One plain sentence for people. */
  sentence: string;
}

/**
 * Compares every pair of observations. Two destinations that share an address and differ in port
 * separate endpoint-independent from address-and-port-dependent mapping; two addresses are needed
 * to see address-dependent mapping. `localAddresses` are this host's interface addresses and
 * `localPort` the socket's port (to recognise "no NAT").
 */
export function classifyMapping(observations: readonly MappingObservation[], localAddresses: readonly string[], localPort: number): MappingVerdict {
  if (observations.length === 0) {
    return verdict("unknown", "no destination answered");
  }
  const first = observations[0]!.mapped;
  const own = new Set(localAddresses.map(hostOf));
  if (first.port === localPort && own.has(hostOf(first.address)) && observations.every((o) => sameEndpoint(o.mapped, first))) {
    return verdict("no-nat", observations.length > 1 ? `${observations.length} destinations saw the socket's own address` : "the relay saw the socket's own address");
  }
  if (observations.length < 2) return verdict("unknown", "one destination answered; a second is needed to compare");
  let samePortsDiffer = false;
  let addressesDiffer = false;
  let portsCompared = false;
  let addressesCompared = false;
  for (let i = 0; i < observations.length; i++) {
    for (let j = i + 1; j < observations.length; j++) {
      const a = observations[i]!;
      const b = observations[j]!;
      const sameAddress = hostOf(a.to.host) === hostOf(b.to.host);
      if (sameAddress && a.to.port === b.to.port) continue;
      const differ = !sameEndpoint(a.mapped, b.mapped);
      if (sameAddress) {
        portsCompared = true;
        if (differ) samePortsDiffer = true;
      } else {
        addressesCompared = true;
        if (differ) addressesDiffer = true;
      }
    }
  }
  if (samePortsDiffer) return verdict("address-and-port-dependent", "two ports of one relay address saw different public ports");
  if (addressesDiffer) {
    return verdict(
      "address-dependent",
      portsCompared ? "two relay addresses saw different public addresses; two ports of one address saw the same" : "two relay addresses saw different public addresses (no two ports of one address compared: it may be address-and-port-dependent)",
    );
  }
  return verdict(
    "endpoint-independent",
    addressesCompared ? "every destination saw the same public address" : "two ports of one relay address saw the same public address (a NAT that varies only with the address would look the same)",
  );
}

function verdict(mapping: MappingBehaviour, basis: string): MappingVerdict {
  switch (mapping) {
    case "no-nat":
      return { mapping, basis, directPossible: true, sentence: "Direct hole punching can work here: there is no NAT between this host and the relay (a firewall may still drop unsolicited datagrams)." };
    case "endpoint-independent":
      return { mapping, basis, directPossible: true, sentence: "Direct hole punching can work here: this NAT keeps one public address for every destination." };
    case "address-dependent":
    case "address-and-port-dependent":
      return { mapping, basis, directPossible: false, sentence: "This network needs the relay: its NAT gives each destination a different public address, so hole punching cannot work." };
    case "unknown":
      return { mapping, basis, directPossible: undefined, sentence: "Cannot tell whether hole punching can work here: start the relay with --stun-alt-listen, or pass --also HOST:PORT of a second STUN server." };
  }
}
