import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { configPath, loadConfigFile } from "../../src/config/config-file.ts";
import { DEFAULTS, envName, resolveRelayConfig, rebindQuietMs } from "../../src/config/config.ts";
import { configError, tomlFiles } from "./helpers.ts";

const { dir, write: file } = tomlFiles("quic-relay-config-");


describe("config precedence: flags > QUIC_RELAY_* env > file > defaults", () => {
  const path = file(`port = 1000\nsession-timeout-secs = 60\nlog-level = "debug"\nmetrics-listen = "127.0.0.1:9464"\ngro = false\n`);
  const loaded = loadConfigFile(path);

  it("uses defaults with no source", () => {
    expect(resolveRelayConfig({}, {})).toEqual(DEFAULTS);
  });

  it("layers file, env and flags per setting", () => {
    const fromFile = resolveRelayConfig({}, {}, loaded);
    expect(fromFile).toMatchObject({ port: 1000, sessionTimeoutSecs: 60, logLevel: "debug", metricsListen: "127.0.0.1:9464", gro: false });
    const env = { QUIC_RELAY_PORT: "2000", QUIC_RELAY_GRO: "true" };
    expect(resolveRelayConfig({}, env, loaded)).toMatchObject({ port: 2000, sessionTimeoutSecs: 60, gro: true });
    expect(resolveRelayConfig({ port: "3000" }, env, loaded)).toMatchObject({ port: 3000, sessionTimeoutSecs: 60 });
  });

  it("takes the log level from the flag, then QUIC_RELAY_LOG_LEVEL, LOG_LEVEL, RUST_LOG, then the file", () => {
    expect(resolveRelayConfig({}, { RUST_LOG: "warn" }, loaded).logLevel).toBe("warn");
    expect(resolveRelayConfig({}, { LOG_LEVEL: "ERROR", RUST_LOG: "warn" }, loaded).logLevel).toBe("error");
    expect(resolveRelayConfig({}, { QUIC_RELAY_LOG_LEVEL: "trace", LOG_LEVEL: "error" }, loaded).logLevel).toBe("trace");
    expect(resolveRelayConfig({ logLevel: "info" }, { QUIC_RELAY_LOG_LEVEL: "trace" }, loaded).logLevel).toBe("info");
  });

  it("ignores QUIC_RELAY_* variables that are not settings (client-side ones like QUIC_RELAY_IP)", () => {
    expect(resolveRelayConfig({}, { QUIC_RELAY_IP: "203.0.113.9", QUIC_RELAY_ONLY: "true" })).toEqual(DEFAULTS);
  });

  it("reads --rebind-quiet-secs as seconds, off or auto", () => {
    expect(resolveRelayConfig({}, {}).rebindQuietSecs).toBe("auto");
    expect(resolveRelayConfig({ rebindQuietSecs: "auto" }, {}).rebindQuietSecs).toBe("auto");
    expect(rebindQuietMs("auto", false)).toBe(1000);
    expect(rebindQuietMs("auto", true)).toBe(-1);
    expect(rebindQuietMs(2, true)).toBe(2000);
    expect(rebindQuietMs(-1, false)).toBe(-1);
    expect(resolveRelayConfig({ rebindQuietSecs: "off" }, {}).rebindQuietSecs).toBe(-1);
    expect(resolveRelayConfig({}, { QUIC_RELAY_REBIND_QUIET_SECS: "2.5" }).rebindQuietSecs).toBe(2.5);
    expect(resolveRelayConfig({}, {}, loadConfigFile(file(`rebind-quiet-secs = "off"`))).rebindQuietSecs).toBe(-1);
    expect(() => resolveRelayConfig({ rebindQuietSecs: "never" }, {})).toThrow("--rebind-quiet-secs must be a number");
  });

  it("reads --stun as on or off (default on) and --stun-alt-listen as host:port (default off)", () => {
    expect(resolveRelayConfig({}, {})).toMatchObject({ stun: true, stunAltListen: undefined });
    expect(resolveRelayConfig({ stun: "off" }, {}).stun).toBe(false);
    expect(resolveRelayConfig({}, { QUIC_RELAY_STUN: "on" }).stun).toBe(true);
    expect(resolveRelayConfig({}, {}, loadConfigFile(file(`stun = false`))).stun).toBe(false);
    expect(resolveRelayConfig({}, {}, loadConfigFile(file(`stun = "off"\nstun-alt-listen = "[::]:3479"`)))).toMatchObject({ stun: false, stunAltListen: "[::]:3479" });
    expect(() => resolveRelayConfig({ stun: "maybe" }, {})).toThrow("--stun must be on or off, got 'maybe'");
    expect(() => resolveRelayConfig({ stunAltListen: "3479" }, {})).toThrow("--stun-alt-listen must be host:port");
  });

  it("names env variables after the flag", () => {
    expect(envName("session-timeout-secs")).toBe("QUIC_RELAY_SESSION_TIMEOUT_SECS");
    expect(resolveRelayConfig({}, { QUIC_RELAY_STATE_FILE: "/var/lib/quic-relay/state.db" }).stateFile).toBe("/var/lib/quic-relay/state.db");
  });

  it("takes the config path from --config, else QUIC_RELAY_CONFIG", () => {
    expect(configPath("/a.toml", { QUIC_RELAY_CONFIG: "/b.toml" })).toBe("/a.toml");
    expect(configPath(undefined, { QUIC_RELAY_CONFIG: "/b.toml" })).toBe("/b.toml");
    expect(configPath(undefined, {})).toBeUndefined();
  });
});

describe("config errors name the flag, variable or file key", () => {
  it.each([
    ["--port must be an integer from 0 to 65535, got 'x'", "port", () => resolveRelayConfig({ port: "x" }, {})],
    ["QUIC_RELAY_PORT must be an integer from 0 to 65535, got '99999'", "port", () => resolveRelayConfig({}, { QUIC_RELAY_PORT: "99999" })],
    ["QUIC_RELAY_DATAPLANE must be one of auto, ts, native", "dataplane", () => resolveRelayConfig({}, { QUIC_RELAY_DATAPLANE: "gpu" })],
    ["--metrics-listen must be host:port", "metrics-listen", () => resolveRelayConfig({ metricsListen: "9464" }, {})],
    ["QUIC_RELAY_GRO must be true or false", "gro", () => resolveRelayConfig({}, { QUIC_RELAY_GRO: "maybe" })],
    ["'port' in ", "port", () => resolveRelayConfig({}, {}, loadConfigFile(file(`port = "many"`)))],
    ["'session-timeout-secs' in ", "session-timeout-secs", () => resolveRelayConfig({}, {}, loadConfigFile(file(`session-timeout-secs = -5`)))],
    ["'log-level' in ", "log-level", () => resolveRelayConfig({}, {}, loadConfigFile(file(`log-level = "loud"`)))],
    ["unknown key 'sesion-timeout-secs' in", "config", () => loadConfigFile(file(`sesion-timeout-secs = 5`))],
    ["must be a plain value", "config", () => loadConfigFile(file(`port = [1, 2]`))],
    ["is not valid TOML", "config", () => loadConfigFile(file(`port = = 3`))],
    ["cannot read config file", "config", () => loadConfigFile(join(dir, "missing.toml"))],
  ] as [string, string, () => unknown][])("reports %s (flag %s)", (message, flag, f) => {
    const error = configError(f);
    expect(error.message).toContain(message);
    expect(error.flag).toBe(flag);
    expect(error.message).not.toContain("\n");
  });

  it("suggests the right spelling for snake_case and typos", () => {
    expect(configError(() => loadConfigFile(file(`session_timeout_secs = 5`))).message).toContain("did you mean 'session-timeout-secs'?");
    expect(configError(() => loadConfigFile(file(`prot = 5`))).message).toContain("did you mean 'port'?");
  });

});
