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

/** The relay never answered our REG (nor did the other addresses in `tried`, tried before it). */
export class RelayUnreachableError extends Error {
  override name = "RelayUnreachableError";
  constructor(
    readonly relay: string,
    readonly tries: number,
    readonly tried: readonly string[] = [],
  ) {
    const others = tried.length > 0 ? `; neither did ${tried.join(", ")} before it` : "";
    super(`relay ${relay} did not answer ${tries} REG attempts (unreachable, filtered, or not a quic-relay)${others}`);
  }
}

/** No address for the relay: every name failed to resolve, or resolved to nothing. */
export class RelayResolveError extends Error {
  override name = "RelayResolveError";
  constructor(
    readonly relay: string,
    reason: string,
  ) {
    super(`cannot resolve relay ${relay}: ${reason}`);
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
