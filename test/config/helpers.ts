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
