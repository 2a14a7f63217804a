// FtfwReceiver on its own (issue 18): the exact NACK and ack ranges it
// sends, NACK repetition and backoff, bulk-start/bulk-end handling, and the
// gap runs across whole 32-seq words of the receive window. Time is passed
// in; no real timer runs.
import { describe, expect, it } from 'vitest';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { NOTRACK_REMOVAL_BULKS, NOTRACK_TRACKED_SEQS, type ReliabilityConfig } from '../../src/sync/engine/reliability.js';
import {
  type BulkEnd,
  type BulkStart,
  type DataMessage,
  FtfwReceiver,
  newRxCounters,
  NotrackReceiver,
  notrackRemovalDepth,
  type RxSink,
} from '../../src/sync/engine/reliability-rx.js';
import { seqAdd } from '../../src/sync/engine/seq.js';
import { SeqWindow } from '../../src/sync/engine/seq-window.js';

const CFG: ReliabilityConfig = {
  ackWindow: 4,
  ackDelayMs: 10,
  nackRetryMs: 50,
  nackRetryMaxMs: 200,
  retransmitMs: 100,
  retransmitMaxMs: 300,
  resendQueueSize: 64,
  aliveIntervalMs: 1000,
  peerTimeoutMs: 3500,
  refreshIntervalMs: 60_000,
  startupSyncWaitMs: 2000,
};

function data(seq: number): DataMessage {
  const entry = { family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 17 } } as ConntrackEntry;
  return { kind: 'ct-update', seq, entry };
}
const bulkStart = (seq: number, bulkId = 1): BulkStart => ({ kind: 'bulk-start', seq, bulkId, peer: 'me' });
const bulkEnd = (seq: number, bulkId = 1): BulkEnd => ({ kind: 'bulk-end', seq, bulkId, peer: 'me', count: 0 });

type Call = [string, ...number[]];

function harness(windowSize = 256, cfg: Partial<ReliabilityConfig> = {}) {
  const calls: Call[] = [];
  const sink: RxSink = {
    apply: (_rx, m) => calls.push(['apply', m.seq]),
    beginBulk: (_rx, m) => calls.push(['begin', m.seq]),
    endBulk: (_rx, m) => calls.push(['end', m.seq]),
    endLossyBulk: () => calls.push(['lossy']),
    ack: (_rx, from, to) => calls.push(['ack', from, to]),
    nack: (_rx, from, to) => calls.push(['nack', from, to]),
  };
  const counters = newRxCounters();
  const rx = new FtfwReceiver('peer', 1, { ...CFG, ...cfg }, sink, counters, 0, windowSize);
  /** Data messages, one datagram each, at `now`. */
  const recv = (seqs: number[], now = 0): void => {
    for (const s of seqs) {
      rx.onSequenced(data(s), false, now);
      rx.afterDatagram(now);
    }
  };
  const take = (kind?: string): Call[] => {
    const out = calls.filter((c) => kind === undefined || c[0] === kind);
    calls.length = 0;
    return out;
  };
  return { rx, recv, take, counters };
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, k) => seqAdd(from, k));

describe('FtfwReceiver NACKs', () => {
  // Anchored by the first message; then `then` arrives. The NACKs sent at once.
  const cases: Array<{ name: string; first: number; then: number[]; nacks: Call[] }> = [
    { name: 'no gap', first: 100, then: [101, 102], nacks: [] },
    { name: 'one missing', first: 100, then: [102], nacks: [['nack', 101, 101]] },
    { name: 'three missing', first: 100, then: [104], nacks: [['nack', 101, 103]] },
    {
      name: 'two gaps',
      first: 100,
      then: [102, 105],
      nacks: [
        ['nack', 101, 101],
        ['nack', 103, 104],
      ],
    },
    { name: 'a gap filled late (no new NACK)', first: 100, then: [103, 101, 102], nacks: [['nack', 101, 102]] },
    { name: 'out of order inside a known gap', first: 100, then: [105, 103], nacks: [['nack', 101, 104]] },
    { name: 'across the 2^32 wrap', first: 0xffff_fffe, then: [1], nacks: [['nack', 0xffff_ffff, 0]] },
  ];
  it.each(cases)('$name', ({ first, then, nacks }) => {
    const h = harness();
    h.recv([first]);
    h.recv(then);
    expect(h.take('nack')).toEqual(nacks);
    expect(h.counters.gapsDetected).toBe(nacks.length);
  });

  it('an alive announcing unseen seqs NACKs the lost tail', () => {
    const h = harness();
    h.recv([100, 101, 102]);
    h.rx.onAlive(103, 0);
    expect(h.take('nack')).toEqual([]);
    h.rx.onAlive(106, 0);
    expect(h.take('nack')).toEqual([['nack', 103, 105]]);
    expect(h.rx.info()).toMatchObject({ expected: 103, known: 106, missing: true });
    // The same alive again reveals nothing new.
    h.rx.onAlive(106, 0);
    expect(h.take('nack')).toEqual([]);
  });

  it('the first alive or hello only anchors the window', () => {
    const h = harness();
    h.rx.onAlive(500, 0);
    expect(h.take('nack')).toEqual([]);
    expect(h.rx.info()).toMatchObject({ expected: 500, known: 500, missing: false });
    h.recv([500]);
    expect(h.take('nack')).toEqual([]);
    const g = harness();
    expect(g.rx.onHello(42, 0)).toBe(true);
    expect(g.rx.onHello(42, 0)).toBe(false);
    g.recv([43]);
    expect(g.take('nack')).toEqual([['nack', 42, 42]]);
  });

  it('repeats the open gaps every nackRetryMs while messages arrive, backing off to nackRetryMaxMs when none do', () => {
    const h = harness();
    h.recv([100, 103], 0); // NACK [101,102] at once; repeat due at 50
    h.take();
    const nacksAt = (now: number): Call[] => {
      h.rx.tick(now);
      return h.take('nack');
    };
    expect(nacksAt(49)).toEqual([]);
    expect(nacksAt(50)).toEqual([['nack', 101, 102]]);
    // Nothing arrived since: 100, then 200 (the cap), then 200.
    expect(nacksAt(149)).toEqual([]);
    expect(nacksAt(150)).toEqual([['nack', 101, 102]]);
    expect(nacksAt(349)).toEqual([]);
    expect(nacksAt(350)).toEqual([['nack', 101, 102]]);
    expect(nacksAt(550)).toEqual([['nack', 101, 102]]);
    // A message arrives: back to the nackRetryMs pace.
    h.recv([104], 600);
    expect(nacksAt(750)).toEqual([['nack', 101, 102]]);
    expect(nacksAt(799)).toEqual([]);
    expect(nacksAt(800)).toEqual([['nack', 101, 102]]);
    // The gap closes: no more NACKs.
    h.recv([101, 102], 810);
    expect(nacksAt(5000)).toEqual([]);
  });

  it('kick repeats a pending NACK at once', () => {
    const h = harness();
    h.recv([100, 103], 0);
    h.take();
    h.rx.kick(5);
    h.rx.tick(5);
    expect(h.take('nack')).toEqual([['nack', 101, 102]]);
  });

  it('lists gaps on either side of a whole 32-seq word that arrived while a gap was open', () => {
    // Window ring index = seq & (size - 1): seqs 32..63 fill word 1 exactly.
    const h = harness(256);
    h.recv([0]);
    h.recv(range(32, 32)); // NACK [1,31] at once
    h.recv([65]); // NACK [64,64] at once
    expect(h.take('nack')).toEqual([
      ['nack', 1, 31],
      ['nack', 64, 64],
    ]);
    h.rx.tick(50);
    expect(h.take('nack')).toEqual([
      ['nack', 1, 31],
      ['nack', 64, 64],
    ]);
  });
});

describe('SeqWindow.missingRuns with whole words', () => {
  // Window of 256 starting at `start`; `got` arrived. Runs listed with max 10.
  const cases: Array<{ name: string; start: number; got: number[]; runs: Array<[number, number]> }> = [
    { name: 'gap, full word, gap', start: 1, got: [...range(32, 32), 65], runs: [[1, 31], [64, 64]] },
    { name: 'gap, two full words, gap', start: 1, got: [...range(32, 64), 97], runs: [[1, 31], [96, 96]] },
    { name: 'gap ending just before a full word', start: 20, got: [...range(32, 32), 64], runs: [[20, 31]] },
    { name: 'full word after a gap of one', start: 31, got: range(32, 33), runs: [[31, 31]] },
    { name: 'gap running into a word one short of full', start: 1, got: [...range(32, 31), 64], runs: [[1, 31], [63, 63]] },
    { name: 'gap, full word, open tail', start: 1, got: [...range(32, 32), 70], runs: [[1, 31], [64, 69]] },
  ];
  it.each(cases)('$name', ({ start, got, runs }) => {
    const w = new SeqWindow(start, 256);
    for (const s of got) w.record(s);
    expect(w.missingRuns(10)).toEqual(runs);
  });

  it('stops at max runs, also when the last one reaches beyond the window', () => {
    const w = new SeqWindow(0, 64);
    w.record(2);
    w.record(4);
    w.record(200);
    expect(w.missingRuns(2)).toEqual([
      [0, 1],
      [3, 3],
    ]);
    expect(w.missingRuns(3)).toEqual([
      [0, 1],
      [3, 3],
      // 200 lies beyond the window: not tracked, so listed as missing up to known.
      [5, 200],
    ]);
  });
});

describe('FtfwReceiver acks', () => {
  it('acks ackDelayMs after anchoring, then every ackWindow in-order messages', () => {
    const h = harness();
    h.recv([100, 101], 0);
    expect(h.take('ack')).toEqual([]);
    h.rx.tick(9);
    expect(h.take('ack')).toEqual([]);
    h.rx.tick(10);
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
    h.recv([102, 103, 104], 20);
    expect(h.take('ack')).toEqual([]);
    h.recv([105], 20);
    expect(h.take('ack')).toEqual([['ack', 102, 105]]);
    // One more message: acked ackDelayMs after it arrived.
    h.recv([106], 30);
    h.rx.tick(39);
    expect(h.take('ack')).toEqual([]);
    h.rx.tick(40);
    expect(h.take('ack')).toEqual([['ack', 106, 106]]);
    h.rx.tick(1000);
    expect(h.take('ack')).toEqual([]);
  });

  it('acks only up to the first gap', () => {
    const h = harness();
    h.recv([100, 101, 103, 104, 105, 106], 0);
    h.rx.tick(10);
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
    h.recv([102], 20);
    expect(h.take('ack')).toEqual([['ack', 102, 106]]);
  });

  it('a duplicate triggers a re-ack, at most once per ackDelayMs', () => {
    const h = harness();
    h.recv([100, 101], 0);
    h.rx.tick(10);
    h.take();
    h.recv([100], 15); // 5 ms after the last ack: re-ack due at 20
    expect(h.take('ack')).toEqual([]);
    expect(h.counters.duplicates).toBe(1);
    h.rx.tick(19);
    expect(h.take('ack')).toEqual([]);
    h.rx.tick(20);
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
    h.recv([101], 30); // 10 ms after: at once
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
    expect(h.counters.duplicates).toBe(2);
  });

  it('does not apply duplicates or what came before the anchor', () => {
    const h = harness();
    h.recv([100, 102, 102, 99], 0);
    expect(h.take('apply')).toEqual([
      ['apply', 100],
      ['apply', 102],
    ]);
    expect(h.counters.duplicates).toBe(2);
  });

  it('applies (and counts) messages beyond the window', () => {
    const h = harness(64);
    h.recv([0, 64, 65], 0);
    expect(h.take('apply')).toEqual([
      ['apply', 0],
      ['apply', 64],
      ['apply', 65],
    ]);
    expect(h.counters.beyondWindow).toBe(1);
  });
});

describe('FtfwReceiver bulks', () => {
  it('a bulk-start for us closes every gap before it', () => {
    const h = harness();
    h.recv([100, 103], 0);
    h.take();
    h.rx.onSequenced(bulkStart(110), true, 5);
    expect(h.take('begin')).toEqual([['begin', 110]]);
    expect(h.counters.skippedByBulk).toBe(10 - 1); // 101..109 minus 103, which had arrived
    expect(h.rx.info()).toMatchObject({ expected: 111, missing: false, bulkInProgress: 1 });
    h.rx.tick(1000);
    expect(h.take('nack')).toEqual([]);
  });

  it('a bulk-start not for us is an ordinary message', () => {
    const h = harness();
    h.recv([100], 0);
    h.rx.onSequenced(bulkStart(102), false, 0);
    expect(h.take('nack')).toEqual([['nack', 101, 101]]);
    expect(h.rx.info().bulkInProgress).toBeNull();
  });

  it('holds a bulk-end until every seq before it arrived', () => {
    const h = harness();
    h.rx.onSequenced(bulkStart(100), true, 0);
    h.recv([101, 103], 0);
    h.rx.onSequenced(bulkEnd(104), true, 0);
    expect(h.take('end')).toEqual([]);
    expect(h.rx.synced).toBe(false);
    h.recv([102], 1);
    expect(h.take('end')).toEqual([['end', 104]]);
    expect(h.rx.info()).toMatchObject({ synced: true, wantBulk: false, bulkInProgress: null });
  });

  it('a bulk-end of another bulk is an orphan', () => {
    const h = harness();
    h.rx.onSequenced(bulkStart(100, 1), true, 0);
    h.rx.onSequenced(bulkEnd(101, 2), true, 0);
    expect(h.take('end')).toEqual([]);
    expect(h.counters.orphanBulkEnds).toBe(1);
    expect(h.rx.synced).toBe(false);
  });

  it('asks again at once for a bulk that began before it started listening', () => {
    const h = harness();
    h.recv([100], 0);
    expect(h.rx.resyncDue(0)).toBe(true); // the first request
    expect(h.rx.resyncDue(1)).toBe(false); // backing off
    h.rx.onSequenced(bulkStart(90), true, 2);
    expect(h.counters.missedBulks).toBe(1);
    expect(h.take('begin')).toEqual([]);
    h.rx.afterDatagram(2);
    expect(h.take('ack')).toEqual([['ack', 100, 100]]);
    expect(h.rx.resyncDue(2)).toBe(true);
  });

  it('repeats the resync request from aliveIntervalMs, doubling up to twice that', () => {
    const h = harness();
    const due: number[] = [];
    for (let t = 0; t <= 40_000; t += 500) if (h.rx.resyncDue(t)) due.push(t);
    expect(due).toEqual([0, 1000, ...Array.from({ length: 19 }, (_, i) => 3000 + 2000 * i)]);
    h.rx.wantResync(39_500);
    expect(h.rx.resyncDue(40_499)).toBe(false);
    expect(h.rx.resyncDue(40_500)).toBe(true);
  });
});

describe('FtfwReceiver edges that survived mutation testing', () => {
  it('asks for no resync while a bulk for it is in progress, and none once synced', () => {
    const h = harness();
    h.rx.onSequenced(bulkStart(100), true, 0);
    expect(h.rx.resyncDue(0)).toBe(false);
    h.rx.onSequenced(bulkEnd(101), true, 0);
    expect(h.rx.synced).toBe(true);
    expect(h.rx.resyncDue(10_000)).toBe(false);
    h.rx.kick(10_000);
    expect(h.rx.resyncDue(10_000)).toBe(false);
  });

  it('kick makes a pending resync request due at once and resets its backoff', () => {
    const h = harness();
    expect(h.rx.resyncDue(0)).toBe(true);
    expect(h.rx.resyncDue(999)).toBe(false);
    h.rx.kick(500);
    expect(h.rx.resyncDue(500)).toBe(true);
    expect(h.rx.resyncDue(1499)).toBe(false);
    expect(h.rx.resyncDue(1500)).toBe(true);
  });

  it('kick or ticks before anything arrived are harmless', () => {
    const h = harness();
    h.rx.kick(5);
    h.rx.tick(5);
    h.rx.tick(5000);
    h.rx.afterDatagram(5000);
    expect(h.take()).toEqual([]);
  });

  it('a message that does not move expected (beyond a gap) schedules no ack', () => {
    const h = harness();
    h.recv([100, 101], 0);
    h.rx.tick(10);
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
    h.recv([103], 20);
    h.rx.tick(1000);
    expect(h.take('ack')).toEqual([]);
  });

  it('a second gap keeps the NACK repetition already scheduled', () => {
    const h = harness();
    h.recv([100, 102], 0); // repeat due at 50
    h.recv([104], 40);
    h.take();
    h.rx.tick(50);
    expect(h.take('nack')).toEqual([
      ['nack', 101, 101],
      ['nack', 103, 103],
    ]);
  });

  it('a gap that closed and a new one get a fresh NACK schedule', () => {
    const h = harness();
    h.recv([100, 102], 0); // repeat due at 50
    h.recv([101], 10); // closed
    h.recv([104], 100); // NACKed at once; repeat due at 150
    h.take();
    h.rx.tick(120);
    expect(h.take('nack')).toEqual([]);
    h.rx.tick(150);
    expect(h.take('nack')).toEqual([['nack', 103, 103]]);
  });

  it('a hello after the first messages does not re-anchor', () => {
    const h = harness();
    h.recv([100, 101, 102]);
    expect(h.rx.onHello(50, 0)).toBe(true);
    expect(h.rx.info()).toMatchObject({ expected: 103, helloSeen: true });
  });

  it('a repeated bulk-start is a duplicate, and an old one after the bulk is no missed bulk', () => {
    const h = harness();
    h.recv([100]);
    h.rx.onSequenced(bulkStart(101), true, 0);
    h.rx.onSequenced(bulkStart(101), true, 0);
    expect(h.take('begin')).toEqual([['begin', 101]]);
    expect(h.counters.duplicates).toBe(1);
    h.rx.onSequenced(bulkEnd(102), true, 0);
    h.rx.onSequenced(bulkStart(90), true, 0);
    expect(h.counters.missedBulks).toBe(0);
    expect(h.counters.duplicates).toBe(2);
  });

  it('a bulk-start or bulk-end not for it is neither applied nor held', () => {
    const h = harness();
    h.recv([100]);
    h.rx.onSequenced(bulkStart(102), false, 0);
    h.rx.onSequenced(bulkEnd(103), false, 0);
    h.recv([101]);
    expect(h.take('apply')).toEqual([
      ['apply', 100],
      ['apply', 101],
    ]);
    expect(h.counters.orphanBulkEnds).toBe(0);
    expect(h.rx.info().expected).toBe(104);
  });

  it(`holds at most 64 bulk-ends behind a gap`, () => {
    const h = harness(256);
    h.recv([0]);
    for (let s = 2; s < 2 + 65; s++) h.rx.onSequenced(bulkEnd(s, s), true, 0);
    expect(h.counters.heldDropped).toBe(1);
    h.recv([1]);
    // None of them belongs to a bulk that started here: all orphans, and the receiver asks again.
    expect(h.counters.orphanBulkEnds).toBe(64);
    expect(h.counters.missedBulks).toBeGreaterThan(0);
  });

  it('a bulk-start from before anchoring while a bulk is in progress is a duplicate, not a missed bulk', () => {
    const h = harness();
    h.recv([100]);
    h.rx.onSequenced(bulkStart(101), true, 0);
    h.rx.onSequenced(bulkStart(90), true, 0);
    expect(h.counters).toMatchObject({ missedBulks: 0, duplicates: 1 });
    expect(h.rx.info().bulkInProgress).toBe(1);
  });

  it('a held bulk-end waits for every gap below it, not only the first', () => {
    const h = harness();
    h.rx.onSequenced(bulkStart(100), true, 0);
    h.recv([102]);
    h.rx.onSequenced(bulkEnd(104), true, 0);
    h.recv([101]);
    // 103 is still missing.
    expect(h.take('end')).toEqual([]);
    expect(h.rx.info()).toMatchObject({ expected: 103, bulkInProgress: 1 });
    h.recv([103]);
    expect(h.take('end')).toEqual([['end', 104]]);
    expect(h.counters.orphanBulkEnds).toBe(0);
  });

  it('a bulk-start drops the held bulk-ends it skips over and keeps those after it', () => {
    const h = harness();
    h.rx.onSequenced(bulkStart(100, 1), true, 0);
    h.rx.onSequenced(bulkEnd(102, 1), true, 0); // held: 101 missing
    h.rx.onSequenced(bulkEnd(115, 2), true, 0); // bulk 2's end, ahead of its start
    h.rx.onSequenced(bulkStart(110, 2), true, 0); // skips 101..109
    expect(h.take('end')).toEqual([]);
    h.recv(range(111, 4));
    expect(h.take('end')).toEqual([['end', 115]]);
    expect(h.counters.orphanBulkEnds).toBe(0);
    expect(h.rx.info()).toMatchObject({ synced: true, bulkInProgress: null });
  });

  it('acks what a bulk-start skipped over', () => {
    const h = harness();
    h.recv([100], 0);
    h.rx.tick(10);
    expect(h.take('ack')).toEqual([['ack', 100, 100]]);
    h.rx.onSequenced(bulkStart(200), true, 20);
    h.rx.afterDatagram(20);
    // 100 seqs at once: more than ackWindow, acked at the end of the datagram.
    expect(h.take('ack')).toEqual([['ack', 101, 200]]);
  });
});

describe('NotrackReceiver', () => {
  function notrack() {
    const calls: Array<[string, ...Array<number | undefined>]> = [];
    const sink: RxSink = {
      apply: (_rx, m) => calls.push(['apply', m.seq]),
      beginBulk: () => calls.push(['begin']),
      endBulk: () => calls.push(['end']),
      endLossyBulk: (_rx, m, removeBefore, missing) => calls.push(['lossy', m.seq, removeBefore, missing]),
      ack: () => calls.push(['ack']),
      nack: () => calls.push(['nack']),
    };
    const counters = newRxCounters();
    const rx = new NotrackReceiver('peer', 1, CFG, sink, counters, 0);
    const recv = (seqs: number[], now = 0) => {
      for (const s of seqs) rx.onSequenced(data(s), false, now);
    };
    return { rx, recv, calls, counters };
  }

  it('judges a complete bulk nackRetryMs after its end: it removes what it did not carry', () => {
    const h = notrack();
    h.rx.tick(0); // nothing pending: nothing to judge
    h.rx.onSequenced(bulkStart(10), true, 1000);
    h.recv([11, 12, 13], 1000);
    h.rx.onSequenced(bulkEnd(14), true, 1000);
    h.rx.tick(1049);
    expect(h.calls.filter((c) => c[0] === 'lossy')).toEqual([]);
    h.rx.tick(1050);
    expect(h.calls.filter((c) => c[0] !== 'apply')).toEqual([['lossy', 14, 10, 0]]);
    expect(h.calls.filter((c) => c[0] === 'apply').map((c) => c[1])).toEqual([11, 12, 13]);
    expect(h.rx.synced).toBe(true);
    expect(h.counters).toMatchObject({ incompleteBulks: 0, lostMessages: 0 });
    expect(h.rx.info()).toMatchObject({ expected: 15, synced: true, wantBulk: false, bulkInProgress: null });
  });

  it('counts stragglers that arrive before the judgement', () => {
    const h = notrack();
    h.rx.onSequenced(bulkStart(10), true, 0);
    h.recv([12]);
    h.rx.onSequenced(bulkEnd(14), true, 0);
    h.recv([13, 11], 20);
    h.rx.tick(50);
    expect(h.calls.filter((c) => c[0] === 'lossy')).toEqual([['lossy', 14, 10, 0]]);
    // Loss is counted as the gaps are seen (11 and 13); the bulk is still whole.
    expect(h.counters.lostMessages).toBe(2);
  });

  it('an incomplete bulk removes nothing until enough bulks combine', () => {
    const h = notrack();
    h.rx.onSequenced(bulkStart(10), true, 0);
    h.recv([11, 13]);
    h.rx.onSequenced(bulkEnd(14), true, 0);
    h.rx.tick(50);
    // 1 of 3 missing: depth notrackRemovalDepth(3, 1) = 6 bulks, only 1 seen.
    expect(h.calls.filter((c) => c[0] === 'lossy')).toEqual([['lossy', 14, undefined, 1]]);
    expect(h.counters).toMatchObject({ incompleteBulks: 1, lostMessages: 1 });
  });

  it('a new bulk-start settles the pending one first; bulk-ends of other bulks are orphans', () => {
    const h = notrack();
    h.rx.onSequenced(bulkEnd(9, 5), true, 0); // no bulk at all yet
    expect(h.counters.orphanBulkEnds).toBe(1);
    h.rx.tick(1000);
    expect(h.calls).toEqual([]);
    h.counters.orphanBulkEnds = 0;
    h.rx.onSequenced(bulkStart(10, 1), true, 0);
    h.rx.onSequenced(bulkEnd(11, 9), true, 0);
    expect(h.counters.orphanBulkEnds).toBe(1);
    h.rx.onSequenced(bulkEnd(12, 1), true, 0);
    h.rx.onSequenced(bulkStart(13, 2), true, 1);
    // Seq 11 (the orphan bulk-end) arrived, so bulk 1 is whole.
    expect(h.calls.filter((c) => c[0] === 'lossy')).toEqual([['lossy', 12, 10, 0]]);
    expect(h.rx.info().bulkInProgress).toBe(2);
    // The same bulk-start again, and bulks for others, change nothing.
    h.rx.onSequenced(bulkStart(13, 2), true, 1);
    h.rx.onSequenced(bulkStart(14, 3), false, 1);
    h.rx.onSequenced(bulkEnd(15, 3), false, 1);
    expect(h.rx.info().bulkInProgress).toBe(2);
    expect(h.counters.orphanBulkEnds).toBe(1);
  });

  it('counts messages lost between alives and sequenced messages', () => {
    const h = notrack();
    expect(h.rx.onHello(5, 0)).toBe(true);
    expect(h.rx.onHello(5, 0)).toBe(false);
    h.rx.onAlive(9, 0);
    expect(h.counters.lostMessages).toBe(4);
    h.rx.onAlive(8, 0);
    expect(h.counters.lostMessages).toBe(4);
    h.recv([12, 10]);
    expect(h.counters.lostMessages).toBe(7);
    expect(h.rx.info()).toMatchObject({ expected: 13, known: 13, missing: false });
  });

  it('the first alive or message anchors without counting a loss', () => {
    const a = notrack();
    a.rx.onAlive(100, 0);
    a.recv([100]);
    expect(a.counters.lostMessages).toBe(0);
    const b = notrack();
    b.recv([100, 101]);
    expect(b.counters.lostMessages).toBe(0);
    expect(b.rx.info().expected).toBe(102);
  });

  it('an incomplete bulk after many removes what the last NOTRACK_REMOVAL_BULKS bulks did not carry', () => {
    const h = notrack();
    let s = 0;
    const starts: number[] = [];
    // Ten whole bulks of one record each.
    for (let b = 1; b <= 10; b++, s += 3) {
      starts.push(s);
      h.rx.onSequenced(bulkStart(s, b), true, 0);
      h.recv([s + 1]);
      h.rx.onSequenced(bulkEnd(s + 2, b), true, 0);
    }
    // Then one of ten records with five lost: depth notrackRemovalDepth(10, 5) = 8, the most there is.
    starts.push(s);
    h.rx.onSequenced(bulkStart(s, 11), true, 0);
    h.recv([s + 1, s + 3, s + 5, s + 7, s + 9]);
    h.rx.onSequenced(bulkEnd(s + 11, 11), true, 0);
    h.rx.tick(1000);
    expect(notrackRemovalDepth(10, 5)).toBe(NOTRACK_REMOVAL_BULKS);
    const lossy = h.calls.filter((c) => c[0] === 'lossy');
    expect(lossy.at(-1)).toEqual(['lossy', s + 11, starts[starts.length - NOTRACK_REMOVAL_BULKS], 5]);
  });

  it('tells a bulk whole or holed across 32-seq words of its tracking ring', () => {
    const h = notrack();
    h.rx.onSequenced(bulkStart(100), true, 0);
    h.recv(range(101, 99).filter((s) => s !== 150));
    h.rx.onSequenced(bulkEnd(200), true, 0);
    h.rx.tick(50);
    expect(h.calls.filter((c) => c[0] === 'lossy')).toEqual([['lossy', 200, undefined, 1]]);
    const g = notrack();
    g.rx.onSequenced(bulkStart(100), true, 0);
    g.recv(range(101, 99));
    g.rx.onSequenced(bulkEnd(200), true, 0);
    g.rx.tick(50);
    expect(g.calls.filter((c) => c[0] === 'lossy')).toEqual([['lossy', 200, 100, 0]]);
  });
});

describe('FtfwReceiver: the survivors of the 2026-12-07 run', () => {
  it('continueIn() changes the epoch and nothing else; info() before anything arrived', () => {
    const h = harness();
    expect(h.rx.info()).toEqual({
      epoch: 1,
      expected: null,
      known: null,
      missing: false,
      helloSeen: false,
      synced: false,
      bulkInProgress: null,
      wantBulk: true,
    });
    h.recv([100, 102]);
    h.rx.continueIn(7);
    expect(h.rx.epoch).toBe(7);
    expect(h.rx.info()).toEqual({
      epoch: 7,
      expected: 101,
      known: 103,
      missing: true,
      helloSeen: false,
      synced: false,
      bulkInProgress: null,
      wantBulk: true,
    });
  });

  it('a kick with no gap open leaves the next gap its full nackRetryMs', () => {
    const h = harness();
    h.recv([100], 0);
    h.rx.kick(5);
    h.recv([103], 10);
    expect(h.take('nack')).toEqual([['nack', 101, 102]]);
    h.rx.tick(20);
    h.rx.tick(59);
    expect(h.take('nack')).toEqual([]);
    h.rx.tick(60);
    expect(h.take('nack')).toEqual([['nack', 101, 102]]);
  });

  it('with ackWindow 1 the very first message is acked at the end of its datagram', () => {
    const h = harness(256, { ackWindow: 1 });
    h.recv([100], 0);
    expect(h.take('ack')).toEqual([['ack', 100, 100]]);
    h.recv([101], 1);
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
  });

  it('a later message does not put off an ack already due', () => {
    const h = harness();
    h.recv([100, 101], 0);
    h.rx.tick(10);
    expect(h.take('ack')).toEqual([['ack', 101, 101]]);
    h.recv([102], 20); // due at 30
    h.recv([103], 25);
    h.rx.tick(29);
    expect(h.take('ack')).toEqual([]);
    h.rx.tick(30);
    expect(h.take('ack')).toEqual([['ack', 102, 103]]);
  });

  it('two held bulk-ends of the bulk in progress released by one fill: the first in seq order ends it', () => {
    const h = harness();
    h.rx.onSequenced(bulkStart(100, 1), true, 0);
    h.recv([102]);
    h.rx.onSequenced(bulkEnd(105, 1), true, 0);
    h.rx.onSequenced(bulkEnd(103, 1), true, 0);
    h.recv([104]);
    expect(h.take('end')).toEqual([]);
    h.recv([101]);
    expect(h.take('end')).toEqual([['end', 103]]);
    expect(h.counters).toMatchObject({ orphanBulkEnds: 1, missedBulks: 0 });
    expect(h.rx.info()).toMatchObject({ expected: 106, synced: true, bulkInProgress: null });
  });

  it('a held orphan bulk-end is no missed bulk while a bulk is in progress, nor once synced', () => {
    const during = harness();
    during.rx.onSequenced(bulkStart(100, 1), true, 0);
    during.rx.onSequenced(bulkEnd(102, 2), true, 0); // held: 101 missing
    during.recv([101]);
    expect(during.counters).toMatchObject({ orphanBulkEnds: 1, missedBulks: 0 });
    expect(during.rx.info()).toMatchObject({ bulkInProgress: 1, wantBulk: true });
    const after = harness();
    after.rx.onSequenced(bulkStart(100, 1), true, 0);
    after.rx.onSequenced(bulkEnd(101, 1), true, 0);
    after.rx.onSequenced(bulkEnd(103, 5), true, 0); // held: 102 missing
    after.recv([102]);
    expect(after.counters).toMatchObject({ orphanBulkEnds: 1, missedBulks: 0 });
    expect(after.rx.info()).toMatchObject({ synced: true, wantBulk: false });
    expect(after.rx.resyncDue(100_000)).toBe(false);
  });

  it('after a resync is asked for, a resent bulk-start from after the anchor is a duplicate, not a missed bulk', () => {
    const h = harness();
    h.recv([100]);
    h.rx.onSequenced(bulkStart(101), true, 0);
    h.rx.onSequenced(bulkEnd(102), true, 0);
    h.rx.wantResync(0);
    h.rx.onSequenced(bulkStart(101), true, 1);
    expect(h.counters).toMatchObject({ duplicates: 1, missedBulks: 0 });
    expect(h.rx.resyncDue(999)).toBe(false);
    expect(h.rx.resyncDue(1000)).toBe(true);
  });

  it.each([
    { name: 'at 100', anchor: 100 },
    { name: 'at 2^30 + 5', anchor: 0x4000_0005 },
    { name: 'just before the 2^32 wrap', anchor: 0xffff_fff0 },
  ])('a bulk-start from just before the anchor ($name) is a missed bulk', ({ anchor }) => {
    const h = harness();
    h.recv([anchor, seqAdd(anchor, 1)]);
    h.rx.onSequenced(bulkStart(seqAdd(anchor, -1)), true, 0);
    expect(h.counters).toMatchObject({ missedBulks: 1, duplicates: 0 });
    h.rx.onSequenced(bulkStart(seqAdd(anchor, 1)), true, 0);
    expect(h.counters).toMatchObject({ missedBulks: 1, duplicates: 1 });
  });

  it('a stream that ran 2^31 seqs past its anchor still tells a resent bulk-start from a missed one', () => {
    const h = harness();
    h.recv([1000]);
    // Two bulks jump expected 2^30 + 2^29 and then 2^30 + 2^29 further on.
    const s1 = seqAdd(1000, 0x6000_0000);
    const s2 = seqAdd(s1, 0x6000_0000);
    h.rx.onSequenced(bulkStart(s1, 1), true, 0);
    h.rx.onSequenced(bulkEnd(seqAdd(s1, 1), 1), true, 0);
    h.rx.wantResync(0);
    // Bulk 1's start again, 2 seqs behind expected.
    h.rx.onSequenced(bulkStart(s1, 1), true, 0);
    expect(h.counters).toMatchObject({ duplicates: 1, missedBulks: 0 });
    h.rx.onSequenced(bulkStart(s2, 2), true, 0);
    h.rx.onSequenced(bulkEnd(seqAdd(s2, 1), 2), true, 0);
    expect(h.take('end')).toEqual([
      ['end', seqAdd(s1, 1)],
      ['end', seqAdd(s2, 1)],
    ]);
    h.rx.wantResync(0);
    // Bulk 2's start again: 2 seqs behind expected, 2^31 + 2^30 after the first anchor.
    h.rx.onSequenced(bulkStart(s2, 2), true, 1);
    expect(h.counters).toMatchObject({ duplicates: 2, missedBulks: 0 });
    // One from 2^30 + 1 seqs behind expected, past the anchor's reach: taken as from before it.
    h.rx.onSequenced(bulkStart(seqAdd(s2, -0x3fff_ffff), 3), true, 2);
    expect(h.counters).toMatchObject({ duplicates: 2, missedBulks: 1 });
  });

  it('a bulk-start just under 2^31 seqs ahead is a jump, not a bulk from before the anchor', () => {
    const h = harness();
    h.recv(range(1000, 101)); // expected 1101
    const s = seqAdd(1101, 0x7fff_fff0);
    h.rx.onSequenced(bulkStart(s), true, 0);
    expect(h.take('begin')).toEqual([['begin', s]]);
    expect(h.counters).toMatchObject({ skippedByBulk: 0x7fff_fff0, missedBulks: 0, duplicates: 0 });
    expect(h.rx.info()).toMatchObject({ expected: seqAdd(s, 1), bulkInProgress: 1 });
  });
});

describe('NotrackReceiver: the survivors of the 2026-12-07 run', () => {
  const N = NOTRACK_TRACKED_SEQS;
  function notrack() {
    const lossy: Array<[number, number | undefined, number]> = [];
    const applied: number[] = [];
    const sink: RxSink = {
      apply: (_rx, m) => applied.push(m.seq),
      beginBulk: () => {},
      endBulk: () => {},
      endLossyBulk: (_rx, m, removeBefore, missing) => lossy.push([m.seq, removeBefore, missing]),
      ack: () => {},
      nack: () => {},
    };
    const counters = newRxCounters();
    const rx = new NotrackReceiver('peer', 1, CFG, sink, counters, 0);
    const recv = (seqs: number[], now = 0) => {
      for (const s of seqs) rx.onSequenced(data(s), false, now);
    };
    const bulk = (start: number, id: number, carried: number[], end: number, now = 0) => {
      rx.onSequenced(bulkStart(start, id), true, now);
      recv(carried, now);
      rx.onSequenced(bulkEnd(end, id), true, now);
    };
    return { rx, recv, bulk, lossy, applied, counters };
  }

  it('the first alive anchors: what follows it and never came is counted lost', () => {
    const h = notrack();
    h.rx.onAlive(100, 0);
    expect(h.rx.info()).toMatchObject({ expected: 100, known: 100 });
    h.recv([103]);
    expect(h.counters.lostMessages).toBe(3);
  });

  it('the bulk-start of the bulk in progress again neither judges its pending end early nor counts twice', () => {
    const h = notrack();
    h.bulk(0, 1, [1, 2, 3], 4);
    h.rx.onSequenced(bulkStart(0, 1), true, 10);
    expect(h.lossy).toEqual([]);
    h.rx.tick(50);
    expect(h.lossy).toEqual([[4, 0, 0]]);
    // Bulk 2, with 1 of 10 lost: depth 3 of which only 2 bulks are known, so nothing is removed.
    h.bulk(5, 2, [6, 7, 8, 9, 10, 12, 13, 14, 15], 16, 100);
    h.rx.onSequenced(bulkStart(5, 2), true, 100);
    h.rx.tick(150);
    expect(notrackRemovalDepth(10, 1)).toBe(3);
    expect(h.lossy).toEqual([
      [4, 0, 0],
      [16, undefined, 1],
    ]);
  });

  it('a third bulk at depth 3 removes what none of the three carried', () => {
    const h = notrack();
    h.bulk(0, 1, [1, 2, 3], 4);
    h.rx.tick(50);
    h.bulk(5, 2, [6, 7, 8, 9, 10, 12, 13, 14, 15], 16, 100);
    h.rx.tick(150);
    h.bulk(17, 3, [18, 19, 20, 21, 22, 24, 25, 26, 27], 28, 200);
    h.rx.tick(250);
    expect(h.lossy).toEqual([
      [4, 0, 0],
      [16, undefined, 1],
      [28, 0, 1],
    ]);
  });

  it('a bulk the ring no longer tracks counts as wholly missing', () => {
    const h = notrack();
    h.bulk(100, 1, range(101, 10), 111);
    // Before it is judged, the stream jumps so far that 101 and 102 left the ring.
    h.recv([seqAdd(102, N)]);
    h.rx.tick(50);
    expect(h.lossy).toEqual([[111, undefined, 10]]);
    expect(h.counters.incompleteBulks).toBe(1);
  });

  it('seqs from the ring\'s previous lap do not count for the bulk now', () => {
    const h = notrack();
    h.recv(range(0, 11)); // bits 0..10
    // One lap on: only N + 1 of the bulk's ten arrives.
    h.bulk(N, 1, [N + 1], N + 11);
    h.rx.tick(50);
    expect(h.lossy).toEqual([[N + 11, undefined, 9]]);
    expect(h.counters.lostMessages).toBe(N - 11 + 9);
  });

  it('a straggler more than the ring behind is applied but not counted for the bulk', () => {
    const h = notrack();
    h.bulk(100, 1, [101, 102, 103, 104, 106, 107, 108, 109, 110], 111);
    // Seq 105 - N shares 105's ring slot.
    h.recv([seqAdd(105, -N)]);
    h.rx.tick(50);
    expect(h.applied.at(-1)).toBe(seqAdd(105, -N));
    expect(h.lossy).toEqual([[111, undefined, 1]]);
  });

  it('a straggler exactly the ring behind still counts, and a bulk starting exactly the ring back is tracked', () => {
    const h = notrack();
    h.bulk(100, 1, range(102, 9), 111); // 101 missing
    h.recv([100 + N]); // next is 101 + N: 101 is exactly N behind it
    h.recv([101]);
    h.rx.tick(50);
    expect(h.lossy).toEqual([[111, 100, 0]]);
  });
});
