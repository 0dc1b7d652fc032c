import type { DataPlane } from "../dataplane/types.ts";
import type { Endpoint } from "../net/address.ts";
import type { Logger } from "../log.ts";
import type { Relay } from "../relay.ts";
import { BridgeCodec } from "./bridge-codec.ts";
import { FleetCoordinator, type FleetStats } from "./coordinator.ts";
import { FleetDirectory } from "./directory.ts";
import type { FleetOptions } from "./options.ts";
import { FleetPlane } from "./plane.ts";

/**
 * A relay's membership in a fleet. Wrap the data plane before building the Relay (other wrappers,
 * such as the metrics ledger, may go around `fleet.plane`), start after it (and after restoring a
 * state file, so restored bridged sessions get their links back):
 *
 *   const fleet = options ? prepareFleet(plane, options, config.maxDatagramSize, logger) : undefined;
 *   const relay = new Relay({ config, plane: fleet?.plane ?? plane, logger });
 *   await relay.start();
 *   await fleet?.start(relay);
 *   ...
 *   await fleet?.stop(); await relay.stop();
 */
export interface Fleet {
  readonly plane: FleetPlane;
  start(relay: Relay): Promise<void>;
  stop(): Promise<void>;
  stats(): FleetStats | undefined;
  /** Whether `from` is one of the fleet's relays (never registered as a peer). */
  isMember(from: Endpoint): boolean;
}

export function prepareFleet(inner: DataPlane, options: FleetOptions, maxDatagramSize: number, logger: Logger): Fleet {
  const plane = new FleetPlane(inner, new BridgeCodec(options.secret, options.replayWindowMs), maxDatagramSize);
  let coordinator: FleetCoordinator | undefined;
  return {
    plane,
    async start(relay: Relay) {
      const directory = new FleetDirectory(options.redisUrl, options.prefix, options.advertise, logger, (m) => coordinator?.joined(m));
      coordinator = new FleetCoordinator(relay, plane, directory, options, logger);
      await coordinator.start();
      logger.info(`fleet member ${options.advertise}`, { prefix: options.prefix, directory: directory.reachable ? "reachable" : "unreachable" });
    },
    async stop() {
      await coordinator?.stop();
    },
    stats: () => coordinator?.stats(),
    isMember: (from: Endpoint) => coordinator?.isMember(from) ?? false,
  };
}
