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
 * itself), with stderr collected. `onOutput` sees the stderr collected so far each time more
 * arrives, from the reader itself, so a test can act (send a signal, ask the metrics port) the
 * moment a line appears.
 */
export class RelayProcess {
  private stderr = "";
  private readonly reader: Promise<void>;

  private constructor(
    readonly proc: Subprocess<"ignore", "pipe", "pipe">,
    onOutput: (output: string, proc: Subprocess) => void,
  ) {
    this.reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) {
        this.stderr += decoder.decode(chunk, { stream: true });
        onOutput(this.stderr, proc);
      }
    })();
  }

  static spawn(args: string[], env: Record<string, string> = {}, onOutput: (output: string, proc: Subprocess) => void = () => {}): RelayProcess {
    const proc = Bun.spawn(["bun", MAIN, ...args], {
      env: { ...process.env, ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    return new RelayProcess(proc, onOutput);
  }

  output(): string {
    return this.stderr;
  }

  lines(): string[] {
    return this.stderr.split("\n").filter((l) => l !== "");
  }

  /** Waits until stderr contains `text` (throws after `ms`, or when the process ended without it). */
  async waitFor(text: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.stderr.includes(text)) {
      if (Date.now() > deadline || this.proc.exitCode !== null || this.proc.signalCode !== null) {
        // The process may have ended with the line still in the pipe: read what is left first.
        await Promise.race([this.reader, Bun.sleep(100)]);
        if (this.stderr.includes(text)) return;
        throw new Error(`relay output never contained '${text}' (exit ${this.proc.exitCode}, signal ${this.proc.signalCode}):\n${this.stderr}`);
      }
      await Bun.sleep(10);
    }
  }

  /** Number of times `text` occurs in stderr so far. */
  count(text: string): number {
    return this.stderr.split(text).length - 1;
  }

  /** Sends `signal`; the exit code once the process ended and its output is read. */
  async signal(signal: NodeJS.Signals): Promise<{ code: number | null }> {
    this.proc.kill(signal);
    return { code: await this.exited() };
  }

  /** Exit code (null: ended by a signal, see proc.signalCode) once the process ended and its output is read. */
  async exited(): Promise<number | null> {
    await this.proc.exited;
    await this.reader;
    return this.proc.exitCode;
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}
