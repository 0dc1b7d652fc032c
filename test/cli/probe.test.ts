import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { eventually, startRelay, TestPeer, type TestRelay } from "../utils.ts";
import { FakeRelay } from "../client/fake-relay.ts";
import { metric, registerUntilAnswered } from "../service/process-helpers.ts";
import { freeTcpPort, freeUdpPort, RelayProcess } from "./relay-process.ts";

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

describe("quic-relay probe: progress while it waits", () => {
  it("prints one line per REG attempt on stderr, in text mode only", async () => {
    const silent = await TestPeer.open();
    try {
      const relay = `127.0.0.1:${silent.port}`;
      const text = await probe("--no-discovery", "--relay", relay, "--tries", "3", "--ack-timeout-ms", "50");
      expect(text.code).toBe(1);
      const lines = text.stderr.split("\n").filter((l) => l.includes("registering"));
      expect(lines).toHaveLength(3);
      for (const [i, line] of lines.entries()) expect(line).toContain(`registering the first socket with ${relay} (REG, try ${i + 1}/3)`);
      expect(text.stdout).not.toContain("registering");
      expect(text.stderr).toContain("did not answer 3 REG attempts");

      const json = await probe("--no-discovery", "--relay", relay, "--tries", "2", "--ack-timeout-ms", "50", "--json");
      expect(json.code).toBe(1);
      expect(json.stderr).not.toContain("registering");
    } finally {
      silent.socket.close();
    }
  });

  it("names both sockets' attempts when the relay answers; stdout keeps the summary only", async () => {
    const { code, stdout, stderr } = await probe("--no-discovery", "--relay", `127.0.0.1:${relay.port}`, "--count", "3", "--interval-ms", "0");
    expect(code).toBe(0);
    expect(stderr).toContain(`registering the first socket with 127.0.0.1:${relay.port} (REG, try 1/3)`);
    expect(stderr).toContain(`registering the second socket with 127.0.0.1:${relay.port} (REG, try 1/3)`);
    expect(stdout).not.toContain("registering");
    expect(stdout).toMatch(/3 sent, 3 returned, 0% loss/);
  });
});

describe("quic-relay probe leaves no session behind", () => {
  it("its session is gone from a real relay soon after it exits; other sessions keep the session timeout", async () => {
    const port = await freeUdpPort();
    const metrics = `http://127.0.0.1:${await freeTcpPort()}`;
    const relay = RelayProcess.spawn(["--host", "127.0.0.1", "--port", String(port), "--metrics-listen", metrics.slice(7)]);
    const app = await TestPeer.open("127.0.0.5");
    try {
      await relay.waitFor("listening");
      expect(await registerUntilAnswered(app, port, "an-app-session")).toBe("ACK\n");
      const { code, stdout } = await probe("--no-discovery", "--relay", `127.0.0.1:${port}`, "--count", "5", "--interval-ms", "0", "--drain-ms", "500");
      expect(code).toBe(0);
      const id = /session (probe-[0-9a-f-]{36})/.exec(stdout)?.[1];
      expect(id).toBeDefined();
      // Polled, not timed: the relay expires it after 10 s of silence (300 s for other sessions).
      await eventually(() => relay.output().includes(`session expired session=${id}`), 60_000, 100);
      expect(await metric(metrics, 'quic_relay_sessions_active{state="paired"}')).toBe(0);
      expect(await metric(metrics, 'quic_relay_sessions_active{state="waiting"}')).toBe(1);
      expect(await metric(metrics, "quic_relay_sessions_expired_total")).toBe(1);
      expect(relay.output()).not.toContain("session expired session=an-app-session");
      expect((await relay.signal("SIGTERM")).code).toBe(0);
    } finally {
      app.close();
      relay.kill();
    }
  }, 90_000);
});
