import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/config/errors.ts";
import { repeatedFlag, resolveSecurityOptions, SECURITY_DEFAULTS, securityFlags } from "../../src/security/options.ts";
import { octalMode, readSecretFile, secretFileWarning } from "../../src/security/secret-file.ts";

const dir = mkdtempSync(join(tmpdir(), "quic-relay-sec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const A = "aaaaaaaaaaaaaaaa-1";
const B = "bbbbbbbbbbbbbbbb-2";

function flagOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).flag;
  }
  throw new Error("expected a ConfigError");
}

describe("security options", () => {
  it("defaults to no authentication and the documented limits", () => {
    const o = resolveSecurityOptions({}, {});
    expect(o.secrets).toEqual([]);
    expect(o.secretSource).toBe("none");
    expect(o.maxSessions).toBe(SECURITY_DEFAULTS.maxSessions);
    expect(o.maxSessionsPerHost).toBe(SECURITY_DEFAULTS.maxSessionsPerHost);
    expect(o.regRate).toBe(SECURITY_DEFAULTS.regRate);
    expect(o.regBurst).toBe(SECURITY_DEFAULTS.regBurst);
  });

  it("takes secrets from repeated and comma-separated flags plus a file, in order, without duplicates", () => {
    const file = join(dir, "secrets");
    writeFileSync(file, `# rotated monthly\n${B}\n\n${A}\r\n`);
    const o = resolveSecurityOptions({ authSecret: [`${A},${B}`, A], authSecretFile: file }, { QUIC_RELAY_AUTH_SECRET: "ignored-when-flags-given" });
    expect(o.secrets.map(dec)).toEqual([A, B]);
    expect(o.secretSource).toBe("flag+file");
  });

  it("falls back to QUIC_RELAY_AUTH_SECRET (comma-separated)", () => {
    const o = resolveSecurityOptions({}, { QUIC_RELAY_AUTH_SECRET: ` ${A} , ${B} ` });
    expect(o.secrets.map(dec)).toEqual([A, B]);
    expect(o.secretSource).toBe("env");
  });

  it("collects every --auth-secret from the raw arguments (citty keeps only the last)", () => {
    const raw = ["--port", "1", "--auth-secret", A, `--auth-secret=${B}`, "--auth-secret-file", "f"];
    expect(repeatedFlag(raw, "auth-secret")).toEqual([A, B]);
    const flags = securityFlags({ "auth-secret": B, "auth-secret-file": "f", "reg-rate": "5" }, raw);
    expect(flags.authSecret).toEqual([A, B]);
    expect(flags.authSecretFile).toBe("f");
    expect(flags.regRate).toBe("5");
  });

  it("0 turns off the per-host cap and the rate limit", () => {
    const o = resolveSecurityOptions({ maxSessionsPerHost: "0", regRate: "0" }, {});
    expect(o.maxSessionsPerHost).toBe(Number.POSITIVE_INFINITY);
    expect(o.regRate).toBe(0);
  });

  it("names the flag in every error, and never echoes a secret", () => {
    expect(flagOf(() => resolveSecurityOptions({ authSecret: "short" }, {}))).toBe("auth-secret");
    expect(flagOf(() => resolveSecurityOptions({ authSecret: " , " }, {}))).toBe("auth-secret");
    expect(flagOf(() => resolveSecurityOptions({ authSecret: true }, {}))).toBe("auth-secret");
    expect(flagOf(() => resolveSecurityOptions({ authSecretFile: join(dir, "missing") }, {}))).toBe("auth-secret-file");
    const empty = join(dir, "empty");
    writeFileSync(empty, "# nothing\n");
    expect(flagOf(() => resolveSecurityOptions({ authSecretFile: empty }, {}))).toBe("auth-secret-file");
    expect(flagOf(() => resolveSecurityOptions({}, { QUIC_RELAY_AUTH_SECRET: "tiny" }))).toBe("QUIC_RELAY_AUTH_SECRET");
    expect(flagOf(() => resolveSecurityOptions({ maxSessions: "0" }, {}))).toBe("max-sessions");
    expect(flagOf(() => resolveSecurityOptions({ maxSessions: "lots" }, {}))).toBe("max-sessions");
    expect(flagOf(() => resolveSecurityOptions({ maxSessionsPerHost: "-1" }, {}))).toBe("max-sessions-per-host");
    expect(flagOf(() => resolveSecurityOptions({ regRate: "fast" }, {}))).toBe("reg-rate");
    expect(flagOf(() => resolveSecurityOptions({ regBurst: "0" }, {}))).toBe("reg-burst");
    try {
      resolveSecurityOptions({ authSecret: "tiny-secret" }, {});
    } catch (error) {
      expect((error as Error).message).not.toContain("tiny-secret");
    }
  });

  it("accepts fractional rates", () => {
    expect(resolveSecurityOptions({ regRate: "0.5", regBurst: "2" }, {}).regRate).toBe(0.5);
  });

  it("reads QUIC_RELAY_* variables and then a config file, flags first", () => {
    const file = { path: "relay.toml", values: { "max-sessions": 10, "reg-rate": 3, "auth-secret": [A, B] } };
    const env = { QUIC_RELAY_MAX_SESSIONS: "20", QUIC_RELAY_MAX_SESSIONS_PER_HOST: "7" };
    const o = resolveSecurityOptions({ regBurst: "9" }, env, file);
    expect(o).toMatchObject({ maxSessions: 20, maxSessionsPerHost: 7, regRate: 3, regBurst: 9, secretSource: "config" });
    expect(o.secrets.map(dec)).toEqual([A, B]);
    expect(resolveSecurityOptions({ maxSessions: "30" }, env, file).maxSessions).toBe(30);
    const secretFile = join(dir, "env-secret");
    writeFileSync(secretFile, `${B}\n`);
    expect(resolveSecurityOptions({}, { QUIC_RELAY_AUTH_SECRET_FILE: secretFile }, file).secrets.map(dec)).toEqual([B]);
  });

  it("blames the variable or file key that is wrong", () => {
    expect(() => resolveSecurityOptions({}, { QUIC_RELAY_MAX_SESSIONS: "x" })).toThrow("QUIC_RELAY_MAX_SESSIONS must be");
    expect(() => resolveSecurityOptions({}, {}, { path: "r.toml", values: { "reg-rate": "fast" } })).toThrow("'reg-rate' in r.toml must be");
    expect(flagOf(() => resolveSecurityOptions({}, {}, { path: "r.toml", values: { "auth-secret": "short" } }))).toBe("auth-secret");
  });
});

describe("secret files", () => {
  const write = (name: string, text: string, mode: number) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  };

  it("reports each file read, with what named it and its mode, for the permission check", () => {
    const flagFile = write("mode-flag", `${A}\n`, 0o644);
    expect(resolveSecurityOptions({ authSecretFile: flagFile }, {}).secretFiles).toEqual([{ path: flagFile, source: "--auth-secret-file", mode: 0o644 }]);
    const envFile = write("mode-env", `${A}\n`, 0o600);
    expect(resolveSecurityOptions({}, { QUIC_RELAY_AUTH_SECRET_FILE: envFile }).secretFiles).toEqual([
      { path: envFile, source: "QUIC_RELAY_AUTH_SECRET_FILE", mode: 0o600 },
    ]);
    const config = { path: "relay.toml", values: { "auth-secret-file": envFile } };
    expect(resolveSecurityOptions({}, {}, config).secretFiles[0]!.source).toBe("'auth-secret-file' in relay.toml");
    expect(resolveSecurityOptions({ authSecret: A }, {}).secretFiles).toEqual([]);
  });

  it("blames the variable that named an unreadable file", () => {
    expect(() => resolveSecurityOptions({}, { QUIC_RELAY_AUTH_SECRET_FILE: join(dir, "absent") })).toThrow("QUIC_RELAY_AUTH_SECRET_FILE cannot be read: ENOENT");
  });

  it.each([
    ["0600", false],
    ["0400", false],
    ["0640", true],
    ["0644", true],
    ["0604", true],
    ["0620", true],
  ])("mode %s: warns %p", (octal, warns) => {
    const mode = parseInt(octal, 8);
    const path = write(`mode-${octal}`, `${A}\n`, mode);
    const [info] = resolveSecurityOptions({ authSecretFile: path }, {}).secretFiles;
    const warning = secretFileWarning(info!);
    if (!warns) return expect(warning).toBeUndefined();
    expect(warning).toContain(path);
    expect(octalMode(mode)).toBe(octal);
    expect(warning).toContain(`mode ${octal}`);
    expect(warning).toContain(`chmod 600 ${path}`);
    expect(warning).toContain("--auth-secret-file");
    expect(warning).not.toContain(A);
  });

  it("reads the lines of a file without comments and blank lines, and never puts them in a message", () => {
    const path = write("lines", `# first\n\n  ${A}  \r\n#${B}\n${B}\n`, 0o600);
    expect(readSecretFile(path, "--x", "x").lines).toEqual([A, B]);
    const comments = write("comments-only", "# nothing here\n\n", 0o600);
    expect(() => readSecretFile(comments, "--x", "x")).toThrow("--x");
    expect(() => readSecretFile(true, "--x", "x")).toThrow("--x needs a path");
  });
});
