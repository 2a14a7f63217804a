// ExternalCache, direct: exact results, counters and records for the paths
// the cache tests reach only in passing (issue 18, its mutation survivors):
// shadows (takeover, promote, a copy dropped, copies removed by a bulk or a
// flush), tombstones, limits and release, counters, bulk ends, rollovers,
// expectations, and the slot records handed out. cache.test.ts keeps the
// behaviour tests and the model property.
import { describe, expect, it } from 'vitest';
import {
  type ExternalChange,
  ExternalCache,
  type ExternalRecord,
  type ExternalCacheOptions,
  type ExternalCounters,
  KERNEL_CURRENT,
  KERNEL_NONE,
  KERNEL_STALE,
  SlotRecord,
} from '../../src/cache/external-cache.js';
import { compileFilter, type FilterRules } from '../../src/cache/filter.js';
import { PeerEntryCheck } from '../../src/cache/peer-validate.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import { recordBuf, recordKeyString, writeKeyWords } from '../../src/kernel/ct-record.js';
import { type ConntrackEntry, type ExpectEntry, expectKey } from '../../src/kernel/entry.js';
import { ftpExpectation } from './expectations.js';

const NO_RULES: FilterRules = { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } };

/** An IPv4 TCP flow 10.7.0.<n>:<port> -> 192.0.2.7:443. */
function tcp(n: number, over: Partial<ConntrackEntry> = {}): ConntrackEntry {
  const src = `10.7.${(n >> 8) & 255}.${n & 255}`;
  const sport = 20000 + n;
  return {
    family: AF_INET,
    orig: { src, dst: '192.0.2.7', proto: IPPROTO.TCP, sport, dport: 443 },
    reply: { src: '192.0.2.7', dst: src, proto: IPPROTO.TCP, sport: 443, dport: sport },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED,
    timeout: 300,
    mark: 0,
    protoinfo: { tcp: { state: 3 } },
    ...over,
  };
}

/** A flow the record words cannot express (the reply's protocol differs): kept whole. */
function wholeFlow(n: number, over: Partial<ConntrackEntry> = {}): ConntrackEntry {
  const e = tcp(n, over);
  return { ...e, reply: { ...e.reply, proto: IPPROTO.UDP } };
}

function exp(master: ConntrackEntry, port: number, over: Partial<ExpectEntry> = {}): ExpectEntry {
  return ftpExpectation(master, port, over);
}

/**
 * noteInKernel() is typed for conntrack records (inject mode's); no caller
 * writes an expectation's kernel copy yet, but the method handles one.
 */
function asConntrackRecord(r: ExternalRecord<ExpectEntry>): ExternalRecord {
  return r as unknown as ExternalRecord;
}

/** The key string onChange names a record by. */
function keyOf(e: ConntrackEntry): string {
  const r = recordBuf(1);
  expect(writeKeyWords(e, r, 0)).toBe(true);
  return recordKeyString(r.w, 0);
}

function clock(start = 5_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

const ZERO: ExternalCounters = {
  created: 0,
  updated: 0,
  deleted: 0,
  missing: 0,
  stale: 0,
  refused: 0,
  bulkRemoved: 0,
  flushed: 0,
  released: 0,
  copyDeleted: 0,
  shadowsRefused: 0,
};

function counters(over: Partial<ExternalCounters>): ExternalCounters {
  return { ...ZERO, ...over };
}

function cache(opts: Partial<ExternalCacheOptions> = {}): ExternalCache {
  return new ExternalCache({ limit: 100, ...opts });
}

/** The origin, epoch, seq and mark of each key's record, as a table to compare whole. */
function view(c: ExternalCache, ns: number[]): Record<number, [string, number, number, number | undefined] | null> {
  const out: Record<number, [string, number, number, number | undefined] | null> = {};
  for (const n of ns) {
    const r = c.get(tcp(n));
    out[n] = r === undefined ? null : [r.origin, r.epoch, r.seq, r.entry.mark];
  }
  return out;
}

describe('ExternalCache records handed out', () => {
  it('an expectation record carries origin, epoch, seq, update time and its kernel copy', () => {
    const t = clock();
    const c = cache({ now: t.now });
    const e = exp(tcp(1), 2000);
    t.advance(1234);
    expect(c.applyRemoteExpect('fw2', 7, 0xffff_fff0, 'new', e)).toBe('created');
    const r = c.getExpect(expectKey(e))!;
    expect([r.origin, r.epoch, r.seq, r.updatedAt, r.kernelCopy]).toEqual(['fw2', 7, 0xffff_fff0, 5_001_234, KERNEL_NONE]);
    expect(r.entry.tuple).toEqual(e.tuple);
    c.noteInKernel(asConntrackRecord(r), 0xffff_fff0);
    expect(r.kernelCopy).toBe(KERNEL_CURRENT);
    c.noteInKernel(asConntrackRecord(r), 5);
    expect(r.kernelCopy).toBe(KERNEL_STALE);
    expect(c.getExpect('nothing')).toBeUndefined();
    expect([...c.expectEntries()].map(([k]) => k)).toEqual([expectKey(e)]);
  });

  it('an update of a written expectation makes its kernel copy stale; one never written stays none', () => {
    const t = clock();
    const c = cache({ now: t.now });
    const a = exp(tcp(1), 2000);
    const b = exp(tcp(2), 2000);
    c.applyRemoteExpect('fw2', 1, 1, 'new', a);
    c.applyRemoteExpect('fw2', 1, 2, 'new', b);
    c.noteInKernel(asConntrackRecord(c.getExpect(expectKey(a))!), 1);
    t.advance(40);
    expect(c.applyRemoteExpect('fw2', 1, 3, 'update', { ...a, timeout: 100 })).toBe('updated');
    expect(c.applyRemoteExpect('fw2', 1, 4, 'update', { ...b, timeout: 100 })).toBe('updated');
    expect(c.getExpect(expectKey(a))).toMatchObject({ kernelCopy: KERNEL_STALE, seq: 3, updatedAt: 5_000_040 });
    expect(c.getExpect(expectKey(b))).toMatchObject({ kernelCopy: KERNEL_NONE, seq: 4 });
    expect(c.getExpect(expectKey(a))?.entry.timeout).toBe(100);
    expect(c.expectCounters).toEqual(counters({ created: 2, updated: 2 }));
  });

  it('a record made before its key was deleted keeps what it had; one of a reused slot is not current', () => {
    const t = clock();
    const c = cache({ now: t.now });
    c.applyRemote('fw2', 3, 10, 'new', tcp(1, { mark: 1 }));
    t.advance(25);
    c.applyRemote('fw2', 3, 11, 'update', tcp(1, { mark: 2 }));
    c.noteInKernel(c.get(tcp(1))!, 11);
    const r = c.get(tcp(1)) as SlotRecord;
    t.advance(25);
    expect(c.applyRemote('fw2', 3, 12, 'delete', tcp(1))).toBe('deleted');
    expect(r.current).toBe(false);
    expect([r.origin, r.epoch, r.seq, r.updatedAt, r.kernelCopy, r.entry.mark]).toEqual(['fw2', 3, 11, 5_000_025, KERNEL_CURRENT, 2]);
    // The freed slot takes another key, from another origin: the old record still tells its own.
    c.applyRemote('fw3', 4, 99, 'new', tcp(2, { mark: 9 }));
    const r2 = c.get(tcp(2)) as SlotRecord;
    expect(r2.slot).toBe(r.slot);
    expect(r.current).toBe(false);
    expect(r2.current).toBe(true);
    expect([r.origin, r.epoch, r.seq, r.updatedAt, r.kernelCopy]).toEqual(['fw2', 3, 11, 5_000_025, KERNEL_CURRENT]);
    expect(c.currentRecord(r.slot, r.gen)).toBeNull();
    expect(c.currentRecord(r2.slot, r2.gen)?.entry().mark).toBe(9);
    // A note for the old generation is ignored.
    c.noteSlotInKernel(r.slot, r.gen, 99);
    expect(r2.kernelCopy).toBe(KERNEL_NONE);
    c.noteSlotInKernel(r2.slot, r2.gen, 98);
    expect(r2.kernelCopy).toBe(KERNEL_STALE);
    c.noteSlotInKernel(r2.slot, r2.gen, 99);
    expect(r2.kernelCopy).toBe(KERNEL_CURRENT);
  });

  it('a record made before a flush is no longer current and keeps what it had', () => {
    const c = cache();
    c.applyRemote('fw2', 3, 10, 'new', tcp(1, { mark: 1 }));
    const r = c.get(tcp(1)) as SlotRecord;
    c.flush();
    expect(r.current).toBe(false);
    expect([r.origin, r.epoch, r.seq, r.entry.mark]).toEqual(['fw2', 3, 10, 1]);
    expect(c.currentRecord(r.slot, r.gen)).toBeNull();
  });

  it('tells records that name a master (related, committed after the masters), kept whole or not', () => {
    const c = cache();
    const master = tcp(1).orig;
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2, { master }));
    c.applyRemote('fw2', 1, 3, 'new', wholeFlow(3, { master }));
    c.applyRemote('fw2', 1, 4, 'new', wholeFlow(4));
    c.applyRemote('fw2', 1, 5, 'new', tcp(5, { mark: 5 }));
    // Extras of another kind (labels) name no master.
    c.applyRemote('fw2', 1, 6, 'new', tcp(6, { labels: Buffer.alloc(16, 1) }));
    const related = (n: number) => (c.get(tcp(n)) as SlotRecord).related;
    expect([1, 2, 3, 4, 5, 6].map(related)).toEqual([false, true, true, false, false, false]);
    // mark 5 gives tcp(5) no extras; tcp(1) none either: related needs a master.
    expect((c.get(tcp(4)) as SlotRecord).record.x?.whole).toBeDefined();
  });

  it('slots past the first table keep every record field when the table grows', () => {
    const t = clock();
    const c = cache({ now: t.now, initialSlots: 2, limit: 100 });
    for (let n = 1; n <= 40; n++) {
      t.advance(1);
      expect(c.applyRemote(n % 2 === 0 ? 'fw2' : 'fw3', n, 1000 + n, 'new', tcp(n, { mark: n }))).toBe('created');
      if (n % 3 === 0) c.noteInKernel(c.get(tcp(n))!, 1000 + n);
    }
    for (let n = 1; n <= 40; n++) {
      expect(c.get(tcp(n))).toMatchObject({
        origin: n % 2 === 0 ? 'fw2' : 'fw3',
        epoch: n,
        seq: 1000 + n,
        updatedAt: 5_000_000 + n,
        kernelCopy: n % 3 === 0 ? KERNEL_CURRENT : KERNEL_NONE,
        entry: { mark: n },
      });
    }
    expect(c.origins()).toEqual(
      new Map([
        ['fw3', 20],
        ['fw2', 20],
      ]),
    );
  });

  it('refuses an entry no key can be made of, counted, and finds no record for one', () => {
    const c = cache();
    const bad = tcp(1, { orig: { ...tcp(1).orig, src: '2001:db8::1' } });
    for (const n of [2, 3, 4]) c.applyRemote('fw3', 1, n, 'new', tcp(n));
    expect(c.get(bad)).toBeUndefined();
    expect(c.has(bad)).toBe(false);
    c.flush();
    expect(c.applyRemote('fw2', 1, 1, 'new', bad)).toBe('refused');
    expect(c.size).toBe(0);
    expect(c.counters).toEqual(counters({ refused: 1, created: 3, flushed: 3 }));
    expect(c.origins().size).toBe(0);
  });
});

describe('ExternalCache: updates of a held key', () => {
  it('a change leaves a key never written to the kernel at none, and makes a written one stale', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2));
    c.noteInKernel(c.get(tcp(2))!, 2);
    c.applyRemote('fw2', 1, 3, 'update', tcp(1, { mark: 7 }));
    c.applyRemote('fw2', 1, 4, 'update', tcp(2, { mark: 7 }));
    expect(c.get(tcp(1))?.kernelCopy).toBe(KERNEL_NONE);
    expect(c.get(tcp(2))?.kernelCopy).toBe(KERNEL_STALE);
  });

  it('a refresh carrying nothing new takes its timeout, in the words and in an entry kept whole', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 1, 'new', tcp(1, { timeout: 300 }));
    c.applyRemote('fw2', 1, 2, 'new', wholeFlow(2, { timeout: 300 }));
    c.noteInKernel(c.get(tcp(1))!, 1);
    expect(c.applyRemote('fw2', 1, 3, 'update', tcp(1, { timeout: 120 }))).toBe('updated');
    expect(c.applyRemote('fw2', 1, 4, 'update', wholeFlow(2, { timeout: 60 }))).toBe('updated');
    expect(c.get(tcp(1))).toMatchObject({ seq: 3, kernelCopy: KERNEL_CURRENT, entry: { timeout: 120 } });
    expect(c.get(tcp(2))).toMatchObject({ seq: 4, entry: { timeout: 60, reply: { proto: IPPROTO.UDP } } });
    // Without a timeout the refresh leaves the stored one.
    const { timeout: _t, ...bare } = tcp(1);
    expect(c.applyRemote('fw2', 1, 5, 'update', bare)).toBe('updated');
    expect(c.get(tcp(1))?.entry.timeout).toBe(120);
  });

  it('a refresh with a timeout onto a record stored without one adds it', () => {
    const c = cache();
    const { timeout: _t, ...bare } = tcp(1);
    c.applyRemote('fw2', 1, 1, 'new', bare);
    expect(c.get(tcp(1))?.entry.timeout).toBeUndefined();
    c.applyRemote('fw2', 1, 2, 'update', tcp(1, { timeout: 77 }));
    expect(c.get(tcp(1))?.entry).toMatchObject({ timeout: 77, mark: 0, status: tcp(1).status });
  });

  it('tells inject mode of each change with the key, the record and the entry', () => {
    const seen: [string, ExternalChange, string | undefined, number | undefined][] = [];
    const c = cache({ onChange: (k, change, r, e) => seen.push([k, change, r?.origin, e.mark]) });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1, { mark: 1 }));
    c.applyRemote('fw2', 1, 2, 'update', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1, { mark: 3 }));
    c.applyRemote('fw3', 1, 2, 'delete', tcp(1));
    c.applyRemote('fw2', 1, 3, 'delete', tcp(1));
    const k = keyOf(tcp(1));
    expect(seen).toEqual([
      [k, 'created', 'fw2', 1],
      [k, 'updated', 'fw2', 2],
      [k, 'updated', 'fw3', 3],
      [k, 'updated', 'fw2', 2],
      [k, 'deleted', undefined, 0],
    ]);
  });
});

describe('ExternalCache: shadows', () => {
  it('a takeover keeps the old copy as a shadow, counted per origin; the new origin\'s own shadow gives way', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 20, 'update', tcp(1, { mark: 3 }));
    // fw2 writes again: its shadow goes, fw3's copy becomes one.
    c.applyRemote('fw2', 1, 11, 'update', tcp(1, { mark: 22 }));
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 11, 22] });
    expect(c.origins()).toEqual(
      new Map([
        ['fw2', 1],
        ['fw3', 1],
      ]),
    );
    expect(c.applyRemote('fw2', 1, 12, 'delete', tcp(1))).toBe('deleted');
    expect(view(c, [1])).toEqual({ 1: ['fw3', 1, 20, 3] });
    // No second fw2 copy was left behind: fw3's delete ends the key.
    expect(c.applyRemote('fw3', 1, 21, 'delete', tcp(1))).toBe('deleted');
    expect(c.size).toBe(0);
    expect(c.origins().size).toBe(0);
    expect(c.counters).toEqual(counters({ created: 1, updated: 2, deleted: 2, copyDeleted: 1 }));
  });

  it("an origin taking the table back from its own shadow frees that shadow's place under the bound", () => {
    const c = cache({ limit: 2 });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1));
    // fw2's shadow gives way, fw3's copy takes its place: one shadow held.
    c.applyRemote('fw2', 1, 2, 'update', tcp(1));
    // A second shadow fits.
    c.applyRemote('fw4', 1, 1, 'update', tcp(1));
    expect(c.counters.shadowsRefused).toBe(0);
    c.applyRemote('fw4', 1, 2, 'delete', tcp(1));
    c.applyRemote('fw2', 1, 3, 'delete', tcp(1));
    expect(view(c, [1])).toEqual({ 1: ['fw3', 1, 1, 0] });
  });

  it('a promoted copy of a key never written to the kernel stays at none', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1));
    c.applyRemote('fw3', 1, 20, 'update', tcp(1, { mark: 3 }));
    c.applyRemote('fw3', 1, 21, 'delete', tcp(1));
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw2', kernelCopy: KERNEL_NONE });
  });

  it('three origins: the newest shadow comes back first, and each delete takes its own copy', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 20, 'update', tcp(1, { mark: 3 }));
    c.applyRemote('fw4', 1, 30, 'update', tcp(1, { mark: 4 }));
    // fw2's copy (a shadow) goes alone: counted as a copy deleted.
    expect(c.applyRemote('fw2', 1, 11, 'delete', tcp(1))).toBe('deleted');
    expect(c.counters).toMatchObject({ deleted: 1, copyDeleted: 1 });
    expect(view(c, [1])).toEqual({ 1: ['fw4', 1, 30, 4] });
    expect(c.applyRemote('fw4', 1, 31, 'delete', tcp(1))).toBe('deleted');
    expect(view(c, [1])).toEqual({ 1: ['fw3', 1, 20, 3] });
    expect(c.counters).toMatchObject({ deleted: 2, copyDeleted: 2 });
    expect(c.applyRemote('fw2', 1, 12, 'delete', tcp(1))).toBe('missing');
    expect(c.applyRemote('fw3', 1, 21, 'delete', tcp(1))).toBe('deleted');
    expect(c.counters).toMatchObject({ deleted: 3, copyDeleted: 2, missing: 1 });
    expect(c.size).toBe(0);
  });

  it("a delete from the second shadow's origin removes that shadow, not the first", () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 20, 'update', tcp(1, { mark: 3 }));
    c.applyRemote('fw4', 1, 30, 'update', tcp(1, { mark: 4 }));
    // Shadows: fw2's, then fw3's. fw3's goes.
    expect(c.applyRemote('fw3', 1, 21, 'delete', tcp(1))).toBe('deleted');
    c.applyRemote('fw4', 1, 31, 'delete', tcp(1));
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 10, 2] });
    expect(c.origins()).toEqual(new Map([['fw2', 1]]));
  });

  it("a shadow's origin is ordered against its shadow: older is stale, newer takes the table back", () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 20, 'update', tcp(1, { mark: 3 }));
    expect(c.applyRemote('fw2', 1, 9, 'update', tcp(1, { mark: 9 }))).toBe('stale');
    expect(c.applyRemote('fw2', 2, 9, 'update', tcp(1, { mark: 29 }))).toBe('updated');
    expect(view(c, [1])).toEqual({ 1: ['fw2', 2, 9, 29] });
    expect(c.counters).toEqual(counters({ created: 1, updated: 2, stale: 1 }));
  });

  it('a tombstone of another origin guards only that origin while the key is held', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1));
    c.applyRemote('fw2', 1, 11, 'delete', tcp(1));
    c.applyRemote('fw3', 1, 1, 'new', tcp(1, { mark: 3 }));
    // The key is held by fw3 now; fw2's tombstone went with the create.
    expect(c.tombstoneCount).toBe(0);
    expect(c.applyRemote('fw2', 1, 5, 'update', tcp(1, { mark: 5 }))).toBe('updated');
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 5, 5] });
  });

  it("a delete for a held key from an origin with no copy is missing, and buries that origin's later messages", () => {
    const c = cache();
    c.applyRemote('fw3', 1, 1, 'new', tcp(1, { mark: 3 }));
    expect(c.applyRemote('fw2', 1, 10, 'delete', tcp(1))).toBe('missing');
    expect(c.tombstoneCount).toBe(1);
    expect(c.applyRemote('fw2', 1, 9, 'update', tcp(1, { mark: 9 }))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 11, 'update', tcp(1, { mark: 11 }))).toBe('updated');
    expect(c.counters).toEqual(counters({ created: 1, updated: 1, missing: 1, stale: 1 }));
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 11, 11] });
  });

  it('at the shadow bound a takeover drops the old copy and its count, and later deletes end the key', () => {
    const c = cache({ limit: 1 });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1));
    expect(c.counters.shadowsRefused).toBe(0);
    c.applyRemote('fw4', 1, 1, 'update', tcp(1));
    expect(c.counters.shadowsRefused).toBe(1);
    // fw3's copy was dropped (not kept), fw2's stays as the one shadow.
    expect(c.origins()).toEqual(
      new Map([
        ['fw2', 1],
        ['fw4', 1],
      ]),
    );
    c.applyRemote('fw4', 1, 2, 'delete', tcp(1));
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 1, 0] });
    // The bound is free again: a takeover keeps its copy.
    c.applyRemote('fw3', 1, 2, 'update', tcp(1));
    expect(c.counters.shadowsRefused).toBe(1);
    c.applyRemote('fw3', 1, 3, 'delete', tcp(1));
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 1, 0] });
  });

  it('the shadow count falls as shadows go: a flush of their origin frees the bound', () => {
    const c = cache({ limit: 2 });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1));
    c.applyRemote('fw3', 1, 2, 'update', tcp(2));
    expect(c.flushOrigin('fw2')).toBe(2);
    expect(c.counters.flushed).toBe(2);
    // Two shadows may be held again.
    c.applyRemote('fw4', 1, 1, 'update', tcp(1));
    c.applyRemote('fw4', 1, 2, 'update', tcp(2));
    expect(c.counters.shadowsRefused).toBe(0);
    c.applyRemote('fw4', 1, 3, 'delete', tcp(1));
    c.applyRemote('fw4', 1, 4, 'delete', tcp(2));
    expect(view(c, [1, 2])).toEqual({ 1: ['fw3', 1, 1, 0], 2: ['fw3', 1, 2, 0] });
  });

  it('a filtered update drops only its origin\'s copy: the table\'s brings back the shadow, a shadow goes alone', () => {
    const check = new PeerEntryCheck(compileFilter({ ...NO_RULES, tcpStates: { accept: ['ESTABLISHED'] } }, []));
    const c = cache({ peerCheck: check });
    const closing = { protoinfo: { tcp: { state: 7 } } };
    c.applyRemote('fw2', 1, 1, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1, { mark: 3 }));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2, { mark: 2 }));
    c.applyRemote('fw3', 1, 2, 'update', tcp(2, { mark: 3 }));
    expect(c.applyRemote('fw3', 1, 3, 'update', tcp(1, closing))).toBe('filtered');
    expect(c.applyRemote('fw2', 1, 3, 'update', tcp(2, closing))).toBe('filtered');
    expect(view(c, [1, 2])).toEqual({ 1: ['fw2', 1, 1, 2], 2: ['fw3', 1, 2, 3] });
    expect(c.counters).toEqual(counters({ created: 2, updated: 2, deleted: 2, copyDeleted: 2 }));
    // A filtered message from an origin with no copy removes nothing.
    expect(c.applyRemote('fw4', 1, 1, 'update', tcp(1, closing))).toBe('filtered');
    expect(c.counters.deleted).toBe(2);
    // A delete is never filtered.
    expect(c.applyRemote('fw2', 1, 4, 'delete', tcp(1, closing))).toBe('deleted');
    expect(c.has(tcp(1))).toBe(false);
  });
});

describe('ExternalCache: tombstones', () => {
  it('a create removes the tombstone of its key', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    c.applyRemote('fw2', 1, 10, 'delete', tcp(2));
    expect(c.tombstoneCount).toBe(2);
    expect(c.applyRemote('fw2', 2, 1, 'new', tcp(1))).toBe('created');
    expect(c.tombstoneCount).toBe(1);
    const e = exp(tcp(1), 2000);
    c.applyRemoteExpect('fw2', 1, 10, 'delete', e);
    expect(c.tombstoneCount).toBe(2);
    expect(c.applyRemoteExpect('fw2', 2, 1, 'new', e)).toBe('created');
    expect(c.tombstoneCount).toBe(1);
  });

  it("another origin's delete replaces a tombstone, newer or older", () => {
    const c = cache();
    c.applyRemote('fw2', 1, 20, 'delete', tcp(1));
    expect(c.applyRemote('fw3', 1, 5, 'delete', tcp(1))).toBe('missing');
    // The tombstone is fw3's now: fw2 is not buried, fw3 is.
    expect(c.applyRemote('fw3', 1, 4, 'update', tcp(1))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 15, 'update', tcp(1))).toBe('created');
    expect(c.counters).toEqual(counters({ missing: 2, stale: 1, created: 1 }));
  });

  it("another epoch's delete replaces a tombstone", () => {
    const c = cache();
    c.applyRemote('fw2', 1, 20, 'delete', tcp(1));
    c.applyRemote('fw2', 2, 5, 'delete', tcp(1));
    expect(c.applyRemote('fw2', 2, 4, 'update', tcp(1))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 15, 'update', tcp(1))).toBe('created');
  });

  it('an expired tombstone is forgotten when looked up, for a held key too', () => {
    const t = clock();
    const c = cache({ now: t.now, tombstones: { max: 10, ttlMs: 1000 } });
    c.applyRemote('fw3', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    expect(c.tombstoneCount).toBe(1);
    t.advance(1001);
    expect(c.applyRemote('fw2', 1, 5, 'update', tcp(1, { mark: 5 }))).toBe('updated');
    expect(c.tombstoneCount).toBe(0);
  });

  it('expectations: ordered against their tombstone, another origin or epoch let through', () => {
    const c = cache();
    const e1 = exp(tcp(1), 2000);
    const e2 = exp(tcp(2), 2000);
    expect(c.applyRemoteExpect('fw2', 1, 10, 'delete', e1)).toBe('missing');
    expect(c.applyRemoteExpect('fw2', 1, 10, 'delete', e2)).toBe('missing');
    expect(c.applyRemoteExpect('fw2', 1, 9, 'new', e1)).toBe('stale');
    expect(c.applyRemoteExpect('fw3', 1, 9, 'new', e1)).toBe('created');
    expect(c.applyRemoteExpect('fw2', 2, 9, 'new', e2)).toBe('created');
    expect(c.expectCounters).toEqual(counters({ created: 2, missing: 2, stale: 1 }));
  });

  it('off: deletes leave none, for conntrack entries and expectations', () => {
    const c = cache({ tombstones: { max: 0, ttlMs: 1000 } });
    const e = exp(tcp(1), 2000);
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    c.applyRemoteExpect('fw2', 1, 10, 'delete', e);
    expect(c.tombstoneCount).toBe(0);
    expect(c.applyRemoteExpect('fw2', 1, 9, 'new', e)).toBe('created');
  });

  it('flush forgets them, with or without any held', () => {
    const fresh = cache();
    fresh.flush();
    expect(fresh.tombstoneCount).toBe(0);
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    c.flush();
    expect(c.tombstoneCount).toBe(0);
    expect(c.applyRemote('fw2', 1, 9, 'update', tcp(1))).toBe('created');
  });
});

describe('ExternalCache: expectations', () => {
  it('stale against a record of the same origin and epoch only', () => {
    const c = cache();
    const e = exp(tcp(1), 2000);
    c.applyRemoteExpect('fw2', 1, 10, 'new', e);
    expect(c.applyRemoteExpect('fw2', 1, 9, 'update', e)).toBe('stale');
    expect(c.applyRemoteExpect('fw2', 1, 9, 'delete', e)).toBe('stale');
    expect(c.applyRemoteExpect('fw2', 2, 9, 'update', e)).toBe('updated');
    expect(c.applyRemoteExpect('fw3', 1, 1, 'update', e)).toBe('updated');
    expect(c.applyRemoteExpect('fw3', 1, 2, 'update', e)).toBe('updated');
    expect(c.getExpect(expectKey(e))).toMatchObject({ origin: 'fw3', epoch: 1, seq: 2 });
    // Another origin in the same epoch with a lower seq still wins.
    expect(c.applyRemoteExpect('fw4', 1, 1, 'update', e)).toBe('updated');
    expect(c.getExpect(expectKey(e))).toMatchObject({ origin: 'fw4', epoch: 1, seq: 1 });
    expect(c.expectCounters).toEqual(counters({ created: 1, updated: 4, stale: 2 }));
  });

  it('a delete is never filtered, and one for a key not held is missing', () => {
    const check = new PeerEntryCheck(compileFilter(NO_RULES, []), { helpers: ['sip'] });
    const c = cache({ peerCheck: check });
    const ftp = exp(tcp(1), 2000);
    const sip = exp(tcp(2), 5060, { helper: 'sip' });
    expect(c.applyRemoteExpect('fw2', 1, 1, 'new', sip)).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 2, 'new', ftp)).toBe('filtered');
    expect(c.applyRemoteExpect('fw2', 1, 3, 'delete', ftp)).toBe('missing');
    expect(c.applyRemoteExpect('fw2', 1, 4, 'delete', sip)).toBe('deleted');
    expect(c.expectCounters).toEqual(counters({ created: 1, deleted: 1, missing: 1 }));
  });

  it('flushOrigin and flush remove and count them, per origin', () => {
    const c = cache();
    c.applyRemoteExpect('fw2', 1, 1, 'new', exp(tcp(1), 2000));
    c.applyRemoteExpect('fw3', 1, 1, 'new', exp(tcp(2), 2000));
    c.applyRemoteExpect('fw3', 1, 2, 'new', exp(tcp(3), 2000));
    expect(c.flushOrigin('fw2')).toBe(1);
    expect(c.expectSize).toBe(2);
    expect(c.expectCounters.flushed).toBe(1);
    c.flush();
    expect(c.expectSize).toBe(0);
    expect(c.expectCounters.flushed).toBe(3);
  });

  it('the share of an origin stays right when its expectations are deleted and flushed', () => {
    const c = cache({ expectLimit: 6, shareDivisor: () => 3 });
    const e = (n: number) => exp(tcp(n), 2000);
    expect(c.applyRemoteExpect('fw2', 1, 1, 'new', e(1))).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 2, 'new', e(2))).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 3, 'new', e(3))).toBe('refused');
    // One deleted: room for exactly one more.
    c.applyRemoteExpect('fw2', 1, 4, 'delete', e(1));
    expect(c.applyRemoteExpect('fw2', 1, 5, 'new', e(3))).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 6, 'new', e(4))).toBe('refused');
    // Both deleted: the share is empty again, two fit.
    c.applyRemoteExpect('fw2', 1, 7, 'delete', e(2));
    c.applyRemoteExpect('fw2', 1, 8, 'delete', e(3));
    expect(c.applyRemoteExpect('fw2', 1, 9, 'new', e(5))).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 10, 'new', e(6))).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 11, 'new', e(7))).toBe('refused');
    c.flushOrigin('fw2');
    expect(c.applyRemoteExpect('fw2', 1, 12, 'new', e(8))).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 13, 'new', e(9))).toBe('created');
    expect(c.peerCounters.overShare).toBe(3);
  });

  it('a bulk marks the expectations it carries, updates included', () => {
    const c = cache();
    const e1 = exp(tcp(1), 2000);
    const e2 = exp(tcp(2), 2000);
    c.applyRemoteExpect('fw2', 1, 1, 'new', e1);
    c.applyRemoteExpect('fw2', 1, 2, 'new', e2);
    c.beginBulk('fw2');
    c.applyRemoteExpect('fw2', 1, 3, 'update', e1);
    expect(c.endBulk('fw2')).toBe(1);
    expect([...c.expectEntries()].map(([k]) => k)).toEqual([expectKey(e1)]);
    // Outside a bulk an update keeps the mark of the last one: the next bulk does not count it as carried.
    c.applyRemoteExpect('fw2', 1, 4, 'update', e1);
    c.beginBulk('fw2');
    expect(c.endBulk('fw2')).toBe(1);
    expect(c.expectSize).toBe(0);
  });
});

describe('ExternalCache: bulks', () => {
  it('an end without a bulk in progress removes nothing, whatever an earlier bulk marked', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemoteExpect('fw2', 1, 2, 'new', exp(tcp(1), 2000));
    c.beginBulk('fw2');
    c.applyRemote('fw2', 1, 3, 'update', tcp(1));
    c.applyRemoteExpect('fw2', 1, 4, 'update', exp(tcp(1), 2000));
    expect(c.endBulk('fw2')).toBe(0);
    expect(c.endBulk('fw2')).toBe(0);
    expect(c.size).toBe(1);
    expect(c.expectSize).toBe(1);
    expect(c.inBulk('nobody')).toBe(false);
    expect(c.endBulk('nobody')).toBe(0);
  });

  it('an origin whose copies all went during its bulk is still in the bulk', () => {
    const c = cache();
    c.beginBulk('fw2');
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'delete', tcp(1));
    expect(c.inBulk('fw2')).toBe(true);
    c.applyRemote('fw2', 1, 3, 'new', tcp(2));
    expect(c.endBulk('fw2')).toBe(0);
    expect(c.has(tcp(2))).toBe(true);
    expect(c.inBulk('fw2')).toBe(false);
  });

  it('with a start: only records of its epoch at or after its seq count as carried', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 99, 'new', tcp(1));
    c.applyRemote('fw2', 1, 100, 'new', tcp(2));
    c.applyRemote('fw2', 1, 101, 'new', tcp(3));
    c.applyRemote('fw2', 2, 500, 'new', tcp(4));
    c.beginBulk('fw2', { epoch: 1, seq: 100 });
    expect(c.endBulk('fw2')).toBe(2);
    expect([1, 2, 3, 4].map((n) => c.has(tcp(n)))).toEqual([false, true, true, false]);
    expect(c.counters.bulkRemoved).toBe(2);
  });

  it('a bulk of another origin leaves this one\'s shadows and table copies alone; its own shadows go', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 1, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1, { mark: 3 }));
    c.applyRemote('fw3', 1, 2, 'new', tcp(2, { mark: 3 }));
    c.applyRemote('fw2', 1, 2, 'update', tcp(2, { mark: 2 }));
    c.beginBulk('fw2');
    expect(c.endBulk('fw2')).toBe(2);
    expect(view(c, [1, 2])).toEqual({ 1: ['fw3', 1, 1, 3], 2: ['fw3', 1, 2, 3] });
    expect(c.origins()).toEqual(new Map([['fw3', 2]]));
    expect(c.counters.bulkRemoved).toBe(2);
  });

  it('a rollover during a bulk with a start moves the start to the new epoch', () => {
    const c = cache();
    // Applied before the late bulk-start (seq 10), carried by it.
    c.applyRemote('fw2', 1, 11, 'new', tcp(1));
    c.applyRemote('fw2', 1, 9, 'new', tcp(2));
    c.beginBulk('fw2', { epoch: 1, seq: 10 });
    c.continueEpoch('fw2', 1, 2, 0);
    expect(c.endBulk('fw2')).toBe(1);
    expect([1, 2].map((n) => c.has(tcp(n)))).toEqual([true, false]);
  });
});

describe('ExternalCache: rollovers (continueEpoch)', () => {
  it('of an unknown origin changes nothing', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.continueEpoch('nobody', 1, 2, 100);
    expect(view(c, [1])).toEqual({ 1: ['fw2', 1, 1, 0] });
  });

  it('leaves records of a third epoch of the origin alone', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 5, 'new', tcp(1));
    c.applyRemote('fw2', 3, 5, 'new', tcp(2));
    c.continueEpoch('fw2', 1, 2, 50);
    expect(view(c, [1, 2])).toEqual({ 1: ['fw2', 2, 50, 0], 2: ['fw2', 3, 5, 0] });
  });

  it('after messages of the new epoch came first: both epochs\' records are carried and raised to the floor', () => {
    const c = cache();
    c.applyRemote('fw2', 1, 5, 'new', tcp(1));
    c.applyRemote('fw2', 2, 6, 'new', tcp(2));
    c.applyRemote('fw2', 2, 7, 'new', tcp(3));
    c.continueEpoch('fw2', 1, 2, 50);
    expect(view(c, [1, 2, 3])).toEqual({ 1: ['fw2', 2, 50, 0], 2: ['fw2', 2, 50, 0], 3: ['fw2', 2, 50, 0] });
    expect(c.applyRemote('fw2', 2, 49, 'update', tcp(1, { mark: 1 }))).toBe('stale');
    expect(c.applyRemote('fw2', 2, 49, 'update', tcp(2, { mark: 1 }))).toBe('stale');
  });

  it("carries the origin's shadows of the old epoch and raises them to the floor", () => {
    const c = cache();
    c.applyRemote('fw2', 1, 10, 'new', tcp(1, { mark: 2 }));
    c.applyRemote('fw3', 1, 1, 'update', tcp(1, { mark: 3 }));
    // fw2 goes on in epoch 2 before it says so: its shadow still holds epoch 1.
    c.applyRemote('fw2', 2, 60, 'new', tcp(2));
    c.continueEpoch('fw2', 1, 2, 50);
    expect(c.applyRemote('fw2', 2, 40, 'update', tcp(1, { mark: 40 }))).toBe('stale');
    c.applyRemote('fw3', 1, 2, 'delete', tcp(1));
    expect(view(c, [1])).toEqual({ 1: ['fw2', 2, 50, 2] });
    // Another origin's shadow is not touched.
    const d = cache();
    d.applyRemote('fw3', 1, 10, 'new', tcp(1, { mark: 3 }));
    d.applyRemote('fw2', 1, 1, 'update', tcp(1, { mark: 2 }));
    d.continueEpoch('fw2', 1, 2, 50);
    d.applyRemote('fw2', 2, 51, 'delete', tcp(1));
    expect(view(d, [1])).toEqual({ 1: ['fw3', 1, 10, 3] });
  });

  it("carries the origin's expectations and raises them to the floor; others' stay", () => {
    const c = cache();
    const e1 = exp(tcp(1), 2000);
    const e2 = exp(tcp(2), 2000);
    const e3 = exp(tcp(3), 2000);
    c.applyRemoteExpect('fw2', 1, 5, 'new', e1);
    c.applyRemoteExpect('fw2', 1, 70, 'new', e2);
    c.applyRemoteExpect('fw3', 1, 5, 'new', e3);
    c.continueEpoch('fw2', 1, 2, 50);
    const got = [e1, e2, e3].map((e) => {
      const r = c.getExpect(expectKey(e))!;
      return [r.origin, r.epoch, r.seq];
    });
    expect(got).toEqual([
      ['fw2', 2, 50],
      ['fw2', 2, 70],
      ['fw3', 1, 5],
    ]);
    expect(c.applyRemoteExpect('fw2', 2, 49, 'update', e1)).toBe('stale');
  });
});

describe('ExternalCache: released origins', () => {
  function full(limit: number) {
    const c = cache({ limit });
    return c;
  }

  it('a live origin needing room frees the released origins one at a time, oldest release first', () => {
    const c = full(4);
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 1, 'new', tcp(2));
    c.applyRemote('fw3', 1, 2, 'new', tcp(3));
    c.applyRemoteExpect('fw2', 1, 2, 'new', exp(tcp(1), 2000));
    c.applyRemote('fw4', 1, 1, 'new', tcp(4));
    c.release('fw2');
    c.release('fw3');
    c.release('nobody');
    expect(c.applyRemote('fw5', 1, 1, 'new', tcp(5))).toBe('created');
    // fw2's one record made room: fw3's stay.
    expect(c.counters.released).toBe(1);
    expect(c.expectCounters.released).toBe(1);
    expect(c.expectSize).toBe(0);
    expect([1, 2, 3, 4, 5].map((n) => c.has(tcp(n)))).toEqual([false, true, true, true, true]);
    expect(c.applyRemote('fw5', 1, 2, 'new', tcp(6))).toBe('created');
    expect(c.counters.released).toBe(3);
    expect([2, 3, 4, 5, 6].map((n) => c.has(tcp(n)))).toEqual([false, false, true, true, true]);
    // One slot is free; then nothing released is left: full again.
    expect(c.applyRemote('fw5', 1, 3, 'new', tcp(7))).toBe('created');
    expect(c.applyRemote('fw5', 1, 4, 'new', tcp(8))).toBe('refused');
    expect(c.counters).toMatchObject({ refused: 1, released: 3 });
  });

  it('a released origin holding nothing in the table frees no room: the next one is freed too', () => {
    const c = full(2);
    c.applyRemoteExpect('fw2', 1, 1, 'new', exp(tcp(9), 2000));
    c.applyRemote('fw3', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 2, 'new', tcp(2));
    c.release('fw2');
    c.release('fw3');
    expect(c.applyRemote('fw4', 1, 1, 'new', tcp(3))).toBe('created');
    expect(c.size).toBe(1);
    expect(c.counters.released).toBe(2);
    expect(c.expectCounters.released).toBe(1);
  });

  it('an origin heard from again is no longer released, and is not freed for its own new keys', () => {
    const c = full(2);
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 1, 'new', tcp(2));
    c.release('fw2');
    c.release('fw3');
    // fw2 is back: only fw3 is still released, and fw2's new key takes fw3's room.
    expect(c.applyRemote('fw2', 1, 2, 'new', tcp(3))).toBe('created');
    expect([1, 2, 3].map((n) => c.has(tcp(n)))).toEqual([true, false, true]);
    expect(c.applyRemote('fw4', 1, 1, 'new', tcp(4))).toBe('refused');
    expect(c.counters).toMatchObject({ released: 1, refused: 1 });
  });

  it('an origin heard from again, by an update, is not freed for another origin', () => {
    const c = full(2);
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 1, 'new', tcp(2));
    c.release('fw2');
    c.release('fw3');
    expect(c.applyRemote('fw2', 1, 2, 'update', tcp(1, { mark: 2 }))).toBe('updated');
    // Only fw3 is still released: it gives way, fw2 stays.
    expect(c.applyRemote('fw4', 1, 1, 'new', tcp(3))).toBe('created');
    expect([1, 2, 3].map((n) => c.has(tcp(n)))).toEqual([true, false, true]);
    expect(c.counters.released).toBe(1);
  });

  it('a flush of a released origin takes it off the list', () => {
    const c = full(2);
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 1, 'new', tcp(2));
    c.release('fw2');
    c.flushOrigin('fw2');
    c.applyRemote('fw2', 1, 2, 'new', tcp(3));
    // fw2 is live again, holding tcp(3): nothing is released to give way.
    expect(c.applyRemote('fw4', 1, 1, 'new', tcp(4))).toBe('refused');
    expect(c.counters).toMatchObject({ released: 0, flushed: 1 });
  });
});

describe('ExternalCache: commitOrder', () => {
  it('masters first, then related entries; all origins or one, with the origins named', () => {
    const c = cache();
    const master = tcp(1).orig;
    // fw3's first: the origins are named sorted, not in the table's order.
    c.applyRemote('fw3', 1, 1, 'new', tcp(3));
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2, { master }));
    c.applyRemote('fw3', 1, 2, 'new', wholeFlow(4, { master }));
    c.applyRemote('fw2', 1, 3, 'new', tcp(5, { labels: Buffer.alloc(16, 1) }));
    const marks = (o: { slots: Int32Array; gens: Uint32Array }) =>
      [...o.slots].map((s, i) => c.currentRecord(s, o.gens[i]!)!.entry().orig.sport! - 20000);
    const all = c.commitOrder();
    expect(all.masters).toBe(3);
    expect(all.peers).toEqual(['fw2', 'fw3']);
    expect(marks(all).slice(0, 3).sort()).toEqual([1, 3, 5]);
    expect(marks(all).slice(3).sort()).toEqual([2, 4]);
    const fw2 = c.commitOrder('fw2');
    expect(fw2.masters).toBe(2);
    expect(fw2.peers).toEqual(['fw2']);
    expect(marks(fw2).slice(0, 2).sort()).toEqual([1, 5]);
    expect(marks(fw2).slice(2)).toEqual([2]);
    const fw3 = c.commitOrder('fw3');
    expect([fw3.masters, fw3.peers, marks(fw3)]).toEqual([1, ['fw3'], [3, 4]]);
    const none = c.commitOrder('fw9');
    expect([none.masters, none.peers, none.slots.length]).toEqual([0, [], 0]);
  });
});
