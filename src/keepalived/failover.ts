// The failover steps run in this process: one FailoverSequencer shared by
// keepalived's notify FIFO and the `failover` control command, so states
// from both are applied in arrival order. The steps themselves are the
// operations a daemon offers (FailoverOperations); this module only orders
// them and bounds how long each may take.
import { OperationError } from '../common/errors.js';
import type { Logger } from '../log.js';
import { type NotifyFifoHandle, runNotifyFifo } from './fifo.js';
import type { FailoverTarget } from './notify.js';
import { FailoverSequencer, type FailoverStep } from './sequencer.js';

/** A failover step that takes longer is reported failed, so later notifications are not held up forever. */
export const FAILOVER_STEP_TIMEOUT_MS = 300_000;

/** What the steps of FAILOVER_SEQUENCES do; each result is only passed through. */
export interface FailoverOperations {
  commit(): Promise<unknown>;
  flush(): unknown;
  resyncKernel(reason: string): Promise<unknown>;
  bulkSend(): unknown;
  purgeTimeout(): Promise<unknown>;
  requestResync(): unknown;
}

export interface FailoverOptions {
  log: Logger;
  /** failover.vrrpName: the sync group or instance to follow. */
  name?: string;
  now?: () => number;
  /** FAILOVER_STEP_TIMEOUT_MS unless a test needs it shorter. */
  stepTimeoutMs?: number;
}

export interface FailoverResult {
  state: FailoverTarget;
  steps: number;
  failed: number;
}

/** Rejects with ETIMEDOUT when p has not settled after ms; p itself carries on. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OperationError('ETIMEDOUT', `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

export class Failover {
  private seq: FailoverSequencer | undefined;
  private fifo: NotifyFifoHandle | undefined;
  private readonly log: Logger;
  private readonly stepTimeoutMs: number;

  constructor(
    private readonly ops: FailoverOperations,
    private readonly opts: FailoverOptions,
  ) {
    this.log = opts.log;
    this.stepTimeoutMs = opts.stepTimeoutMs ?? FAILOVER_STEP_TIMEOUT_MS;
  }

  /** The sequencer once something used it (stats show null until then). */
  get sequencer(): FailoverSequencer | undefined {
    return this.seq;
  }

  /** The failover step keepalived's state changes call for, run in this process. */
  async runStep(step: FailoverStep): Promise<unknown> {
    switch (step) {
      case 'commit':
        return this.ops.commit();
      case 'flush':
        return this.ops.flush();
      case 'resync':
        return this.ops.resyncKernel('keepalived');
      case 'bulk-send':
        return this.ops.bulkSend();
      case 'purge-timeout':
        return this.ops.purgeTimeout();
      case 'request-resync':
        return this.ops.requestResync();
    }
  }

  /**
   * `ctsyncd failover primary|backup|fault`: the whole step sequence in one
   * request (a notify script then starts one client, not four). States from
   * concurrent notify scripts queue up in arrival order in the same sequencer
   * the FIFO feeds; the reply comes once the sequencer is idle.
   */
  async failover(target: FailoverTarget): Promise<FailoverResult> {
    const seq = this.sequencerInUse();
    const before = { ...seq.counters };
    seq.handle({
      kind: 'vrrp',
      scope: 'group',
      name: this.opts.name ?? 'ctsyncd',
      state: target === 'primary' ? 'MASTER' : target === 'backup' ? 'BACKUP' : 'FAULT',
      target,
      priority: 0,
    });
    await seq.idle();
    return {
      state: target,
      steps: seq.counters.stepsRun - before.stepsRun,
      failed: seq.counters.stepFailures - before.stepFailures,
    };
  }

  /** failover.notifyFifo: keepalived's ordered notifications drive the failover steps here. */
  startNotifyFifo(path: string): void {
    this.fifo = runNotifyFifo(path, this.sequencerInUse(), this.log);
    this.log.info('following keepalived notify FIFO', { path });
  }

  close(): void {
    this.fifo?.close();
  }

  private sequencerInUse(): FailoverSequencer {
    this.seq ??= new FailoverSequencer({
      log: this.log,
      name: this.opts.name,
      now: this.opts.now,
      run: (step) => withTimeout(this.runStep(step), this.stepTimeoutMs, step).then(() => undefined),
    });
    return this.seq;
  }
}
