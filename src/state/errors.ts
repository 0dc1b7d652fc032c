/** The state file cannot be used: it cannot be opened, or it is not a state file of this relay. */
export class StateFileError extends Error {
  override name = "StateFileError";
}
