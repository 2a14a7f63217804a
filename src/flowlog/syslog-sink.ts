// The flow log's syslog output: one RFC 5424 message per record to the local
// syslog socket (/dev/log), the record's JSON line as the message text and
// the event (new, update, destroy) as its MSGID. Sent with MSG_DONTWAIT
// through the addon: a syslog daemon that is slow or gone costs a counted
// drop, never a blocked event loop (Node has no Unix datagram sockets, and
// the addon's blocking unixDgramSend would wait for a full receiver).
import { constants } from 'node:os';
import type { EventType } from '../kernel/conntrack-events.js';
import type { ConntrackEntry } from '../kernel/entry.js';
import { loadNative } from '../kernel/native.js';
import type { Logger } from '../log.js';
import type { FlowOutput } from './flow-log.js';

/** A Unix datagram socket of our own that sends without waiting. */
export interface UnixDatagramPort {
  /** Sends data[offset, offset + length) to the socket at `path`: 0, or an errno (EAGAIN: its queue is full). */
  sendTo(path: string, data: Buffer, offset: number, length: number): number;
  close(): void;
}

/** The real one: the addon's non-blocking socket. */
export function nativeUnixDatagramPort(): UnixDatagramPort {
  const native = loadNative();
  const fd = native.unixDgramOpen();
  let open = true;
  return {
    sendTo: (path, data, offset, length) => native.unixDgramSendTo(fd, path, data, offset, length),
    close: () => {
      if (open) native.close(fd);
      open = false;
    },
  };
}

export interface SyslogSinkOptions {
  port: UnixDatagramPort;
  path: string;
  /** The facility's code (0..23, RFC 5424 6.2.1). */
  facility: number;
  appName: string;
  hostname: string;
  pid: number;
  log: Logger;
}

export interface SyslogCounters {
  /** Messages the socket took. */
  sent: number;
  /** Records not sent: the receiver's queue was full (EAGAIN), it is gone, or the message too long. */
  unsent: number;
  /** Of those, the ones refused for a full queue. */
  busy: number;
}

/** Severity informational (RFC 5424 6.2.1): every flow record is one. */
const SEVERITY_INFO = 6;
const { EAGAIN } = constants.errno;
/** A message longer than this is dropped and counted: a record line is well under 1 KiB. */
const MAX_MESSAGE_BYTES = 8192;

/** RFC 5424 HOSTNAME: printable ASCII without spaces, at most 255, "-" when there is none. */
function headerField(text: string, max: number): string {
  const clean = text.replace(/[^!-~]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** The message for one record at `now` (milliseconds since the epoch); pure, for the tests. */
export function syslogMessage(
  o: Pick<SyslogSinkOptions, 'facility' | 'appName' | 'hostname' | 'pid'>,
  kind: EventType,
  line: string,
  now: number,
): string {
  const pri = o.facility * 8 + SEVERITY_INFO;
  return `<${pri}>1 ${new Date(now).toISOString()} ${headerField(o.hostname, 255)} ${headerField(o.appName, 48)} ${o.pid} ${kind} - ${line}`;
}

export class SyslogSink implements FlowOutput {
  readonly counters: SyslogCounters = { sent: 0, unsent: 0, busy: 0 };
  private readonly buf = Buffer.allocUnsafe(MAX_MESSAGE_BYTES);
  private lastErrno = 0;

  constructor(private readonly opts: SyslogSinkOptions) {}

  get path(): string {
    return this.opts.path;
  }

  write(kind: EventType, _e: ConntrackEntry, line: () => string, now: number): void {
    const text = syslogMessage(this.opts, kind, line(), now);
    const n = this.buf.write(text, 0, 'utf8');
    // A full buffer may mean a cut message: dropped rather than sent half.
    if (n >= MAX_MESSAGE_BYTES) {
      this.counters.unsent++;
      return;
    }
    const errno = this.opts.port.sendTo(this.opts.path, this.buf, 0, n);
    if (errno === 0) {
      this.counters.sent++;
      if (this.lastErrno !== 0) this.opts.log.info('syslog socket takes flow records again', { path: this.opts.path });
      this.lastErrno = 0;
      return;
    }
    this.counters.unsent++;
    if (errno === EAGAIN) this.counters.busy++;
    // One line per change of errno, not one per record.
    if (errno !== this.lastErrno) {
      this.lastErrno = errno;
      this.opts.log.warn('syslog socket refused a flow record; records are counted unsent', { path: this.opts.path, errno });
    }
  }

  endBatch(): void {}

  close(): void {
    this.opts.port.close();
  }
}
