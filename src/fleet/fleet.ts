import type { DataPlane } from "../dataplane/types.ts";
import type { Endpoint } from "../net/address.ts";
import type { Logger } from "../log.ts";
import type { Relay } from "../relay.ts";
import { FleetBridge } from "./bridge.ts";
import { BridgeCodec } from "./bridge-codec.ts";
import { FleetCoordinator, type FleetStats } from "./coordinator.ts";
import { FleetDirectory } from "./directory.ts";
import { PlaneNonces } from "./plane-nonces.ts";
import type { FleetOptions } from "./options.ts";

/**
 * A relay's membership in a fleet. Prepare it before building the Relay, whose remote peers it
 * bridges; start it after the relay (and after restoring a state file, so restored bridged
 * sessions get their links back):
 *
 *   const fleet = options ? prepareFleet(plane, options, config.maxDatagramSize, logger) : undefined;
 *   const relay = new Relay({ config, plane, logger, remote: fleet?.bridge, isRelayAddress: fleet?.isMember });
 *   await relay.start();
 *   await fleet?.start(relay);
 *   ...
 *   await fleet?.stop(); await relay.stop();
 */
export interface Fleet {
  readonly bridge: FleetBridge;
  start(relay: Relay): Promise<void>;
  stop(): Promise<void>;
  stats(): FleetStats | undefined;
  /** Whether `from` is one of the fleet's relays (never registered as a peer). */
  isMember(from: Endpoint): boolean;
  /** New fleet secrets (SIGHUP): the first signs what this relay sends, every one is accepted. */
  setSecrets(secrets: readonly string[]): void;
}

export function prepareFleet(plane: DataPlane, options: FleetOptions, maxDatagramSize: number, logger: Logger): Fleet {
  let coordinator: FleetCoordinator | undefined;
  // A plane that makes frames itself keeps the nonces, for its threads and the control plane alike.
  const nonces = plane.bridge ? new PlaneNonces(plane.bridge) : undefined;
  const codec = new BridgeCodec({ self: options.advertise, secrets: options.secrets, replayWindowMs: options.replayWindowMs, nonces });
  const bridge = new FleetBridge(plane, codec, maxDatagramSize, {
    senderOf: (from, refresh) => coordinator?.senderOf(from, refresh),
    heard: (relay) => coordinator?.heard(relay),
    pong: (relay, payload) => coordinator?.pong(relay, payload),
    unlinked: (sessionId, relay, payload) => coordinator?.unlinked(sessionId, relay, payload),
    moved: (link, relay) => coordinator?.moved(link, relay) ?? false,
    standIn: (link, from, raw) => coordinator?.standIn(link, from, raw) ?? "live",
    place: (sessionId, from, raw) => coordinator?.place(sessionId, from, raw) ?? "here",
  });
  return {
    bridge,
    async start(relay: Relay) {
      const directory = new FleetDirectory(options.redisUrl, options.prefix, options.advertise, logger, (m) => coordinator?.message(m), {
        sentinel: options.sentinel,
      });
      coordinator = new FleetCoordinator(relay, bridge, directory, options, logger);
      await coordinator.start();
      logger.info(`fleet member ${options.advertise}`, { prefix: options.prefix, directory: directory.reachable ? "reachable" : "unreachable" });
    },
    async stop() {
      await coordinator?.stop();
    },
    stats: () => coordinator?.stats(),
    setSecrets: (secrets) => {
      codec.setSecrets(secrets);
      bridge.rekey();
    },
    isMember: (from: Endpoint) => coordinator?.isMember(from) ?? false,
  };
}
