// Reading the event socket ahead of handling it, on the event loop: where
// the addon's reader thread (ring-reader.ts) could not be started, this
// does the same while the event loop runs. A burst of connections
// arrives faster than the daemon handles events (decode, cache, sync: a few
// microseconds each), and what the kernel cannot queue it drops: an overrun,
// repaired only by a full dump of the table. Reading a datagram costs a
// fraction of handling it, and an event held here takes its ~250 bytes of
// netlink where the kernel's queue charges a whole socket buffer (~1 KiB)
// to the same receive-buffer limit. So when the queue fills (NetlinkSocket
// asks the kernel how full it is: past a quarter of the buffer), everything
// queued is read into chunks of our own first, and handled from there in
// time slices; the kernel's queue stays short through the burst. Below that
// events are handled as they are read, and the memory stays the kernel's.
// Bounded: past `limit` bytes held, reading stops and the kernel's buffer
// takes the rest, as without read-ahead.
//
// Order is kept exactly, and so are the two things the queue's reader learns
// between datagrams: a receive error (ENOBUFS: the kernel dropped events at
// that point of the stream) and "read empty" (after an overrun the kernel
// reports no further drops until then, which is when the reconciling dump may
// start). Both are held as markers in the stream and delivered when handling
// reaches them, never before the events read ahead of them.

import type { NetlinkReceiver, ReadAheadCounters } from './transport.js';

export type { ReadAheadCounters };

/** One read: fills buf from offset 0; returns the bytes and sets status[0] (errno ending it), status[1] (datagrams). */
export type BatchReader = (buf: Buffer, status: Int32Array) => number;

const EAGAIN = 11;
const ENOBUFS = 105;
/** Segment kinds: data, or a marker of what the read that ended there learnt. */
const DATA = 0;
const EMPTY = 1;
const ERROR = 2;

interface Segment {
  kind: typeof DATA | typeof EMPTY | typeof ERROR;
  buf: Buffer;
  start: number;
  end: number;
  errno: number;
}

export interface ReadAheadOptions {
  /** Bytes of events held at most; 0 turns read-ahead off (each read handled at once). */
  limit: number;
  /** Size of each chunk; a read needs minSpace bytes left in it. */
  chunkBytes: number;
  /** The largest datagram: a read is only started with this much room. */
  minSpace: number;
}


export class ReadAhead {
  readonly counters: ReadAheadCounters;
  /** Held segments are segs[head..]; the handled ones before head are dropped in batches. */
  private segs: Segment[] = [];
  private head = 0;
  /** The chunk reads go into, and where the next read starts in it. */
  private chunk: Buffer;
  private wpos = 0;
  /** The chunk of the last segment handed out: once handling moves past it, it is free again. */
  private readChunk: Buffer | undefined;
  /** Chunks handled to their end, for the next ones: a burst reuses a few, instead of allocating a chunk per chunk of events. */
  private readonly free: Buffer[] = [];
  private readonly status = new Int32Array(3);

  constructor(
    private readonly read: BatchReader,
    private readonly opts: ReadAheadOptions,
  ) {
    this.counters = { limitBytes: opts.limit, heldBytes: 0, maxHeldBytes: 0, limitReached: 0 };
    this.chunk = Buffer.allocUnsafe(opts.chunkBytes);
  }

  /** Whether events or markers are held, waiting to be handled. */
  get pending(): boolean {
    return this.head < this.segs.length;
  }

  /**
   * Reads what the socket holds, up to the limit, without handling any of
   * it. A receive error is held as a marker where it happened; after
   * ENOBUFS (the kernel dropped events, then went on queueing) reading goes
   * on, after any other the next fill() tries again.
   */
  fill(): void {
    const o = this.opts;
    const c = this.counters;
    for (;;) {
      if (c.heldBytes >= o.limit) {
        c.limitReached++;
        return;
      }
      if (this.chunk.length - this.wpos < o.minSpace) {
        // Held segments still point into the full chunk: reads go on in another.
        this.chunk = this.free.pop() ?? Buffer.allocUnsafe(o.chunkBytes);
        this.wpos = 0;
      }
      const n = this.read(this.chunk.subarray(this.wpos), this.status);
      const err = this.status[0]!;
      if (n > 0) {
        this.push(DATA, this.chunk, this.wpos, this.wpos + n, 0);
        this.wpos += n;
        c.heldBytes += n;
        if (c.heldBytes > c.maxHeldBytes) c.maxHeldBytes = c.heldBytes;
      }
      if (err === EAGAIN) {
        // Consecutive "empty" markers say no more than one.
        const last = this.segs.length > this.head ? this.segs[this.segs.length - 1]! : undefined;
        if (last?.kind !== EMPTY) this.push(EMPTY, this.chunk, 0, 0, 0);
        return;
      }
      if (err !== 0) {
        this.push(ERROR, this.chunk, 0, 0, err);
        if (err !== ENOBUFS) return;
      }
    }
  }

  /**
   * Hands held segments to the receiver in order, checking `stop()` after
   * each; `refill()` runs every few segments so that the kernel's queue stays
   * short while a long backlog is handled. Returns whether anything is still
   * held.
   */
  deliver(to: NetlinkReceiver | undefined, stop: () => boolean, refill?: () => void): boolean {
    let k = 0;
    while (this.head < this.segs.length) {
      const s = this.segs[this.head++]!;
      if (s.kind === DATA) {
        if (s.buf !== this.readChunk) this.moveReadChunk(s.buf);
        this.counters.heldBytes -= s.end - s.start;
        to?.onData(s.buf, s.start, s.end);
      } else if (s.kind === EMPTY) {
        to?.onEmpty?.();
      } else {
        to?.onError(s.errno);
      }
      if (this.head === this.segs.length) this.reset();
      else if (this.head >= 1024 && this.head * 2 >= this.segs.length) {
        this.segs = this.segs.slice(this.head);
        this.head = 0;
      }
      if (stop()) break;
      if (refill !== undefined && (++k & 7) === 0) refill();
    }
    return this.pending;
  }

  /** Drops everything held (the socket closed). */
  clear(): void {
    this.reset();
  }

  private push(kind: Segment['kind'], buf: Buffer, start: number, end: number, errno: number): void {
    this.segs.push({ kind, buf, start, end, errno });
  }

  /** Handling moved on to `next`: the chunk before it holds nothing unhandled any more. */
  private moveReadChunk(next: Buffer | undefined): void {
    const done = this.readChunk;
    if (done !== undefined && done !== this.chunk && this.free.length * this.opts.chunkBytes < this.opts.limit) this.free.push(done);
    this.readChunk = next;
  }

  /** Everything handled: reads start again at the beginning of the current chunk; one spare is kept for the next burst. */
  private reset(): void {
    this.moveReadChunk(undefined);
    if (this.free.length > 1) this.free.length = 1;
    this.segs.length = 0;
    this.head = 0;
    this.wpos = 0;
    this.counters.heldBytes = 0;
  }
}
