// The Transmitter on its own (issue 18): exact ack and NACK ranges, the
// resend queue's bounds and flow control, NACKs below the queue front, the
// retransmission timer and bulk bookkeeping. Time is a number the tests pass
// in; no real timer runs.
import { describe, expect, it } from 'vitest';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import type { ReliabilityConfig } from '../../src/sync/engine/reliability.js';
import { newTxCounters, Transmitter } from '../../src/sync/engine/reliability-tx.js';
import { seqAdd } from '../../src/sync/engine/seq.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { captureLogger } from './doubles.js';

const CFG: ReliabilityConfig = {
  ackWindow: 2,
  ackDelayMs: 10,
  nackRetryMs: 40,
  nackRetryMaxMs: 400,
  retransmitMs: 100,
  retransmitMaxMs: 300,
  resendQueueSize: 8,
  aliveIntervalMs: 1000,
  peerTimeoutMs: 3500,
  refreshIntervalMs: 60_000,
  startupSyncWaitMs: 2000,
};
/** min(nackRetryMs, retransmitMs) / 2: a message is resent at most this often. */
const GAP = 20;

function data(seq: number): WireMessage {
  const entry = { family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 17 } } as ConntrackEntry;
  return { kind: 'ct-update', seq, entry };
}

function harness(firstSeq = 100, cfg: Partial<ReliabilityConfig> = {}) {
  let next = firstSeq;
  const resent: number[] = [];
  const counters = newTxCounters();
  const { log, lines } = captureLogger();
  const tx = new Transmitter({
    acknowledged: true,
    cfg: { ...CFG, ...cfg },
    firstSeq,
    nextSeq: () => next,
    resend: (m) => resent.push((m as { seq: number }).seq),
    log,
    counters,
  });
  /** Puts n data messages on the wire at `now`, as the Sender does (seq taken, then onSequenced). */
  const send = (n: number, now = 0): void => {
    for (let k = 0; k < n; k++) {
      const seq = next;
      next = seqAdd(next, 1);
      tx.onSequenced(data(seq), now);
    }
  };
  const sendMsg = (m: (seq: number) => WireMessage, now = 0): number => {
    const seq = next;
    next = seqAdd(next, 1);
    tx.onSequenced(m(seq), now);
    return seq;
  };
  /** What was resent since the last call. */
  const takeResent = (): number[] => resent.splice(0);
  return { tx, send, sendMsg, takeResent, counters, lines, next: () => next };
}

describe('Transmitter flow control: room()', () => {
  it('is exactly the resend queue capacity for an up peer that has acked everything', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    expect(h.tx.room()).toBe(8);
    h.send(3);
    expect(h.tx.room()).toBe(5);
    h.tx.onAck('b', 101, 0);
    expect(h.tx.room()).toBe(7);
  });

  it('lets a burst of exactly room() messages go out without evicting anything the peer holds', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(h.tx.room());
    expect(h.tx.room()).toBe(0);
    expect(h.tx.queue!.length).toBe(8);
    expect(h.counters.resendOverflows).toBe(0);
    expect(h.tx.info('b')!.overflowing).toBe(false);
    // One more than room() evicts a message the peer still holds.
    h.send(1);
    expect(h.counters.resendOverflows).toBe(1);
    expect(h.tx.info('b')!.overflowing).toBe(true);
    expect(h.tx.queue!.front).toBe(101);
    expect(h.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    // Further evictions of the same overflow are counted once.
    h.send(1);
    expect(h.counters.resendOverflows).toBe(1);
  });

  it.each([
    { name: 'no peer known', setup: () => {} },
    { name: 'the only peer is down', setup: (t: Transmitter) => t.setUp('b', 1, false) },
    {
      name: 'the only peer went down again',
      setup: (t: Transmitter) => {
        t.setUp('b', 1, true);
        t.setUp('b', 1, false);
      },
    },
  ])('is unbounded when $name', ({ setup }) => {
    const h = harness();
    setup(h.tx);
    h.send(3);
    expect(h.tx.room()).toBe(Number.POSITIVE_INFINITY);
  });

  it('follows the slowest up peer', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.send(6);
    h.tx.onAck('b', 105, 0);
    h.tx.onAck('c', 101, 0);
    expect(h.tx.room()).toBe(8 - 4);
    expect(h.tx.queue!.front).toBe(102);
  });

  it('ignores a peer whose position fell behind the queue front', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.send(10); // c never acks: 100 and 101 were evicted while c held them
    h.tx.onAck('b', 109, 0);
    // c holds nothing the queue can still serve: everything is released, and c does not throttle.
    expect(h.tx.queue!.length).toBe(0);
    expect(h.tx.front()).toBe(110);
    expect(h.tx.room()).toBe(8);
  });

  it('ignores a stalled peer (two retransmission timeouts without progress)', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(4, 0);
    h.tx.tick(0);
    h.tx.tick(100);
    expect(h.tx.info('b')!.stalled).toBe(false);
    expect(h.tx.room()).toBe(4);
    h.tx.tick(300);
    expect(h.tx.info('b')!.stalled).toBe(true);
    expect(h.tx.room()).toBe(Number.POSITIVE_INFINITY);
  });

  it('is unbounded without a resend queue (notrack)', () => {
    const tx = new Transmitter({
      acknowledged: false,
      cfg: CFG,
      firstSeq: 0,
      nextSeq: () => 5,
      resend: () => {},
      log: captureLogger().log,
      counters: newTxCounters(),
    });
    tx.setUp('b', 1, true);
    expect(tx.queue).toBeUndefined();
    expect(tx.room()).toBe(Number.POSITIVE_INFINITY);
    expect(tx.onAck('b', 4, 0)).toBe(false);
    tx.onNack('b', 0, 4, 0);
    tx.tick(1000);
    expect(tx.info('b')!.unacked).toBe(0);
  });
});

describe('Transmitter acks', () => {
  // 100..105 sent; the peer is up and has acked nothing.
  const cases: Array<{
    name: string;
    acks: number[];
    progress: boolean;
    ackedThrough: number;
    front: number;
    queued: number;
    badRanges: number;
  }> = [
    { name: 'everything', acks: [105], progress: true, ackedThrough: 105, front: 106, queued: 0, badRanges: 0 },
    { name: 'a prefix', acks: [102], progress: true, ackedThrough: 102, front: 103, queued: 3, badRanges: 0 },
    { name: 'the first message only', acks: [100], progress: true, ackedThrough: 100, front: 101, queued: 5, badRanges: 0 },
    { name: 'nothing new (position 99)', acks: [99], progress: false, ackedThrough: 99, front: 100, queued: 6, badRanges: 0 },
    { name: 'a repeated ack', acks: [102, 102], progress: false, ackedThrough: 102, front: 103, queued: 3, badRanges: 0 },
    { name: 'an older ack after a newer one', acks: [103, 101], progress: false, ackedThrough: 103, front: 104, queued: 2, badRanges: 0 },
    { name: 'one past what we sent', acks: [106], progress: false, ackedThrough: 99, front: 100, queued: 6, badRanges: 1 },
    { name: 'far past what we sent', acks: [5000], progress: false, ackedThrough: 99, front: 100, queued: 6, badRanges: 1 },
  ];
  it.each(cases)('ack of $name', ({ acks, progress, ackedThrough, front, queued, badRanges }) => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(6);
    let last = false;
    for (const a of acks) last = h.tx.onAck('b', a, 0);
    expect(last).toBe(progress);
    expect(h.tx.info('b')!.ackedThrough).toBe(ackedThrough);
    expect(h.tx.front()).toBe(front);
    expect(h.tx.queue!.length).toBe(queued);
    expect(h.tx.info('b')!.unacked).toBe(105 - ackedThrough);
    expect(h.counters.badRanges).toBe(badRanges);
    expect(h.counters.acksReceived).toBe(acks.length);
  });

  it('ignores acks from a peer it does not know', () => {
    const h = harness();
    h.send(2);
    expect(h.tx.onAck('x', 101, 0)).toBe(false);
    expect(h.counters.acksReceived).toBe(0);
    expect(h.tx.info('x')).toBeUndefined();
  });

  it('keeps the queue for the up peer that has not acked, and for nobody when none is up', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.send(4);
    h.tx.onAck('b', 103, 0);
    expect(h.tx.queue!.length).toBe(4);
    h.tx.setUp('c', 1, false);
    expect(h.tx.queue!.length).toBe(0);
    expect(h.tx.front()).toBe(104);
    // With no peer up, what is sent stays (a peer coming back can NACK it).
    h.tx.setUp('b', 1, false);
    h.send(3);
    expect(h.tx.queue!.length).toBe(3);
  });

  it('acks across the 2^32 wrap', () => {
    const h = harness(0xffff_fffe);
    h.tx.setUp('b', 1, true);
    h.send(4);
    expect(h.tx.onAck('b', 0, 0)).toBe(true);
    expect(h.tx.info('b')!.ackedThrough).toBe(0);
    expect(h.tx.front()).toBe(1);
    expect(h.tx.room()).toBe(7);
  });

  it('re-arms the retransmission timer on progress, and clears it when everything is acked', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(4, 0);
    h.tx.tick(0);
    h.tx.tick(100); // timeout: rto 200
    expect(h.tx.info('b')!.rtoMs).toBe(200);
    h.takeResent();
    h.tx.onAck('b', 101, 150);
    expect(h.tx.info('b')!.rtoMs).toBe(100);
    h.tx.tick(249);
    expect(h.takeResent()).toEqual([]);
    h.tx.tick(250);
    expect(h.takeResent()).toEqual([102, 103]);
    h.tx.onAck('b', 103, 260);
    h.tx.tick(10_000);
    expect(h.takeResent()).toEqual([]);
  });
});

describe('Transmitter NACKs', () => {
  // 100..105 sent (queue of 8); before the NACK the peer acked through `acked`.
  const cases: Array<{
    name: string;
    acked?: number;
    nack: [number, number];
    resent: number[];
    badRanges?: number;
    staleNacks?: number;
  }> = [
    { name: 'a range inside the queue', nack: [101, 103], resent: [101, 102, 103] },
    { name: 'one message', nack: [104, 104], resent: [104] },
    { name: 'the front', nack: [100, 100], resent: [100] },
    { name: 'the newest', nack: [105, 105], resent: [105] },
    { name: 'a range past what we sent (clipped)', nack: [103, 900], resent: [103, 104, 105] },
    { name: 'an inverted range', nack: [103, 101], resent: [], badRanges: 1 },
    { name: 'a range starting at the next seq', nack: [106, 107], resent: [], badRanges: 1 },
    { name: 'a range the peer acked since', acked: 102, nack: [100, 102], resent: [], staleNacks: 1 },
    { name: 'a range the peer partly acked since', acked: 101, nack: [100, 103], resent: [102, 103] },
  ];
  it.each(cases)('$name', ({ acked, nack, resent, badRanges = 0, staleNacks = 0 }) => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true); // c holds the queue, so b's ack releases nothing
    h.send(6, 0);
    if (acked !== undefined) h.tx.onAck('b', acked, 0);
    h.tx.onNack('b', nack[0], nack[1], 1000);
    expect(h.takeResent()).toEqual(resent);
    expect(h.counters.retransmits).toBe(resent.length);
    expect(h.counters.badRanges).toBe(badRanges);
    expect(h.counters.staleNacks).toBe(staleNacks);
    expect(h.counters.nacksReceived).toBe(1);
    expect(h.counters.resyncsForGap).toBe(0);
    expect(h.tx.wantedPeers()).toEqual([]);
  });

  it('resends a message at most once per min(nackRetryMs, retransmitMs) / 2', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(3, 0);
    h.tx.onNack('b', 100, 102, 1000);
    expect(h.takeResent()).toEqual([100, 101, 102]);
    h.tx.onNack('b', 100, 102, 1000 + GAP - 1);
    expect(h.takeResent()).toEqual([]);
    h.tx.onNack('b', 101, 101, 1000 + GAP);
    expect(h.takeResent()).toEqual([101]);
  });

  it('ignores NACKs from a peer it does not know', () => {
    const h = harness();
    h.send(3);
    h.tx.onNack('x', 100, 101, 1000);
    expect(h.takeResent()).toEqual([]);
    expect(h.counters.nacksReceived).toBe(0);
  });

  it('NACKs across the 2^32 wrap', () => {
    const h = harness(0xffff_fffd);
    h.tx.setUp('b', 1, true);
    h.send(6, 0);
    h.tx.onNack('b', 0xffff_ffff, 1, 1000);
    expect(h.takeResent()).toEqual([0xffff_ffff, 0, 1]);
  });

  describe('reaching below the queue front', () => {
    /** Queue of 8, 12 sent: 100..103 were evicted while b held them; front 104. */
    function evicted() {
      const h = harness();
      h.tx.setUp('b', 1, true);
      h.send(12, 0);
      expect(h.tx.front()).toBe(104);
      return h;
    }

    it.each([
      { nack: [102, 106] as [number, number] },
      { nack: [103, 103] as [number, number] },
      { nack: [100, 111] as [number, number] },
    ])('resends nothing and schedules a bulk for [$nack]', ({ nack }) => {
      const h = evicted();
      h.tx.onNack('b', nack[0], nack[1], 1000);
      expect(h.takeResent()).toEqual([]);
      expect(h.counters.resyncsForGap).toBe(1);
      expect(h.tx.wantedPeers()).toEqual(['b']);
      expect(h.tx.info('b')!.bulkWanted).toBe(true);
    });

    it('a NACK starting exactly at the front is served from the queue', () => {
      const h = evicted();
      h.tx.onNack('b', 104, 106, 1000);
      expect(h.takeResent()).toEqual([104, 105, 106]);
      expect(h.counters.resyncsForGap).toBe(0);
      expect(h.tx.wantedPeers()).toEqual([]);
    });

    it('a second such NACK is covered by the bulk already wanted', () => {
      const h = evicted();
      h.tx.onNack('b', 102, 106, 1000);
      h.tx.onNack('b', 101, 106, 1100);
      expect(h.counters.resyncsForGap).toBe(1);
      expect(h.counters.nacksCoveredByBulk).toBe(1);
      expect(h.takeResent()).toEqual([]);
    });

    it('once the bulk is on the wire, the NACK resends from its bulk-start (still queued)', () => {
      const h = evicted();
      h.tx.onNack('b', 102, 106, 1000);
      h.tx.bulkQueued('b', 7);
      expect(h.tx.wantedPeers()).toEqual([]);
      const start = h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 7, peer: 'b' }), 0);
      expect(start).toBe(112);
      expect(h.tx.info('b')!.bulk).toEqual({ id: 7, startSeq: 112, endSeq: undefined });
      expect(h.tx.front()).toBe(105);
      h.tx.onNack('b', 103, 114, 1000);
      expect(h.takeResent()).toEqual([112]);
      expect(h.counters.nacksCoveredByBulk).toBe(1);
      expect(h.counters.resyncsForGap).toBe(1);
    });
  });
});

describe('Transmitter retransmission timer', () => {
  it('resends the oldest ackWindow messages and the newest as a probe, doubling the timeout up to its cap', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(5, 0);
    h.tx.tick(0); // arms: due at 100
    h.tx.tick(99);
    expect(h.takeResent()).toEqual([]);
    h.tx.tick(100);
    expect(h.takeResent()).toEqual([100, 101, 104]);
    expect(h.counters.retransmitTimeouts).toBe(1);
    expect(h.tx.info('b')!.rtoMs).toBe(200);
    h.tx.tick(299);
    expect(h.takeResent()).toEqual([]);
    h.tx.tick(300);
    expect(h.takeResent()).toEqual([100, 101, 104]);
    expect(h.tx.info('b')!.rtoMs).toBe(300);
    expect(h.tx.info('b')!.stalled).toBe(true);
    expect(h.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'peer does not ack: it no longer throttles the sender',
    ]);
    h.tx.tick(600);
    expect(h.tx.info('b')!.rtoMs).toBe(300);
    expect(h.counters.retransmitTimeouts).toBe(3);
    // The warning is logged once, when the peer becomes stalled.
    expect(h.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    // Progress ends the stall and resets the timeout.
    h.tx.onAck('b', 100, 700);
    expect(h.tx.info('b')).toMatchObject({ stalled: false, rtoMs: 100, ackedThrough: 100, unacked: 4 });
  });

  it('sends no separate probe when the unacked messages fit in ackWindow', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(2, 0);
    h.tx.tick(0);
    h.tx.tick(100);
    expect(h.takeResent()).toEqual([100, 101]);
  });

  it('starts from what the peer acked', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.send(6, 0);
    h.tx.onAck('b', 102, 0);
    h.tx.onAck('c', 105, 0);
    h.tx.tick(0);
    h.tx.tick(100);
    expect(h.takeResent()).toEqual([103, 104, 105]);
  });

  it('does nothing for a peer that is down, or has nothing unacked', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, false);
    h.tx.tick(0);
    h.tx.tick(1000);
    expect(h.takeResent()).toEqual([]);
    h.send(2, 1000);
    h.tx.setUp('b', 1, false);
    h.tx.tick(1000);
    h.tx.tick(5000);
    expect(h.takeResent()).toEqual([]);
    expect(h.counters.retransmitTimeouts).toBe(0);
  });

  it('a peer that comes back up starts with a fresh timeout', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(2, 0);
    h.tx.tick(0);
    h.tx.tick(100);
    h.tx.tick(300);
    expect(h.tx.info('b')!.stalled).toBe(true);
    h.tx.setUp('b', 1, false);
    h.tx.setUp('b', 1, true);
    expect(h.tx.info('b')).toMatchObject({ stalled: false, rtoMs: 100 });
  });
});

describe('Transmitter bulks and restarts', () => {
  it('coalesces bulk wishes while one is wanted or pending', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    expect(h.tx.wantBulk('b', 'request')).toBe(true);
    expect(h.tx.wantBulk('b', 'hello')).toBe(false);
    expect(h.counters.bulksCoalesced).toBe(1);
    h.tx.bulkQueued('b', 3);
    // Queued, start not yet on the wire: it covers whatever the peer misses.
    expect(h.tx.wantBulk('b', 'gap')).toBe(false);
    expect(h.counters.resyncsForGap).toBe(0);
    const start = h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 3, peer: 'b' }));
    h.send(2);
    const end = h.sendMsg((seq) => ({ kind: 'bulk-end', seq, bulkId: 3, peer: 'b', count: 2 }));
    expect(h.tx.info('b')!.bulk).toEqual({ id: 3, startSeq: start, endSeq: end });
    expect(h.tx.wantBulk('b', 'request')).toBe(false);
    // A resync request from a peer that acked past the bulk-start: it did not get that bulk.
    h.tx.onAck('b', start, 0);
    expect(h.tx.wantBulk('b', 'request')).toBe(true);
    expect(h.tx.wantedPeers()).toEqual(['b']);
  });

  it('a bulk the peer acked past its end no longer covers a gap', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true); // holds the queue, bulk-start included
    h.tx.bulkQueued('b', 3);
    h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 3, peer: 'b' }));
    const end = h.sendMsg((seq) => ({ kind: 'bulk-end', seq, bulkId: 3, peer: 'b', count: 0 }));
    expect(h.tx.bulkCovers(h.tx.get('b')!)).toBe(true);
    h.tx.onAck('b', end, 0);
    expect(h.tx.bulkCovers(h.tx.get('b')!)).toBe(false);
    expect(h.tx.wantBulk('b', 'gap')).toBe(true);
    expect(h.counters.resyncsForGap).toBe(1);
  });

  it('a bulk for everyone covers every known peer', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.tx.wantBulk('b', 'request');
    h.tx.wantBulk('c', 'hello');
    expect(h.tx.wantedPeers()).toEqual(['b', 'c']);
    h.tx.bulkQueued('', 9);
    expect(h.tx.wantedPeers()).toEqual([]);
    expect(h.tx.info('b')!.bulk).toEqual({ id: 9, startSeq: undefined, endSeq: undefined });
    expect(h.tx.info('c')!.bulk).toEqual({ id: 9, startSeq: undefined, endSeq: undefined });
  });

  it('a restarted peer owes nothing from before and holds nothing of the queue', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(5, 0);
    h.tx.wantBulk('b', 'request');
    h.tx.restart('b', 2);
    expect(h.tx.get('b')!.epoch).toBe(2);
    expect(h.tx.info('b')).toMatchObject({ ackedThrough: 104, unacked: 0, bulkWanted: false, bulk: null });
    expect(h.tx.wantedPeers()).toEqual([]);
    expect(h.tx.queue!.length).toBe(0);
    expect(h.tx.room()).toBe(8);
  });
});

describe('Transmitter bookkeeping that survived mutation testing', () => {
  it('counts a peer up once however often it is reported up, so the last one down keeps the queue', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('b', 1, true);
    h.tx.setUp('b', 1, false);
    h.send(3);
    h.tx.release();
    h.tx.restart('b', 2);
    expect(h.tx.queue!.length).toBe(3);
  });

  it('with two peers down again, nothing is released', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.tx.setUp('c', 1, false);
    h.tx.setUp('b', 1, false);
    h.send(3);
    h.tx.release();
    expect(h.tx.queue!.length).toBe(3);
  });

  it('an ack, or a restart, ends an overflow', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.send(9);
    expect(h.tx.info('b')!.overflowing).toBe(true);
    expect(h.tx.info('c')!.overflowing).toBe(true);
    h.tx.onAck('b', 108, 0);
    expect(h.tx.info('b')!.overflowing).toBe(false);
    h.tx.restart('c', 2);
    expect(h.tx.info('c')!.overflowing).toBe(false);
    // Eviction of a message every up peer has acked is no overflow.
    h.tx.setUp('c', 2, false);
    h.send(8);
    h.tx.onAck('b', 116, 0);
    h.send(9);
    expect(h.counters.resendOverflows).toBe(3);
  });

  it('logs a NACK below the front with what it asked for and what is left', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(12, 0);
    h.tx.onNack('b', 102, 106, 1000);
    expect(h.lines.filter((l) => l.level === 'debug')).toEqual([
      {
        level: 'debug',
        msg: 'nack for what is no longer queued',
        ctx: { peer: 'b', from: 102, to: 106, front: 104, ackNext: 100, bulk: null },
      },
    ]);
    expect(h.lines.filter((l) => l.level === 'warn')).toEqual([
      {
        level: 'warn',
        msg: 'resend queue full: evicting messages a peer has not acked; it gets a bulk if it misses any',
        ctx: { peer: 'b', capacity: 8 },
      },
    ]);
  });

  it('names the stalled peer in its warning', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(1, 0);
    h.tx.tick(0);
    h.tx.tick(100);
    h.tx.tick(300);
    expect(h.lines.filter((l) => l.level === 'warn').map((l) => l.ctx)).toEqual([{ peer: 'b' }]);
  });

  it('resets the timeout of an up peer that has nothing unacked left (its messages were evicted)', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.send(10, 0);
    h.tx.tick(0);
    h.tx.tick(100);
    expect(h.tx.info('c')!.rtoMs).toBe(200);
    h.tx.onAck('b', 109, 150);
    h.tx.tick(160);
    expect(h.tx.info('c')).toMatchObject({ rtoMs: 100, unacked: 0 });
  });

  it('wants a bulk for a peer it has not heard of yet', () => {
    const h = harness();
    expect(h.tx.wantBulk('z', 'hello')).toBe(true);
    expect(h.tx.wantedPeers()).toEqual(['z']);
    expect(h.tx.info('z')!.bulkWanted).toBe(true);
  });

  it('only a resync request from a peer past the bulk-start is not covered by that bulk', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true); // holds the queue, bulk-start included
    h.tx.bulkQueued('b', 3);
    const start = h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 3, peer: 'b' }));
    h.send(2);
    h.tx.onAck('b', start, 0);
    expect(h.tx.bulkCovers(h.tx.get('b')!)).toBe(true);
    expect(h.tx.wantBulk('b', 'gap')).toBe(false);
    expect(h.tx.wantBulk('b', 'hello')).toBe(false);
    expect(h.tx.wantBulk('b', 'restart')).toBe(false);
    expect(h.counters.bulksCoalesced).toBe(3);
    expect(h.tx.wantBulk('b', 'request')).toBe(true);
  });

  it('a bulk for one peer leaves the others waiting, and notes only its own seqs', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.tx.wantBulk('b', 'request');
    h.tx.wantBulk('c', 'request');
    h.tx.bulkQueued('b', 1);
    h.tx.bulkQueued('x', 2); // a peer it does not know: nothing happens
    expect(h.tx.wantedPeers()).toEqual(['c']);
    expect(h.tx.info('c')).toMatchObject({ bulkWanted: true, bulk: null });
    h.tx.bulkQueued('c', 2);
    h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 2, peer: 'c' }));
    expect(h.tx.info('b')!.bulk).toEqual({ id: 1, startSeq: undefined, endSeq: undefined });
    expect(h.tx.info('c')!.bulk).toEqual({ id: 2, startSeq: 100, endSeq: undefined });
  });

  it.each([
    { lag: 0x4000_0000, ackedThrough: 0xffff_ffff },
    { lag: 0x4000_0001, ackedThrough: 0x4000_0000 },
  ])('forgets an ack position more than 2^30 behind (lag $lag)', ({ lag, ackedThrough }) => {
    let next = 0;
    const tx = new Transmitter({
      acknowledged: true,
      cfg: CFG,
      firstSeq: 0,
      nextSeq: () => next,
      resend: () => {},
      log: captureLogger().log,
      counters: newTxCounters(),
    });
    tx.setUp('b', 1, true);
    tx.setUp('c', 1, true);
    // The sender moved on by `lag` seqs (as after a long time with c silent); its queue is empty.
    next = lag;
    tx.release();
    expect(tx.info('c')!.ackedThrough).toBe(ackedThrough);
  });

  it('a notrack transmitter counts no acks or NACKs and queues nothing', () => {
    const counters = newTxCounters();
    let next = 5;
    const tx = new Transmitter({
      acknowledged: false,
      cfg: CFG,
      firstSeq: 0,
      nextSeq: () => next,
      resend: () => {
        throw new Error('notrack resends nothing');
      },
      log: captureLogger().log,
      counters,
    });
    tx.setUp('b', 1, true);
    tx.onSequenced(data(5), 0);
    next = 6;
    expect(tx.onAck('b', 5, 0)).toBe(false);
    tx.onNack('b', 5, 5, 0);
    tx.tick(0);
    tx.tick(10_000);
    expect(counters).toEqual(newTxCounters());
    expect(tx.front()).toBe(6);
    // Bulk bookkeeping still works: a bulk covers the peer until its end is on the wire.
    tx.bulkQueued('b', 1);
    tx.onSequenced({ kind: 'bulk-start', seq: 6, bulkId: 1, peer: 'b' }, 0);
    next = 7;
    expect(tx.bulkCovers(tx.get('b')!)).toBe(true);
    tx.onSequenced({ kind: 'bulk-end', seq: 7, bulkId: 1, peer: 'b', count: 0 }, 0);
    next = 8;
    expect(tx.bulkCovers(tx.get('b')!)).toBe(false);
    tx.setUp('b', 1, false);
    tx.restart('b', 2);
    expect(tx.info('b')!.unacked).toBe(0);
  });
});

describe('Transmitter: the survivors of the 2026-12-07 run', () => {
  it('forget() drops a peer, counts it down if it was up, and takes back its bulk wish', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.wantBulk('b', 'request');
    h.send(3);
    expect(h.tx.forget('b')).toBe(true);
    expect(h.tx.get('b')).toBeUndefined();
    expect(h.tx.wantedPeers()).toEqual([]);
    // No peer is up any more: the queue keeps what it has, also through a release.
    h.tx.release();
    expect(h.tx.queue!.length).toBe(3);
    expect(h.tx.forget('b')).toBe(false);
    expect(h.tx.forget('x')).toBe(false);
    expect(h.tx.get('x')).toBeUndefined();
  });

  it('forget() of a peer that is down leaves the count of up peers alone', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.tx.setUp('c', 1, false);
    expect(h.tx.forget('c')).toBe(true);
    h.send(3);
    h.tx.onAck('b', 101, 0);
    // b is still counted up: its ack releases what it acked.
    expect(h.tx.queue!.length).toBe(1);
  });

  it('rolled() changes only the epoch of a known peer, and makes none', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(2);
    h.tx.wantBulk('b', 'request');
    h.tx.rolled('b', 7);
    expect(h.tx.get('b')!.epoch).toBe(7);
    expect(h.tx.info('b')).toMatchObject({ ackedThrough: 99, unacked: 2, bulkWanted: true });
    h.tx.rolled('x', 7);
    expect(h.tx.get('x')).toBeUndefined();
  });

  it('queues a message given as its bytes; a notrack transmitter keeps nothing and does not throw', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    const buf = Buffer.from([9, 1, 2, 3, 4, 9]);
    h.tx.onSequencedBytes(100, buf, 1, 5, 0);
    expect(h.tx.queue!.length).toBe(1);
    expect([...h.tx.queue!.bytesOf(100)!]).toEqual([1, 2, 3, 4]);
    const tx = new Transmitter({
      acknowledged: false,
      cfg: CFG,
      firstSeq: 0,
      nextSeq: () => 0,
      resend: () => {},
      log: captureLogger().log,
      counters: newTxCounters(),
    });
    tx.onSequencedBytes(0, buf, 1, 5, 0);
    expect(tx.queue).toBeUndefined();
  });

  it('a notrack transmitter whose up peer restarts or goes down with another up releases nothing and does not throw', () => {
    const tx = new Transmitter({
      acknowledged: false,
      cfg: CFG,
      firstSeq: 0,
      nextSeq: () => 5,
      resend: () => {},
      log: captureLogger().log,
      counters: newTxCounters(),
    });
    tx.setUp('b', 1, true);
    tx.setUp('c', 1, true);
    tx.restart('b', 2);
    tx.setUp('c', 1, false);
    tx.release();
    expect(tx.info('b')).toMatchObject({ ackedThrough: 4, unacked: 0 });
  });

  it('a NACK below where a peer was first placed, before it ever acked, is a gap, not a stale NACK', () => {
    const h = harness();
    h.tx.setUp('c', 1, true);
    h.send(5); // 100..104, held by c
    h.tx.setUp('b', 1, true); // b placed at the front, 100
    h.tx.restart('b', 2); // b placed at the next seq, 105, not acked yet
    h.send(2); // 105, 106
    h.tx.onNack('b', 102, 105, 100);
    // b may have started tracking anywhere: it gets all it asks for.
    expect(h.takeResent()).toEqual([102, 103, 104, 105]);
    expect(h.counters.staleNacks).toBe(0);
    h.tx.onNack('b', 100, 101, 200);
    expect(h.takeResent()).toEqual([100, 101]);
    expect(h.counters.staleNacks).toBe(0);
  });

  it('a peer first heard of after the queue moved NACKs below its place: a bulk, not a stale NACK', () => {
    const h = harness();
    h.tx.setUp('c', 1, true);
    h.send(12); // 100..111, queue 104..111
    h.tx.setUp('b', 1, true); // b placed at the front, 104
    h.tx.onNack('b', 102, 103, 0);
    expect(h.counters).toMatchObject({ staleNacks: 0, resyncsForGap: 1 });
    expect(h.tx.wantedPeers()).toEqual(['b']);
  });

  it('a NACK reaching past the next seq, from a peer that acked everything, is stale', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.send(5); // 100..104
    h.tx.onAck('b', 104, 0);
    h.tx.onNack('b', 103, 106, 0);
    expect(h.counters).toMatchObject({ staleNacks: 1, badRanges: 0, retransmits: 0 });
  });

  it('logs the NACK clipped to the last seq sent, and the bulk that does not cover it', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.bulkQueued('b', 1);
    h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 1, peer: 'b' })); // 100
    h.send(9); // 101..109: 100 and 101 evicted
    h.tx.onNack('b', 100, 120, 0);
    expect(h.lines.filter((l) => l.level === 'debug')).toEqual([
      {
        level: 'debug',
        msg: 'nack for what is no longer queued',
        ctx: { peer: 'b', from: 100, to: 109, front: 102, ackNext: 100, bulk: { id: 1, startSeq: 100, endSeq: undefined } },
      },
    ]);
    expect(h.counters.resyncsForGap).toBe(1);
  });

  it('a NACK covered by a wanted bulk resends nothing when the old bulk-start is gone', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.bulkQueued('b', 1);
    h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 1, peer: 'b' })); // 100
    h.send(9); // 101..109: 100 and 101 evicted
    expect(h.tx.wantBulk('b', 'gap')).toBe(true);
    h.tx.onNack('b', 100, 103, 100);
    expect(h.counters.nacksCoveredByBulk).toBe(1);
    expect(h.takeResent()).toEqual([]);
  });

  it('a peer that comes up releases nothing by itself: what it acked while down goes at the next release', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('b', 1, false);
    h.send(5); // 100..104, kept: nobody is up
    h.tx.onAck('b', 104, 0);
    expect(h.tx.queue!.length).toBe(5);
    h.tx.setUp('b', 1, true);
    expect(h.tx.queue!.length).toBe(5);
    h.tx.release();
    expect(h.tx.queue!.length).toBe(0);
  });

  it('wantedPeers(now) holds back a peer whose last bulk went out less than BULK_MIN_INTERVAL_MS ago', () => {
    const h = harness();
    h.tx.setUp('b', 1, true);
    h.tx.setUp('c', 1, true);
    h.tx.bulkQueued('b', 1, 1500);
    h.sendMsg((seq) => ({ kind: 'bulk-start', seq, bulkId: 1, peer: 'b' }));
    h.sendMsg((seq) => ({ kind: 'bulk-end', seq, bulkId: 1, peer: 'b', count: 0 }));
    h.tx.onAck('b', 101, 1600);
    expect(h.tx.wantBulk('b', 'request')).toBe(true);
    expect(h.tx.wantBulk('c', 'request')).toBe(true);
    expect(h.tx.wantedPeers()).toEqual(['b', 'c']);
    expect(h.tx.wantedPeers(2499)).toEqual(['c']);
    expect(h.tx.wantedPeers(2500)).toEqual(['b', 'c']);
  });
});
