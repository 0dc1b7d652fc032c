import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startRelay, TestPeer, type TestRelay } from "../utils.ts";
import { FakeRelay } from "../client/fake-relay.ts";

const MAIN = `${import.meta.dir}/../../src/cli/main.ts`;

let relay: TestRelay;
beforeAll(async () => {
  relay = await startRelay("ts");
});
afterAll(async () => {
  await relay.stop();
});

async function probe(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(["bun", MAIN, "probe", ...args], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe("quic-relay probe", () => {
  it("pairs two sockets and reports registration time, RTT percentiles and loss as JSON", async () => {
    const { code, stdout } = await probe("--relay", `127.0.0.1:${relay.port}`, "--count", "50", "--size", "600", "--interval-ms", "1", "--json");
    expect(code).toBe(0);
    const result = JSON.parse(stdout);
    expect(result.sent).toBe(50);
    expect(result.received).toBe(50);
    expect(result.lossPercent).toBe(0);
    expect(result.size).toBe(600);
    expect(result.registrationMs).toHaveLength(2);
    expect(typeof result.verified).toBe("boolean");
    expect(result.rttMs.p50).toBeGreaterThan(0);
    expect(result.rttMs.p99).toBeGreaterThanOrEqual(result.rttMs.p50);
  });

  it("prints a readable summary by default", async () => {
    const { code, stdout } = await probe("--relay", `127.0.0.1:${relay.port}`, "--count", "5", "--interval-ms", "0");
    expect(code).toBe(0);
    expect(stdout).toMatch(/registration .* ms/);
    expect(stdout).toMatch(/5 sent, 5 returned, 0% loss/);
    expect(stdout).toMatch(/rtt +p50 [\d.]+ ms +p99 [\d.]+ ms/);
  });

  it("exits non-zero when pairing fails", async () => {
    const silent = await TestPeer.open();
    try {
      const { code, stdout } = await probe("--relay", `127.0.0.1:${silent.port}`, "--tries", "2", "--ack-timeout-ms", "100", "--json");
      expect(code).toBe(1);
      expect(JSON.parse(stdout).error).toMatch(/did not answer 2 REG attempts/);
    } finally {
      silent.socket.close();
    }
  });
});

describe("quic-relay probe and return-routability proof", () => {
  it.each([
    ["requires proof", { requireCookies: true }, true, "verified"],
    ["asks for none", {}, false, "unverified"],
  ])("reports whether the relay %s, in JSON and in one word of text", async (_name, options, verified, word) => {
    const fake = await FakeRelay.start(options);
    try {
      const json = await probe("--no-discovery", "--relay", `127.0.0.1:${fake.port}`, "--count", "5", "--interval-ms", "0", "--json");
      expect(json.code).toBe(0);
      const result = JSON.parse(json.stdout);
      expect(result.verified).toBe(verified);
      expect(result.received).toBe(5);
      expect(fake.retries.length).toBe(verified ? 2 : 0);
      const plain = await probe("--no-discovery", "--relay", `127.0.0.1:${fake.port}`, "--count", "5", "--interval-ms", "0");
      expect(plain.code).toBe(0);
      expect(plain.stdout).toMatch(new RegExp(`registration [\\d.]+ ms \\(first socket\\), [\\d.]+ ms \\(second socket\\); ${word}\\n`));
    } finally {
      fake.close();
    }
  });
});
