/**
 * A third-party STUN client against the relay: Debian's `stun` (package stun-client, an RFC 3489
 * classic client) run as a real process against a relay on each data plane. It must learn its
 * mapped address from the relay's answer; its change requests (flags 4 and 2) are refused on
 * purpose, without an answer (an answer would read as the change honoured).
 */
import { afterEach, describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { planesUnderTest, startRelay, type TestRelay } from "../utils.ts";

const STUN = "/usr/bin/stun";
const present = existsSync(STUN);
if (!present) console.log(`Debian stun client tests skipped: ${STUN} is not installed (package stun-client)`);

/**
 * A source port P with P+1 free as well (the client binds both, on every address): held bound
 * while looking, released just before the client starts.
 */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await Bun.udpSocket({ hostname: "0.0.0.0", port: 0 });
    const port = first.port;
    if (port < 65_535) {
      const second = await Bun.udpSocket({ hostname: "0.0.0.0", port: port + 1 }).catch(() => undefined);
      if (second) {
        second.close();
        first.close();
        return port;
      }
    }
    first.close();
  }
  throw new Error("no two consecutive free UDP ports");
}

async function runStun(relayPort: number, sourcePort: number): Promise<{ killed: boolean; output: string }> {
  const proc = Bun.spawn([STUN, `127.0.0.1:${relayPort}`, "-v", "-p", String(sourcePort)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  // A deadline for a hung client, not a measurement: it normally ends within a few seconds.
  const timer = setTimeout(() => proc.kill("SIGKILL"), 25_000);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  // Its exit status is its verdict on the NAT (a "firewall" here: the changes go unanswered).
  return { killed: proc.signalCode !== null, output: `${stdout}\n${stderr}` };
}

describe.skipIf(!present).each(planesUnderTest())("Debian stun client against the relay (%s plane)", (plane) => {
  let relay: TestRelay | undefined;
  afterEach(async () => {
    await relay?.stop();
    relay = undefined;
  });

  it(
    "learns its address from the relay; change requests are refused without an answer",
    async () => {
      relay = await startRelay(plane);
      const source = await freePortPair();
      const { killed, output } = await runStun(relay.port, source);
      expect(killed).toBe(false);
      expect(output).toContain(`MappedAddress = 127.0.0.1:${source}`);
      // The relay has no second address here: the classic answer carries no CHANGED-ADDRESS.
      expect(output).not.toContain("ChangedAddress");
      const c = relay.stun!.counters;
      expect(c.answered).toBeGreaterThanOrEqual(1);
      expect(c.changeRefused).toBeGreaterThanOrEqual(1);
      expect(c.malformed).toBe(0);
      expect(c.unknownAttribute).toBe(0);
      // Every request the client sent is 28 bytes (header and CHANGE-REQUEST), each answer 32.
      expect(c.bytesIn).toBe(28 * (c.answered + c.changeRefused + c.rateLimited + c.budget));
      expect(c.bytesOut).toBe(32 * c.answered);
      expect(relay.relay.table.sessionCount).toBe(0);
    },
    30_000,
  );
});
