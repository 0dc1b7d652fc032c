import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { declaredLogFormat, loadConfigFile } from "../../src/config/config-file.ts";
import { envName, fromRustLog, nearestName, resolveRelayConfig, SETTINGS, unknownEnvWarnings } from "../../src/config/config.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { FLEET_ENV_ONLY_VARIABLES, fleetArgs, REDIS_PASSWORD_ENV } from "../../src/fleet/options.ts";
import { securityArgs } from "../../src/security/options.ts";
import { configError, tomlFiles } from "./helpers.ts";

const ROOT = join(import.meta.dir, "../..");
const { dir, write: file } = tomlFiles("quic-relay-env-");

/** What the relay command passes: the flags defined outside config.ts, and the env-only password. */
const EXTRA_FLAGS = [...Object.keys(securityArgs), ...Object.keys(fleetArgs)];
const warnings = (env: Record<string, string>) => unknownEnvWarnings(env, EXTRA_FLAGS, FLEET_ENV_ONLY_VARIABLES);

describe("unknownEnvWarnings", () => {
  it("warns about a misspelt setting with the nearest name", () => {
    expect(warnings({ QUIC_RELAY_SESION_TIMEOUT_SECS: "5" })).toEqual([
      "QUIC_RELAY_SESION_TIMEOUT_SECS is not a setting (did you mean QUIC_RELAY_SESSION_TIMEOUT_SECS?)",
    ]);
    expect(warnings({ QUIC_RELAY_AUTH_SECRT: "x" })).toEqual(["QUIC_RELAY_AUTH_SECRT is not a setting (did you mean QUIC_RELAY_AUTH_SECRET?)"]);
    expect(warnings({ QUIC_RELAY_session_timeout_secs: "5" })).toEqual([
      "QUIC_RELAY_session_timeout_secs is not a setting (did you mean QUIC_RELAY_SESSION_TIMEOUT_SECS?)",
    ]);
  });

  it("warns without a suggestion when nothing is close, one line per variable, sorted", () => {
    expect(warnings({ QUIC_RELAY_ZZZ: "1", QUIC_RELAY_PROT: "1", QUIC_RELAY_SESION_TIMEOUT_SECS: "" })).toEqual([
      "QUIC_RELAY_PROT is not a setting (did you mean QUIC_RELAY_PORT?)",
      "QUIC_RELAY_SESION_TIMEOUT_SECS is not a setting (did you mean QUIC_RELAY_SESSION_TIMEOUT_SECS?)",
      "QUIC_RELAY_ZZZ is not a setting",
    ]);
  });

  it("is silent about every setting's variable, the config path, the native switch and the clients' variables", () => {
    const env: Record<string, string> = {
      QUIC_RELAY_CONFIG: "/etc/quic-relay/relay.toml",
      QUIC_RELAY_NO_NATIVE: "1",
      QUIC_RELAY_IP: "203.0.113.9",
      QUIC_RELAY_ONLY: "true",
      [REDIS_PASSWORD_ENV]: "x",
      PATH: "/usr/bin",
      quic_relay_port: "1",
      RUST_LOG: "debug",
    };
    for (const setting of Object.values(SETTINGS)) env[envName(setting.flag)] = "1";
    for (const flag of EXTRA_FLAGS) env[envName(flag)] = "1";
    expect(warnings(env)).toEqual([]);
  });

  it("needs the flags defined elsewhere to know their variables", () => {
    expect(unknownEnvWarnings({ QUIC_RELAY_AUTH_SECRET: "x", QUIC_RELAY_FLEET_REDIS: "redis://r" })).toHaveLength(2);
    expect(unknownEnvWarnings({ QUIC_RELAY_AUTH_SECRET: "x", QUIC_RELAY_FLEET_REDIS: "redis://r" }, EXTRA_FLAGS)).toEqual([]);
  });

  it("knows every QUIC_RELAY_* variable the docs, deploy files and README name", () => {
    // Prefixes (`QUIC_RELAY_FLEET_*`) and the misspelling operations.md shows as an example are not variables.
    const MISSPELT_EXAMPLES = ["QUIC_RELAY_SESION_TIMEOUT_SECS"];
    const texts = [
      ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(ROOT, "docs", f)),
      ...readdirSync(join(ROOT, "deploy")).map((f) => join(ROOT, "deploy", f)),
      join(ROOT, "README.md"),
      join(ROOT, "Dockerfile"),
    ].map((path) => {
      try {
        return readFileSync(path, "utf8");
      } catch {
        return "";
      }
    });
    const named = new Set(texts.flatMap((t) => t.match(/QUIC_RELAY_[A-Z0-9_]*[A-Z0-9]\b/g) ?? []));
    const env = Object.fromEntries([...named].filter((v) => !MISSPELT_EXAMPLES.includes(v)).map((v) => [v, "1"]));
    expect(Object.keys(env).length).toBeGreaterThan(5);
    expect(warnings(env)).toEqual([]);
  });
});

describe("nearestName", () => {
  it("finds the candidate within two edits, else none", () => {
    expect(nearestName("prot", ["host", "port"])).toBe("port");
    expect(nearestName("porrt", ["port"])).toBe("port");
    expect(nearestName("xyz", ["port"])).toBeUndefined();
    expect(nearestName("pr", ["port"], 2)).toBe("port");
    expect(nearestName("pr", ["port"], 1)).toBeUndefined();
  });
});


describe("RUST_LOG, as env_logger reads it", () => {
  it.each([
    ["debug", "debug"],
    ["DEBUG", "debug"],
    ["Trace", "trace"],
    [" info , ", "info"],
    ["quic_relay=debug", "debug"],
    ["quic-relay=debug", "debug"],
    ["quic_relay=debug,warn", "debug"],
    ["warn,quic_relay=debug", "debug"],
    // A target named beats the global level, in either order.
    ["quic_relay=warn,debug", "warn"],
    // Of two global levels (or two for the same target) the later wins, as env_logger replaces them.
    ["debug,warn", "warn"],
    ["quic_relay=debug,quic-relay=error", "error"],
    // Only other crates named, but a global level too.
    ["other_crate=debug,warn", "warn"],
    // A bare target or an empty level: every level of it.
    ["quic_relay", "trace"],
    ["quic_relay=", "trace"],
    // Targets match by prefix, as env_logger's starts_with.
    ["quic=debug", "debug"],
    // Modules inside the relay widen its level: it cannot filter by module.
    ["quic_relay::sessions=debug", "debug"],
    ["quic_relay=info,quic_relay::relay=trace", "trace"],
    ["warn,quic_relay::relay=debug", "debug"],
    // Off: the relay's quietest level, errors only.
    ["off", "error"],
    ["quic_relay=off,info", "error"],
  ])("%s -> %s", (value, level) => {
    expect(fromRustLog(value)).toBe(level as never);
  });

  it.each(["other_crate=debug", "other_crate=trace,another=debug", "quic_relay_extra=debug", "", " , "])(
    "%j says nothing about the relay: undefined",
    (value) => {
      expect(fromRustLog(value)).toBeUndefined();
    },
  );

  it.each(["bogus", "debgu", "quic_relay=loud", "other_crate=verbose", "a=b=c", "warn,nonsense"])("%j is a ConfigError naming RUST_LOG", (value) => {
    const error = configError(() => fromRustLog(value));
    expect(error.message).toBe(`RUST_LOG must be a level (off, error, warn, info, debug, trace) or target=level directives such as quic_relay=debug,warn, got '${value}'`);
    expect(error.flag).toBe("log-level");
  });

  it("refuses env_logger's /regex message filter rather than ignoring it", () => {
    expect(configError(() => fromRustLog("debug/session")).message).toBe("RUST_LOG message filters ('/...') are not supported, got 'debug/session'");
  });

  it("comes after LOG_LEVEL and before the config file; saying nothing of the relay, it leaves the level to the file, else info", () => {
    const warnFile = loadConfigFile(file(`log-level = "warn"\n`));
    expect(resolveRelayConfig({}, { RUST_LOG: "other_crate=debug" }).logLevel).toBe("info");
    expect(resolveRelayConfig({}, { RUST_LOG: "other_crate=debug" }, warnFile).logLevel).toBe("warn");
    expect(resolveRelayConfig({}, { RUST_LOG: "quic_relay=debug" }, warnFile).logLevel).toBe("debug");
    expect(resolveRelayConfig({}, { LOG_LEVEL: "error", RUST_LOG: "debug" }).logLevel).toBe("error");
    expect(resolveRelayConfig({}, { QUIC_RELAY_LOG_LEVEL: "trace", RUST_LOG: "error" }).logLevel).toBe("trace");
    expect(resolveRelayConfig({ logLevel: "warn" }, { RUST_LOG: "debug" }).logLevel).toBe("warn");
    expect(() => resolveRelayConfig({}, { RUST_LOG: "bogus" })).toThrow(ConfigError);
    expect(() => resolveRelayConfig({}, { LOG_LEVEL: "bogus" })).toThrow("LOG_LEVEL must be one of");
  });
});

describe("declaredLogFormat: the log format for fatal errors, found before the config resolves", () => {
  const jsonFile = file(`log-format = "json"\nport = "not even valid"\n`);
  it.each([
    [[], {}, "pretty"],
    [["--log-format", "json"], {}, "json"],
    [["--log-format=json"], {}, "json"],
    [["--log-format", "yaml"], {}, "pretty"],
    [["--log-format", "json", "--log-format", "pretty"], {}, "pretty"],
    [[], { QUIC_RELAY_LOG_FORMAT: "json" }, "json"],
    [["--log-format", "pretty"], { QUIC_RELAY_LOG_FORMAT: "json" }, "pretty"],
    [["--config", jsonFile], {}, "json"],
    [[`--config=${jsonFile}`], {}, "json"],
    [[], { QUIC_RELAY_CONFIG: jsonFile }, "json"],
    [["--config", jsonFile], { QUIC_RELAY_LOG_FORMAT: "pretty" }, "pretty"],
    [["--config", join(dir, "missing.toml")], {}, "pretty"],
    [["--config", file("port = = 3")], {}, "pretty"],
    [["--", "--log-format", "json"], {}, "pretty"],
  ] as [string[], Record<string, string>, string][])("%j %j -> %s", (args, env, format) => {
    expect(declaredLogFormat(args, env)).toBe(format as never);
  });
});
