// QUIC client for the e2e suite: registers its own QUIC socket with the relay, connects to the
// relay's address (the relay forwards to the server), downloads one stream, reports its sha256.
import { webcrypto } from "node:crypto";
import { QUICClient, QUICSocket } from "@matrixai/quic";
import { emit, parseArgs, registerFromQuicSocket, sha256 } from "./common.mjs";

const args = parseArgs(process.argv.slice(2));
const relayHost = args["relay-host"];
const relayPort = Number(args["relay-port"]);
const deadline = setTimeout(() => {
  emit("timeout", {});
  process.exit(3);
}, Number(args["timeout-ms"] ?? 60000));

const socket = new QUICSocket({});
await socket.start({ host: "0.0.0.0", port: 0 });
emit("socket", { port: socket.port });
const registration = registerFromQuicSocket(socket, relayHost, relayPort, args.session, Number(args["keepalive-ms"] ?? 5000));
// Wait for our own ACK: before it the relay would drop our Initial as coming from an unknown source.
await registration.first;

const connectStarted = performance.now();
emit("connecting", {});
let client;
try {
  client = await QUICClient.createQUICClient({
    host: relayHost,
    port: relayPort,
    socket,
    crypto: { ops: { randomBytes: async (data) => void webcrypto.getRandomValues(new Uint8Array(data)) } },
    config: { verifyPeer: false, maxIdleTimeout: Number(args["idle-ms"] ?? 15000) },
  });
} catch (error) {
  emit("connect-error", { message: String(error?.message ?? error) });
  process.exit(2);
}
emit("handshake", { ms: Math.round(performance.now() - connectStarted) });

const transferStarted = performance.now();
const stream = client.connection.newStream();
const writer = stream.writable.getWriter();
await writer.write(new TextEncoder().encode("GET\n"));
await writer.close();
const chunks = [];
let received = 0;
let nextReport = 1024 * 1024;
try {
  for await (const chunk of stream.readable) {
    chunks.push(Buffer.from(chunk));
    received += chunk.byteLength;
    if (received >= nextReport) {
      emit("progress", { bytes: received });
      nextReport += 1024 * 1024;
    }
  }
} catch (error) {
  emit("transfer-error", { bytes: received, message: String(error?.message ?? error) });
  process.exit(4);
}
const ms = performance.now() - transferStarted;
emit("done", { bytes: received, sha256: sha256(chunks), ms: Math.round(ms), mbps: Math.round(((received * 8) / ms / 1000) * 10) / 10 });
clearTimeout(deadline);
registration.stop();
await client.destroy({ force: true }).catch(() => {});
await socket.stop({ force: true }).catch(() => {});
process.exit(0);
