/** Child processes of the e2e suite: output capture, JSON-line events, bounded waits, cleanup. */
import type { Subprocess } from "bun";

export interface PeerEvent {
  event: string;
  t: number;
  [key: string]: unknown;
}

export class Proc {
  private out = "";
  private err = "";
  readonly events: PeerEvent[] = [];
  readonly exited: Promise<number>;

  constructor(
    readonly name: string,
    private readonly proc: Subprocess<"ignore", "pipe", "pipe">,
  ) {
    void this.pump(proc.stdout, (s) => {
      this.out += s;
      this.parseEvents();
    });
    void this.pump(proc.stderr, (s) => (this.err += s));
    this.exited = proc.exited;
    void this.exited.then((code) => (this.code = code));
  }

  /** Exit code once the process has ended. */
  code: number | undefined;

  get stdout(): string {
    return this.out;
  }

  get output(): string {
    return `${this.out}${this.err}`;
  }

  get pid(): number {
    return this.proc.pid;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    try {
      this.proc.kill(signal);
    } catch {
      // already gone
    }
  }

  event(name: string): PeerEvent | undefined {
    return this.events.find((e) => e.event === name);
  }

  async waitEvent(names: string | string[], ms: number): Promise<PeerEvent> {
    const wanted = ([] as string[]).concat(names);
    await waitFor(() => this.events.some((e) => wanted.includes(e.event)), ms, () => `${this.name}: no ${wanted.join("|")} event\n${this.tail()}`);
    return this.events.find((e) => wanted.includes(e.event))!;
  }

  async waitOutput(pattern: RegExp, ms: number): Promise<RegExpMatchArray> {
    await waitFor(() => pattern.test(this.output), ms, () => `${this.name}: no ${pattern} in output\n${this.tail()}`);
    return this.output.match(pattern)!;
  }

  /** Exit code, or the process is killed after `ms` and -1 returned. */
  async exitCode(ms: number): Promise<number> {
    const timer = setTimeout(() => this.kill(), ms);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  tail(lines = 25): string {
    return this.output.split("\n").slice(-lines).join("\n");
  }

  private parseEvents(): void {
    const lines = this.out.split("\n");
    for (let i = this.lineCount; i < lines.length - 1; i++) {
      const line = lines[i]!.trim();
      if (line.startsWith("{")) {
        try {
          this.events.push(JSON.parse(line) as PeerEvent);
        } catch {
          // not an event line
        }
      }
    }
    this.lineCount = lines.length - 1;
  }
  private lineCount = 0;

  private async pump(stream: ReadableStream<Uint8Array>, sink: (s: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) sink(decoder.decode(chunk, { stream: true }));
  }
}

/** Every process started by the suite, so teardown (also on failure or signal) can end them. */
export class ProcSet {
  private procs: Proc[] = [];

  spawn(name: string, argv: string[], env?: Record<string, string>): Proc {
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
    const p = new Proc(name, proc);
    this.procs.push(p);
    return p;
  }

  killAll(): void {
    for (const p of this.procs.splice(0)) p.kill();
  }
}

export async function waitFor(check: () => boolean, ms: number, describe: () => string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${describe()}`);
    await Bun.sleep(20);
  }
}
