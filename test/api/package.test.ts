/**
 * The package as an app uses it: an app directory outside the repository, with its own
 * package.json depending on quic-relay and node_modules/quic-relay a symlink to this checkout (what
 * `bun add file:…` and `bun link` make; no registry needed). Its scripts import "quic-relay" and
 * "quic-relay/client" by name, so resolution goes through package.json's "exports":
 *
 * - Bun: the app starts a relay, registers two peers with register(), forwards a datagram each
 *   way, checks metrics and health, and stops; run as its own `bun` process.
 * - TypeScript: the app type-checks against the package's types with the tsconfig `bun init`
 *   writes (noUncheckedIndexedAccess off), and a wrong option type is an error (not `any`).
 * - Node: importing the package fails at once with one sentence saying it needs Bun; the client
 *   module bundled for Node with `bun build --target node` runs RelayRegistration on a node:dgram
 *   socket (what docs/integration.md, "Embedding", tells Node apps to do).
 * - npm pack: what would be published has the entry points and leaves tests and builds out.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RelayHandle, startRelay } from "../../src/index.ts";
import { missingLine } from "../docs/markdown.ts";

const REPO = join(import.meta.dir, "../..");
let app: string;

async function run(argv: string[], cwd: string) {
  const proc = Bun.spawn(argv, { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

const APP_TS = `
import { ConfigError, startRelay } from "quic-relay";
import { register, RelayRegistration } from "quic-relay/client";

const relay = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "warn", metricsListen: "127.0.0.1:0" });
const sessionId = crypto.randomUUID();
const atServer = Promise.withResolvers<string>();
const atClient = Promise.withResolvers<string>();
const text = (data: Uint8Array) => new TextDecoder().decode(data);
const server = await register({ relay: relay.address, sessionId, localHost: "127.0.0.2", onData: (d) => atServer.resolve(text(d)) });
const client = await register({ relay: relay.address, sessionId, localHost: "127.0.0.3", onData: (d) => atClient.resolve(text(d)) });
client.send("hello through the relay");
const received = await atServer.promise;
server.send("and back");
const replied = await atClient.promise;
const metrics = relay.metrics();
const health = (await fetch(relay.metricsUrl + "/healthz")).status;
const status = relay.status();
let refused = "";
try {
  await startRelay({ port: 70000 });
} catch (error) {
  if (error instanceof ConfigError) refused = error.message;
}
client.close();
server.close();
await relay.stop();
console.log(JSON.stringify({
  received, replied, health, sessions: status.sessions, refused,
  paired: metrics.includes('quic_relay_sessions_active{state="paired"} 1'),
  registration: typeof RelayRegistration,
}));
`;

/** Lines that must not type-check: each @ts-expect-error fails the check if its line is fine. */
const TYPES_TS = `
import { startRelay, type RelayHandle } from "quic-relay";
import { register, type RelaySocket } from "quic-relay/client";

export async function typed(): Promise<[RelayHandle, RelaySocket]> {
  // @ts-expect-error port is a number
  await startRelay({ port: "4433" });
  // @ts-expect-error no such option
  await startRelay({ prot: 4433 });
  // @ts-expect-error sessionId is required
  await register({ relay: "127.0.0.1:4433" });
  const relay = await startRelay({ port: 0, metricsListen: "127.0.0.1:0" });
  const port: number = relay.address.port;
  const socket = await register({ relay: relay.address, sessionId: String(port) });
  return [relay, socket];
}
`;

const NODE_IMPORT = `
for (const name of ["quic-relay", "quic-relay/client"]) {
  try {
    await import(name);
    console.log(name + ": loaded");
  } catch (error) {
    console.log(name + ": " + error.message);
  }
}
`;

/** A Node app in direct mode: its own node:dgram socket, RelayRegistration from the bundle. */
const NODE_DIRECT = `
import dgram from "node:dgram";
import { RelayRegistration, defaultRegistrationSettings } from "./vendor/quic-relay-client.mjs";

const [port, sessionId] = [Number(process.argv[2]), process.argv[3]];
const host = "127.0.0.1";
const deferred = () => { let resolve, reject; const promise = new Promise((y, n) => { resolve = y; reject = n; }); return { promise, resolve, reject }; };
function peer(localAddress) {
  const socket = dgram.createSocket("udp4");
  const registered = deferred();
  const data = deferred();
  const reg = new RelayRegistration(sessionId, defaultRegistrationSettings, {
    sendReg: (datagram) => socket.send(datagram, port, host),
    registered: ({ first }) => first && registered.resolve(),
    lost() {},
    refused: ({ code }) => registered.reject(new Error("refused: " + code)),
    unreachable: () => registered.reject(new Error("unreachable")),
  });
  socket.on("message", (message, from) => {
    if (from.port !== port || from.address !== host) return;
    if (!reg.onRelayDatagram(message)) data.resolve(message.toString());
  });
  socket.bind(0, localAddress, () => reg.start());
  return { socket, reg, registered: registered.promise, data: data.promise };
}
const a = peer("127.0.0.2");
await a.registered;
const b = peer("127.0.0.3");
await b.registered;
a.socket.send("from node", port, host);
console.log(JSON.stringify({ received: await b.data }));
for (const p of [a, b]) { p.reg.stop(); p.socket.close(); }
`;

beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), "quic-relay-app-"));
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "relay-app", private: true, type: "module", dependencies: { "quic-relay": `file:${REPO}` } }, null, 2));
  mkdirSync(join(app, "node_modules"));
  symlinkSync(REPO, join(app, "node_modules/quic-relay"));
  // What `bun add -d @types/bun` gives an app; here the copy this checkout installed.
  symlinkSync(join(REPO, "node_modules/bun-types"), join(app, "node_modules/bun-types"));
  writeFileSync(join(app, "app.ts"), APP_TS);
  writeFileSync(join(app, "types.ts"), TYPES_TS);
  writeFileSync(join(app, "example.ts"), docBlock("example: app.ts"));
  writeFileSync(join(app, "node-import.mjs"), NODE_IMPORT);
  writeFileSync(join(app, "node-direct.mjs"), NODE_DIRECT);
  // The tsconfig `bun init` writes (Bun 1.x), with bun-types named, but noUncheckedIndexedAccess off:
  // TypeScript checks the package's sources (its types) with the app's options, and they are
  // written without it (docs/integration.md, "Embedding", says so).
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        lib: ["ESNext"],
        target: "ESNext",
        module: "Preserve",
        moduleDetection: "force",
        jsx: "react-jsx",
        allowJs: true,
        moduleResolution: "bundler",
        allowImportingTsExtensions: true,
        verbatimModuleSyntax: true,
        noEmit: true,
        strict: true,
        skipLibCheck: true,
        noFallthroughCasesInSwitch: true,
        noUncheckedIndexedAccess: false,
        noImplicitOverride: true,
        types: ["bun-types"],
      },
      include: ["app.ts", "types.ts", "example.ts"],
    }),
  );
});
afterAll(() => rmSync(app, { recursive: true, force: true }));

/** A fenced block right after `<!-- MARKER ... -->` in docs/integration.md. */
function docBlock(marker: string): string {
  const doc = readFileSync(join(REPO, "docs/integration.md"), "utf8");
  const m = new RegExp(`<!-- ${marker}\\b[^>]*-->\\n(\`{3,})[\\w-]*\\n([\\s\\S]*?)\\n\\1\\n`).exec(doc);
  if (!m) throw new Error(`docs/integration.md has no block after <!-- ${marker} -->`);
  return m[2]!;
}

describe("an app using the package", () => {
  it("runs the example of docs/integration.md (Embedding) and prints what the doc shows", async () => {
    const result = await run(["bun", "example.ts"], app);
    expect(result.code, result.stderr).toBe(0);
    const expected = docBlock("example output").split("\n").filter((l) => l.trim() !== "");
    const absent = missingLine(expected, result.stdout.split("\n"));
    expect(absent, `not printed:\n${result.stdout}${result.stderr}`).toBeUndefined();
  });

  it("on Bun: starts a relay, registers two peers, forwards both ways, stops (its own process)", async () => {
    const result = await run(["bun", "app.ts"], app);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout.trim().split("\n").pop()!);
    expect(out).toEqual({
      received: "hello through the relay",
      replied: "and back",
      health: 200,
      sessions: 1,
      refused: "options.port must be an integer from 0 to 65535, got '70000'",
      paired: true,
      registration: "function",
    });
  });

  it("imports only what package.json exports: a deep path into src/ does not resolve", async () => {
    writeFileSync(join(app, "deep.ts"), 'import "quic-relay/src/config/config.ts";\n');
    const result = await run(["bun", "deep.ts"], app);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("quic-relay/src/config/config.ts");
  });

  it("type-checks with the package's types under bun init's tsconfig, and wrong calls are errors", async () => {
    const result = await run(["bun", join(REPO, "node_modules/typescript/bin/tsc"), "-p", "."], app);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  }, 120_000);

  const node = Bun.which("node");
  if (!node) console.log("skip the Node checks: node not installed");

  it.skipIf(!node)("on Node: importing the package fails at once, saying it needs Bun", async () => {
    const result = await run([node!, "node-import.mjs"], app);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const [i, name] of ["quic-relay", "quic-relay/client"].entries()) {
      expect(lines[i]).toStartWith(`${name}: quic-relay runs on Bun`);
    }
  });

  describe.skipIf(!node)("on Node, the client module bundled with bun build --target node", () => {
    let relay: RelayHandle;
    beforeAll(async () => {
      relay = await startRelay({ host: "127.0.0.1", port: 0, logLevel: "error" });
    });
    afterAll(async () => {
      await relay?.stop();
    });

    it("registers two node:dgram sockets with RelayRegistration and forwards a datagram", async () => {
      const build = await run(
        ["bun", "build", "node_modules/quic-relay/src/api/client.ts", "--target", "node", "--outfile", "vendor/quic-relay-client.mjs"],
        app,
      );
      expect(build.code, build.stderr).toBe(0);
      const result = await run([node!, "node-direct.mjs", String(relay.address.port), crypto.randomUUID()], app);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout.trim())).toEqual({ received: "from node" });
      expect(relay.status().sessions).toBe(1);
    });
  });
});

describe("npm pack", () => {
  const npm = Bun.which("npm");
  if (!npm) console.log("skip npm pack: npm not installed");
  it.skipIf(!npm)("publishes the entry points and the sources they need, not tests or builds", async () => {
    const result = await run([npm!, "pack", "--dry-run", "--json", "--ignore-scripts"], REPO);
    expect(result.code, result.stderr).toBe(0);
    const files = (JSON.parse(result.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const path of ["package.json", "src/index.ts", "src/api/client.ts", "src/api/node.cjs", "src/client/index.ts", "src/cli/main.ts", "CMakeLists.txt", "deploy/quic-relay.service"]) {
      expect(files).toContain(path);
    }
    expect(files.filter((f) => /^(test|bench|build|dist|node_modules|\.tmp)\//.test(f))).toEqual([]);
  });
});
