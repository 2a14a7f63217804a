// The sent sequenced messages a peer may still ask for, oldest first: a ring
// of at most `capacity` messages with consecutive seqs [front, front + length).
// Each message is kept exactly as it was sent (same seq, same content), so a
// retransmission fills the receiver's gap with what the gap held. Lookup by
// seq is O(1); releasing acked messages moves the front.
//
// Entry messages are kept as their encoded bytes (pushBytes), copied into
// one byte ring in the order they were sent, so tens of thousands of
// messages awaiting their acks are not tens of thousands of objects for the
// garbage collector to trace and move. Control messages are few and kept as
// objects (push). get() decodes stored bytes back into a message: only a
// retransmission asks, and it re-encodes the same bytes.
import { decodeMessageField } from '../wire/proto-codec.js';
import type { WireMessage } from '../wire/types.js';
import { seqAdd, seqDiff } from './seq.js';

/** The byte ring's first size; it doubles when the messages in flight need more. */
const INITIAL_BYTES = 64 * 1024;

export class ResendQueue {
  private readonly msgs: Array<WireMessage | undefined>;
  private readonly sentAt: Float64Array;
  /** Per ring index: where a pushBytes() message's bytes are, and how many (0: an object or nothing). */
  private readonly off: Int32Array;
  private readonly size: Int32Array;
  private head = 0;
  private len = 0;
  /** seq of the oldest message; when empty, the seq the next push is expected to carry. */
  private frontSeq: number;
  /**
   * The byte ring: live bytes are [rpos, wpos), or when wrapped
   * [rpos, where the upper part ends) then [0, wpos); in message order.
   */
  private bytes: Buffer;
  private rpos = 0;
  private wpos = 0;
  private wrapped = false;
  private liveBytes = 0;

  constructor(
    readonly capacity: number,
    firstSeq: number,
    /** The byte ring's first size (small in tests, to make it wrap and grow). */
    initialBytes = INITIAL_BYTES,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`resend queue capacity ${capacity}`);
    this.msgs = new Array<WireMessage | undefined>(capacity);
    this.sentAt = new Float64Array(capacity);
    this.off = new Int32Array(capacity);
    this.size = new Int32Array(capacity);
    this.bytes = Buffer.allocUnsafe(Math.max(1, initialBytes));
    this.frontSeq = firstSeq >>> 0;
  }

  get length(): number {
    return this.len;
  }

  get full(): boolean {
    return this.len >= this.capacity;
  }

  /** Seq of the oldest message kept (meaningful when length > 0). */
  get front(): number {
    return this.frontSeq;
  }

  /** One past the newest message kept. */
  get end(): number {
    return seqAdd(this.frontSeq, this.len);
  }

  /**
   * Appends the message that carries seq; the caller makes room first.
   * Returns false (and starts over at seq) when seq does not follow the newest one.
   */
  push(seq: number, msg: WireMessage, now: number): boolean {
    const contiguous = this.append(seq);
    const i = (this.head + this.len) % this.capacity;
    this.msgs[i] = msg;
    this.size[i] = 0;
    this.sentAt[i] = now;
    this.len++;
    return contiguous;
  }

  /**
   * push() for a message given as its encoded bytes, src[start, end) (one
   * Datagram.messages field); they are copied.
   */
  pushBytes(seq: number, src: Uint8Array, start: number, end: number, now: number): boolean {
    const contiguous = this.append(seq);
    const n = end - start;
    const at = this.place(n);
    // An entry message is tens of bytes: a loop, where subarray() + set() would allocate a view per message.
    const dst = this.bytes;
    for (let k = 0; k < n; k++) dst[at + k] = src[start + k]!;
    this.liveBytes += n;
    const i = (this.head + this.len) % this.capacity;
    this.msgs[i] = undefined;
    this.off[i] = at;
    this.size[i] = n;
    this.sentAt[i] = now;
    this.len++;
    return contiguous;
  }

  /** Checks seq follows the newest message, else starts over at seq (returns false). */
  private append(seq: number): boolean {
    if (this.len >= this.capacity) throw new RangeError('resend queue full');
    if (this.len === 0) this.frontSeq = seq >>> 0;
    else if (seqDiff(this.end, seq) !== 0) {
      this.clear(seq);
      return false;
    }
    return true;
  }

  /** Where n more bytes go in the ring; grows it when they do not fit. */
  private place(n: number): number {
    if (this.liveBytes === 0) {
      this.rpos = 0;
      this.wpos = 0;
      this.wrapped = false;
    }
    if (!this.wrapped) {
      if (this.bytes.length - this.wpos >= n) {
        const at = this.wpos;
        this.wpos += n;
        return at;
      }
      if (this.rpos >= n) {
        this.wrapped = true;
        this.wpos = n;
        return 0;
      }
    } else if (this.rpos - this.wpos >= n) {
      const at = this.wpos;
      this.wpos += n;
      return at;
    }
    this.grow(n);
    const at = this.wpos;
    this.wpos += n;
    return at;
  }

  /** A ring twice as large (or more), the live messages copied to its start in order. */
  private grow(n: number): void {
    let cap = this.bytes.length * 2;
    while (cap < this.liveBytes + n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    let p = 0;
    for (let k = 0; k < this.len; k++) {
      const i = (this.head + k) % this.capacity;
      const sz = this.size[i]!;
      if (sz === 0) continue;
      this.bytes.copy(next, p, this.off[i]!, this.off[i]! + sz);
      this.off[i] = p;
      p += sz;
    }
    this.bytes = next;
    this.rpos = 0;
    this.wpos = p;
    this.wrapped = false;
  }

  /** Drops the oldest message. */
  shift(): void {
    if (this.len === 0) return;
    const h = this.head;
    this.msgs[h] = undefined;
    const sz = this.size[h]!;
    if (sz !== 0) {
      const o = this.off[h]!;
      // The first message at the ring's start: the upper part is all released.
      if (this.wrapped && o < this.rpos) this.wrapped = false;
      this.rpos = o + sz;
      this.liveBytes -= sz;
      this.size[h] = 0;
    }
    this.head = (this.head + 1) % this.capacity;
    this.len--;
    this.frontSeq = seqAdd(this.frontSeq, 1);
  }

  /** Drops every message before seq; returns how many. */
  releaseBefore(seq: number): number {
    const n = Math.min(seqDiff(this.frontSeq, seq), this.len);
    if (n <= 0) return 0;
    for (let k = 0; k < n; k++) this.shift();
    return n;
  }

  /** Empties the queue; the next push is expected to carry nextSeq. */
  clear(nextSeq: number): void {
    while (this.len > 0) this.shift();
    this.head = 0;
    this.frontSeq = nextSeq >>> 0;
  }

  has(seq: number): boolean {
    return this.ringIndex(seq) >= 0;
  }

  get(seq: number): WireMessage | undefined {
    const i = this.ringIndex(seq);
    if (i < 0) return undefined;
    const sz = this.size[i]!;
    if (sz === 0) return this.msgs[i];
    return decodeMessageField(this.bytes, this.off[i]!, this.off[i]! + sz);
  }

  /** The bytes kept for seq by pushBytes() (a view, valid until the next push), else undefined. */
  bytesOf(seq: number): Buffer | undefined {
    const i = this.ringIndex(seq);
    if (i < 0) return undefined;
    const sz = this.size[i]!;
    return sz === 0 ? undefined : this.bytes.subarray(this.off[i]!, this.off[i]! + sz);
  }

  /** The byte ring's size (it grows, never shrinks). */
  get ringBytes(): number {
    return this.bytes.length;
  }

  /** Bytes held for messages kept as bytes. */
  get byteLength(): number {
    return this.liveBytes;
  }

  /** When the message was last (re)sent; NaN when not kept. */
  lastSent(seq: number): number {
    const i = this.ringIndex(seq);
    return i < 0 ? Number.NaN : this.sentAt[i]!;
  }

  touch(seq: number, now: number): void {
    const i = this.ringIndex(seq);
    if (i >= 0) this.sentAt[i] = now;
  }

  /** Where seq's message sits in the ring, or -1 when it is not kept. */
  private ringIndex(seq: number): number {
    const off = seqDiff(this.frontSeq, seq);
    return off < 0 || off >= this.len ? -1 : (this.head + off) % this.capacity;
  }
}
