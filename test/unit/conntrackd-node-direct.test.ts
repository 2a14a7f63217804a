// ConntrackdNode (src/sync/engine/conntrackd-node.ts) on its own, one step
// at a time (issue 18): a single node on a fake clock, fed hand-made
// conntrackd messages, with every message it sends decoded and every call
// into its replica sink recorded. Exact seqs, flags, ranges and counters;
// conntrackd-node.test.ts has the pair over a lossy link.
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.js';
import { EntryRecord, recordBuf, writeEntryRecord } from '../../src/kernel/ct-record.js';
import { type ConntrackEntry, entryKey, type ExpectEntry, expectKey } from '../../src/kernel/entry.js';
import type { Logger } from '../../src/log.js';
import { ConntrackdNode } from '../../src/sync/engine/conntrackd-node.js';
import type { ReplicaOp, ReplicaSink } from '../../src/sync/engine/replica-sink.js';
import type { SyncMode, SyncNodeDeps } from '../../src/sync/engine/sync-node.js';
import { CTD_F, type CtdMessage, CtdWriter, decodeCtdDatagram } from '../../src/sync/wire/conntrackd-codec.js';
import { ftpExpectationOf } from './wire-helpers.js';

const START = 1_700_000_000_000;
/** Our first seq: the clock's unix seconds at the first message, as conntrackd's. */
const S0 = START / 1000;
const PEER = '10.99.0.9';
const T = { ...DEFAULTS.sync.reliability, ackWindow: 3, ackDelayMs: 100, resendQueueSize: 1000 };
const { RESYNC, NACK, ACK, ALIVE, HELLO, HELLO_BACK } = CTD_F;
/** For datagrams built outside a harness. */
const w0 = new CtdWriter();

class RecordingSink implements ReplicaSink {
  readonly calls: string[] = [];
  applyRemote(origin: string, epoch: number, seq: number, op: ReplicaOp): void {
    this.calls.push(`ct ${op} ${origin} ${epoch} ${seq}`);
  }
  applyRemoteExpect(origin: string, epoch: number, seq: number, op: ReplicaOp): void {
    this.calls.push(`exp ${op} ${origin} ${epoch} ${seq}`);
  }
  beginBulk(origin: string): void {
    this.calls.push(`begin ${origin}`);
  }
  endBulk(origin: string): number {
    this.calls.push(`end ${origin}`);
    return 0;
  }
  continueEpoch(origin: string): void {
    this.calls.push(`continue ${origin}`);
  }
  release(origin: string): void {
    this.calls.push(`release ${origin}`);
  }
}

function entry(i: number): ConntrackEntry {
  const src = `10.99.${(i >> 8) & 0xff}.${i & 0xff}`;
  return {
    family: 2,
    orig: { src, dst: '10.99.200.1', proto: 6, sport: 10000 + i, dport: 80 },
    reply: { src: '10.99.200.1', dst: src, proto: 6, sport: 80, dport: 10000 + i },
    status: 0x18e,
    timeout: 431999,
    mark: i,
    protoinfo: { tcp: { state: 3 } },
  };
}

function expectation(i: number): ExpectEntry {
  return ftpExpectationOf(entry(i).orig, 30000 + i);
}

/** One line per message: what a conntrackd peer would read. */
function show(m: CtdMessage): string {
  const f = (flags: number): string =>
    (
      [
        [RESYNC, 'RESYNC'],
        [NACK, 'NACK'],
        [ACK, 'ACK'],
        [ALIVE, 'ALIVE'],
        [HELLO, 'HELLO'],
        [HELLO_BACK, 'HELLO_BACK'],
      ] as const
    )
      .filter(([bit]) => (flags & bit) !== 0)
      .map(([, name]) => name)
      .join('|');
  const d = m.seq - S0;
  if (m.kind === 'ctl') return `${d} ctl ${f(m.flags)} ${m.from}..${m.to}`;
  return `${d} ${m.kind}${m.type} ${m.kind === 'ct' ? m.entry.mark : m.entry.tuple.dport} ${f(m.flags)}`.trimEnd();
}

function harness(mode: SyncMode = 'ftfw', over: Partial<SyncNodeDeps> = {}) {
  const clock = { now: START };
  const datagrams: Buffer[] = [];
  const sink = new RecordingSink();
  const table = new Map<string, ConntrackEntry | EntryRecord>();
  const exps = new Map<string, ExpectEntry>();
  const logLines: string[] = [];
  const logCtx: Array<Record<string, unknown>> = [];
  /** The context of each log line reading `line`. */
  const ctxOf = (line: string): Array<Record<string, unknown>> => logCtx.filter((_c, i) => logLines[i] === line);
  const later: Array<() => void> = [];
  const at =
    (level: string) =>
    (msg: string, ctx: Record<string, unknown> = {}): void => {
      logLines.push(`${level} ${msg}`);
      logCtx.push(ctx);
    };
  const log = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => log,
  } as unknown as Logger;
  const node = new ConntrackdNode({
    nodeId: 'x',
    epoch: 1,
    mtu: 1472,
    mode,
    external: sink,
    lookup: (k) => table.get(String(k)),
    localKeys: () => table.keys(),
    lookupExpect: (k) => exps.get(k),
    localExpectKeys: () => exps.keys(),
    send: (b) => datagrams.push(b),
    now: () => clock.now,
    schedule: (fn) => later.push(fn),
    log,
    timers: T,
    ...over,
  });
  /** Runs the flushes the node asked for (bounded: each one may ask for another). */
  const run = (): void => {
    for (let k = 0; k < 100 && later.length > 0; k++) for (const fn of later.splice(0)) fn();
  };
  /** Messages sent since the last call, one line each. */
  const drain = (): string[] => {
    run();
    const out: string[] = [];
    for (const b of datagrams.splice(0)) {
      const r = decodeCtdDatagram(b);
      expect(r.errors).toEqual([]);
      out.push(...r.messages.map(show));
    }
    return out;
  };
  const w = new CtdWriter();
  /** The peer's messages, in one datagram. */
  const peer = (...msgs: Array<(w: CtdWriter) => void>): Buffer => {
    w.reset();
    for (const m of msgs) m(w);
    return Buffer.from(w.bytes());
  };
  const recv = (...msgs: Array<(w: CtdWriter) => void>) => node.receive(peer(...msgs), { address: PEER });
  const counters = () => node.stats().counters;
  const add = (i: number): string => {
    const e = entry(i);
    const k = entryKey(e);
    table.set(k, e);
    return k;
  };
  const addExp = (i: number): string => {
    const x = expectation(i);
    const k = expectKey(x);
    exps.set(k, x);
    return k;
  };
  return { node, clock, sink, table, exps, datagrams, logLines, ctxOf, later, run, drain, recv, counters, add, addExp };
}

const ct =
  (type: 0 | 1 | 2, seq: number, i: number, flags = 0) =>
  (w: CtdWriter): void => {
    w.entry(type, flags, seq, entry(i));
  };
const exp =
  (type: 3 | 4 | 5, seq: number, i: number, flags = 0) =>
  (w: CtdWriter): void => {
    w.expect(type, flags, seq, expectation(i));
  };
const ctl =
  (flags: number, seq: number, from = 0, to = 0) =>
  (w: CtdWriter): void => {
    w.control(flags, seq, from, to);
  };

/** A started ftfw node whose start-up traffic is drained and whose first HELLO_BACK came. */
function settled(mode: SyncMode = 'ftfw', over: Partial<SyncNodeDeps> = {}) {
  const h = harness(mode, over);
  h.node.start();
  h.node.tick();
  h.drain();
  return h;
}

describe('ConntrackdNode start', () => {
  it('asks for the peer\u2019s table with RESYNC (HELLO set) and pushes its own at the first tick', () => {
    const h = harness();
    h.add(1);
    h.node.start();
    expect(h.drain()).toEqual(['0 ctl RESYNC|HELLO 0..0']);
    expect(h.counters()).toMatchObject({ resyncRequestsSent: 1, datagramsSent: 1, bulksSent: 0 });
    expect(h.node.stats()).toMatchObject({
      protocol: 'conntrackd',
      started: true,
      mode: 'ftfw',
      epoch: 1,
      nextSeq: S0 + 1,
      resendQueue: { length: 1, capacity: T.resendQueueSize, front: S0 },
    });
    h.node.tick();
    expect(h.drain()).toEqual(['1 ct1 1 HELLO']);
    expect(h.counters()).toMatchObject({ bulksSent: 1, bulkEntriesSent: 1 });
    expect(h.ctxOf('info resync requested')).toEqual([{ peer: '*' }]);
    expect(
      h.ctxOf('info conntrackd protocol: no authentication, anything that reaches the sync port can write entries'),
    ).toEqual([{ mode: 'ftfw' }]);
    // A second start changes nothing.
    h.node.start();
    h.node.tick();
    expect(h.drain()).toEqual([]);
    expect(h.counters().resyncRequestsSent).toBe(1);
  });

  it('waits for the local table before its first push', () => {
    let ready = false;
    const h = harness('ftfw', { localReady: () => ready });
    h.add(1);
    h.node.start();
    h.node.tick();
    expect(h.drain()).toEqual(['0 ctl RESYNC|HELLO 0..0']);
    ready = true;
    h.node.tick();
    expect(h.drain()).toEqual(['1 ct1 1 HELLO']);
  });

  it('notrack sets no HELLO and keeps no resend queue', () => {
    const h = harness('notrack');
    h.node.start();
    expect(h.drain()).toEqual(['0 ctl RESYNC 0..0']);
    expect(h.node.stats().resendQueue).toEqual({ length: 0, capacity: 0, front: 0 });
  });

  it('before start nothing is sent, a tick does nothing, and nextSeq is 0', () => {
    const h = harness();
    h.node.localChange(h.add(1), 'new');
    h.clock.now += 10_000;
    h.node.tick();
    expect(h.drain()).toEqual([]);
    expect(h.node.stats()).toMatchObject({ started: false, nextSeq: 0, firstSyncDone: false });
    // What was queued goes at start, after the RESYNC.
    h.node.start();
    expect(h.drain()).toEqual(['10 ctl RESYNC|HELLO 0..0', '11 ct0 1 HELLO']);
  });

  it('after close: no start, no send, no receive', () => {
    const h = harness();
    h.node.close();
    h.node.start();
    h.node.localChange(h.add(1), 'new');
    h.node.localExpectChange(h.addExp(1), 'new');
    expect(h.node.stats().sender.queueLength).toBe(0);
    h.node.requestResync();
    expect(h.node.bulkSend()).toBe(0);
    h.node.tick();
    expect(h.recv(ct(0, 5, 1))).toEqual({ ok: false, live: false });
    expect(h.drain()).toEqual([]);
    expect(h.counters()).toMatchObject({ datagramsReceived: 0, resyncRequestsSent: 0, bulksSent: 0 });
    expect(h.node.stats().started).toBe(false);
  });

  it('closing a started node stops what it sends', () => {
    const h = settled();
    h.node.localChange(h.add(1), 'new');
    h.node.close();
    h.run();
    h.clock.now += 10 * T.aliveIntervalMs;
    h.node.tick();
    expect(h.drain()).toEqual([]);
  });
});

describe('ConntrackdNode local changes', () => {
  // [what happened to one key, what goes out]
  const cases: Array<[string, Array<'new' | 'update' | 'delete'>, string[]]> = [
    ['new', ['new'], ['1 ct0 1 HELLO']],
    ['update', ['update'], ['1 ct1 1 HELLO']],
    ['new then update: still a new', ['new', 'update'], ['1 ct0 1 HELLO']],
    ['update then new: a new', ['update', 'new'], ['1 ct0 1 HELLO']],
    ['new then delete: only the delete', ['new', 'delete'], ['1 ct2 1 HELLO']],
  ];
  it.each(cases)('%s', (_what, kinds, out) => {
    const h = settled();
    const k = h.add(1);
    for (const kind of kinds) h.node.localChange(k, kind, kind === 'delete' ? entry(1) : undefined);
    expect(h.drain()).toEqual(out);
  });

  it('a delete without the gone entry sends nothing; an entry gone before its flush counts as vanished', () => {
    const h = settled();
    const k = h.add(1);
    h.node.localChange(k, 'delete');
    expect(h.drain()).toEqual([]);
    h.node.localChange(k, 'new');
    h.table.delete(k);
    expect(h.drain()).toEqual([]);
    expect(h.node.stats().sender).toMatchObject({ vanished: 1, messagesSent: 1 });
  });

  it('a record of the table is sent as its entry', () => {
    const h = settled();
    const e = entry(7);
    const r = recordBuf(1);
    const x = writeEntryRecord(e, r, 0);
    if (x === false) throw new Error('not keyable');
    h.table.set('r', new EntryRecord(r.w, r.b, 0, x));
    h.node.localChange('r', 'new');
    expect(h.drain()).toEqual(['1 ct0 7 HELLO']);
  });

  it('expectations: a waiting new stays a new, a delete cancels a waiting new, a new cancels a waiting delete', () => {
    const h = settled();
    const k = h.addExp(1);
    h.node.localExpectChange(k, 'new');
    h.node.localExpectChange(k, 'update');
    expect(h.drain()).toEqual(['1 exp3 30001 HELLO']);
    h.node.localExpectChange(k, 'update');
    expect(h.drain()).toEqual(['2 exp4 30001 HELLO']);
    h.node.localExpectChange(k, 'new');
    h.node.localExpectChange(k, 'delete', expectation(1));
    expect(h.drain()).toEqual(['3 exp5 30001 HELLO']);
    h.node.localExpectChange(k, 'delete', expectation(1));
    h.node.localExpectChange(k, 'new');
    expect(h.drain()).toEqual(['4 exp3 30001 HELLO']);
    h.node.localExpectChange(k, 'delete');
    expect(h.drain()).toEqual([]);
    h.exps.delete(k);
    h.node.localExpectChange(k, 'new');
    expect(h.drain()).toEqual([]);
    expect(h.node.stats().sender.vanished).toBe(1);
  });

  it('order of a flush: control, deletes, entries, then expectation deletes and expectations', () => {
    const h = settled();
    const k1 = h.add(1);
    const k2 = h.add(2);
    const x1 = h.addExp(1);
    const x2 = h.addExp(2);
    h.node.localExpectChange(x1, 'new');
    h.node.localExpectChange(x2, 'delete', expectation(2));
    h.node.localChange(k1, 'new');
    h.node.localChange(k2, 'delete', entry(2));
    h.node.requestResync();
    expect(h.drain()).toEqual([
      '1 ctl RESYNC|HELLO 0..0',
      '2 ct2 2 HELLO',
      '3 ct0 1 HELLO',
      '4 exp5 30002 HELLO',
      '5 exp3 30001 HELLO',
    ]);
    expect(h.node.stats().resendQueue.length).toBe(1 + 5);
  });

  it('what cannot travel in conntrackd\u2019s format is counted and takes no seq', () => {
    const h = settled();
    const bad = { ...entry(1), helper: 'h'.repeat(200) };
    h.table.set('bad', bad);
    h.node.localChange('bad', 'new');
    h.node.localChange('bad2', 'delete', bad);
    const badX = { ...expectation(1), zone: 5 };
    h.exps.set('badx', badX);
    h.node.localExpectChange('badx', 'new');
    h.node.localExpectChange('badx2', 'delete', badX);
    h.node.localChange(h.add(2), 'new');
    expect(h.drain()).toEqual(['1 ct0 2 HELLO']);
    expect(h.node.stats().sender).toMatchObject({ unencodable: 4, messagesSent: 2 });
    expect(h.node.stats().resendQueue.length).toBe(2);
    // What the queue holds at that seq is the entry sent, not what failed after it.
    h.table.delete('bad');
    h.exps.delete('badx');
    h.recv(ctl(NACK, 10, S0 + 1, S0 + 1));
    expect(h.drain()).toEqual(['2 ct0 2 HELLO']);
  });

  it('sends at most sliceMessages messages per flush, the rest in the next', () => {
    const h = settled('ftfw', { sliceMessages: 2 });
    for (const i of [1, 2, 3]) h.node.localChange(h.add(i), 'new');
    h.later.splice(0)[0]!();
    expect(h.datagrams).toHaveLength(1);
    expect(h.node.stats().sender.queueLength).toBe(1);
    expect(h.later).toHaveLength(1);
    expect(h.drain()).toEqual(['1 ct0 1 HELLO', '2 ct0 2 HELLO', '3 ct0 3 HELLO']);
    // Expectations count against the same budget, after the entries.
    h.node.localChange(h.add(4), 'new');
    h.node.localExpectChange(h.addExp(1), 'new');
    h.node.localExpectChange(h.addExp(2), 'new');
    h.later.splice(0)[0]!();
    expect(h.node.stats().sender.queueLength).toBe(1);
    h.node.localChange(h.add(5), 'delete', entry(5));
    h.node.localExpectChange('gone', 'delete', expectation(3));
    h.node.localExpectChange('gone2', 'delete', expectation(4));
    h.later.splice(0)[0]!();
    expect(h.drain()).toEqual([
      '4 ct0 4 HELLO',
      '5 exp3 30001 HELLO',
      '6 ct2 5 HELLO',
      '7 exp5 30003 HELLO',
      '8 exp5 30004 HELLO',
      '9 exp3 30002 HELLO',
    ]);
  });

  it('packs messages into datagrams up to the MTU; one larger than the MTU goes alone', () => {
    const w = new CtdWriter();
    w.entry(0, 0, 0, entry(1));
    const size = w.length;
    const h = settled('ftfw', { mtu: 2 * size + 10 });
    for (const i of [1, 2, 3]) h.node.localChange(h.add(i), 'new');
    h.run();
    expect(h.datagrams.map((d) => d.length)).toEqual([2 * size, size]);
    expect(h.drain()).toEqual(['1 ct0 1 HELLO', '2 ct0 2 HELLO', '3 ct0 3 HELLO']);
    expect(h.counters().datagramsSent).toBe(1 + 2);
    const g = settled('ftfw', { mtu: size + 10 });
    const big: ConntrackEntry = {
      ...entry(4),
      labels: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
      helper: 'x'.repeat(15),
      seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
    };
    w.reset();
    w.entry(0, 0, 0, big);
    expect(w.length).toBeGreaterThan(size + 10);
    g.table.set('big', big);
    g.node.localChange(g.add(5), 'new');
    g.node.localChange('big', 'new');
    g.node.localChange(g.add(6), 'new');
    g.run();
    expect(g.datagrams.map((d) => d.length)).toEqual([size, w.length, size]);
    expect(g.drain()).toEqual(['1 ct0 5 HELLO', '2 ct0 4 HELLO', '3 ct0 6 HELLO']);
    expect(g.counters().datagramsSent).toBe(1 + 3);
  });

  it('bulkSend queues every entry and expectation as an update, returns the count, merges with what waits', () => {
    const h = settled();
    const k1 = h.add(1);
    h.add(2);
    h.addExp(1);
    const x2 = h.addExp(2);
    h.node.localChange(k1, 'new');
    h.node.localExpectChange(x2, 'new');
    expect(h.node.bulkSend()).toBe(4);
    expect(h.drain()).toEqual(['1 ct0 1 HELLO', '2 ct1 2 HELLO', '3 exp3 30002 HELLO', '4 exp4 30001 HELLO']);
    expect(h.counters()).toMatchObject({ bulksSent: 2, bulkEntriesSent: 4 });
  });
});

describe('ConntrackdNode receive', () => {
  it('applies each data type with its op, named by the peer\u2019s address and incarnation', () => {
    const h = settled();
    expect(h.recv(ct(0, 10, 1), ct(1, 11, 1), ct(2, 12, 1), exp(3, 13, 1), exp(4, 14, 1), exp(5, 15, 1))).toEqual({
      ok: true,
      live: true,
    });
    expect(h.sink.calls).toEqual([
      `ct new ${PEER} 1 10`,
      `ct update ${PEER} 1 11`,
      `ct delete ${PEER} 1 12`,
      `exp new ${PEER} 1 13`,
      `exp update ${PEER} 1 14`,
      `exp delete ${PEER} 1 15`,
    ]);
    expect(h.counters()).toMatchObject({ applied: 6, messagesReceived: 6, datagramsReceived: 1 });
    expect(h.node.stats().peers.map((p) => [p.id, p.state, p.epoch])).toEqual([[PEER, 'up', 1]]);
    expect(h.node.stats().admission).toMatchObject({ receivers: 1 });
    expect(h.logLines).toContain('info conntrackd peer');
  });

  it('an undecodable datagram is dropped and counted; with no address the peer is named conntrackd', () => {
    const h = settled();
    expect(h.node.receive(Buffer.from([0xff, 0xff, 0xff]), { address: PEER })).toEqual({ ok: false, live: false });
    expect(h.counters().datagramsReceived).toBe(1);
    expect(Object.values(h.counters().datagramsDropped)).toEqual([1]);
    expect(h.node.stats().peers).toEqual([]);
    w0.reset();
    w0.entry(0, 0, 3, entry(1));
    expect(h.node.receive(Buffer.from(w0.bytes()))).toEqual({ ok: true, live: true });
    expect(h.sink.calls).toEqual(['ct new conntrackd 1 3']);
    expect(h.node.stats().admission).toMatchObject({ receivers: 1 });
  });

  it('datagrams from another address are dropped: the protocol has one peer', () => {
    const h = settled();
    h.recv(ct(0, 10, 1));
    w0.reset();
    w0.entry(0, 0, 11, entry(2));
    expect(h.node.receive(Buffer.from(w0.bytes()), { address: '10.99.0.10' })).toEqual({ ok: false, live: false });
    expect(h.counters()).toMatchObject({ datagramsDropped: { EPEER: 1 }, datagramsReceived: 2, messagesReceived: 1 });
    expect(h.logLines).toContain('warn sync datagram dropped');
  });

  it('ftfw: acks every ackWindow messages in order, [first, last]', () => {
    const h = settled();
    h.recv(ct(0, 10, 1), ct(0, 11, 2));
    expect(h.drain()).toEqual([]);
    h.recv(ct(0, 12, 3));
    expect(h.drain()).toEqual(['1 ctl ACK|HELLO 10..12']);
    expect(h.counters().acksSent).toBe(1);
    // A new window: three more before the next ack.
    h.recv(ct(0, 13, 4), ct(0, 14, 5));
    expect(h.drain()).toEqual([]);
    h.recv(ct(0, 15, 6));
    expect(h.drain()).toEqual(['2 ctl ACK|HELLO 13..15']);
  });

  it.each([
    [T.ackDelayMs - 1, []],
    [T.ackDelayMs, ['1 ctl ACK|HELLO 10..11']],
  ])('ftfw: what waits for an ack %i ms is acked at the tick: %j', (ms, out) => {
    const h = settled();
    h.recv(ct(0, 10, 1), ct(0, 11, 2));
    h.clock.now += ms;
    h.node.tick();
    expect(h.drain().filter((l) => l.includes('ACK'))).toEqual(out);
  });

  it('ftfw: a gap acks what came in order, NACKs [expected, seq-1], and takes what came; older seqs are dropped', () => {
    const h = settled();
    h.recv(ct(0, 10, 1), ct(0, 11, 2), ct(0, 15, 3));
    expect(h.drain()).toEqual(['1 ctl ACK|HELLO 10..11', '2 ctl NACK|HELLO 12..14']);
    expect(h.counters()).toMatchObject({
      gapsDetected: 1,
      lostMessages: 3,
      nacksSent: 1,
      nackedMessages: 3,
      acksSent: 1,
      applied: 3,
    });
    h.recv(ct(0, 13, 4), ct(0, 15, 5));
    expect(h.counters()).toMatchObject({ duplicates: 2, applied: 3 });
    // A gap with nothing in order before it: a NACK alone.
    h.recv(ct(0, 16, 6), ct(0, 20, 7));
    expect(h.drain()).toEqual(['3 ctl ACK|HELLO 15..16', '4 ctl NACK|HELLO 17..19']);
    // Right after the window's ack nothing waits for one: a gap brings a NACK alone.
    h.recv(ct(0, 21, 8), ct(0, 22, 9));
    expect(h.drain()).toEqual(['5 ctl ACK|HELLO 20..22']);
    h.recv(ct(0, 26, 11));
    expect(h.drain()).toEqual(['6 ctl NACK|HELLO 23..25']);
  });

  it('notrack: a gap is counted, never NACKed; a seq that goes back is a restarted peer', () => {
    const h = settled('notrack');
    h.recv(ct(0, 10, 1), ct(0, 14, 2));
    expect(h.counters()).toMatchObject({ gapsDetected: 1, lostMessages: 3, nacksSent: 0, acksSent: 0, applied: 2 });
    h.recv(ct(0, 3, 3));
    expect(h.counters()).toMatchObject({ duplicates: 1, applied: 3, bulksWanted: { hello: 1 } });
    expect(h.sink.calls.at(-1)).toBe(`ct new ${PEER} 2 3`);
    expect(h.logLines).toContain('info conntrackd peer started');
    expect(h.drain()).toEqual([]);
    h.node.tick();
    expect(h.counters().bulksSent).toBe(2);
  });

  it('HELLO: counted, answered once with HELLO_BACK, re-bases the count, a new incarnation and a push of our table', () => {
    const h = settled();
    h.add(1);
    h.recv(ct(0, 10, 1), ct(0, 11, 2));
    h.drain();
    h.recv(ct(0, 500, 3, HELLO));
    expect(h.counters()).toMatchObject({ hellosReceived: 1, gapsDetected: 0, bulksWanted: { hello: 1 } });
    expect(h.sink.calls.at(-1)).toBe(`ct new ${PEER} 2 500`);
    // The HELLO of the rest of the run: counted, no restart; a gap in it is NACKed.
    h.recv(ct(0, 501, 4, HELLO), ct(0, 503, 5, HELLO));
    expect(h.counters()).toMatchObject({ hellosReceived: 3, gapsDetected: 1, bulksWanted: { hello: 1 } });
    expect(h.sink.calls.at(-1)).toBe(`ct new ${PEER} 2 503`);
    // HELLO_BACK goes on our next message, once.
    expect(h.drain()).toEqual(['1 ctl ACK|HELLO|HELLO_BACK 500..501', '2 ctl NACK|HELLO 502..502']);
    // Within the run, a seq that goes back is the peer starting again.
    h.recv(ct(0, 100, 6, HELLO));
    expect(h.counters()).toMatchObject({ hellosReceived: 4, bulksWanted: { hello: 2 }, duplicates: 0 });
    expect(h.sink.calls.at(-1)).toBe(`ct new ${PEER} 3 100`);
    // After the run (no HELLO), a HELLO is a new start again.
    h.recv(ct(0, 101, 7));
    h.recv(ct(0, 102, 8, HELLO));
    expect(h.sink.calls.at(-1)).toBe(`ct new ${PEER} 4 102`);
    // The owed bulk goes at the tick.
    h.node.tick();
    expect(h.drain().filter((l) => l.includes(' ct1 '))).toEqual([expect.stringMatching(/ ct1 1 HELLO/)]);
  });

  it('a restart forgets what the old incarnation was owed and drops an ack window that lay ahead', () => {
    const h = settled();
    h.node.localChange(h.add(1), 'new');
    h.drain();
    expect(h.node.stats().resendQueue.length).toBe(2);
    h.recv(ct(0, 600, 1), ct(0, 601, 2));
    h.recv(ct(0, 5, 3, HELLO));
    expect(h.node.stats().resendQueue.length).toBe(0);
    h.clock.now += T.ackDelayMs;
    h.node.tick();
    expect(h.drain().filter((l) => l.includes('ACK'))).toEqual([expect.stringMatching(/ctl ACK\|HELLO\|HELLO_BACK 5\.\.5$/)]);
  });

  it('HELLO_BACK from the peer ends our HELLO (ftfw), counted once', () => {
    const h = settled();
    h.recv(ctl(ALIVE | HELLO_BACK, 10));
    h.recv(ctl(ALIVE | HELLO_BACK, 11));
    expect(h.counters().helloAcksReceived).toBe(1);
    h.node.localChange(h.add(1), 'new');
    expect(h.drain()).toEqual(['1 ct0 1']);
  });

  it('notrack ignores HELLO_BACK (it sets no HELLO to end)', () => {
    const h = settled('notrack');
    h.recv(ctl(ALIVE | HELLO_BACK, 10));
    expect(h.counters().helloAcksReceived).toBe(0);
  });

  it('RESYNC from the peer: counted, our table at the next tick', () => {
    const h = settled();
    h.add(1);
    h.recv(ctl(RESYNC, 10));
    expect(h.counters()).toMatchObject({ resyncRequestsReceived: 1, bulksWanted: { request: 1 } });
    h.node.tick();
    expect(h.drain()).toEqual(['1 ct1 1 HELLO']);
    expect(h.counters().bulksSent).toBe(2);
  });

  it('an ACK removes [from, to] from the resend queue; a NACK resends it with new seqs, each kind as it was', () => {
    // No ack of ours for the peer's control messages in between (they take seqs too).
    const h = settled('ftfw', { timers: { ...T, ackWindow: 100 } });
    const k1 = h.add(1);
    const x1 = h.addExp(1);
    h.node.localChange(k1, 'update');
    h.node.localChange(h.add(2), 'delete', entry(2));
    h.node.localExpectChange(x1, 'new');
    h.node.localExpectChange('gone', 'delete', expectation(2));
    h.node.requestResync();
    expect(h.drain()).toEqual([
      '1 ctl RESYNC|HELLO 0..0',
      '2 ct2 2 HELLO',
      '3 ct1 1 HELLO',
      '4 exp5 30002 HELLO',
      '5 exp3 30001 HELLO',
    ]);
    // Queue: 0 (the RESYNC of start; the first push had nothing), 1..5.
    expect(h.node.stats().resendQueue).toMatchObject({ length: 6, front: S0 });
    h.recv(ctl(ACK, 10, S0, S0 + 1));
    expect(h.node.stats().resendQueue).toMatchObject({ length: 4, front: S0 + 2 });
    expect(h.counters()).toMatchObject({ acksReceived: 1, nacksReceived: 0, retransmits: 0 });
    // An ack from past the queue's front: what lies before it stays.
    h.recv(ctl(ACK, 11, S0 + 4, S0 + 4));
    expect(h.node.stats().resendQueue).toMatchObject({ length: 3, front: S0 + 2 });
    h.recv(ctl(NACK, 12, S0 + 2, S0 + 5));
    expect(h.counters()).toMatchObject({ nacksReceived: 1, retransmits: 3 });
    expect(h.drain()).toEqual(['6 ct2 2 HELLO', '7 ct1 1 HELLO', '8 exp3 30001 HELLO']);
    expect(h.node.stats().resendQueue).toMatchObject({ length: 3, front: S0 + 6 });
    h.recv(ctl(NACK, 13, S0 + 1, S0 + 1));
    expect(h.drain()).toEqual([]);
    expect(h.counters().retransmits).toBe(3);
  });

  it('a NACK of a control message sends it again', () => {
    const h = settled();
    h.node.requestResync();
    expect(h.drain()).toEqual(['1 ctl RESYNC|HELLO 0..0']);
    h.recv(ctl(NACK, 10, S0 + 1, S0 + 1));
    expect(h.drain()).toEqual(['2 ctl RESYNC|HELLO 0..0']);
  });

  it('a NACK of an expectation delete sends the delete again, with a new seq, and keeps it for another NACK', () => {
    const h = settled();
    h.node.localExpectChange('gone', 'delete', expectation(2));
    expect(h.drain()).toEqual(['1 exp5 30002 HELLO']);
    expect(h.node.stats().resendQueue).toMatchObject({ length: 2, front: S0 });
    h.recv(ctl(NACK, 10, S0 + 1, S0 + 1));
    expect(h.drain()).toEqual(['2 exp5 30002 HELLO']);
    expect(h.counters()).toMatchObject({ nacksReceived: 1, retransmits: 1 });
    h.recv(ctl(NACK, 11, S0 + 2, S0 + 2));
    expect(h.drain()).toEqual(['3 exp5 30002 HELLO']);
    expect(h.node.stats().resendQueue).toMatchObject({ length: 2, front: S0 });
  });

  it('a NACK resends a waiting entry once, as the kind it waits as', () => {
    const h = settled();
    const k = h.add(1);
    h.node.localChange(k, 'new');
    h.drain();
    h.node.localChange(k, 'update');
    h.recv(ctl(NACK, 10, S0 + 1, S0 + 1));
    expect(h.drain()).toEqual(['2 ct1 1 HELLO']);
    const x = h.addExp(1);
    h.node.localExpectChange(x, 'new');
    expect(h.drain()).toEqual(['3 exp3 30001 HELLO']);
    h.node.localExpectChange(x, 'update');
    h.recv(ctl(NACK, 11, S0 + 3, S0 + 3));
    expect(h.drain()).toEqual(['4 exp4 30001 HELLO']);
  });

  it('ACK and NACK with to before from are bad ranges; notrack ignores both', () => {
    const h = settled();
    h.node.localChange(h.add(1), 'new');
    h.drain();
    h.recv(ctl(ACK, 10, S0 + 2, S0 + 1));
    h.recv(ctl(NACK, 11, S0 + 2, S0 + 1));
    expect(h.counters()).toMatchObject({ badRanges: 2, acksReceived: 0, nacksReceived: 0 });
    expect(h.node.stats().resendQueue.length).toBe(2);
    const n = settled('notrack');
    n.node.localChange(n.add(1), 'new');
    n.drain();
    n.recv(ctl(NACK, 10, S0, S0 + 5));
    expect(n.drain()).toEqual([]);
    expect(n.counters()).toMatchObject({ badRanges: 0, nacksReceived: 0 });
  });

  it('the resend queue keeps resendQueueSize messages, the oldest evicted and counted', () => {
    const h = settled('ftfw', { timers: { ...T, resendQueueSize: 3 } });
    for (const i of [1, 2, 3]) h.node.localChange(h.add(i), 'new');
    h.drain();
    expect(h.node.stats().resendQueue).toMatchObject({ length: 3, capacity: 3, front: S0 + 1 });
    expect(h.counters().resendOverflows).toBe(1);
  });
});

describe('ConntrackdNode tick', () => {
  it.each([
    [T.aliveIntervalMs - 1, []],
    [T.aliveIntervalMs, ['1 ctl ALIVE|HELLO 0..0']],
  ])('after %i ms of silence: %j (ALIVE is never kept for resending)', (ms, out) => {
    const h = settled();
    h.clock.now += ms;
    h.node.tick();
    expect(h.drain()).toEqual(out);
    expect(h.counters().alivesSent).toBe(out.length);
    expect(h.node.stats().resendQueue.length).toBe(1);
  });

  it('no ALIVE while something waits to be sent', () => {
    const h = settled();
    h.clock.now += T.aliveIntervalMs;
    h.node.localChange(h.add(1), 'new');
    h.node.tick();
    expect(h.drain()).toEqual(['1 ct0 1 HELLO']);
    h.clock.now += T.aliveIntervalMs;
    h.node.requestResync();
    h.node.tick();
    expect(h.drain()).toEqual(['2 ctl RESYNC|HELLO 0..0']);
    expect(h.counters().alivesSent).toBe(0);
  });

  it.each([
    [T.startupSyncWaitMs - 1, false],
    [T.startupSyncWaitMs, true],
  ])('no peer heard %i ms after start: first sync done %s', (ms, done) => {
    const h = harness();
    h.node.start();
    h.clock.now += ms;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(done);
    expect(h.node.inSync).toBe(done);
    expect(h.node.stats()).toMatchObject({ firstSyncDone: done, inSync: done });
  });

  it('a peer heard: the first sync is done once its data is quiet for 1.5 alive intervals after our request', () => {
    const h = harness();
    h.node.start();
    h.clock.now += 100;
    h.recv(ct(0, 10, 1));
    const quiet = 1.5 * T.aliveIntervalMs;
    h.clock.now += quiet - 1;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(false);
    h.clock.now += 1;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(true);
    expect(h.logLines).toContain('info first sync done');
  });

  it('the quiet wait runs from our latest resync request when that is later', () => {
    const h = harness();
    h.node.start();
    h.recv(ctl(ALIVE, 10));
    h.clock.now += 1000;
    h.node.requestResync();
    h.clock.now += 1.5 * T.aliveIntervalMs - 1;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(false);
    h.clock.now += 1;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(true);
  });

  it.each([
    [T.refreshIntervalMs - 1, true, 0],
    [T.refreshIntervalMs, true, 1],
    [T.refreshIntervalMs, false, 0],
  ])('notrack %i ms after start, table ready %s: %i refreshes of the whole table', (ms, ready, refreshes) => {
    const h = settled('notrack', { localReady: () => ready });
    h.add(1);
    h.clock.now += ms;
    h.node.tick();
    expect(h.counters().refreshes).toBe(refreshes);
    expect(h.drain().filter((l) => l.includes(' ct1 '))).toHaveLength(refreshes);
  });

  it('ftfw never refreshes', () => {
    const h = settled();
    h.add(1);
    h.clock.now += T.refreshIntervalMs;
    h.node.tick();
    expect(h.counters().refreshes).toBe(0);
  });

  it('the peer goes down after peerTimeoutMs of silence', () => {
    const h = settled();
    h.recv(ct(0, 10, 1));
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    expect(h.node.stats().peers.map((p) => p.state)).toEqual(['down']);
  });
});

describe('ConntrackdNode stats', () => {
  it('reports its queues, sender counters and a divisor of one', () => {
    const h = settled();
    h.node.localChange(h.add(1), 'new');
    h.node.localChange(h.add(2), 'delete', entry(2));
    h.node.localExpectChange(h.addExp(1), 'new');
    h.node.localExpectChange('gone', 'delete', expectation(2));
    h.node.requestResync();
    expect(h.node.stats().sender).toEqual({
      queued: 0,
      merged: 0,
      messagesSent: 1,
      datagramsSent: 1,
      vanished: 0,
      unencodable: 0,
      queueLength: 5,
    });
    expect(h.node.shareDivisor).toBe(1);
    expect(h.node.nodeId).toBe('x');
    expect(h.node.epoch).toBe(1);
    expect(h.node.stats().admission.receivers).toBe(0);
  });
});


describe('ConntrackdNode at its edges', () => {
  it("the peer's first message carrying HELLO is a start: a new incarnation, logged with why", () => {
    const h = settled();
    h.recv(ct(0, 40, 1, HELLO));
    expect(h.sink.calls).toEqual([`ct new ${PEER} 2 40`]);
    expect(h.ctxOf('info conntrackd peer started')).toEqual([{ peer: PEER, why: 'hello', incarnation: 2 }]);
    h.recv(ct(0, 41, 2, HELLO), ct(0, 5, 3, HELLO));
    expect(h.ctxOf('info conntrackd peer started').map((c) => c.why)).toEqual(['hello', 'hello, sequence went back']);
    const n = settled('notrack');
    n.recv(ct(0, 40, 1), ct(0, 3, 2));
    expect(n.ctxOf('info conntrackd peer started')).toEqual([{ peer: PEER, why: 'sequence went back', incarnation: 2 }]);
  });

  it('names the peer once, logs a dropped datagram with its code and reason, and the first sync once', () => {
    const h = settled();
    h.recv(ct(0, 10, 1));
    h.recv(ct(0, 11, 2));
    expect(h.ctxOf('info conntrackd peer')).toEqual([{ peer: PEER }]);
    w0.reset();
    w0.entry(0, 0, 12, entry(3));
    h.node.receive(Buffer.from(w0.bytes()), { address: '10.99.0.10' });
    expect(h.ctxOf('warn sync datagram dropped')).toEqual([
      {
        kind: 'drop-EPEER',
        code: 'EPEER',
        reason: `from 10.99.0.10: conntrackd's protocol has one peer, and it is ${PEER}`,
      },
    ]);
    h.clock.now += 2 * T.aliveIntervalMs;
    h.node.tick();
    h.node.tick();
    expect(h.ctxOf('info first sync done')).toEqual([{ why: 'peer quiet after our resync request' }]);
    const lone = harness();
    lone.node.start();
    lone.clock.now += T.startupSyncWaitMs;
    lone.node.tick();
    lone.node.tick();
    expect(lone.ctxOf('info first sync done')).toEqual([{ why: 'no peer answered' }]);
    expect(lone.node.stats().peerCounters).toEqual({ ups: 0, downs: 0, restarts: 0 });
    expect(h.node.stats().peerCounters).toEqual({ ups: 1, downs: 0, restarts: 0 });
  });

  it('an ALIVE from the peer is neither a RESYNC nor a NACK', () => {
    const h = settled();
    h.recv(ctl(ALIVE, 10));
    expect(h.counters()).toMatchObject({ resyncRequestsReceived: 0, nacksReceived: 0, acksReceived: 0, badRanges: 0 });
    h.node.tick();
    expect(h.drain()).toEqual([]);
  });

  it('notrack: no ack however many messages come, and nothing kept for resending', () => {
    const h = settled('notrack');
    h.node.localChange(h.add(1), 'new');
    h.recv(ct(0, 10, 1), ct(0, 11, 2), ct(0, 12, 3), ct(0, 13, 4));
    h.clock.now += T.ackDelayMs;
    h.node.tick();
    expect(h.drain()).toEqual(['1 ct0 1']);
    expect(h.counters().acksSent).toBe(0);
    expect(h.node.stats().resendQueue.length).toBe(0);
  });

  it('without expectation callbacks: bulks carry entries only, and an expectation change vanishes', () => {
    const table = new Map([['k', entry(1)]]);
    const out: string[] = [];
    const node = new ConntrackdNode({
      nodeId: 'x',
      epoch: 1,
      mtu: 1472,
      mode: 'ftfw',
      external: new RecordingSink(),
      lookup: (k) => table.get(String(k)),
      localKeys: () => table.keys(),
      send: (b) => out.push(...decodeCtdDatagram(b).messages.map(show)),
      now: () => START,
      schedule: (fn) => fn(),
      log: { debug() {}, info() {}, warn() {}, error() {}, child: () => undefined } as unknown as Logger,
      timers: T,
    });
    node.start();
    expect(node.bulkSend()).toBe(1);
    node.localExpectChange('e', 'new');
    expect(out).toEqual(['0 ctl RESYNC|HELLO 0..0', '1 ct1 1 HELLO']);
    expect(node.stats().sender.vanished).toBe(1);
  });

  it('without a schedule, a flush runs on the next turn of the event loop', async () => {
    const out: Buffer[] = [];
    const node = new ConntrackdNode({
      nodeId: 'x',
      epoch: 1,
      mtu: 1472,
      mode: 'ftfw',
      external: new RecordingSink(),
      lookup: () => undefined,
      localKeys: () => [],
      send: (b) => out.push(b),
      now: () => START,
      log: { debug() {}, info() {}, warn() {}, error() {}, child: () => undefined } as unknown as Logger,
      timers: T,
    });
    node.start();
    expect(out).toHaveLength(0);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(out).toHaveLength(1);
  });

  it('asks for one flush at a time, none before start, and none once everything went', () => {
    const h = harness();
    h.node.localChange(h.add(1), 'new');
    expect(h.later).toHaveLength(0);
    h.node.start();
    h.node.localChange(h.add(2), 'new');
    h.node.localExpectChange(h.addExp(1), 'new');
    expect(h.later).toHaveLength(1);
    h.later.splice(0)[0]!();
    expect(h.later).toHaveLength(0);
    expect(h.drain()).toEqual(['0 ctl RESYNC|HELLO 0..0', '1 ct0 1 HELLO', '2 ct0 2 HELLO', '3 exp3 30001 HELLO']);
  });

  it('the budget of a flush counts control messages, deletes and expectation deletes too', () => {
    const h = settled('ftfw', { sliceMessages: 2 });
    h.node.requestResync();
    h.node.requestResync();
    h.node.localChange(h.add(1), 'new');
    h.later.splice(0)[0]!();
    expect(h.node.stats().sender.queueLength).toBe(1);
    h.run();
    h.node.localChange(h.add(2), 'delete', entry(2));
    h.node.localChange(h.add(3), 'delete', entry(3));
    h.node.localChange(h.add(4), 'delete', entry(4));
    h.node.localChange(h.add(5), 'new');
    h.later.splice(0)[0]!();
    expect(h.node.stats().sender.queueLength).toBe(2);
    // One delete and one entry wait: another flush is asked for.
    expect(h.later).toHaveLength(1);
    h.run();
    h.node.localExpectChange('g1', 'delete', expectation(1));
    h.node.localExpectChange('g2', 'delete', expectation(2));
    h.node.localExpectChange('g3', 'delete', expectation(3));
    h.later.splice(0)[0]!();
    expect(h.node.stats().sender.queueLength).toBe(1);
    expect(h.drain()).toEqual([
      '1 ctl RESYNC|HELLO 0..0',
      '2 ctl RESYNC|HELLO 0..0',
      '3 ct0 1 HELLO',
      '4 ct2 2 HELLO',
      '5 ct2 3 HELLO',
      '6 ct2 4 HELLO',
      '7 ct0 5 HELLO',
      '8 exp5 30001 HELLO',
      '9 exp5 30002 HELLO',
      '10 exp5 30003 HELLO',
    ]);
  });

  it('a delete and an entry left after the budget ask for another flush', () => {
    const h = settled('ftfw', { sliceMessages: 1 });
    h.node.localChange(h.add(1), 'delete', entry(1));
    h.node.localChange(h.add(2), 'delete', entry(2));
    h.node.localChange(h.add(3), 'new');
    h.later.splice(0)[0]!();
    expect(h.node.stats().sender.queueLength).toBe(2);
    expect(h.later).toHaveLength(1);
  });

  it('two messages that fill the MTU exactly go in one datagram', () => {
    const w = new CtdWriter();
    w.entry(0, 0, 0, entry(1));
    const size = w.length;
    const h = settled('ftfw', { mtu: 2 * size });
    h.node.localChange(h.add(1), 'new');
    h.node.localChange(h.add(2), 'new');
    h.run();
    expect(h.datagrams.map((d) => d.length)).toEqual([2 * size]);
  });
});
