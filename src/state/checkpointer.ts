/**
 * WAL checkpoints off the JavaScript thread. A save commits its chunks to the state file's
 * write-ahead log without syncing it; a checkpoint copies the log into the file and syncs both,
 * which takes tens of milliseconds on a real disk. Run on the relay's thread, that would stall
 * it; a worker thread with its own connection to the file runs them instead (SQLite lets a
 * checkpoint proceed while the relay's connection writes), one at a time, the next one as soon as
 * the previous one ended if a commit asked for one meanwhile.
 */

/** Whoever copies the write-ahead log into the file after commits. */
export interface Checkpointer {
  /** Checkpoints run elsewhere: the store turns SQLite's own (on its thread) off. */
  readonly offThread: boolean;
  /**
   * A commit added to the log: checkpoint soon. Never blocks, never throws; false when this
   * checkpointer cannot run (then the store turns SQLite's own checkpoints back on).
   */
  requested(): boolean;
  /** Waits for a checkpoint under way and ends; its connection closes after it. */
  close(): Promise<void>;
}

/**
 * The worker's code, run from a Blob URL so that it needs no file of its own (the compiled binary
 * carries only its entry point). A message with a path opens the file, "checkpoint" runs a passive
 * checkpoint, "close" closes the connection; each is answered "done" or with an error message.
 */
const WORKER_SOURCE = `
const { Database } = require("bun:sqlite");
let db;
self.onmessage = (event) => {
  try {
    if (event.data === "close") {
      db?.close();
      db = undefined;
    } else if (event.data === "checkpoint") {
      db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
    } else {
      db = new Database(event.data);
      db.run("PRAGMA busy_timeout = 1000");
      db.run("PRAGMA wal_autocheckpoint = 0");
    }
    postMessage("done");
  } catch (error) {
    postMessage(String((error && error.message) || error));
  }
};`;

/** How long close() waits for the worker before it ends the thread anyway. */
const CLOSE_WAIT_MS = 5000;

/** Checkpoints in a worker thread, started at the first request. */
export class WorkerCheckpointer implements Checkpointer {
  readonly offThread = true;
  /** Checkpoints the worker completed. */
  checkpoints = 0;
  /** The last error the worker reported (it goes on with the next request). */
  lastError: string | undefined;
  private worker: Worker | undefined;
  /** Messages sent and not answered yet, oldest first (the worker answers in order). */
  private readonly sent: string[] = [];
  /** A request came while a message was out: checkpoint again once it is answered. */
  private again = false;
  private closed = false;
  /** The worker could not start or died: checkpoints are SQLite's own again. */
  private failed = false;
  private idle: (() => void)[] = [];
  /** The Blob URL of the worker's code, revoked once the worker has loaded it. */
  private url: string | undefined;

  constructor(private readonly path: string) {}

  requested(): boolean {
    if (this.failed) return false;
    if (this.closed) return true;
    if (this.sent.length > 0) {
      this.again = true;
      return true;
    }
    try {
      this.post("checkpoint");
      return true;
    } catch (error) {
      this.lastError = (error as Error).message;
      return false;
    }
  }

  /** Resolves when the worker has answered every message sent so far (or failed). */
  settled(): Promise<void> {
    return this.sent.length === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (!worker || this.failed) return;
    const finished = (async () => {
      await this.settled();
      this.post("close");
      await this.settled();
    })();
    await Promise.race([finished, Bun.sleep(CLOSE_WAIT_MS)]);
    worker.terminate();
  }

  private post(message: string): void {
    const worker = this.worker ?? this.start();
    this.sent.push(message);
    worker.postMessage(message);
  }

  private start(): Worker {
    this.url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    const worker = new Worker(this.url);
    // A relay that stops while a checkpoint runs exits anyway: SQLite finishes it at the next open.
    worker.unref();
    worker.onmessage = (event: MessageEvent) => this.answered(String(event.data));
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.fail(event.message || "checkpoint worker failed");
    };
    this.worker = worker;
    this.sent.push("open");
    worker.postMessage(this.path);
    return worker;
  }

  private answered(answer: string): void {
    const message = this.sent.shift();
    if (message === "open") this.revoke();
    if (answer !== "done" && message === "open") return this.fail(answer);
    if (answer !== "done") this.lastError = answer;
    else if (message === "checkpoint") this.checkpoints++;
    if (this.sent.length > 0) return;
    for (const resolve of this.idle.splice(0)) resolve();
    if (this.again && !this.closed) {
      this.again = false;
      this.requested();
    }
  }

  /** No more checkpoints from the worker: what is out will not be answered. */
  private fail(reason: string): void {
    this.lastError = reason;
    this.failed = true;
    this.revoke();
    this.sent.length = 0;
    for (const resolve of this.idle.splice(0)) resolve();
    this.worker?.terminate();
  }

  private revoke(): void {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = undefined;
  }
}

/** SQLite's own automatic checkpoints, on the thread that commits (tests, tools). */
export const INLINE_CHECKPOINTS: Checkpointer = {
  offThread: false,
  requested: () => true,
  close: async () => {},
};
