import { defineCommand } from "citty";
import { consola } from "consola";
import { parseHostPortFlag, parseHostPortListFlag, resolveHostPort } from "../client/endpoint.ts";
import { formatHostPort } from "../net/address.ts";
import { ClientConfigError, RelayResolveError } from "../client/errors.ts";
import { relayResolver } from "../client/relay-addresses.ts";
import { defaultRegistrationSettings } from "../client/registration.ts";
import { RelayTunnel, type TunnelMode } from "../client/tunnel.ts";
import { clientLogLevel, nonNegativeInteger, positiveNumber } from "../client/flags.ts";
import { registerOnce } from "../client/register-once.ts";

export const connectCommand = defineCommand({
  meta: {
    name: "connect",
    description: "Tunnel a local UDP app through a quic-relay session (registers and keeps the registration alive)",
  },
  args: {
    relay: {
      type: "string",
      required: true,
      description: "Relay address host:port, or several separated by commas; names are resolved (all addresses) at start and on each move",
      valueHint: "host:port[,host:port...]",
    },
    session: { type: "string", required: true, description: "Session id shared with the other side" },
    listen: { type: "string", description: "Client side: local address the app sends to", valueHint: "127.0.0.1:port" },
    forward: { type: "string", description: "Server side: local server that relayed datagrams go to", valueHint: "127.0.0.1:port" },
    "register-only": {
      type: "boolean",
      default: false,
      description: "Send REG from --local-port, wait for ACK, close the socket and exit (hand the port to an app)",
    },
    "local-port": { type: "string", default: "0", description: "Local port of the relay-facing socket (0: any)" },
    "keepalive-secs": { type: "string", default: "10", description: "Keepalive REG interval (keep below NAT UDP timeouts)" },
    "ack-timeout-ms": { type: "string", default: "500", description: "First wait for ACK; doubles per retry" },
    tries: { type: "string", default: "5", description: "REG attempts before the relay counts as unreachable" },
    "failover-after": { type: "string", default: "3", description: "Unanswered REGs in a row after which the tunnel moves to another relay address" },
    "follow-moves": {
      type: "boolean",
      default: true,
      description: "Send the move flag and follow a relay's MOVE to its partner's relay, one of the --relay addresses (--no-follow-moves: stay, the relays bridge)",
    },
    "log-level": { type: "string", default: "info", description: "error|warn|info|debug|trace" },
  },
  async run({ args }) {
    const log = consola.withTag("connect");
    let tunnel: RelayTunnel | undefined;
    try {
      log.level = clientLogLevel(args["log-level"]);
      if (args.session === "") throw new ClientConfigError("--session must not be empty", "session");
      const localPort = nonNegativeInteger(args["local-port"], "local-port");
      if (localPort > 65535) throw new ClientConfigError("--local-port must be 0..65535", "local-port");
      const registration = {
        ...defaultRegistrationSettings,
        keepaliveMs: positiveNumber(args["keepalive-secs"], "keepalive-secs") * 1000,
        ackTimeoutMs: positiveNumber(args["ack-timeout-ms"], "ack-timeout-ms"),
        maxTries: Math.round(positiveNumber(args.tries, "tries")),
        silentAfter: nonNegativeInteger(args["failover-after"], "failover-after"),
        followMoves: args["follow-moves"],
      };
      if (registration.silentAfter === 0) throw new ClientConfigError("--failover-after must be at least 1", "failover-after");
      const resolveRelay = relayResolver(parseHostPortListFlag(args.relay, "relay"));
      if (args["register-only"]) {
        if (args.listen !== undefined || args.forward !== undefined) {
          throw new ClientConfigError("--register-only takes no --listen/--forward");
        }
        if (localPort === 0) throw new ClientConfigError("--register-only needs --local-port (the port the app binds next)", "local-port");
        const relay = (await resolveRelay())[0]!;
        const { rttMs, verified } = await registerOnce(relay, args.session, localPort, registration);
        const proof = verified ? " (address verified by RETRY)" : "";
        log.info(
          `registered session ${args.session} at ${formatHostPort(relay)} from local port ${localPort} in ${rttMs.toFixed(1)} ms; port released for the app${proof}`,
        );
        return;
      }
      if ((args.listen === undefined) === (args.forward === undefined)) {
        throw new ClientConfigError("give exactly one of --listen (client side) or --forward (server side)");
      }
      const mode: TunnelMode =
        args.listen !== undefined
          ? { kind: "listen", local: parseHostPortFlag(args.listen, "listen", true) }
          : { kind: "forward", target: await resolveHostPort(parseHostPortFlag(args.forward!, "forward"), "forward") };
      tunnel = new RelayTunnel({
        relay: resolveRelay,
        sessionId: args.session,
        mode,
        relayLocalPort: localPort,
        registration,
        log: { info: (m) => log.info(m), warn: (m) => log.warn(m), debug: (m) => log.debug(m) },
      });
      const started = tunnel;
      const stop = (signal: string) => {
        const s = started.stats;
        log.info(
          `${signal}: closing; to relay ${s.toRelayPackets} pkts/${s.toRelayBytes} B, from relay ${s.fromRelayPackets} pkts/${s.fromRelayBytes} B, ${s.registrations} registrations, ${s.relayChanges} relay changes (${s.movesFollowed} by MOVE)`,
        );
        started.close();
        process.exit(0);
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
      await tunnel.start();
      const side =
        mode.kind === "listen"
          ? `app sends to ${formatHostPort(tunnel.appAddress)}`
          : `relayed datagrams go to ${formatHostPort(mode.target)} from ${formatHostPort(tunnel.appAddress)}`;
      log.info(`tunnel up: session ${args.session} via ${formatHostPort(tunnel.relay)} (relay socket port ${tunnel.relayAddress.port}); ${side}`);
    } catch (error) {
      tunnel?.close();
      log.error((error as Error).message);
      process.exit(error instanceof ClientConfigError || error instanceof RelayResolveError ? 2 : 1);
    }
  },
});
