// The flow log (conntrackd's Stats mode, ulogd2's NFCT → JSON): a second
// reader of the conntrack events. ConntrackEvents hands it each event's raw
// message (EventTap); it copies the ones it logs into a bounded queue and
// returns. Later, off the event path, it decodes them, applies the filter,
// formats the record (record.ts) and hands the line to the file and the
// entry to the other outputs (IPFIX, syslog). Nothing it does can hold back
// replication: a full queue drops the event and counts it
// (ctsyncd_flowlog_dropped_total, stats flowlog.dropped); the outputs other
// than the file never wait either, they drop and count what they cannot send.
import type { EventTap, EventType } from '../kernel/conntrack-events.js';
import { decodeConntrack } from '../kernel/ct-codec.js';
import type { ConntrackEntry } from '../kernel/entry.js';
import { nlMessageObject } from '../kernel/netlink-codec.js';
import type { Logger } from '../log.js';
import { FlowLineEncoder, LINE_FILTERED, type RecordAccept } from './line-encoder.js';
import { EventQueue } from './queue.js';
import { flowLine } from './record.js';

/** Where lines go: the file (file-sink.ts). */
export interface FlowSink {
  write(line: string): void;
  /** A line given as its bytes b[0, len), without the newline; copied before it returns. */
  writeBytes(b: Buffer, len: number): void;
  /** Characters written to the sink and not yet out of it. */
  readonly pendingBytes: number;
  flush(): Promise<void>;
}

/**
 * An output beside the file (ipfix-exporter.ts, syslog-sink.ts). It never
 * waits and never makes the writer wait: what it cannot send it drops and
 * counts itself.
 */
export interface FlowOutput {
  /** One logged event; `line()` formats the record's JSON line (once, shared by every output). */
  write(kind: EventType, e: ConntrackEntry, line: () => string, now: number): void;
  /** The end of a writer batch: send what was gathered. */
  endBatch(): void;
}

/** The queue between the event path and the writer: EventQueue, or SharedEventQueue across threads. */
export interface FlowQueue {
  readonly length: number;
  readonly bytes: number;
  /** `time`: when the event was read (SharedEventQueue's time markers). */
  push(kind: EventType, src: Buffer, start: number, len: number, time?: number): boolean;
  shift(f: (kind: EventType, buf: Buffer, start: number, len: number) => void): boolean;
}

export interface FlowLogOptions {
  events: readonly EventType[];
  queueBytes: number;
  /** Where events wait; an EventQueue of queueBytes when absent. */
  queue?: FlowQueue | undefined;
  /**
   * The queue is empty and no drain is scheduled: a writer on a thread of
   * its own (worker.ts) waits here for the event path to wake it.
   */
  onIdle?: (() => void) | undefined;
  /** The file; absent when the flow log only exports (IPFIX) or goes to syslog. */
  sink?: FlowSink | undefined;
  outputs?: readonly FlowOutput[];
  /** Flush after every batch (fsync durability) rather than on the caller's interval. */
  flushEachBatch: boolean;
  /** The cache's filter: only connections it passes are logged. */
  accept?: ((e: ConntrackEntry) => boolean) | undefined;
  /** The same filter on the record decodeConntrackRecord writes (Filter.checkRecord); needed with `accept`. */
  acceptRecord?: RecordAccept | undefined;
  now: () => number;
  /** Runs the writer later, off the event path: setImmediate by default. */
  schedule?: (run: () => void) => void;
  /** A monotonic clock in milliseconds for the writer's time slice: performance.now by default. */
  clock?: () => number;
  log: Logger;
}

export interface FlowLogCounters {
  /** Events taken into the queue. */
  queued: number;
  /** Events the queue had no room for (the writer is behind). */
  queueFull: number;
  /** Records handed to the file and the other outputs. */
  logged: number;
  /** Events the filter did not pass. */
  filtered: number;
  /** Queued messages that did not decode (counted, skipped). */
  decodeErrors: number;
}

/** What the event path took into a flow log queue, and what it refused for want of room. */
export interface IntakeCounts {
  queued: number;
  queueFull: number;
}

/**
 * The event path's side of a flow log queue, whether the writer runs on the
 * daemon's thread (FlowLog) or its own (FlowLogThread): which kinds are
 * logged, the copy, and its counts. Nothing else happens per event.
 */
export class EventIntake {
  private readonly wanted: { [K in EventType]: boolean } = { new: false, update: false, destroy: false };

  constructor(
    events: readonly EventType[],
    private readonly queue: FlowQueue,
    readonly counts: IntakeCounts,
  ) {
    for (const k of events) this.wanted[k] = true;
  }

  /** True when queued; false when its kind is not logged, or when the queue had no room (counted). */
  take(kind: EventType, buf: Buffer, start: number, len: number, time?: number): boolean {
    if (!this.wanted[kind]) return false;
    if (!this.queue.push(kind, buf, start, len, time)) {
      this.counts.queueFull++;
      return false;
    }
    this.counts.queued++;
    return true;
  }
}

/**
 * How long one turn of the writer may run, so a long queue does not hold
 * the loop (the event socket is read between turns); the clock is read
 * every CHECK_EVERY records. A fixed count per turn fell behind: the event
 * path takes a whole read's events per turn, often thousands.
 */
const SLICE_MS = 4;
const CHECK_EVERY = 64;

export class FlowLog implements EventTap {
  readonly counters: FlowLogCounters = { queued: 0, queueFull: 0, logged: 0, filtered: 0, decodeErrors: 0 };
  private readonly queue: FlowQueue;
  private readonly intake: EventIntake;
  private readonly schedule: (run: () => void) => void;
  private readonly clock: () => number;
  private scheduled = false;
  /** Above this many characters waiting in the sink, the queue is left to fill (and drop). */
  private readonly sinkHighWater: number;
  private readonly runDrain = () => this.drain();
  private readonly take = (kind: EventType, buf: Buffer, start: number, len: number) => this.record(kind, buf, start, len);
  private readonly outputs: readonly FlowOutput[];
  /**
   * Lines straight from the message bytes (line-encoder.ts), when the file
   * is the only output and any filter has its record form: the other
   * outputs take the entry object.
   */
  private readonly encoder: FlowLineEncoder | undefined;

  constructor(private readonly opts: FlowLogOptions) {
    this.queue = opts.queue ?? new EventQueue(opts.queueBytes);
    this.intake = new EventIntake(opts.events, this.queue, this.counters);
    this.schedule = opts.schedule ?? ((run) => setImmediate(run));
    this.clock = opts.clock ?? (() => performance.now());
    this.outputs = opts.outputs ?? [];
    // A record line takes about 2.5 times the bytes of its event; as much again as the queue holds.
    this.sinkHighWater = opts.queueBytes * 2;
    const fast = opts.sink !== undefined && this.outputs.length === 0 && (opts.accept === undefined || opts.acceptRecord !== undefined);
    this.encoder = fast ? new FlowLineEncoder(opts.acceptRecord) : undefined;
  }

  /** Events waiting in the queue, and its bytes. */
  get queueLength(): number {
    return this.queue.length;
  }

  get queueBytes(): number {
    return this.queue.bytes;
  }

  /** On the event path: a copy into the queue or a count, nothing else. */
  onConntrackMessage(kind: EventType, buf: Buffer, start: number, len: number): void {
    if (!this.intake.take(kind, buf, start, len)) return;
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(this.runDrain);
    }
  }

  /** The sink made room: go on with the queue. */
  resume(): void {
    if (this.scheduled) return;
    if (this.queue.length === 0) {
      this.opts.onIdle?.();
      return;
    }
    this.scheduled = true;
    this.schedule(this.runDrain);
  }

  /** Decodes and formats queued events into the sink for one time slice; reschedules itself while more wait. */
  drain(): void {
    this.scheduled = false;
    const clock = this.clock;
    const until = clock() + SLICE_MS;
    let n = 0;
    while (this.sinkHasRoom() && this.queue.shift(this.take)) {
      if (++n % CHECK_EVERY === 0 && clock() >= until) break;
    }
    for (const o of this.outputs) o.endBatch();
    if (n > 0 && this.opts.flushEachBatch) void this.opts.sink?.flush();
    // Else the sink's write completion calls resume().
    if (this.queue.length === 0) this.opts.onIdle?.();
    else if (this.sinkHasRoom()) this.resume();
  }

  private sinkHasRoom(): boolean {
    const sink = this.opts.sink;
    if (sink === undefined || sink.pendingBytes < this.sinkHighWater) return true;
    // Full: have it written now rather than at its interval; its completion resumes us.
    void sink.flush();
    return false;
  }

  private record(kind: EventType, buf: Buffer, start: number, len: number): void {
    const enc = this.encoder;
    if (enc !== undefined) {
      const n = enc.encode(kind, buf, start, len, this.opts.now());
      if (n >= 0) {
        this.opts.sink!.writeBytes(enc.out, n);
        this.counters.logged++;
        return;
      }
      if (n === LINE_FILTERED) {
        this.counters.filtered++;
        return;
      }
      // LINE_PUNT: the rare shapes, and anything malformed (the object decoder names the error).
    }
    const r = decodeConntrack(nlMessageObject(buf, start, len));
    if (!r.ok) {
      this.counters.decodeErrors++;
      return;
    }
    if (this.opts.accept && !this.opts.accept(r.value)) {
      this.counters.filtered++;
      return;
    }
    const e = r.value;
    const now = this.opts.now();
    let text: string | undefined;
    const line = (): string => (text ??= flowLine(kind, e, now));
    this.opts.sink?.write(line());
    for (const o of this.outputs) o.write(kind, e, line, now);
    this.counters.logged++;
  }
}
