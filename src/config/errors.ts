/** Raised for invalid configuration (flags, environment, config file); the CLI prints its message in one line. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    message: string,
    readonly flag?: string,
  ) {
    super(message);
  }
}
