/**
 * Helpers for tests that drive a relay from outside (its own process, or a service in this one):
 * REGs and datagrams resent until they arrive, HTTP answers of the metrics port, and a poller that
 * keeps asking the health endpoints until told to stop. No fixed waits: everything is retried
 * until it happens, within a generous deadline.
 */
import { TestPeer, text } from "../utils.ts";

/** `REG:<session>` resent every `everyMs` until the relay answers; a RETRY is answered. Returns the answer. */
export async function registerUntilAnswered(peer: TestPeer, port: number, session: string, everyMs = 300, deadlineMs = 10_000): Promise<string> {
  const deadline = Date.now() + deadlineMs;
  let reg = `REG:${session}\n`;
  while (Date.now() < deadline) {
    peer.send(reg, port);
    const reply = await peer.nextText(everyMs).catch(() => "");
    if (reply.startsWith("RETRY ")) reg = `REG:${session} ${reply.slice(6, -1)}\n`;
    else if (reply !== "") return reply;
  }
  throw new Error(`REG:${session} never answered`);
}

/** A fresh session of two peers, each REG resent until acknowledged. */
export async function pairUntilAcknowledged(port: number, hosts: [string, string] = ["127.0.0.2", "127.0.0.3"]) {
  const a = await TestPeer.open(hosts[0]);
  const b = await TestPeer.open(hosts[1]);
  const session = crypto.randomUUID();
  for (const peer of [a, b]) {
    const reply = await registerUntilAnswered(peer, port, session);
    if (reply !== "ACK\n") throw new Error(`REG not acknowledged: ${JSON.stringify(reply)}`);
  }
  return { a, b, session };
}

/**
 * Sends `payload` from `from` through the relay until `to` has it (other datagrams, such as late
 * ACKs of resent REGs, are skipped).
 */
export async function exchange(from: TestPeer, to: TestPeer, port: number, payload: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    from.send(payload, port);
    const until = Date.now() + 300;
    while (Date.now() < until) {
      const got = await to.next(Math.max(1, until - Date.now())).catch(() => undefined);
      if (got && text(got.data) === payload) return;
    }
  }
  throw new Error(`'${payload}' never arrived`);
}

/** `"<status> <body>"` of a GET, e.g. `"503 draining"`. */
export async function get(url: string): Promise<string> {
  const response = await fetch(url);
  return `${response.status} ${(await response.text()).trim()}`;
}

/** One sample of a Prometheus text exposition, 0 when absent. */
export async function metric(baseUrl: string, name: string): Promise<number> {
  const doc = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = doc.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

export interface HealthAnswer {
  path: string;
  /** `"<status> <body>"`, or undefined when the request failed (connection refused, reset). */
  answer: string | undefined;
  /** `mark()` had been called when the request was sent. */
  afterMark: boolean;
}

/**
 * `loops` requests in flight at all times, to each of `paths` in turn, each sent as soon as the
 * previous one of its loop is settled, until `stop()`. Records every answer in order of arrival.
 */
export class HealthPoller {
  readonly answers: HealthAnswer[] = [];
  private running = true;
  private marked = false;
  private readonly loops: Promise<void>[];

  constructor(baseUrl: string, paths: string[], loops = 4) {
    this.loops = Array.from({ length: loops }, async (_, n) => {
      for (let i = n; this.running; i++) {
        const path = paths[i % paths.length]!;
        const afterMark = this.marked;
        let answer: string | undefined;
        try {
          answer = await get(`${baseUrl}${path}`);
        } catch {
          answer = undefined;
        }
        this.answers.push({ path, answer, afterMark });
        if (answer === undefined) await Bun.sleep(5); // the port is gone: do not spin
      }
    });
  }

  /** Requests sent from now on are marked. */
  mark(): void {
    this.marked = true;
  }

  async stop(): Promise<HealthAnswer[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.answers;
  }
}

