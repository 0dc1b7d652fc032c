/** Errors the client side (connect, probe) raises; the CLI prints their message in one line. */

/** A flag or address the user gave cannot be used. */
export class ClientConfigError extends Error {
  override name = "ClientConfigError";
  constructor(
    message: string,
    readonly flag?: string,
  ) {
    super(message);
  }
}

/** The relay never answered our REG. */
export class RelayUnreachableError extends Error {
  override name = "RelayUnreachableError";
  constructor(
    readonly relay: string,
    readonly tries: number,
  ) {
    super(`relay ${relay} did not answer ${tries} REG attempts (unreachable, filtered, or not a quic-relay)`);
  }
}

/** The relay answered our REG with `ERR <code>`. */
export class RegistrationRefusedError extends Error {
  override name = "RegistrationRefusedError";
  constructor(
    readonly relay: string,
    readonly code: string,
  ) {
    super(`relay ${relay} refused the registration: ERR ${code === "" ? "(no reason given)" : code}`);
  }
}
