/** Lines of a child's stdout, one at a time, each wait bounded. */
export class LineReader {
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.read(stream);
  }

  private async read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    try {
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          this.lines.push(pending.slice(0, nl).trim());
          pending = pending.slice(nl + 1);
          this.wake();
        }
      }
    } finally {
      if (pending.trim()) this.lines.push(pending.trim());
      this.ended = true;
      this.wake();
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next line; undefined when the stream ended or nothing came within `timeoutMs`. */
  async next(timeoutMs: number): Promise<string | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (this.lines.length === 0) {
      const left = deadline - performance.now();
      if (this.ended || left <= 0) return undefined;
      await Promise.race([new Promise<void>((w) => this.waiters.push(w)), Bun.sleep(Math.min(left, 250))]);
    }
    return this.lines.shift();
  }
}
