import { afterAll, describe, expect, it } from "bun:test";
import type { Subprocess } from "bun";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConsola } from "consola";
import { FleetDirectory } from "../../src/fleet/directory.ts";
import {
  FLEET_ENV_ONLY_VARIABLES,
  maskRedisUrl,
  redisUrlFor,
  redisUrlPassword,
  resolveFleetOptions,
  withRedisPassword,
} from "../../src/fleet/options.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { freeTcpPort } from "../cli/relay-process.ts";
import { REDIS_SERVER } from "../support/fleet-harness.ts";

const base = { "fleet-redis": "redis://10.0.0.5:6379", "fleet-advertise": "203.0.113.7:4433", "fleet-secret": "0123456789abcdef" };
const { "fleet-secret": _, ...noSecret } = base;
const SECRET = "fleet-secret-from-a-file-0123";
const PASSWORD = "p@ss:w/rd%20#x y";

const dir = mkdtempSync(join(tmpdir(), "quic-relay-fleet-opt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function secretFile(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("accepted");
}

describe("fleet options", () => {
  it("is off without --fleet-redis", () => {
    expect(resolveFleetOptions({}, {})).toBeUndefined();
  });

  it("resolves flags with defaults", () => {
    expect(resolveFleetOptions(base, {})).toEqual({
      redisUrl: "redis://10.0.0.5:6379",
      advertise: "203.0.113.7:4433",
      advertiseEndpoint: { address: "203.0.113.7", port: 4433 },
      secrets: ["0123456789abcdef"],
      prefix: "quic-relay",
      heartbeatMs: 2000,
      replayWindowMs: 30_000,
      secretFiles: [],
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
    expect(o.secrets).toEqual(["secret-from-the-environment"]);
    expect(o.heartbeatMs).toBe(500);
    expect(resolveFleetOptions({ "fleet-secret": "flag-secret-0123456" }, env)!.secrets).toEqual(["flag-secret-0123456"]);
    // One secret each: a comma is part of it, not a separator.
    expect(resolveFleetOptions({ ...base, "fleet-secret": "first-secret-0123,second-secret-0123" }, {})!.secrets).toEqual(["first-secret-0123,second-secret-0123"]);
  });

  it("reads the config file last, blaming its key", () => {
    const file = { path: "relay.toml", values: { "fleet-redis": "redis://file:6379", "fleet-heartbeat-secs": 5, "fleet-prefix": "from-file" } };
    const o = resolveFleetOptions({ "fleet-advertise": "203.0.113.7:4433" }, { QUIC_RELAY_FLEET_SECRET: SECRET, QUIC_RELAY_FLEET_PREFIX: "from-env" }, file)!;
    expect(o).toMatchObject({ redisUrl: "redis://file:6379", heartbeatMs: 5000, prefix: "from-env", secrets: [SECRET] });
    const bad = { path: "relay.toml", values: { ...file.values, "fleet-heartbeat-secs": "soon" } };
    expect(() => resolveFleetOptions(base, {}, bad)).toThrow("'fleet-heartbeat-secs' in relay.toml must be");
    expect(refusal(() => resolveFleetOptions({}, {}, { path: "relay.toml", values: { "fleet-secret-file": "x" } })).message).toBe(
      "'fleet-secret-file' in relay.toml needs --fleet-redis or --fleet-redis-sentinel",
    );
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
    ["fleet-secret-file", { "fleet-secret-file": "/etc/fleet-secret" }],
    ["fleet-redis-password-file", { "fleet-redis-password-file": "/etc/redis-password" }],
  ])("refuses a bad or missing %s", (flag, flags) => {
    expect(refusal(() => resolveFleetOptions(flags as Record<string, string | undefined>, {})).flag).toBe(flag);
  });
});

describe("fleet secret file", () => {
  const OLD = "the-secret-being-retired-0123";

  it("takes one secret from a one-line file, and reports the file for the permission check", () => {
    const path = secretFile("fleet-secret", `${SECRET}\n`, 0o640);
    const o = resolveFleetOptions({ ...noSecret, "fleet-secret-file": path }, {})!;
    expect(o.secrets).toEqual([SECRET]);
    expect(o.secretFiles).toEqual([{ path, source: "--fleet-secret-file", mode: 0o640 }]);
  });

  it("takes every line that is not blank or a comment, trimmed, in order: the first signs", () => {
    const path = secretFile("fleet-secrets-two", `# new secret first, the old one until every relay has the new one\n\n  ${SECRET}  \n# retired after the rollout\n${OLD}\r\n`);
    expect(resolveFleetOptions({ ...noSecret, "fleet-secret-file": path }, {})!.secrets).toEqual([SECRET, OLD]);
  });

  it.each([
    ["a repeated secret", `${SECRET}\n${OLD}\n  ${SECRET}\n`, "secrets 1 and 3 are the same; list each once"],
    ["a short secret on line 2", `${SECRET}\ntiny-secret\n`, "secret 2 of 2 must be at least 16 characters"],
    ["a short only secret", "tiny-secret\n", "the secret must be at least 16 characters"],
  ])("refuses %s without showing it", (_what, text, message) => {
    const path = secretFile("fleet-secrets-bad", text);
    const error = refusal(() => resolveFleetOptions({ ...noSecret, "fleet-secret-file": path }, {}));
    expect(error.flag).toBe("fleet-secret-file");
    expect(error.message).toBe(`--fleet-secret-file: ${message}`);
    for (const secret of [SECRET, OLD, "tiny-secret"]) expect(error.message).not.toContain(secret);
  });

  it("is read from QUIC_RELAY_FLEET_SECRET_FILE and from the config file", () => {
    const path = secretFile("fleet-secret-env", `${SECRET}\n`);
    expect(resolveFleetOptions(noSecret, { QUIC_RELAY_FLEET_SECRET_FILE: path })!.secrets).toEqual([SECRET]);
    const o = resolveFleetOptions(noSecret, {}, { path: "relay.toml", values: { "fleet-secret-file": path } })!;
    expect(o.secrets).toEqual([SECRET]);
    expect(o.secretFiles![0]!.source).toBe("'fleet-secret-file' in relay.toml");
  });

  it("the first source giving the secret either way wins (flags, variables, config file), as for --auth-secret", () => {
    const path = secretFile("fleet-secret-order", `${SECRET}\n`);
    expect(resolveFleetOptions({ ...noSecret, "fleet-secret-file": path }, { QUIC_RELAY_FLEET_SECRET: "env-secret-0123456789" })!.secrets).toEqual([SECRET]);
    expect(resolveFleetOptions(noSecret, { QUIC_RELAY_FLEET_SECRET: "env-secret-0123456789" }, { path: "r.toml", values: { "fleet-secret-file": path } })!.secrets).toEqual([
      "env-secret-0123456789",
    ]);
  });

  it.each([
    ["flags", { ...base, "fleet-secret-file": "f" }, {}, undefined, "--fleet-secret and --fleet-secret-file both set"],
    ["variables", noSecret, { QUIC_RELAY_FLEET_SECRET: "x", QUIC_RELAY_FLEET_SECRET_FILE: "f" }, undefined, "QUIC_RELAY_FLEET_SECRET and QUIC_RELAY_FLEET_SECRET_FILE both set"],
    ["the config file", noSecret, {}, { path: "r.toml", values: { "fleet-secret": "x", "fleet-secret-file": "f" } }, "'fleet-secret' in r.toml and 'fleet-secret-file' in r.toml"],
  ])("refuses the secret and a secret file both given in %s", (_where, flags, env, file, message) => {
    const error = refusal(() => resolveFleetOptions(flags, env, file));
    expect(error.flag).toBe("fleet-secret-file");
    expect(error.message).toContain(message);
  });

  it("refuses a missing, empty or short file without showing its text, and a short secret given directly", () => {
    expect(refusal(() => resolveFleetOptions({ ...noSecret, "fleet-secret-file": join(dir, "absent") }, {})).message).toBe("--fleet-secret-file cannot be read: ENOENT");
    const empty = secretFile("fleet-secret-empty", "# to be filled in\n");
    expect(refusal(() => resolveFleetOptions({ ...noSecret, "fleet-secret-file": empty }, {})).flag).toBe("fleet-secret-file");
    const short = secretFile("fleet-secret-short", "tiny-secret\n");
    const error = refusal(() => resolveFleetOptions({ ...noSecret, "fleet-secret-file": short }, {}));
    expect(error.flag).toBe("fleet-secret-file");
    expect(error.message).toContain("at least 16 characters");
    expect(error.message).not.toContain("tiny-secret");
    const direct = refusal(() => resolveFleetOptions({ ...base, "fleet-secret": "tiny-secret" }, {}));
    expect(direct.message).toBe("--fleet-secret: the secret must be at least 16 characters");
  });
});

describe("Redis password", () => {
  it("comes from --fleet-redis-password-file into the URL, percent-encoded, keeping a user name", () => {
    const path = secretFile("redis-password", `# redis ACL password\n${PASSWORD}\n`, 0o644);
    const o = resolveFleetOptions({ ...base, "fleet-redis-password-file": path }, {})!;
    expect(o.redisUrl).toBe(`redis://:${encodeURIComponent(PASSWORD)}@10.0.0.5:6379`);
    expect(o.secretFiles).toEqual([{ path, source: "--fleet-redis-password-file", mode: 0o644 }]);
    const user = resolveFleetOptions({ ...base, "fleet-redis": "rediss://relay@redis.example.net:6380/0", "fleet-redis-password-file": path }, {})!;
    expect(user.redisUrl).toBe(`rediss://relay:${encodeURIComponent(PASSWORD)}@redis.example.net:6380/0`);
  });

  it("comes from QUIC_RELAY_FLEET_REDIS_PASSWORD, or its _FILE variable, or the config file's file key; never from REDISCLI_AUTH", () => {
    expect(resolveFleetOptions(base, { QUIC_RELAY_FLEET_REDIS_PASSWORD: "from-env" })!.redisUrl).toBe("redis://:from-env@10.0.0.5:6379");
    const path = secretFile("redis-password-env", "from-file\n");
    expect(resolveFleetOptions(base, { QUIC_RELAY_FLEET_REDIS_PASSWORD_FILE: path })!.redisUrl).toBe("redis://:from-file@10.0.0.5:6379");
    expect(resolveFleetOptions(base, {}, { path: "r.toml", values: { "fleet-redis-password-file": path } })!.redisUrl).toBe("redis://:from-file@10.0.0.5:6379");
    expect(resolveFleetOptions(base, { REDISCLI_AUTH: "not-ours" })!.redisUrl).toBe("redis://10.0.0.5:6379");
    // A flag beats a variable; the password itself is never a flag or a config key.
    expect(resolveFleetOptions({ ...base, "fleet-redis-password-file": path }, { QUIC_RELAY_FLEET_REDIS_PASSWORD: "from-env" })!.redisUrl).toBe(
      "redis://:from-file@10.0.0.5:6379",
    );
    expect(resolveFleetOptions({ ...base, "fleet-redis-password": "x" } as Record<string, string>, {}, { path: "r.toml", values: { "fleet-redis-password": "y" } })!.redisUrl).toBe(
      "redis://10.0.0.5:6379",
    );
  });

  it.each([
    ["a password file", { "fleet-redis-password-file": "unread" }, {}, "fleet-redis-password-file"],
    ["QUIC_RELAY_FLEET_REDIS_PASSWORD", {}, { QUIC_RELAY_FLEET_REDIS_PASSWORD: "env-password-zz" }, "fleet-redis-password"],
  ])("refuses a URL that carries a password plus %s, without showing either", (_what, extra, env, flag) => {
    const error = refusal(() => resolveFleetOptions({ ...base, "fleet-redis": "redis://:in-the-url@10.0.0.5:6379", ...extra }, env));
    expect(error.flag).toBe(flag);
    expect(error.message).toContain("already carries a password");
    expect(error.message).not.toContain("in-the-url");
    expect(error.message).not.toContain("env-password-zz");
  });

  it("refuses the password and a password file both given in the environment", () => {
    const env = { QUIC_RELAY_FLEET_REDIS_PASSWORD: "a", QUIC_RELAY_FLEET_REDIS_PASSWORD_FILE: "f" };
    expect(refusal(() => resolveFleetOptions(base, env)).flag).toBe("fleet-redis-password-file");
    expect(refusal(() => resolveFleetOptions({}, { QUIC_RELAY_FLEET_REDIS_PASSWORD: "a" })).message).toBe("QUIC_RELAY_FLEET_REDIS_PASSWORD needs --fleet-redis or --fleet-redis-sentinel");
  });

  it.each([
    ["redis://10.0.0.5:6379", "redis://10.0.0.5:6379", undefined],
    ["redis://user@10.0.0.5:6379", "redis://user@10.0.0.5:6379", undefined],
    ["redis://:pw@10.0.0.5:6379", "redis://:***@10.0.0.5:6379", "pw"],
    ["rediss://relay:pw@host:6380/2", "rediss://relay:***@host:6380/2", "pw"],
    ["redis://:p@ss/w@host:6379", "redis://:***@host:6379", "p@ss/w"],
    ["redis://user:@host", "redis://user:***@host", undefined],
  ])("%s is logged as %s", (url, masked, password) => {
    expect(maskRedisUrl(url)).toBe(masked);
    expect(redisUrlPassword(url)).toBe(password);
  });

  it("masks the password in the message about a bad URL", () => {
    const error = refusal(() => resolveFleetOptions({ ...base, "fleet-redis": "redis://:hunter2@host port" }, {}));
    expect(error.message).not.toContain("hunter2");
    expect(withRedisPassword("redis://host:1", "a b")).toBe("redis://:a%20b@host:1");
  });
});

describe("Redis Sentinel", () => {
  const { "fleet-redis": _redis, ...noRedis } = base;
  const sentinels = "10.0.0.5:26379, sentinel-b.internal:26379,[2001:db8::7]:26379";
  const named = [
    { host: "10.0.0.5", port: 26379 },
    { host: "sentinel-b.internal", port: 26379 },
    { host: "2001:db8::7", port: 26379 },
  ];

  it("--fleet-redis-sentinel alone enables the fleet: plain redis://, master mymaster, no sentinel password", () => {
    const o = resolveFleetOptions({ ...noRedis, "fleet-redis-sentinel": sentinels }, {})!;
    expect(o.redisUrl).toBe("redis://");
    expect(o.sentinel).toEqual({ sentinels: named, masterName: "mymaster", scheme: "redis://" });
    expect(redisUrlFor(o.redisUrl, "10.0.0.9:6379")).toBe("redis://10.0.0.9:6379");
  });

  it("--fleet-redis is the template: scheme, user, db; the password sources fill it; the sentinels use its scheme", () => {
    const path = secretFile("redis-password-sentinel", `${PASSWORD}\n`);
    const o = resolveFleetOptions(
      { ...base, "fleet-redis": "rediss://relay@/2", "fleet-redis-sentinel": "10.0.0.5:26379", "fleet-redis-master": "directory", "fleet-redis-password-file": path },
      { QUIC_RELAY_FLEET_SENTINEL_PASSWORD: "sentinel-pw" },
    )!;
    expect(o.redisUrl).toBe(`rediss://relay:${encodeURIComponent(PASSWORD)}@/2`);
    expect(o.sentinel).toEqual({ sentinels: [named[0]], masterName: "directory", scheme: "rediss://", password: "sentinel-pw" });
    expect(redisUrlFor(o.redisUrl, "[2001:db8::9]:6380")).toBe(`rediss://relay:${encodeURIComponent(PASSWORD)}@[2001:db8::9]:6380/2`);
    expect(maskRedisUrl(redisUrlFor(o.redisUrl, "10.0.0.9:6379"))).toBe("rediss://relay:***@10.0.0.9:6379/2");
    expect(redisUrlFor(resolveFleetOptions({ ...base, "fleet-redis": "redis://", "fleet-redis-sentinel": "10.0.0.5:26379" }, { QUIC_RELAY_FLEET_REDIS_PASSWORD: "pw" })!.redisUrl, "10.0.0.9:6379")).toBe(
      "redis://:pw@10.0.0.9:6379",
    );
  });

  it("is read from QUIC_RELAY_FLEET_* variables and config-file keys", () => {
    const env = { QUIC_RELAY_FLEET_REDIS_SENTINEL: "10.0.0.5:26379", QUIC_RELAY_FLEET_REDIS_MASTER: "from-env" };
    expect(resolveFleetOptions(noRedis, env)!.sentinel).toMatchObject({ sentinels: [named[0]], masterName: "from-env" });
    const file = { path: "relay.toml", values: { "fleet-redis-sentinel": "10.0.0.5:26379,sentinel-b.internal:26379", "fleet-redis-master": "from-file", "fleet-redis": "redis:///1" } };
    const o = resolveFleetOptions(noRedis, {}, file)!;
    expect(o.sentinel).toMatchObject({ sentinels: named.slice(0, 2), masterName: "from-file" });
    expect(o.redisUrl).toBe("redis:///1");
    // The sentinels' password is never a flag or a config key.
    expect(resolveFleetOptions(noRedis, {}, { path: "r.toml", values: { ...file.values, "fleet-sentinel-password": "x" } })!.sentinel!.password).toBeUndefined();
    expect(FLEET_ENV_ONLY_VARIABLES).toEqual(["QUIC_RELAY_FLEET_REDIS_PASSWORD", "QUIC_RELAY_FLEET_SENTINEL_PASSWORD"]);
  });

  it.each([
    ["a host in --fleet-redis", { ...base, "fleet-redis-sentinel": "10.0.0.5:26379" }, {}, "fleet-redis", "gives only the scheme, user and db"],
    ["a valkey:// template", { ...base, "fleet-redis": "valkey://", "fleet-redis-sentinel": "10.0.0.5:26379" }, {}, "fleet-redis", "gives only the scheme"],
    ["a template with a path", { ...base, "fleet-redis": "redis:///x", "fleet-redis-sentinel": "10.0.0.5:26379" }, {}, "fleet-redis", "gives only the scheme"],
    ["a sentinel without a port", { ...noRedis, "fleet-redis-sentinel": "10.0.0.5" }, {}, "fleet-redis-sentinel", "must be host:port[,host:port...]"],
    ["an empty item", { ...noRedis, "fleet-redis-sentinel": "10.0.0.5:26379,," }, {}, "fleet-redis-sentinel", "got ''"],
    ["port 0", { ...noRedis, "fleet-redis-sentinel": "10.0.0.5:0" }, {}, "fleet-redis-sentinel", "got '10.0.0.5:0'"],
    ["a bad host name", { ...noRedis, "fleet-redis-sentinel": "bad_host:26379" }, {}, "fleet-redis-sentinel", "got 'bad_host:26379'"],
    ["a repeated sentinel", { ...noRedis, "fleet-redis-sentinel": "10.0.0.5:26379,10.0.0.5:26379" }, {}, "fleet-redis-sentinel", "names 10.0.0.5:26379 twice"],
    ["a bad master name", { ...noRedis, "fleet-redis-sentinel": "10.0.0.5:26379", "fleet-redis-master": "my master" }, {}, "fleet-redis-master", "must be 1-64 of"],
    ["--fleet-redis-master without sentinels", { ...base, "fleet-redis-master": "mymaster" }, {}, "fleet-redis-master", "--fleet-redis-master needs --fleet-redis-sentinel"],
    ["the sentinel password without sentinels", base, { QUIC_RELAY_FLEET_SENTINEL_PASSWORD: "pw" }, "fleet-sentinel-password", "QUIC_RELAY_FLEET_SENTINEL_PASSWORD needs --fleet-redis-sentinel"],
    ["the sentinel password without a fleet", {}, { QUIC_RELAY_FLEET_SENTINEL_PASSWORD: "pw" }, "fleet-sentinel-password", "needs --fleet-redis or --fleet-redis-sentinel"],
    ["a master name without a fleet", { "fleet-redis-master": "mymaster" }, {}, "fleet-redis-master", "needs --fleet-redis or --fleet-redis-sentinel"],
  ])("refuses %s", (_what, flags, env, flag, message) => {
    const error = refusal(() => resolveFleetOptions(flags as Record<string, string>, env));
    expect(error.flag).toBe(flag);
    expect(error.message).toContain(message);
  });

  it("masks a password in the message about a bad template", () => {
    const error = refusal(() => resolveFleetOptions({ ...base, "fleet-redis": "redis://:hunter2@10.0.0.5:6379", "fleet-redis-sentinel": "10.0.0.5:26379" }, {}));
    expect(error.message).toContain("redis://:***@10.0.0.5:6379");
    expect(error.message).not.toContain("hunter2");
  });
});

describe.skipIf(!REDIS_SERVER)("Redis password against redis-server --requirepass", () => {
  let redis: Subprocess<"ignore", "pipe", "ignore"> | undefined;
  afterAll(() => redis?.kill("SIGKILL"));

  it("the directory connects with the password from a file and never logs it", async () => {
    const port = await freeTcpPort();
    redis = Bun.spawn([REDIS_SERVER!, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "ignore",
    });
    // redis-server logs to stdout; it serves once it says so.
    let log = "";
    for await (const chunk of redis.stdout) {
      log += new TextDecoder().decode(chunk);
      if (log.includes("Ready to accept connections")) break;
    }
    const lines: string[] = [];
    const logger = createConsola({ level: 5, reporters: [{ log: (entry) => lines.push(JSON.stringify(entry.args)) }] });
    const connect = async (url: string) => {
      const directory = new FleetDirectory(url, "t", "127.0.0.1:9", logger, () => {});
      await directory.maintain();
      const ok = await directory.heartbeat({}, 5000);
      directory.close();
      return ok;
    };

    const path = secretFile("redis-password-live", `${PASSWORD}\n`);
    const o = resolveFleetOptions({ ...base, "fleet-redis": `redis://127.0.0.1:${port}`, "fleet-redis-password-file": path }, {})!;
    expect(await connect(o.redisUrl)).toBe(true);
    expect(await connect(`redis://127.0.0.1:${port}`)).toBe(false);
    expect(await connect(withRedisPassword(`redis://127.0.0.1:${port}`, "wrong-password"))).toBe(false);
    expect(lines.some((l) => l.includes("fleet directory reachable") && l.includes(`redis://:***@127.0.0.1:${port}`))).toBe(true);
    for (const line of lines) {
      expect(line).not.toContain(encodeURIComponent(PASSWORD));
      expect(line).not.toContain(PASSWORD);
      expect(line).not.toContain("wrong-password");
    }
  });
});
