// The contract of one sync channel: an unreliable datagram pipe between
// nodes over one link. ChannelSet (channel-set.ts) bundles several; the
// datagram channels (dgram-channel.ts and its multicast/udp subclasses)
// implement it.
import type { LogContext, LogLevel } from '../../log.js';
import { CtsyncdError } from '../../common/errors.js';

export type { LinkState } from './iface.js';

export type ChannelKind = 'multicast' | 'udp';

/** Structured log sink; the daemon adapts its Logger with `(l, m, c) => logger[l](m, c)`. */
export type ChannelLog = (level: LogLevel, msg: string, ctx?: LogContext) => void;

export interface DatagramSource {
  address: string;
  port: number;
}

export type DatagramListener = (buf: Buffer, from: DatagramSource) => void;
export type SendErrorListener = (err: NodeJS.ErrnoException) => void;

export interface ChannelCounters {
  /** Datagrams on the wire: a UDP channel with two peers counts two per send(). */
  datagramsSent: number;
  datagramsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Failed sends, including send() while the channel is not open. */
  sendErrors: number;
  /** Socket errors after start, and listeners that threw. */
  receiveErrors: number;
  /** Datagrams from one of our own addresses (multicast loopback), dropped. */
  droppedOwnSource?: number;
  /** Datagrams from an address that is none of the configured peers (UDP), dropped. */
  droppedNotPeer?: number;
}

export interface SyncChannel {
  readonly name: string;
  readonly kind: ChannelKind;
  /** The link this channel uses, watched for failover; undefined when unknown (only send errors count then). */
  readonly interfaceName: string | undefined;
  /** Opens the socket; rejects with a ChannelError and leaves nothing open. */
  start(): Promise<void>;
  /** Fire and forget: failures are counted and reported to onSendError listeners, never thrown. */
  send(datagram: Buffer): void;
  onDatagram(cb: DatagramListener): void;
  /** Asynchronous send failures (ENETUNREACH, EPERM, ...). Optional so minimal fakes need not implement it. */
  onSendError?(cb: SendErrorListener): void;
  isLinkUp(): boolean;
  close(): Promise<void>;
  readonly counters: Readonly<ChannelCounters>;
}

export type ChannelErrorCode =
  /** The configured interface does not exist or has no address of the group's family. */
  | 'ECHANNEL_IFACE'
  /** bind() failed: address in use, not local, ... (`cause` has the errno). */
  | 'ECHANNEL_BIND'
  /** A socket option (group membership, multicast interface) was refused. */
  | 'ECHANNEL_SETUP'
  /** The options themselves are inconsistent. */
  | 'ECHANNEL_CONFIG';

export class ChannelError extends CtsyncdError {
  constructor(
    readonly code: ChannelErrorCode,
    /** Name of the channel; empty for errors about a set as a whole. */
    readonly channel: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, { cause: options?.cause, context: { channel } });
  }
}

export function isChannelError(err: unknown): err is ChannelError {
  return err instanceof ChannelError;
}
