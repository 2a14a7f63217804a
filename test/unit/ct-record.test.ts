// Records (src/kernel/ct-record.ts) against the object codec they replace on
// the hot path: the same entries, the same identities, the same verdict on
// every kernel fixture, on random entries and on damaged messages.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntryCompactor } from '../../src/cache/compact.js';
import { CHUNK_RECORDS, RecordTable } from '../../src/cache/record-table.js';
import { AF_INET, AF_INET6, IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK } from '../../src/kernel/constants.js';
import { COMMIT_FORM } from '../../src/cache/commit.js';
import { AS_IS, decodeConntrack, encodeConntrack, encodeRequest, encodeRequestRecord } from '../../src/kernel/ct-codec.js';
import {
  decodeConntrackRecord,
  F_WHOLE,
  KEY_WORDS,
  REC_OK,
  REC_PUNT,
  REC_WORDS,
  type RecordBuf,
  RecordPool,
  type RecordExtras,
  readEntryRecord,
  recordBuf,
  recordHash,
  recordProto,
  recordTcpState,
  sameRecordKey,
  W_FLAGS,
  writeEntryRecord,
} from '../../src/kernel/ct-record.js';
import { type ConntrackEntry, entryKey, type Family, type Tuple } from '../../src/kernel/entry.js';
import { type NlMessage, NlWriter, parseNetlink } from '../../src/kernel/netlink-codec.js';
import { corpus, entryArb, mutate, mutation, serialise, tree, u16, u32, u8, v4, v6 } from './ct-arbitraries.js';
import { atLeast, runs } from './fc-runs.js';

const CT_TYPE = NFNL_SUBSYS_CTNETLINK << 8;
const SEED = Number(process.env.FC_SEED ?? 20261206);

function isCt(m: NlMessage): boolean {
  return m.type >> 8 === NFNL_SUBSYS_CTNETLINK;
}

/** The record and extras writeEntryRecord makes of `e`, with the compactor's form kept when whole. */
function viaObjects(e: ConntrackEntry, compactor = new EntryCompactor()): { r: RecordBuf; x: RecordExtras | undefined } {
  const r = recordBuf(1);
  const x = writeEntryRecord(e, r, 0, (v) => compactor.entry(v));
  if (x === false) throw new Error(`entry not representable: ${JSON.stringify(e)}`);
  return { r, x };
}

function wordsOf(r: RecordBuf, at = 0): number[] {
  return [...r.w.subarray(at, at + REC_WORDS)];
}

function messageOf(e: ConntrackEntry, layout: 'dump' | 'event'): NlMessage {
  const w = new NlWriter(512);
  w.begin(CT_TYPE | IPCTNL_MSG_CT_NEW, 0, 1, e.family);
  encodeConntrack(w, e, { readOnly: true, layout });
  w.end();
  return parseNetlink(w.finish()).messages[0]!;
}

/**
 * The fast decoder's promise on one message: either it punts, or the object
 * decoder accepts the message and its entry makes the same record, with no
 * extras. Returns what happened.
 */
function agree(m: NlMessage): 'fast' | 'punt' {
  const r = recordBuf(2);
  // Garbage in the record first: the decoder must write every word it claims.
  r.w.fill(-1);
  const got = decodeConntrackRecord(m.payload, r, REC_WORDS);
  // The same payload in place inside a larger buffer (the event socket's way) decodes alike.
  const inPlace = recordBuf(1);
  const framed = Buffer.concat([Buffer.alloc(12, 0xa5), m.payload, Buffer.alloc(12, 0x5a)]);
  expect(decodeConntrackRecord(framed, inPlace, 0, 12, 12 + m.payload.length)).toBe(got);
  if (got === REC_OK) expect(wordsOf(inPlace, 0)).toEqual(wordsOf(r, REC_WORDS));
  if (got === REC_PUNT) return 'punt';
  expect(got).toBe(REC_OK);
  const d = decodeConntrack(m);
  expect(d.ok).toBe(true);
  if (!d.ok) throw new Error('unreachable');
  const { r: want, x } = viaObjects(d.value);
  expect(x).toBeUndefined();
  expect(wordsOf(r, REC_WORDS)).toEqual(wordsOf(want));
  return 'fast';
}

// Entries of the shape the kernel sends for nearly every flow: what the fast path must take.
function plainTuple(family: Family, proto: number): fc.Arbitrary<Tuple> {
  const addr = family === AF_INET ? v4 : v6;
  if (proto === 1 || proto === 58) return fc.record({ src: addr, dst: addr, proto: fc.constant(proto), icmpType: u8, icmpCode: u8, icmpId: u16 });
  return fc.record({ src: addr, dst: addr, proto: fc.constant(proto), sport: u16, dport: u16 });
}
const plainEntry: fc.Arbitrary<ConntrackEntry> = fc
  .tuple(fc.constantFrom<Family>(AF_INET, AF_INET6), fc.constantFrom(6, 17, 1))
  .chain(([family, p]) => {
    const proto = family === AF_INET6 && p === 1 ? 58 : p;
    return fc.record(
      {
        family: fc.constant(family),
        orig: plainTuple(family, proto),
        reply: plainTuple(family, proto),
        status: u32,
        timeout: u32,
        mark: u32,
        zone: u16,
        secmark: u32,
        id: u32,
        use: u32,
        protoinfo:
          proto === 6
            ? fc.record({
                tcp: fc.record(
                  { state: u8, wscaleOrig: u8, wscaleReply: u8, flagsOrig: fc.record({ flags: u8, mask: u8 }), flagsReply: fc.record({ flags: u8, mask: u8 }) },
                  { requiredKeys: ['state'] },
                ),
              })
            : fc.constant(undefined),
        countersOrig: fc.record({ packets: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), bytes: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
        synproxy: fc.constant({ isn: 0, its: 0, tsoff: 0 }),
      },
      { requiredKeys: ['family', 'orig', 'reply'] },
    );
  })
  .map((e) => {
    if (e.protoinfo === undefined) delete e.protoinfo;
    return e;
  });

describe('records hold what the object caches hold', () => {
  it('every conntrack entry of the kernel fixtures survives entry → record → entry as its compact form', () => {
    let n = 0;
    for (const buf of corpus) {
      for (const m of parseNetlink(buf).messages) {
        if (!isCt(m)) continue;
        const d = decodeConntrack(m);
        if (!d.ok) continue;
        const compactor = new EntryCompactor();
        const { r, x } = viaObjects(d.value, compactor);
        expect(readEntryRecord(r, 0, x)).toEqual(compactor.entry(d.value));
        n++;
      }
    }
    expect(n).toBeGreaterThan(10);
  });

  it('random entries of every shape survive entry → record → entry (20,000)', () => {
    let whole = 0;
    fc.assert(
      fc.property(entryArb, (e) => {
        const compactor = new EntryCompactor();
        const { r, x } = viaObjects(e, compactor);
        if (r.w[W_FLAGS]! & F_WHOLE) whole++;
        expect(readEntryRecord(r, 0, x)).toEqual(compactor.entry(e));
      }),
      { numRuns: runs(20_000), seed: SEED },
    );
    // Both kinds were exercised: held in words and kept whole.
    expect(whole).toBeGreaterThan(atLeast(100));
    expect(whole).toBeLessThan(runs(20_000));
  });

  it('plain entries need no extras and read back the protocol and TCP state', () => {
    fc.assert(
      fc.property(plainEntry, (e) => {
        const { r, x } = viaObjects(e);
        expect(x).toBeUndefined();
        expect(recordProto(r.w, 0)).toBe(e.orig.proto);
        expect(recordTcpState(r.w, 0)).toBe(e.protoinfo?.tcp?.state ?? -1);
      }),
      { numRuns: runs(5_000), seed: SEED + 1 },
    );
  });

  it('refuses entries no decoder makes: an address of the wrong family, a protocol or zone out of range', () => {
    const base: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '10.99.0.1', dst: '10.99.0.2', proto: 6, sport: 1, dport: 2 },
      reply: { src: '10.99.0.2', dst: '10.99.0.1', proto: 6, sport: 2, dport: 1 },
    };
    const r = recordBuf(1);
    expect(writeEntryRecord(base, r, 0)).toBeUndefined();
    expect(writeEntryRecord({ ...base, orig: { ...base.orig, src: '2001:db8::1' } }, r, 0)).toBe(false);
    expect(writeEntryRecord({ ...base, orig: { ...base.orig, proto: 256 } }, r, 0)).toBe(false);
    expect(writeEntryRecord({ ...base, zone: 65536 }, r, 0)).toBe(false);
    // A reply address of the wrong family is kept whole rather than refused: the key is sound.
    const x = writeEntryRecord({ ...base, reply: { ...base.reply, src: 'x' } }, r, 0);
    expect(x && x.whole).toBeTruthy();
  });
});

describe('record keys are entry keys', () => {
  // Pairs that differ in one field, or in none, so equal keys come up often.
  const change = fc.constantFrom('none', 'src', 'dst', 'sport', 'dport', 'zone', 'tuplezone', 'reply', 'status', 'icmp', 'proto');
  function changed(e: ConntrackEntry, what: string, v: number): ConntrackEntry {
    const o = { ...e.orig };
    switch (what) {
      case 'src':
        o.src = e.family === AF_INET ? `10.99.${v & 0xff}.${(v >> 8) & 0xff}` : `2001:db8::${(v & 0xffff).toString(16)}`;
        break;
      case 'dst':
        o.dst = e.family === AF_INET ? `10.98.${v & 0xff}.1` : `2001:db8:1::${(v & 0xffff).toString(16)}`;
        break;
      case 'sport':
        if (o.sport !== undefined) o.sport = v & 0xffff;
        break;
      case 'dport':
        o.dport = v & 0xffff;
        break;
      case 'zone':
        return { ...e, zone: v & 0xffff };
      case 'tuplezone':
        o.zone = v & 0xffff;
        break;
      case 'reply':
        return { ...e, reply: { ...e.reply, dst: e.orig.src, src: e.orig.dst } };
      case 'status':
        return { ...e, status: v >>> 0 };
      case 'icmp':
        if (o.icmpType !== undefined) o.icmpType = v & 0xff;
        break;
      case 'proto':
        o.proto = v & 0xff;
        break;
    }
    return { ...e, orig: o };
  }

  it('two entries have equal key words exactly when their entryKey()s are equal (20,000 pairs)', () => {
    let equal = 0;
    fc.assert(
      fc.property(entryArb, change, u32, (a, what, v) => {
        const b = changed(a, what, v);
        const ra = recordBuf(1);
        const rb = recordBuf(1);
        if (writeEntryRecord(a, ra, 0) === false || writeEntryRecord(b, rb, 0) === false) return;
        const same = entryKey(a) === entryKey(b);
        if (same) equal++;
        expect(sameRecordKey(ra.w, 0, rb.w, 0)).toBe(same);
        if (same) expect(recordHash(ra.w, 0)).toBe(recordHash(rb.w, 0));
      }),
      { numRuns: runs(20_000), seed: SEED + 2 },
    );
    expect(equal).toBeGreaterThan(atLeast(1000));
    expect(equal).toBeLessThan(atLeast(19_000));
  });

  it('only the first KEY_WORDS words are the key', () => {
    const e: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '10.99.0.1', dst: '10.99.0.2', proto: 17, sport: 53, dport: 5353 },
      reply: { src: '10.99.0.2', dst: '10.99.0.1', proto: 17, sport: 5353, dport: 53 },
      mark: 1,
    };
    const a = recordBuf(1);
    const b = recordBuf(1);
    writeEntryRecord(e, a, 0);
    writeEntryRecord({ ...e, mark: 2, reply: { ...e.reply, src: '10.99.9.9' } }, b, 0);
    expect(sameRecordKey(a.w, 0, b.w, 0)).toBe(true);
    expect(KEY_WORDS).toBeLessThan(REC_WORDS);
  });
});

describe('decodeConntrackRecord: the object decoder without objects, or a punt', () => {
  it('agrees on every fixture and takes the common ones itself', () => {
    let fast = 0;
    for (const buf of corpus) for (const m of parseNetlink(buf).messages) if (isCt(m) && agree(m) === 'fast') fast++;
    expect(fast).toBeGreaterThan(5);
  });

  it('takes every plain entry, in dump and event attribute order (10,000)', () => {
    fc.assert(
      fc.property(plainEntry, fc.constantFrom<'dump' | 'event'>('dump', 'event'), (e, layout) => {
        expect(agree(messageOf(e, layout))).toBe('fast');
      }),
      { numRuns: runs(10_000), seed: SEED + 3 },
    );
  });

  it('agrees with the object decoder on entries of every shape (10,000)', () => {
    let punts = 0;
    fc.assert(
      fc.property(entryArb, fc.constantFrom<'dump' | 'event'>('dump', 'event'), (e, layout) => {
        if (agree(messageOf(e, layout)) === 'punt') punts++;
      }),
      { numRuns: runs(10_000), seed: SEED + 4 },
    );
    expect(punts).toBeGreaterThan(0);
  });

  it('never throws and never accepts what the object decoder would not, on mutated fixtures (30,000)', () => {
    const cts = corpus.filter((b) => parseNetlink(b).messages.some(isCt));
    fc.assert(
      fc.property(fc.nat({ max: cts.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
        const b = mutate(cts[i]!, ms);
        if (b.length >= 16) b.writeUInt32LE(b.length, 0);
        for (const m of parseNetlink(b).messages) if (isCt(m)) agree(m);
      }),
      { numRuns: runs(30_000), seed: SEED + 5 },
    );
  });

  it('never throws on random attribute trees (20,000)', () => {
    fc.assert(
      fc.property(fc.constantFrom(AF_INET, AF_INET6, 0, 7), tree, (family, nodes) => {
        const payload = Buffer.concat([Buffer.from([family, 0, 0, 0]), serialise(nodes)]);
        agree({ type: CT_TYPE | IPCTNL_MSG_CT_NEW, flags: 0, seq: 0, pid: 0, payload });
      }),
      { numRuns: runs(20_000), seed: SEED + 6 },
    );
  });
});

describe('RecordTable', () => {
  function recordOf(i: number, mark = 0): { r: RecordBuf } {
    const r = recordBuf(1);
    writeEntryRecord(
      {
        family: AF_INET,
        orig: { src: `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`, dst: '10.99.200.1', proto: 6, sport: i & 0xffff, dport: 443 },
        reply: { src: '10.99.200.1', dst: `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`, proto: 6, sport: 443, dport: i & 0xffff },
        mark,
      },
      r,
      0,
    );
    return { r };
  }

  it('behaves like a Map under random inserts, overwrites and removes (2,000 runs of up to 300 steps)', () => {
    const op = fc.record({ kind: fc.constantFrom('put', 'put', 'del', 'find'), key: fc.integer({ min: 0, max: 400 }), mark: u32 });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 1, max: 64 }), (ops, initial) => {
        const t = new RecordTable(initial);
        const model = new Map<number, number>();
        for (const { kind, key, mark } of ops) {
          const { r } = recordOf(key, mark);
          const slot = t.find(r.w, 0);
          expect(slot >= 0).toBe(model.has(key));
          if (kind === 'put') {
            if (slot >= 0) t.overwrite(slot, r.w, 0);
            else t.insert(r.w, 0, key % 7 === 0 ? { helper: `h${key}` } : undefined);
            model.set(key, mark);
          } else if (kind === 'del' && slot >= 0) {
            t.remove(slot);
            model.delete(key);
          }
          expect(t.size).toBe(model.size);
        }
        const seen = new Map<number, number>();
        for (let s = t.next(-1); s >= 0; s = t.next(s)) {
          const e = readEntryRecord(t.recOf(s), t.at(s), t.extrasOf(s));
          const key = e.orig.sport!;
          expect(seen.has(key)).toBe(false);
          seen.set(key, e.mark!);
          expect(e.helper).toBe(key % 7 === 0 ? `h${key}` : undefined);
        }
        expect(seen).toEqual(model);
        for (const key of model.keys()) expect(t.find(recordOf(key).r.w, 0)).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: runs(2_000), seed: SEED + 7 },
    );
  });

  it('grows past its first capacity and its first chunk, and reuses freed slots', () => {
    const t = new RecordTable(16);
    const n = CHUNK_RECORDS + 5000;
    for (let i = 0; i < n; i++) t.insert(recordOf(i, i).r.w, 0, undefined);
    expect(t.size).toBe(n);
    expect(t.capacity).toBeGreaterThanOrEqual(n);
    const cap = t.capacity;
    for (let i = 0; i < 2500; i++) t.remove(t.find(recordOf(i).r.w, 0));
    for (let i = n; i < n + 2500; i++) t.insert(recordOf(i, i).r.w, 0, undefined);
    expect(t.capacity).toBe(cap);
    expect(t.size).toBe(n);
    for (let i = 0; i < n + 2500; i++) {
      const s = t.find(recordOf(i).r.w, 0);
      expect(s >= 0).toBe(i >= 2500);
      // Each record in its own place, across chunks.
      if (s >= 0) expect(readEntryRecord(t.recOf(s), t.at(s), undefined).mark).toBe(i);
    }
    t.clear();
    expect(t.size).toBe(0);
    expect(t.next(-1)).toBe(-1);
  });
});

describe('encodeRequestRecord: a commit writes records as encodeRequest writes their entries', () => {
  // NATed and plain flows of every protocol kind, besides entryArb's every shape.
  const natted: fc.Arbitrary<ConntrackEntry> = fc
    .record({ a: v4, b: v4, snat: fc.option(v4, { nil: undefined }), dnat: fc.option(v4, { nil: undefined }), sp: u16, dp: u16, np: fc.option(u16, { nil: undefined }), kind: fc.constantFrom(6, 17, 1, 47, 50), type: fc.constantFrom(0, 8), flags: fc.boolean() })
    .map((g): ConntrackEntry => {
      const ports = g.kind !== 1 && g.kind !== 50;
      const t = (src: string, dst: string, sp: number, dp: number): Tuple =>
        g.kind === 1 ? { src, dst, proto: 1, icmpType: g.type, icmpCode: 0, icmpId: sp } : ports ? { src, dst, proto: g.kind, sport: sp, dport: dp } : { src, dst, proto: g.kind };
      const e: ConntrackEntry = {
        family: AF_INET,
        orig: t(g.a, g.b, g.sp, g.dp),
        reply: t(g.dnat ?? g.b, g.snat ?? g.a, g.np ?? g.dp, g.sp),
        status: 0x18e,
        timeout: 120,
        mark: 3,
      };
      if (g.kind === 6) e.protoinfo = { tcp: g.flags ? { state: 3, wscaleOrig: 7, flagsOrig: { flags: 2, mask: 2 } } : { state: 3 } };
      return e;
    });

  it('gives the same bytes for creates, updates and both forms (20,000)', () => {
    const pool = new RecordPool();
    let fast = 0;
    fc.assert(
      fc.property(fc.oneof(entryArb, natted), fc.boolean(), fc.boolean(), (e, create, commit) => {
        const compactor = new EntryCompactor();
        const r = recordBuf(1);
        const x = writeEntryRecord(e, r, 0, (v) => compactor.entry(v));
        if (x === false) return;
        if (x === undefined) fast++;
        const form = commit ? COMMIT_FORM : AS_IS;
        const out = (f: (w: NlWriter) => void): Buffer | string => {
          const w = new NlWriter(1024);
          w.begin(CT_TYPE | IPCTNL_MSG_CT_NEW, 0, 1, e.family);
          try {
            f(w);
          } catch (err) {
            return String(err);
          }
          w.end();
          return Buffer.from(w.finish());
        };
        const want = out((w) => encodeRequest(w, compactor.entry(e), form, create));
        const got = out((w) => encodeRequestRecord(w, pool.copy(r.w, 0, x), form, create));
        expect(got).toEqual(want);
      }),
      { numRuns: runs(20_000), seed: SEED + 9 },
    );
    expect(fast).toBeGreaterThan(atLeast(5_000));
  });
});
