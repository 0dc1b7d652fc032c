import type { DataPlaneKind } from "../../src/dataplane/types.ts";
import { createRegPolicy, type RegPolicyOptions, type SecurityPolicy } from "../../src/security/policy.ts";
import { mintToken } from "../../src/security/token.ts";
import { eventually, longHeader, startRelay, type TestPeer, type TestRelay } from "../utils.ts";

export const SECRET = new TextEncoder().encode("security-test-secret-0123456789");
export { CLIENT_CID, quicHandshake, SERVER_CID } from "../utils.ts";
import { CLIENT_CID, SERVER_CID } from "../utils.ts";

export const OPEN_LIMITS: RegPolicyOptions = { secrets: [], maxSessions: 100_000, maxSessionsPerHost: 1000, regRate: 0, regBurst: 1 };

export async function startSecureRelay(
  plane: DataPlaneKind,
  options: Partial<RegPolicyOptions> = {},
  config: Parameters<typeof startRelay>[1] = {},
): Promise<{ relay: TestRelay; policy: SecurityPolicy }> {
  const policy = createRegPolicy({ ...OPEN_LIMITS, ...options });
  const relay = await startRelay(plane, { ...config, policy });
  return { relay, policy };
}

/** The REG session field for `session`: a token when `auth`, else the bare id. */
export function fieldFor(session: string, auth: boolean, ttlSecs = 60): string {
  return auth ? mintToken(SECRET, session, Math.floor(Date.now() / 1000) + ttlSecs) : session;
}

/** The REG datagram for `session` as a client's first REG (no cookie). */
export function regFor(session: string, auth: boolean, ttlSecs = 60): string {
  return `REG:${fieldFor(session, auth, ttlSecs)}\n`;
}

/** Sends numbered short-header datagrams both ways until stopped; counts what arrives. */
export function pumpTraffic(relay: TestRelay, a: TestPeer, b: TestPeer, everyMs = 3) {
  let sent = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const n = sent++;
      a.send(new Uint8Array([0x41, ...SERVER_CID, 0xaa, n & 255, (n >> 8) & 255]), relay.port);
      b.send(new Uint8Array([0x41, ...CLIENT_CID, 0xbb, n & 255, (n >> 8) & 255]), relay.port);
      await Bun.sleep(everyMs);
    }
  })();
  return {
    async stop(): Promise<number> {
      running = false;
      await loop;
      return sent;
    },
  };
}

export function isTraffic(data: Uint8Array, marker: 0xaa | 0xbb): boolean {
  return data.length === 12 && data[0] === 0x41 && data[9] === marker;
}
