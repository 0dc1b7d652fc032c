// Tells every sender the address it was seen from. Usage: node udp-echo.mjs HOST PORT [HOST PORT...]
import dgram from "node:dgram";
import { emit } from "./common.mjs";

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (_msg, rinfo) => socket.send(`${rinfo.address}:${rinfo.port}`, rinfo.port, rinfo.address));
  socket.bind(Number(args[i + 1]), args[i], () => emit("listening", { host: args[i], port: Number(args[i + 1]) }));
}
