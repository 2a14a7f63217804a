// The ordered failover state machine: keepalived's notifications in, the
// steps of conntrackd's primary-backup.sh out, one at a time.
//
// keepalived runs notify scripts as separate processes, so two quick
// transitions can run their scripts concurrently or out of order (a
// BACKUP script finishing its resync request after the MASTER script
// committed). Here the events arrive in order (from the FIFO) and the steps
// of one target never interleave with another's: a new target waits for the
// running step, then replaces whatever was left of the old sequence.
import type { Logger } from '../log.js';
import { type FailoverTarget, type NotifyEvent, parseNotifyLine, type VrrpNotifyEvent } from './notify.js';

export type FailoverStep = 'commit' | 'flush' | 'resync' | 'bulk-send' | 'purge-timeout' | 'request-resync';

/**
 * conntrackd's primary-backup.sh: primary → -c -f -R -B, backup → -t -n,
 * fault → -t. ('stop' is keepalived shutting down or an instance deleted on
 * reload: the node is no longer anything, and there is nothing to undo.)
 */
export const FAILOVER_SEQUENCES: Readonly<Record<FailoverTarget, readonly FailoverStep[]>> = {
  primary: ['commit', 'flush', 'resync', 'bulk-send'],
  backup: ['purge-timeout', 'request-resync'],
  fault: ['purge-timeout'],
  stop: [],
};

export interface FailoverSequencerOptions {
  /** Performs one step; a rejection (or throw) is a failed step. */
  run: (step: FailoverStep) => Promise<void>;
  log: Logger;
  /**
   * The sync group or instance to follow. Unset: every GROUP, and INSTANCE
   * events only until the first GROUP event (a vrrp_sync_group emits both;
   * without one there are only INSTANCE events). With more than one sync
   * group, or several independent instances, set it: following several
   * would flap between their states.
   */
  name?: string;
  /** Only for the durations in the log. */
  now?: () => number;
}

export interface FailoverSequencerCounters {
  /** Everything handed to handle()/handleLine(), unparsable included. */
  events: number;
  /** Parsed but not acted on: not followed, not a state change, or the state already current. */
  ignored: number;
  unparsable: number;
  /** Accepted changes of target. */
  transitions: number;
  /** Sequences cut short by a newer target. */
  superseded: number;
  stepsRun: number;
  stepFailures: number;
}

export class FailoverSequencer {
  readonly counters: FailoverSequencerCounters = {
    events: 0,
    ignored: 0,
    unparsable: 0,
    transitions: 0,
    superseded: 0,
    stepsRun: 0,
    stepFailures: 0,
  };
  private target: FailoverTarget | undefined;
  /** Bumped by every transition; a running sequence compares it after each step. */
  private generation = 0;
  private running = false;
  private groupSeen = false;
  private idleWaiters: (() => void)[] = [];
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly opts: FailoverSequencerOptions) {
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
  }

  /** The latest accepted target (its sequence may still be running); undefined before the first. */
  get state(): FailoverTarget | undefined {
    return this.target;
  }

  /** True while a sequence runs. */
  get busy(): boolean {
    return this.running;
  }

  /** One FIFO line. */
  handleLine(line: string): void {
    const event = parseNotifyLine(line);
    if (!event) this.log.warn('keepalived notification not understood', { line: line.slice(0, 200) });
    this.handle(event);
  }

  /** One parsed notification; undefined counts as unparsable. */
  handle(event: NotifyEvent | undefined): void {
    this.counters.events++;
    if (!event) {
      this.counters.unparsable++;
      return;
    }
    if (event.kind !== 'vrrp' || !this.follows(event) || !event.target) {
      this.counters.ignored++;
      this.log.debug('keepalived notification ignored', describe(event));
      return;
    }
    if (event.target === this.target) {
      this.counters.ignored++;
      this.log.debug('keepalived notification repeats the current state', describe(event));
      return;
    }
    const from = this.target;
    this.target = event.target;
    this.generation++;
    this.counters.transitions++;
    this.log.info('keepalived transition', {
      from: from ?? 'none',
      to: event.target,
      scope: event.scope,
      name: event.name,
      priority: event.priority,
    });
    if (!this.running) {
      this.running = true;
      void this.drive();
    }
  }

  /** Resolves once no step is running and none is due (tests, orderly shutdown). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private follows(event: VrrpNotifyEvent): boolean {
    if (event.scope === 'group') this.groupSeen = true;
    if (this.opts.name !== undefined) return event.name === this.opts.name;
    return event.scope === 'group' || !this.groupSeen;
  }

  private async drive(): Promise<void> {
    for (;;) {
      const generation = this.generation;
      const target = this.target as FailoverTarget;
      const steps = FAILOVER_SEQUENCES[target];
      const started = this.now();
      let failures = 0;
      let done = 0;
      for (const step of steps) {
        if (generation !== this.generation) break;
        if (!(await this.runStep(target, step))) failures++;
        done++;
      }
      if (done < steps.length) {
        this.counters.superseded++;
        this.log.info('failover sequence superseded', { target, by: this.target, dropped: steps.slice(done) });
        continue;
      }
      if (steps.length > 0) {
        const ctx = { target, steps: steps.length, failures, durationMs: this.now() - started };
        if (failures > 0) this.log.warn('failover sequence finished with failures', ctx);
        else this.log.info('failover sequence finished', ctx);
      }
      if (generation === this.generation) break;
    }
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  // A failed step does not stop the sequence, as in primary-backup.sh, which
  // logs and carries on. keepalived will not repeat the notification, so
  // stopping would leave the node half way for good: after a failed commit,
  // flush + resync still make the internal cache match what the kernel now
  // holds and bulk-send still gives the peer this node's table, which is the
  // consistent primary state; the entries the commit lost are lost either
  // way. Logged at error level and counted so it is visible in stats.
  private async runStep(target: FailoverTarget, step: FailoverStep): Promise<boolean> {
    this.counters.stepsRun++;
    const started = this.now();
    try {
      await this.opts.run(step);
      this.log.debug('failover step done', { target, step, durationMs: this.now() - started });
      return true;
    } catch (err) {
      this.counters.stepFailures++;
      this.log.error('failover step failed', { target, step, error: errorText(err) });
      return false;
    }
  }
}

function describe(event: NotifyEvent): Record<string, unknown> {
  if (event.kind === 'checker') return { type: event.type };
  return { scope: event.scope, name: event.name, state: event.state };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
