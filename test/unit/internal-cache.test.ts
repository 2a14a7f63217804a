// InternalCache (src/cache/internal-cache.ts) case by case, for what the
// scenario tests in cache.test.ts and the differential test against the
// object oracle (internal-cache-diff.test.ts) do not pin down: entries no
// decoder makes, free and negative slots, the exact counters, partial
// UPDATEs onto entries with extras or kept whole, a cache that outgrows its
// first table, and reconcile sessions whose dump did not fit at first.
import { describe, expect, it } from 'vitest';
import { ACCEPT_ALL, compileFilter, type FilterRules } from '../../src/cache/filter.js';
import { type ExpectCounters, InternalCache } from '../../src/cache/internal-cache.js';
import { AF_INET, AF_INET6, IPPROTO, IPS, TCP_STATES } from '../../src/kernel/constants.js';
import { type ConntrackEntry, type ExpectEntry, expectKey } from '../../src/kernel/entry.js';
import { ftpExpectation } from './expectations.js';

const ESTABLISHED = TCP_STATES.indexOf('ESTABLISHED');
const SYN_SENT = TCP_STATES.indexOf('SYN_SENT');
const STATUS = IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED;

const STATE_ACCEPT: FilterRules = {
  protocols: { ignore: [] },
  addresses: { ignore: [] },
  tcpStates: { accept: ['ESTABLISHED'] },
};

/**
 * An IPv4 TCP flow 10.1.0.<n>:<port> -> 192.0.2.7:443 in the form the cache
 * keeps (no id, counters or timestamp), so a stored copy can be compared
 * with it whole.
 */
function tcp(n: number, over: Partial<ConntrackEntry> = {}, state = ESTABLISHED): ConntrackEntry {
  const src = `10.1.0.${n}`;
  const sport = 20000 + n;
  return {
    family: AF_INET,
    orig: { src, dst: '192.0.2.7', proto: IPPROTO.TCP, sport, dport: 443 },
    reply: { src: '192.0.2.7', dst: src, proto: IPPROTO.TCP, sport: 443, dport: sport },
    status: STATUS,
    timeout: 432000,
    mark: 0,
    protoinfo: {
      tcp: {
        state,
        wscaleOrig: 7,
        wscaleReply: 9,
        flagsOrig: { flags: 0x23, mask: 0x23 },
        flagsReply: { flags: 0x12, mask: 0x32 },
      },
    },
    ...over,
  };
}

/** What a kernel UPDATE event for `e` carries when only `fields` changed. */
function partial(e: ConntrackEntry, fields: Partial<ConntrackEntry>): ConntrackEntry {
  return { family: e.family, orig: e.orig, reply: e.reply, ...fields };
}

function expectation(master: ConntrackEntry, port: number, over: Partial<ExpectEntry> = {}): ExpectEntry {
  return ftpExpectation(master, port, { id: 40 + port, ...over });
}

function cache(limit = 100, rules?: FilterRules, initialSlots?: number): InternalCache {
  const filter = rules === undefined ? ACCEPT_ALL : compileFilter(rules, []);
  return new InternalCache({ limit, filter, ...(initialSlots === undefined ? {} : { initialSlots }) });
}

/** Entries no decoder produces: nothing to key them by. */
const UNKEYABLE: [string, ConntrackEntry][] = [
  ['an unknown family', { ...tcp(1), family: 7 as typeof AF_INET }],
  ['an IPv6 address in an IPv4 entry', tcp(1, { orig: { ...tcp(1).orig, src: '2001:db8::1' } })],
  ['an IPv4 address in an IPv6 entry', { ...tcp(1), family: AF_INET6 }],
  ['a protocol above 255', tcp(1, { orig: { ...tcp(1).orig, proto: 300 } })],
  ['a zone above 65535', tcp(1, { zone: 70000 })],
];

describe('InternalCache: entries no decoder makes', () => {
  it('refuses them as events, without a slot, a deleted entry or a change', () => {
    const c = cache();
    expect(c.lastSlot).toBe(-1);
    c.apply('new', tcp(1));
    c.apply('new', tcp(2));
    expect(c.apply('destroy', tcp(2))).toBe('deleted');
    expect(c.lastSlot).toBe(1);
    expect(c.lastDeleted).toEqual(tcp(2));
    for (const [name, bad] of UNKEYABLE) {
      expect(c.apply('new', bad), name).toBe('refused');
      expect(c.lastSlot, name).toBe(-1);
      expect(c.lastDeleted, name).toBeUndefined();
      expect(c.slotOf(bad), name).toBe(-1);
      expect(c.has(bad), name).toBe(false);
      expect(c.get(bad), name).toBeUndefined();
    }
    expect(c.counters.refused).toBe(UNKEYABLE.length);
    expect(c.counters.created).toBe(2);
    expect(c.size).toBe(1);
    expect(c.get(tcp(1))).toEqual(tcp(1));
  });

  it('refuses them as dump lines, leaving the rest of the dump alone', () => {
    const c = cache();
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(1));
    for (const [, bad] of UNKEYABLE) s.add(bad);
    s.add(tcp(2));
    expect(s.finish()).toEqual({ created: [1], updated: [], deleted: [], deletedKeys: [] });
    expect(c.counters.refused).toBe(UNKEYABLE.length);
    expect(c.counters).toMatchObject({ created: 2, updated: 0, unchanged: 1, destroyed: 0 });
    expect([...c.values()]).toEqual([tcp(1), tcp(2)]);
  });
});

describe('InternalCache: slots', () => {
  it('answers for live slots only: entryAt, viewAt and slots() skip free, negative and unused ones', () => {
    const c = cache();
    for (const n of [1, 2, 3]) c.apply('new', tcp(n));
    c.apply('destroy', tcp(2));
    expect([...c.slots()]).toEqual([0, 2]);
    expect(c.entryAt(0)).toEqual(tcp(1));
    expect(c.entryAt(2)).toEqual(tcp(3));
    expect(c.viewAt(0)?.entry()).toEqual(tcp(1));
    expect(c.viewAt(2)?.entry()).toEqual(tcp(3));
    for (const slot of [-1, 1, 3, 99]) {
      expect(c.entryAt(slot), `slot ${slot}`).toBeUndefined();
      expect(c.viewAt(slot), `slot ${slot}`).toBeUndefined();
    }
    c.apply('destroy', tcp(1));
    c.apply('destroy', tcp(3));
    expect([...c.slots()]).toEqual([]);
  });
});

describe('InternalCache: expectation counters', () => {
  it('counts every outcome of events and of a reconcile exactly', () => {
    const c = cache();
    const m = tcp(1);
    c.apply('new', m);
    const e1 = expectation(m, 1);
    const e2 = expectation(m, 2);
    const e3 = expectation(m, 3);
    const orphan = expectation(tcp(9), 4);
    const { id: _id, ...e1Kept } = e1;
    expect(c.applyExpect('destroy', e1)).toBe('missing');
    expect(c.applyExpect('new', e1)).toBe('created');
    expect(c.getExpect(expectKey(e1))).toEqual(e1Kept);
    expect(c.getExpect(expectKey(e3))).toBeUndefined();
    expect(c.applyExpect('new', e2)).toBe('created');
    expect(c.applyExpect('update', { ...e1, timeout: 5 })).toBe('unchanged');
    expect(c.applyExpect('update', { ...e2, flags: 1 })).toBe('updated');
    expect(c.applyExpect('new', orphan)).toBe('filtered');
    expect(c.applyExpect('destroy', e2)).toBe('deleted');
    const r = c.reconcileExpect([e3, orphan]);
    expect(r).toEqual({
      created: [expectKey(e3)],
      updated: [],
      deleted: [{ ...e1Kept, timeout: 5 }],
      deletedKeys: [expectKey(e1)],
    });
    const want: ExpectCounters = {
      created: 3,
      updated: 1,
      unchanged: 1,
      destroyed: 2,
      missing: 1,
      refused: 0,
      noMaster: 2,
      flushed: 0,
      reconciles: 1,
    };
    expect(c.expectCounters).toEqual(want);
  });
});

describe('InternalCache: partial UPDATEs onto the cached entry', () => {
  const extras: Partial<ConntrackEntry> = {
    helper: 'ftp',
    labels: Buffer.alloc(16, 1),
    labelsMask: Buffer.alloc(16, 0xff),
    seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
    seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
    master: { src: '10.1.9.9', dst: '192.0.2.7', proto: IPPROTO.TCP, sport: 5000, dport: 21 },
    secctx: 'system_u:object_r:ctx',
    synproxy: { isn: 1, its: 2, tsoff: 3 },
    secmark: 11,
  };
  // Each row: the cached entry, the fields of the UPDATE, and so what is cached after it.
  const rows: [string, ConntrackEntry, Partial<ConntrackEntry>][] = [
    ['zone 0, window scales and both TCP flags kept', tcp(1, { zone: 0 }), { status: 0x1e }],
    ['every extra kept', tcp(2, extras), { mark: 3 }],
    ['its own extras win, the others are kept', tcp(3, extras), { helper: 'sip', labels: Buffer.alloc(16, 2), mark: 4 }],
    ['extras added to an entry that had none', tcp(4), { helper: 'sip', secctx: 'c2' }],
    [
      'SCTP state kept (held beside the words)',
      {
        family: AF_INET,
        orig: { src: '10.1.0.5', dst: '192.0.2.7', proto: IPPROTO.SCTP, sport: 7, dport: 9 },
        reply: { src: '192.0.2.7', dst: '10.1.0.5', proto: IPPROTO.SCTP, sport: 9, dport: 7 },
        status: STATUS,
        timeout: 200,
        mark: 1,
        protoinfo: { sctp: { state: 3, vtagOrig: 11, vtagReply: 12 } },
      },
      { mark: 2 },
    ],
    ['a direction zone (kept whole)', tcp(6, { orig: { ...tcp(6).orig, zone: 3 }, helper: 'ftp', mark: 7 }), { status: 0x1e }],
    [
      'a direction zone, extras of its own',
      tcp(7, { orig: { ...tcp(7).orig, zone: 3 }, helper: 'ftp', mark: 7, secctx: 'c1' }),
      { secctx: 'c2', timeout: 10 },
    ],
  ];

  it.each(rows)('%s', (_name, cached, fields) => {
    const c = cache();
    expect(c.apply('new', cached)).toBe('created');
    expect(c.get(cached)).toEqual(cached);
    expect(c.apply('update', partial(cached, fields))).toBe('updated');
    expect(c.get(cached)).toEqual({ ...cached, ...fields });
    // The merged entry is what is stored: the same UPDATE again is no news.
    expect(c.apply('update', partial(cached, fields))).toBe('unchanged');
  });

  it('refreshes the timeout of an entry kept whole in place, as of any other', () => {
    const whole = tcp(8, { orig: { ...tcp(8).orig, zone: 3 }, helper: 'ftp' });
    const c = cache();
    c.apply('new', whole);
    expect(c.apply('update', partial(whole, { timeout: 99 }))).toBe('unchanged');
    expect(c.get(whole)).toEqual({ ...whole, timeout: 99 });
    expect(c.apply('new', { ...whole, timeout: 98 })).toBe('unchanged');
    expect(c.get(whole)?.timeout).toBe(98);
    expect(c.counters).toMatchObject({ created: 1, updated: 0, unchanged: 2 });
  });

  it('leaves the cached timeout alone when an unchanged event or dump line has none', () => {
    const c = cache();
    c.apply('new', tcp(1));
    const { timeout: _t, ...noTimeout } = tcp(1);
    expect(c.apply('new', noTimeout)).toBe('unchanged');
    expect(c.get(tcp(1))?.timeout).toBe(432000);
    expect(c.reconcile([noTimeout])).toEqual({ created: [], updated: [], deleted: [], deletedKeys: [] });
    expect(c.get(tcp(1))?.timeout).toBe(432000);
  });
});

describe('InternalCache: past its first table', () => {
  it('keeps the reconcile marks of slots beyond the table it started with', () => {
    const c = cache(100, undefined, 16);
    const dump = Array.from({ length: 40 }, (_, i) => tcp(i + 1));
    expect(c.reconcile(dump).created).toHaveLength(40);
    // Every key is in the dump again: nothing may be taken for vanished.
    expect(c.reconcile(dump)).toEqual({ created: [], updated: [], deleted: [], deletedKeys: [] });
    // Keys events create during a session, beyond the first table too, are the events'.
    const s = c.beginReconcile();
    for (const e of dump) s.add(e);
    for (let n = 41; n <= 60; n++) expect(c.apply('new', tcp(n))).toBe('created');
    expect(s.finish().deleted).toEqual([]);
    expect(c.size).toBe(60);
  });
});

describe('InternalCache: a reconcile whose dump did not fit at first', () => {
  it('updates a cached key at once even while the cache is full', () => {
    const c = cache(2);
    c.apply('new', tcp(1));
    c.apply('new', tcp(2));
    const s = c.beginReconcile();
    s.add(tcp(1, { mark: 5 }));
    expect(c.get(tcp(1))?.mark).toBe(5);
    expect(s.abort()).toEqual({ created: [], updated: [0], deleted: [], deletedKeys: [] });
  });

  it('reports the surplus it refuses as nothing', () => {
    const c = cache(1);
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(1));
    s.add(tcp(2));
    expect(s.finish()).toEqual({ created: [], updated: [], deleted: [], deletedKeys: [] });
    expect(c.counters.refused).toBe(1);
    expect([...c.values()]).toEqual([tcp(1)]);
  });

  it('does not insert a key that waited for room when an event destroyed it meanwhile', () => {
    const c = cache(1);
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(2));
    expect(c.apply('destroy', tcp(2))).toBe('missing');
    const r = s.finish();
    expect(r.created).toEqual([]);
    expect(r.deleted).toEqual([tcp(1)]);
    expect(c.size).toBe(0);
  });

  it('does not insert a key that waited for room when a later line of the dump filtered it', () => {
    const c = cache(1, STATE_ACCEPT);
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(2));
    s.add(tcp(2, {}, SYN_SENT));
    const r = s.finish();
    expect(r.created).toEqual([]);
    expect(c.size).toBe(0);
    expect(c.counters.filtered['tcp-state']).toBe(1);
  });

  // A dump may carry a key twice (the kernel's table changed under it); the
  // later line is the newer one, as when nothing waited for room.
  it('keeps the later line of a key that waited for room and then fitted', () => {
    const c = cache(1);
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(2, { mark: 1 }));
    expect(c.apply('destroy', tcp(1))).toBe('deleted');
    s.add(tcp(2, { mark: 2 }));
    expect(s.finish()).toEqual({ created: [0], updated: [], deleted: [], deletedKeys: [] });
    expect(c.get(tcp(2))?.mark).toBe(2);
    expect(c.counters).toMatchObject({ created: 2, updated: 0, unchanged: 0, refused: 0 });
  });

  it('keeps what an event made of a key that waited for room and then fitted', () => {
    const c = cache(1);
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(2, { mark: 1 }));
    c.apply('destroy', tcp(1));
    s.add(tcp(2, { mark: 1 }));
    expect(c.apply('update', partial(tcp(2), { mark: 9 }))).toBe('updated');
    expect(s.finish()).toEqual({ created: [0], updated: [], deleted: [], deletedKeys: [] });
    expect(c.get(tcp(2))?.mark).toBe(9);
    expect(c.counters).toMatchObject({ created: 2, updated: 1, unchanged: 0 });
  });
});
