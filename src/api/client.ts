/**
 * `quic-relay/client`: the client side for apps (Bun). Everything src/client offers —
 * RelayRegistration on a socket the app owns (direct mode), registerOnce (hand-over), RelayTunnel,
 * discover() — plus `register()`, a socket of this module's registered and kept registered.
 * docs/integration.md ("Embedding") shows both ways.
 */
export * from "../client/index.ts";
export { register, type RegisterOptions, type RegistrationEvent, type RelaySocket } from "./register.ts";
export type { HostPort } from "../net/address.ts";
