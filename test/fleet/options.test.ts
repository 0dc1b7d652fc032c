import { describe, expect, it } from "bun:test";
import { resolveFleetOptions } from "../../src/fleet/options.ts";
import { ConfigError } from "../../src/protocol/errors.ts";

const base = { "fleet-redis": "redis://10.0.0.5:6379", "fleet-advertise": "203.0.113.7:4433", "fleet-secret": "0123456789abcdef" };

describe("fleet options", () => {
  it("is off without --fleet-redis", () => {
    expect(resolveFleetOptions({}, {})).toBeUndefined();
  });

  it("resolves flags with defaults", () => {
    expect(resolveFleetOptions(base, {})).toEqual({
      redisUrl: "redis://10.0.0.5:6379",
      advertise: "203.0.113.7:4433",
      advertiseEndpoint: { address: "203.0.113.7", port: 4433 },
      secret: "0123456789abcdef",
      prefix: "quic-relay",
      heartbeatMs: 2000,
      replayWindowMs: 30_000,
    });
  });

  it("reads QUIC_RELAY_FLEET_* variables, flags first", () => {
    const env = {
      QUIC_RELAY_FLEET_REDIS: "valkey://cache:6379",
      QUIC_RELAY_FLEET_ADVERTISE: "[2001:db8::7]:4433",
      QUIC_RELAY_FLEET_SECRET: "secret-from-the-environment",
      QUIC_RELAY_FLEET_HEARTBEAT_SECS: "0.5",
    };
    const o = resolveFleetOptions({}, env)!;
    expect(o.redisUrl).toBe("valkey://cache:6379");
    expect(o.advertiseEndpoint).toEqual({ address: "2001:db8::7", port: 4433 });
    expect(o.secret).toBe("secret-from-the-environment");
    expect(o.heartbeatMs).toBe(500);
    expect(resolveFleetOptions({ "fleet-secret": "flag-secret-0123456" }, env)!.secret).toBe("flag-secret-0123456");
  });

  it.each([
    ["fleet-redis", { ...base, "fleet-redis": "http://x" }],
    ["fleet-advertise", { ...base, "fleet-advertise": undefined }],
    ["fleet-advertise", { ...base, "fleet-advertise": "relay.example.com:4433" }],
    ["fleet-advertise", { ...base, "fleet-advertise": "0.0.0.0:4433" }],
    ["fleet-advertise", { ...base, "fleet-advertise": "10.0.0.1:0" }],
    ["fleet-secret", { ...base, "fleet-secret": undefined }],
    ["fleet-secret", { ...base, "fleet-secret": "short" }],
    ["fleet-prefix", { ...base, "fleet-prefix": "has space" }],
    ["fleet-heartbeat-secs", { ...base, "fleet-heartbeat-secs": "0" }],
    ["fleet-secret", { "fleet-secret": "0123456789abcdef" }],
  ])("refuses a bad or missing %s", (flag, flags) => {
    try {
      resolveFleetOptions(flags as Record<string, string | undefined>, {});
      throw new Error("accepted");
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).flag).toBe(flag);
    }
  });
});
