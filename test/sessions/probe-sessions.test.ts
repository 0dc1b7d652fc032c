import { describe, expect, it } from "bun:test";
import { isProbeSessionId } from "../../src/sessions/types.ts";
import { setup } from "./fixtures.ts";

/** An id in the form `quic-relay probe` registers (src/cli/probe.ts). */
const probeId = () => `probe-${crypto.randomUUID()}`;

const EMPTY = { sessions: 0, peersByKey: 0, peersById: 0, hosts: 0, cids: 0, heldBytes: 0 };

describe("probe sessions: a short idle timeout for ids of quic-relay probe", () => {
  it("recognises the probe's ids and nothing that merely resembles them", () => {
    for (let i = 0; i < 1000; i++) expect(isProbeSessionId(probeId())).toBe(true);
    const uuid = crypto.randomUUID();
    for (const id of [
      `probe-${uuid.toUpperCase()}`,
      `probe-${uuid}x`,
      `xprobe-${uuid}`,
      `probe-${uuid.replaceAll("-", "")}`,
      `probe_${uuid}`,
      "probe-",
      "probe-test",
      uuid,
      `probe-${uuid.slice(0, -1)}g`,
    ]) {
      expect(isProbeSessionId(id)).toBe(false);
    }
  });

  it("expires an idle probe session after the probe timeout; other sessions keep the session timeout", () => {
    const t = setup({ timeoutMs: 300_000 });
    const probe = probeId();
    t.reg("app", "10.0.0.1:1000");
    t.reg(probe, "10.0.0.2:2000");
    t.reg(probe, "10.0.0.3:3000");
    t.clock.advance(9_999);
    expect(t.table.expire()).toBe(0);
    t.clock.advance(1);
    expect(t.table.expire()).toBe(1);
    expect(t.table.session(probe)).toBeUndefined();
    expect(t.table.session("app")).toBeDefined();
    expect(t.sink.events.filter((e) => e.kind === "expired")).toEqual([{ kind: "expired", session: probe, idleMs: 10_000, peers: 2 }]);
    // Its routes are gone with it, and so are its peers' index entries.
    expect(t.sink.routeFrom("10.0.0.2:2000")).toBeUndefined();
    expect(t.sink.routeFrom("10.0.0.3:3000")).toBeUndefined();
    expect(t.table.peerAt({ address: "10.0.0.2", port: 2000 })).toBeUndefined();
    expect(t.table.probeSessionCount).toBe(0);
    t.clock.advance(300_000 - 10_000);
    expect(t.table.expire()).toBe(1);
    expect(t.table.indexSizes()).toEqual(EMPTY);
  });

  it("expires a probe session behind a live older session (the two timeouts keep separate orders)", () => {
    const t = setup({ timeoutMs: 300_000 });
    t.reg("app", "10.0.0.1:1000");
    const probes = [probeId(), probeId()];
    t.clock.advance(1000);
    t.reg(probes[0]!, "10.0.0.2:2000");
    t.clock.advance(1000);
    t.reg(probes[1]!, "10.0.0.3:3000");
    // The oldest session by activity is the app's, and it is live for another 298 s.
    t.clock.advance(10_000);
    expect(t.table.expire()).toBe(2);
    expect(t.table.sessionCount).toBe(1);
    expect(t.table.session("app")).toBeDefined();
  });

  it("keeps a probe session while it is used: keepalive REGs, data, route activity", () => {
    const t = setup({ timeoutMs: 300_000 });
    const probe = probeId();
    t.reg(probe, "10.0.0.2:2000");
    t.clock.advance(9_000);
    t.reg(probe, "10.0.0.2:2000"); // keepalive
    t.clock.advance(9_000);
    t.reg(probe, "10.0.0.3:3000"); // the second socket pairs
    t.clock.advance(9_000);
    t.data("10.0.0.2:2000", "through the table");
    t.clock.advance(9_000);
    const peer = t.table.peerAt({ address: "10.0.0.3", port: 3000 })!;
    t.table.activity([peer.id]); // what the data plane forwarded
    t.clock.advance(9_000);
    expect(t.table.expire()).toBe(0);
    expect(t.table.session(probe)?.peers.length).toBe(2);
    t.clock.advance(1_000);
    expect(t.table.expire()).toBe(1);
    expect(t.table.indexSizes()).toEqual(EMPTY);
  });

  it("takes the session timeout when that is shorter, and the probe timeout from the limits", () => {
    const shortTimeout = setup({ timeoutMs: 2_000 });
    shortTimeout.reg(probeId(), "10.0.0.2:2000");
    shortTimeout.clock.advance(2_000);
    expect(shortTimeout.table.expire()).toBe(1);

    const longerProbes = setup({ timeoutMs: 300_000, probeTimeoutMs: 60_000 });
    longerProbes.reg(probeId(), "10.0.0.2:2000");
    longerProbes.clock.advance(59_999);
    expect(longerProbes.table.expire()).toBe(0);
    longerProbes.clock.advance(1);
    expect(longerProbes.table.expire()).toBe(1);
  });

  it("a probe session that a peer leaves for another session keeps the probe timeout; the other session does not get it", () => {
    const t = setup({ timeoutMs: 300_000, memberHoldMs: 0 });
    const probe = probeId();
    t.reg(probe, "10.0.0.2:2000");
    t.reg(probe, "10.0.0.3:3000");
    // The address leaves for another session: the probe session goes on with one peer.
    t.reg("app", "10.0.0.3:3000");
    expect(t.table.session(probe)?.peers.length).toBe(1);
    t.clock.advance(10_000);
    expect(t.table.expire()).toBe(1);
    expect(t.table.session(probe)).toBeUndefined();
    expect(t.table.session("app")).toBeDefined();
    expect(t.table.probeSessionCount).toBe(0);
  });

  it("restores saved probe sessions with the probe timeout: an expired one is skipped, a live one expires on time", () => {
    const live = probeId();
    const t = setup({ timeoutMs: 300_000 });
    const restored = t.table.restoreSessions([
      { id: probeId(), idleMs: 10_000, peers: [{ address: "10.0.0.1", port: 1, idleMs: 10_000 }] },
      { id: live, idleMs: 4_000, peers: [{ address: "10.0.0.2", port: 2, idleMs: 4_000 }] },
      { id: "app", idleMs: 20_000, peers: [{ address: "10.0.0.3", port: 3, idleMs: 20_000 }] },
    ]);
    expect(restored).toBe(2);
    expect(t.table.probeSessionCount).toBe(1);
    t.clock.advance(5_999);
    expect(t.table.expire()).toBe(0);
    t.clock.advance(1);
    expect(t.table.expire()).toBe(1);
    expect(t.table.session(live)).toBeUndefined();
    expect(t.table.session("app")).toBeDefined();
  });
});
