import { describe, expect, it } from "bun:test";
import { sourceGroup } from "../../src/net/address.ts";
import { PeerIndex } from "../../src/sessions/peer-index.ts";
import { NONE_HELD, type Peer, type Session } from "../../src/sessions/types.ts";

function peerMaker(index: PeerIndex) {
  const session: Session = { id: "s", peers: [], lastActivity: 0, held: NONE_HELD, heldBytes: 0, cids: [], slot: 0 };
  return (address: string, port = 1000): Peer => {
    const peer = { id: index.allocateId(), session, endpoint: { address, port }, lastSeen: 0, proven: false, cids: undefined, identity: undefined };
    index.add(peer);
    return peer;
  };
}

describe("PeerIndex source groups", () => {
  it("counts 20 addresses of one IPv6 /64 as one group, and each address as its own host", () => {
    const index = new PeerIndex();
    const add = peerMaker(index);
    const peers = Array.from({ length: 20 }, (_, i) => add(`2001:db8:aa:bb::${(i + 1).toString(16)}`));
    add("2001:db8:aa:bb:ffff:ffff:ffff:ffff", 1);
    add("2001:db8:aa:bb:ffff:ffff:ffff:ffff", 2); // two peers on one address count twice
    expect(index.countInGroup(sourceGroup("2001:db8:aa:bb::1"))).toBe(22);
    expect(index.countInGroup("2001:db8:aa:bb")).toBe(22);
    expect(index.v6GroupCount).toBe(1);
    // Exact hosts stay exact: the rebind rules read these.
    expect(index.countOnHost("2001:db8:aa:bb::1")).toBe(1);
    expect(index.soleOnHost("2001:db8:aa:bb::1")).toBe(peers[0]!);
    expect(index.soleOnHost("2001:db8:aa:bb:ffff:ffff:ffff:ffff")).toBeUndefined();
  });

  it("keeps different /64s apart, whatever the spelling of the address", () => {
    const index = new PeerIndex();
    const add = peerMaker(index);
    add("2001:db8:0:1::1");
    add("2001:0db8:0000:0001:0:0:0:2");
    add("2001:db8:0:2::1");
    add("2001:db8::1"); // 2001:db8:0:0
    expect(index.countInGroup(sourceGroup("2001:db8:0:1::9"))).toBe(2);
    expect(index.countInGroup(sourceGroup("2001:db8:0:2::9"))).toBe(1);
    expect(index.countInGroup(sourceGroup("2001:db8::9"))).toBe(1);
    expect(index.countInGroup(sourceGroup("2001:db8:0:3::1"))).toBe(0);
    expect(index.v6GroupCount).toBe(3);
  });

  it("counts an IPv4 host and its IPv4-mapped form as one host, with nothing in the IPv6 groups", () => {
    const index = new PeerIndex();
    const add = peerMaker(index);
    add("10.0.0.1", 1);
    add("::ffff:10.0.0.1", 2);
    add("10.0.0.2", 1);
    expect(index.countInGroup(sourceGroup("::ffff:10.0.0.1"))).toBe(2);
    expect(index.countInGroup("10.0.0.1")).toBe(2);
    expect(index.countOnHost("10.0.0.1")).toBe(2);
    expect(index.countInGroup("10.0.0.2")).toBe(1);
    expect(index.v6GroupCount).toBe(0);
  });

  it("counts the IPv4-mapped form of a host only while such a peer is indexed", () => {
    const index = new PeerIndex();
    const add = peerMaker(index);
    add("10.0.0.1", 1);
    const mapped = add("::ffff:10.0.0.1", 2);
    expect(index.countOnHost("10.0.0.1")).toBe(2);
    index.remove(mapped);
    expect(index.countOnHost("10.0.0.1")).toBe(1);
    index.add(mapped);
    expect(index.countOnHost("10.0.0.1")).toBe(2);
    expect(index.soleOnHost("10.0.0.1")).toBeUndefined();
  });

  it("drops every count back to zero on removal, and a re-added peer is counted once", () => {
    const index = new PeerIndex();
    const add = peerMaker(index);
    const peers = [
      ...Array.from({ length: 5 }, (_, i) => add(`2001:db8:1:1::${i + 1}`)),
      add("2001:db8:1:1::1", 2000),
      add("2001:db8:1:2::1"),
      add("10.0.0.1"),
      add("::ffff:10.0.0.1", 2000),
    ];
    index.add(peers[0]!); // the same peer again (a rebind to the same address) changes nothing
    expect(index.countInGroup("2001:db8:1:1")).toBe(6);
    for (const peer of peers) index.remove(peer);
    index.remove(peers[0]!); // removing twice changes nothing
    expect(index.countInGroup("2001:db8:1:1")).toBe(0);
    expect(index.countInGroup("2001:db8:1:2")).toBe(0);
    expect(index.countInGroup("10.0.0.1")).toBe(0);
    expect({ groups: index.v6GroupCount, hosts: index.hostCount, size: index.size }).toEqual({ groups: 0, hosts: 0, size: 0 });
  });
});
