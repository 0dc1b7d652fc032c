/**
 * Where each route forwards, through random sets, replacements and deletions among a few real
 * peers, on both planes. The native plane keeps a route's destination as its reverse route's
 * source while the two are linked, and apart otherwise: this checks that every route still
 * reaches the destination it was given as its reverse comes, goes, is replaced from elsewhere
 * and comes back. After each step every peer sends one datagram: it must reach the model's
 * destination for that source, or the control plane when the source has no route.
 */
import { afterEach, describe, expect, it } from "bun:test";

import { createDataPlane } from "../../src/dataplane/select.ts";
import type { DataPlane, DataPlaneKind, InboundDatagram } from "../../src/dataplane/types.ts";
import type { Endpoint } from "../../src/net/address.ts";
import { planesUnderTest } from "../utils.ts";
import { mulberry32 } from "../support/prng.ts";
import { decode, planeOptions, startRecording, text, udpPeer, until, type TestPeer } from "./native-helpers.ts";

const PEERS = 5;
const IDS = 7;
const STEPS = 40;

let open: Array<DataPlane | TestPeer> = [];
afterEach(async () => {
  for (const o of open) await o.close();
  open = [];
});

for (const kind of planesUnderTest() as DataPlaneKind[]) {
  describe(`${kind} plane: route destinations`, () => {
    it("each route reaches its own destination while its reverse is set, deleted, replaced from elsewhere and set again", async () => {
      const { plane } = createDataPlane(kind, planeOptions());
      open.push(plane);
      const control: InboundDatagram[] = await startRecording(plane);
      const peers: TestPeer[] = [];
      for (let p = 0; p < PEERS; p++) peers.push(await udpPeer(`127.0.0.${p + 2}`));
      open.push(...peers);
      const at = (p: number): Endpoint => ({ address: peers[p]!.address, port: peers[p]!.port });

      // The model: route id -> [from, to]; a source has one route at most (a new one replaces it).
      const routes = new Map<number, [number, number]>();
      const rand = mulberry32(20261202);
      const pick = (n: number) => Math.floor(rand() * n);
      const kinds = { set: 0, deleted: 0, replacedBySource: 0, pairs: 0 };

      for (let step = 0; step < STEPS; step++) {
        const changes = 1 + pick(3);
        for (let c = 0; c < changes; c++) {
          const id = 1 + pick(IDS);
          if (pick(4) === 0) {
            plane.deleteRoute(id);
            if (routes.delete(id)) kinds.deleted++;
            continue;
          }
          const from = pick(PEERS);
          // Mostly the way back of a route that leads to `from`, so that pairs form and break.
          const incoming = [...routes.values()].filter(([f, t]) => t === from && f !== from);
          let to: number;
          if (incoming.length > 0 && pick(3) > 0) {
            to = incoming[pick(incoming.length)]![0];
          } else {
            to = pick(PEERS - 1);
            if (to >= from) to++;
          }
          plane.setRoute(id, at(from), at(to), 0);
          for (const [other, [f]] of routes) {
            if (other !== id && f === from) {
              routes.delete(other);
              kinds.replacedBySource++;
            }
          }
          routes.set(id, [from, to]);
          kinds.set++;
        }
        for (const [f, t] of routes.values()) if ([...routes.values()].some(([f2, t2]) => f2 === t && t2 === f)) kinds.pairs++;

        // One datagram from every peer, tagged with the step.
        const controlBefore = control.length;
        const expected = new Map<number, number>(); // sender -> receiver, or -1 for the control plane
        for (let p = 0; p < PEERS; p++) {
          const route = [...routes.values()].find(([f]) => f === p);
          expected.set(p, route ? route[1] : -1);
        }
        const receivedBefore = peers.map((q) => q.received.length);
        for (let p = 0; p < PEERS; p++) peers[p]!.send(text(`step ${step} from ${p}`), plane.local.port, "127.0.0.1");
        const forControl = [...expected.values()].filter((r) => r < 0).length;
        const toPeer = (r: number) => [...expected.values()].filter((x) => x === r).length;
        await until(
          () => control.length - controlBefore >= forControl && peers.every((q, r) => q.received.length - receivedBefore[r]! >= toPeer(r)),
          5000,
          `step ${step}'s datagrams`,
        );
        for (let r = 0; r < PEERS; r++) {
          const got = peers[r]!.received.slice(receivedBefore[r]!).map((d) => decode(d.data)).sort();
          const want = [...expected].filter(([, x]) => x === r).map(([p]) => `step ${step} from ${p}`).sort();
          expect({ step, receiver: r, got }).toEqual({ step, receiver: r, got: want });
        }
        const up = control.slice(controlBefore).map((d) => decode(d.data)).sort();
        expect({ step, up }).toEqual({ step, up: [...expected].filter(([, x]) => x < 0).map(([p]) => `step ${step} from ${p}`).sort() });
      }
      // The walk went through every case it is meant to cover.
      expect(kinds.set).toBeGreaterThan(20);
      expect(kinds.deleted).toBeGreaterThan(3);
      expect(kinds.replacedBySource).toBeGreaterThan(3);
      expect(kinds.pairs).toBeGreaterThan(3);
    });
  });
}
