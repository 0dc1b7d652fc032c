/** Builds the generator and the baseline forwarders with plain CMake into bench/build/. */
import { existsSync } from "node:fs";
import { join } from "node:path";

export const BENCH_DIR = import.meta.dir;
export const BUILD_DIR = join(BENCH_DIR, "build");

export class BenchBuildError extends Error {
  override name = "BenchBuildError";
}

export interface BuiltTools {
  loadgen: string;
  naive: string;
  ideal: string;
  /** REGs from forged sources (bench/native/regflood.c), for bench/sessions.ts */
  regflood: string;
}

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    throw new BenchBuildError(`${cmd.join(" ")} failed (exit ${r.exitCode}):\n${r.stderr.toString()}${r.stdout.toString()}`);
  }
}

export function buildTools(): BuiltTools {
  if (!Bun.which("cmake") || !(Bun.which("cc") || Bun.which("gcc"))) {
    throw new BenchBuildError("cmake and a C compiler are needed: apt-get install cmake build-essential");
  }
  run(["cmake", "-S", join(BENCH_DIR, "native"), "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release"]);
  run(["cmake", "--build", BUILD_DIR, "-j", "2"]);
  const tools = {
    loadgen: join(BUILD_DIR, "loadgen"),
    naive: join(BUILD_DIR, "baseline-naive"),
    ideal: join(BUILD_DIR, "baseline-ideal"),
    regflood: join(BUILD_DIR, "regflood"),
  };
  for (const path of Object.values(tools)) {
    if (!existsSync(path)) throw new BenchBuildError(`build finished but ${path} is missing`);
  }
  return tools;
}
