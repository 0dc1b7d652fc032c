/**
 * What src/client offers apps (docs/integration.md). Direct mode, on a socket the app owns:
 *
 *   const reg = new RelayRegistration(sessionId, defaultRegistrationSettings, {
 *     sendReg: (datagram) => socket.send(datagram, relay.port, relay.host),
 *     registered: ({ first }) => { if (first) startQuic(); }, lost() {}, refused() {}, unreachable() {},
 *   });
 *   // every datagram from the relay's address: relay replies are consumed, the rest goes to QUIC
 *   if (!reg.onRelayDatagram(data)) quic.receive(data);
 *   reg.start();
 *
 * RelayRegistration speaks the whole REG exchange: retries with backoff, keepalives, RETRY cookies
 * (kept and echoed), the ERR short placeholder, and reports a relay that went `silent`.
 * registerOnce is the hand-over, RelayTunnel the tunnel. Given `relay: relayResolver([...])` the
 * tunnel re-resolves the relay's name at start and whenever its relay goes silent, and moves to
 * another address with the same session id (`onRelayChange({ from, to, reason })`). Its REGs carry
 * the `move` flag, and a `MOVE <relay>` reply naming another of the relay's addresses (its partner's
 * relay) is followed the same way; `followMoves: false` turns that off. A direct-mode registration
 * gets the flag by handling `moveOffered` and answering `followMove` / `declineMove`.
 *
 * Before that, `discover({ relay })` says how the relay sees this host (public address) and whether
 * its NAT lets hole punching work (`directPossible`), for apps that try a direct path first.
 */
export { discover, type DiscoveryOptions, type DiscoveryResult } from "./discovery.ts";
export { classifyMapping, type MappingBehaviour, type MappingObservation, type MappingVerdict } from "./nat-mapping.ts";
export { classifyRelayDatagram, type RelayReply } from "./control.ts";
export { ClientConfigError, RegistrationRefusedError, RelayResolveError, RelayUnreachableError } from "./errors.ts";
export { type LookupAll, pickNextRelay, type RelayResolver, relayResolver } from "./relay-addresses.ts";
export { type FirstRegistration, registerOnce, registrationUntilAck } from "./register-once.ts";
export {
  DEFAULT_SILENT_AFTER,
  defaultRegistrationSettings,
  MAX_MOVES_PER_ROUND,
  MAX_RETRIES_PER_ATTEMPT,
  type MoveOffer,
  type MoveRefusal,
  realTimers,
  RelayRegistration,
  type RegistrationEvents,
  type RegistrationSettings,
  type Timers,
} from "./registration.ts";
export { type RelayChange, RelayTunnel, type TunnelMode, type TunnelOptions, type TunnelStats } from "./tunnel.ts";
