// Which sequence numbers of one sender (one peer in one epoch) have arrived.
//
//   expected: every seq before it has arrived (or was superseded by a bulk).
//   known:    one past the highest seq known to exist — received, or
//             announced by an alive (which carries the sender's next seq).
//
// Seqs in [expected, expected + size) are tracked in a ring bitset indexed
// by `seq & (size - 1)`; the bit of `expected` is always clear. Everything in
// [expected, known) whose bit is clear is missing. All comparisons go through
// seq.ts, so a window spanning the 2^32 wrap needs no special case.
import { seqAdd, seqAfter, seqBefore, seqDiff } from './seq.js';

export type RecordResult =
  /** First time seen, inside the window. */
  | 'new'
  /** Seen before, inside the window. */
  | 'dup'
  /** Before expected: a duplicate, or older than where tracking started. */
  | 'old'
  /** Too far ahead to track; `known` still moves. */
  | 'beyond';

export class SeqWindow {
  private readonly bits: Uint32Array;
  private readonly mask: number;
  expected: number;
  known: number;

  constructor(
    start: number,
    readonly size: number,
  ) {
    if (size < 32 || (size & (size - 1)) !== 0) throw new RangeError(`window size ${size} is not a power of two >= 32`);
    this.bits = new Uint32Array(size >>> 5);
    this.mask = size - 1;
    this.expected = start >>> 0;
    this.known = this.expected;
  }

  /** Whether seq has arrived (anything before expected counts as arrived). */
  has(seq: number): boolean {
    const d = seqDiff(this.expected, seq);
    if (d < 0) return true;
    if (d >= this.size) return false;
    return this.bit(seq);
  }

  record(seq: number): RecordResult {
    const d = seqDiff(this.expected, seq);
    if (d < 0) return 'old';
    const after = seqAdd(seq, 1);
    if (seqAfter(after, this.known)) this.known = after;
    if (d >= this.size) return 'beyond';
    const i = seq & this.mask;
    const w = this.bits[i >>> 5]!;
    const b = 1 << (i & 31);
    if ((w & b) !== 0) return 'dup';
    this.bits[i >>> 5] = w | b;
    return 'new';
  }

  /** Moves expected over every seq that has arrived; returns how far it moved. */
  advance(): number {
    let n = 0;
    while (this.bit(this.expected)) {
      this.clear(this.expected);
      this.expected = seqAdd(this.expected, 1);
      n++;
    }
    return n;
  }

  /** Treats everything before seq as arrived (a bulk supersedes it). */
  skipTo(seq: number): void {
    const d = seqDiff(this.expected, seq);
    if (d <= 0) return;
    if (d >= this.size) this.bits.fill(0);
    else for (let s = this.expected, k = 0; k < d; k++, s = seqAdd(s, 1)) this.clear(s);
    this.expected = seq >>> 0;
    if (seqAfter(seq, this.known)) this.known = seq >>> 0;
  }

  /** An alive said the sender's next seq is `next`; returns whether that revealed unseen seqs. */
  announce(next: number): boolean {
    if (!seqAfter(next, this.known)) return false;
    this.known = next >>> 0;
    return true;
  }

  /** Whether anything in [expected, known) is missing. */
  get missing(): boolean {
    return seqBefore(this.expected, this.known);
  }

  /** The missing ranges [from, to] (inclusive) in [expected, known), at most max of them, oldest first. */
  missingRuns(max: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const span = seqDiff(this.expected, this.known);
    if (span <= 0) return out;
    const tracked = Math.min(span, this.size);
    let runStart = -1;
    for (let k = 0; k < tracked; k++) {
      const s = seqAdd(this.expected, k);
      const i = s & this.mask;
      // Whole words of arrived seqs are skipped at once.
      if ((i & 31) === 0 && runStart < 0 && k + 32 <= tracked && this.bits[i >>> 5] === 0xffff_ffff) {
        k += 31;
        continue;
      }
      if (this.bit(s)) {
        if (runStart >= 0) {
          out.push([seqAdd(this.expected, runStart), seqAdd(s, -1)]);
          runStart = -1;
          if (out.length >= max) return out;
        }
      } else if (runStart < 0) runStart = k;
    }
    if (runStart >= 0) {
      // A run reaching the end of the window continues to known.
      out.push([seqAdd(this.expected, runStart), seqAdd(this.known, -1)]);
    } else if (span > tracked && out.length < max) {
      out.push([seqAdd(this.expected, tracked), seqAdd(this.known, -1)]);
    }
    return out;
  }

  private bit(seq: number): boolean {
    const i = seq & this.mask;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  private clear(seq: number): void {
    const i = seq & this.mask;
    this.bits[i >>> 5] = this.bits[i >>> 5]! & ~(1 << (i & 31));
  }
}
