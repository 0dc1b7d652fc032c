// QUIC server for the e2e suite: registers its own QUIC socket with the relay and serves
// `--bytes` random bytes on every stream it accepts, then reports their sha256.
import { randomBytes, createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { QUICServer, QUICSocket, events } from "@matrixai/quic";
import { emit, parseArgs, registerFromQuicSocket, sha256 } from "./common.mjs";

const args = parseArgs(process.argv.slice(2));
const relayPort = Number(args["relay-port"]);
const size = Number(args.bytes ?? 8 * 1024 * 1024);
const payload = randomBytes(size);
const digest = sha256([payload]);
const hmacKey = randomBytes(32);

const socket = new QUICSocket({});
await socket.start({ host: "0.0.0.0", port: 0 });
emit("listening", { port: socket.port, bytes: size, sha256: digest });

const server = new QUICServer({
  socket,
  crypto: {
    key: hmacKey.buffer.slice(hmacKey.byteOffset, hmacKey.byteOffset + hmacKey.byteLength),
    ops: {
      // Must return an ArrayBuffer: a Node Buffer breaks the handshake.
      async sign(key, data) {
        const mac = createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();
        return mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.byteLength);
      },
      async verify(key, data, sig) {
        const mac = createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();
        const given = Buffer.from(sig);
        return given.length === mac.length && timingSafeEqual(given, mac);
      },
    },
  },
  config: {
    key: readFileSync(args.key, "utf8"),
    cert: readFileSync(args.cert, "utf8"),
    verifyPeer: false,
    maxIdleTimeout: Number(args["idle-ms"] ?? 15000),
  },
});

server.addEventListener(events.EventQUICServerConnection.name, (evt) => {
  const connection = evt.detail;
  emit("connection", { remote: `${connection.remoteHost}:${connection.remotePort}` });
  connection.addEventListener(events.EventQUICConnectionStream.name, async (e) => {
    const stream = e.detail;
    const started = performance.now();
    try {
      const reader = stream.readable.getReader();
      await reader.read(); // the request; its content does not matter
      reader.releaseLock();
      const writer = stream.writable.getWriter();
      const chunk = 64 * 1024;
      for (let offset = 0; offset < payload.length; offset += chunk) {
        await writer.write(payload.subarray(offset, Math.min(offset + chunk, payload.length)));
      }
      await writer.close();
      emit("served", { bytes: payload.length, ms: Math.round(performance.now() - started) });
    } catch (error) {
      emit("serve-error", { message: String(error?.message ?? error) });
    }
  });
});

await server.start();

const registration = registerFromQuicSocket(socket, args["relay-host"], relayPort, args.session, Number(args["keepalive-ms"] ?? 5000));
const stop = async () => {
  registration.stop();
  await server.stop({ force: true }).catch(() => {});
  await socket.stop({ force: true }).catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
