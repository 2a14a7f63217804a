// Issue 14 point 5: no datagram makes a node do much. Two real SyncNodes
// over a hand-driven link (fake clock): oversized datagrams are dropped,
// bulk requests join one in progress and are rate-limited per peer, a NACK
// resends no more than it names and the resend queue holds.
import { describe, expect, it } from 'vitest';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { type ConntrackEntry, entryKey } from '../../src/kernel/entry.js';
import { silentLogger } from '../../src/log.js';
import { BULK_MIN_INTERVAL_MS } from '../../src/sync/engine/reliability.js';
import { seqAdd } from '../../src/sync/engine/seq.js';
import { SyncNode } from '../../src/sync/engine/sync-node.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { typicalTcpEntry } from './wire-helpers.js';

const CLUSTER = 9;

class Pair {
  now = 1000;
  private readonly later: Array<() => void> = [];
  readonly nodes: Array<{ id: string; sync: SyncNode; kernel: Map<string, ConntrackEntry>; out: Buffer[] }> = [];

  constructor() {
    for (const [i, id] of ['fw-a', 'fw-b'].entries()) {
      const kernel = new Map<string, ConntrackEntry>();
      const out: Buffer[] = [];
      const sync = new SyncNode({
        nodeId: id,
        cluster: CLUSTER,
        epoch: 1_700_000_000 + i,
        mtu: 1472,
        mode: 'ftfw',
        external: new ExternalCache({ limit: 100_000, now: () => this.now }),
        lookup: (k) => kernel.get(String(k)),
        localKeys: () => kernel.keys(),
        send: (b) => out.push(b),
        now: () => this.now,
        // Later, as setImmediate would: a flush never runs inside the call that asked for it.
        schedule: (fn) => this.later.push(fn),
        log: silentLogger,
        timers: { ...DEFAULTS.sync.reliability },
        firstSeq: 0xffff_ff00 + i,
        random: () => Math.floor(Math.random() * 0x1_0000_0000),
      });
      this.nodes.push({ id, sync, kernel, out });
    }
    for (const n of this.nodes) n.sync.start();
  }

  /** Delivers everything in flight both ways (and what that makes them send) until the link is quiet. */
  settle(rounds = 50): void {
    for (let r = 0; r < rounds; r++) {
      for (const fn of this.later.splice(0)) fn();
      let moved = false;
      for (const [i, n] of this.nodes.entries()) {
        const peer = this.nodes[1 - i]!;
        for (const b of n.out.splice(0)) {
          moved = true;
          peer.sync.receive(b);
        }
      }
      this.now += 5;
      for (const n of this.nodes) n.sync.tick();
      if (!moved && this.later.length === 0 && this.nodes.every((n) => n.out.length === 0)) return;
    }
  }

  /** Runs the pending transmit flushes without delivering anything. */
  flush(): void {
    for (let k = 0; k < 100 && this.later.length > 0; k++) for (const fn of this.later.splice(0)) fn();
  }

  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) this.settle(1);
  }
}

function messagesOf(bufs: Buffer[]): WireMessage[] {
  const out: WireMessage[] = [];
  for (const b of bufs) {
    const r = decodeDatagram(b, { cluster: CLUSTER });
    if (r.ok) out.push(...r.messages);
  }
  return out;
}

function connected(): Pair {
  const p = new Pair();
  const [a] = p.nodes;
  for (let i = 0; i < 50; i++) {
    const e = typicalTcpEntry(i);
    a!.kernel.set(entryKey(e), e);
  }
  p.run(3000);
  for (const n of p.nodes) expect(n.sync.inSync).toBe(true);
  return p;
}

describe('no amplification', () => {
  it('receive drops datagrams larger than the MTU (counted) and reads the rest', () => {
    const p = connected();
    const [a, b] = p.nodes as [Pair['nodes'][0], Pair['nodes'][0]];
    const big = new DatagramEncoder({ cluster: CLUSTER, node: 'fw-b', epoch: b.sync.epoch, mtu: 9000 });
    for (let s = 0; big.size < 1473; s++) big.add({ kind: 'alive', seq: s + 1 });
    const buf = big.flush()!;
    expect(buf.length).toBeGreaterThan(1472);
    expect(a.sync.receive(buf)).toEqual({ ok: false, live: false });
    expect(a.sync.stats().counters.datagramsDropped.ESIZE).toBe(1);
  });

  it('a resync request is answered by the bulk at once, not at the next tick', () => {
    const p = connected();
    const [a, b] = p.nodes as [Pair['nodes'][0], Pair['nodes'][0]];
    // Past the interval since the bulk of the first contact.
    p.run(BULK_MIN_INTERVAL_MS + 100);
    a.out.splice(0);
    const bulks0 = a.sync.stats().counters.bulksSent;
    b.sync.requestResync('fw-a');
    const req = b.out.splice(0);
    expect(messagesOf(req).some((m) => m.kind === 'resync-request')).toBe(true);
    // No tick and no time passes: only the request's datagram and a's scheduled flushes.
    for (const d of req) a.sync.receive(d);
    p.flush();
    expect(a.sync.stats().counters.bulksSent).toBe(bulks0 + 1);
    const sent = messagesOf(a.out.splice(0));
    expect(sent.filter((m) => m.kind === 'bulk-start')).toHaveLength(1);
    expect(sent.filter((m) => m.kind === 'ct-update')).toHaveLength(50);
    p.run(300);
    expect(b.sync.inSync).toBe(true);
  });

  it('a resync request is honoured once; more requests join the pending bulk; a peer gets one bulk per interval', () => {
    const p = connected();
    const [a, b] = p.nodes as [Pair['nodes'][0], Pair['nodes'][0]];
    const bulks0 = a.sync.stats().counters.bulksSent;
    // b asks once; the request datagram is captured and replayed 20 times.
    b.sync.requestResync('fw-a');
    const req = b.out.splice(0);
    expect(messagesOf(req).some((m) => m.kind === 'resync-request')).toBe(true);
    const first = p.now;
    for (let k = 0; k < 20; k++) for (const d of req) a.sync.receive(d);
    // Requests while that bulk is on its way join it.
    for (let k = 0; k < 5; k++) {
      b.sync.requestResync('fw-a');
      p.settle(1);
    }
    p.run(300);
    expect(a.sync.stats().counters.bulksSent).toBe(bulks0 + 1);
    expect(a.sync.stats().counters.staleRequests).toBeGreaterThanOrEqual(19);
    expect(b.sync.inSync).toBe(true);
    // Fresh requests once it is done, still within the interval: they wait for it and are served by one bulk.
    const at: number[] = [];
    let seen = a.sync.stats().counters.bulksSent;
    for (let k = 0; k < 10; k++) {
      b.sync.requestResync('fw-a');
      p.settle(2);
    }
    const end = p.now + 4 * BULK_MIN_INTERVAL_MS;
    while (p.now < end) {
      p.settle(1);
      const n = a.sync.stats().counters.bulksSent;
      if (n !== seen) at.push(p.now);
      seen = n;
    }
    expect(a.sync.stats().counters.bulksSent).toBe(bulks0 + 2);
    expect(at.length).toBe(1);
    expect(at[0]! - first).toBeGreaterThanOrEqual(BULK_MIN_INTERVAL_MS);
  });

  it('a NACK resends no more than the range it names and the resend queue holds', () => {
    const p = connected();
    const [a, b] = p.nodes as [Pair['nodes'][0], Pair['nodes'][0]];
    // 30 changes on a that b never sees.
    for (let i = 100; i < 130; i++) {
      const e = typicalTcpEntry(i);
      a.kernel.set(entryKey(e), e);
      a.sync.localChange(entryKey(e), 'new');
    }
    p.flush();
    a.out.splice(0);
    const st = a.sync.stats();
    expect(st.resendQueue.length).toBe(30);
    const next = st.nextSeq;
    const nack = (from: number, to: number): Buffer => {
      const enc = new DatagramEncoder({ cluster: CLUSTER, node: 'fw-b', epoch: b.sync.epoch, mtu: 1472 });
      enc.add({ kind: 'nack', peer: 'fw-a', epoch: a.sync.epoch, from, to });
      return enc.flush()!;
    };
    const resent = (): number => messagesOf(a.out.splice(0)).filter((m) => m.kind === 'ct-new').length;
    // [from, to] of the NACK, the most it may bring back.
    const cases: Array<[number, number, number]> = [
      [seqAdd(next, -30), seqAdd(next, -26), 5],
      [seqAdd(next, -1), seqAdd(next, -1), 1],
      // Far more than was sent: clipped to the queue.
      [seqAdd(next, -30), seqAdd(next, 100_000), 30],
    ];
    for (const [from, to, most] of cases) {
      p.now += 1000; // past the per-message resend throttle
      a.sync.receive(nack(from, to));
      p.flush();
      const n = resent();
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(most);
    }
    // A NACK naming another epoch of ours (a recording) resends nothing.
    p.now += 1000;
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: 'fw-b', epoch: b.sync.epoch, mtu: 1472 });
    enc.add({ kind: 'nack', peer: 'fw-a', epoch: a.sync.epoch - 1, from: seqAdd(next, -30), to: seqAdd(next, -1) });
    a.sync.receive(enc.flush()!);
    p.flush();
    expect(resent()).toBe(0);
  });
});
