// What every command of the binary shares: where it writes (stdout and
// stderr in the binary, arrays in tests) and its exit status, a contract
// keepalived's notify scripts and operators' scripts read.

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

/** Done as asked. */
export const EXIT_OK = 0;
/** Failed, with one line on stderr: daemon not running, permission denied, a failed commit, ... */
export const EXIT_FAILURE = 1;
/** The command line itself is wrong. */
export const EXIT_USAGE = 2;
