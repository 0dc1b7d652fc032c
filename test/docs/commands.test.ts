/**
 * The command blocks of docs/deploy.md and docs/operations.md, run as an operator would run them,
 * so the documents cannot drift from the binary, the unit and the config they install.
 *
 * Each shell block carries a marker (test/docs/markdown.ts): `ci: run` blocks run in document order
 * on one stand-in host (test/docs/fake-host.ts: the real binary from this checkout, the real unit
 * and config under a temporary root, systemd-analyze and curl when installed, stand-ins for sudo,
 * systemctl and journalctl); the `ci: output` block after one lists lines it must print; `ci: skip`
 * blocks are reported with their reason. A block that needs a missing tool is skipped with one line.
 *
 * deploy.md's section 1 is not run (gh, scp), but its scp line says which files reach the VM's
 * /tmp, and only those are put into the stand-in's /tmp: an install step that needs a file the
 * procedure never copies fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { availablePlanes } from "../../src/dataplane/select.ts";
import { freeTcpPort, freeUdpPort } from "../cli/relay-process.ts";
import { register, TestPeer, text } from "../utils.ts";
import { createFakeHost, type FakeHost, REPO } from "./fake-host.ts";
import { missingLine, parseBlocks, runBlocks, unmarkedShellBlocks } from "./markdown.ts";

const DOCS = ["docs/deploy.md", "docs/operations.md"];

describe("every shell block in the operator docs is marked run or skip", () => {
  for (const doc of DOCS) {
    it(doc, () => {
      const blocks = parseBlocks(readFileSync(join(REPO, doc), "utf8"));
      const unmarked = unmarkedShellBlocks(blocks).map((b) => `${doc}:${b.line}`);
      expect(unmarked, "mark each with <!-- ci: run --> or <!-- ci: skip REASON -->").toEqual([]);
      // Parsing also checks that every output block follows a run block.
      runBlocks(blocks);
    });
  }
});

/** Hooks around the blocks with an id: what the doc assumes happened between the commands. */
interface Hooks {
  before?(host: FakeHost): Promise<void>;
  after?(host: FakeHost): Promise<void>;
}

for (const doc of DOCS) {
  const markdown = readFileSync(join(REPO, doc), "utf8");
  const blocks = parseBlocks(markdown);
  const runs = runBlocks(blocks);
  describe(`${doc}: the blocks run in order on a stand-in host`, () => {
    let host: FakeHost;
    const hooks: Record<string, Hooks> = {};

    beforeAll(async () => {
      if (runs.length === 0) return;
      host = await createFakeHost({ relay: await freeUdpPort(), metrics: await freeTcpPort() });
      // Section 1's copy: exactly the files its scp names arrive in /tmp.
      const scp = blocks.flatMap((b) => b.text.split("\n")).find((l) => /^\s*scp\s/.test(l));
      if (scp) {
        const words = scp.trim().split(/\s+/).slice(1);
        for (const source of words.slice(0, -1)) host.deliver(source);
      }
      Object.assign(hooks, restartHooks());
    });
    afterAll(async () => {
      await host?.cleanup();
    });

    for (const b of blocks) {
      if (b.marker?.kind === "skip") it.skip(`${doc}:${b.line} (${b.marker.reason})`, () => {});
    }
    if (runs.length === 0) {
      it(`${doc} has no block to run`, () => {
        expect(blocks.filter((b) => b.marker?.kind === "run")).toEqual([]);
      });
    }
    for (const block of runs) {
      const missing = block.needs.filter((tool) => !Bun.which(tool));
      const name = `${doc}:${block.line}${block.id ? ` (${block.id})` : ""}`;
      if (missing.length > 0) {
        console.log(`skip ${name}: ${missing.join(", ")} not installed`);
        it.skip(`${name} (needs ${missing.join(", ")})`, () => {});
        continue;
      }
      it(name, async () => {
        await hooks[block.id ?? ""]?.before?.(host);
        const result = await host.run(host.localize(block.text));
        const context = `${name} exited ${result.code}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
        expect(result.code, context).toBe(0);
        if (block.expected) {
          const expected = block.expected.map((line) => planeAsHere(host.localize(line)));
          const absent = missingLine(expected, result.stdout.split("\n"));
          expect(absent, `this line of the doc's output is not in what the commands printed\n${context}`).toBeUndefined();
        }
        await hooks[block.id ?? ""]?.after?.(host);
      }, 60_000);
    }
  });
}

/** The docs show the native plane; a machine whose addon does not load runs the TS plane. */
function planeAsHere(line: string): string {
  if (availablePlanes().includes("native")) return line;
  return line.replace("dataplane=native", "dataplane=ts").replace('kind="native"', 'kind="ts"');
}

/**
 * deploy.md section 6: a restart keeps paired peers talking without a new REG. Before the restart
 * two peers pair and exchange a datagram; after it, datagrams flow both ways with no REG sent.
 */
function restartHooks(): Record<string, Hooks> {
  let peers: { a: TestPeer; b: TestPeer } | undefined;
  return {
    restart: {
      async before(host) {
        host.deliver("quic-relay-new");
        const a = await TestPeer.open("127.0.0.2");
        const b = await TestPeer.open("127.0.0.3");
        peers = { a, b };
        const session = crypto.randomUUID();
        expect(await register(a, host.relayPort, session)).toBe("ACK\n");
        expect(await register(b, host.relayPort, session)).toBe("ACK\n");
        a.send("before the restart", host.relayPort);
        expect(await b.nextText()).toBe("before the restart");
      },
      async after(host) {
        const { a, b } = peers!;
        try {
          a.send("after the restart", host.relayPort);
          expect(text((await b.next()).data)).toBe("after the restart");
          b.send("and back", host.relayPort);
          expect(await a.nextText()).toBe("and back");
        } finally {
          a.close();
          b.close();
        }
      },
    },
  };
}
