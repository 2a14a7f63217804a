// The flow log's writer on a thread of its own (thread.ts starts it).
// Decoding events into lines, filtering and writing them took about a
// fifth of the daemon's one JavaScript thread at a full replication rate
// (BENCHMARKS.md, issue 16), time taken from replication. Here it runs
// beside it: events arrive through the shared ring (shared-queue.ts), the
// counters go back through a shared Float64Array, and log lines, replies
// and the start's outcome as messages.
import { parentPort, workerData } from 'node:worker_threads';
import { errorCode, errorMessage } from '../common/errors.js';
import { loadNative } from '../kernel/native.js';
import { compileFilter } from '../cache/filter.js';
import type { FilterRules } from '../cache/filter.js';
import type { LogContext, Logger, LogLevel } from '../log.js';
import { SharedEventQueue, type SharedQueueMemory } from './shared-queue.js';
import { FlowWriter, type FlowWriterConfig, WRITER_COUNTERS } from './writer.js';

/** What thread.ts hands the worker. */
export interface FlowWorkerData {
  config: FlowWriterConfig;
  filter: FilterRules;
  localAddresses: readonly string[];
  queue: SharedQueueMemory;
  /** Float64 words, one per WRITER_COUNTERS name, in that order. */
  counters: SharedArrayBuffer;
  /** One Int32: the writer's scheduling, PRIORITY_IDLE, PRIORITY_NORMAL or PRIORITY_FIXED. */
  priority: SharedArrayBuffer;
}

/** The writer runs under SCHED_IDLE. */
export const PRIORITY_IDLE = 1;
/** Raised to SCHED_OTHER by the daemon's side while the queue is three quarters full, or events waited 3 s. */
export const PRIORITY_NORMAL = 0;
/** SCHED_IDLE was refused: it stays at the normal priority. */
export const PRIORITY_FIXED = 2;

/** Worker → daemon. */
export type FromWorker =
  | { type: 'ready'; tid: number }
  | { type: 'failed'; code: string; message: string }
  | { type: 'log'; level: LogLevel; msg: string; ctx?: LogContext | undefined }
  | { type: 'done'; id: number; error?: string };

/** Daemon → worker. */
export type ToWorker = { type: 'reopen' | 'close'; id: number };

/** The writer thread's name in /proc/PID/task/TID/comm (15 bytes at most). */
export const WRITER_THREAD_NAME = 'ctsyncd-flowlog';

/** Linux's SCHED_IDLE policy (sched(7)). */
const SCHED_IDLE = 5;
/** How often the counters are published besides after each drain. */
const PUBLISH_MS = 100;

function forwardingLogger(post: (m: FromWorker) => void, base: LogContext = {}): Logger {
  const emit = (level: LogLevel) => (msg: string, ctx?: LogContext) => {
    try {
      post({ type: 'log', level, msg, ctx: { ...base, ...ctx } });
    } catch {
      // A context that cannot be cloned: the message alone.
      post({ type: 'log', level, msg });
    }
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (ctx) => forwardingLogger(post, { ...base, ...ctx }),
  };
}

async function run(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('flow log worker: not started as a worker thread');
  const data = workerData as FlowWorkerData;
  const post = (m: FromWorker): void => port.postMessage(m);
  const log = forwardingLogger(post);
  const queue = new SharedEventQueue(data.queue);
  const published = new Float64Array(data.counters);
  const filter = compileFilter(data.filter, data.localAddresses);
  const priority = new Int32Array(data.priority);
  const native = loadNative();
  // Named, so `top -H` and /proc/PID/task/*/comm show what the writer costs apart from replication.
  try {
    native.setThreadName(WRITER_THREAD_NAME);
  } catch {
    // Only the name is lost.
  }
  // Idle while the queue has room: the writer takes only CPU nothing else
  // wants, so a burst that keeps the cores busy replicates at full speed and
  // its lines wait. The daemon's side raises it to the normal priority once
  // the queue is three quarters full (FlowLogThread.endOfBatch) or events
  // have waited 3 s, so waiting never turns into dropping while CPU can be
  // had; emptied, it is idle again.
  const idle = (): void => {
    try {
      native.setScheduler(0, SCHED_IDLE, 0);
      Atomics.store(priority, 0, PRIORITY_IDLE);
    } catch (e) {
      Atomics.store(priority, 0, PRIORITY_FIXED);
      log.warn('flow log writer: SCHED_IDLE refused; it runs at the normal priority', { error: errorMessage(e) });
    }
  };
  idle();
  let closing = false;
  let waiting = false;
  let writer: FlowWriter | undefined;
  const publish = (): void => {
    if (!writer) return;
    const c = writer.counters();
    for (let i = 0; i < WRITER_COUNTERS.length; i++) published[i] = c[WRITER_COUNTERS[i]!];
  };
  // The queue ran empty: wait for the event path's wake, then drain again.
  const sleep = (): void => {
    publish();
    if (Atomics.load(priority, 0) === PRIORITY_NORMAL) idle();
    if (waiting || closing) return;
    waiting = true;
    // The daemon's side wakes it once a burst's events stop, or after they
    // waited 2 s (thread.ts): each wake already finds a batch to drain.
    void queue.whenNotEmpty().then(() => {
      waiting = false;
      if (!closing) writer?.flow.resume();
    });
  };
  try {
    writer = await FlowWriter.open(data.config, {
      queue,
      onIdle: sleep,
      accept: (e) => filter.check(e).pass,
      acceptRecord: (r, at) => filter.checkRecord(r, at, undefined).pass,
      // The time its event was read (the ring's markers), however long it waited for idle CPU.
      now: () => (Number.isNaN(queue.time) ? Date.now() : queue.time),
      log,
    });
  } catch (e) {
    post({ type: 'failed', code: errorCode(e), message: errorMessage(e) });
    port.close();
    return;
  }
  const timer = setInterval(publish, PUBLISH_MS);
  port.on('message', (m: ToWorker) => {
    const w = writer!;
    const done = (error?: unknown): void => {
      publish();
      post(error === undefined ? { type: 'done', id: m.id } : { type: 'done', id: m.id, error: errorMessage(error) });
    };
    if (m.type === 'reopen') {
      w.reopen().then(() => done(), done);
      return;
    }
    closing = true;
    clearInterval(timer);
    queue.interrupt();
    w.close()
      .then(() => done(), done)
      .finally(() => port.close());
  });
  post({ type: 'ready', tid: native.threadId() });
  sleep();
}

void run().catch((e: unknown) => {
  parentPort?.postMessage({ type: 'failed', code: 'EFLOWLOG', message: errorMessage(e) } satisfies FromWorker);
});
