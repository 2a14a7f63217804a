// Receive side of the sync protocol: one state machine per (peer, epoch).
//
// FtfwReceiver (reliable mode)
//   unanchored ──first hello / seq-carrying message──► anchored at that seq
//   anchored: data is applied on arrival, in any order (the external cache's
//   per-entry seq check makes that safe); duplicates and anything before
//   `expected` are dropped. A new gap is NACKed at once, and the open gaps
//   are NACKed again with backoff (nackRetryMs doubling to nackRetryMaxMs)
//   until they fill. An ack {to: expected - 1} goes out after ackWindow new
//   in-order messages, ackDelayMs after the first unacked one, or at once
//   when a duplicate shows the sender missed our last ack.
//   bulk-start for us: everything before it is superseded by the bulk, so
//   `expected` jumps to it (this is also how a gap the sender can no longer
//   fill gets closed). bulk-end for us is held until every seq before it has
//   arrived, so endBulk() never removes an entry whose bulk message is still
//   in flight.
//   Bulk wanted: a new (peer, epoch) has to send us its whole state once (we
//   cannot know what it sent before we started listening, and records of its
//   previous epoch must go). Until a bulk-end for us is processed, a directed
//   resync request repeats, backing off from aliveIntervalMs.
//
// NotrackReceiver (best effort): applies everything on arrival, counts
// losses, and judges a bulk by whether every seq between its start and end
// arrived: a complete one removes what it did not carry; an incomplete one
// removes only what none of the last NOTRACK_REMOVAL_BULKS bulks carried.
import {
  MAX_HELD_CONTROLS,
  MAX_NACK_RUNS,
  NOTRACK_REMOVAL_BULKS,
  type ReliabilityConfig,
  RESYNC_RETRY_MAX_FACTOR,
  RX_WINDOW,
} from './reliability.js';
import { seqAdd, seqAfter, seqBefore, seqDiff } from './seq.js';
import { SeqWindow } from './seq-window.js';
import type { WireMessage } from './wire.js';

export type DataMessage = Extract<
  WireMessage,
  { kind: 'ct-new' | 'ct-update' | 'ct-delete' | 'exp-new' | 'exp-delete' }
>;
export type BulkStart = Extract<WireMessage, { kind: 'bulk-start' }>;
export type BulkEnd = Extract<WireMessage, { kind: 'bulk-end' }>;
export type SequencedMessage = DataMessage | BulkStart | BulkEnd;

/** What a receiver asks its owner to do. */
export interface RxSink {
  apply(rx: Receiver, m: DataMessage): void;
  /** ftfw: a bulk for us starts (the cache starts marking what it carries). */
  beginBulk(rx: Receiver, m: BulkStart): void;
  /** ftfw: the bulk ended and every message of it arrived. */
  endBulk(rx: Receiver, m: BulkEnd): void;
  /**
   * notrack: a bulk ended, possibly with holes. Remove this peer's records
   * older than `removeBefore` (same epoch) or of another epoch; undefined =
   * remove nothing yet.
   */
  endLossyBulk(rx: Receiver, m: BulkEnd, removeBefore: number | undefined, complete: boolean): void;
  ack(rx: Receiver, from: number, to: number): void;
  nack(rx: Receiver, from: number, to: number): void;
}

export interface RxCounters {
  /** Messages dropped as already received (or before where tracking started). */
  duplicates: number;
  /** Gaps noticed (each NACKed at once). */
  gapsDetected: number;
  /** Messages too far ahead of the receive window to track (applied anyway). */
  beyondWindow: number;
  /** Messages a bulk made unnecessary (expected jumped over them). */
  skippedByBulk: number;
  /** bulk-end for us without its bulk-start (e.g. superseded by a newer bulk). */
  orphanBulkEnds: number;
  /** Held bulk-ends dropped because too many were waiting. */
  heldDropped: number;
  /** Bulks for us that began before we started listening (asked again at once). */
  missedBulks: number;
  /** notrack: messages never seen (gaps in the seq stream). */
  lostMessages: number;
  /** notrack: bulks that ended with holes. */
  incompleteBulks: number;
}

export function newRxCounters(): RxCounters {
  return {
    duplicates: 0,
    gapsDetected: 0,
    beyondWindow: 0,
    skippedByBulk: 0,
    orphanBulkEnds: 0,
    heldDropped: 0,
    missedBulks: 0,
    lostMessages: 0,
    incompleteBulks: 0,
  };
}

export interface RxInfo {
  epoch: number;
  expected: number | null;
  known: number | null;
  missing: boolean;
  helloSeen: boolean;
  synced: boolean;
  bulkInProgress: number | null;
  wantBulk: boolean;
}

export interface Receiver {
  readonly node: string;
  readonly epoch: number;
  /** A bulk from this (peer, epoch) for us has completed at least once. */
  readonly synced: boolean;
  onSequenced(m: SequencedMessage, forUs: boolean, now: number): void;
  onAlive(next: number, now: number): void;
  /** Returns true for the first hello of this epoch. */
  onHello(first: number, now: number): boolean;
  /** After every message of a datagram was handled. */
  afterDatagram(now: number): void;
  tick(now: number): void;
  /** Whether a (re)request for a bulk is due now; advances the retry timer when it is. */
  resyncDue(now: number): boolean;
  /** Ask for a bulk again (explicit resync). */
  wantResync(now: number): void;
  info(): RxInfo;
}

abstract class ReceiverBase {
  helloSeen = false;
  synced = false;
  protected wantBulk = true;
  protected resyncAt: number;
  protected resyncBackoff: number;
  protected bulk: { id: number; start: number } | undefined;

  constructor(
    readonly node: string,
    readonly epoch: number,
    protected readonly cfg: ReliabilityConfig,
    protected readonly sink: RxSink,
    protected readonly c: RxCounters,
    now: number,
  ) {
    this.resyncAt = now;
    this.resyncBackoff = cfg.aliveIntervalMs;
  }

  resyncDue(now: number): boolean {
    if (!this.wantBulk || this.bulk !== undefined || now < this.resyncAt) return false;
    this.resyncAt = now + this.resyncBackoff;
    this.resyncBackoff = Math.min(this.resyncBackoff * 2, this.cfg.aliveIntervalMs * RESYNC_RETRY_MAX_FACTOR);
    return true;
  }

  wantResync(now: number): void {
    this.wantBulk = true;
    this.resyncBackoff = this.cfg.aliveIntervalMs;
    this.resyncAt = now + this.resyncBackoff;
  }

  protected bulkDone(): void {
    this.synced = true;
    this.wantBulk = false;
    this.bulk = undefined;
  }
}

export class FtfwReceiver extends ReceiverBase implements Receiver {
  private win: SeqWindow | undefined;
  /** The seq tracking started at. */
  private anchor0 = 0;
  private lastNow = 0;
  /** First seq our last ack did not cover; undefined before the first ack. */
  private ackedNext: number | undefined;
  private ackDueAt: number | undefined;
  private ackNow = false;
  private nackAt: number | undefined;
  private nackBackoff: number;
  /** Messages recorded so far, and at the last NACK round: progress keeps the NACK pace. */
  private recorded = 0;
  private recordedAtNack = 0;
  /** bulk-ends for us that arrived before a gap below them filled, by seq. */
  private readonly held = new Map<number, BulkEnd>();

  constructor(
    node: string,
    epoch: number,
    cfg: ReliabilityConfig,
    sink: RxSink,
    c: RxCounters,
    now: number,
    private readonly windowSize = RX_WINDOW,
  ) {
    super(node, epoch, cfg, sink, c, now);
    this.nackBackoff = cfg.nackRetryMs;
  }

  onHello(first: number, now: number): boolean {
    if (this.helloSeen) return false;
    this.helloSeen = true;
    if (this.win === undefined) this.anchor(first, now);
    return true;
  }

  onAlive(next: number, now: number): void {
    if (this.win === undefined) {
      this.anchor(next, now);
      return;
    }
    const before = this.win.known;
    // Tail loss: the sender has used seqs we never saw.
    if (this.win.announce(next)) this.gap(before, seqAdd(next, -1), now);
  }

  onSequenced(m: SequencedMessage, forUs: boolean, now: number): void {
    const s = m.seq;
    this.lastNow = now;
    if (this.win === undefined) this.anchor(s, now);
    const w = this.win!;
    if (m.kind === 'bulk-start' && forUs) {
      const d = seqDiff(w.expected, s);
      if (d < 0 && seqBefore(s, this.anchor0) && this.wantBulk && this.bulk === undefined) {
        // A bulk for us that started before we started listening (reordering at first contact):
        // it cannot complete here. Ask for another at once; the ack that goes first tells the
        // sender we are past this bulk-start, so it does not take the request as covered.
        this.missedBulk(now);
        return;
      }
      if (d < 0 || w.has(s)) return this.duplicate();
      if (d > 0) {
        // The bulk carries all of the sender's state: whatever we miss before it no longer matters.
        this.c.skippedByBulk += d;
        w.skipTo(s);
        for (const k of this.held.keys()) if (seqBefore(k, s)) this.held.delete(k);
      }
      w.record(s);
      this.recorded++;
      this.bulk = { id: m.bulkId, start: s };
      this.sink.beginBulk(this, m);
      this.progress(now);
      return;
    }
    const before = w.known;
    const r = w.record(s);
    if (r === 'old' || r === 'dup') return this.duplicate();
    this.recorded++;
    if (r === 'beyond') this.c.beyondWindow++;
    if (seqAfter(s, before)) this.gap(before, seqAdd(s, -1), now);
    if (m.kind === 'bulk-end') {
      if (forUs) {
        if (this.held.size < MAX_HELD_CONTROLS) this.held.set(s, m);
        else this.c.heldDropped++;
      }
    } else if (m.kind !== 'bulk-start') {
      this.sink.apply(this, m);
    }
    this.progress(now);
  }

  afterDatagram(now: number): void {
    if (this.ackNow) this.sendAck(now);
  }

  tick(now: number): void {
    if (this.ackNow || (this.ackDueAt !== undefined && now >= this.ackDueAt)) this.sendAck(now);
    const w = this.win;
    if (w === undefined || !w.missing) return;
    if (this.nackAt === undefined) {
      this.armNack(now);
      return;
    }
    if (now < this.nackAt) return;
    for (const [from, to] of w.missingRuns(MAX_NACK_RUNS)) this.sink.nack(this, from, to);
    // Messages arrived since the last round: the sender hears us and answers, keep the pace.
    // Nothing arrived: back off, the sender (or the way to it) is gone for now.
    const moved = this.recorded !== this.recordedAtNack;
    this.nackBackoff = moved ? this.cfg.nackRetryMs : Math.min(this.nackBackoff * 2, this.cfg.nackRetryMaxMs);
    this.recordedAtNack = this.recorded;
    this.nackAt = now + this.nackBackoff;
  }

  info(): RxInfo {
    const w = this.win;
    return {
      epoch: this.epoch,
      expected: w ? w.expected : null,
      known: w ? w.known : null,
      missing: w ? w.missing : false,
      helloSeen: this.helloSeen,
      synced: this.synced,
      bulkInProgress: this.bulk ? this.bulk.id : null,
      wantBulk: this.wantBulk,
    };
  }

  private missedBulk(now: number): void {
    this.c.missedBulks++;
    this.ackNow = true;
    this.resyncAt = now;
    this.resyncBackoff = this.cfg.aliveIntervalMs;
  }

  private anchor(seq: number, now: number): void {
    this.anchor0 = seq >>> 0;
    this.win = new SeqWindow(seq, this.windowSize);
    // The first ack tells the sender where we start: it need not keep anything older for us.
    this.ackDueAt = now + this.cfg.ackDelayMs;
  }

  private duplicate(): void {
    this.c.duplicates++;
    // The sender resends what we have: our ack was lost, or is late. Ack again.
    this.ackNow = true;
  }

  private gap(from: number, to: number, now: number): void {
    this.c.gapsDetected++;
    this.sink.nack(this, from, to);
    this.armNack(now);
  }

  private armNack(now: number): void {
    if (this.nackAt !== undefined) return;
    this.nackBackoff = this.cfg.nackRetryMs;
    this.nackAt = now + this.nackBackoff;
    this.recordedAtNack = this.recorded;
  }

  private progress(now: number): void {
    const w = this.win!;
    if (w.advance() > 0 && this.held.size > 0) this.processHeld();
    const base = this.ackedNext ?? seqAdd(w.expected, -1);
    const pending = seqDiff(base, w.expected);
    if (pending >= this.cfg.ackWindow) this.ackNow = true;
    else if (pending > 0 && this.ackDueAt === undefined) this.ackDueAt = now + this.cfg.ackDelayMs;
    if (!w.missing) this.nackAt = undefined;
  }

  private processHeld(): void {
    const w = this.win!;
    const ready = [...this.held.keys()].filter((k) => seqBefore(k, w.expected));
    ready.sort((a, b) => seqDiff(b, a));
    for (const k of ready) {
      const m = this.held.get(k)!;
      this.held.delete(k);
      if (this.bulk !== undefined && this.bulk.id === m.bulkId && !seqBefore(k, this.bulk.start)) {
        this.sink.endBulk(this, m);
        this.bulkDone();
      } else {
        this.c.orphanBulkEnds++;
        if (this.wantBulk && this.bulk === undefined) this.missedBulk(this.lastNow);
      }
    }
  }

  private sendAck(_now: number): void {
    const w = this.win;
    this.ackNow = false;
    this.ackDueAt = undefined;
    if (w === undefined) return;
    const to = seqAdd(w.expected, -1);
    const from = this.ackedNext !== undefined && !seqAfter(this.ackedNext, to) ? this.ackedNext : to;
    this.sink.ack(this, from, to);
    this.ackedNext = w.expected;
  }
}

/** A growable bitset of offsets from a bulk's start, to tell whether the bulk arrived whole. */
class OffsetBits {
  private words = new Uint32Array(64);
  overflow = false;
  static readonly MAX = 1 << 24;

  set(off: number): void {
    if (off >= OffsetBits.MAX) {
      this.overflow = true;
      return;
    }
    const wi = off >>> 5;
    if (wi >= this.words.length) {
      let n = this.words.length;
      while (n <= wi) n *= 2;
      const grown = new Uint32Array(n);
      grown.set(this.words);
      this.words = grown;
    }
    this.words[wi] = this.words[wi]! | (1 << (off & 31));
  }

  /** Whether every offset in [1, end) is set. */
  allBelow(end: number): boolean {
    if (this.overflow && end > OffsetBits.MAX) return false;
    for (let off = 1; off < end; off++) {
      const wi = off >>> 5;
      const w = wi < this.words.length ? this.words[wi]! : 0;
      if ((off & 31) === 0 && off + 32 <= end && w === 0xffff_ffff) {
        off += 31;
        continue;
      }
      if ((w & (1 << (off & 31))) === 0) return false;
    }
    return true;
  }
}

export class NotrackReceiver extends ReceiverBase implements Receiver {
  /** One past the highest seq seen. */
  private next: number | undefined;
  private bits: OffsetBits | undefined;
  /** bulk-start seqs of the recent bulks for us, oldest first. */
  private readonly history: number[] = [];

  onHello(first: number, _now: number): boolean {
    if (this.helloSeen) return false;
    this.helloSeen = true;
    this.next ??= first >>> 0;
    return true;
  }

  onAlive(next: number, _now: number): void {
    if (this.next === undefined) this.next = next >>> 0;
    else if (seqAfter(next, this.next)) {
      this.c.lostMessages += seqDiff(this.next, next);
      this.next = next >>> 0;
    }
  }

  onSequenced(m: SequencedMessage, forUs: boolean, _now: number): void {
    const s = m.seq;
    const after = seqAdd(s, 1);
    if (this.next === undefined) this.next = after;
    else {
      const d = seqDiff(this.next, s);
      if (d > 0) this.c.lostMessages += d;
      if (d >= 0) this.next = after;
    }
    const b = this.bulk;
    if (b !== undefined && this.bits !== undefined) {
      const off = seqDiff(b.start, s);
      if (off > 0) this.bits.set(off);
    }
    if (m.kind === 'bulk-start') {
      if (forUs && (b === undefined || b.id !== m.bulkId)) {
        this.bulk = { id: m.bulkId, start: s };
        this.bits = new OffsetBits();
      }
      return;
    }
    if (m.kind === 'bulk-end') {
      if (!forUs) return;
      if (b === undefined || b.id !== m.bulkId) {
        this.c.orphanBulkEnds++;
        return;
      }
      const complete = this.bits!.allBelow(seqDiff(b.start, s));
      if (!complete) this.c.incompleteBulks++;
      let removeBefore: number | undefined;
      if (complete) removeBefore = b.start;
      else if (this.history.length >= NOTRACK_REMOVAL_BULKS - 1) {
        removeBefore = this.history[this.history.length - (NOTRACK_REMOVAL_BULKS - 1)];
      }
      this.history.push(b.start);
      if (this.history.length > NOTRACK_REMOVAL_BULKS) this.history.shift();
      this.bits = undefined;
      this.sink.endLossyBulk(this, m, removeBefore, complete);
      this.bulkDone();
      return;
    }
    this.sink.apply(this, m);
  }

  afterDatagram(_now: number): void {}

  tick(_now: number): void {}

  info(): RxInfo {
    return {
      epoch: this.epoch,
      expected: this.next ?? null,
      known: this.next ?? null,
      missing: false,
      helloSeen: this.helloSeen,
      synced: this.synced,
      bulkInProgress: this.bulk ? this.bulk.id : null,
      wantBulk: this.wantBulk,
    };
  }
}
