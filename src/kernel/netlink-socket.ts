// NetlinkTransport over a real NETLINK_NETFILTER socket from the native addon.
import {
  AF_NETLINK,
  NETLINK_ADD_MEMBERSHIP,
  NETLINK_BROADCAST_ERROR,
  NETLINK_CAP_ACK,
  NETLINK_DROP_MEMBERSHIP,
  NETLINK_NETFILTER,
  NETLINK_NO_ENOBUFS,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
} from './constants.js';
import { isSyscallError, loadNative, type NativeAddon, type PollHandle, type ReaderHandle } from './native.js';
import { ReadAhead, type ReadAheadCounters } from './read-ahead.js';
import { RING_HDR, RingReader } from './ring-reader.js';
import type { NetlinkReceiver, NetlinkTransport, TransportOptions } from './transport.js';
import { CtsyncdError } from '../common/errors.js';

const EAGAIN = 11;
/** Netlink dumps use at most 32 KiB per datagram; keep room for one more. */
const MIN_SPACE = 64 * 1024;
const RECV_BUFFER = 1024 * 1024;
/** Datagrams per recvBatch call: one JS dispatch per batch, not per datagram. */
const DATAGRAM_BUDGET = 64;
/** A drain yields back to the loop after this long; the level-triggered poll fires again. */
const DRAIN_SLICE_MS = 4;
/** Read-ahead chunks: a few datagram budgets each, so what a short backlog holds stays small. */
const READ_AHEAD_CHUNK = 4 * MIN_SPACE;
/** Read ahead once the kernel's queue holds more than 1/QUEUE_PRESSURE of the receive buffer. */
const QUEUE_PRESSURE = 4;

export class KernelSocketError extends CtsyncdError {
  readonly code = 'EKERNEL_SOCKET';
  constructor(
    message: string,
    readonly errno: number,
    readonly op: string,
  ) {
    super(message, { context: { op, errno } });
  }
}

export class NetlinkSocket implements NetlinkTransport {
  readonly portid: number;
  private readonly native: NativeAddon;
  private fd: number;
  private poll: PollHandle | undefined;
  private receiver: NetlinkReceiver | undefined;
  private readonly buf: Buffer;
  private readonly status = new Int32Array(3);
  private closed = false;
  /** Sends on a pool thread not yet completed: the fd is closed only after the last (its number could be reused under it). */
  private inFlight = 0;
  private closeDeferred = false;
  /** Set with readAheadBytes (the event socket): see read-ahead.ts. */
  /** The read-ahead on this thread: only where the reader thread could not be started. */
  private ahead: ReadAhead | undefined;
  /** TransportOptions.readAheadBytes: a reader thread with a ring of that size, once a receiver is set. */
  private readonly readAheadBytes: number;
  private reader: { handle: ReaderHandle; ring: RingReader; bytes: number; lastTail: number } | undefined;
  private resumeScheduled = false;
  /** SO_RCVBUF as granted (what the queue is measured against), read once and on each change. */
  private rcvbuf: number | undefined;
  /** TransportOptions.coalesceMs; 0: none. */
  private readonly coalesceMs: number;
  private readonly resume = () => {
    this.resumeScheduled = false;
    if (this.reader) this.consumeRing();
    else this.drain();
  };

  constructor(opts: TransportOptions = {}) {
    this.native = loadNative();
    // Room for at least one more datagram than a read leaves space for (MIN_SPACE).
    this.buf = Buffer.allocUnsafe(MIN_SPACE + (opts.batchBytes ?? RECV_BUFFER - MIN_SPACE));
    this.coalesceMs = opts.coalesceMs ?? 0;
    try {
      this.fd = this.native.socketOpen(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER, opts.netns ?? null);
    } catch (e) {
      throw wrap(e, 'open');
    }
    try {
      this.portid = this.native.netlinkBind(this.fd, 0);
      // Errors for failed requests echo only the header: small acks keep a
      // batch's worth of replies within the receive buffer.
      this.native.setIntOption(this.fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      if (opts.receiveBufferBytes) this.setReceiveBuffer(opts.receiveBufferBytes);
      if (opts.sendBufferBytes) this.setSendBuffer(opts.sendBufferBytes);
      for (const g of opts.groups ?? []) this.joinGroup(g);
    } catch (e) {
      this.native.close(this.fd);
      throw wrap(e, 'setup');
    }
    this.readAheadBytes = opts.readAheadBytes ?? 0;
  }

  get readAhead(): ReadAheadCounters | undefined {
    const r = this.reader;
    if (r === undefined) return this.ahead?.counters;
    const [maxHeldBytes, limitReached] = this.closed ? [0, 0] : this.native.readerStats(r.handle);
    return { limitBytes: r.bytes, heldBytes: r.ring.heldBytes, maxHeldBytes, limitReached };
  }

  setReceiver(receiver: NetlinkReceiver): void {
    this.receiver = receiver;
    if (this.poll || this.reader || this.closed) return;
    if (this.readAheadBytes > 0) this.startReader();
    if (!this.reader) this.poll = this.native.pollStart(this.fd, () => this.drain());
  }

  /**
   * The reader thread: it reads the socket as fast as the kernel delivers,
   * so that a stall of this thread (V8 compiling, a long turn) does not
   * leave events to overflow the kernel's queue. Where the thread cannot be
   * started, the read-ahead on this thread does the same while this thread
   * runs.
   */
  private startReader(): void {
    const bytes = Math.max(4 * MIN_SPACE, Math.ceil(this.readAheadBytes / RING_HDR) * RING_HDR);
    try {
      const { handle, ring } = this.native.readerStart(this.fd, bytes, MIN_SPACE, DATAGRAM_BUDGET, this.coalesceMs, () =>
        this.consumeRing(),
      );
      const source = {
        // A view made here: a Buffer made in C++ has a hidden class of its own, and the
        // decoders, which see this thread's Buffers too (dumps), would be compiled for both.
        ring: Buffer.from(ring.buffer, ring.byteOffset, ring.length),
        tail: () => {
          if (!this.closed && this.reader) this.reader.lastTail = this.native.readerTail(handle);
          return this.reader?.lastTail ?? 0;
        },
        release: (head: number) => {
          if (!this.closed) this.native.readerRelease(handle, head);
        },
      };
      this.reader = { handle, ring: new RingReader(source), bytes, lastTail: 0 };
    } catch {
      const native = this.native;
      const fd = this.fd;
      this.ahead = new ReadAhead((buf, status) => native.recvBatch(fd, buf, status, DATAGRAM_BUDGET, MIN_SPACE), {
        limit: this.readAheadBytes,
        chunkBytes: READ_AHEAD_CHUNK,
        minSpace: MIN_SPACE,
      });
    }
  }

  send(data: Buffer): number {
    if (this.closed) return 9; // EBADF
    const n = this.native.netlinkSend(this.fd, data, 0, data.length);
    return n < 0 ? -n : 0;
  }

  sendAsync(data: Buffer, done: (errno: number) => void): void {
    if (this.closed) {
      queueMicrotask(() => done(9)); // EBADF
      return;
    }
    this.inFlight++;
    this.native.netlinkSendAsync(this.fd, data, 0, data.length, (n) => {
      this.inFlight--;
      if (this.closeDeferred && this.inFlight === 0) this.native.close(this.fd);
      done(n < 0 ? -n : 0);
    });
  }

  drain(): void {
    if (this.closed) return;
    // Bounded: a flood must not starve the rest of the loop; the poll fires again.
    const started = performance.now();
    if (this.reader) {
      // Asked to read now (an overrun's settle timer, between a commit's
      // chunks): what the thread holds, then whether the kernel's queue is
      // empty, which the thread says once per emptying and the caller may be
      // waiting to hear again.
      const more = this.consumeRing();
      if (!more && !this.closed && this.reader.ring.heldBytes === 0 && this.kernelQueueEmpty()) this.receiver?.onEmpty?.();
      return;
    }
    // Whether the last read filled its budget: only then can the queue be
    // long, and only then is it worth a syscall to ask how long.
    let full = false;
    for (;;) {
      // Read ahead only while a backlog is held or the kernel's queue is
      // filling: otherwise events are handled as they are read, and the
      // memory stays the kernel's (and out of our RSS).
      if (this.ahead !== undefined && (this.ahead.pending || (full && this.queuePressed()))) {
        this.drainAhead(this.ahead, started);
        return;
      }
      const n = this.native.recvBatch(this.fd, this.buf, this.status, DATAGRAM_BUDGET, MIN_SPACE);
      const err = this.status[0]!;
      full = this.status[1]! >= DATAGRAM_BUDGET;
      if (n > 0) this.receiver?.onData(this.buf, 0, n);
      if (this.closed) return;
      if (err !== 0 && err !== EAGAIN) this.receiver?.onError(err);
      if (err === EAGAIN) {
        this.receiver?.onEmpty?.();
        // Emptied: what comes next is read after the pause, several events to a wake-up.
        if (this.coalesceMs > 0 && this.poll && !this.closed) this.native.pollPause(this.poll, this.coalesceMs);
      }
      if (err !== 0 || performance.now() - started >= DRAIN_SLICE_MS) return;
    }
  }

  /** The reader thread's segments, for one slice; true when some are left (handled on the next turn). */
  private consumeRing(): boolean {
    const reader = this.reader;
    if (this.closed || reader === undefined) return false;
    const started = performance.now();
    const more = reader.ring.deliver(this.receiver, () => this.closed || performance.now() - started >= DRAIN_SLICE_MS);
    if (more && !this.closed && !this.resumeScheduled) {
      this.resumeScheduled = true;
      setImmediate(this.resume);
    }
    return more;
  }

  private kernelQueueEmpty(): boolean {
    try {
      return this.native.receiveQueueBytes(this.fd) === 0;
    } catch {
      return false;
    }
  }

  /** Everything queued is read first, then handled for one slice; what is left is handled on the next turn even if no more arrives. */
  private drainAhead(ahead: ReadAhead, started: number): void {
    ahead.fill();
    const more = ahead.deliver(
      this.receiver,
      () => this.closed || performance.now() - started >= DRAIN_SLICE_MS,
      () => ahead.fill(),
    );
    if (more && !this.closed && !this.resumeScheduled) {
      this.resumeScheduled = true;
      setImmediate(this.resume);
    }
  }

  /** The kernel's queue holds more than a quarter of the receive buffer. */
  private queuePressed(): boolean {
    try {
      return this.native.receiveQueueBytes(this.fd) * QUEUE_PRESSURE > this.receiveBufferBytes();
    } catch {
      return false;
    }
  }

  private receiveBufferBytes(): number {
    return (this.rcvbuf ??= this.native.getIntOption(this.fd, SOL_SOCKET, SO_RCVBUF));
  }

  joinGroup(group: number): void {
    this.native.setIntOption(this.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group);
  }

  leaveGroup(group: number): void {
    this.native.setIntOption(this.fd, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, group);
  }

  setReceiveBuffer(bytes: number): number {
    this.rcvbuf = this.setBuffer(SO_RCVBUFFORCE, SO_RCVBUF, bytes);
    return this.rcvbuf;
  }

  setSendBuffer(bytes: number): number {
    return this.setBuffer(SO_SNDBUFFORCE, SO_SNDBUF, bytes);
  }

  setNoEnobufs(on: boolean): void {
    this.native.setIntOption(this.fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, on ? 1 : 0);
  }

  setBroadcastError(on: boolean): void {
    this.native.setIntOption(this.fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, on ? 1 : 0);
  }

  setFilter(program: Buffer): void {
    this.native.attachFilter(this.fd, program);
  }

  ref(on: boolean): void {
    if (this.poll) this.native.pollRef(this.poll, on);
    if (this.reader && !this.closed) this.native.readerRef(this.reader.handle, on);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ahead?.clear();
    if (this.poll) this.native.pollClose(this.poll);
    // The thread is joined before the fd it reads is closed.
    if (this.reader) this.native.readerClose(this.reader.handle);
    if (this.inFlight > 0) this.closeDeferred = true;
    else this.native.close(this.fd);
  }

  /** The kernel doubles the value it is given; ask for half so `bytes` is what we get. */
  private setBuffer(force: number, plain: number, bytes: number): number {
    const half = Math.max(1, Math.floor(bytes / 2));
    try {
      this.native.setIntOption(this.fd, SOL_SOCKET, force, half);
    } catch {
      // Without CAP_NET_ADMIN the forced option fails; the plain one is capped by net.core.*mem_max.
      this.native.setIntOption(this.fd, SOL_SOCKET, plain, half);
    }
    return this.native.getIntOption(this.fd, SOL_SOCKET, plain);
  }
}

function wrap(e: unknown, op: string): KernelSocketError {
  if (isSyscallError(e)) return new KernelSocketError(`netlink ${op}: ${e.message}`, e.errno, op);
  return new KernelSocketError(`netlink ${op}: ${String(e)}`, 0, op);
}
