/** Runs the native load generator and collects its JSON, sampling the relay at its phase lines. */
import type { BuiltTools } from "./build.ts";

export class LoadgenError extends Error {
  override name = "LoadgenError";
}

export type Phase = "measure" | "stop" | "done";

export interface LoadgenRun {
  result: Record<string, unknown>;
  stderr: string;
}

/**
 * Spawns `loadgen args` (pinned), calls onPhase when it prints `phase:<name>`, resolves with the
 * JSON line it prints last. Killed after timeoutMs.
 */
export async function runLoadgen(
  tools: BuiltTools,
  pin: string[],
  args: string[],
  timeoutMs: number,
  onPhase: (phase: Phase) => void = () => {},
): Promise<LoadgenRun> {
  const proc = Bun.spawn([...pin, tools.loadgen, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  let json: Record<string, unknown> | undefined;
  let pending = "";
  const decoder = new TextDecoder();
  const handleLine = (line: string): void => {
    if (line.startsWith("phase:")) onPhase(line.slice(6).trim() as Phase);
    else if (line.startsWith("{")) json = JSON.parse(line) as Record<string, unknown>;
  };
  for await (const chunk of proc.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      handleLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending.trim()) handleLine(pending.trim());
  const stderr = await new Response(proc.stderr).text();
  const code = await proc.exited;
  clearTimeout(timer);
  if (!json) throw new LoadgenError(`loadgen ${args.join(" ")} gave no result (exit ${code}): ${stderr.trim()}`);
  if (typeof json.error === "string") throw new LoadgenError(`loadgen: ${json.error} ${stderr.trim()}`);
  return { result: json, stderr };
}
