/** Raised when a requested data plane cannot run (the native addon missing, or not built for this platform). */
export class DataPlaneUnavailableError extends Error {
  override name = "DataPlaneUnavailableError";
  constructor(
    readonly kind: string,
    readonly reason: string,
  ) {
    super(`data plane '${kind}' is unavailable: ${reason}`);
  }
}

/** A data-plane method called in a state that does not allow it (e.g. before start, or after close). */
export class DataPlaneStateError extends Error {
  override name = "DataPlaneStateError";
}
