// Transmit side of the sync protocol: the resend queue and one small state
// machine per peer (keyed by node id; reset when the peer's epoch changes).
//
// Per peer:
//   ackNext   first of our seqs the peer has not acked (acks are cumulative).
//             What it "holds" in the resend queue is max(ackNext, front).
//   up/down   from the PeerTable. Only up peers hold the resend queue (with
//             none up it keeps what it has, up to its capacity); a down peer
//             that comes back NACKs what it misses.
//   NACK      [from, to] is resent from the queue, minus what the peer has
//             acked since (acks and NACKs may cross). A message is resent at
//             most once per min(nackRetryMs, retransmitMs)/2 whoever asks.
//   RTO       while the peer has unacked messages and no ack progress comes
//             for `rto`, the oldest of them (ackWindow at most) and the newest
//             one (a probe that reveals a lost tail) are resent; rto doubles
//             up to retransmitMaxMs and resets on progress. After
//             STALL_AFTER_TIMEOUTS timeouts without progress the peer is
//             stalled: it keeps holding the queue but no longer throttles us.
//   bulk      wanted → queued (in the transmit queue) → sent (start/end seqs
//             known) → done (the peer acked past bulk-end). While a bulk to a
//             peer is pending and its bulk-start can still be resent, further
//             requests, gaps and NACKs for the peer are covered by it
//             (coalesced) instead of starting another bulk.
//
// Flow control: room() = queue capacity minus the unacked messages of the
// slowest up, non-stalled peer that the queue can still serve. The sender
// stops at zero, so a peer that acks is never overrun by our own burst.
// Overflow: a message is evicted only when a stalled (or newly up) peer
// still holds it. That is counted and logged (resendOverflows); the peer
// then either acks it after all (it had it) or NACKs it, and a NACK for
// anything no longer queued schedules a bulk to that peer (resyncsForGap).
// Eviction never silently loses state, and a bulk larger than the queue
// does not trigger another bulk just because acks are slower than the burst.
import type { Logger } from '../../log.js';
import type { WireMessage } from '../wire/types.js';
import { BULK_MIN_INTERVAL_MS, type ReliabilityConfig, STALL_AFTER_TIMEOUTS } from './reliability.js';
import { ResendQueue } from './resend-queue.js';
import { seqAdd, seqAfter, seqBefore, seqDiff } from './seq.js';

export type BulkReason = 'request' | 'hello' | 'restart' | 'gap';

export interface TxBulk {
  id: number;
  startSeq: number | undefined;
  endSeq: number | undefined;
}

export interface TxPeer {
  readonly id: string;
  epoch: number;
  up: boolean;
  ackNext: number;
  rto: number;
  rtoAt: number | undefined;
  /** Retransmission timeouts since the last ack progress. */
  timeouts: number;
  /** Messages this peer had not acked were evicted (until its next ack progress). */
  overflowing: boolean;
  bulkWanted: boolean;
  bulk: TxBulk | undefined;
  /** When the last bulk for this peer went into the transmit queue. */
  bulkQueuedAt: number;
  /**
   * ackNext came from an ack of this epoch of the peer. Until then it is
   * only where the queue stood when we first believed the peer, which may
   * be past where the peer started tracking us: a NACK below it is then a
   * gap the queue cannot fill, not a late duplicate.
   */
  acked: boolean;
}

export interface TxCounters {
  acksReceived: number;
  nacksReceived: number;
  /** Acks or NACKs naming seqs we never sent. */
  badRanges: number;
  /** NACKs for seqs the peer had already acked (late duplicates). */
  staleNacks: number;
  /** NACKs whose missing part a pending bulk to that peer already covers. */
  nacksCoveredByBulk: number;
  /** Messages resent (NACK or timeout). */
  retransmits: number;
  retransmitTimeouts: number;
  /** Peers found holding a message the full resend queue had to evict. */
  resendOverflows: number;
  /** Bulks scheduled because a peer NACKed what is no longer queued. */
  resyncsForGap: number;
  /** Bulk wishes absorbed by a bulk already pending for that peer. */
  bulksCoalesced: number;
}

export function newTxCounters(): TxCounters {
  return {
    acksReceived: 0,
    nacksReceived: 0,
    badRanges: 0,
    staleNacks: 0,
    nacksCoveredByBulk: 0,
    retransmits: 0,
    retransmitTimeouts: 0,
    resendOverflows: 0,
    resyncsForGap: 0,
    bulksCoalesced: 0,
  };
}

export interface TransmitterOptions {
  /**
   * The mode's SyncModeStrategy.acknowledged: keep a resend queue and track
   * acks (ftfw); otherwise only bulk bookkeeping (notrack).
   */
  acknowledged: boolean;
  cfg: ReliabilityConfig;
  firstSeq: number;
  /** The seq the next sequenced message will carry. */
  nextSeq: () => number;
  /** Puts a retransmitted message into the next outgoing datagram. */
  resend: (msg: WireMessage) => void;
  log: Logger;
  counters: TxCounters;
}

export interface TxInfo {
  ackedThrough: number;
  unacked: number;
  rtoMs: number;
  stalled: boolean;
  overflowing: boolean;
  bulkWanted: boolean;
  bulk: TxBulk | null;
}

/** Beyond this an ack position is too old to compare with (2^30 messages). */
const MAX_ACK_LAG = 0x4000_0000;

export class Transmitter {
  readonly queue: ResendQueue | undefined;
  private readonly peers = new Map<string, TxPeer>();
  private readonly wanted = new Set<string>();
  private upCount = 0;
  private readonly minResendGapMs: number;
  private readonly c: TxCounters;

  constructor(private readonly opts: TransmitterOptions) {
    this.queue = opts.acknowledged ? new ResendQueue(opts.cfg.resendQueueSize, opts.firstSeq) : undefined;
    this.minResendGapMs = Math.min(opts.cfg.nackRetryMs, opts.cfg.retransmitMs) / 2;
    this.c = opts.counters;
  }

  /** The oldest seq the resend queue can still serve (the next seq when it is empty). */
  front(): number {
    const q = this.queue;
    return q !== undefined && q.length > 0 ? q.front : this.opts.nextSeq();
  }

  get(id: string): TxPeer | undefined {
    return this.peers.get(id);
  }

  peer(id: string, epoch: number): TxPeer {
    let tx = this.peers.get(id);
    if (tx === undefined) {
      tx = {
        id,
        epoch,
        up: false,
        ackNext: this.front(),
        rto: this.opts.cfg.retransmitMs,
        rtoAt: undefined,
        timeouts: 0,
        overflowing: false,
        bulkWanted: false,
        bulk: undefined,
        bulkQueuedAt: Number.NEGATIVE_INFINITY,
        acked: false,
      };
      this.peers.set(id, tx);
    }
    return tx;
  }

  setUp(id: string, epoch: number, up: boolean): void {
    const tx = this.peer(id, epoch);
    if (tx.up === up) return;
    tx.up = up;
    this.upCount += up ? 1 : -1;
    tx.rtoAt = undefined;
    tx.rto = this.opts.cfg.retransmitMs;
    tx.timeouts = 0;
    if (!up) this.release();
  }

  /**
   * Drops a peer that is down for good (pruned, see admission.ts); true if
   * it was known. A down peer holds nothing back, so nothing is released.
   */
  forget(id: string): boolean {
    const tx = this.peers.get(id);
    if (tx === undefined) return false;
    if (tx.up) this.setUp(id, tx.epoch, false);
    this.wanted.delete(id);
    return this.peers.delete(id);
  }

  /** The peer took a new epoch by a rollover: it is the same incarnation, and everything owed to it stays owed. */
  rolled(id: string, epoch: number): void {
    const tx = this.peers.get(id);
    if (tx !== undefined) tx.epoch = epoch;
  }

  /** The peer restarted: what we owed its previous incarnation is void (it gets a bulk instead). */
  restart(id: string, epoch: number): void {
    const tx = this.peer(id, epoch);
    tx.epoch = epoch;
    tx.ackNext = this.opts.nextSeq();
    tx.acked = false;
    tx.rto = this.opts.cfg.retransmitMs;
    tx.rtoAt = undefined;
    tx.timeouts = 0;
    tx.overflowing = false;
    tx.bulkWanted = false;
    tx.bulk = undefined;
    this.wanted.delete(id);
    this.release();
  }

  /** A sequenced message was just put on the wire. */
  onSequenced(msg: WireMessage, now: number): void {
    if (msg.kind === 'bulk-start' || msg.kind === 'bulk-end') this.noteBulkSeq(msg);
    if ('seq' in msg) this.roomFor()?.push(msg.seq, msg, now);
  }

  /**
   * onSequenced() for an entry message given as its encoded bytes,
   * buf[start, end) (the sender's way: no message object is kept).
   */
  onSequencedBytes(seq: number, buf: Buffer, start: number, end: number, now: number): void {
    this.roomFor()?.pushBytes(seq, buf, start, end, now);
  }

  /** The resend queue with room for one more message (its front evicted when full); undefined without one. */
  private roomFor(): ResendQueue | undefined {
    const q = this.queue;
    if (q !== undefined && q.full) this.evictFront();
    return q;
  }

  /** How many more sequenced messages may go out now. */
  room(): number {
    const q = this.queue;
    if (q === undefined) return Number.POSITIVE_INFINITY;
    const front = this.front();
    const next = this.opts.nextSeq();
    let worst = -1;
    for (const tx of this.peers.values()) {
      if (!tx.up || tx.timeouts >= STALL_AFTER_TIMEOUTS || seqBefore(tx.ackNext, front)) continue;
      worst = Math.max(worst, seqDiff(tx.ackNext, next));
    }
    return worst < 0 ? Number.POSITIVE_INFINITY : q.capacity - worst;
  }

  /** A cumulative ack from peer id: it has everything up to `to`. Returns whether it made progress. */
  onAck(id: string, to: number, now: number): boolean {
    const tx = this.peers.get(id);
    if (tx === undefined || this.queue === undefined) return false;
    this.c.acksReceived++;
    const n = seqAdd(to, 1);
    if (seqAfter(n, this.opts.nextSeq())) {
      this.c.badRanges++;
      return false;
    }
    if (!seqAfter(n, tx.ackNext)) return false;
    tx.ackNext = n;
    tx.acked = true;
    tx.timeouts = 0;
    tx.overflowing = false;
    tx.rto = this.opts.cfg.retransmitMs;
    tx.rtoAt = seqBefore(n, this.opts.nextSeq()) ? now + tx.rto : undefined;
    this.release();
    return true;
  }

  /** Peer id misses [from, to]. */
  onNack(id: string, from: number, to: number, now: number): void {
    const tx = this.peers.get(id);
    const q = this.queue;
    if (tx === undefined || q === undefined) return;
    this.c.nacksReceived++;
    const next = this.opts.nextSeq();
    if (seqDiff(from, to) < 0 || !seqBefore(from, next)) {
      this.c.badRanges++;
      return;
    }
    let last = to;
    if (!seqBefore(last, next)) last = seqAdd(next, -1);
    if (tx.acked && seqBefore(last, tx.ackNext)) {
      this.c.staleNacks++;
      return;
    }
    // Whatever the peer acked since it sent this NACK (they may arrive out of order) it no longer needs.
    let first = from;
    if (tx.acked && seqBefore(first, tx.ackNext)) first = tx.ackNext;
    const front = this.front();
    if (seqBefore(first, front)) {
      // Part of it is gone from the queue: only a bulk can repair that.
      if (this.bulkCovers(tx)) {
        this.c.nacksCoveredByBulk++;
        const s = tx.bulk?.startSeq;
        if (s !== undefined && q.has(s)) this.resendRange(s, seqAfter(last, s) ? last : s, now);
        return;
      }
      this.opts.log.debug('nack for what is no longer queued', {
        peer: id,
        from: first,
        to: last,
        front,
        ackNext: tx.ackNext,
        bulk: tx.bulk ? { ...tx.bulk } : null,
      });
      this.wantBulk(id, 'gap');
      return;
    }
    this.resendRange(first, last, now);
  }

  /** Retransmission timers; called from the owner's tick. */
  tick(now: number): void {
    const q = this.queue;
    if (q === undefined) return;
    const next = this.opts.nextSeq();
    const front = this.front();
    const budget = this.opts.cfg.ackWindow;
    for (const tx of this.peers.values()) {
      const from = seqBefore(tx.ackNext, front) ? front : tx.ackNext;
      if (!tx.up || q.length === 0 || !seqBefore(from, next)) {
        tx.rtoAt = undefined;
        if (tx.up) tx.rto = this.opts.cfg.retransmitMs;
        continue;
      }
      if (tx.rtoAt === undefined) {
        tx.rtoAt = now + tx.rto;
        continue;
      }
      if (now < tx.rtoAt) continue;
      this.c.retransmitTimeouts++;
      tx.timeouts++;
      let s = from;
      for (let k = 0; k < budget && seqBefore(s, next); k++, s = seqAdd(s, 1)) this.resendOne(s, now);
      // The newest message as a probe: the peer then sees how far we are and NACKs or re-acks.
      if (seqBefore(s, next)) this.resendOne(seqAdd(next, -1), now);
      tx.rto = Math.min(tx.rto * 2, this.opts.cfg.retransmitMaxMs);
      tx.rtoAt = now + tx.rto;
      if (tx.timeouts === STALL_AFTER_TIMEOUTS) {
        this.opts.log.warn('peer does not ack: it no longer throttles the sender', { peer: tx.id });
      }
    }
  }

  /** Asks for a bulk to peer id; false when one already pending covers it. */
  wantBulk(id: string, reason: BulkReason): boolean {
    const tx = this.peers.get(id) ?? this.peer(id, 0);
    if (this.bulkCovers(tx, reason === 'request')) {
      this.c.bulksCoalesced++;
      return false;
    }
    tx.bulkWanted = true;
    this.wanted.add(id);
    if (reason === 'gap') this.c.resyncsForGap++;
    return true;
  }

  /**
   * Peers waiting for a bulk, in the order they asked. Given `now`, only
   * those whose last bulk was queued at least BULK_MIN_INTERVAL_MS ago: the
   * others wait (still wanted), so however many requests, restarts or gaps
   * a peer presents, it gets at most one bulk per interval.
   */
  wantedPeers(now?: number): string[] {
    if (now === undefined) return [...this.wanted];
    return [...this.wanted].filter((id) => now - (this.peers.get(id)?.bulkQueuedAt ?? 0) >= BULK_MIN_INTERVAL_MS);
  }

  /** A bulk for `target` ('' = everyone we know) went into the transmit queue at `now`. */
  bulkQueued(target: string, bulkId: number, now = Number.NEGATIVE_INFINITY): void {
    const covered = target === '' ? [...this.peers.values()] : [this.peers.get(target)];
    for (const tx of covered) {
      if (tx === undefined) continue;
      tx.bulkQueuedAt = now;
      tx.bulkWanted = false;
      this.wanted.delete(tx.id);
      tx.bulk = { id: bulkId, startSeq: undefined, endSeq: undefined };
    }
  }

  /**
   * Whether a bulk pending for tx will repair whatever it misses now. For a
   * resync request: a peer that acked past the bulk-start and still asks
   * did not get that bulk (it started listening after the bulk-start), so
   * the pending bulk does not count.
   */
  bulkCovers(tx: TxPeer, request = false): boolean {
    if (tx.bulkWanted) return true;
    const b = tx.bulk;
    if (b === undefined) return false;
    if (b.startSeq === undefined) return true;
    const q = this.queue;
    if (q === undefined) return b.endSeq === undefined;
    if (b.endSeq !== undefined && seqAfter(tx.ackNext, b.endSeq)) return false;
    if (request && seqAfter(tx.ackNext, b.startSeq)) return false;
    return q.has(b.startSeq);
  }

  /**
   * Drops from the queue what every up peer has acked. With no peer up the
   * queue keeps what it has (up to its capacity): a peer that comes back, or
   * one that starts listening right after us, can still NACK it.
   */
  release(): void {
    const q = this.queue;
    if (q === undefined || this.upCount === 0) return;
    const next = this.opts.nextSeq();
    const front = this.front();
    let target = next;
    for (const tx of this.peers.values()) {
      // An ack position that old is meaningless (and would confuse serial arithmetic).
      if (seqDiff(tx.ackNext, next) > MAX_ACK_LAG) tx.ackNext = front;
      // A peer behind the front holds nothing older than the front: that is gone for it already.
      if (tx.up && seqBefore(tx.ackNext, target) && !seqBefore(tx.ackNext, front)) target = tx.ackNext;
    }
    if (q.length > 0) q.releaseBefore(target);
  }

  info(id: string): TxInfo | undefined {
    const tx = this.peers.get(id);
    if (tx === undefined) return undefined;
    const front = this.front();
    const from = seqBefore(tx.ackNext, front) ? front : tx.ackNext;
    return {
      ackedThrough: seqAdd(tx.ackNext, -1),
      unacked: this.queue ? Math.max(0, seqDiff(from, this.opts.nextSeq())) : 0,
      rtoMs: tx.rto,
      stalled: tx.timeouts >= STALL_AFTER_TIMEOUTS,
      overflowing: tx.overflowing,
      bulkWanted: tx.bulkWanted,
      bulk: tx.bulk ? { ...tx.bulk } : null,
    };
  }

  private evictFront(): void {
    const q = this.queue!;
    const seq = q.front;
    for (const tx of this.peers.values()) {
      if (!tx.up || seqAfter(tx.ackNext, seq)) continue;
      if (!tx.overflowing) {
        tx.overflowing = true;
        this.c.resendOverflows++;
        this.opts.log.warn(
          'resend queue full: evicting messages a peer has not acked; it gets a bulk if it misses any',
          { peer: tx.id, capacity: q.capacity },
        );
      }
    }
    q.shift();
  }

  private noteBulkSeq(msg: Extract<WireMessage, { kind: 'bulk-start' | 'bulk-end' }>): void {
    for (const tx of this.peers.values()) {
      const b = tx.bulk;
      if (b === undefined || b.id !== msg.bulkId) continue;
      if (msg.kind === 'bulk-start') b.startSeq = msg.seq;
      else b.endSeq = msg.seq;
    }
  }

  private resendRange(from: number, to: number, now: number): void {
    const q = this.queue!;
    let s = seqBefore(from, q.front) ? q.front : from;
    const end = seqBefore(to, q.end) ? seqAdd(to, 1) : q.end;
    for (; seqBefore(s, end); s = seqAdd(s, 1)) this.resendOne(s, now);
  }

  private resendOne(seq: number, now: number): void {
    const q = this.queue!;
    const msg = q.get(seq);
    if (msg === undefined || now - q.lastSent(seq) < this.minResendGapMs) return;
    q.touch(seq, now);
    this.c.retransmits++;
    this.opts.resend(msg);
  }
}
