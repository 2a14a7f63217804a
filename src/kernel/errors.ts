import { errnoName } from './constants.js';
import { CtsyncdError } from '../common/errors.js';

/** A kernel operation that failed as a whole (not one entry of a batch). */
export class KernelOpError extends CtsyncdError {
  readonly code: string;
  constructor(
    readonly op: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`kernel ${op} failed: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`, { context: { op, errno } });
    this.code = `EKERNEL_${errnoName(errno)}`;
  }
}
