import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import type { Subprocess } from "bun";
import { startRelay, TestPeer, type TestRelay, bytes, text, eventually, register } from "../utils.ts";
import { parseRetry } from "../../src/protocol/replies.ts";
import { FakeRelay } from "../client/fake-relay.ts";
import { RelayProcess } from "./relay-process.ts";

const MAIN = `${import.meta.dir}/../../src/cli/main.ts`;

let relay: TestRelay;
beforeAll(async () => {
  relay = await startRelay("ts");
});
afterAll(async () => {
  await relay.stop();
});

const children: Subprocess[] = [];
const peers: TestPeer[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  for (const p of peers.splice(0)) p.socket.close();
});

interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  output: () => string;
  waitFor: (pattern: RegExp, ms?: number) => Promise<RegExpMatchArray>;
}

function connect(...args: string[]): Running {
  const proc = Bun.spawn(["bun", MAIN, "connect", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  children.push(proc);
  let out = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) out += new TextDecoder().decode(chunk);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return {
    proc,
    output: () => out,
    async waitFor(pattern, ms = 10_000) {
      try {
        await eventually(() => pattern.test(out), ms);
      } catch {
        throw new Error(`no ${pattern} in connect output:\n${out}`);
      }
      return out.match(pattern)!;
    },
  };
}

async function exitOf(r: Running, ms = 15_000): Promise<number> {
  const timer = setTimeout(() => r.proc.kill("SIGKILL"), ms);
  const code = await r.proc.exited;
  clearTimeout(timer);
  return code;
}

async function openPeer(host = "127.0.0.1"): Promise<TestPeer> {
  const peer = await TestPeer.open(host);
  peers.push(peer);
  return peer;
}

/** A port free on every address (`--register-only` binds the wildcard): bound once, then released. */
/** An app sends "ping" to the listen side; the server behind the forward side answers "pong". */
async function pingPong(listenPort: number, server: TestPeer): Promise<TestPeer> {
  const app = await openPeer();
  app.socket.send(bytes("ping"), listenPort, "127.0.0.1");
  await eventually(() => server.inbox.length > 0, 5000);
  expect(text(server.inbox[0]!.data)).toBe("ping");
  const from = server.inbox[0]!;
  server.socket.send(bytes("pong"), from.port, from.address);
  await eventually(() => app.inbox.length > 0, 5000);
  expect(text(app.inbox[0]!.data)).toBe("pong");
  return app;
}

async function freePort(): Promise<number> {
  const probe = await TestPeer.open("0.0.0.0");
  const port = probe.port;
  probe.socket.close();
  return port;
}

describe("quic-relay connect", () => {
  it("tunnels an app on --listen to a server on --forward and back", async () => {
    const server = await openPeer();
    const relayAddr = `127.0.0.1:${relay.port}`;
    const serverSide = connect("--relay", relayAddr, "--session", "cli-tunnel", "--forward", `127.0.0.1:${server.port}`);
    await serverSide.waitFor(/tunnel up/);
    const clientSide = connect("--relay", relayAddr, "--session", "cli-tunnel", "--listen", "127.0.0.1:0", "--keepalive-secs", "0.3");
    const listenPort = Number((await clientSide.waitFor(/app sends to 127\.0\.0\.1:(\d+)/))[1]);

    const app = await pingPong(listenPort, server);
    expect(app.inbox[0]!.port).toBe(listenPort);
    // Keepalive ACKs must be consumed by the tunnel. Once the relay answered two more keepalive
    // REGs, a marker from the server follows those ACKs to the client side, and on to the app.
    const regs = relay.relay.plane.counters().controlPackets;
    await eventually(() => relay.relay.plane.counters().controlPackets >= regs + 2, 10_000);
    const from = server.inbox[0]!;
    server.socket.send(bytes("marker"), from.port, from.address);
    await eventually(() => app.inbox.length >= 2, 5000);
    expect(app.inbox.map((r) => text(r.data))).toEqual(["pong", "marker"]);

    serverSide.proc.kill("SIGTERM");
    expect(await exitOf(serverSide)).toBe(0);
    expect(serverSide.output()).toMatch(/SIGTERM: closing; to relay 2 pkts/); // pong and marker
  }, 30_000);

  it("exits non-zero with one line when the relay does not answer", async () => {
    const silent = await openPeer();
    const r = connect("--relay", `127.0.0.1:${silent.port}`, "--session", "x", "--listen", "127.0.0.1:0", "--tries", "3", "--ack-timeout-ms", "100");
    expect(await exitOf(r)).toBe(1); // it gave up by itself: exitOf's SIGKILL would not give 1
    expect(silent.inbox.length).toBe(3);
    expect(r.output()).toMatch(/did not answer 3 REG attempts/);
  }, 20_000);

  it("prints the relay's refusal reason and exits non-zero", async () => {
    const session = "cli-full";
    const a = await openPeer("127.0.0.2");
    const b = await openPeer("127.0.0.3");
    await register(a, relay.port, session);
    await register(b, relay.port, session);
    const r = connect("--relay", `127.0.0.1:${relay.port}`, "--session", session, "--listen", "127.0.0.1:0");
    expect(await exitOf(r)).toBe(1);
    expect(r.output()).toMatch(/refused the registration: ERR full/);
  }, 20_000);

  it("--register-only registers from --local-port and frees the port for the app (quic-portal-style hand-over)", async () => {
    const session = "cli-handover";
    const partner = await openPeer("127.0.0.2");
    await register(partner, relay.port, session);
    const port = await freePort();
    const r = connect("--relay", `127.0.0.1:${relay.port}`, "--session", session, "--register-only", "--local-port", String(port));
    expect(await exitOf(r)).toBe(0);
    expect(r.output()).toMatch(new RegExp(`from local port ${port} in [\\d.]+ ms; port released`));
    // The "app" binds the same port; the relay already knows that address as the session's peer.
    const bound = await TestPeer.open("127.0.0.1", port);
    peers.push(bound);
    bound.socket.send(bytes("from-app"), relay.port, "127.0.0.1");
    await eventually(() => partner.inbox.some((d) => text(d.data) === "from-app"), 5000);
  }, 20_000);

  it("re-registers after the relay process restarts and traffic flows again", async () => {
    const probe = await openPeer();
    const port = probe.port;
    probe.socket.close();
    peers.splice(peers.indexOf(probe), 1);
    const startRelayProcess = async () => {
      const r = Bun.spawn(["bun", MAIN, "--host", "127.0.0.1", "--port", String(port), "--log-level", "warn", "--dataplane", "ts"], {
        stdout: "ignore",
        stderr: "ignore",
      });
      children.push(r);
      const check = await openPeer();
      await eventually(() => {
        check.socket.send(bytes("REG:restart-check"), port, "127.0.0.1");
        return check.inbox.length > 0;
      }, 10_000, 100);
      return r;
    };
    let relayProcess = await startRelayProcess();
    const server = await openPeer();
    const relayAddr = `127.0.0.1:${port}`;
    const serverSide = connect("--relay", relayAddr, "--session", "restart", "--forward", `127.0.0.1:${server.port}`, "--keepalive-secs", "2");
    await serverSide.waitFor(/tunnel up/);
    const clientSide = connect("--relay", relayAddr, "--session", "restart", "--listen", "127.0.0.1:0", "--keepalive-secs", "2", "--log-level", "debug");
    const listenPort = Number((await clientSide.waitFor(/app sends to 127\.0\.0\.1:(\d+)/))[1]);
    const app = await openPeer();
    app.socket.send(bytes("before"), listenPort, "127.0.0.1");
    await eventually(() => server.inbox.some((d) => text(d.data) === "before"), 5000);

    relayProcess.kill("SIGKILL");
    await relayProcess.exited;
    // The tunnel forwards it to the dead relay and hears the ICMP port unreachable (logged at debug).
    app.socket.send(bytes("while-down"), listenPort, "127.0.0.1");
    await clientSide.waitFor(/relay socket: /);
    relayProcess = await startRelayProcess();
    const restarted = performance.now();
    await eventually(() => {
      app.socket.send(bytes("after"), listenPort, "127.0.0.1");
      return server.inbox.some((d) => text(d.data) === "after");
    }, 12_000, 200);
    console.log(`[connect] traffic flowed again ${Math.round(performance.now() - restarted)} ms after the relay restarted`);
    expect(clientSide.output()).toMatch(/re-registered|keepalive REG unanswered/);
  }, 40_000);

  it("refuses contradictory flags with exit code 2", async () => {
    const r = connect("--relay", "127.0.0.1:9", "--session", "x", "--listen", "127.0.0.1:0", "--forward", "127.0.0.1:1");
    expect(await exitOf(r)).toBe(2);
    expect(r.output()).toMatch(/exactly one of --listen/);
    const bad = connect("--relay", "nonsense", "--session", "x", "--listen", "127.0.0.1:0");
    expect(await exitOf(bad)).toBe(2);
    expect(bad.output()).toMatch(/--relay must be host:port/);
    const badList = connect("--relay", "127.0.0.1:9,", "--session", "x", "--listen", "127.0.0.1:0");
    expect(await exitOf(badList)).toBe(2);
    expect(badList.output()).toMatch(/--relay must be host:port/);
    const noFailover = connect("--relay", "127.0.0.1:9", "--session", "x", "--listen", "127.0.0.1:0", "--failover-after", "0");
    expect(await exitOf(noFailover)).toBe(2);
    expect(noFailover.output()).toMatch(/--failover-after must be at least 1/);
  }, 20_000);
});

describe("quic-relay connect with two relay addresses", () => {
  /** A UDP port free on `host`: bound once, then released. */
  const freePortOn = async (host: string) => {
    const probe = await TestPeer.open(host);
    const port = probe.port;
    probe.socket.close();
    return port;
  };

  it("both ends move to the second relay when the first is killed (SIGKILL), and datagrams flow again", async () => {
    const hosts = ["127.0.0.1", "127.0.0.2"];
    const ports = [await freePortOn(hosts[0]!), await freePortOn(hosts[1]!)];
    const relays = hosts.map((host, i) => RelayProcess.spawn(["--host", host, "--port", String(ports[i]), "--dataplane", "ts"]));
    children.push(...relays.map((r) => r.proc));
    await Promise.all(relays.map((r) => r.waitFor("listening on udp")));
    const relayList = `${hosts[0]}:${ports[0]},${hosts[1]}:${ports[1]}`;
    const fast = ["--keepalive-secs", "0.5", "--ack-timeout-ms", "100"];
    const server = await openPeer();
    const serverSide = connect("--relay", relayList, "--session", "failover", "--forward", `127.0.0.1:${server.port}`, ...fast);
    await serverSide.waitFor(new RegExp(`tunnel up: session failover via 127\\.0\\.0\\.1:${ports[0]} `));
    const clientSide = connect("--relay", relayList, "--session", "failover", "--listen", "127.0.0.1:0", ...fast);
    const listenPort = Number((await clientSide.waitFor(/app sends to 127\.0\.0\.1:(\d+)/))[1]);
    const app = await openPeer();
    /** The app sends `word` until the server has it; the server answers until the app has the answer. */
    const roundTrip = async (word: string) => {
      const got = (peer: TestPeer, w: string) => peer.inbox.find((d) => text(d.data) === w);
      await eventually(() => (app.send(word, listenPort), got(server, word) !== undefined), 10_000, 100);
      const from = got(server, word)!;
      await eventually(() => (server.send(`re:${word}`, from.port, from.address), got(app, `re:${word}`) !== undefined), 10_000, 100);
    };
    await roundTrip("before");

    relays[0]!.proc.kill("SIGKILL");
    await relays[0]!.exited();
    const killed = performance.now();
    const moved = new RegExp(`relay 127\\.0\\.0\\.1:${ports[0]} stopped answering \\(3 REGs unanswered\\); moving session failover to 127\\.0\\.0\\.2:${ports[1]}`);
    await serverSide.waitFor(moved);
    await clientSide.waitFor(moved);
    await roundTrip("after");
    console.log(`[connect] both ends moved and datagrams flowed end to end again ${Math.round(performance.now() - killed)} ms after the kill`);
    for (const side of [serverSide, clientSide]) expect(side.output().match(/stopped answering/g)).toHaveLength(1);
    expect(relays[1]!.output()).toMatch(/paired/);
    serverSide.proc.kill("SIGTERM");
    expect(await exitOf(serverSide)).toBe(0);
    expect(serverSide.output()).toMatch(/registrations, 1 relay changes/);
  }, 40_000);
});

/** REG, answering a RETRY with its cookie as a direct-mode app would; returns the final reply. */
async function registerWithProof(peer: TestPeer, relayPort: number, session: string): Promise<string> {
  peer.send(`REG:${session}\n`, relayPort);
  const reply = await peer.next();
  const cookie = parseRetry(reply.data);
  if (cookie === undefined) return text(reply.data);
  peer.send(`REG:${session} ${cookie}\n`, relayPort);
  return peer.nextText();
}

describe("quic-relay connect against a relay that requires return-routability proof", () => {
  let proofRelay: FakeRelay;
  beforeAll(async () => {
    proofRelay = await FakeRelay.start({ requireCookies: true });
  });
  afterAll(() => proofRelay.close());

  it("answers ERR short with the placeholder, then the RETRY, and echoes the cookie in keepalives", async () => {
    const session = "cli-proof"; // short: its first REG cannot be answered with a RETRY
    const server = await openPeer();
    const relayAddr = `127.0.0.1:${proofRelay.port}`;
    const serverSide = connect("--relay", relayAddr, "--session", session, "--forward", `127.0.0.1:${server.port}`);
    await serverSide.waitFor(/tunnel up/);
    expect(serverSide.output()).toMatch(/address verified by RETRY/);
    // Without the move flag and peer token: its first REG is short (with them it is long enough for a RETRY).
    const clientSide = connect("--relay", relayAddr, "--session", session, "--listen", "127.0.0.1:0", "--keepalive-secs", "0.2", "--no-follow-moves");
    const listenPort = Number((await clientSide.waitFor(/app sends to 127\.0\.0\.1:(\d+)/))[1]);

    const app = await pingPong(listenPort, server);

    // The client side's REGs: plain, placeholder, then its cookie in the answer and every keepalive.
    const ports = [...new Set(proofRelay.regs.filter((r) => r.session === session).map((r) => r.port))];
    expect(ports).toHaveLength(2); // the server side registered first, then the client side
    const fromClient = () => proofRelay.regs.filter((r) => r.port === ports[1]);
    await eventually(() => fromClient().length >= 5, 5000);
    const cookies = fromClient().map((r) => r.cookie ?? "-");
    expect(cookies.slice(0, 2)).toEqual(["-", "AAAAAAAAAAAAAAAA"]);
    expect(proofRelay.retries).toContain(cookies[2]!);
    expect(new Set(cookies.slice(2)).size).toBe(1);
    expect(app.inbox.map((r) => text(r.data))).toEqual(["pong"]);
  }, 30_000);

  it("--register-only answers the RETRY from --local-port before it releases the port", async () => {
    const session = "cli-handover-with-proof-0001"; // long enough for a RETRY to the first REG
    const partner = await openPeer("127.0.0.2");
    expect(await registerWithProof(partner, proofRelay.port, session)).toBe("ACK\n");
    const port = await freePort();
    const r = connect("--relay", `127.0.0.1:${proofRelay.port}`, "--session", session, "--register-only", "--local-port", String(port));
    expect(await exitOf(r)).toBe(0);
    expect(r.output()).toMatch(new RegExp(`from local port ${port} in [\\d.]+ ms; port released for the app \\(address verified by RETRY\\)`));
    const fromPort = proofRelay.regs.filter((reg) => reg.port === port).map((reg) => reg.cookie ?? "-");
    expect(fromPort).toHaveLength(2);
    expect(fromPort[0]).toBe("-");
    // The app binds the same port and is the session's peer without sending a REG itself.
    const bound = await TestPeer.open("127.0.0.1", port);
    peers.push(bound);
    bound.socket.send(bytes("from-app"), proofRelay.port, "127.0.0.1");
    await eventually(() => partner.inbox.some((d) => text(d.data) === "from-app"), 5000);
  }, 20_000);
});

describe("quic-relay connect and MOVE", () => {
  /** A relay at 127.0.0.1 that sends every flagged REG to a second one at 127.0.0.2. */
  async function movingRelays(): Promise<[FakeRelay, FakeRelay]> {
    const r2 = await FakeRelay.start({}, "127.0.0.2");
    const r1 = await FakeRelay.start({ moveTo: { host: r2.host, port: r2.port } }, "127.0.0.1");
    cleanups.push(() => r1.close(), () => r2.close());
    return [r1, r2];
  }
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  it("sends the move flag and follows a MOVE to another --relay address, one log line", async () => {
    const [r1, r2] = await movingRelays();
    const session = "cli-move-0001";
    const r = connect("--relay", `127.0.0.1:${r1.port},127.0.0.2:${r2.port}`, "--session", session, "--listen", "127.0.0.1:0");
    await r.waitFor(new RegExp(`tunnel up: session ${session} via 127\\.0\\.0\\.2:${r2.port} `));
    expect(r.output().match(new RegExp(`relay 127\\.0\\.0\\.1:${r1.port} moved session ${session} to 127\\.0\\.0\\.2:${r2.port}, its partner's relay`, "g"))).toHaveLength(1);
    expect(r1.regs.map((reg) => [reg.session, reg.move])).toEqual([[session, true]]);
    expect(r2.regs[0]).toMatchObject({ session, move: true, cookie: undefined });
    r.proc.kill("SIGTERM");
    expect(await exitOf(r)).toBe(0);
    expect(r.output()).toMatch(/1 relay changes \(1 by MOVE\)/);
  }, 20_000);

  it("--no-follow-moves sends no flag, so the first relay registers it", async () => {
    const [r1, r2] = await movingRelays();
    const session = "cli-no-move-0001";
    const r = connect("--relay", `127.0.0.1:${r1.port},127.0.0.2:${r2.port}`, "--session", session, "--listen", "127.0.0.1:0", "--no-follow-moves");
    await r.waitFor(new RegExp(`tunnel up: session ${session} via 127\\.0\\.0\\.1:${r1.port} `));
    expect(r1.regs.map((reg) => [reg.session, reg.move])).toEqual([[session, false]]);
    expect(r1.moves).toBe(0);
    expect(r2.regs).toEqual([]);
  }, 20_000);
});
