// An import attribute, not a file read: `bun build --compile` embeds the value, so the binary knows it too.
import pkg from "../package.json" with { type: "json" };

/** The relay's version, from package.json: the one place it is read. */
export const VERSION: string = pkg.version;

/** What `quic-relay --version` prints: `quic-relay 0.1.0 (bun 1.4.5)`. */
export function versionText(): string {
  return `quic-relay ${VERSION} (bun ${Bun.version})`;
}
