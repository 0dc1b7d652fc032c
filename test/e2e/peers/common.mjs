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
 * the `ACK` (and a `RETRY`) as non-QUIC; we also listen on its UDP socket to learn when the ACK
 * came (for timing) and to answer a relay that asks for proof of our address: the REG is repeated
 * with the cookie of the `RETRY`, and later REGs carry it. Keepalive REGs keep the NAT mapping and
 * the relay session fresh.
 */
export function registerFromQuicSocket(socket, relayHost, relayPort, sessionId, keepaliveMs) {
  let reg = Buffer.from(`REG:${sessionId}\n`);
  let acked = false;
  let retries = 0;
  let sentAt = 0;
  let resolveFirst;
  const first = new Promise((resolve) => (resolveFirst = resolve));
  socket.socket.on("message", (msg, rinfo) => {
    if (rinfo.port !== relayPort) return;
    const text = msg.length <= 32 ? msg.toString("latin1") : "";
    if (/^RETRY [A-Za-z0-9_-]{16}\n$/.test(text) && retries < 3) {
      retries++;
      reg = Buffer.from(`REG:${sessionId} ${text.slice(6, -1)}\n`);
      send();
      return;
    }
    if (text === "ACK\n" && !acked) {
      acked = true;
      const ms = performance.now() - sentAt;
      emit("registered", { ms: Math.round(ms * 10) / 10, localPort: socket.port, verified: retries > 0 });
      resolveFirst(ms);
    }
  });
  const send = () => {
    if (!acked) sentAt ||= performance.now();
    socket.send(reg, relayPort, relayHost).catch((e) => emit("reg-error", { message: String(e) }));
  };
  send();
  const retry = setInterval(() => (acked ? clearInterval(retry) : send()), 300);
  const keepalive = setInterval(() => {
    retries = 0;
    send();
  }, keepaliveMs);
  return {
    first,
    stop() {
      clearInterval(retry);
      clearInterval(keepalive);
    },
  };
}
