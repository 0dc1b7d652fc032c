import { afterEach, describe, expect, it } from "bun:test";
import { runCommand } from "citty";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_TTL_SECS, mintRegField, tokenCommand } from "../../src/cli/token.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { verifyToken } from "../../src/security/token.ts";

const SECRET = "cli-secret-0123456789";
const OLD = "old-cli-secret-0123456789";
const enc = (s: string) => new TextEncoder().encode(s);

/** Runs `quic-relay token <args>` in-process and returns what it printed. */
async function token(args: string[]): Promise<string> {
  const write = process.stdout.write;
  let out = "";
  process.stdout.write = ((chunk: string) => {
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await runCommand(tokenCommand, { rawArgs: args });
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe("quic-relay token", () => {
  const saved = process.env.QUIC_RELAY_AUTH_SECRET;
  afterEach(() => {
    if (saved === undefined) delete process.env.QUIC_RELAY_AUTH_SECRET;
    else process.env.QUIC_RELAY_AUTH_SECRET = saved;
  });

  it("prints a REG field that the relay's verifier accepts, bound to the session and TTL", async () => {
    const before = Math.floor(Date.now() / 1000);
    const line = (await token(["--session", "abc-123", "--ttl", "120", "--secret", SECRET])).trim();
    const after = Math.ceil(Date.now() / 1000);
    const check = verifyToken(line, [enc(SECRET)], Date.now());
    expect(check.ok).toBe(true);
    if (!check.ok) return;
    expect(check.sessionId).toBe("abc-123");
    // Minted at some second between the two readings, however long the process took to start.
    expect(check.expiresAt - before).toBeGreaterThanOrEqual(120);
    expect(check.expiresAt - after).toBeLessThanOrEqual(120);
    expect(verifyToken(line, [enc(SECRET)], (check.expiresAt + 1) * 1000).ok).toBe(false);
  });

  it("mints with the first secret; the relay accepts it alongside older ones", async () => {
    const line = (await token(["--session", "s", "--secret", `${SECRET},${OLD}`])).trim();
    expect(verifyToken(line, [enc(SECRET)], Date.now()).ok).toBe(true);
    expect(verifyToken(line, [enc(OLD)], Date.now()).ok).toBe(false);
  });

  it("reads the secret from a file or QUIC_RELAY_AUTH_SECRET, and prints reg or json forms", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-token-"));
    try {
      const file = join(dir, "secret");
      writeFileSync(file, `${SECRET}\n`);
      const reg = (await token(["--session", "s1", "--secret-file", file, "--format", "reg"])).trim();
      expect(reg.startsWith("REG:s1:")).toBe(true);
      expect(verifyToken(reg.slice(4), [enc(SECRET)], Date.now()).ok).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    process.env.QUIC_RELAY_AUTH_SECRET = SECRET;
    const json = JSON.parse(await token(["--session", "s2", "--format", "json"]));
    expect(json.session).toBe("s2");
    expect(json.reg).toBe(`REG:${json.token}`);
    expect(verifyToken(json.token, [enc(SECRET)], Date.now()).ok).toBe(true);
  });

  it.each([
    [["--session", "s", "--ttl", "0", "--secret", SECRET], "ttl"],
    [["--session", "s", "--ttl", String(MAX_TTL_SECS + 1), "--secret", SECRET], "ttl"],
    [["--session", "has space", "--secret", SECRET], "session"],
    [["--session", "x".repeat(100), "--secret", SECRET], "session"],
    [["--session", "s", "--secret", "short"], "auth-secret"],
    [["--session", "s", "--secret", SECRET, "--format", "xml"], "format"],
    [["--session", "s"], "secret"],
  ])("refuses %j naming --%s", async (args, flag) => {
    delete process.env.QUIC_RELAY_AUTH_SECRET;
    const error = await token(args as string[]).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).flag).toBe(flag as string);
  });

  it("fits the whole field into the REG length limit", () => {
    const minted = mintRegField(enc(SECRET), "u".repeat(73), 60, 1_800_000_000_000);
    expect(minted.token.length).toBeLessThanOrEqual(128);
    expect(() => mintRegField(enc(SECRET), "u".repeat(74), 60, 1_800_000_000_000)).toThrow(ConfigError);
  });
});
