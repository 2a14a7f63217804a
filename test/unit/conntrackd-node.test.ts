// The conntrackd-protocol engine: two real ConntrackdNodes with real
// external caches on a fake clock and a lossy link (seeded), and one node
// driven by hand-made conntrackd messages to check what it answers.
import { describe, expect, it } from 'vitest';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { type ConntrackEntry, type ExpectEntry, expectKey } from '../../src/kernel/entry.js';
import { silentLogger } from '../../src/log.js';
import { ConntrackdNode } from '../../src/sync/engine/conntrackd-node.js';
import type { SyncMode } from '../../src/sync/engine/sync-node.js';
import { CTD_F, type CtdMessage, CtdWriter, decodeCtdDatagram } from '../../src/sync/wire/conntrackd-codec.js';
import { mulberry32 } from './prng.js';
import { ftpExpectationOf } from './wire-helpers.js';

function entry(i: number, nat = false): ConntrackEntry {
  const src = `10.99.${(i >> 8) & 0xff}.${i & 0xff}`;
  return {
    family: 2,
    orig: { src, dst: '10.99.200.1', proto: 6, sport: 10000 + (i % 50000), dport: 80 },
    reply: nat
      ? { src: '10.99.200.1', dst: '10.99.250.1', proto: 6, sport: 80, dport: 20000 + (i % 40000) }
      : { src: '10.99.200.1', dst: src, proto: 6, sport: 80, dport: 10000 + (i % 50000) },
    status: nat ? 0x19e : 0x18e,
    timeout: 431999,
    mark: i,
    protoinfo: { tcp: { state: 3 } },
  };
}

function expectation(i: number): ExpectEntry {
  return ftpExpectationOf(entry(i).orig, 30000 + (i % 30000));
}

interface Side {
  node: ConntrackdNode;
  table: Map<string, ConntrackEntry>;
  exps: Map<string, ExpectEntry>;
  external: ExternalCache;
  sent: Buffer[];
}

class Harness {
  now = 1_700_000_000_000;
  private readonly tasks: (() => void)[] = [];
  readonly a: Side;
  b: Side;
  private readonly make: (name: string, peer: () => Side) => Side;

  constructor(mode: SyncMode, public loss: number, seed: number) {
    const random = mulberry32(seed);
    this.make = (name: string, peer: () => Side): Side => {
      const table = new Map<string, ConntrackEntry>();
      const exps = new Map<string, ExpectEntry>();
      const external = new ExternalCache({ limit: 1_000_000, now: () => this.now });
      const side: Side = { node: undefined as unknown as ConntrackdNode, table, exps, external, sent: [] };
      side.node = new ConntrackdNode({
        nodeId: name,
        epoch: 1,
        mtu: 1472,
        mode,
        external,
        lookup: (k) => table.get(String(k)),
        localKeys: () => table.keys(),
        lookupExpect: (k) => exps.get(k),
        localExpectKeys: () => exps.keys(),
        send: (buf) => {
          side.sent.push(buf);
          if (random() < this.loss) return;
          this.tasks.push(() => peer().node.receive(buf, { address: name === 'a' ? '10.99.0.1' : '10.99.0.2' }));
        },
        now: () => this.now,
        schedule: (fn) => this.tasks.push(fn),
        log: silentLogger,
        timers: DEFAULTS.sync.reliability,
      });
      return side;
    };
    this.a = this.make('a', () => this.b);
    this.b = this.make('b', () => this.a);
  }

  /** b restarts: a new node, empty table and external cache, same address. */
  restartB(): void {
    this.b.node.close();
    this.b = this.make('b', () => this.a);
    this.b.node.start();
  }

  /** Runs queued work, ticking every 20 ms of fake time, for at most `ms`. */
  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      for (let n = 0; this.tasks.length > 0 && n < 100_000; n++) this.tasks.shift()!();
      this.now += 20;
      this.a.node.tick();
      this.b.node.tick();
    }
  }

  change(side: Side, key: string, e: ConntrackEntry | undefined): void {
    if (e === undefined) {
      const gone = side.table.get(key)!;
      side.table.delete(key);
      side.node.localChange(key, 'delete', gone);
    } else {
      const kind = side.table.has(key) ? 'update' : 'new';
      side.table.set(key, e);
      side.node.localChange(key, kind);
    }
  }
}

function changeExp(side: Side, e: ExpectEntry, gone = false): void {
  const key = expectKey(e);
  if (gone) {
    side.exps.delete(key);
    side.node.localExpectChange(key, 'delete', e);
  } else {
    side.exps.set(key, e);
    side.node.localExpectChange(key, 'new');
  }
}

function holdsExpectations(external: ExternalCache, exps: Map<string, ExpectEntry>): void {
  expect(external.expectSize).toBe(exps.size);
  for (const [k, e] of exps) expect(external.getExpect(k)?.entry).toEqual(e);
}

function holds(external: ExternalCache, table: Map<string, ConntrackEntry>): void {
  expect(external.size).toBe(table.size);
  for (const e of table.values()) expect(external.get(e)?.entry).toEqual(e);
}

describe('ConntrackdNode pair', () => {
  for (const mode of ['ftfw', 'notrack'] as const) {
    it(`${mode}: tables replicate both ways with exact content, NAT included`, () => {
      const h = new Harness(mode, 0, 1);
      h.a.node.start();
      h.b.node.start();
      for (let i = 0; i < 500; i++) h.change(h.a, `a${i}`, entry(i, i % 2 === 0));
      for (let i = 500; i < 800; i++) h.change(h.b, `b${i}`, entry(i, i % 3 === 0));
      h.run(3000);
      for (let i = 0; i < 100; i++) h.change(h.a, `a${i}`, undefined);
      h.change(h.b, 'b600', { ...entry(600), timeout: 5 });
      h.run(3000);
      holds(h.b.external, h.a.table);
      holds(h.a.external, h.b.table);
      expect(h.a.node.inSync && h.b.node.inSync).toBe(true);
      expect(h.b.node.stats().peers.map((p) => p.id)).toEqual(['10.99.0.1']);
      expect(h.b.node.stats()).toMatchObject({ protocol: 'conntrackd', mode });
    });
  }

  for (const seed of [2, 3, 4]) {
    it(`ftfw repairs 20% loss with its acks and nacks (seed ${seed})`, () => {
      const h = new Harness('ftfw', 0.2, seed);
      h.a.node.start();
      h.b.node.start();
      for (let i = 0; i < 2000; i++) h.change(h.a, `a${i}`, entry(i, i % 2 === 0));
      h.run(2000);
      for (let i = 0; i < 300; i++) h.change(h.a, `a${i}`, undefined);
      for (let i = 2000; i < 2300; i++) h.change(h.b, `b${i}`, entry(i));
      // Loss of a burst's tail shows only at the next alive: a bounded wait of fake seconds.
      h.run(30_000);
      holds(h.b.external, h.a.table);
      holds(h.a.external, h.b.table);
      const c = h.b.node.stats().counters;
      expect(c.nacksSent).toBeGreaterThan(0);
      expect(h.a.node.stats().counters.retransmits).toBeGreaterThan(0);
    });
  }

  it('ftfw: expectations replicate both ways under 20% loss, deletes included, each after its master', () => {
    const h = new Harness('ftfw', 0.2, 11);
    h.a.node.start();
    h.b.node.start();
    for (let i = 0; i < 300; i++) {
      h.change(h.a, `a${i}`, entry(i));
      changeExp(h.a, expectation(i));
    }
    for (let i = 300; i < 400; i++) {
      h.change(h.b, `b${i}`, entry(i));
      changeExp(h.b, expectation(i));
    }
    h.run(2000);
    for (let i = 0; i < 50; i++) changeExp(h.a, expectation(i), true);
    h.run(30_000);
    holdsExpectations(h.b.external, h.a.exps);
    holdsExpectations(h.a.external, h.b.exps);
    holds(h.b.external, h.a.table);
    expect(h.a.node.stats().counters.retransmits).toBeGreaterThan(0);
    // In what a sent first, no expectation came before its master.
    const seen = new Set<string>();
    for (const buf of h.a.sent) {
      for (const m of decodeCtdDatagram(buf).messages) {
        if (m.kind === 'ct') seen.add(JSON.stringify(m.entry.orig));
        if (m.kind === 'exp') expect(seen.has(JSON.stringify(m.entry.master))).toBe(true);
      }
    }
  });

  it('bulkSend (-B) sends the table and then the expectations; a flushed peer is refilled', () => {
    const h = new Harness('ftfw', 0, 12);
    h.a.node.start();
    h.b.node.start();
    for (let i = 0; i < 100; i++) {
      h.change(h.a, `a${i}`, entry(i));
      changeExp(h.a, expectation(i));
    }
    h.run(2000);
    h.b.external.flush();
    expect(h.b.external.size + h.b.external.expectSize).toBe(0);
    const from = h.a.sent.length;
    expect(h.a.node.bulkSend()).toBe(200);
    h.run(2000);
    holds(h.b.external, h.a.table);
    holdsExpectations(h.b.external, h.a.exps);
    const kinds = h.a.sent
      .slice(from)
      .flatMap((b) => decodeCtdDatagram(b).messages)
      .filter((m) => m.kind !== 'ctl')
      .map((m) => `${m.kind}${m.type}`);
    // CT_UPD and EXP_UPD: upserts at the receiver, whatever it holds.
    expect(kinds).toEqual([...Array(100).fill('ct1'), ...Array(100).fill('exp4')]);
  });

  it('a restarted peer gets our table without asking (HELLO), and its old entries are replaced', () => {
    const h = new Harness('ftfw', 0, 5);
    h.a.node.start();
    h.b.node.start();
    for (let i = 0; i < 50; i++) h.change(h.a, `a${i}`, entry(i));
    h.run(2000);
    holds(h.b.external, h.a.table);
    h.restartB();
    h.run(3000);
    holds(h.b.external, h.a.table);
    expect(h.a.node.stats().counters.bulksWanted.hello).toBeGreaterThanOrEqual(1);
  });
});

describe('ConntrackdNode against hand-made conntrackd messages', () => {
  function single(mode: SyncMode) {
    let now = 1_700_000_000_000;
    const out: CtdMessage[] = [];
    const external = new ExternalCache({ limit: 1000, now: () => now });
    const node = new ConntrackdNode({
      nodeId: 'x',
      epoch: 1,
      mtu: 1472,
      mode,
      external,
      lookup: () => undefined,
      localKeys: () => [],
      send: (buf) => out.push(...decodeCtdDatagram(buf).messages),
      now: () => now,
      schedule: (fn) => fn(),
      log: silentLogger,
      timers: { ...DEFAULTS.sync.reliability, ackWindow: 300, ackDelayMs: 1000 },
    });
    const advance = (ms: number) => {
      now += ms;
      node.tick();
    };
    return { node, out, external, advance };
  }

  function data(seq: number, i: number, flags = 0): Buffer {
    const w = new CtdWriter();
    w.entry(0, flags, seq, entry(i));
    return Buffer.from(w.bytes());
  }

  it('starts with RESYNC carrying HELLO, and answers the peer’s HELLO with HELLO_BACK', () => {
    const s = single('ftfw');
    s.node.start();
    expect(s.out[0]).toMatchObject({ kind: 'ctl', flags: CTD_F.RESYNC | CTD_F.HELLO, from: 0, to: 0 });
    s.node.receive(data(100, 1, CTD_F.HELLO), { address: '10.99.0.9' });
    s.advance(1000);
    const answer = s.out.at(-1)!;
    expect(answer.flags & CTD_F.HELLO_BACK).toBe(CTD_F.HELLO_BACK);
    expect(answer).toMatchObject({ kind: 'ctl', from: 100, to: 100 });
    expect(answer.flags & CTD_F.ACK).toBe(CTD_F.ACK);
  });

  it('NACKs a gap [expected, seq-1] after acking what came in order, and drops what is before', () => {
    const s = single('ftfw');
    s.node.start();
    s.out.length = 0;
    s.node.receive(data(10, 1), { address: '10.99.0.9' });
    s.node.receive(data(11, 2), { address: '10.99.0.9' });
    s.node.receive(data(15, 3), { address: '10.99.0.9' });
    const ctl = s.out.filter((m) => m.kind === 'ctl');
    expect(ctl.map((m) => [m.flags & (CTD_F.ACK | CTD_F.NACK), m.kind === 'ctl' ? [m.from, m.to] : []])).toEqual([
      [CTD_F.ACK, [10, 11]],
      [CTD_F.NACK, [12, 14]],
    ]);
    expect(s.external.size).toBe(3);
    s.node.receive(data(13, 4), { address: '10.99.0.9' });
    expect(s.external.size).toBe(3);
    expect(s.node.stats().counters.duplicates).toBe(1);
  });

  it('resends what a NACK names with new seqs, and an ACK empties the resend queue', () => {
    let now = 1_700_000_000_000;
    const out: CtdMessage[] = [];
    const table = new Map([
      ['k1', entry(1)],
      ['k2', entry(2)],
    ]);
    const node = new ConntrackdNode({
      nodeId: 'x',
      epoch: 1,
      mtu: 1472,
      mode: 'ftfw',
      external: new ExternalCache({ limit: 10, now: () => now }),
      lookup: (k) => table.get(String(k)),
      localKeys: () => table.keys(),
      send: (buf) => out.push(...decodeCtdDatagram(buf).messages),
      now: () => now,
      schedule: (fn) => fn(),
      log: silentLogger,
      timers: DEFAULTS.sync.reliability,
    });
    node.start();
    node.localChange('k1', 'new');
    node.localChange('k2', 'new');
    const sent = out.filter((m) => m.kind === 'ct');
    expect(sent).toHaveLength(2);
    const [s1, s2] = sent.map((m) => m.seq);
    expect(node.stats().resendQueue.length).toBe(3); // RESYNC + two entries
    const w = new CtdWriter();
    w.control(CTD_F.NACK, 500, s2!, s2!);
    node.receive(Buffer.from(w.bytes()), { address: '10.99.0.9' });
    const again = out.filter((m) => m.kind === 'ct').slice(2);
    expect(again).toHaveLength(1);
    expect(again[0]!.seq).toBe((s2! + 1) >>> 0);
    w.reset();
    w.control(CTD_F.ACK, 501, s1! - 1, again[0]!.seq);
    node.receive(Buffer.from(w.bytes()), { address: '10.99.0.9' });
    expect(node.stats().resendQueue.length).toBe(0);
    now += 1;
  });

  it('drops datagrams from a second address, counted', () => {
    const s = single('notrack');
    s.node.start();
    expect(s.node.receive(data(1, 1), { address: '10.99.0.9' }).ok).toBe(true);
    expect(s.node.receive(data(2, 2), { address: '10.99.0.10' }).ok).toBe(false);
    expect(s.node.stats().counters.datagramsDropped).toEqual({ EPEER: 1 });
    expect(s.external.size).toBe(1);
  });

  it('notrack: a RESYNC is answered with the table; no ACK or NACK ever goes out', () => {
    const s = single('notrack');
    s.node.start();
    s.node.receive(data(1, 1), { address: '10.99.0.9' });
    s.node.receive(data(9, 2), { address: '10.99.0.9' });
    s.advance(1500);
    expect(s.out.some((m) => m.kind === 'ctl' && (m.flags & (CTD_F.ACK | CTD_F.NACK)) !== 0)).toBe(false);
    expect(s.out.some((m) => m.kind === 'ctl' && (m.flags & CTD_F.ALIVE) !== 0)).toBe(true);
    expect(s.node.stats().counters.lostMessages).toBe(7);
  });
});

describe('ConntrackdNode notrack refresh', () => {
  it('re-sends the whole table every refreshIntervalMs, repairing what was lost', () => {
    const h = new Harness('notrack', 0, 7);
    h.a.node.start();
    h.b.node.start();
    h.run(100);
    // Everything a sends is lost for a while: NOTRACK cannot repair it by itself.
    h.loss = 1;
    for (let i = 0; i < 200; i++) h.change(h.a, `a${i}`, entry(i));
    h.run(500);
    expect(h.b.external.size).toBe(0);
    h.loss = 0;
    h.run(DEFAULTS.sync.reliability.refreshIntervalMs + 1000);
    holds(h.b.external, h.a.table);
    expect(h.a.node.stats().counters.refreshes).toBeGreaterThanOrEqual(1);
  });
});
