/**
 * Load generator child for the lifecycle tests: floods a relay from `sources` sockets with
 * UDP_SEGMENT buffers (64 datagrams per send) until killed or `seconds` pass.
 * Prints one line `ports <p1> <p2> ...` once its sockets are bound.
 *   bun test/dataplane/native-flood.ts <host> <relayPort> <seconds> <sources> <payload> [buffersPerMs]
 * payload: "junk" (0x00 fill) or "quic" (0x40 first byte, then 0x5a fill); buffersPerMs 0 = unpaced.
 */
import { loadNativeAddon } from "../../src/dataplane/native-addon.ts";

const [host = "127.0.0.2", relayPort = "0", seconds = "3", sources = "1", payload = "junk", pace = "0"] =
  process.argv.slice(2);
const buffersPerMs = Number(pace);
const loaded = loadNativeAddon();
if (!loaded.ok) {
  console.error(loaded.reason);
  process.exit(2);
}
const segment = 200;
const buffer = new Uint8Array(segment * 64).fill(payload === "quic" ? 0x5a : 0);
if (payload === "quic") for (let at = 0; at < buffer.length; at += segment) buffer[at] = 0x40;
const sockets = Array.from({ length: Number(sources) }, () => new loaded.addon.GsoSocket(host));
console.log(`ports ${sockets.map((s) => s.local().port).join(" ")}`);
const deadline = Date.now() + Number(seconds) * 1000;
let sends = 0;
while (Date.now() < deadline) {
  for (const s of sockets) {
    try {
      s.send(buffer, segment, "127.0.0.1", Number(relayPort));
      sends++;
    } catch {
      // ENOBUFS and friends under load: keep going.
    }
  }
  if (buffersPerMs > 0 && sends % buffersPerMs === 0) Bun.sleepSync(1);
}
for (const s of sockets) s.close();
console.log(`sent ${sends * 64}`);
