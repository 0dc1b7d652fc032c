import type { Subprocess } from "bun";
import { join } from "node:path";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");

export async function freeUdpPort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

export async function freeTcpPort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/**
 * The relay as its own process (`bun src/cli/main.ts`, not `bun run`, so signals reach the relay
 * itself), with stderr collected.
 */
export class RelayProcess {
  private stderr = "";
  private readonly reader: Promise<void>;

  private constructor(readonly proc: Subprocess<"ignore", "pipe", "pipe">) {
    this.reader = (async () => {
      for await (const chunk of proc.stderr) this.stderr += new TextDecoder().decode(chunk);
    })();
  }

  static spawn(args: string[], env: Record<string, string> = {}): RelayProcess {
    const proc = Bun.spawn(["bun", MAIN, ...args], {
      env: { ...process.env, ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    return new RelayProcess(proc);
  }

  output(): string {
    return this.stderr;
  }

  lines(): string[] {
    return this.stderr.split("\n").filter((l) => l !== "");
  }

  /** Waits until stderr contains `text` (or throws after `ms`). */
  async waitFor(text: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.stderr.includes(text)) {
      if (Date.now() > deadline || this.proc.exitCode !== null) {
        throw new Error(`relay output never contained '${text}' (exit ${this.proc.exitCode}):\n${this.stderr}`);
      }
      await Bun.sleep(20);
    }
  }

  /** Number of times `text` occurs in stderr so far. */
  count(text: string): number {
    return this.stderr.split(text).length - 1;
  }

  /** Sends `signal` and returns the exit code and how long the exit took. */
  async signal(signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
    const start = Date.now();
    this.proc.kill(signal);
    const code = await this.proc.exited;
    await this.reader;
    return { code, ms: Date.now() - start };
  }

  async exited(): Promise<number> {
    const code = await this.proc.exited;
    await this.reader;
    return code;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}
