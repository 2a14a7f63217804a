// Test doubles shared by the unit tests: a logger that records its lines and
// a sync channel that only counts what it is asked to send. Both implement
// the real interfaces, so the compiler holds them to the contract.
import type { LogContext, Logger } from '../../src/log.js';
import type { ChannelCounters, DatagramListener, SyncChannel } from '../../src/sync/transport/channel.js';

export interface LoggedLine {
  level: string;
  msg: string;
  ctx: LogContext | undefined;
}

/** A Logger that appends every line to `lines` (its children too). */
export function recordingLog(lines: LoggedLine[]): Logger {
  const log: Logger = {
    debug: (msg, ctx) => lines.push({ level: 'debug', msg, ctx }),
    info: (msg, ctx) => lines.push({ level: 'info', msg, ctx }),
    warn: (msg, ctx) => lines.push({ level: 'warn', msg, ctx }),
    error: (msg, ctx) => lines.push({ level: 'error', msg, ctx }),
    child: () => log,
  };
  return log;
}

/** recordingLog with its own list. */
export function captureLogger(): { log: Logger; lines: LoggedLine[] } {
  const lines: LoggedLine[] = [];
  return { log: recordingLog(lines), lines };
}

/** A sync channel whose link is always up and whose datagrams go nowhere; it counts them. */
export class LoopChannel implements SyncChannel {
  readonly kind = 'udp' as const;
  readonly interfaceName = undefined;
  readonly counters: ChannelCounters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendErrors: 0,
    receiveErrors: 0,
  };
  constructor(readonly name: string) {}
  async start(): Promise<void> {}
  send(d: Buffer): void {
    this.counters.datagramsSent++;
    this.counters.bytesSent += d.length;
  }
  onDatagram(_cb: DatagramListener): void {}
  isLinkUp(): boolean {
    return true;
  }
  async close(): Promise<void> {}
}
