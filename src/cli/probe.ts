import { defineCommand } from "citty";
import { consola } from "consola";
import { parseHostPortFlag, resolveHostPort } from "../client/endpoint.ts";
import { ClientConfigError } from "../client/errors.ts";
import { clientLogLevel, nonNegativeInteger, positiveNumber } from "../client/flags.ts";
import { runProbe, type ProbeResult } from "../client/probe.ts";
import { describeObservation, discover, type DiscoveryResult } from "../client/discovery.ts";
import { formatHostPort, hostOf, type HostPort } from "../net/address.ts";

export const probeCommand = defineCommand({
  meta: {
    name: "probe",
    description:
      "Ask the relay how this host is seen (public address, NAT mapping: is the relay needed?), then pair two sockets through a fresh session and report registration time, RTT and loss",
  },
  args: {
    relay: { type: "string", required: true, description: "Relay address host:port", valueHint: "host:port" },
    count: { type: "string", default: "100", description: "Datagrams to bounce through the relay" },
    size: { type: "string", default: "1200", description: "Datagram size in bytes (min 8)" },
    "interval-ms": { type: "string", default: "10", description: "Pause between datagrams" },
    "ack-timeout-ms": { type: "string", default: "1000", description: "Wait for each ACK (grows per retry)" },
    tries: { type: "string", default: "3", description: "REG attempts per socket" },
    "drain-ms": { type: "string", default: "2000", description: "Wait for late replies after the last send" },
    json: { type: "boolean", default: false, description: "Print one JSON object instead of text" },
    discovery: { type: "boolean", default: true, description: "Ask the relay's STUN for the public address and NAT mapping first (--no-discovery skips it)" },
    "discover-only": { type: "boolean", default: false, description: "Only the discovery step: no session is registered" },
    also: { type: "string", description: "More STUN servers to compare mappings with, host:port[,host:port...]", valueHint: "host:port" },
    "log-level": { type: "string", default: "info", description: "error|warn|info|debug|trace" },
  },
  async run({ args }) {
    const log = consola.withTag("probe");
    try {
      log.level = clientLogLevel(args["log-level"]);
      // Progress while it waits goes to stderr (stdout carries the result only), at the same level.
      const progress = consola.create({ stdout: process.stderr, stderr: process.stderr, level: log.level }).withTag("probe");
      const relay = await resolveHostPort(parseHostPortFlag(args.relay, "relay"), "relay");
      const also = await Promise.all(
        (args.also ?? "")
          .split(",")
          .filter((t) => t.trim() !== "")
          .map((t) => resolveHostPort(parseHostPortFlag(t, "also"), "also")),
      );
      let discovery: DiscoveryResult | undefined;
      if (args.discovery || args["discover-only"]) {
        discovery = await discover({
          relay,
          also,
          onAttempt: args.json ? undefined : (to, attempt, tries) => progress.info(`asking ${formatHostPort(to)} how this host is seen (STUN, try ${attempt}/${tries})`),
        });
      }
      if (args["discover-only"]) {
        if (args.json) process.stdout.write(`${JSON.stringify({ relay: formatHostPort(relay), discovery: discoveryJson(discovery!) })}\n`);
        else process.stdout.write(`${discoveryLines(discovery!, relay).join("\n")}\n`);
        process.exit(discovery!.reflexive ? 0 : 1);
      }
      const count = nonNegativeInteger(args.count, "count");
      if (count < 1) throw new ClientConfigError("--count must be at least 1", "count");
      const size = nonNegativeInteger(args.size, "size");
      if (size < 8 || size > 65_000) throw new ClientConfigError("--size must be 8..65000", "size");
      const result = await runProbe({
        relay,
        // The form the relay recognises as a probe's session (isProbeSessionId): it expires after
        // 10 s of silence instead of the session timeout, so the probe leaves nothing behind.
        sessionId: `probe-${crypto.randomUUID()}`,
        onRegAttempt: args.json
          ? undefined
          : (socket, attempt, tries) =>
              progress.info(`registering ${socket === 1 ? "the first" : "the second"} socket with ${formatHostPort(relay)} (REG, try ${attempt}/${tries})`),
        count,
        size,
        intervalMs: nonNegativeInteger(args["interval-ms"], "interval-ms"),
        ackTimeoutMs: positiveNumber(args["ack-timeout-ms"], "ack-timeout-ms"),
        tries: nonNegativeInteger(args.tries, "tries") || 1,
        drainMs: nonNegativeInteger(args["drain-ms"], "drain-ms"),
      });
      if (args.json) process.stdout.write(`${JSON.stringify(discovery ? { ...result, discovery: discoveryJson(discovery) } : result)}\n`);
      else printResult(result, discovery ? discoveryLines(discovery, relay) : []);
      if (result.received === 0) {
        if (!args.json) log.error(`no datagram came back through ${result.relay}: the relay registered both sockets but did not pair them`);
        process.exit(1);
      }
    } catch (error) {
      if (args.json) process.stdout.write(`${JSON.stringify({ error: (error as Error).message })}\n`);
      else log.error((error as Error).message);
      process.exit(error instanceof ClientConfigError ? 2 : 1);
    }
  },
});

/** The discovery part for --json: addresses as `host:port` text. */
function discoveryJson(d: DiscoveryResult) {
  const text = (e: { address: string; port: number }) => formatHostPort({ host: hostOf(e.address), port: e.port });
  return {
    reflexive: d.reflexive ? text(d.reflexive) : null,
    localPort: d.localPort,
    mapping: d.mapping,
    directPossible: d.directPossible ?? null,
    basis: d.basis,
    sentence: d.sentence,
    observations: d.observations.map((o) => ({ to: formatHostPort(o.to), mapped: text(o.mapped), rttMs: o.rttMs })),
    silent: d.silent.map(formatHostPort),
  };
}

/** Discovery lines for people; the last one is the plain sentence. */
function discoveryLines(d: DiscoveryResult, relay: HostPort): string[] {
  const lines = [
    d.reflexive
      ? `public       ${formatHostPort({ host: hostOf(d.reflexive.address), port: d.reflexive.port })} (as ${formatHostPort(relay)} sees this host; local port ${d.localPort})`
      : `public       unknown: ${formatHostPort(relay)} did not answer STUN (started with --stun off, or an older relay)`,
    `nat mapping  ${d.mapping}: ${d.basis}`,
    ...d.observations.map((o) => `             ${describeObservation(o)}`),
    ...d.silent.map((to) => `             ${formatHostPort(to)} did not answer`),
  ];
  lines.push(`verdict      ${d.sentence}`);
  return lines;
}

function printResult(r: ProbeResult, discovery: string[]): void {
  // The verdict sentence closes the output: the one line to read.
  const verdict = discovery.length > 0 ? discovery.slice(-1) : [];
  const lines = [
    `relay        ${r.relay}  session ${r.sessionId}`,
    ...discovery.slice(0, -1),
    // One word on whether the relay asked for return-routability proof (RETRY) before its ACKs.
    `registration ${r.registrationMs[0]} ms (first socket), ${r.registrationMs[1]} ms (second socket); ${r.verified ? "verified" : "unverified"}`,
    `datagrams    ${r.sent} sent, ${r.received} returned, ${r.lossPercent}% loss, ${r.size} B each`,
    r.rttMs
      ? `rtt          p50 ${r.rttMs.p50} ms  p99 ${r.rttMs.p99} ms  (min ${r.rttMs.min}, max ${r.rttMs.max})`
      : "rtt          n/a (nothing returned)",
    ...verdict,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
