// The one base of every error ctsyncd raises on purpose. Callers branch on
// `code` (stable, documented where each subclass is declared), never on the
// message text or on class identity: the CLI and the control socket carry
// only the code and the message across the process boundary, and a test
// asserts on the code. `context` holds the values the message was built
// from (file, operation, errno, peer, ...) so logs can show them as fields.

export interface CtsyncdErrorOptions {
  cause?: unknown;
  /** Values the message was built from, as structured fields for logs. */
  context?: Readonly<Record<string, unknown>>;
}

export abstract class CtsyncdError extends Error {
  /** Stable, upper-case, E-prefixed: what callers and tests match on. */
  abstract readonly code: string;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(message: string, options: CtsyncdErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.context = options.context ?? {};
  }

  /** What a log line or a control reply carries: code, message and context, never the stack. */
  toJSON(): { code: string; message: string; context: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, context: this.context };
  }
}

export function isCtsyncdError(err: unknown): err is CtsyncdError {
  return err instanceof CtsyncdError;
}

/**
 * The code of any thrown value: ours, a Node errno error (`ENOENT`, ...),
 * or EINTERNAL for anything else (a bug: something threw that was not
 * meant to).
 */
export function errorCode(err: unknown): string {
  if (err instanceof CtsyncdError) return err.code;
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && code !== '' ? code : 'EINTERNAL';
}

/** The message of any thrown value, without throwing itself. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return 'unprintable error';
  }
}

/**
 * An operation a caller asked for (a control command, a failover step) that
 * cannot run now or failed as a whole: ENOTREADY, EINPROGRESS, ENOPEER,
 * ETIMEDOUT, EBAD_ARGS, ... The control server answers with its code and
 * the CLI exits 1 with its message.
 */
export class OperationError extends CtsyncdError {
  constructor(
    readonly code: string,
    message: string,
    options?: CtsyncdErrorOptions,
  ) {
    super(message, options);
  }
}
