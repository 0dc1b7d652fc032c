/**
 * `--drain-secs` with the relay as its own process: what a SIGTERM drain looks like from outside
 * (/readyz 503 `draining`, forwarding and REGs as before, /healthz 200 to the end), the three ways
 * a drain ends (its time, no session left, a second signal), and the health port answering during
 * the final save of many sessions. No fixed waits and no timing assertions: output and endpoints
 * are polled, datagrams resent until they arrive.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SessionSnapshot } from "../../src/sessions/table.ts";
import { StateStore } from "../../src/state/store.ts";
import { exchange, get, HealthPoller, pairUntilAcknowledged, registerUntilAnswered } from "../service/process-helpers.ts";
import { eventually, TestPeer } from "../utils.ts";
import { freeTcpPort, freeUdpPort, RelayProcess } from "./relay-process.ts";

describe("relay process: drain on SIGTERM/SIGINT", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function relay(extra: string[]) {
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-drain-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, "s.db");
    const port = await freeUdpPort();
    const metrics = `http://127.0.0.1:${await freeTcpPort()}`;
    const args = ["--host", "127.0.0.1", "--port", String(port), "--state-file", stateFile, "--metrics-listen", metrics.slice(7), ...extra];
    const proc = RelayProcess.spawn(args);
    cleanup.push(() => proc.kill());
    await proc.waitFor("listening");
    return { proc, port, metrics, stateFile };
  }

  async function pair(port: number, hosts?: [string, string]) {
    const p = await pairUntilAcknowledged(port, hosts);
    cleanup.push(() => (p.a.close(), p.b.close()));
    return p;
  }

  function savedIds(stateFile: string): string[] {
    const { store } = StateStore.open(stateFile);
    try {
      return (store.load().state?.sessions ?? []).map((s) => s.id).sort();
    } finally {
      store.close();
    }
  }

  /** Every /healthz answer was 200 and the port went away only at the end: no answer after a failure. */
  function healthyToTheEnd(answers: { answer: string | undefined }[]): void {
    const firstFailure = answers.findIndex((a) => a.answer === undefined);
    const answered = firstFailure < 0 ? answers : answers.slice(0, firstFailure);
    expect(answered.length).toBeGreaterThan(0);
    expect(new Set(answered.map((a) => a.answer))).toEqual(new Set(["200 ok"]));
    if (firstFailure >= 0) expect(answers.slice(firstFailure).every((a) => a.answer === undefined)).toBe(true);
  }

  it("readyz 503 while sessions forward and REGs are answered, healthz 200 to the end; a second SIGTERM stops at once, state saved", async () => {
    // A drain far longer than the test: only the second SIGTERM can end it.
    const { proc, port, metrics, stateFile } = await relay(["--drain-secs", "600"]);
    const { a, b, session } = await pair(port);
    expect(await get(`${metrics}/readyz`)).toBe("200 ok");
    const health = new HealthPoller(metrics, ["/healthz"]);

    proc.proc.kill("SIGTERM");
    await proc.waitFor("received SIGTERM, draining: /readyz answers 503, sessions keep forwarding sessions=1 drain_s=600");
    health.mark();
    expect(await get(`${metrics}/readyz`)).toBe("503 draining");
    expect(await get(`${metrics}/healthz`)).toBe("200 ok");
    await exchange(a, b, port, "during the drain a->b");
    await exchange(b, a, port, "during the drain b->a");
    // A keepalive of a member, and a peer that was on its way when the drain began.
    expect(await registerUntilAnswered(a, port, session)).toBe("ACK\n");
    const c = await TestPeer.open("127.0.0.4");
    cleanup.push(() => c.close());
    expect(await registerUntilAnswered(c, port, "arrived-during-the-drain")).toBe("ACK\n");
    // A reload is not taken while stopping; the relay goes on draining.
    proc.proc.kill("SIGHUP");
    await proc.waitFor("received SIGHUP while stopping; not reloaded");
    expect(await get(`${metrics}/readyz`)).toBe("503 draining");
    await exchange(a, b, port, "still draining");

    proc.proc.kill("SIGTERM");
    expect(await proc.exited()).toBe(0);
    const answers = await health.stop();
    const out = proc.output();
    expect(out).toContain("received SIGTERM during the drain, stopping now sessions=2");
    expect(out).toContain("drain over (asked to stop), stopping sessions=2");
    expect(out).toContain("saving state");
    expect(out).toContain("state saved");
    expect(out).toContain("INFO  stopped");
    expect(out).not.toContain("shutdown took too long");
    healthyToTheEnd(answers);
    expect(answers.some((x) => x.afterMark && x.answer === "200 ok")).toBe(true);
    expect(savedIds(stateFile)).toEqual(["arrived-during-the-drain", session].sort());
  }, 60_000);

  it.each(["SIGTERM", "SIGINT"] as const)("%s: the drain ends after --drain-secs, then the save and exit 0", async (signal) => {
    // The shutdown bound counts from the end of the drain: one shorter than the drain cuts nothing.
    const { proc, port, stateFile } = await relay(["--drain-secs", "2", "--shutdown-timeout-secs", "1.5"]);
    const { session } = await pair(port);
    proc.proc.kill(signal);
    expect(await proc.exited()).toBe(0);
    const out = proc.output();
    expect(out).not.toContain("shutdown took too long");
    expect(out).toContain(`received ${signal}, draining`);
    expect(out).toContain("drain over (time up), stopping sessions=1");
    expect(out).toContain("state saved");
    expect(savedIds(stateFile)).toEqual([session]);
  }, 60_000);

  it("the drain ends as soon as no session is left (at once without any)", async () => {
    const empty = await relay(["--drain-secs", "600"]);
    empty.proc.proc.kill("SIGTERM");
    expect(await empty.proc.exited()).toBe(0);
    expect(empty.proc.output()).toContain("drain over (no sessions left), stopping sessions=0");

    const { proc, port } = await relay(["--drain-secs", "600", "--session-timeout-secs", "1"]);
    await pair(port);
    proc.proc.kill("SIGTERM");
    expect(await proc.exited()).toBe(0);
    const out = proc.output();
    expect(out).toContain("received SIGTERM, draining");
    expect(out).toContain("session expired");
    expect(out).toContain("drain over (no sessions left), stopping sessions=0");
  }, 60_000);

  it("without --drain-secs a SIGTERM stops at once, as before; a second one changes nothing", async () => {
    const { proc, port } = await relay([]);
    await pair(port);
    proc.proc.kill("SIGTERM");
    proc.proc.kill("SIGTERM");
    expect(await proc.exited()).toBe(0);
    expect(proc.output()).toContain("received SIGTERM, stopping sessions=1");
    expect(proc.output()).not.toContain("draining");
  }, 60_000);
});

describe("relay process: the health port during the final save of many sessions", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it("answers /healthz 200 and /readyz 503 `saving` during the final save of a relay holding 100 000 sessions", async () => {
    const SESSIONS = 100_000;
    const dir = mkdtempSync(join(tmpdir(), "quic-relay-bigsave-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, "s.db");
    const sessions: SessionSnapshot[] = Array.from({ length: SESSIONS }, (_, i) => {
      const address = `127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      return { id: `big-${i}`, idleMs: 0, peers: [{ address, port: 1000, idleMs: 0 }, { address, port: 2000, idleMs: 0 }] };
    });
    const { store } = StateStore.open(stateFile);
    store.save(sessions);
    store.close();

    const port = await freeUdpPort();
    const metrics = `http://127.0.0.1:${await freeTcpPort()}`;
    // The TypeScript plane restores 100 000 paired sessions' routes quickly; the save is the same on both.
    const args = ["--host", "127.0.0.1", "--port", String(port), "--dataplane", "ts", "--state-file", stateFile, "--metrics-listen", metrics.slice(7)];
    const proc = RelayProcess.spawn(args);
    cleanup.push(() => proc.kill());
    await proc.waitFor("listening", 60_000);
    expect(proc.output()).toContain(`restored=${SESSIONS} `);

    // Requests in flight all the time, from before the SIGTERM until the port is gone. /readyz says
    // `saving` only while the final save runs, and the port closes right after that save, in the
    // same turn of the event loop: a `saving` answer was served during a pause of the save. A save
    // that held the event loop from start to end would leave none. (Saves write only what changed:
    // here little, as the restored sessions are idle; a final save of many changed sessions, chunk
    // by chunk, is in test/state/incremental-save.test.ts.)
    const health = new HealthPoller(metrics, ["/readyz", "/healthz"], 6);
    await eventually(() => health.answers.length >= 6);
    proc.proc.kill("SIGTERM");
    expect(await proc.exited()).toBe(0);
    const answers = await health.stop();
    const out = proc.output();
    expect(out).toContain(`saving state file=${stateFile} sessions=${SESSIONS}`);
    expect(out).toContain(`state saved file=${stateFile} sessions=${SESSIONS}`);
    const saving = answers.filter((a) => a.path === "/readyz" && a.answer === "503 saving");
    expect(saving.length).toBeGreaterThanOrEqual(1);
    const healthz = answers.filter((a) => a.path === "/healthz" && a.answer !== undefined);
    expect(new Set(healthz.map((a) => a.answer))).toEqual(new Set(["200 ok"]));
    const again = StateStore.open(stateFile).store;
    expect(again.load().state?.sessions.length).toBe(SESSIONS);
    again.close();
  }, 120_000);
});
