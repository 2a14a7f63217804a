// The sent sequenced messages a peer may still ask for, oldest first: a ring
// of at most `capacity` messages with consecutive seqs [front, front + length).
// Each message is kept exactly as it was sent (same seq, same content), so a
// retransmission fills the receiver's gap with what the gap held. Lookup by
// seq is O(1); releasing acked messages moves the front.
import type { WireMessage } from '../wire/types.js';
import { seqAdd, seqDiff } from './seq.js';

export class ResendQueue {
  private readonly msgs: Array<WireMessage | undefined>;
  private readonly sentAt: Float64Array;
  private head = 0;
  private len = 0;
  /** seq of the oldest message; when empty, the seq the next push is expected to carry. */
  private frontSeq: number;

  constructor(
    readonly capacity: number,
    firstSeq: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`resend queue capacity ${capacity}`);
    this.msgs = new Array<WireMessage | undefined>(capacity);
    this.sentAt = new Float64Array(capacity);
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
    if (this.len >= this.capacity) throw new RangeError('resend queue full');
    let contiguous = true;
    if (this.len === 0) this.frontSeq = seq >>> 0;
    else if (seqDiff(this.end, seq) !== 0) {
      this.clear(seq);
      contiguous = false;
    }
    const i = (this.head + this.len) % this.capacity;
    this.msgs[i] = msg;
    this.sentAt[i] = now;
    this.len++;
    return contiguous;
  }

  /** Drops the oldest message. */
  shift(): void {
    if (this.len === 0) return;
    this.msgs[this.head] = undefined;
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
    const off = seqDiff(this.frontSeq, seq);
    return off >= 0 && off < this.len;
  }

  get(seq: number): WireMessage | undefined {
    const off = seqDiff(this.frontSeq, seq);
    if (off < 0 || off >= this.len) return undefined;
    return this.msgs[(this.head + off) % this.capacity];
  }

  /** When the message was last (re)sent; NaN when not kept. */
  lastSent(seq: number): number {
    const off = seqDiff(this.frontSeq, seq);
    if (off < 0 || off >= this.len) return Number.NaN;
    return this.sentAt[(this.head + off) % this.capacity]!;
  }

  touch(seq: number, now: number): void {
    const off = seqDiff(this.frontSeq, seq);
    if (off >= 0 && off < this.len) this.sentAt[(this.head + off) % this.capacity] = now;
  }
}
