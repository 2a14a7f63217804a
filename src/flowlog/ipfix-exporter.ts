// The IPFIX exporting process (RFC 7011) of the flow log: it gathers the
// records of one writer batch (flow-log.ts), encodes them into messages no
// larger than the path allows (ipfix.ts) and hands them to a datagram
// sender. It never waits: a message the sender has no room for, or one it
// could not send (the collector is down: ECONNREFUSED), is dropped and its
// records counted `unsent`. The sequence numbers still count it, so the
// collector sees the loss as a gap too.
import type { EventType } from '../kernel/conntrack-events.js';
import type { ConntrackEntry } from '../kernel/entry.js';
import type { Logger } from '../log.js';
import type { FlowOutput } from './flow-log.js';
import { encodeMessages, type IpfixFlow, ipfixFlowOf } from './ipfix.js';

/** Sends one datagram (the real one: udp-sender.ts). */
export interface DatagramSender {
  /** `done` runs once the kernel took the datagram (null) or refused it. */
  send(msg: Buffer, done: (err: Error | null) => void): void;
  close(): Promise<void>;
}

export interface IpfixExporterOptions {
  sender: DatagramSender;
  observationDomainId: number;
  /** Templates go out again at least this often (RFC 7011 8.4: over UDP they must be resent). */
  templateRefreshMs: number;
  /** Largest message: the path MTU less the IP and UDP headers. */
  maxMessageBytes: number;
  /** Milliseconds since the epoch. */
  now: () => number;
  log: Logger;
}

export interface IpfixCounters {
  /** Messages handed to the sender and taken by the kernel. */
  messages: number;
  /** Data records in those messages. */
  records: number;
  /** Template sets in those messages. */
  templates: number;
  /** Records of messages dropped: no room in flight, or the send failed. */
  unsent: number;
  sendErrors: number;
  /** Records that could not be encoded (an address of the wrong family). */
  invalid: number;
}

/**
 * Messages waiting for the kernel at most. A UDP send is normally taken at
 * once; past this many the socket is stuck, and waiting for it would grow
 * memory without bound.
 */
const MAX_IN_FLIGHT = 256;
/** Records gathered before a batch is cut short: one writer batch (512 events) at most in practice. */
const MAX_PENDING = 1024;

export class IpfixExporter implements FlowOutput {
  readonly counters: IpfixCounters = { messages: 0, records: 0, templates: 0, unsent: 0, sendErrors: 0, invalid: 0 };
  private pending: IpfixFlow[] = [];
  private sequence = 0;
  /** When the templates last went out; -Infinity sends them with the first message. */
  private templatesAt = Number.NEGATIVE_INFINITY;
  private inFlight = 0;
  private lastError: string | undefined;

  constructor(private readonly opts: IpfixExporterOptions) {}

  get messagesInFlight(): number {
    return this.inFlight;
  }

  write(kind: EventType, e: ConntrackEntry, _line: () => string, now: number): void {
    const f = ipfixFlowOf(kind, e, now);
    if (f === undefined) return;
    this.pending.push(f);
    if (this.pending.length >= MAX_PENDING) this.endBatch();
  }

  endBatch(): void {
    if (this.pending.length === 0) return;
    const flows = this.pending;
    this.pending = [];
    const now = this.opts.now();
    const withTemplates = now - this.templatesAt >= this.opts.templateRefreshMs;
    const out = encodeMessages(flows, {
      observationDomainId: this.opts.observationDomainId,
      exportTime: Math.floor(now / 1000),
      sequence: this.sequence,
      maxBytes: this.opts.maxMessageBytes,
      withTemplates,
    });
    this.sequence = out.sequence;
    this.counters.invalid += out.invalid;
    out.messages.forEach((msg, i) => this.send(msg, out.records[i] ?? 0, withTemplates && i === 0, now));
  }

  private send(msg: Buffer, records: number, templates: boolean, now: number): void {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.counters.unsent += records;
      return;
    }
    this.inFlight++;
    if (templates) this.templatesAt = now;
    this.opts.sender.send(msg, (err) => {
      this.inFlight--;
      if (err === null) {
        this.counters.messages++;
        this.counters.records += records;
        if (templates) this.counters.templates++;
        this.lastError = undefined;
        return;
      }
      this.counters.sendErrors++;
      this.counters.unsent += records;
      // The collector may have missed the templates: they go with the next message.
      if (templates) this.templatesAt = Number.NEGATIVE_INFINITY;
      // One line per change of error, not one per message.
      if (this.lastError !== err.message) {
        this.lastError = err.message;
        this.opts.log.warn('IPFIX message not sent; its records are counted unsent', { error: err.message });
      }
    });
  }

  async close(): Promise<void> {
    this.endBatch();
    await this.opts.sender.close();
  }
}
