// The IPFIX exporter's socket: one UDP socket connected to the collector.
// Connected, so that the kernel reports a collector that is down: an ICMP
// port unreachable sets the socket's error, which the next send returns
// (ECONNREFUSED) unless Node's receive path read it first and emitted it as
// an 'error' event. Either way the next send fails with it, as the kernel
// does, and the exporter counts what it lost. A connect that fails (no route yet) does
// not stop the daemon: sends fail and are counted until a later try, at
// most one per RECONNECT_MS, succeeds.
import { createSocket, type Socket } from 'node:dgram';
import { ipFamily } from '../common/address.js';
import { CtsyncdError, errorMessage } from '../common/errors.js';
import type { Logger } from '../log.js';
import type { DatagramSender } from './ipfix-exporter.js';

const RECONNECT_MS = 5000;

export interface UdpSenderOptions {
  host: string;
  port: number;
  /** Milliseconds, for the reconnect pacing. */
  now: () => number;
  log: Logger;
}

/** A send that did not reach the socket: the collector is not connected (ENOTCONN). */
export class NotConnectedError extends CtsyncdError {
  readonly code = 'ENOTCONN';
}

export class UdpSender implements DatagramSender {
  private readonly socket: Socket;
  private state: 'idle' | 'connecting' | 'connected' | 'closed' = 'idle';
  private triedAt = Number.NEGATIVE_INFINITY;
  /** A refusal the receive path read (the 'error' event): the next send fails with it instead of going out. */
  private pendingError: Error | undefined;

  constructor(private readonly opts: UdpSenderOptions) {
    // A name resolves to IPv4 unless it is an IPv6 literal.
    this.socket = createSocket({ type: ipFamily(opts.host) === 6 ? 'udp6' : 'udp4' });
    this.socket.on('error', (e) => {
      this.pendingError = e;
    });
  }

  /** Connects once; resolves either way (a failure is logged and retried later). */
  connect(): Promise<void> {
    if (this.state !== 'idle') return Promise.resolve();
    this.state = 'connecting';
    this.triedAt = this.opts.now();
    return new Promise((resolve) => {
      const onError = (e: Error): void => {
        if (this.state === 'connecting') this.state = 'idle';
        this.opts.log.warn('IPFIX collector not connected; records are counted unsent until it is', {
          collector: `${this.opts.host}:${this.opts.port}`,
          error: e.message,
        });
        resolve();
      };
      try {
        this.socket.once('error', onError);
        this.socket.connect(this.opts.port, this.opts.host, () => {
          this.socket.off('error', onError);
          // A failed earlier try is not a refusal by the collector.
          this.pendingError = undefined;
          if (this.state === 'connecting') this.state = 'connected';
          resolve();
        });
      } catch (e) {
        this.socket.off('error', onError);
        onError(e instanceof Error ? e : new Error(errorMessage(e)));
      }
    });
  }

  send(msg: Buffer, done: (err: Error | null) => void): void {
    if (this.state !== 'connected') {
      if (this.state === 'idle' && this.opts.now() - this.triedAt >= RECONNECT_MS) void this.connect();
      queueMicrotask(() => done(new NotConnectedError('IPFIX collector not connected')));
      return;
    }
    const pending = this.pendingError;
    if (pending !== undefined) {
      this.pendingError = undefined;
      queueMicrotask(() => done(pending));
      return;
    }
    this.socket.send(msg, (err) => done(err ?? null));
  }

  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closed';
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
