// What Node gets for `import "quic-relay"` or `require("quic-relay")` (the "node" export condition).
// The package is TypeScript that uses Bun's APIs (Bun.udpSocket, Bun.serve, bun:sqlite), so Node
// cannot run it: this says so in one line instead of failing on a ".ts" file extension.
// From Node, run the relay as a process and speak the REG protocol (docs/integration.md, "Embedding").
throw new Error(
  "quic-relay runs on Bun (>= 1.4), not Node: start this app with `bun`, or run the relay as a process " +
    "(the `quic-relay` binary) and register from Node as docs/integration.md shows",
);
