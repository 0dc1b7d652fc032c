// Negative control for the rebinding tests: a relay that registers and pairs two addresses and
// forwards between them, but pins each peer to the address it registered from. It follows no NAT
// rebinding at all (no REG from a new port, no connection-ID evidence); a REG for a full session
// from a new address gets `ERR full`. It also holds nothing: what a peer sends before its partner
// registers is dropped. Usage: node pinned-forwarder.mjs HOST PORT
import dgram from "node:dgram";
import { emit } from "./common.mjs";

const [host, port] = process.argv.slice(2);
const socket = dgram.createSocket("udp4");
const sessions = new Map(); // id -> [key, ...]
const partner = new Map(); // key -> { address, port }
let dropped = 0;

socket.on("message", (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`;
  if (msg.length >= 4 && msg.toString("latin1", 0, 4) === "REG:") {
    const id = msg.toString("latin1", 4).replace(/\r?\n$/, "");
    const members = sessions.get(id) ?? [];
    if (!members.includes(key)) {
      if (members.length >= 2) {
        socket.send("ERR full\n", rinfo.port, rinfo.address);
        return;
      }
      members.push(key);
      sessions.set(id, members);
      if (members.length === 2) {
        const [a, b] = members.map((m) => ({ address: m.split(":")[0], port: Number(m.split(":")[1]) }));
        partner.set(members[0], b);
        partner.set(members[1], a);
        emit("paired", { session: id, peers: members });
      }
    }
    socket.send("ACK\n", rinfo.port, rinfo.address);
    return;
  }
  const to = partner.get(key);
  if (!to) {
    if (dropped++ === 0) emit("dropped-unknown", { from: key });
    return;
  }
  socket.send(msg, to.port, to.address);
});
socket.bind(Number(port), host, () => emit("listening", { port: Number(port) }));
process.on("SIGTERM", () => process.exit(0));
