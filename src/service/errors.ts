/** The relay could not start (e.g. the port is taken); the CLI prints it in one line and exits 1. */
export class StartupError extends Error {
  override name = "StartupError";
}
