/**
 * The peer token: a random value a client chooses once per session and sends in every REG as
 * `peer=<token>` (docs/protocol.md, "Peer token"). It says who the peer is beyond its address:
 * behind a symmetric NAT a peer's address differs per relay, so a relay of a fleet can only tell
 * the same peer registering elsewhere (its relay gone or not) from a third host by this token.
 * Relays keep and share only a hash of it.
 */

export const PEER_TOKEN_PREFIX = "peer=";
/** 16-43 base64url characters: 96 to 256 bits. */
const TOKEN = /^[A-Za-z0-9_-]{16,43}$/;

/** Whether `text` is a `peer=<token>` REG token; the token, or undefined. */
export function peerTokenOf(text: string): string | undefined {
  if (!text.startsWith(PEER_TOKEN_PREFIX)) return undefined;
  const token = text.slice(PEER_TOKEN_PREFIX.length);
  return TOKEN.test(token) ? token : undefined;
}

/** A fresh token for a client: 128 random bits, base64url. */
export function newPeerToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
}

/** What a relay keeps and shares of a token: SHA-256 over a label and the token, 128 bits in base64url. */
export function peerIdentity(token: string): string {
  const digest = new Bun.CryptoHasher("sha256").update("quic-relay peer token\0").update(token).digest();
  return Buffer.from(digest.subarray(0, 16)).toString("base64url");
}
