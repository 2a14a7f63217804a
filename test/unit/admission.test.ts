// Admission (src/sync/engine/admission.ts) on its own and inside a SyncNode:
// refused node ids cost nothing (no peer entry, no receiver, no label), the
// maxNodes bound holds under a flood of forged ids, and peers down for long
// are pruned. Counts of peers and receivers are the measure, not time.
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { silentLogger } from '../../src/log.js';
import { Admission, type AdmissionConfig } from '../../src/sync/engine/admission.js';
import { SyncNode } from '../../src/sync/engine/sync-node.js';
import { UdpChannel } from '../../src/sync/transport/udp-channel.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { captureLogger } from './doubles.js';
import { CLUSTER, typicalTcpEntry } from './wire-helpers.js';

const SELF = 'fw1';
const TIMERS = DEFAULTS.sync.reliability;

function datagram(node: string, epoch: number, messages: WireMessage[]): Buffer {
  const enc = new DatagramEncoder({ cluster: CLUSTER, node, epoch, mtu: 1472 });
  for (const m of messages) if (!enc.add(m)) throw new Error('does not fit');
  return enc.flush()!;
}

const SELF_EPOCH = 77;

function node(admission: AdmissionConfig | undefined, mode: 'ftfw' | 'notrack' = 'ftfw', limit = 1000) {
  const clock = { now: 1_000_000 };
  const sent: Buffer[] = [];
  const external = new ExternalCache({ limit, now: () => clock.now });
  const sync = new SyncNode({
    nodeId: SELF,
    cluster: CLUSTER,
    epoch: SELF_EPOCH,
    mtu: 1472,
    mode,
    external,
    lookup: () => undefined,
    localKeys: () => [],
    send: (b) => sent.push(b),
    now: () => clock.now,
    schedule: () => {},
    log: silentLogger,
    timers: TIMERS,
    admission,
  });
  sync.start();
  /** Messages sent since the last call. */
  const drain = (): WireMessage[] => {
    const out: WireMessage[] = [];
    for (const b of sent.splice(0)) {
      const r = decodeDatagram(b, { cluster: CLUSTER });
      if (r.ok) out.push(...r.messages);
    }
    return out;
  };
  /**
   * First contact of `id` in `epoch`, as a live peer makes it: its datagram
   * draws a challenge, and its answer (in that epoch) makes it believed.
   */
  const verify = (id: string, epoch: number): void => {
    drain();
    expect(sync.receive(datagram(id, epoch, [alive()])).ok).toBe(false);
    const ch = drain().find((m) => m.kind === 'challenge' && m.peer === id);
    if (ch?.kind !== 'challenge') throw new Error(`no challenge for ${id}`);
    const answer: WireMessage = {
      kind: 'challenge-response',
      seq: 1,
      peer: SELF,
      epoch: SELF_EPOCH,
      nonceHi: ch.nonceHi,
      nonceLo: ch.nonceLo,
      firstEpoch: 0,
    };
    expect(sync.receive(datagram(id, epoch, [answer])).ok).toBe(true);
    drain();
  };
  return { sync, external, clock, drain, verify };
}

const alive = (seq = 1): WireMessage => ({ kind: 'alive', seq });

describe('Admission', () => {
  const peers = (ids: string[]) => ({ has: (id: string) => ids.includes(id), size: ids.length });
  it.each([
    { name: 'any id while room is left', cfg: { maxNodes: 2 }, tracked: ['a'], id: 'b', verdict: 'admitted' },
    { name: 'a tracked id at the limit', cfg: { maxNodes: 2 }, tracked: ['a', 'b'], id: 'a', verdict: 'admitted' },
    { name: 'a new id at the limit', cfg: { maxNodes: 2 }, tracked: ['a', 'b'], id: 'c', verdict: 'node-limit' },
    { name: 'a listed id', cfg: { nodes: ['fw1', 'fw2'], maxNodes: 2 }, tracked: [], id: 'fw2', verdict: 'admitted' },
    { name: 'an unlisted id', cfg: { nodes: ['fw1', 'fw2'], maxNodes: 2 }, tracked: [], id: 'fw3', verdict: 'unknown-node' },
    { name: 'an unlisted id, limit reached too', cfg: { nodes: ['fw2'], maxNodes: 1 }, tracked: ['fw2'], id: 'x', verdict: 'unknown-node' },
  ] as const)('$name: $verdict', ({ cfg, tracked, id, verdict }) => {
    const a = new Admission({ ...cfg, pruneAfterMs: 1000 }, SELF);
    expect(a.check(id, peers([...tracked]))).toBe(verdict);
    expect(a.counters).toEqual({
      unknownNode: verdict === 'unknown-node' ? 1 : 0,
      nodeLimit: verdict === 'node-limit' ? 1 : 0,
      pruned: 0,
    });
  });

  it.each([
    { name: 'listed, self included', nodes: ['fw1', 'fw2', 'fw3'], tracked: 1, divisor: 2 },
    { name: 'listed, self not included', nodes: ['fw2', 'fw3', 'fw4'], tracked: 0, divisor: 3 },
    { name: 'unlisted, none tracked yet', nodes: undefined, tracked: 0, divisor: 1 },
    { name: 'unlisted, three tracked', nodes: undefined, tracked: 3, divisor: 3 },
  ])('share divisor $name: $divisor', ({ nodes, tracked, divisor }) => {
    expect(new Admission({ nodes, maxNodes: 16, pruneAfterMs: 1000 }, SELF).shareDivisor(tracked)).toBe(divisor);
  });

  it('prunes peers silent for peerTimeoutMs + pruneAfterMs, never an up one', () => {
    const a = new Admission({ maxNodes: 4, pruneAfterMs: 10_000 }, SELF);
    const list = [
      { id: 'gone', state: 'down', lastSeenMs: 0 },
      { id: 'recent', state: 'down', lastSeenMs: 200 },
      { id: 'up', state: 'up', lastSeenMs: 0 },
    ];
    // 13 500 ms = 3 500 (peer timeout) + 10 000: not yet beyond.
    expect(a.prunable(list, 13_500, 3500)).toEqual([]);
    expect(a.prunable(list, 13_501, 3500)).toEqual(['gone']);
    expect(a.prunable(list, 13_701, 3500)).toEqual(['gone', 'recent']);
  });
});

describe('Admission: what it logs and reports', () => {
  const peers = (ids: string[]) => ({ has: (id: string) => ids.includes(id), size: ids.length });

  it('logs each kind of refusal once, with the first refused id; the counters take the rest', () => {
    const { log, lines } = captureLogger();
    const a = new Admission({ nodes: ['fw1', 'fw2', 'fw3'], maxNodes: 1, pruneAfterMs: 1000 }, SELF, log);
    expect(a.check('x1', peers([]))).toBe('unknown-node');
    expect(a.check('x2', peers([]))).toBe('unknown-node');
    expect(a.check('fw3', peers(['fw2']))).toBe('node-limit');
    expect(a.check('fw3', peers(['fw2']))).toBe('node-limit');
    expect(a.check('fw2', peers(['fw2']))).toBe('admitted');
    expect(a.counters).toEqual({ unknownNode: 2, nodeLimit: 2, pruned: 0 });
    expect(lines).toEqual([
      {
        level: 'warn',
        msg: 'datagram from a node id not in cluster.nodes dropped (logged once; see stats sync.admission)',
        ctx: { node: 'x1' },
      },
      {
        level: 'warn',
        msg: 'cluster.maxNodes peers tracked: datagrams of further node ids dropped (logged once; see stats sync.admission)',
        ctx: { node: 'fw3', maxNodes: 1 },
      },
    ]);
  });

  it('logs a node-limit refusal even after many unknown ids, and the other way round', () => {
    const { log, lines } = captureLogger();
    const a = new Admission({ maxNodes: 1, pruneAfterMs: 1000 }, SELF, log);
    expect(a.check('b', peers(['a']))).toBe('node-limit');
    expect(lines.map((l) => l.ctx)).toEqual([{ node: 'b', maxNodes: 1 }]);
    const listed = captureLogger();
    const l = new Admission({ nodes: ['a'], maxNodes: 1, pruneAfterMs: 1000 }, SELF, listed.log);
    expect(l.check('z', peers(['a']))).toBe('unknown-node');
    expect(listed.lines.map((x) => x.ctx)).toEqual([{ node: 'z' }]);
  });

  it('says whether ids are restricted, and which are listed', () => {
    const open = new Admission({ maxNodes: 4, pruneAfterMs: 1000 }, SELF);
    const closed = new Admission({ nodes: ['fw1', 'fw2'], maxNodes: 4, pruneAfterMs: 1000 }, SELF);
    expect([open.restricted, closed.restricted]).toEqual([false, true]);
    expect([open.isListed('fw2'), closed.isListed('fw2'), closed.isListed('fw9')]).toEqual([false, true, false]);
  });

  it('reports its settings, a copy of the list, and the counters as they are', () => {
    const nodes = ['fw1', 'fw2'];
    const a = new Admission({ nodes, maxNodes: 4, pruneAfterMs: 1000 }, SELF);
    a.check('x', peers([]));
    const s = a.stats(3, 2);
    expect(s).toEqual({ nodes: ['fw1', 'fw2'], maxNodes: 4, tracked: 3, receivers: 2, counters: { unknownNode: 1, nodeLimit: 0, pruned: 0 } });
    expect(s.nodes).not.toBe(nodes);
    a.check('y', peers([]));
    expect(s.counters.unknownNode).toBe(1);
    expect(new Admission({ maxNodes: 2, pruneAfterMs: 1 }, SELF).stats(0, 0)).toEqual({
      nodes: null,
      maxNodes: 2,
      tracked: 0,
      receivers: 0,
      counters: { unknownNode: 0, nodeLimit: 0, pruned: 0 },
    });
  });
});

describe('SyncNode admission', () => {
  it('an unknown id (cluster.nodes) allocates nothing: no peer, no receiver, no entry, no stats line', () => {
    const { sync, external, verify, drain } = node({ nodes: ['fw1', 'fw2'], maxNodes: 16, pruneAfterMs: 60_000 });
    const entry: WireMessage = { kind: 'ct-new', seq: 1, entry: typicalTcpEntry(1) };
    drain(); // our own hello at start
    expect(sync.receive(datagram('intruder', 5, [{ kind: 'hello', seq: 1 }, entry])).ok).toBe(false);
    const st = sync.stats();
    expect(st.peers).toEqual([]);
    expect(st.admission).toMatchObject({ tracked: 0, receivers: 0, counters: { unknownNode: 1, nodeLimit: 0 } });
    expect(external.size).toBe(0);
    expect(external.origins().size).toBe(0);
    expect(st.counters.messagesReceived).toBe(0);
    // Not even a challenge goes out to it.
    expect(drain()).toEqual([]);
    // The listed peer is taken as before (a challenge, answered, first).
    verify('fw2', 5);
    expect(sync.receive(datagram('fw2', 5, [alive(2)])).ok).toBe(true);
    expect(sync.stats().peers.map((p) => p.id)).toEqual(['fw2']);
    expect(sync.stats().admission).toMatchObject({ tracked: 1, receivers: 1 });
  });

  it.each(['ftfw', 'notrack'] as const)('%s: 20,000 forged ids leave at most maxNodes ids with state, and cost one challenge each at most', (mode) => {
    const max = 16;
    const { sync, verify, drain } = node({ maxNodes: max, pruneAfterMs: 60_000 }, mode);
    verify('fw2', 9);
    const N = 20_000;
    let accepted = 0;
    for (let i = 0; i < N; i++) if (sync.receive(datagram(`forged-${i}`, i + 1, [alive()])).ok) accepted++;
    const st = sync.stats();
    // None is believed: none answered a challenge.
    expect(accepted).toBe(0);
    expect(st.peers.map((p) => p.id)).toEqual(['fw2']);
    expect(st.admission.receivers).toBe(1);
    // fw2 and the first max - 1 forged ids hold the places; the rest got nothing.
    expect(st.admission.tracked).toBe(max);
    expect(st.admission.counters.nodeLimit).toBe(N - (max - 1));
    expect(drain().filter((m) => m.kind === 'challenge')).toHaveLength(max - 1);
    // The real peer, admitted first, is still heard.
    expect(sync.receive(datagram('fw2', 9, [alive(2)])).ok).toBe(true);
    expect(sync.stats().peers.find((p) => p.id === 'fw2')?.state).toBe('up');
  });

  it('an id that never answers its challenge gives its place back after peerTimeoutMs', () => {
    const { sync, clock, verify } = node({ maxNodes: 1, pruneAfterMs: 60_000 });
    expect(sync.receive(datagram('forged', 1, [alive()])).ok).toBe(false);
    expect(sync.stats().admission.tracked).toBe(1);
    expect(sync.receive(datagram('fw2', 1, [alive()])).ok).toBe(false);
    expect(sync.stats().admission.counters.nodeLimit).toBe(1);
    clock.now += TIMERS.peerTimeoutMs + 1;
    sync.tick();
    expect(sync.stats().admission.tracked).toBe(0);
    verify('fw2', 1);
    expect(sync.stats().peers.map((p) => p.id)).toEqual(['fw2']);
  });

  it('prunes a peer down for pruneAfterMs: an unlisted one is forgotten and its slot reused', () => {
    const { sync, clock, verify } = node({ maxNodes: 1, pruneAfterMs: 5000 });
    verify('a', 1);
    expect(sync.receive(datagram('b', 1, [alive()])).ok).toBe(false);
    clock.now += TIMERS.peerTimeoutMs + 1;
    sync.tick();
    expect(sync.stats().peers[0]?.state).toBe('down');
    expect(sync.stats().admission.counters.pruned).toBe(0);
    clock.now += 5000;
    sync.tick();
    const st = sync.stats();
    expect(st.peers).toEqual([]);
    expect(st.admission).toMatchObject({ tracked: 0, receivers: 0, counters: { pruned: 1, nodeLimit: 1 } });
    verify('b', 1);
    expect(sync.stats().peers.map((p) => p.id)).toEqual(['b']);
  });

  it("a pruned unlisted peer's entries stay while there is room, and give way to a live peer's when the cache is full", () => {
    const { sync, external, clock, verify } = node({ maxNodes: 2, pruneAfterMs: 5000 }, 'ftfw', 20);
    /** n entries from id, numbered from `first`, in datagrams of 10 (seqs from 1: the answer's seq). */
    const send = (id: string, first: number, n: number): void => {
      for (let i = 0; i < n; i += 10) {
        const msgs: WireMessage[] = [];
        for (let k = i; k < Math.min(n, i + 10); k++) msgs.push({ kind: 'ct-new', seq: 1 + k, entry: typicalTcpEntry(first + k) });
        expect(sync.receive(datagram(id, 1, msgs)).ok).toBe(true);
      }
    };
    // An id that came, filled the cache and went away (a forged one, or a peer cut off for long).
    verify('x1', 1);
    send('x1', 0, 20);
    expect(external.size).toBe(20);
    clock.now += TIMERS.peerTimeoutMs + 5001;
    sync.tick();
    sync.tick();
    expect(sync.stats().admission.counters.pruned).toBe(1);
    // Pruned, and still held: nothing needed the room yet.
    expect(external.size).toBe(20);
    // A live peer needs room: the pruned id's records give way, and only they.
    verify('fw2', 1);
    send('fw2', 1000, 10);
    expect(external.size).toBe(10);
    expect(external.counters).toMatchObject({ created: 30, refused: 0, released: 20 });
    expect([...external.records()].every((r) => r.origin === 'fw2')).toBe(true);
  });

  it('a listed peer is pruned of its receiver but stays listed as down, and comes back', () => {
    const { sync, clock, verify } = node({ nodes: ['fw2'], maxNodes: 1, pruneAfterMs: 5000 });
    verify('fw2', 1);
    clock.now += TIMERS.peerTimeoutMs + 5001;
    sync.tick();
    sync.tick();
    let st = sync.stats();
    expect(st.peers.map((p) => [p.id, p.state, p.rx, p.tx])).toEqual([['fw2', 'down', null, null]]);
    // Pruned once, not at every tick.
    expect(st.admission).toMatchObject({ tracked: 1, receivers: 0, counters: { pruned: 1 } });
    // Its verified epoch was kept: the same epoch is believed at once.
    expect(sync.receive(datagram('fw2', 1, [alive(5)])).ok).toBe(true);
    st = sync.stats();
    expect(st.peers[0]?.state).toBe('up');
    expect(st.admission.receivers).toBe(1);
  });
});

describe('UdpChannel takes datagrams from its peers only', () => {
  it('drops and counts a datagram from an address that is none of sync.udp.peers', async () => {
    // Loopback answers all of 127/8: three local addresses, port 0 for ours.
    const ch = new UdpChannel({ bind: '127.0.0.1', port: 0, peers: ['127.0.0.2'], interface: 'lo' });
    const got: string[] = [];
    ch.onDatagram((buf, from) => got.push(`${from.address}:${buf.toString()}`));
    await ch.start();
    const port = ch.boundPort!;
    const send = async (from: string, text: string) => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((res) => s.bind(0, from, () => res()));
      await new Promise<void>((res, rej) => s.send(text, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
      s.close();
    };
    try {
      await send('127.0.0.3', 'forged');
      await send('127.0.0.2', 'peer');
      // The peer's datagram was sent last: once it is in, the other has been judged.
      for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got).toEqual(['127.0.0.2:peer']);
      expect(ch.counters).toMatchObject({ datagramsReceived: 1, droppedNotPeer: 1 });
    } finally {
      await ch.close();
    }
  });
});

describe('pruning and coming back', () => {
  it.each([
    { name: 'unlisted', nodes: undefined },
    { name: 'listed', nodes: ['a', 'b'] },
  ])('$name: two nodes partitioned past pruneAfterMs converge again once healed', ({ nodes }) => {
    const clock = { now: 1_000_000 };
    let linked = true;
    const later: Array<() => void> = [];
    const make = (id: string, peer: () => SyncNode) => {
      const table = new Map<number, ReturnType<typeof typicalTcpEntry>>();
      const external = new ExternalCache({ limit: 10_000, now: () => clock.now });
      const sync: SyncNode = new SyncNode({
        nodeId: id,
        cluster: CLUSTER,
        epoch: id === 'a' ? 11 : 22,
        mtu: 1472,
        mode: 'ftfw',
        external,
        lookup: (k) => table.get(Number(k)),
        localKeys: () => table.keys(),
        send: (buf) => {
          if (linked) later.push(() => peer().receive(buf));
        },
        now: () => clock.now,
        schedule: (fn) => later.push(fn),
        log: silentLogger,
        timers: TIMERS,
        admission: { nodes, maxNodes: 4, pruneAfterMs: 5000 },
      });
      return { sync, table, external };
    };
    const a = make('a', () => b.sync);
    const b = make('b', () => a.sync);
    /** Runs queued deliveries and ticks for `ms` of simulated time, 20 ms per step (bounded). */
    const run = (ms: number) => {
      for (let t = 0; t < ms; t += 20) {
        clock.now += 20;
        for (let i = 0; i < 10_000 && later.length > 0; i++) later.shift()!();
        a.sync.tick();
        b.sync.tick();
      }
      for (let i = 0; i < 10_000 && later.length > 0; i++) later.shift()!();
    };
    for (let i = 0; i < 100; i++) {
      b.table.set(i, typicalTcpEntry(i));
    }
    a.sync.start();
    b.sync.start();
    for (let i = 0; i < 100; i++) b.sync.localChange(i, 'new');
    run(2000);
    expect(a.external.size).toBe(100);

    linked = false;
    later.length = 0;
    run(TIMERS.peerTimeoutMs + 5000 + 500);
    expect(a.sync.stats().admission.counters.pruned).toBe(1);
    expect(a.sync.stats().admission.receivers).toBe(0);
    // While apart, b's table changes: 50 more, 10 gone.
    for (let i = 100; i < 150; i++) {
      b.table.set(i, typicalTcpEntry(i));
      b.sync.localChange(i, 'new');
    }
    for (let i = 0; i < 10; i++) {
      const gone = b.table.get(i)!;
      b.table.delete(i);
      b.sync.localChange(i, 'delete', gone);
    }
    run(200);
    linked = true;
    run(5000);
    expect(a.sync.stats().peers.map((p) => [p.id, p.state])).toEqual([['b', 'up']]);
    expect(a.external.size).toBe(140);
    for (const e of b.table.values()) expect(a.external.has(e)).toBe(true);
  });
});
