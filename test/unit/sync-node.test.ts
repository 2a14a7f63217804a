// SyncNode (src/sync/engine/sync-node.ts) on its own, driven by hand-made
// datagrams of a peer on a fake clock (issue 18): the exact messages it
// sends, the counters it keeps and what reaches the replica sink, for each
// message kind, each address check and each deadline of tick(). The
// convergence simulation (sync-sim.test.ts) covers the same code through
// whole runs; these pin the values one step at a time.
import { describe, expect, it, vi } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.js';
import { EntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';
import { entryKey, expectKey } from '../../src/kernel/entry.js';
import type { Logger } from '../../src/log.js';
import type { ReplicaOp, ReplicaSink } from '../../src/sync/engine/replica-sink.js';
import { carryFloor } from '../../src/sync/engine/seq.js';
import { type SyncMode, SyncNode, type SyncNodeDeps } from '../../src/sync/engine/sync-node.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { CLUSTER, ftpExpectationOf, typicalTcpEntry } from './wire-helpers.js';

const SELF = 'fw1';
const PEER = 'fw2';
const SELF_EPOCH = 100;
const PEER_EPOCH = 500;
const FIRST_SEQ = 1000;
/** The seq the peer's answer to our challenge names: where its stream starts for us. */
const PEER_SEQ = 7000;
const T = DEFAULTS.sync.reliability;

/** Every call a SyncNode makes into its replica sink, as one line each. */
class RecordingSink implements ReplicaSink {
  readonly calls: string[] = [];
  /** How each ct entry came: a record of the datagram's buffer, or an object. */
  readonly forms: string[] = [];
  /** What endBulk() returns (stale records dropped). */
  removed = 0;
  applyRemote(origin: string, epoch: number, seq: number, op: ReplicaOp, e: ConntrackEntry | EntryRecord): void {
    this.calls.push(`ct ${op} ${origin} ${epoch} ${seq}`);
    this.forms.push(e instanceof EntryRecord ? 'record' : 'object');
  }
  applyRemoteExpect(origin: string, epoch: number, seq: number, op: ReplicaOp): void {
    this.calls.push(`exp ${op} ${origin} ${epoch} ${seq}`);
  }
  beginBulk(origin: string, start?: { epoch: number; seq: number }): void {
    this.calls.push(`begin ${origin} ${start?.epoch} ${start?.seq}`);
  }
  endBulk(origin: string): number {
    this.calls.push(`end ${origin}`);
    return this.removed;
  }
  continueEpoch(origin: string, from: number, to: number, floor: number): void {
    this.calls.push(`continue ${origin} ${from} ${to} ${floor}`);
  }
  release(origin: string): void {
    this.calls.push(`release ${origin}`);
  }
}

/** Log lines as "level message", to tell an info from a debug; with their context in `ctx`. */
function recordingLog(lines: string[], ctx: Array<Record<string, unknown>> = []): Logger {
  const at =
    (level: string) =>
    (msg: string, c: Record<string, unknown> = {}): void => {
      lines.push(`${level} ${msg}`);
      ctx.push(c);
    };
  const log: Logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => log,
  } as unknown as Logger;
  return log;
}

function entry(i: number): ConntrackEntry {
  return typicalTcpEntry(i);
}

function expectation(i: number): ExpectEntry {
  return ftpExpectationOf(entry(i).orig, 30000 + i);
}

function harness(over: Partial<SyncNodeDeps> = {}, mode: SyncMode = 'ftfw') {
  const clock = { now: 1_000_000 };
  const sent: Buffer[] = [];
  const sink = new RecordingSink();
  const table = new Map<string, ConntrackEntry>();
  const exps = new Map<string, ExpectEntry>();
  const logLines: string[] = [];
  const logCtx: Array<Record<string, unknown>> = [];
  /** The context of the log lines reading `line`. */
  const ctxOf = (line: string): Array<Record<string, unknown>> => logCtx.filter((_c, i) => logLines[i] === line);
  const events: string[] = [];
  let r = 0;
  const deps: SyncNodeDeps = {
    nodeId: SELF,
    cluster: CLUSTER,
    epoch: SELF_EPOCH,
    mtu: 1472,
    mode,
    external: sink,
    lookup: (k) => table.get(String(k)),
    localKeys: () => table.keys(),
    lookupExpect: (k) => exps.get(k),
    localExpectKeys: () => exps.keys(),
    send: (b) => sent.push(b),
    now: () => clock.now,
    schedule: (fn) => fn(),
    log: recordingLog(logLines, logCtx),
    timers: T,
    firstSeq: FIRST_SEQ,
    random: () => (r = (r + 0x9e3779b9) >>> 0),
    onPeerUp: (id, epoch) => events.push(`up ${id} ${epoch}`),
    onPeerDown: (id) => events.push(`down ${id}`),
    onPeerRestart: (id, epoch, previous) => events.push(`restart ${id} ${epoch} ${previous}`),
    onBulkReceived: (id, removed) => events.push(`bulk ${id} ${removed}`),
    ...over,
  };
  const node = new SyncNode(deps);
  /** Messages sent since the last call, with the epoch of the datagram that carried them. */
  const drainWithEpoch = (): Array<{ epoch: number; m: WireMessage }> => {
    const out: Array<{ epoch: number; m: WireMessage }> = [];
    for (const b of sent.splice(0)) {
      const d = decodeDatagram(b, { cluster: CLUSTER });
      if (!d.ok) throw new Error(`undecodable datagram sent: ${d.error.code}`);
      expect(d.header.node).toBe(SELF);
      for (const m of d.messages) out.push({ epoch: d.header.epoch, m });
    }
    return out;
  };
  const drain = (): WireMessage[] => drainWithEpoch().map((x) => x.m);
  const numbers = new Map<string, number>();
  /** A datagram of `id` in `epoch`, numbered past every one before it (a live peer's). */
  const from = (id: string, epoch: number, messages: WireMessage[]): Buffer => {
    const enc = new DatagramEncoder({
      cluster: CLUSTER,
      node: id,
      epoch,
      mtu: 1472,
      number: () => {
        const n = (numbers.get(id) ?? 0) + 1;
        numbers.set(id, n);
        return n;
      },
    });
    for (const m of messages) if (!enc.add(m)) throw new Error('does not fit');
    return enc.flush()!;
  };
  /** First contact of id in epoch: its datagram draws our challenge, its answer makes it believed. */
  const verify = (id = PEER, epoch = PEER_EPOCH, seq = PEER_SEQ, firstEpoch = 0): void => {
    drain();
    expect(node.receive(from(id, epoch, [{ kind: 'alive', seq }]))).toEqual({ ok: false, live: false });
    const ch = drain().find((m) => m.kind === 'challenge' && m.peer === id);
    if (ch?.kind !== 'challenge') throw new Error(`no challenge for ${id}`);
    const answer: WireMessage = {
      kind: 'challenge-response',
      seq,
      peer: SELF,
      epoch: node.epoch,
      nonceHi: ch.nonceHi,
      nonceLo: ch.nonceLo,
      firstEpoch,
    };
    expect(node.receive(from(id, epoch, [answer]))).toEqual({ ok: true, live: true });
  };
  const counters = () => node.stats().counters;
  return { node, clock, sink, table, exps, sent, drain, drainWithEpoch, from, verify, counters, logLines, ctxOf, events };
}

function addLocal(h: ReturnType<typeof harness>, i: number): string {
  const e = entry(i);
  const k = entryKey(e);
  h.table.set(k, e);
  return k;
}

describe('SyncNode start and close', () => {
  it('start sends one hello carrying the first seq, once; a second start sends nothing', () => {
    const h = harness();
    expect(h.node.stats().started).toBe(false);
    h.node.start();
    expect(h.drainWithEpoch()).toEqual([{ epoch: SELF_EPOCH, m: { kind: 'hello', seq: FIRST_SEQ } }]);
    expect(h.counters()).toMatchObject({ hellosSent: 1, datagramsSent: 1 });
    h.node.start();
    expect(h.sent).toEqual([]);
    expect(h.counters()).toMatchObject({ hellosSent: 1, datagramsSent: 1 });
    expect(h.node.stats()).toMatchObject({
      node: SELF,
      epoch: SELF_EPOCH,
      protocol: 'ctsyncd',
      mode: 'ftfw',
      started: true,
      nextSeq: FIRST_SEQ,
      resendQueue: { length: 0, front: FIRST_SEQ },
    });
    expect(h.node.nodeId).toBe(SELF);
    expect(h.ctxOf('info hello sent')).toEqual([{ epoch: SELF_EPOCH }]);
  });

  it('a closed node starts, sends, receives and ticks nothing', () => {
    const h = harness();
    h.node.close();
    h.node.start();
    expect(h.node.stats().started).toBe(false);
    const k = addLocal(h, 1);
    h.node.localChange(k, 'new');
    h.node.localExpectChange(expectKey(expectation(1)), 'new');
    expect(h.node.bulkSend()).toBe(0);
    h.node.requestResync();
    expect(h.node.stats().sender.queueLength).toBe(0);
    h.clock.now += 10 * T.aliveIntervalMs;
    h.node.tick();
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: 1 }]))).toEqual({ ok: false, live: false });
    expect(h.sent).toEqual([]);
    expect(h.counters()).toMatchObject({ datagramsReceived: 0, datagramsSent: 0, bulksSent: 0, alivesSent: 0 });
  });

  it('closing a started node stops what it sends and receives from then on', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    h.node.close();
    const k = addLocal(h, 1);
    h.node.localChange(k, 'new');
    h.node.localExpectChange(expectKey(expectation(1)), 'new');
    expect(h.node.stats().sender.queueLength).toBe(0);
    h.clock.now += 10 * T.aliveIntervalMs;
    h.node.tick();
    const before = h.counters().datagramsReceived;
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]))).toEqual({
      ok: false,
      live: false,
    });
    expect(h.counters().datagramsReceived).toBe(before);
    expect(h.sent).toEqual([]);
  });

  it('before start, local changes wait: nothing goes out until start', () => {
    const h = harness();
    const k = addLocal(h, 1);
    h.node.localChange(k, 'new');
    expect(h.sent).toEqual([]);
    h.node.start();
    const kinds = h.drain().map((m) => m.kind);
    expect(kinds).toEqual(['hello', 'ct-new']);
  });
});

describe('SyncNode receive: what is dropped before any message is read', () => {
  it('drops an undecodable datagram, counted by its error code', () => {
    const h = harness();
    h.node.start();
    expect(h.node.receive(Buffer.from('not a datagram at all'))).toEqual({ ok: false, live: false });
    const c = h.counters();
    expect(c.datagramsReceived).toBe(1);
    expect(Object.values(c.datagramsDropped)).toEqual([1]);
    expect(c.messagesReceived).toBe(0);
    const [code] = Object.keys(c.datagramsDropped);
    expect(h.ctxOf('warn sync datagram dropped')).toEqual([
      { kind: `drop-${code}`, code, reason: expect.any(String) as string },
    ]);
    // Each kind of drop has its own rate limit: another kind is logged, the same kind again is not.
    const big = new DatagramEncoder({ cluster: CLUSTER, node: PEER, epoch: PEER_EPOCH, mtu: 9000 });
    for (let q = 1; big.size < 1473; q++) big.add({ kind: 'alive', seq: q });
    h.node.receive(big.flush()!);
    expect(h.logLines.filter((l) => l === 'warn sync datagram dropped')).toHaveLength(2);
    expect(h.node.stats().counters.warningsSuppressed).toBe(0);
    h.node.receive(Buffer.from('not a datagram at all'));
    expect(h.logLines.filter((l) => l === 'warn sync datagram dropped')).toHaveLength(2);
    expect(h.node.stats().counters.warningsSuppressed).toBe(1);
  });

  it('drops its own datagrams (multicast loops back), counted', () => {
    const h = harness();
    h.node.start();
    h.drain();
    expect(h.node.receive(h.from(SELF, SELF_EPOCH, [{ kind: 'alive', seq: 1 }]))).toEqual({ ok: false, live: false });
    expect(h.counters()).toMatchObject({ ownDatagrams: 1, datagramsReceived: 1, unverifiedDatagrams: 0 });
    expect(h.sent).toEqual([]);
  });

  it('first contact: challenge, answer, then the peer is up and asked for its state', () => {
    const h = harness();
    h.node.start();
    h.drain();
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]))).toEqual({
      ok: false,
      live: false,
    });
    const [ch, ...rest] = h.drain();
    expect(rest).toEqual([]);
    expect(ch).toMatchObject({ kind: 'challenge', peer: PEER });
    expect(h.counters()).toMatchObject({ unverifiedDatagrams: 1, challengesSent: 1, datagramsSent: 2 });
    expect(h.node.stats().peers).toEqual([]);
    if (ch?.kind !== 'challenge') throw new Error('no challenge');
    const answer: WireMessage = {
      kind: 'challenge-response',
      seq: PEER_SEQ,
      peer: SELF,
      epoch: SELF_EPOCH,
      nonceHi: ch.nonceHi,
      nonceLo: ch.nonceLo,
      firstEpoch: 0,
    };
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [answer]))).toEqual({ ok: true, live: true });
    expect(h.events).toEqual([`up ${PEER} ${PEER_EPOCH}`]);
    // On the peer coming up: an alive with our next seq, then the first contact's request for its state.
    expect(h.drain()).toEqual([
      { kind: 'alive', seq: FIRST_SEQ },
      { kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 1 },
    ]);
    expect(h.counters()).toMatchObject({ responsesAccepted: 1, alivesSent: 1, resyncRequestsSent: 1 });
    const st = h.node.stats();
    expect(st.peers.map((p) => [p.id, p.state, p.epoch])).toEqual([[PEER, 'up', PEER_EPOCH]]);
    expect(st.admission).toMatchObject({ tracked: 1, receivers: 1 });
    expect(h.ctxOf('info peer epoch verified')).toEqual([{ peer: PEER, epoch: PEER_EPOCH, previousEpoch: null }]);
    expect(h.ctxOf('debug sync datagram of an epoch not verified yet dropped')).toEqual([
      { peer: PEER, epoch: PEER_EPOCH },
    ]);
    expect(h.node.stats().peerCounters).toEqual({ ups: 1, downs: 0, restarts: 0 });
  });

  it("answers the challenge of a peer's epoch it has not verified, naming that epoch and our first epoch", () => {
    const h = harness();
    h.node.start();
    h.drain();
    const challenge: WireMessage = { kind: 'challenge', peer: SELF, nonceHi: 11, nonceLo: 22 };
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [challenge]))).toEqual({ ok: false, live: false });
    const out = h.drain();
    expect(out).toEqual([
      {
        kind: 'challenge-response',
        seq: FIRST_SEQ,
        peer: PEER,
        epoch: PEER_EPOCH,
        nonceHi: 11,
        nonceLo: 22,
        firstEpoch: SELF_EPOCH,
      },
      expect.objectContaining({ kind: 'challenge', peer: PEER }),
    ]);
    // A challenge addressed to another node is not ours to answer.
    h.clock.now += 1000;
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'challenge', peer: 'fw3', nonceHi: 1, nonceLo: 2 }]));
    expect(h.drain().filter((m) => m.kind === 'challenge-response')).toEqual([]);
  });

  it('a datagram of an older epoch than the one believed is dropped as stale; a newer one is challenged', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    // Past the challenge rate limit, so that only the rule keeps a challenge back.
    h.clock.now += 1000;
    expect(h.node.receive(h.from(PEER, PEER_EPOCH - 1, [{ kind: 'alive', seq: 1 }]))).toEqual({
      ok: false,
      live: false,
    });
    expect(h.counters()).toMatchObject({ staleEpochDatagrams: 1, unverifiedDatagrams: 1 });
    // No challenge for a stale epoch that did not challenge us.
    expect(h.drain()).toEqual([]);
    h.clock.now += 1000;
    expect(h.node.receive(h.from(PEER, PEER_EPOCH + 1, [{ kind: 'alive', seq: 1 }]))).toEqual({
      ok: false,
      live: false,
    });
    expect(h.counters()).toMatchObject({ staleEpochDatagrams: 1, unverifiedDatagrams: 2 });
    expect(h.drain().map((m) => m.kind)).toEqual(['challenge']);
    // A stale epoch that challenges us is challenged back (a peer that really went back), not answered.
    h.clock.now += 1000;
    const ch: WireMessage = { kind: 'challenge', peer: SELF, nonceHi: 5, nonceLo: 6 };
    h.node.receive(h.from(PEER, PEER_EPOCH - 1, [ch]));
    expect(h.drain().map((m) => m.kind)).toEqual(['challenge']);
    expect(h.counters().staleEpochDatagrams).toBe(2);
  });

  it('a replayed datagram of the believed epoch is handled but is no sign of life', () => {
    const h = harness();
    h.node.start();
    h.verify();
    const d = h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]);
    expect(h.node.receive(d)).toEqual({ ok: true, live: true });
    expect(h.counters().datagramsNotLive).toBe(0);
    expect(h.node.receive(d)).toEqual({ ok: true, live: false });
    expect(h.counters().datagramsNotLive).toBe(1);
  });
});

describe('SyncNode receive: each message kind of a believed peer', () => {
  it('hands each data message to the sink with its op, origin, epoch and seq', () => {
    const h = harness();
    h.node.start();
    h.verify();
    const e = entry(1);
    const x = expectation(1);
    const msgs: WireMessage[] = [
      { kind: 'ct-new', seq: PEER_SEQ, entry: e },
      { kind: 'ct-update', seq: PEER_SEQ + 1, entry: e },
      { kind: 'ct-delete', seq: PEER_SEQ + 2, entry: e },
      { kind: 'exp-new', seq: PEER_SEQ + 3, entry: x },
      { kind: 'exp-delete', seq: PEER_SEQ + 4, entry: x },
    ];
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, msgs))).toEqual({ ok: true, live: true });
    expect(h.sink.calls).toEqual([
      `ct new ${PEER} ${PEER_EPOCH} ${PEER_SEQ}`,
      `ct update ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 1}`,
      `ct delete ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 2}`,
      `exp new ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 3}`,
      `exp delete ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 4}`,
    ]);
    // Entries stay records of the datagram (never built as objects); a delete names its entry only.
    expect(h.sink.forms).toEqual(['record', 'record', 'object']);
    expect(h.counters()).toMatchObject({ applied: 5, messagesReceived: 6, datagramsReceived: 3 });
  });

  it.each([
    ['to us, our epoch', 1, SELF, SELF_EPOCH],
    ['to us, another epoch of ours', 0, SELF, SELF_EPOCH + 1],
    ['to another node', 0, 'fw3', SELF_EPOCH],
  ] as const)('counts a hello-ack %s: %i', (_what, counted, peer, epoch) => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'hello-ack', peer, epoch }]));
    expect(h.counters().helloAcksReceived).toBe(counted);
  });

  it('counts a hello of the believed epoch once; a replayed hello starts nothing', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
    expect(h.counters().hellosReceived).toBe(0);
    const hello = h.from(PEER, PEER_EPOCH, [{ kind: 'hello', seq: PEER_SEQ }]);
    h.node.receive(hello);
    expect(h.counters()).toMatchObject({ hellosReceived: 1, bulksSent: 0 });
    h.node.receive(hello);
    expect(h.counters()).toMatchObject({ hellosReceived: 1, bulksSent: 0 });
  });

  // [what, peer, epoch, request, served, resyncRequestsReceived, staleRequests]
  const requests: Array<[string, string, number, number, boolean, number, number]> = [
    ['to us, our epoch, a new number', SELF, SELF_EPOCH, 1, true, 1, 0],
    ['to us, another epoch of ours', SELF, SELF_EPOCH - 1, 1, false, 0, 1],
    ['to every node (version 2)', '', SELF_EPOCH, 1, false, 0, 1],
    ['to another node', 'fw3', SELF_EPOCH, 1, false, 0, 0],
  ];
  it.each(requests)('a resync request %s', (_what, peer, epoch, request, served, received, stale) => {
    const h = harness();
    const k = addLocal(h, 1);
    h.node.start();
    h.verify();
    h.drain();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'resync-request', peer, epoch, request }]));
    const c = h.counters();
    expect(c.resyncRequestsReceived).toBe(received);
    expect(c.staleRequests).toBe(stale);
    expect(c.bulksWanted).toEqual({ request: served ? 1 : 0, hello: 0, restart: 0, gap: 0 });
    const out = h.drain().filter((m) => m.kind !== 'ack');
    if (served) {
      // Served at once (not at the next tick), to that peer alone.
      expect(out.map((m) => m.kind)).toEqual(['bulk-start', 'ct-update', 'bulk-end']);
      expect(out[0]).toMatchObject({ peer: PEER, seq: FIRST_SEQ });
      expect(out[1]).toMatchObject({ seq: FIRST_SEQ + 1, entry: h.table.get(k) });
      expect(out[2]).toMatchObject({ peer: PEER, seq: FIRST_SEQ + 2, count: 1 });
      expect(c).toMatchObject({ bulksSent: 1, bulkEntriesSent: 1 });
    } else {
      expect(out).toEqual([]);
      expect(c.bulksSent).toBe(0);
    }
  });

  it('a resync request that came before its epoch was verified is honoured when it is, once', () => {
    const h = harness();
    const k = addLocal(h, 1);
    h.node.start();
    h.drain();
    const req = (request: number, epoch = PEER_EPOCH): Buffer =>
      h.from(PEER, epoch, [
        { kind: 'alive', seq: PEER_SEQ },
        { kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request },
      ]);
    // A new node asks at once; its epoch is not verified here yet, so the datagram is dropped.
    h.node.receive(req(1, PEER_EPOCH - 1));
    h.node.receive(req(2));
    h.node.receive(req(1));
    // And one to another epoch of ours is not kept.
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH - 1, request: 9 }]));
    expect(h.counters()).toMatchObject({ unverifiedDatagrams: 4, resyncRequestsReceived: 0, bulksSent: 0 });
    // Past the challenge interval: verify() draws a challenge of its own.
    h.clock.now += 1000;
    h.verify();
    const c = h.counters();
    expect(c).toMatchObject({ resyncRequestsReceived: 1, staleRequests: 0, bulksSent: 1, bulkEntriesSent: 1 });
    expect(c.bulksWanted).toEqual({ request: 1, hello: 0, restart: 0, gap: 0 });
    const out = h.drain().filter((m) => m.kind.startsWith('bulk') || m.kind === 'ct-update');
    expect(out.map((m) => m.kind)).toEqual(['bulk-start', 'ct-update', 'bulk-end']);
    expect(out[0]).toMatchObject({ peer: PEER });
    expect(out[1]).toMatchObject({ entry: h.table.get(k) });
    // The number it held is taken: the same request again, now verified, is a replay.
    h.node.receive(req(2));
    expect(h.counters()).toMatchObject({ resyncRequestsReceived: 1, staleRequests: 1, bulksSent: 1 });
  });

  it('a request held for an epoch is not honoured when another epoch of the node is verified', () => {
    const h = harness();
    h.node.start();
    h.drain();
    h.node.receive(
      h.from(PEER, PEER_EPOCH - 1, [{ kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request: 1 }]),
    );
    h.clock.now += 1000;
    h.verify();
    expect(h.counters()).toMatchObject({ resyncRequestsReceived: 0, bulksSent: 0 });
  });

  it('a replayed resync request is honoured once and counted stale once', () => {
    const h = harness();
    h.node.start();
    h.verify();
    const req = h.from(PEER, PEER_EPOCH, [{ kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request: 1 }]);
    h.node.receive(req);
    h.node.receive(req);
    expect(h.counters()).toMatchObject({ resyncRequestsReceived: 1, staleRequests: 1, bulksSent: 1 });
  });

  it('acks and NACKs count only when addressed to us and our epoch; a NACK resends, an ack empties', () => {
    const h = harness();
    h.node.start();
    h.verify();
    for (const i of [1, 2, 3]) h.node.localChange(addLocal(h, i), 'new');
    const sent = h.drain().filter((m) => m.kind === 'ct-new');
    expect(sent.map((m) => (m.kind === 'ct-new' ? m.seq : -1))).toEqual([FIRST_SEQ, FIRST_SEQ + 1, FIRST_SEQ + 2]);
    expect(h.node.stats().resendQueue).toMatchObject({ length: 3, front: FIRST_SEQ, capacity: T.resendQueueSize });
    const nack = (peer: string, epoch: number): WireMessage => ({
      kind: 'nack',
      peer,
      epoch,
      from: FIRST_SEQ + 1,
      to: FIRST_SEQ + 1,
    });
    for (const [peer, epoch] of [
      ['fw3', SELF_EPOCH],
      [SELF, SELF_EPOCH + 1],
    ] as const) {
      h.node.receive(h.from(PEER, PEER_EPOCH, [nack(peer, epoch)]));
      expect(h.drain().filter((m) => m.kind === 'ct-new')).toEqual([]);
    }
    // Past the per-message resend throttle.
    h.clock.now += 1000;
    h.node.receive(h.from(PEER, PEER_EPOCH, [nack(SELF, SELF_EPOCH)]));
    expect(h.drain().filter((m) => m.kind === 'ct-new')).toEqual([
      { kind: 'ct-new', seq: FIRST_SEQ + 1, entry: entry(2) },
    ]);
    const ack = (peer: string, epoch: number): WireMessage => ({
      kind: 'ack',
      peer,
      epoch,
      from: FIRST_SEQ,
      to: FIRST_SEQ + 2,
    });
    const tx = h.node.stats().peers[0]?.tx;
    expect(tx?.unacked).toBe(3);
    h.node.receive(h.from(PEER, PEER_EPOCH, [ack('fw3', SELF_EPOCH)]));
    h.node.receive(h.from(PEER, PEER_EPOCH, [ack(SELF, SELF_EPOCH - 1)]));
    expect(h.node.stats().resendQueue.length).toBe(3);
    expect(h.node.stats().peers[0]?.tx).toEqual(tx);
    h.node.receive(h.from(PEER, PEER_EPOCH, [ack(SELF, SELF_EPOCH)]));
    expect(h.node.stats().resendQueue).toMatchObject({ length: 0, front: FIRST_SEQ + 3 });
  });

  it('notrack ignores acks and NACKs and keeps no resend queue', () => {
    const h = harness({}, 'notrack');
    h.node.start();
    h.verify();
    h.node.localChange(addLocal(h, 1), 'new');
    h.drain();
    expect(h.node.stats().resendQueue).toEqual({ length: 0, capacity: 0, front: FIRST_SEQ + 1 });
    const nack: WireMessage = { kind: 'nack', peer: SELF, epoch: SELF_EPOCH, from: FIRST_SEQ, to: FIRST_SEQ };
    h.node.receive(h.from(PEER, PEER_EPOCH, [nack]));
    expect(h.drain().filter((m) => m.kind === 'ct-new')).toEqual([]);
  });

  it('a bulk for us: begin and end reach the sink, the first sync is done and inSync latches', () => {
    const h = harness();
    h.node.start();
    h.verify();
    expect(h.node.firstSyncDone).toBe(false);
    expect(h.node.inSync).toBe(false);
    h.sink.removed = 4;
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 1, peer: SELF },
        { kind: 'ct-update', seq: PEER_SEQ + 1, entry: entry(1) },
        { kind: 'bulk-end', seq: PEER_SEQ + 2, bulkId: 1, peer: SELF, count: 1 },
      ]),
    );
    expect(h.sink.calls).toEqual([
      `begin ${PEER} ${PEER_EPOCH} ${PEER_SEQ}`,
      `ct update ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 1}`,
      `end ${PEER}`,
    ]);
    expect(h.counters()).toMatchObject({ bulksStarted: 1, bulksReceived: 1, bulkStaleRemoved: 4, applied: 1 });
    expect(h.events).toContain(`bulk ${PEER} 4`);
    expect(h.node.firstSyncDone).toBe(true);
    expect(h.node.inSync).toBe(true);
    expect(h.node.stats()).toMatchObject({ firstSyncDone: true, inSync: true });
    expect(h.ctxOf('info bulk received')).toEqual([{ peer: PEER, entries: 1, staleRemoved: 4 }]);
    expect(h.ctxOf('debug bulk from peer started')).toEqual([{ peer: PEER, bulkId: 1 }]);
    expect(h.logLines).toContain('info first peer sync finished');
    // The peer going down later does not take it back.
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    expect(h.events).toContain(`down ${PEER}`);
    expect(h.node.inSync).toBe(true);
  });

  it('a bulk to every node (peer "") is a bulk for us', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 1, peer: '' },
        { kind: 'bulk-end', seq: PEER_SEQ + 1, bulkId: 1, peer: '', count: 0 },
      ]),
    );
    expect(h.counters()).toMatchObject({ bulksStarted: 1, bulksReceived: 1 });
    // A whole bulk is news even when it removed nothing.
    expect(h.ctxOf('info bulk received')).toHaveLength(1);
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ + 2, bulkId: 2, peer: '' },
        { kind: 'bulk-end', seq: PEER_SEQ + 3, bulkId: 2, peer: '', count: 0 },
      ]),
    );
    expect(h.counters().bulksReceived).toBe(2);
    expect(h.ctxOf('info first peer sync finished')).toEqual([{ how: `bulk from ${PEER}` }]);
  });

  it('inSync holds once a bulk came, even if its peer is down before anyone asked', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 1, peer: SELF },
        { kind: 'bulk-end', seq: PEER_SEQ + 1, bulkId: 1, peer: SELF, count: 0 },
      ]),
    );
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    expect(h.node.stats().peers[0]?.state).toBe('down');
    expect(h.node.inSync).toBe(true);
  });

  it('inSync waits for every peer that is up, skips those down, then stays true', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.verify('fw3', 900, 50);
    const bulk = (id: string, epoch: number, seq: number): Buffer =>
      h.from(id, epoch, [
        { kind: 'bulk-start', seq, bulkId: 1, peer: SELF },
        { kind: 'bulk-end', seq: seq + 1, bulkId: 1, peer: SELF, count: 0 },
      ]);
    h.node.receive(bulk(PEER, PEER_EPOCH, PEER_SEQ));
    expect(h.node.firstSyncDone).toBe(true);
    expect(h.node.inSync).toBe(false);
    // fw3 goes silent and down; fw2 stays up.
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ + 2 }]));
    h.node.tick();
    expect(h.node.stats().peers.map((p) => [p.id, p.state])).toEqual([
      [PEER, 'up'],
      ['fw3', 'down'],
    ]);
    expect(h.node.inSync).toBe(true);
    // fw3 back without a bulk: inSync gates the first sync only.
    h.node.receive(h.from('fw3', 900, [{ kind: 'alive', seq: 50 }]));
    expect(h.node.stats().peers.map((p) => p.state)).toEqual(['up', 'up']);
    expect(h.node.inSync).toBe(true);
  });

  it('a gap is NACKed at once: [first missing, last missing], counted', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'ct-new', seq: PEER_SEQ, entry: entry(1) },
        { kind: 'ct-new', seq: PEER_SEQ + 3, entry: entry(2) },
      ]),
    );
    expect(h.drain().filter((m) => m.kind === 'nack')).toEqual([
      { kind: 'nack', peer: PEER, epoch: PEER_EPOCH, from: PEER_SEQ + 1, to: PEER_SEQ + 2 },
    ]);
    expect(h.counters()).toMatchObject({ nacksSent: 1, nackedMessages: 2 });
  });

  it('an ack that frees the resend queue resumes the sender at once', () => {
    const h = harness({ timers: { ...T, resendQueueSize: 4 } });
    h.node.start();
    h.verify();
    h.drain();
    for (const i of [1, 2, 3, 4, 5, 6]) h.node.localChange(addLocal(h, i), 'new');
    expect(h.drain().filter((m) => m.kind === 'ct-new')).toHaveLength(4);
    expect(h.node.stats().sender.queueLength).toBe(2);
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [{ kind: 'ack', peer: SELF, epoch: SELF_EPOCH, from: FIRST_SEQ, to: FIRST_SEQ + 3 }]),
    );
    expect(h.drain().filter((m) => m.kind === 'ct-new')).toHaveLength(2);
    expect(h.node.stats().sender.queueLength).toBe(0);
  });

  it('a bulk addressed to another node is applied but is no bulk for us', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 1, peer: 'fw3' },
        { kind: 'ct-update', seq: PEER_SEQ + 1, entry: entry(1) },
        { kind: 'bulk-end', seq: PEER_SEQ + 2, bulkId: 1, peer: 'fw3', count: 1 },
      ]),
    );
    expect(h.sink.calls).toEqual([`ct update ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 1}`]);
    expect(h.counters()).toMatchObject({ bulksStarted: 0, bulksReceived: 0 });
    expect(h.node.firstSyncDone).toBe(false);
  });
});

describe('SyncNode sending', () => {
  it('bulkSend frames every local entry, then every expectation, between bulk-start and bulk-end', () => {
    const h = harness();
    h.node.start();
    h.drain();
    const k1 = addLocal(h, 1);
    const k2 = addLocal(h, 2);
    const x = expectation(1);
    h.exps.set(expectKey(x), x);
    expect(h.node.bulkSend()).toBe(3);
    const out = h.drain();
    expect(out.map((m) => m.kind)).toEqual(['bulk-start', 'ct-update', 'ct-update', 'exp-new', 'bulk-end']);
    expect(out[0]).toEqual({ kind: 'bulk-start', seq: FIRST_SEQ, bulkId: 1, peer: '' });
    expect(out[1]).toMatchObject({ seq: FIRST_SEQ + 1, entry: h.table.get(k1) });
    expect(out[2]).toMatchObject({ seq: FIRST_SEQ + 2, entry: h.table.get(k2) });
    expect(out[4]).toEqual({ kind: 'bulk-end', seq: FIRST_SEQ + 4, bulkId: 1, peer: '', count: 3 });
    expect(h.counters()).toMatchObject({ bulksSent: 1, bulkEntriesSent: 3 });
    expect(h.ctxOf('info bulk send')).toEqual([{ peer: '*', entries: 3, bulkId: 1, why: 'explicit' }]);
    // The next bulk has the next id, and names its peer.
    expect(h.node.bulkSend(PEER)).toBe(3);
    const again = h.drain();
    expect(again[0]).toEqual({ kind: 'bulk-start', seq: FIRST_SEQ + 5, bulkId: 2, peer: PEER });
    expect(again.at(-1)).toEqual({ kind: 'bulk-end', seq: FIRST_SEQ + 9, bulkId: 2, peer: PEER, count: 3 });
    expect(h.ctxOf('info bulk send')[1]).toEqual({ peer: PEER, entries: 3, bulkId: 2, why: 'explicit' });
    expect(h.node.nextSeq).toBe(FIRST_SEQ + 10);
  });

  it('local changes go out as their kind with consecutive seqs; expectations after entries', () => {
    const h = harness();
    h.node.start();
    h.drain();
    const k = addLocal(h, 1);
    const x = expectation(1);
    h.exps.set(expectKey(x), x);
    h.node.localChange(k, 'new');
    h.node.localExpectChange(expectKey(x), 'new');
    h.node.localChange(k, 'delete', h.table.get(k));
    h.node.localExpectChange(expectKey(x), 'delete', x);
    const out = h.drain();
    expect(out.map((m) => [m.kind, 'seq' in m ? m.seq - FIRST_SEQ : -1])).toEqual([
      ['ct-new', 0],
      ['exp-new', 1],
      ['ct-delete', 2],
      ['exp-delete', 3],
    ]);
  });

  it('requestResync asks every believed peer, or the one named, with growing request numbers', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.verify('fw3', 900, 50);
    h.drain();
    const before = h.counters().resyncRequestsSent;
    h.node.requestResync(PEER);
    expect(h.drain()).toEqual([{ kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 3 }]);
    h.node.requestResync();
    expect(h.drain()).toEqual([
      { kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 4 },
      { kind: 'resync-request', peer: 'fw3', epoch: 900, request: 5 },
    ]);
    expect(h.counters().resyncRequestsSent).toBe(before + 3);
    expect(h.ctxOf('info resync requested')).toEqual([{ peer: PEER }, { peer: '*' }]);
    h.node.close();
    h.node.requestResync();
    expect(h.drain()).toEqual([]);
    expect(h.counters().resyncRequestsSent).toBe(before + 3);
  });
});

describe('SyncNode tick', () => {
  it('a peer verified before start is asked for its state but told no alive', () => {
    const h = harness();
    h.verify();
    expect(h.drain()).toEqual([{ kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 1 }]);
    expect(h.counters().alivesSent).toBe(0);
  });

  it('bulks wanted by two peers at once go as one bulk to every node', () => {
    let ready = false;
    const h = harness({ localReady: () => ready });
    addLocal(h, 1);
    h.node.start();
    h.verify();
    h.verify('fw3', 900, 50);
    const request: WireMessage = { kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request: 1 };
    h.node.receive(h.from(PEER, PEER_EPOCH, [request]));
    h.node.receive(h.from('fw3', 900, [request]));
    h.drain();
    ready = true;
    h.node.tick();
    expect(h.counters()).toMatchObject({ bulksSent: 1, bulksWanted: { request: 2 } });
    expect(h.ctxOf('info bulk send')).toEqual([{ peer: '*', entries: 1, bulkId: 1, why: 'wanted' }]);
    expect(h.drain().filter((m) => m.kind === 'bulk-start')).toEqual([
      { kind: 'bulk-start', seq: FIRST_SEQ, bulkId: 1, peer: '' },
    ]);
  });

  it.each([
    [T.startupSyncWaitMs - 1, false],
    [T.startupSyncWaitMs, true],
  ])('no peer heard %i ms after start: first sync done = %s', (ms, done) => {
    const h = harness();
    h.node.start();
    h.clock.now += ms;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(done);
    expect(h.node.inSync).toBe(false);
    expect(h.ctxOf('info first peer sync finished')).toEqual(done ? [{ how: 'no peer answered' }] : []);
  });

  it('no alive when the tick has something else to send (an ack)', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'ct-new', seq: PEER_SEQ, entry: entry(1) }]));
    h.drain();
    h.clock.now += T.aliveIntervalMs;
    h.node.tick();
    // The ack, and the repeat of the first contact's request (no bulk came yet): no alive.
    expect(h.drain()).toEqual([
      { kind: 'ack', peer: PEER, epoch: PEER_EPOCH, from: PEER_SEQ, to: PEER_SEQ },
      { kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 2 },
    ]);
    // The one alive of the peer coming up.
    expect(h.counters().alivesSent).toBe(1);
  });

  it('a peer heard within the startup wait: the first sync waits for its bulk', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.clock.now += T.startupSyncWaitMs;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(false);
  });

  it('a tick before start, or after close, does nothing', () => {
    const h = harness();
    h.clock.now += 10 * T.startupSyncWaitMs;
    h.node.tick();
    expect(h.node.firstSyncDone).toBe(false);
    expect(h.sent).toEqual([]);
  });

  it.each([
    [T.aliveIntervalMs - 1, 0],
    [T.aliveIntervalMs, 1],
  ])('%i ms of silence after the hello: %i alive', (ms, alives) => {
    const h = harness();
    h.node.start();
    h.drain();
    h.clock.now += ms;
    h.node.tick();
    expect(h.counters().alivesSent).toBe(alives);
    expect(h.drain()).toEqual(alives === 1 ? [{ kind: 'alive', seq: FIRST_SEQ }] : []);
  });

  it('sending data postpones the alive', () => {
    const h = harness();
    h.node.start();
    h.clock.now += T.aliveIntervalMs - 10;
    h.node.localChange(addLocal(h, 1), 'new');
    h.drain();
    h.clock.now += 10;
    h.node.tick();
    expect(h.counters().alivesSent).toBe(0);
    h.clock.now += T.aliveIntervalMs - 10;
    h.node.tick();
    expect(h.drain()).toEqual([{ kind: 'alive', seq: FIRST_SEQ + 1 }]);
  });

  it.each([
    [T.refreshIntervalMs - 1, true, 0],
    [T.refreshIntervalMs, true, 1],
    [T.refreshIntervalMs, false, 0],
  ])('notrack, %i ms after start, local table ready %s: %i refreshes', (ms, ready, refreshes) => {
    const h = harness({ localReady: () => ready }, 'notrack');
    addLocal(h, 1);
    h.node.start();
    h.drain();
    h.clock.now += ms;
    h.node.tick();
    expect(h.counters().refreshes).toBe(refreshes);
    const kinds = h.drain().map((m) => m.kind);
    expect(kinds.filter((k) => k.startsWith('bulk'))).toEqual(refreshes ? ['bulk-start', 'bulk-end'] : []);
    if (refreshes) {
      expect(h.counters()).toMatchObject({ bulksSent: 1, bulkEntriesSent: 1 });
      expect(h.logLines).not.toContain('info bulk send');
    }
  });

  it('ftfw never refreshes', () => {
    const h = harness();
    addLocal(h, 1);
    h.node.start();
    h.clock.now += T.refreshIntervalMs;
    h.node.tick();
    expect(h.counters()).toMatchObject({ refreshes: 0, bulksSent: 0 });
  });

  it('a peer silent past peerTimeoutMs goes down; heard again it comes up and is told our next seq', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    expect(h.events).toEqual([`up ${PEER} ${PEER_EPOCH}`, `down ${PEER}`]);
    expect(h.node.stats().peers[0]?.state).toBe('down');
    h.drain();
    const alives = h.counters().alivesSent;
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
    expect(h.events.at(-1)).toBe(`up ${PEER} ${PEER_EPOCH}`);
    expect(h.counters().alivesSent).toBe(alives + 1);
    expect(h.drain()[0]).toEqual({ kind: 'alive', seq: FIRST_SEQ });
  });
});

describe('SyncNode restarts and rollovers', () => {
  it("a peer's new epoch is a restart: callback, a bulk pushed to it at once, and a request for its state", () => {
    const h = harness();
    addLocal(h, 1);
    h.node.start();
    h.verify();
    h.clock.now += 1000;
    h.verify(PEER, PEER_EPOCH + 10, 300);
    expect(h.events).toContain(`restart ${PEER} ${PEER_EPOCH + 10} ${PEER_EPOCH}`);
    expect(h.counters().bulksWanted).toEqual({ request: 0, hello: 0, restart: 1, gap: 0 });
    const out = h.drain();
    const start = out.find((m) => m.kind === 'bulk-start');
    expect(start).toMatchObject({ peer: PEER });
    expect(out.filter((m) => m.kind === 'resync-request')).toEqual([
      { kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH + 10, request: 2 },
    ]);
    expect(h.node.stats().peers[0]).toMatchObject({ epoch: PEER_EPOCH + 10, restarts: 1 });
  });

  it('a wanted bulk waits for the local table, and goes at the first tick once it is ready', () => {
    let ready = false;
    const h = harness({ localReady: () => ready });
    addLocal(h, 1);
    h.node.start();
    h.verify();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request: 1 }]));
    h.node.tick();
    expect(h.counters().bulksSent).toBe(0);
    ready = true;
    // A datagram that makes no bulk wanted serves none: that is the tick's.
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
    expect(h.counters().bulksSent).toBe(0);
    h.node.tick();
    expect(h.counters().bulksSent).toBe(1);
    expect(h.drain().find((m) => m.kind === 'bulk-start')).toMatchObject({ peer: PEER });
  });

  it.each([
    ['with nextEpoch', () => 4242, 4242],
    ['without: epoch + 1', undefined, SELF_EPOCH + 1],
  ])('rolls over after maxSeqsPerEpoch seqs (%s), and acks to the epoch before still count', (_w, nextEpoch, next) => {
    // Flushes wait to be run by hand, so that three changes go out in one datagram.
    const later: Array<() => void> = [];
    const run = (): void => {
      for (const fn of later.splice(0)) fn();
    };
    const h = harness({ maxSeqsPerEpoch: 6, schedule: (fn) => later.push(fn), ...(nextEpoch ? { nextEpoch } : {}) });
    h.node.start();
    h.verify();
    // Datagrams so far: hello, challenge, alive and request (3); seqs: none.
    for (const i of [1, 2, 3, 4, 5]) h.node.localChange(addLocal(h, i), 'new');
    run();
    h.node.tick();
    expect(h.node.epoch).toBe(SELF_EPOCH);
    expect(h.counters()).toMatchObject({ epochRollovers: 0, datagramsSent: 4 });
    h.node.localChange(addLocal(h, 6), 'new');
    run();
    // A datagram of the peer whose ack falls due at the tick that rolls over.
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'ct-new', seq: PEER_SEQ, entry: entry(9) }]));
    run();
    h.drain();
    h.clock.now += T.ackDelayMs;
    h.node.tick();
    expect(h.node.epoch).toBe(next);
    expect(h.counters()).toMatchObject({ epochRollovers: 1, hellosSent: 2, acksSent: 1 });
    const out = h.drainWithEpoch();
    // What was on its way goes in the old epoch, first; the new epoch starts with the hello.
    expect(out).toEqual([
      { epoch: SELF_EPOCH, m: { kind: 'ack', peer: PEER, epoch: PEER_EPOCH, from: PEER_SEQ, to: PEER_SEQ } },
      { epoch: next, m: { kind: 'hello', seq: FIRST_SEQ + 6 } },
    ]);
    expect(h.node.stats().epoch).toBe(next);
    expect(h.logLines).toContain('info epoch rollover: a new epoch long before sequence numbers could wrap');
    // The peer still addresses the epoch before until it has verified the new one.
    expect(h.node.stats().resendQueue.length).toBe(6);
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [{ kind: 'ack', peer: SELF, epoch: SELF_EPOCH, from: FIRST_SEQ, to: FIRST_SEQ + 3 }]),
    );
    expect(h.node.stats().resendQueue.length).toBe(2);
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [{ kind: 'ack', peer: SELF, epoch: next, from: FIRST_SEQ + 4, to: FIRST_SEQ + 5 }]),
    );
    expect(h.node.stats().resendQueue.length).toBe(0);
    // No second rollover before another maxSeqsPerEpoch seqs (or datagrams) in the new epoch.
    h.node.localChange(addLocal(h, 7), 'new');
    run();
    h.node.tick();
    expect(h.counters().epochRollovers).toBe(1);
  });

  it('rolls over after maxSeqsPerEpoch datagrams too, even with no seq used', () => {
    const h = harness({ maxSeqsPerEpoch: 4 });
    h.node.start();
    h.verify();
    // hello, challenge, alive and request: 3 datagrams.
    h.node.tick();
    expect(h.counters().epochRollovers).toBe(0);
    h.node.requestResync();
    h.node.tick();
    expect(h.counters().epochRollovers).toBe(1);
    expect(h.node.epoch).toBe(SELF_EPOCH + 1);
    expect(h.node.nextSeq).toBe(FIRST_SEQ);
  });

  it('an ack to an epoch of ours that never was (no rollover yet) is not ours', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.localChange(addLocal(h, 1), 'new');
    // epochBefore is 0 before any rollover: an ack naming epoch 0 must not match it.
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'ack', peer: SELF, epoch: 0, from: FIRST_SEQ, to: FIRST_SEQ }]));
    expect(h.node.stats().resendQueue.length).toBe(1);
  });

  it("a peer's rollover (its answer names a first epoch at or below the one believed) carries on: no restart, no bulk", () => {
    const h = harness();
    addLocal(h, 1);
    h.node.start();
    h.verify();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'ct-new', seq: PEER_SEQ, entry: entry(9) }]));
    h.sink.calls.length = 0;
    h.clock.now += 1000;
    h.verify(PEER, PEER_EPOCH + 1, PEER_SEQ + 1, PEER_EPOCH);
    expect(h.events.filter((e) => e.startsWith('restart'))).toEqual([]);
    expect(h.sink.calls).toEqual([`continue ${PEER} ${PEER_EPOCH} ${PEER_EPOCH + 1} ${carryFloor(PEER_SEQ + 1)}`]);
    expect(h.counters().bulksWanted).toEqual({ request: 0, hello: 0, restart: 0, gap: 0 });
    h.node.receive(h.from(PEER, PEER_EPOCH + 1, [{ kind: 'ct-update', seq: PEER_SEQ + 1, entry: entry(9) }]));
    expect(h.sink.calls.at(-1)).toBe(`ct update ${PEER} ${PEER_EPOCH + 1} ${PEER_SEQ + 1}`);
    expect(h.node.stats().peers[0]).toMatchObject({ epoch: PEER_EPOCH + 1, restarts: 0, state: 'up' });
  });
});

describe('SyncNode notrack bulks', () => {
  it.each([
    [0, 'debug'],
    [2, 'info'],
  ])('a whole bulk removes what is older than its start (%i removed: logged at %s)', (removed, level) => {
    const h = harness({}, 'notrack');
    h.node.start();
    h.verify();
    h.sink.removed = removed;
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 3, peer: SELF },
        { kind: 'ct-update', seq: PEER_SEQ + 1, entry: entry(1) },
        { kind: 'bulk-end', seq: PEER_SEQ + 2, bulkId: 3, peer: SELF, count: 1 },
      ]),
    );
    // Judged a little later: stragglers of the bulk may still come.
    expect(h.counters().bulksReceived).toBe(0);
    h.clock.now += T.nackRetryMs;
    h.node.tick();
    expect(h.sink.calls).toEqual([
      `ct update ${PEER} ${PEER_EPOCH} ${PEER_SEQ + 1}`,
      `begin ${PEER} ${PEER_EPOCH} ${PEER_SEQ}`,
      `end ${PEER}`,
    ]);
    expect(h.counters()).toMatchObject({ bulksReceived: 1, bulkStaleRemoved: removed, bulksStarted: 0 });
    expect(h.logLines.filter((l) => l.endsWith(' bulk received'))).toEqual([`${level} bulk received`]);
    expect(h.events).toContain(`bulk ${PEER} ${removed}`);
    expect(h.node.firstSyncDone).toBe(true);
  });

  it('a bulk that lost what it carried removes nothing yet, but counts as received', () => {
    const h = harness({}, 'notrack');
    h.node.start();
    h.verify();
    h.sink.removed = 5;
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 3, peer: SELF },
        { kind: 'bulk-end', seq: PEER_SEQ + 3, bulkId: 3, peer: SELF, count: 2 },
      ]),
    );
    h.clock.now += T.nackRetryMs;
    h.node.tick();
    expect(h.sink.calls).toEqual([]);
    expect(h.counters()).toMatchObject({ bulksReceived: 1, bulkStaleRemoved: 0, incompleteBulks: 1 });
    expect(h.logLines.filter((l) => l.endsWith(' bulk received'))).toEqual(['debug bulk received']);
    expect(h.ctxOf('debug bulk received')).toEqual([
      { peer: PEER, entries: 2, staleRemoved: 0, missing: 2, removeBefore: null },
    ]);
    expect(h.events).toContain(`bulk ${PEER} 0`);
  });
});

describe('SyncNode challenges and stats of believed peers', () => {
  it('answers a challenge of a believed peer in its epoch, once per nonce; one to another node is not ours', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    const ch: WireMessage = { kind: 'challenge', peer: SELF, nonceHi: 3, nonceLo: 4 };
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [ch]))).toEqual({ ok: true, live: true });
    expect(h.drain()).toEqual([
      {
        kind: 'challenge-response',
        seq: FIRST_SEQ,
        peer: PEER,
        epoch: PEER_EPOCH,
        nonceHi: 3,
        nonceLo: 4,
        firstEpoch: SELF_EPOCH,
      },
    ]);
    h.clock.now += 1000;
    h.node.receive(h.from(PEER, PEER_EPOCH, [ch]));
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'challenge', peer: 'fw3', nonceHi: 5, nonceLo: 6 }]));
    expect(h.drain().filter((m) => m.kind === 'challenge-response')).toEqual([]);
    expect(h.counters()).toMatchObject({ challengesReceived: 2, challengesAnswered: 1, challengesIgnored: 1 });
  });

  it('a response with another nonce, or addressed to another node, believes nothing', () => {
    const h = harness();
    h.node.start();
    h.drain();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
    const ch = h.drain().find((m) => m.kind === 'challenge');
    if (ch?.kind !== 'challenge') throw new Error('no challenge');
    const answer = (peer: string, nonceLo: number): WireMessage => ({
      kind: 'challenge-response',
      seq: PEER_SEQ,
      peer,
      epoch: SELF_EPOCH,
      nonceHi: ch.nonceHi,
      nonceLo,
      firstEpoch: 0,
    });
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [answer(SELF, (ch.nonceLo + 1) >>> 0)])).ok).toBe(false);
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [answer('fw3', ch.nonceLo)])).ok).toBe(false);
    expect(h.node.stats().peers).toEqual([]);
    expect(h.counters()).toMatchObject({ responsesIgnored: 1, responsesAccepted: 0, unverifiedDatagrams: 3 });
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [answer(SELF, ch.nonceLo)])).ok).toBe(true);
  });

  it('a stale datagram is logged with the epoch believed', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(h.from(PEER, PEER_EPOCH - 3, [{ kind: 'alive', seq: 1 }]));
    expect(h.ctxOf('warn sync datagram of an older epoch of the peer dropped (late or replayed)')).toEqual([
      { kind: 'stale-epoch', peer: PEER, epoch: PEER_EPOCH - 3, believed: PEER_EPOCH },
    ]);
  });

  it('stats name each peer with its receiver and transmitter; the share divisor counts peers or cluster.nodes', () => {
    const h = harness();
    h.node.start();
    expect(h.node.shareDivisor).toBe(1);
    h.verify();
    h.verify('fw3', 900, 50);
    expect(h.node.shareDivisor).toBe(2);
    const st = h.node.stats();
    expect(st.peers.map((p) => [p.id, p.rx?.epoch, p.tx === null])).toEqual([
      [PEER, PEER_EPOCH, false],
      ['fw3', 900, false],
    ]);
    const listed = harness({ admission: { nodes: [SELF, PEER, 'fw3', 'fw4'], maxNodes: 16, pruneAfterMs: 60_000 } });
    expect(listed.node.shareDivisor).toBe(3);
    expect(listed.node.stats().admission.nodes).toEqual([SELF, PEER, 'fw3', 'fw4']);
  });
});

/** A datagram of the peer with `n` messages of a kind of a later version appended (field 17 of the oneof). */
function withUnknownMessages(d: Buffer, n: number): Buffer {
  // Body field 3 (a message) holding field 17, length-delimited, one zero byte: 1a 04 8a 01 01 00.
  const unknown = Buffer.from('1a048a010100', 'hex');
  return Buffer.concat([d, ...Array.from({ length: n }, () => unknown)]);
}

describe('SyncNode: what each check of the message handlers decides', () => {
  it('counts the messages of a later version it skipped, and handles the rest', () => {
    const h = harness();
    h.node.start();
    h.verify();
    const d = withUnknownMessages(h.from(PEER, PEER_EPOCH, [{ kind: 'ct-new', seq: PEER_SEQ, entry: entry(1) }]), 2);
    expect(h.node.receive(d)).toEqual({ ok: true, live: true });
    // The answer to our challenge was the first message.
    expect(h.counters()).toMatchObject({ unknownMessages: 2, messagesReceived: 2, applied: 1 });
    h.node.receive(withUnknownMessages(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ + 1 }]), 1));
    expect(h.counters()).toMatchObject({ unknownMessages: 3, messagesReceived: 3 });
  });

  it('an alive announcing seqs never received NACKs them (a lost tail)', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'ct-new', seq: PEER_SEQ, entry: entry(1) }]));
    h.drain();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ + 3 }]));
    expect(h.drain().filter((m) => m.kind === 'nack')).toEqual([
      { kind: 'nack', peer: PEER, epoch: PEER_EPOCH, from: PEER_SEQ + 1, to: PEER_SEQ + 2 },
    ]);
    expect(h.counters()).toMatchObject({ nacksSent: 1, nackedMessages: 2 });
  });

  it('a NACK counts only when addressed to us and our epoch, past the resend throttle too', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.localChange(addLocal(h, 1), 'new');
    h.drain();
    const nack = (peer: string, epoch: number): WireMessage => ({ kind: 'nack', peer, epoch, from: FIRST_SEQ, to: FIRST_SEQ });
    for (const [peer, epoch] of [
      ['fw3', SELF_EPOCH],
      [SELF, SELF_EPOCH + 1],
      ['fw3', SELF_EPOCH + 1],
    ] as const) {
      h.clock.now += 1000;
      h.node.receive(h.from(PEER, PEER_EPOCH, [nack(peer, epoch)]));
      expect(h.drain().filter((m) => m.kind === 'ct-new')).toEqual([]);
      expect(h.counters().nacksReceived).toBe(0);
    }
    h.clock.now += 1000;
    h.node.receive(h.from(PEER, PEER_EPOCH, [nack(SELF, SELF_EPOCH)]));
    expect(h.drain().filter((m) => m.kind === 'ct-new')).toEqual([{ kind: 'ct-new', seq: FIRST_SEQ, entry: entry(1) }]);
    expect(h.counters().nacksReceived).toBe(1);
  });

  it('only a challenge-response is taken as an answer to our challenge: other messages to us are no ignored response', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.localChange(addLocal(h, 1), 'new');
    h.drain();
    h.clock.now += 1000;
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'ack', peer: SELF, epoch: SELF_EPOCH, from: FIRST_SEQ, to: FIRST_SEQ },
        { kind: 'hello-ack', peer: SELF, epoch: SELF_EPOCH },
        { kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request: 1 },
        { kind: 'challenge', peer: SELF, nonceHi: 1, nonceLo: 2 },
      ]),
    );
    expect(h.counters()).toMatchObject({
      responsesIgnored: 0,
      responsesAccepted: 1,
      helloAcksReceived: 1,
      resyncRequestsReceived: 1,
      challengesAnswered: 1,
    });
    // The ack freed the entry; the request's bulk (start, entry, end) waits for its own.
    expect(h.node.stats().resendQueue).toMatchObject({ length: 3, front: FIRST_SEQ + 1 });
  });

  it('a stale datagram challenges back only for a challenge: another message addressed to us draws none', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    h.clock.now += 1000;
    const stale = (m: WireMessage): Buffer => h.from(PEER, PEER_EPOCH - 1, [m]);
    h.node.receive(stale({ kind: 'ack', peer: SELF, epoch: SELF_EPOCH, from: 1, to: 1 }));
    h.node.receive(stale({ kind: 'resync-request', peer: SELF, epoch: SELF_EPOCH, request: 9 }));
    expect(h.drain()).toEqual([]);
    expect(h.counters()).toMatchObject({ staleEpochDatagrams: 2, challengesSent: 1 });
    h.node.receive(stale({ kind: 'challenge', peer: SELF, nonceHi: 1, nonceLo: 2 }));
    expect(h.drain().map((m) => m.kind)).toEqual(['challenge']);
    expect(h.counters().challengesSent).toBe(2);
  });

  it('an answer in the epoch already believed (to a challenge a stale datagram drew) keeps the receiver as it is', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        { kind: 'bulk-start', seq: PEER_SEQ, bulkId: 1, peer: SELF },
        { kind: 'bulk-end', seq: PEER_SEQ + 1, bulkId: 1, peer: SELF, count: 0 },
      ]),
    );
    const rx = h.node.stats().peers[0]?.rx;
    expect(rx).toMatchObject({ epoch: PEER_EPOCH, expected: PEER_SEQ + 2, synced: true, wantBulk: false });
    h.drain();
    h.clock.now += 1000;
    h.node.receive(h.from(PEER, PEER_EPOCH - 1, [{ kind: 'challenge', peer: SELF, nonceHi: 1, nonceLo: 2 }]));
    const ch = h.drain().find((m) => m.kind === 'challenge');
    if (ch?.kind !== 'challenge') throw new Error('no challenge');
    const answer: WireMessage = {
      kind: 'challenge-response',
      seq: PEER_SEQ + 50,
      peer: SELF,
      epoch: SELF_EPOCH,
      nonceHi: ch.nonceHi,
      nonceLo: ch.nonceLo,
      firstEpoch: 0,
    };
    expect(h.node.receive(h.from(PEER, PEER_EPOCH, [answer]))).toEqual({ ok: true, live: true });
    expect(h.counters().responsesAccepted).toBe(2);
    expect(h.node.stats().peers[0]?.rx).toEqual(rx);
    expect(h.ctxOf('info peer epoch verified')).toHaveLength(1);
    expect(h.node.stats().peerCounters).toEqual({ ups: 1, downs: 0, restarts: 0 });
  });

  it("a listed peer pruned of its receiver, then rolled over: believed afresh, as a restart (nothing to carry on)", () => {
    const h = harness({ admission: { nodes: [SELF, PEER], maxNodes: 16, pruneAfterMs: 5000 } });
    h.node.start();
    h.verify();
    h.clock.now += T.peerTimeoutMs + 5001;
    h.node.tick();
    h.node.tick();
    expect(h.node.stats().peers.map((p) => [p.id, p.state, p.rx, p.tx])).toEqual([[PEER, 'down', null, null]]);
    expect(h.ctxOf('info peer pruned: down too long, its sync state freed')).toEqual([{ peer: PEER }]);
    h.sink.calls.length = 0;
    h.events.length = 0;
    h.verify(PEER, PEER_EPOCH + 1, PEER_SEQ + 10, PEER_EPOCH);
    expect(h.sink.calls).toEqual([]);
    expect(h.ctxOf('info peer epoch verified').at(-1)).toEqual({
      peer: PEER,
      epoch: PEER_EPOCH + 1,
      previousEpoch: PEER_EPOCH,
    });
    expect(h.events).toEqual([`restart ${PEER} ${PEER_EPOCH + 1} ${PEER_EPOCH}`, `up ${PEER} ${PEER_EPOCH + 1}`]);
    expect(h.node.stats().peers[0]).toMatchObject({ state: 'up', epoch: PEER_EPOCH + 1, rx: { epoch: PEER_EPOCH + 1 } });
  });

  it('after a rollover an ack naming neither our epoch nor the one before is not ours; the rollover is logged with its numbers', () => {
    const h = harness({ maxSeqsPerEpoch: 4 });
    h.node.start();
    h.verify();
    // hello, challenge, alive and request, the entry: 4 datagrams.
    h.node.localChange(addLocal(h, 1), 'new');
    h.node.tick();
    expect(h.node.epoch).toBe(SELF_EPOCH + 1);
    expect(h.ctxOf('info epoch rollover: a new epoch long before sequence numbers could wrap')).toEqual([
      { epoch: SELF_EPOCH + 1, previousEpoch: SELF_EPOCH, seqsUsed: 1, datagramsSent: 4 },
    ]);
    const ack = (epoch: number): Buffer =>
      h.from(PEER, PEER_EPOCH, [{ kind: 'ack', peer: SELF, epoch, from: FIRST_SEQ, to: FIRST_SEQ }]);
    h.node.receive(ack(SELF_EPOCH + 7));
    expect(h.node.stats().resendQueue.length).toBe(1);
    h.node.receive(ack(SELF_EPOCH));
    expect(h.node.stats().resendQueue.length).toBe(0);
  });
});

describe('SyncNode: peers going down and coming back', () => {
  it('a resync request is not repeated to a peer down', () => {
    const h = harness();
    h.node.start();
    h.verify();
    const sent = h.counters().resyncRequestsSent;
    h.drain();
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    expect(h.node.stats().peers[0]).toMatchObject({ state: 'down', rx: { wantBulk: true } });
    expect(h.drain().filter((m) => m.kind === 'resync-request')).toEqual([]);
    expect(h.counters().resyncRequestsSent).toBe(sent);
  });

  it('a peer back up is asked for its state at once, not after the backoff of the requests before', () => {
    const h = harness();
    h.node.start();
    h.verify();
    h.drain();
    // The second request, just before the peer goes down: the next would be 2 s later.
    h.clock.now += T.peerTimeoutMs;
    h.node.tick();
    expect(h.drain().filter((m) => m.kind === 'resync-request')).toEqual([
      { kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 2 },
    ]);
    h.clock.now += 1;
    h.node.tick();
    expect(h.node.stats().peers[0]?.state).toBe('down');
    h.drain();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
    expect(h.drain()).toEqual([
      { kind: 'alive', seq: FIRST_SEQ },
      { kind: 'resync-request', peer: PEER, epoch: PEER_EPOCH, request: 3 },
    ]);
  });

  it('a peer down holds no room in the resend queue: what waited goes out', () => {
    const h = harness({ timers: { ...T, resendQueueSize: 4 } });
    h.node.start();
    h.verify();
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    expect(h.events).toEqual([`up ${PEER} ${PEER_EPOCH}`, `down ${PEER}`]);
    h.drain();
    for (const i of [1, 2, 3, 4, 5, 6]) h.node.localChange(addLocal(h, i), 'new');
    expect(h.drain().filter((m) => m.kind === 'ct-new')).toHaveLength(6);
    expect(h.node.stats().sender.queueLength).toBe(0);
  });

  it('a restart with no onPeerRestart callback', () => {
    const h = harness({ onPeerRestart: undefined });
    h.node.start();
    h.verify();
    h.clock.now += 1000;
    h.verify(PEER, PEER_EPOCH + 10, 300);
    expect(h.node.stats().peers[0]).toMatchObject({ epoch: PEER_EPOCH + 10, restarts: 1, state: 'up' });
    expect(h.counters().bulksWanted.restart).toBe(1);
  });
});

describe('SyncNode: sending at the edges', () => {
  it('a bulk with no localExpectKeys carries the entries alone', () => {
    const h = harness({ localExpectKeys: undefined });
    h.node.start();
    h.drain();
    addLocal(h, 1);
    expect(h.node.bulkSend()).toBe(1);
    expect(h.drain().map((m) => m.kind)).toEqual(['bulk-start', 'ct-update', 'bulk-end']);
    expect(h.counters()).toMatchObject({ bulksSent: 1, bulkEntriesSent: 1 });
  });

  it('control messages that overflow one datagram go on in the next', () => {
    const id = (i: number): string => `peer-${String(i).padStart(2, '0')}-${'x'.repeat(50)}`;
    const h = harness({ mtu: 512 });
    h.node.start();
    for (let i = 0; i < 10; i++) h.verify(id(i), 900 + i, 50);
    h.drain();
    const datagrams = h.counters().datagramsSent;
    h.node.requestResync();
    expect(h.sent.length).toBeGreaterThan(1);
    const n = h.sent.length;
    expect(h.drain()).toEqual(
      Array.from({ length: 10 }, (_x, i) => ({ kind: 'resync-request', peer: id(i), epoch: 900 + i, request: 11 + i })),
    );
    expect(h.counters().datagramsSent).toBe(datagrams + n);
  });

  it('a node closed while a flush is under way (by its send callback) sends nothing more', () => {
    const later: Array<() => void> = [];
    const out: Buffer[] = [];
    let closeOnSend = false;
    const box: { node?: SyncNode } = {};
    const h = harness({
      schedule: (fn) => later.push(fn),
      send: (b) => {
        out.push(b);
        if (closeOnSend) box.node?.close();
      },
    });
    box.node = h.node;
    h.node.start();
    expect(out).toHaveLength(1);
    for (let i = 1; i <= 100; i++) h.node.localChange(addLocal(h, i), 'new');
    closeOnSend = true;
    for (const fn of later.splice(0)) fn();
    expect(out).toHaveLength(2);
    expect(h.counters().datagramsSent).toBe(2);
  });

  it('challenge nonces come from the platform CSPRNG when no random() is given', () => {
    const spy = vi.spyOn(globalThis.crypto, 'getRandomValues').mockImplementation(<T extends ArrayBufferView | null>(a: T): T => {
      if (a instanceof Uint32Array) a[0] = 0x89abcdef;
      return a;
    });
    try {
      const h = harness({ random: undefined });
      h.node.start();
      h.drain();
      h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
      expect(h.drain()).toEqual([{ kind: 'challenge', peer: PEER, nonceHi: 0x89abcdef, nonceLo: 0x89abcdef }]);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('SyncNode: state at start', () => {
  it('inSync asked before any bulk is false, and still false when asked again', () => {
    const h = harness();
    h.node.start();
    h.verify();
    expect(h.node.inSync).toBe(false);
    expect(h.node.inSync).toBe(false);
    h.clock.now += T.peerTimeoutMs + 1;
    h.node.tick();
    // No peer up and no bulk ever: still nothing to be in sync with.
    expect(h.node.inSync).toBe(false);
    expect(h.node.inSync).toBe(false);
  });

  it('without firstSeq the first seq is drawn from Math.random over the whole u32 range', () => {
    const spy = vi.spyOn(Math, 'random').mockReturnValue(0.75);
    try {
      const h = harness({ firstSeq: undefined });
      h.node.start();
      expect(h.drain()).toEqual([{ kind: 'hello', seq: 0xc000_0000 }]);
      expect(h.node.nextSeq).toBe(0xc000_0000);
    } finally {
      spy.mockRestore();
    }
  });

  it("a NACK of what the resend queue no longer holds wants a bulk for the gap, served by the next tick, even in the peer's first datagram", () => {
    const h = harness({ timers: { ...T, resendQueueSize: 4 } });
    h.node.start();
    // Six changes before any peer is known: nothing holds the queue, so the first two are evicted.
    for (const i of [1, 2, 3, 4, 5, 6]) h.node.localChange(addLocal(h, i), 'new');
    expect(h.node.stats().resendQueue).toMatchObject({ length: 4, front: FIRST_SEQ + 2 });
    h.drain();
    h.node.receive(h.from(PEER, PEER_EPOCH, [{ kind: 'alive', seq: PEER_SEQ }]));
    const ch = h.drain().find((m) => m.kind === 'challenge');
    if (ch?.kind !== 'challenge') throw new Error('no challenge');
    // Its answer and, in the same datagram, a NACK of our first seq.
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [
        {
          kind: 'challenge-response',
          seq: PEER_SEQ,
          peer: SELF,
          epoch: SELF_EPOCH,
          nonceHi: ch.nonceHi,
          nonceLo: ch.nonceLo,
          firstEpoch: 0,
        },
        { kind: 'nack', peer: SELF, epoch: SELF_EPOCH, from: FIRST_SEQ, to: FIRST_SEQ },
      ]),
    );
    expect(h.counters()).toMatchObject({ resyncsForGap: 1, bulksSent: 0 });
    expect(h.node.stats().peers[0]?.tx?.bulkWanted).toBe(true);
    expect(h.drain().filter((m) => m.kind === 'bulk-start')).toEqual([]);
    h.node.tick();
    expect(h.counters().bulksSent).toBe(1);
    // Queued; it goes out once the peer's ack makes room.
    h.node.receive(
      h.from(PEER, PEER_EPOCH, [{ kind: 'ack', peer: SELF, epoch: SELF_EPOCH, from: FIRST_SEQ, to: FIRST_SEQ + 5 }]),
    );
    expect(h.drain().filter((m) => m.kind === 'bulk-start')).toEqual([
      { kind: 'bulk-start', seq: FIRST_SEQ + 6, bulkId: 1, peer: PEER },
    ]);
  });
});
