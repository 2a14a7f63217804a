// Matches kernel replies to requests by sequence number on one netlink
// socket. One channel serves any number of concurrent acked requests; dumps
// are serialised because the kernel runs one dump per socket at a time.
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN } from './constants.js';
import {
  type DecodeError,
  decodeNlError,
  hostU16,
  hostU32,
  type NlMessage,
  nlMessageObject,
  walkNetlink,
} from './netlink-codec.js';
import type { NetlinkReceiver, NetlinkTransport } from './transport.js';

/** A request whose replies occupy the sequence numbers [lo, hi). */
export interface PendingOp {
  lo: number;
  hi: number;
  /** A data message (dump part, GET reply) for one of our sequence numbers. */
  onMessage(msg: NlMessage): void;
  /**
   * When present, data messages come here instead of onMessage, in place:
   * the message (header included) is buf[pos, pos + len), valid only during
   * the call. A dump of 100k entries then builds no message object.
   */
  onRawMessage?(buf: Buffer, pos: number, len: number): void;
  /** NLMSG_ERROR for seq: errno 0 is an ACK. */
  onAck(seq: number, errno: number): void;
  onDone(seq: number): void;
  /** The socket lost replies or closed: every outstanding reply is gone. */
  onFail(errno: number): void;
}

export interface ChannelCounters {
  replies: number;
  strayReplies: number;
  decodeErrors: number;
  receiveErrors: number;
}

const SEQ_LIMIT = 0xffffffff;

/** The kernel's own message types (route() handles them); every other type is data for an op. */
function isControl(type: number): boolean {
  return type === NLMSG_ERROR || type === NLMSG_DONE || type === NLMSG_NOOP || type === NLMSG_OVERRUN;
}

export class RequestChannel implements NetlinkReceiver {
  readonly counters: ChannelCounters = { replies: 0, strayReplies: 0, decodeErrors: 0, receiveErrors: 0 };
  private nextSeq: number;
  private readonly ops = new Set<PendingOp>();
  private dumpTail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly transport: NetlinkTransport,
    private readonly onDecodeError: (e: DecodeError) => void = () => {},
  ) {
    this.nextSeq = 1 + Math.floor(Math.random() * 0x7fffffff);
    transport.setReceiver(this);
    // Idle request sockets must not keep a finished process alive.
    transport.ref(false);
  }

  /** Reserves n consecutive sequence numbers that do not wrap inside the range. */
  allocSeq(n: number): number {
    if (this.nextSeq + n >= SEQ_LIMIT) this.nextSeq = 1;
    const lo = this.nextSeq;
    this.nextSeq += n;
    return lo;
  }

  register(op: PendingOp): void {
    this.ops.add(op);
    this.transport.ref(true);
  }

  unregister(op: PendingOp): void {
    this.ops.delete(op);
    if (this.ops.size === 0) this.transport.ref(false);
  }

  /** Runs dumps one after another on this socket. */
  serialise<T>(job: () => Promise<T>): Promise<T> {
    const run = this.dumpTail.then(job, job);
    this.dumpTail = run.catch(() => undefined);
    return run;
  }

  onData(buf: Buffer, start: number, end: number): void {
    const error = walkNetlink(buf, start, end, (pos, len) => {
      const type = hostU16(buf, pos + 4);
      const op = this.find(hostU32(buf, pos + 8));
      // In place for an op that asks for it (a dump): no message object.
      if (op?.onRawMessage !== undefined && !isControl(type)) {
        this.counters.replies++;
        op.onRawMessage(buf, pos, len);
      } else {
        this.route(nlMessageObject(buf, pos, len), op);
      }
    });
    if (error) {
      this.counters.decodeErrors++;
      this.onDecodeError(error);
    }
  }

  onError(errno: number): void {
    // ENOBUFS on a request socket means replies were dropped: nothing
    // outstanding can be trusted to complete.
    this.counters.receiveErrors++;
    for (const op of [...this.ops]) op.onFail(errno);
  }

  failAll(errno: number): void {
    for (const op of [...this.ops]) op.onFail(errno);
  }

  private find(seq: number): PendingOp | undefined {
    for (const op of this.ops) if (seq >= op.lo && seq < op.hi) return op;
    return undefined;
  }

  /** msg to op, the request its seq belongs to (undefined: none, a stray). */
  private route(msg: NlMessage, op: PendingOp | undefined): void {
    if (!op) {
      this.counters.strayReplies++;
      return;
    }
    this.counters.replies++;
    switch (msg.type) {
      case NLMSG_ERROR: {
        const r = decodeNlError(msg.payload);
        if (!r.ok) {
          this.counters.decodeErrors++;
          this.onDecodeError(r.error);
          op.onAck(msg.seq, 71); // EPROTO: the kernel's answer could not be read
          return;
        }
        op.onAck(msg.seq, r.value.errno);
        return;
      }
      case NLMSG_DONE:
        op.onDone(msg.seq);
        return;
      case NLMSG_NOOP:
      case NLMSG_OVERRUN:
        return;
      default:
        op.onMessage(msg);
    }
  }
}
