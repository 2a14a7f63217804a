// The flow log's writer as the configuration asks for it: the file, the
// IPFIX exporter and the syslog sink, the FlowLog that feeds them from its
// queue, and the flush timer. One place builds it, whether it runs on the
// daemon's thread (tests, FlowLogHandle below) or on a thread of its own
// (worker.ts): the counters, the snapshot and the order of closing are the
// same either way.
import { hostname } from 'node:os';
import { OperationError } from '../common/errors.js';
import { parseHostPort } from '../common/address.js';
import type { EventTap, EventType } from '../kernel/conntrack-events.js';
import type { ConntrackEntry } from '../kernel/entry.js';
import type { Logger } from '../log.js';
import { type Durability, FileSink } from './file-sink.js';
import { FlowLog, type FlowOutput, type FlowQueue } from './flow-log.js';
import { type DatagramSender, type IpfixCounters, IpfixExporter } from './ipfix-exporter.js';
import type { RecordAccept } from './line-encoder.js';
import { nativeUnixDatagramPort, type SyslogCounters, SyslogSink, type UnixDatagramPort } from './syslog-sink.js';
import { UdpSender } from './udp-sender.js';

/**
 * What the writer is asked for: the validated `flowlog` section, with the
 * syslog facility as its number (the daemon maps the name).
 */
export interface FlowWriterConfig {
  events: readonly EventType[];
  queueBytes: number;
  file?: { path: string; durability: Durability; flushIntervalMs: number; rotate?: { maxBytes: number; keep: number } | undefined } | undefined;
  ipfix?: { collector: string; observationDomainId: number; templateRefreshSeconds: number; mtu: number } | undefined;
  syslog?: { path: string; facility: number; appName: string } | undefined;
}

/** The flow log in `ctsyncd stats --json` (flowlog) and the metrics derived from it (src/stats). */
export interface FlowlogSnapshot {
  enabled: boolean;
  file?: string;
  /** Events taken into the queue. */
  queued?: number;
  /** Records not logged: queue full, lines a failed write lost, records IPFIX and syslog could not send (one per output). */
  dropped?: number;
  queueFull?: number;
  /** Lines a failed write (full disk, ...) lost. */
  lost?: number;
  logged?: number;
  written?: number;
  filtered?: number;
  decodeErrors?: number;
  writeErrors?: number;
  reopens?: number;
  rotations?: number;
  queueLength?: number;
  queueBytes?: number;
  queueLimitBytes?: number;
  /** flowlog.ipfix: the exporter's counters, and its messages in flight. */
  ipfix?: IpfixCounters & { collector: string; inFlight: number };
  /** flowlog.syslog: messages sent, and records not sent (unsent; busy: the receiver's queue was full). */
  syslog?: SyslogCounters & { path: string };
}

/** What the writer side counts, flat, in this order (worker.ts publishes them in a Float64Array). */
export const WRITER_COUNTERS = [
  'logged',
  'filtered',
  'decodeErrors',
  'written',
  'lost',
  'writeErrors',
  'reopens',
  'rotations',
  'ipfixMessages',
  'ipfixRecords',
  'ipfixTemplates',
  'ipfixUnsent',
  'ipfixSendErrors',
  'ipfixInvalid',
  'ipfixInFlight',
  'syslogSent',
  'syslogUnsent',
  'syslogBusy',
] as const;
export type WriterCounters = Record<(typeof WRITER_COUNTERS)[number], number>;

/** The event side's numbers: what was queued and refused, and what waits. */
export interface QueueCounters {
  queued: number;
  queueFull: number;
  queueLength: number;
  queueBytes: number;
}

export interface FlowWriterDeps {
  /** The IPFIX socket; a UDP socket connected to flowlog.ipfix.collector when absent. */
  ipfixSender?: DatagramSender | undefined;
  /** The syslog socket; the addon's non-blocking Unix datagram socket when absent. */
  syslogPort?: UnixDatagramPort | undefined;
  /** The cache's filter: only connections it passes are logged (FlowLogOptions.accept, acceptRecord). */
  accept?: (e: ConntrackEntry) => boolean;
  acceptRecord?: RecordAccept;
  /** The queue the writer takes events from; its own when absent. */
  queue?: FlowQueue;
  /** The queue is empty and nothing is scheduled (FlowLogOptions.onIdle). */
  onIdle?: () => void;
  now: () => number;
  log: Logger;
}

/** Bounds closing: each round writes what a drain produced, and the queue only shrinks. */
const MAX_CLOSE_ROUNDS = 100_000;

export class FlowWriter {
  private readonly timers: NodeJS.Timeout[] = [];

  private constructor(
    readonly flow: FlowLog,
    private readonly sink: FileSink | undefined,
    private readonly ipfix: IpfixExporter | undefined,
    private readonly syslog: SyslogSink | undefined,
  ) {}

  /** Opens every output the configuration names; throws FlowLogOpenError when the file cannot be opened. */
  static async open(fl: FlowWriterConfig, deps: FlowWriterDeps): Promise<FlowWriter> {
    const file = fl.file;
    // The sink's completion callback needs the FlowLog, made once the outputs are.
    // eslint-disable-next-line prefer-const
    let flow: FlowLog | undefined;
    let sink: FileSink | undefined;
    if (file) {
      sink = new FileSink({
        path: file.path,
        durability: file.durability,
        rotate: file.rotate,
        log: deps.log,
        onWritten: () => flow?.resume(),
      });
      await sink.open();
    }
    const outputs: FlowOutput[] = [];
    let ipfix: IpfixExporter | undefined;
    if (fl.ipfix) {
      const at = parseHostPort(fl.ipfix.collector);
      if (!at) throw new OperationError('ECONFIG', `flowlog.ipfix.collector is not host:port: ${fl.ipfix.collector}`);
      let sender = deps.ipfixSender;
      if (!sender) {
        const udp = new UdpSender({ ...at, now: deps.now, log: deps.log });
        // A collector that cannot be reached yet does not stop the start: sends are counted unsent until it can.
        await udp.connect();
        sender = udp;
      }
      // IPv6's header is 20 bytes longer than IPv4's; a name is taken as IPv4, as the socket is.
      const ipUdpHeaders = at.host.includes(':') ? 48 : 28;
      ipfix = new IpfixExporter({
        sender,
        observationDomainId: fl.ipfix.observationDomainId,
        templateRefreshMs: fl.ipfix.templateRefreshSeconds * 1000,
        maxMessageBytes: Math.min(0xffff, fl.ipfix.mtu - ipUdpHeaders),
        now: deps.now,
        log: deps.log,
      });
      outputs.push(ipfix);
    }
    let syslog: SyslogSink | undefined;
    if (fl.syslog) {
      syslog = new SyslogSink({
        port: deps.syslogPort ?? nativeUnixDatagramPort(),
        path: fl.syslog.path,
        facility: fl.syslog.facility,
        appName: fl.syslog.appName,
        hostname: hostname(),
        pid: process.pid,
        log: deps.log,
      });
      outputs.push(syslog);
    }
    flow = new FlowLog({
      events: fl.events,
      queueBytes: fl.queueBytes,
      queue: deps.queue,
      onIdle: deps.onIdle,
      sink,
      outputs,
      flushEachBatch: file?.durability === 'fsync',
      accept: deps.accept,
      acceptRecord: deps.acceptRecord,
      now: deps.now,
      log: deps.log,
    });
    const w = new FlowWriter(flow, sink, ipfix, syslog);
    if (sink && file?.durability === 'buffered') w.timers.push(setInterval(() => void sink.flush(), file.flushIntervalMs));
    return w;
  }

  /** SIGUSR1: the file is reopened (logrotate moved it away); no line is lost meanwhile. */
  async reopen(): Promise<void> {
    await this.sink?.reopen();
  }

  /** What the queue still holds goes out before the outputs close; the caller has stopped queuing. */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    for (let i = 0; i < MAX_CLOSE_ROUNDS && this.flow.queueLength > 0; i++) {
      this.flow.drain();
      await this.sink?.flush();
    }
    await this.sink?.flush();
    await this.sink?.close();
    await this.ipfix?.close();
    this.syslog?.close();
  }

  /** The writer side's counters, flat (WRITER_COUNTERS). */
  counters(): WriterCounters {
    const c = this.flow.counters;
    const f = this.sink?.counters;
    const ix = this.ipfix?.counters;
    const sl = this.syslog?.counters;
    return {
      logged: c.logged,
      filtered: c.filtered,
      decodeErrors: c.decodeErrors,
      written: f?.written ?? 0,
      lost: f?.lost ?? 0,
      writeErrors: f?.writeErrors ?? 0,
      reopens: f?.reopens ?? 0,
      rotations: f?.rotations ?? 0,
      ipfixMessages: ix?.messages ?? 0,
      ipfixRecords: ix?.records ?? 0,
      ipfixTemplates: ix?.templates ?? 0,
      ipfixUnsent: ix?.unsent ?? 0,
      ipfixSendErrors: ix?.sendErrors ?? 0,
      ipfixInvalid: ix?.invalid ?? 0,
      ipfixInFlight: this.ipfix?.messagesInFlight ?? 0,
      syslogSent: sl?.sent ?? 0,
      syslogUnsent: sl?.unsent ?? 0,
      syslogBusy: sl?.busy ?? 0,
    };
  }
}

/** `stats` and /metrics' view of the flow log, from the counters of both sides. */
export function flowlogSnapshot(fl: FlowWriterConfig, q: QueueCounters, w: WriterCounters): FlowlogSnapshot {
  return {
    enabled: true,
    ...(fl.file ? { file: fl.file.path } : {}),
    queued: q.queued,
    dropped: q.queueFull + w.lost + w.ipfixUnsent + w.syslogUnsent,
    queueFull: q.queueFull,
    lost: w.lost,
    logged: w.logged,
    written: w.written,
    filtered: w.filtered,
    decodeErrors: w.decodeErrors,
    writeErrors: w.writeErrors,
    reopens: w.reopens,
    rotations: w.rotations,
    queueLength: q.queueLength,
    queueBytes: q.queueBytes,
    queueLimitBytes: fl.queueBytes,
    ...(fl.ipfix
      ? {
          ipfix: {
            collector: fl.ipfix.collector,
            messages: w.ipfixMessages,
            records: w.ipfixRecords,
            templates: w.ipfixTemplates,
            unsent: w.ipfixUnsent,
            sendErrors: w.ipfixSendErrors,
            invalid: w.ipfixInvalid,
            inFlight: w.ipfixInFlight,
          },
        }
      : {}),
    ...(fl.syslog ? { syslog: { path: fl.syslog.path, sent: w.syslogSent, unsent: w.syslogUnsent, busy: w.syslogBusy } } : {}),
  };
}

/** How the daemon holds its flow log, on its own thread (thread.ts) or on a thread of its own. */
export interface FlowLogHandle extends EventTap {
  reopen(): Promise<void>;
  /** Events are no longer delivered: write what waits and close the outputs. */
  close(): Promise<void>;
  snapshot(): FlowlogSnapshot;
}

/** The writer on the daemon's own thread: the FlowLog is the event tap itself. */
export class InlineFlowLog implements FlowLogHandle {
  private constructor(
    private readonly fl: FlowWriterConfig,
    private readonly writer: FlowWriter,
  ) {}

  static async open(fl: FlowWriterConfig, deps: FlowWriterDeps): Promise<InlineFlowLog> {
    return new InlineFlowLog(fl, await FlowWriter.open(fl, deps));
  }

  onConntrackMessage(kind: EventType, buf: Buffer, start: number, len: number): void {
    this.writer.flow.onConntrackMessage(kind, buf, start, len);
  }

  reopen(): Promise<void> {
    return this.writer.reopen();
  }

  close(): Promise<void> {
    return this.writer.close();
  }

  snapshot(): FlowlogSnapshot {
    const f = this.writer.flow;
    const c = f.counters;
    return flowlogSnapshot(
      this.fl,
      { queued: c.queued, queueFull: c.queueFull, queueLength: f.queueLength, queueBytes: f.queueBytes },
      this.writer.counters(),
    );
  }
}
