import { afterAll, afterEach, describe, expect, it } from "bun:test";
import { Forger } from "../support/forge.ts";
import { FakeClock } from "../sessions/fixtures.ts";
import { CLIENT_CID, eventually, longHeader, planesUnderTest, register, SERVER_CID, shortHeader, startRelay, type TestRelay, testPeers } from "../utils.ts";

/**
 * Connection-ID evidence against forged sources, on both real data planes, in verified mode with
 * rule 3 off (what `--auth-secret` gives): a raw socket sends from the victim's exact address, a
 * neighbour on the victim's IP then claims the victim with the planted ID. The relay's clock is
 * fake, so the 500 ms rule is walked through deterministically; the datagrams are real.
 */
const forger = Forger.open();
if (typeof forger === "string") console.log(`connection-ID planting tests skipped: ${forger}`);
afterAll(() => {
  if (typeof forger !== "string") forger.close();
});

const A_HOST = "127.0.0.2";
const B_HOST = "127.0.0.3";
/** An ID the client issued and the server switched to: it never appears in a long header. */
const ISSUED_CID = [6, 6, 6, 6, 5, 5, 5, 5];
const PLANTED = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
const hex = (b: number[]) => b.map((x) => x.toString(16).padStart(2, "0")).join("");
const tagged = (cid: number[], tag: string) => shortHeader(cid, [...new TextEncoder().encode(tag)]);
const tagOf = (data: Uint8Array) => new TextDecoder().decode(data.subarray(9));

describe.skipIf(typeof forger === "string").each(planesUnderTest())("connection-ID evidence against forged sources (%s plane)", (plane) => {
  const forge = forger as Forger;
  const open = testPeers();
  let relay: TestRelay | undefined;
  afterEach(async () => {
    await relay?.stop();
    relay = undefined;
  });

  async function paired() {
    const clock = new FakeClock();
    relay = await startRelay(plane, { clock, config: { verifySource: true }, limits: { rebindQuietMs: -1 } });
    const r = relay;
    const [a, b] = [await open(A_HOST), await open(B_HOST)];
    const session = crypto.randomUUID();
    expect(await register(a, r.port, session)).toBe("ACK\n");
    expect(await register(b, r.port, session)).toBe("ACK\n");
    const table = r.relay.table;
    const peerA = () => table.peerAt({ address: a.host, port: a.port });
    const peerB = () => table.peerAt({ address: b.host, port: b.port });
    // The handshake: each side's ID length is learned from its long-header SCID.
    a.send(longHeader([7, 7, 7, 7, 7, 7, 7, 7], CLIENT_CID), r.port);
    await b.next();
    b.send(longHeader(CLIENT_CID, SERVER_CID), r.port);
    await a.next();
    await eventually(() => peerA()?.cids?.ownLength === 8 && peerB()?.cids?.ownLength === 8);
    let n = 0;
    /** One round trip of short headers (A with `aCid`, B with `bCid`), then 10 ms of relay time and a sweep. */
    const round = async (aCid: number[] | undefined, bCid: number[] | undefined) => {
      const tag = `r${n++}`;
      if (aCid) a.send(tagged(aCid, tag), r.port);
      if (bCid) b.send(tagged(bCid, tag), r.port);
      if (aCid) await eventually(() => b.inbox.some((d) => tagOf(d.data) === tag));
      if (bCid) await eventually(() => a.inbox.some((d) => tagOf(d.data) === tag));
      clock.advance(10);
      r.relay.sweep();
    };
    return { r, a, b, clock, table, peerA, peerB, round };
  }

  /** Both sides' current short-header IDs confirmed: traffic both ways for 600 ms of relay time. */
  async function confirmed(bCid = CLIENT_CID) {
    const p = await paired();
    await p.round(SERVER_CID, bCid);
    await eventually(() => p.peerA()?.cids?.current === hex(SERVER_CID) && p.peerB()?.cids?.current === hex(bCid));
    for (let i = 0; i < 60; i++) await p.round(SERVER_CID, bCid);
    expect(p.table.indexSizes().cids).toBe(2);
    p.a.inbox.length = 0;
    p.b.inbox.length = 0;
    return p;
  }

  it("follows the server's NAT rebinding on its first packet, by an ID it only ever sent in short headers", async () => {
    const p = await confirmed(ISSUED_CID);
    const b2 = await open(B_HOST);
    b2.send(tagged(ISSUED_CID, "first from the new port"), p.r.port);
    expect(tagOf((await p.a.next()).data)).toBe("first from the new port");
    p.a.send(tagged(SERVER_CID, "to the new port"), p.r.port);
    expect(tagOf((await b2.next()).data)).toBe("to the new port");
    expect(p.table.stats.rebinds.cid).toBe(1);
    expect(p.b.inbox).toEqual([]);
  });

  it("one forged long header and a burst of forged short headers from the peer's address plant nothing", async () => {
    const p = await confirmed();
    const relayAt = { address: "127.0.0.1", port: p.r.port };
    const aAt = { address: p.a.host, port: p.a.port };
    // The attack of the issue: a long header carrying an attacker-chosen DCID, from A's address...
    forge.send(longHeader(PLANTED, [0xdd, 0xdd, 0xdd, 0xdd]), aAt, relayAt);
    // ...then forged short headers with it, while A and B keep talking, for 1 s of relay time.
    for (let i = 0; i < 100; i++) {
      forge.send(tagged(PLANTED, `forged${i}`), aAt, relayAt);
      await p.round(SERVER_CID, CLIENT_CID);
    }
    await eventually(() => p.b.inbox.filter((d) => tagOf(d.data).startsWith("forged")).length === 100);
    // A neighbour on A's IP claims A with the planted ID.
    const neighbour = await open(A_HOST);
    const unknown = () => p.table.stats.drops["unknown-source"] ?? 0;
    const before = unknown();
    neighbour.send(tagged(PLANTED, "neighbour"), p.r.port);
    await eventually(() => unknown() === before + 1);
    p.b.send(tagged(CLIENT_CID, "still for A"), p.r.port);
    await eventually(() => p.a.inbox.some((d) => tagOf(d.data) === "still for A"));
    expect(p.table.stats.rebinds.cid).toBe(0);
    expect(p.peerA()).toBeDefined();
    expect(neighbour.inbox).toEqual([]);
  });

  it("an ID planted while the peer was idle is undone by the peer's next datagram; the neighbour is cut off", async () => {
    const p = await confirmed();
    const relayAt = { address: "127.0.0.1", port: p.r.port };
    const aAt = { address: p.a.host, port: p.a.port };
    // A idle. The forger sends with PLANTED from A's address; B sends once (the "answer").
    forge.send(tagged(PLANTED, "plant"), aAt, relayAt);
    await eventually(() => p.peerA()?.cids?.current === hex(PLANTED));
    await p.round(undefined, CLIENT_CID);
    p.clock.advance(600);
    p.r.relay.sweep();
    forge.send(tagged(PLANTED, "plant again"), aAt, relayAt);
    await eventually(() => p.b.inbox.some((d) => tagOf(d.data) === "plant again"));
    p.r.relay.sweep();
    expect(p.table.indexSizes().cids).toBe(3);
    // The neighbour takes A's place on its first datagram with the planted ID...
    const neighbour = await open(A_HOST);
    neighbour.send(tagged(PLANTED, "neighbour"), p.r.port);
    await eventually(() => p.table.stats.rebinds.cid === 1);
    // ...until A speaks: its ID was confirmed first, so A gets its place back.
    p.a.send(tagged(SERVER_CID, "A again"), p.r.port);
    await eventually(() => p.b.inbox.some((d) => tagOf(d.data) === "A again"));
    expect(p.peerA()).toBeDefined();
    // The neighbour's next datagrams go nowhere; B's go to A.
    const disputed = () => p.table.stats.drops["cid-disputed"] ?? 0;
    neighbour.send(tagged(PLANTED, "neighbour again"), p.r.port);
    await eventually(() => disputed() === 1 || (p.table.stats.drops["unknown-source"] ?? 0) > 0);
    p.b.send(tagged(CLIENT_CID, "for A"), p.r.port);
    await eventually(() => p.a.inbox.some((d) => tagOf(d.data) === "for A"));
    expect(neighbour.inbox.map((d) => tagOf(d.data))).not.toContain("for A");
    expect(p.b.inbox.map((d) => tagOf(d.data))).not.toContain("neighbour again");
  });
});
