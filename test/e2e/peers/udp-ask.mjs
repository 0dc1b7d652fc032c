// From ONE socket, asks each echo server how it sees us; prints our local port and the answers.
// Usage: node udp-ask.mjs HOST PORT [HOST PORT...]
import dgram from "node:dgram";
import { emit } from "./common.mjs";

const args = process.argv.slice(2);
const targets = [];
for (let i = 0; i < args.length; i += 2) targets.push({ host: args[i], port: Number(args[i + 1]) });
const socket = dgram.createSocket("udp4");
const seen = {};
socket.on("message", (msg, rinfo) => {
  seen[`${rinfo.address}:${rinfo.port}`] = msg.toString();
  if (Object.keys(seen).length === targets.length) {
    emit("seen", { localPort: socket.address().port, seen });
    process.exit(0);
  }
});
socket.bind(0, "0.0.0.0", () => {
  const ask = () => targets.forEach((t) => socket.send("who am i", t.port, t.host));
  ask();
  setInterval(ask, 300);
  setTimeout(() => process.exit(1), 5000);
});
