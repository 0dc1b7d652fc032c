import { afterAll } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/config/errors.ts";

/** The ConfigError `f` throws; fails the test when it throws nothing or something else. */
export function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("no ConfigError thrown");
}

/**
 * Config files in a directory of their own, removed after the suite: `write(toml)` returns the
 * path of a new file holding `toml`.
 */
export function tomlFiles(prefix: string): { dir: string; write(toml: string): string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  return {
    dir,
    write(toml: string): string {
      const path = join(dir, `c${n++}.toml`);
      writeFileSync(path, toml);
      return path;
    },
  };
}
