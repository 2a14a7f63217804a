// The one error type of operations a caller asked for (control commands,
// failover steps). Shared by the modules that run them, so it lives below
// all of them; the control server answers with its stable `code`.

/** A control command that cannot run now or failed as a whole; the CLI exits non-zero with its message. */
export class OperationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
