// The record-based caches against the object code they replaced: the same
// verdicts, the same contents, on random event streams and reconciles, and
// the record-level filter and comparison against their object forms.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { carriesNothingNew, EntryCompactor, recordCarriesNothingNew } from '../../src/cache/compact.js';
import { compileFilter, type EntryFilter, type FilterRules } from '../../src/cache/filter.js';
import { InternalCache, type ReconcileSession } from '../../src/cache/internal-cache.js';
import { AF_INET, AF_INET6 } from '../../src/kernel/constants.js';
import { REC_WORDS, recordBuf, writeEntryRecord } from '../../src/kernel/ct-record.js';
import { type ConntrackEntry, entryKey, type Family, type Tuple } from '../../src/kernel/entry.js';
import { entryArb } from './ct-arbitraries.js';
import { atLeast, runs } from './fc-runs.js';
import { ObjectInternalCache } from './oracles/object-internal-cache.js';

const SEED = Number(process.env.FC_SEED ?? 20261207);

const FILTERS: FilterRules[] = [
  { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } },
  { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { accept: ['ESTABLISHED', 'SYN_RECV'] } },
  { protocols: { accept: ['tcp'] }, addresses: { ignore: ['10.99.0.3', '2001:db8::/127'] }, tcpStates: { ignore: ['TIME_WAIT'] } },
  { protocols: { ignore: ['udp'] }, addresses: { accept: ['10.99.0.0/30', '10.98.0.0/16', '2001:db8::/64'] }, tcpStates: { ignore: [] } },
];

// A handful of keys, so that events, dump lines and sessions keep meeting.
function tuple(i: number, family: Family, reverse: boolean, nat: boolean): Tuple {
  const a = family === AF_INET ? `10.99.0.${i + 1}` : `2001:db8::${i + 1}`;
  const b = family === AF_INET ? (nat ? '10.98.7.7' : '10.99.1.1') : nat ? '2001:db8:7::7' : '2001:db8:1::1';
  const proto = i % 3 === 2 ? 17 : 6;
  return reverse ? { src: b, dst: a, proto, sport: 80, dport: 1000 + i } : { src: a, dst: b, proto, sport: 1000 + i, dport: 80 };
}

const full = fc
  .record({
    i: fc.integer({ min: 0, max: 5 }),
    v6: fc.boolean(),
    nat: fc.boolean(),
    status: fc.constantFrom(0xe, 0x18e, 0x1be),
    timeout: fc.integer({ min: 0, max: 500 }),
    mark: fc.constantFrom(0, 1, 2),
    state: fc.constantFrom(1, 3, 3, 3, 5, 7),
    wscale: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
    helper: fc.option(fc.constant('ftp'), { freq: 5, nil: undefined }),
    labels: fc.option(fc.constant(Buffer.from([1, 0, 0, 0])), { freq: 6, nil: undefined }),
    tupleZone: fc.option(fc.constant(3), { freq: 8, nil: undefined }),
  })
  .map((g): ConntrackEntry => {
    const family: Family = g.v6 ? AF_INET6 : AF_INET;
    const orig = tuple(g.i, family, false, false);
    if (g.tupleZone !== undefined) orig.zone = g.tupleZone;
    const e: ConntrackEntry = {
      family,
      orig,
      reply: tuple(g.i, family, true, g.nat),
      status: g.status,
      timeout: g.timeout,
      mark: g.mark,
    };
    if (orig.proto === 6) {
      e.protoinfo = { tcp: { state: g.state } };
      if (g.wscale !== undefined) e.protoinfo.tcp!.wscaleOrig = g.wscale;
    }
    if (g.helper !== undefined) e.helper = g.helper;
    if (g.labels !== undefined) e.labels = g.labels;
    return e;
  });

/** An UPDATE event: the tuples and whatever else the kernel chose to include. */
const partial = fc
  .tuple(full, fc.array(fc.constantFrom('status', 'timeout', 'mark', 'protoinfo', 'helper', 'labels'), { maxLength: 6 }))
  .map(([e, drop]) => {
    const p: ConntrackEntry = { ...e };
    for (const k of drop) delete p[k as keyof ConntrackEntry];
    return p;
  });

type Op =
  | { k: 'event'; type: 'new' | 'update' | 'destroy'; e: ConntrackEntry }
  | { k: 'begin' }
  | { k: 'add'; e: ConntrackEntry }
  | { k: 'finish' }
  | { k: 'abort' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: full.map((e): Op => ({ k: 'event', type: 'new', e })) },
  { weight: 4, arbitrary: partial.map((e): Op => ({ k: 'event', type: 'update', e })) },
  { weight: 2, arbitrary: full.map((e): Op => ({ k: 'event', type: 'destroy', e })) },
  { weight: 1, arbitrary: fc.constant<Op>({ k: 'begin' }) },
  { weight: 2, arbitrary: full.map((e): Op => ({ k: 'add', e })) },
  // Dump lines of the common shape (no helper, labels or tuple zone), which a dump hands over as records.
  { weight: 2, arbitrary: full.map((e): Op => ({ k: 'add', e: commonShape(e) })) },
  { weight: 1, arbitrary: fc.constant<Op>({ k: 'finish' }) },
  { weight: 1, arbitrary: fc.constant<Op>({ k: 'abort' }) },
);

function commonShape(e: ConntrackEntry): ConntrackEntry {
  const { helper: _h, labels: _l, ...rest } = e;
  const { zone: _z, ...orig } = e.orig;
  return { ...rest, orig };
}

function contents(entries: Iterable<ConntrackEntry>): Map<string, ConntrackEntry> {
  const m = new Map<string, ConntrackEntry>();
  for (const e of entries) m.set(entryKey(e), e);
  return m;
}

describe('InternalCache (records) against the object cache it replaced', () => {
  it('same verdicts, reconcile reports, contents and counters on random event streams (5,000 runs)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FILTERS.keys()), fc.integer({ min: 2, max: 8 }), fc.array(op, { maxLength: 60 }), (fi, limit, ops) => {
        const filter = compileFilter(FILTERS[fi]!);
        const a = new ObjectInternalCache({ limit, filter, now: () => 0 });
        const b = new InternalCache({ limit, filter, now: () => 0 });
        let sa: ReturnType<ObjectInternalCache['beginReconcile']> | undefined;
        let sb: ReconcileSession | undefined;
        const keyOfSlot = (s: number) => entryKey(b.entryAt(s)!);
        // Word 0 dirty: a record read from the wrong place shows.
        const dumped = recordBuf(2);
        dumped.w.fill(-1, 0, REC_WORDS);
        for (const o of ops) {
          if (o.k === 'event') {
            const before = a.get(entryKey(o.e));
            const ka = a.apply(o.type, o.e);
            const kb = b.apply(o.type, o.e);
            expect(kb).toBe(ka);
            if (kb === 'deleted') expect(b.lastDeleted).toEqual(before);
            if (kb === 'created' || kb === 'updated' || kb === 'unchanged') expect(b.entryAt(b.lastSlot)).toEqual(a.get(entryKey(o.e)));
          } else if (o.k === 'begin') {
            if (sa === undefined) {
              sa = a.beginReconcile();
              sb = b.beginReconcile();
            }
          } else if (o.k === 'add') {
            sa?.add(o.e);
            if (sb !== undefined) {
              // As a dump feeds it (dumpRecords): the common shape as a record, here at word REC_WORDS, the rest as objects.
              if (writeEntryRecord(o.e, dumped, REC_WORDS, (x) => x) === undefined) sb.addRecord(dumped, REC_WORDS);
              else sb.add(o.e);
            }
          } else if (sa !== undefined && sb !== undefined) {
            const ra = o.k === 'finish' ? sa.finish() : sa.abort();
            const rb = o.k === 'finish' ? sb.finish() : sb.abort();
            sa = undefined;
            sb = undefined;
            expect(new Set(rb.created.map(keyOfSlot))).toEqual(new Set(ra.created));
            expect(new Set(rb.updated.map(keyOfSlot))).toEqual(new Set(ra.updated));
            expect(contents(rb.deleted)).toEqual(contents(ra.deleted));
            expect(rb.deletedKeys).toHaveLength(rb.deleted.length);
          }
          expect(b.size).toBe(a.size);
        }
        expect(contents(b.values())).toEqual(contents([...a.entries()].map(([, e]) => e)));
        expect(b.counters).toEqual(a.counters);
      }),
      { numRuns: runs(5_000), seed: SEED },
    );
  });
});

describe('a reconcile fed records (dumpRecords) reads each where it lies', () => {
  it('a dump line carrying nothing new but its timeout refreshes the timeout from the record at its offset', () => {
    const c = new InternalCache({ limit: 10, filter: compileFilter(FILTERS[0]!), now: () => 0 });
    const e: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '10.99.0.1', dst: '10.99.1.1', proto: 6, sport: 1000, dport: 80 },
      reply: { src: '10.99.1.1', dst: '10.99.0.1', proto: 6, sport: 80, dport: 1000 },
      status: 0xe,
      timeout: 100,
      mark: 1,
      protoinfo: { tcp: { state: 3 } },
    };
    expect(c.apply('new', e)).toBe('created');
    const dumped = recordBuf(3);
    dumped.w.fill(-1);
    expect(writeEntryRecord({ ...e, timeout: 250 }, dumped, 2 * REC_WORDS, (x) => x)).toBeUndefined();
    const s = c.beginReconcile();
    s.addRecord(dumped, 2 * REC_WORDS);
    const r = s.finish();
    expect([r.created, r.updated, r.deleted]).toEqual([[], [], []]);
    expect(c.counters.unchanged).toBe(1);
    expect(c.get(e)).toEqual({ ...e, timeout: 250 });
  });
});

describe('records judged in place agree with the object forms', () => {
  it('filter.checkRecord() gives check()\'s verdict (20,000 entries × 4 rule sets)', () => {
    const filters: EntryFilter[] = FILTERS.map((f) => compileFilter(f, ['10.99.0.4', '2001:db8::4']));
    const r = recordBuf(1);
    fc.assert(
      fc.property(fc.oneof(entryArb, full, partial), (e) => {
        const x = writeEntryRecord(e, r, 0);
        if (x === false) return;
        for (const f of filters) expect(f.checkRecord(r, 0, x)).toEqual(f.check(e));
      }),
      { numRuns: runs(20_000), seed: SEED + 1 },
    );
  });

  it('recordCarriesNothingNew() is carriesNothingNew() of the stored compact form (20,000 pairs)', () => {
    const ra = recordBuf(1);
    const rb = recordBuf(1);
    let same = 0;
    fc.assert(
      fc.property(fc.oneof(full, entryArb), full, fc.boolean(), (e1, e2, pick) => {
        const compactor = new EntryCompactor();
        // Often the same key with other values, sometimes the same entry with another timeout.
        const b = pick ? { ...e1, timeout: e2.timeout } : { ...e2, orig: e1.orig, family: e1.family, reply: e1.family === e2.family ? e2.reply : e1.reply };
        const stored = compactor.entry(e1);
        const xa = writeEntryRecord(e1, ra, 0, (v) => compactor.entry(v));
        const xb = writeEntryRecord(b, rb, 0, (v) => compactor.entry(v));
        if (xa === false || xb === false) return;
        const want = carriesNothingNew(stored, b, false);
        if (want) same++;
        expect(recordCarriesNothingNew(ra.w, 0, xa, rb.w, 0, xb)).toBe(want);
      }),
      { numRuns: runs(20_000), seed: SEED + 2 },
    );
    expect(same).toBeGreaterThan(atLeast(1000));
  });
});
