import { describe, expect, it } from "bun:test";
import { newPeerToken, peerIdentity, peerTokenOf } from "../../src/protocol/peer-token.ts";

describe("peer tokens", () => {
  it("new tokens are 22 base64url characters, distinct, and read back", () => {
    const tokens = new Set(Array.from({ length: 100 }, () => newPeerToken()));
    expect(tokens.size).toBe(100);
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(peerTokenOf(`peer=${t}`)).toBe(t);
    }
  });

  it("the identity is a stable 128-bit hash that does not contain the token", () => {
    const t = newPeerToken();
    expect(peerIdentity(t)).toBe(peerIdentity(t));
    expect(peerIdentity(t)).not.toBe(peerIdentity(newPeerToken()));
    expect(peerIdentity(t)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(peerIdentity(t)).not.toContain(t.slice(0, 8));
  });

  it.each(["peer=", "peer=abc", "Peer=AAAAAAAAAAAAAAAA", "peer=AAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAA"])("%j is no peer token", (text) => {
    expect(peerTokenOf(text)).toBeUndefined();
  });
});
