// The daemon's side of the flow log writer's thread (worker.ts). On the
// event path it is the EventTap: a copy into the shared ring, a count, and
// a wake of the writer when it sleeps; nothing crosses to the other thread
// per event. Reopen and close are requests with a reply; the counters are
// read from the Float64Array the writer publishes into.
import { Worker } from 'node:worker_threads';
import { errorMessage, OperationError } from '../common/errors.js';
import type { FilterRules } from '../cache/filter.js';
import type { EventType } from '../kernel/conntrack-events.js';
import type { Logger } from '../log.js';
import { EventIntake, type IntakeCounts } from './flow-log.js';
import { SharedEventQueue } from './shared-queue.js';
import { loadNative } from '../kernel/native.js';
import { type FlowWorkerData, type FromWorker, PRIORITY_IDLE, PRIORITY_NORMAL, type ToWorker } from './worker.js';
import { type FlowLogHandle, type FlowlogSnapshot, flowlogSnapshot, type FlowWriterConfig, WRITER_COUNTERS, type WriterCounters } from './writer.js';

export interface FlowLogThreadOptions {
  config: FlowWriterConfig;
  filter: FilterRules;
  localAddresses: readonly string[];
  log: Logger;
  /** The worker's script: the compiled worker.js beside this file's (or the bundle's) directory by default. */
  script?: URL;
}

/**
 * dist/flowlog/worker.js, from dist/flowlog/thread.js and from the bundle
 * (dist/bundle/ctsyncd.cjs, whose import.meta.url is its own file's URL).
 */
export const defaultWorkerScript = (): URL => new URL('../flowlog/worker.js', import.meta.url);

/** Linux's SCHED_OTHER policy (sched(7)), the normal one. */
const SCHED_OTHER = 0;
/**
 * Events waiting this long for an idle writer raise it: a machine kept busy
 * by something else holds the file back at most this much (each line keeps
 * the time its event was read, SharedEventQueue's time markers). Longer
 * than a burst of 100k connections takes to replicate here (~1 s), which
 * a raise at 1 s slowed by a fifth or more (BENCHMARKS.md, issue 16).
 */
const RAISE_AFTER_MS = 3000;
/** Raised once the ring is this full (of 4 parts): the rest is headroom while the raised writer catches up. */
const RAISE_AT_QUARTERS = 3;
const AGE_CHECK_MS = 250;
/**
 * The writer is woken once events have stopped arriving for this long (a
 * burst is over), or once they have waited WAKE_AFTER_MS: a writer woken
 * mid-burst ran beside replication on the other core and slowed a 100k
 * replication by ~18% even at the idle priority (BENCHMARKS.md, issue 16).
 */
const QUIET_MS = 20;
const WAKE_AFTER_MS = 2000;

/** How long a reply may take: a close writes what waits, a full disk fails fast. */
const REPLY_MS = 30_000;

export class FlowLogThread implements FlowLogHandle {
  private readonly queue: SharedEventQueue;
  private readonly published: Float64Array;
  private readonly intake: EventIntake;
  private readonly counts: IntakeCounts = { queued: 0, queueFull: 0 };
  /** Events queued since the writer was last woken (endOfBatch). */
  private unannounced = false;
  /** When this read's events were read: Date.now() at its first event, carried into the ring. */
  private readTime = 0;
  private waitingSince: number | undefined;
  /** performance.now() of the last read that queued events, and of the first one the writer has not been woken for. */
  private lastReadAt = 0;
  private unwokenSince: number | undefined;
  private quietTimer: NodeJS.Timeout | undefined;
  private readonly onQuiet = (): void => this.checkQuiet();
  private readonly ageTimer: NodeJS.Timeout;
  private nextId = 1;
  private readonly replies = new Map<number, (error?: string) => void>();
  private exited = false;
  /** The writer thread's kernel id, once it is ready. */
  private tid = 0;
  private readonly priority: Int32Array;

  private constructor(
    private readonly opts: FlowLogThreadOptions,
    private readonly worker: Worker,
    queue: SharedEventQueue,
    counters: SharedArrayBuffer,
    priority: SharedArrayBuffer,
  ) {
    this.queue = queue;
    this.published = new Float64Array(counters);
    this.priority = new Int32Array(priority);
    this.ageTimer = setInterval(() => this.watchAge(), AGE_CHECK_MS);
    this.ageTimer.unref();
    this.intake = new EventIntake(opts.config.events, queue, this.counts);
  }

  /** Starts the writer and waits until its outputs are open; throws its error (EFLOWLOG_OPEN, ...) if they cannot be. */
  static async start(opts: FlowLogThreadOptions): Promise<FlowLogThread> {
    const queue = SharedEventQueue.create(opts.config.queueBytes);
    const counters = new SharedArrayBuffer(WRITER_COUNTERS.length * 8);
    const priority = new SharedArrayBuffer(4);
    const workerData: FlowWorkerData = {
      config: opts.config,
      filter: opts.filter,
      localAddresses: opts.localAddresses,
      queue: queue.memory,
      counters,
      priority,
    };
    const worker = new Worker(opts.script ?? defaultWorkerScript(), { workerData, name: 'ctsyncd-flowlog' });
    const t = new FlowLogThread(opts, worker, queue, counters, priority);
    await new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'log') opts.log[m.level](m.msg, m.ctx);
        else if (m.type === 'ready') {
          started = true;
          t.tid = m.tid;
          resolve();
        } else if (m.type === 'failed') {
          if (started) opts.log.error('flow log writer failed; events are counted dropped', { code: m.code, error: m.message });
          reject(new OperationError(m.code, m.message));
        } else t.replies.get(m.id)?.(m.error);
      });
      worker.on('error', (e) => {
        opts.log.error('flow log writer thread failed; events are counted dropped', { error: e.message });
        reject(new OperationError('EFLOWLOG', `flow log writer thread: ${e.message}`));
      });
      worker.on('exit', (code) => {
        t.exited = true;
        clearInterval(t.ageTimer);
        for (const r of t.replies.values()) r('the flow log writer thread exited');
        t.replies.clear();
        if (!started) reject(new OperationError('EFLOWLOG', `flow log writer thread exited during its start (${code})`));
      });
    });
    return t;
  }

  /** On the event path: a copy into the shared ring or a count. */
  onConntrackMessage(kind: EventType, buf: Buffer, start: number, len: number): void {
    // One clock read per read of the socket, not per event.
    if (!this.unannounced) this.readTime = Date.now();
    if (this.intake.take(kind, buf, start, len, this.readTime)) this.unannounced = true;
  }

  /**
   * The end of a read. The writer is woken once the events stop (QUIET_MS
   * without a read that queued any) or have waited WAKE_AFTER_MS, so a
   * burst replicates first and is logged after; with the queue three
   * quarters full it is woken at once and given the normal priority
   * (worker.ts: it goes back to idle once it emptied the queue).
   */
  endOfBatch(): void {
    if (!this.unannounced) return;
    this.unannounced = false;
    const now = performance.now();
    this.lastReadAt = now;
    this.unwokenSince ??= now;
    if (this.queue.bytes * 4 > this.queue.capacity * RAISE_AT_QUARTERS) {
      this.raise();
      this.wakeNow();
      return;
    }
    this.quietTimer ??= setTimeout(this.onQuiet, QUIET_MS);
  }

  private checkQuiet(): void {
    this.quietTimer = undefined;
    if (this.unwokenSince === undefined) return;
    const now = performance.now();
    if (now - this.lastReadAt >= QUIET_MS || now - this.unwokenSince >= WAKE_AFTER_MS) this.wakeNow();
    // Events still arriving: look again once they may have stopped.
    else this.quietTimer = setTimeout(this.onQuiet, QUIET_MS - (now - this.lastReadAt));
  }

  private wakeNow(): void {
    this.unwokenSince = undefined;
    if (this.quietTimer !== undefined) {
      clearTimeout(this.quietTimer);
      this.quietTimer = undefined;
    }
    this.queue.wake();
  }

  /** The writer to the normal priority, if it idles (worker.ts goes back to idle once it emptied the queue). */
  private raise(): void {
    if (Atomics.load(this.priority, 0) !== PRIORITY_IDLE || this.tid === 0) return;
    Atomics.store(this.priority, 0, PRIORITY_NORMAL);
    try {
      loadNative().setScheduler(this.tid, SCHED_OTHER, 0);
    } catch (e) {
      this.opts.log.warn('flow log writer: its priority could not be raised', { error: errorMessage(e) });
    }
  }

  /**
   * Lines wait at most about a flush interval for idle CPU: events that
   * have waited RAISE_AFTER_MS with the writer idle raise it, so a machine
   * kept busy by something else does not hold the log back for long.
   */
  private watchAge(): void {
    if (this.queue.length === 0 || Atomics.load(this.priority, 0) !== PRIORITY_IDLE) {
      this.waitingSince = undefined;
      return;
    }
    const now = performance.now();
    this.waitingSince ??= now;
    if (now - this.waitingSince >= RAISE_AFTER_MS) {
      this.waitingSince = undefined;
      this.raise();
    }
  }

  /** Whether the writer is asleep on an empty queue, waiting to be woken (tests). */
  get writerAsleep(): boolean {
    return this.queue.consumerAsleep;
  }

  reopen(): Promise<void> {
    return this.request('reopen');
  }

  /** Events are no longer delivered: the writer writes what waits, closes its outputs and ends. */
  async close(): Promise<void> {
    clearInterval(this.ageTimer);
    if (this.quietTimer !== undefined) clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
    if (this.exited) return;
    // What is left is written at the normal priority: a stop does not wait for idle CPU.
    this.raise();
    try {
      await this.request('close');
    } finally {
      await this.worker.terminate();
    }
  }

  snapshot(): FlowlogSnapshot {
    const p = this.published;
    const w = {} as WriterCounters;
    for (let i = 0; i < WRITER_COUNTERS.length; i++) w[WRITER_COUNTERS[i]!] = p[i]!;
    return flowlogSnapshot(
      this.opts.config,
      { ...this.counts, queueLength: this.queue.length, queueBytes: this.queue.bytes },
      w,
    );
  }

  private request(type: ToWorker['type']): Promise<void> {
    if (this.exited) return Promise.reject(new OperationError('EFLOWLOG', 'the flow log writer thread has exited'));
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.replies.delete(id);
        reject(new OperationError('ETIMEDOUT', `flow log writer: no reply to ${type} in ${REPLY_MS} ms`));
      }, REPLY_MS);
      this.replies.set(id, (error) => {
        clearTimeout(timer);
        this.replies.delete(id);
        if (error === undefined) resolve();
        else reject(new OperationError('EFLOWLOG', `flow log writer: ${type}: ${error}`));
      });
      this.worker.postMessage({ type, id } satisfies ToWorker);
    });
  }
}
