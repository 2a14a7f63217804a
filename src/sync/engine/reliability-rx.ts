// Receive side of the sync protocol: one state machine per (peer, epoch).
//
// FtfwReceiver (reliable mode)
//   unanchored ──first hello / seq-carrying message──► anchored at that seq
//   anchored: data is applied on arrival, in any order (the external cache's
//   per-entry seq check makes that safe); duplicates and anything before
//   `expected` are dropped. A new gap is NACKed at once; the open gaps (up
//   to MAX_NACK_RUNS ranges) are NACKed again every nackRetryMs while
//   messages keep arriving, backing off to nackRetryMaxMs when none do. An
//   ack {to: expected - 1} goes out after ackWindow new in-order messages,
//   ackDelayMs after the first unacked one, or (at most once per ackDelayMs)
//   when a duplicate shows the sender missed our last ack.
//   bulk-start for us: everything before it is superseded by the bulk, so
//   `expected` jumps to it (this is also how a gap the sender can no longer
//   fill gets closed). bulk-end for us is held until every seq before it has
//   arrived, so endBulk() never removes an entry whose bulk message is still
//   in flight.
//   Bulk wanted: a new (peer, epoch) has to send us its whole state once (we
//   cannot know what it sent before we started listening, and records of its
//   previous epoch must go). Until a bulk-end for us is processed, a directed
//   resync request repeats, backing off from aliveIntervalMs. A bulk for us
//   that began before we started listening (reordering at first contact) is
//   asked for again at once, behind an ack that shows the sender why.
//
// NotrackReceiver (best effort): applies everything on arrival and counts
// losses. A bulk is judged nackRetryMs after its end arrived (its stragglers
// may still be on the way) by whether every seq between its start and end
// came: a complete one removes what it did not carry; an incomplete one only
// what none of the last k bulks carried, k from the measured loss
// (notrackRemovalDepth).
import type { WireMessage } from '../wire/types.js';
import {
  MAX_HELD_CONTROLS,
  MAX_NACK_RUNS,
  NOTRACK_REMOVAL_BULKS,
  NOTRACK_TRACKED_SEQS,
  type ReliabilityConfig,
  RESYNC_RETRY_MAX_FACTOR,
  RX_WINDOW,
} from './reliability.js';
import { seqAdd, seqAfter, seqBefore, seqDiff, seqForward } from './seq.js';
import { SeqWindow } from './seq-window.js';

/** How far behind expected the anchor may lie (see FtfwReceiver.progress). */
const ANCHOR_REACH = 0x4000_0000;

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
  endLossyBulk(rx: Receiver, m: BulkEnd, removeBefore: number | undefined, missing: number): void;
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
  /** The peer's epoch: the one it started with here, or the latest it rolled over to (continueIn). */
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
  /** The peer is back (up again): repeat pending NACKs and requests now rather than after their backoff. */
  kick(now: number): void;
  /**
   * The peer took `epoch` by a rollover: its stream goes on with the same
   * seqs, so everything this receiver knows (window, gaps, bulk) stays;
   * only the epoch its acks, NACKs and requests are addressed to changes.
   */
  continueIn(epoch: number): void;
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
    public epoch: number,
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

  kick(now: number): void {
    this.resyncBackoff = this.cfg.aliveIntervalMs;
    if (this.wantBulk) this.resyncAt = now;
  }

  continueIn(epoch: number): void {
    this.epoch = epoch;
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
  private lastAckAt = Number.NEGATIVE_INFINITY;
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
      if (d < 0 || w.has(s)) return this.duplicate(now);
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
    if (r === 'old' || r === 'dup') return this.duplicate(now);
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

  override kick(now: number): void {
    super.kick(now);
    this.nackBackoff = this.cfg.nackRetryMs;
    if (this.win?.missing) this.nackAt = now;
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

  private duplicate(now: number): void {
    this.c.duplicates++;
    // The sender resends what we have: our ack was lost, or is late. Ack again, at most once per ackDelayMs.
    if (now - this.lastAckAt >= this.cfg.ackDelayMs) this.ackNow = true;
    else this.ackDueAt ??= this.lastAckAt + this.cfg.ackDelayMs;
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
    // The anchor is kept within ANCHOR_REACH behind expected, so that seqBefore(s, anchor0) above
    // still means "before we started listening" after the stream has run 2^31 seqs past it.
    if (seqForward(this.anchor0, w.expected) > ANCHOR_REACH) this.anchor0 = seqAdd(w.expected, -ANCHOR_REACH);
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

  private sendAck(now: number): void {
    const w = this.win;
    this.ackNow = false;
    this.ackDueAt = undefined;
    if (w === undefined) return;
    this.lastAckAt = now;
    const to = seqAdd(w.expected, -1);
    const from = this.ackedNext !== undefined && !seqAfter(this.ackedNext, to) ? this.ackedNext : to;
    this.sink.ack(this, from, to);
    this.ackedNext = w.expected;
  }
}

/**
 * Which of the last `size` seqs (up to the highest seen) arrived, in a ring
 * bitset: notrack's way to tell whether a bulk arrived whole, whatever the
 * order its datagrams came in.
 */
class RecentSeqs {
  private readonly bits: Uint32Array;
  private readonly mask: number;
  /** One past the highest seq seen; undefined before the first. */
  private next: number | undefined;

  constructor(readonly size: number) {
    this.bits = new Uint32Array(size >>> 5);
    this.mask = size - 1;
  }

  record(seq: number): void {
    if (this.next === undefined) this.next = seq >>> 0;
    const d = seqDiff(this.next, seq);
    if (d >= 0) {
      // Moving forward: forget what the ring slots held size seqs ago.
      if (d >= this.size) this.bits.fill(0);
      else for (let s = this.next, k = 0; k <= d; k++, s = seqAdd(s, 1)) this.put(s, false);
      this.next = seqAdd(seq, 1);
    } else if (-d > this.size) {
      return;
    }
    this.put(seq, true);
  }

  /** How many of the seqs in [from, to) arrived; undefined when that range is not fully tracked. */
  count(from: number, to: number): number | undefined {
    const n = seqDiff(from, to);
    if (n <= 0) return 0;
    if (this.next === undefined || seqAfter(to, this.next) || seqDiff(from, this.next) > this.size) return undefined;
    let c = 0;
    for (let s = from, k = 0; k < n; k++, s = seqAdd(s, 1)) {
      const i = s & this.mask;
      // Whole words at once where the range allows.
      if ((i & 31) === 0 && k + 32 <= n) {
        c += popcount(this.bits[i >>> 5]!);
        k += 31;
        s = seqAdd(s, 31);
        continue;
      }
      if ((this.bits[i >>> 5]! & (1 << (i & 31))) !== 0) c++;
    }
    return c;
  }

  private put(seq: number, on: boolean): void {
    const i = seq & this.mask;
    const w = this.bits[i >>> 5]!;
    this.bits[i >>> 5] = on ? w | (1 << (i & 31)) : w & ~(1 << (i & 31));
  }
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x5555_5555);
  v = (v & 0x3333_3333) + ((v >>> 2) & 0x3333_3333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f_0f0f, 0x0101_0101) >>> 24) & 0xff;
}

/**
 * How many recent bulks an incomplete notrack bulk must be combined with
 * before a record none of them carried counts as gone: the smallest k for
 * which entries × loss^k stays below 1%, within [2, NOTRACK_REMOVAL_BULKS].
 */
export function notrackRemovalDepth(entries: number, missing: number): number {
  if (missing <= 0) return 1;
  const loss = Math.min(missing / Math.max(entries, 1), 0.99);
  const k = Math.ceil(Math.log(0.01 / Math.max(entries, 1)) / Math.log(loss));
  return Math.max(2, Math.min(NOTRACK_REMOVAL_BULKS, Number.isFinite(k) ? k : NOTRACK_REMOVAL_BULKS));
}

export class NotrackReceiver extends ReceiverBase implements Receiver {
  /** One past the highest seq seen. */
  private next: number | undefined;
  private readonly recent = new RecentSeqs(NOTRACK_TRACKED_SEQS);
  /** A bulk-end waiting for stragglers of its bulk before it is judged. */
  private pendingEnd: { m: BulkEnd; at: number } | undefined;
  /** bulk-start seqs of the recent bulks for us (the current one last), oldest first. */
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

  onSequenced(m: SequencedMessage, forUs: boolean, now: number): void {
    const s = m.seq;
    const after = seqAdd(s, 1);
    if (this.next === undefined) this.next = after;
    else {
      const d = seqDiff(this.next, s);
      if (d > 0) this.c.lostMessages += d;
      if (d >= 0) this.next = after;
    }
    this.recent.record(s);
    if (m.kind === 'bulk-start') {
      if (!forUs || this.bulk?.id === m.bulkId) return;
      // A new bulk: settle the previous one first.
      if (this.pendingEnd !== undefined) this.finishBulk(this.pendingEnd.m);
      this.bulk = { id: m.bulkId, start: s };
      // Even if its end gets lost, this bulk carried what it carried: it counts towards the removal depth.
      this.history.push(s);
      if (this.history.length > NOTRACK_REMOVAL_BULKS) this.history.shift();
      return;
    }
    const b = this.bulk;
    if (m.kind === 'bulk-end') {
      if (!forUs) return;
      if (b === undefined || b.id !== m.bulkId) {
        this.c.orphanBulkEnds++;
        return;
      }
      // Datagrams sent before the bulk-end may still be on their way: judge the bulk a little later.
      this.pendingEnd = { m, at: now };
      return;
    }
    this.sink.apply(this, m);
  }

  afterDatagram(_now: number): void {}

  tick(now: number): void {
    const p = this.pendingEnd;
    if (p !== undefined && now - p.at >= this.cfg.nackRetryMs) this.finishBulk(p.m);
  }

  private finishBulk(m: BulkEnd): void {
    const b = this.bulk;
    this.pendingEnd = undefined;
    if (b === undefined || b.id !== m.bulkId) return;
    const carried = seqDiff(b.start, m.seq) - 1;
    const got = this.recent.count(seqAdd(b.start, 1), m.seq);
    const missing = got === undefined ? carried : carried - got;
    if (missing > 0) this.c.incompleteBulks++;
    // Records older than the oldest of the last `depth` bulks (this one included) that none of
    // them carried are gone at the peer.
    const depth = notrackRemovalDepth(carried, missing);
    const removeBefore = this.history.length >= depth ? this.history[this.history.length - depth] : undefined;
    this.sink.endLossyBulk(this, m, removeBefore, missing);
    this.bulkDone();
  }

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
