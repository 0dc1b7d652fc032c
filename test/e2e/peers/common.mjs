// Shared bits of the Node QUIC peers (run with `node`, inside a network namespace).
import { createHash } from "node:crypto";

/** One JSON object per line on stdout; the test parses these. `t` is wall-clock ms. */
export function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, t: Date.now(), ...fields })}\n`);
}

export function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
  return args;
}

export function sha256(chunks) {
  const hash = createHash("sha256");
  for (const c of chunks) hash.update(c);
  return hash.digest("hex");
}

/**
 * Register the QUIC socket itself with the relay: `REG` goes out through the library's public
 * `send()`, so the relay sees exactly the address the QUIC traffic will use. The library drops
 * the `ACK` as non-QUIC; we also listen on its UDP socket to learn when the ACK came (for timing).
 * Keepalive REGs keep the NAT mapping and the relay session fresh.
 */
export function registerFromQuicSocket(socket, relayHost, relayPort, sessionId, keepaliveMs) {
  const reg = Buffer.from(`REG:${sessionId}\n`);
  let acked = false;
  let sentAt = 0;
  let resolveFirst;
  const first = new Promise((resolve) => (resolveFirst = resolve));
  socket.socket.on("message", (msg, rinfo) => {
    if (msg.length === 4 && msg.toString() === "ACK\n" && rinfo.port === relayPort) {
      if (!acked) {
        acked = true;
        const ms = performance.now() - sentAt;
        emit("registered", { ms: Math.round(ms * 10) / 10, localPort: socket.port });
        resolveFirst(ms);
      }
    }
  });
  const send = () => {
    sentAt = performance.now();
    socket.send(reg, relayPort, relayHost).catch((e) => emit("reg-error", { message: String(e) }));
  };
  send();
  const retry = setInterval(() => (acked ? clearInterval(retry) : send()), 300);
  const keepalive = setInterval(send, keepaliveMs);
  return {
    first,
    stop() {
      clearInterval(retry);
      clearInterval(keepalive);
    },
  };
}
