import { defineCommand } from "citty";
import { consola } from "consola";
import { parseHostPortFlag, resolveHostPort } from "../client/endpoint.ts";
import { ClientConfigError } from "../client/errors.ts";
import { clientLogLevel, nonNegativeInteger, positiveNumber } from "../client/flags.ts";
import { runProbe, type ProbeResult } from "../client/probe.ts";

export const probeCommand = defineCommand({
  meta: {
    name: "probe",
    description: "Pair two sockets through a fresh relay session; report registration time, RTT and loss",
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
    "log-level": { type: "string", default: "info", description: "error|warn|info|debug|trace" },
  },
  async run({ args }) {
    const log = consola.withTag("probe");
    try {
      log.level = clientLogLevel(args["log-level"]);
      const relay = await resolveHostPort(parseHostPortFlag(args.relay, "relay"), "relay");
      const count = nonNegativeInteger(args.count, "count");
      if (count < 1) throw new ClientConfigError("--count must be at least 1", "count");
      const size = nonNegativeInteger(args.size, "size");
      if (size < 8 || size > 65_000) throw new ClientConfigError("--size must be 8..65000", "size");
      const result = await runProbe({
        relay,
        sessionId: `probe-${crypto.randomUUID()}`,
        count,
        size,
        intervalMs: nonNegativeInteger(args["interval-ms"], "interval-ms"),
        ackTimeoutMs: positiveNumber(args["ack-timeout-ms"], "ack-timeout-ms"),
        tries: nonNegativeInteger(args.tries, "tries") || 1,
        drainMs: nonNegativeInteger(args["drain-ms"], "drain-ms"),
      });
      if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else printResult(result);
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

function printResult(r: ProbeResult): void {
  const lines = [
    `relay        ${r.relay}  session ${r.sessionId}`,
    // One word on whether the relay asked for return-routability proof (RETRY) before its ACKs.
    `registration ${r.registrationMs[0]} ms (first socket), ${r.registrationMs[1]} ms (second socket); ${r.verified ? "verified" : "unverified"}`,
    `datagrams    ${r.sent} sent, ${r.received} returned, ${r.lossPercent}% loss, ${r.size} B each`,
    r.rttMs
      ? `rtt          p50 ${r.rttMs.p50} ms  p99 ${r.rttMs.p99} ms  (min ${r.rttMs.min}, max ${r.rttMs.max})`
      : "rtt          n/a (nothing returned)",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
