// Warnings about single datagrams (a bad signature, a decode error, an
// epoch we do not believe) come at whatever rate the sender chooses. Each
// kind is logged at most once per interval; the line that breaks the
// silence says how many of that kind were suppressed since the last one.
import type { LogContext, Logger } from '../../log.js';

/** One warning line per kind per this many milliseconds. */
export const WARN_INTERVAL_MS = 10_000;

interface KindState {
  lastAt: number;
  suppressed: number;
}

export class LogLimiter {
  private readonly kinds = new Map<string, KindState>();
  /** Lines not written, over all kinds. */
  suppressedTotal = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = WARN_INTERVAL_MS,
  ) {}

  /** Logs msg at warn for `kind` unless that kind was logged less than intervalMs ago (then counts it). */
  warn(kind: string, now: number, msg: string, ctx: LogContext = {}): void {
    let k = this.kinds.get(kind);
    if (k === undefined) {
      // The number of kinds is bounded by the callers (wire error codes and a few fixed names).
      k = { lastAt: Number.NEGATIVE_INFINITY, suppressed: 0 };
      this.kinds.set(kind, k);
    }
    if (now - k.lastAt < this.intervalMs) {
      k.suppressed++;
      this.suppressedTotal++;
      return;
    }
    const suppressed = k.suppressed;
    k.lastAt = now;
    k.suppressed = 0;
    this.log.warn(msg, { kind, ...ctx, ...(suppressed > 0 ? { suppressed } : {}) });
  }
}
