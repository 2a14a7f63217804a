// compact.ts field by field: every field each comparison reads is changed
// alone and must be noticed, every shape EntryCompactor builds must hold
// exactly the fields it was given (no extra keys holding undefined), and the
// TCP intern key must tell apart infos that differ in one field and refuse
// values it cannot hold. The scenarios (merging, the caches) are in
// cache.test.ts and internal-cache.test.ts.
import { describe, expect, it } from 'vitest';
import {
  carriesNothingNew,
  EntryCompactor,
  liveSynproxy,
  recordCarriesNothingNew,
  refreshTimeout,
  sameIgnoringTimeout,
} from '../../src/cache/compact.js';
import { AF_INET, IPPROTO } from '../../src/kernel/constants.js';
import {
  F_TIMEOUT,
  REC_WORDS,
  type RecordExtras,
  recordBuf,
  W_FLAGS,
  W_TIMEOUT,
  writeEntryRecord,
} from '../../src/kernel/ct-record.js';
import type { ConntrackEntry, ProtoInfo, TcpInfo, Tuple } from '../../src/kernel/entry.js';

const ORIG: Tuple = { src: '10.2.0.1', dst: '192.0.2.9', proto: IPPROTO.TCP, sport: 40000, dport: 443 };
const REPLY: Tuple = { src: '192.0.2.9', dst: '10.2.0.1', proto: IPPROTO.TCP, sport: 443, dport: 40000 };

/** An entry with every field compaction keeps, already in compact form. */
function full(over: Partial<ConntrackEntry> = {}): ConntrackEntry {
  return {
    family: AF_INET,
    orig: ORIG,
    reply: REPLY,
    status: 0xe,
    timeout: 300,
    mark: 1,
    protoinfo: {
      tcp: { state: 3, wscaleOrig: 7, wscaleReply: 8, flagsOrig: { flags: 1, mask: 2 }, flagsReply: { flags: 3, mask: 4 } },
    },
    zone: 2,
    master: { src: '10.2.0.9', dst: '192.0.2.9', proto: IPPROTO.TCP, sport: 5000, dport: 21 },
    labels: Buffer.alloc(16, 1),
    labelsMask: Buffer.alloc(16, 0xff),
    seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
    seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
    helper: 'ftp',
    secmark: 4,
    secctx: 'ctx',
    synproxy: { isn: 1, its: 2, tsoff: 3 },
    ...over,
  };
}

/** A tuple carrying every field, so that each can be changed alone. */
const ODD: Tuple = { src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2, icmpType: 3, icmpCode: 4, icmpId: 5, zone: 6 };
const TUPLE_CHANGES: [string, Partial<Tuple>][] = [
  ['src', { src: 'x' }],
  ['dst', { dst: 'x' }],
  ['proto', { proto: 17 }],
  ['sport', { sport: 9 }],
  ['dport', { dport: 9 }],
  ['icmpType', { icmpType: 9 }],
  ['icmpCode', { icmpCode: 9 }],
  ['icmpId', { icmpId: 9 }],
  ['zone', { zone: 9 }],
];

const TCP: TcpInfo = { state: 3, wscaleOrig: 7, wscaleReply: 8, flagsOrig: { flags: 1, mask: 2 }, flagsReply: { flags: 3, mask: 4 } };
const PROTOINFO_CHANGES: [string, ProtoInfo, ProtoInfo][] = [
  ['tcp state', { tcp: TCP }, { tcp: { ...TCP, state: 4 } }],
  ['tcp wscaleOrig', { tcp: TCP }, { tcp: { ...TCP, wscaleOrig: 6 } }],
  ['tcp wscaleReply', { tcp: TCP }, { tcp: { ...TCP, wscaleReply: 6 } }],
  ['tcp flagsOrig.flags', { tcp: TCP }, { tcp: { ...TCP, flagsOrig: { flags: 9, mask: 2 } } }],
  ['tcp flagsOrig.mask', { tcp: TCP }, { tcp: { ...TCP, flagsOrig: { flags: 1, mask: 9 } } }],
  ['tcp flagsReply.flags', { tcp: TCP }, { tcp: { ...TCP, flagsReply: { flags: 9, mask: 4 } } }],
  ['tcp flagsReply.mask', { tcp: TCP }, { tcp: { ...TCP, flagsReply: { flags: 3, mask: 9 } } }],
  ['tcp flagsOrig gone', { tcp: TCP }, { tcp: { ...TCP, flagsOrig: undefined } }],
  ['tcp flagsReply added', { tcp: { ...TCP, flagsReply: undefined } }, { tcp: TCP }],
  ['tcp gone, sctp instead', { tcp: TCP }, { sctp: { state: 3 } }],
  ['sctp state', { sctp: { state: 1, vtagOrig: 2, vtagReply: 3 } }, { sctp: { state: 9, vtagOrig: 2, vtagReply: 3 } }],
  ['sctp vtagOrig', { sctp: { state: 1, vtagOrig: 2, vtagReply: 3 } }, { sctp: { state: 1, vtagOrig: 9, vtagReply: 3 } }],
  ['sctp vtagReply', { sctp: { state: 1, vtagOrig: 2, vtagReply: 3 } }, { sctp: { state: 1, vtagOrig: 2, vtagReply: 9 } }],
  ['sctp added', { dccp: { state: 1 } }, { dccp: { state: 1 }, sctp: { state: 1 } }],
  ['sctp gone', { dccp: { state: 1 }, sctp: { state: 1 } }, { dccp: { state: 1 } }],
  ['dccp state', { dccp: { state: 1, role: 2, handshakeSeq: 3n } }, { dccp: { state: 9, role: 2, handshakeSeq: 3n } }],
  ['dccp role', { dccp: { state: 1, role: 2, handshakeSeq: 3n } }, { dccp: { state: 1, role: 9, handshakeSeq: 3n } }],
  ['dccp handshakeSeq', { dccp: { state: 1, role: 2, handshakeSeq: 3n } }, { dccp: { state: 1, role: 2, handshakeSeq: 9n } }],
  ['dccp added', { sctp: { state: 1 } }, { sctp: { state: 1 }, dccp: { state: 1 } }],
  ['dccp gone', { sctp: { state: 1 }, dccp: { state: 1 } }, { sctp: { state: 1 } }],
];

/** Every other field compaction keeps and the comparisons read, changed alone. */
const FIELD_CHANGES: [string, Partial<ConntrackEntry>][] = [
  ['seqAdjOrig.correctionPos', { seqAdjOrig: { correctionPos: 9, offsetBefore: 2, offsetAfter: 3 } }],
  ['seqAdjOrig.offsetBefore', { seqAdjOrig: { correctionPos: 1, offsetBefore: 9, offsetAfter: 3 } }],
  ['seqAdjOrig.offsetAfter', { seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 9 } }],
  ['seqAdjReply.correctionPos', { seqAdjReply: { correctionPos: 9, offsetBefore: 5, offsetAfter: 6 } }],
  ['synproxy.isn', { synproxy: { isn: 9, its: 2, tsoff: 3 } }],
  ['synproxy.its', { synproxy: { isn: 1, its: 9, tsoff: 3 } }],
  ['synproxy.tsoff', { synproxy: { isn: 1, its: 2, tsoff: 9 } }],
  ['labels', { labels: Buffer.alloc(16, 2) }],
  ['labelsMask', { labelsMask: Buffer.alloc(16, 1) }],
  ['helper', { helper: 'sip' }],
  ['secctx', { secctx: 'other' }],
  ['master', { master: { ...full().master!, sport: 5001 } }],
];

describe('carriesNothingNew: each field the comparisons read', () => {
  it.each(TUPLE_CHANGES)('a tuple field: %s, in orig, reply and master', (_f, change) => {
    const stored = full({ orig: ODD, reply: ODD, master: ODD });
    expect(carriesNothingNew(stored, full({ orig: { ...ODD }, reply: { ...ODD }, master: { ...ODD } }), false)).toBe(true);
    for (const at of ['orig', 'reply', 'master'] as const) {
      expect(carriesNothingNew(stored, { ...stored, [at]: { ...ODD, ...change } }, false), at).toBe(false);
      expect(carriesNothingNew(stored, { ...stored, [at]: { ...ODD, ...change } }, true), at).toBe(false);
    }
  });

  it.each(PROTOINFO_CHANGES)('a protoinfo field: %s', (_f, a, b) => {
    expect(carriesNothingNew(full({ protoinfo: a }), full({ protoinfo: structuredClone(a) }), false)).toBe(true);
    expect(carriesNothingNew(full({ protoinfo: a }), full({ protoinfo: b }), false)).toBe(false);
    expect(carriesNothingNew(full({ protoinfo: b }), full({ protoinfo: a }), false)).toBe(false);
  });

  it.each(FIELD_CHANGES)('%s', (_f, change) => {
    expect(carriesNothingNew(full(), full(change), false)).toBe(false);
    expect(carriesNothingNew(full(), full(change), true)).toBe(false);
  });

  it('an absent field: no news in a partial event, news in a full one, news when only the event has it', () => {
    const { helper: _h, ...noHelper } = full();
    expect(carriesNothingNew(full(), noHelper, true)).toBe(true);
    expect(carriesNothingNew(full(), noHelper, false)).toBe(false);
    expect(carriesNothingNew(noHelper, full(), true)).toBe(false);
    expect(carriesNothingNew(noHelper, full(), false)).toBe(false);
  });

  it('the same labels in another Buffer are no news', () => {
    expect(carriesNothingNew(full(), full({ labels: Buffer.alloc(16, 1), labelsMask: Buffer.alloc(16, 0xff) }), false)).toBe(true);
  });
});

describe('liveSynproxy', () => {
  it.each([
    [{ isn: 0, its: 0, tsoff: 0 }, false],
    [{ isn: 1, its: 0, tsoff: 0 }, true],
    [{ isn: 0, its: 1, tsoff: 0 }, true],
    [{ isn: 0, its: 0, tsoff: 1 }, true],
    [{ isn: 0x8000_0000, its: 0, tsoff: 0 }, true],
  ])('%o says something: %s', (s, live) => {
    expect(liveSynproxy(s)).toBe(live ? s : undefined);
  });

  it('undefined stays undefined', () => {
    expect(liveSynproxy(undefined)).toBeUndefined();
  });
});

/** The record and extras of `e`, as the caches write them. */
function recordOf(e: ConntrackEntry): { w: Int32Array; x: RecordExtras | undefined } {
  const c = new EntryCompactor();
  const r = recordBuf(1);
  const x = writeEntryRecord(e, r, 0, (v) => c.entry(v));
  if (x === false) throw new Error('not representable');
  return { w: r.w, x };
}

describe('recordCarriesNothingNew: each word and extra', () => {
  const same = (a: ConntrackEntry, b: ConntrackEntry): boolean => {
    const s = recordOf(a);
    const n = recordOf(b);
    return recordCarriesNothingNew(s.w, 0, s.x, n.w, 0, n.x);
  };

  it('ignores the timeout word and the presence bit of the timeout only', () => {
    const s = recordOf(full());
    const n = recordOf(full({ timeout: 1 }));
    expect(recordCarriesNothingNew(s.w, 0, s.x, n.w, 0, n.x)).toBe(true);
    const { timeout: _t, ...noTimeout } = full();
    expect(same(full(), noTimeout)).toBe(true);
    expect(same(noTimeout, full())).toBe(true);
    // Any other word, flags included, is news.
    for (let i = 0; i < REC_WORDS; i++) {
      if (i === W_TIMEOUT) continue;
      const m = new Int32Array(s.w);
      m[i] = i === W_FLAGS ? m[i]! ^ (F_TIMEOUT << 1) : m[i]! + 1;
      expect(recordCarriesNothingNew(s.w, 0, s.x, m, 0, s.x), `word ${i}`).toBe(false);
    }
  });

  it('reads records at their offsets', () => {
    const s = recordOf(full());
    const n = recordOf(full({ mark: 9 }));
    const both = new Int32Array(REC_WORDS * 3);
    both.set(s.w, REC_WORDS);
    both.set(n.w, 2 * REC_WORDS);
    expect(recordCarriesNothingNew(both, REC_WORDS, s.x, s.w, 0, s.x)).toBe(true);
    expect(recordCarriesNothingNew(both, REC_WORDS, s.x, both, 2 * REC_WORDS, n.x)).toBe(false);
    expect(recordCarriesNothingNew(s.w, 0, s.x, both, REC_WORDS, s.x)).toBe(true);
  });

  it.each(FIELD_CHANGES)('an extra: %s', (_f, change) => {
    expect(same(full(), full())).toBe(true);
    expect(same(full(), full(change))).toBe(false);
    expect(same(full(change), full())).toBe(false);
  });

  it.each(PROTOINFO_CHANGES.filter(([name]) => !name.startsWith('tcp ')))('a protoinfo beside the words: %s', (_f, a, b) => {
    expect(same(full({ protoinfo: a }), full({ protoinfo: structuredClone(a) }))).toBe(true);
    expect(same(full({ protoinfo: a }), full({ protoinfo: b }))).toBe(false);
  });

  it('an extra on one side only is news, either way', () => {
    const { helper: _h, master: _m, ...plain } = full();
    for (const extra of [{ helper: 'ftp' }, { master: full().master! }, { secctx: 'x' }]) {
      expect(same(plain, { ...plain, ...extra })).toBe(false);
      expect(same({ ...plain, ...extra }, plain)).toBe(false);
    }
    const bare = { family: AF_INET, orig: ORIG, reply: REPLY } as ConntrackEntry;
    expect(same(bare, bare)).toBe(true);
    expect(same(bare, { ...bare, helper: 'ftp' })).toBe(false);
    expect(same({ ...bare, helper: 'ftp' }, bare)).toBe(false);
  });

  it('entries kept whole are compared as entries, and never equal one in the words', () => {
    const whole = full({ orig: { ...ORIG, zone: 3 } });
    expect(recordOf(whole).x?.whole).toBeDefined();
    expect(same(whole, full({ orig: { ...ORIG, zone: 3 }, timeout: 1 }))).toBe(true);
    expect(same(whole, full({ orig: { ...ORIG, zone: 3 }, mark: 9 }))).toBe(false);
    expect(same(whole, full({ orig: { ...ORIG, zone: 3 }, helper: 'sip' }))).toBe(false);
    // Compared whole: a field one lacks is a difference, not a partial event's silence.
    const { helper: _h, ...noHelper } = whole;
    expect(same(whole, noHelper)).toBe(false);
    expect(same(noHelper, whole)).toBe(false);
    // One kept whole, the other not: same key words, different shapes.
    const a = recordOf(whole);
    const b = recordOf(full());
    expect(recordCarriesNothingNew(a.w, 0, a.x, a.w, 0, b.x)).toBe(false);
    expect(recordCarriesNothingNew(a.w, 0, b.x, a.w, 0, a.x)).toBe(false);
  });
});

describe('EntryCompactor: shapes', () => {
  // Each row is already compact: the output must hold exactly its fields.
  const tuples: [string, Tuple][] = [
    ['ports', { src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2 }],
    ['ICMP', { src: 'a', dst: 'b', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 3 }],
    ['sport only', { src: 'a', dst: 'b', proto: 6, sport: 1 }],
    ['dport only', { src: 'a', dst: 'b', proto: 6, dport: 2 }],
    ['ports and an ICMP type', { src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2, icmpType: 3 }],
    ['ports and an ICMP id', { src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2, icmpId: 3 }],
    ['ICMP without a code', { src: 'a', dst: 'b', proto: 1, icmpType: 8, icmpId: 3 }],
    ['ICMP without a type', { src: 'a', dst: 'b', proto: 1, icmpCode: 0, icmpId: 3 }],
    ['ICMP without an id', { src: 'a', dst: 'b', proto: 1, icmpType: 8, icmpCode: 0 }],
    ['ICMP and a port', { src: 'a', dst: 'b', proto: 1, sport: 1, icmpType: 8, icmpCode: 0, icmpId: 3 }],
    ['no protocol fields', { src: 'a', dst: 'b', proto: 47 }],
    ['ports and a zone', { src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2, zone: 0 }],
    ['ICMP and a zone', { src: 'a', dst: 'b', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 3, zone: 5 }],
  ];

  it.each(tuples)('a tuple with %s', (_name, t) => {
    const c = new EntryCompactor();
    const e: ConntrackEntry = { family: AF_INET, orig: t, reply: { ...t, src: 'b', dst: 'a' }, master: t };
    const out = c.entry(e);
    expect(out).toStrictEqual(e);
  });

  const entries: [string, ConntrackEntry][] = [
    ['status, timeout, mark', { family: AF_INET, orig: ORIG, reply: REPLY, status: 1, timeout: 2, mark: 0 }],
    ['and protoinfo', { family: AF_INET, orig: ORIG, reply: REPLY, status: 1, timeout: 2, mark: 0, protoinfo: { tcp: { state: 3 } } }],
    ['no status', { family: AF_INET, orig: ORIG, reply: REPLY, timeout: 2, mark: 0 }],
    ['no timeout', { family: AF_INET, orig: ORIG, reply: REPLY, status: 1, mark: 0, protoinfo: { tcp: { state: 3 } } }],
    ['no mark', { family: AF_INET, orig: ORIG, reply: REPLY, status: 1, timeout: 2 }],
    ['protoinfo alone', { family: AF_INET, orig: ORIG, reply: REPLY, protoinfo: { tcp: { state: 3 } } }],
    ['the tuples alone', { family: AF_INET, orig: ORIG, reply: REPLY }],
    ['every field', full()],
    ['secmark 0 and an empty helper', { family: AF_INET, orig: ORIG, reply: REPLY, secmark: 0, helper: '', secctx: '' }],
  ];

  it.each(entries)('an entry with %s', (_name, e) => {
    expect(new EntryCompactor().entry(e)).toStrictEqual(e);
  });

  it('an update over a base: what the update lacks comes from the base, field by field', () => {
    const c = new EntryCompactor();
    const base = c.entry(full());
    const bare: ConntrackEntry = { family: AF_INET, orig: { ...ORIG }, reply: { ...REPLY } };
    const merged = c.entry(bare, base);
    expect(merged).toStrictEqual(base);
    expect(merged.orig).toBe(base.orig);
    expect(merged.reply).toBe(base.reply);
    expect(merged.master).toBe(base.master);
    // Each present field wins over the base's.
    for (const [name, change] of FIELD_CHANGES) expect([name, c.entry({ ...bare, ...change }, base)]).toEqual([name, { ...base, ...change }]);
    // A different tuple is taken, not the base's.
    const moved = c.entry({ ...bare, orig: { ...ORIG, sport: 1 } }, base);
    expect(moved.orig).toStrictEqual({ ...ORIG, sport: 1 });
    expect(moved.reply).toBe(base.reply);
    // A base without a field and an update without it: still absent.
    const { helper: _h, ...noHelper } = base;
    expect(c.entry(bare, noHelper)).toStrictEqual(noHelper);
  });

  it('an expectation without an id is returned as it is', () => {
    const x = { family: AF_INET, master: ORIG, tuple: REPLY, mask: REPLY, timeout: 3 } as const;
    const c = new EntryCompactor();
    expect(c.expect(x)).toBe(x);
    expect(c.expect({ ...x, id: 5 })).toStrictEqual(x);
  });
});

describe('EntryCompactor: the TCP intern key', () => {
  const infos: [string, TcpInfo][] = [
    ['state only', { state: 3 }],
    ['state 15', { state: 15 }],
    ['wscaleOrig 0', { state: 3, wscaleOrig: 0 }],
    ['wscaleOrig 15', { state: 3, wscaleOrig: 15 }],
    ['wscaleReply 0', { state: 3, wscaleReply: 0 }],
    ['wscaleReply 15', { state: 3, wscaleReply: 15 }],
    ['both scales', { state: 3, wscaleOrig: 1, wscaleReply: 2 }],
    ['scales swapped', { state: 3, wscaleOrig: 2, wscaleReply: 1 }],
    ['flagsOrig 0/0', { state: 3, flagsOrig: { flags: 0, mask: 0 } }],
    ['flagsOrig 255/255', { state: 3, flagsOrig: { flags: 255, mask: 255 } }],
    ['flagsOrig 1/0', { state: 3, flagsOrig: { flags: 1, mask: 0 } }],
    ['flagsOrig 0/1', { state: 3, flagsOrig: { flags: 0, mask: 1 } }],
    ['flagsReply 1/0', { state: 3, flagsReply: { flags: 1, mask: 0 } }],
    ['flagsReply 0/1', { state: 3, flagsReply: { flags: 0, mask: 1 } }],
    ['every field', TCP],
    ['every field, state 4', { ...TCP, state: 4 }],
    ['flagsReply 0/0', { state: 3, flagsReply: { flags: 0, mask: 0 } }],
    // The least key, 0, and infos whose key parts are all 0 but one.
    ['all zeros', { state: 0, wscaleOrig: 0, wscaleReply: 0, flagsOrig: { flags: 0, mask: 0 }, flagsReply: { flags: 0, mask: 0 } }],
    ['zeros, flagsReply 0/1', { state: 0, wscaleOrig: 0, wscaleReply: 0, flagsOrig: { flags: 0, mask: 0 }, flagsReply: { flags: 0, mask: 1 } }],
    ['zeros, flagsOrig 0/1', { state: 0, wscaleOrig: 0, wscaleReply: 0, flagsOrig: { flags: 0, mask: 1 } }],
    ['zeros, wscaleReply 1', { state: 0, wscaleOrig: 0, wscaleReply: 1 }],
    ['state 0, wscaleOrig 1', { state: 0, wscaleOrig: 1 }],
    // Pairs whose parts trade one unit between neighbouring fields.
    ['wscaleReply 1, flagsReply 0/0', { state: 3, wscaleReply: 1, flagsReply: { flags: 0, mask: 0 } }],
    ['wscaleReply 0, flagsReply 0/1', { state: 3, wscaleReply: 0, flagsReply: { flags: 0, mask: 1 } }],
    ['state 3, wscaleReply 1', { state: 3, wscaleReply: 1 }],
    ['state 4, wscaleReply 0', { state: 4, wscaleReply: 0 }],
    // The largest keys, one reply flag apart.
    ['largest, flagsReply 1/4', { state: 15, wscaleOrig: 15, wscaleReply: 15, flagsOrig: { flags: 255, mask: 255 }, flagsReply: { flags: 1, mask: 4 } }],
    ['largest, flagsReply 2/4', { state: 15, wscaleOrig: 15, wscaleReply: 15, flagsOrig: { flags: 255, mask: 255 }, flagsReply: { flags: 2, mask: 4 } }],
  ];

  it('interns each distinct info once, frozen, and never mixes two of them up', () => {
    const c = new EntryCompactor();
    const first = infos.map(([, t]) => c.entry(full({ protoinfo: { tcp: structuredClone(t) } })).protoinfo);
    infos.forEach(([name, t], i) => expect([name, first[i]]).toEqual([name, { tcp: t }]));
    expect(c.internedCount).toBe(infos.length);
    const again = infos.map(([, t]) => c.entry(full({ protoinfo: { tcp: structuredClone(t) } })).protoinfo);
    infos.forEach(([name], i) => expect([name, again[i] === first[i]]).toEqual([name, true]));
    expect(new Set(first).size).toBe(infos.length);
    for (const p of first) {
      expect(Object.isFrozen(p)).toBe(true);
      expect(Object.isFrozen(p?.tcp)).toBe(true);
      if (p?.tcp?.flagsOrig) expect(Object.isFrozen(p.tcp.flagsOrig)).toBe(true);
      if (p?.tcp?.flagsReply) expect(Object.isFrozen(p.tcp.flagsReply)).toBe(true);
    }
  });

  const unholdable: [string, TcpInfo][] = [
    ['state 16', { state: 16 }],
    ['state -1', { state: -1 }],
    ['state 1.5', { state: 1.5 }],
    ['wscaleOrig 16', { state: 3, wscaleOrig: 16 }],
    ['wscaleOrig -1', { state: 3, wscaleOrig: -1 }],
    ['wscaleReply 16', { state: 3, wscaleReply: 16 }],
    ['wscaleReply 0.5', { state: 3, wscaleReply: 0.5 }],
    ['flagsOrig 256', { state: 3, flagsOrig: { flags: 256, mask: 0 } }],
    ['flagsOrig mask 256', { state: 3, flagsOrig: { flags: 0, mask: 256 } }],
    ['flagsReply 256', { state: 3, flagsReply: { flags: 256, mask: 0 } }],
    ['flagsReply mask -1', { state: 3, flagsReply: { flags: 0, mask: -1 } }],
  ];

  it.each(unholdable)('copies, without interning, an info the key cannot hold: %s', (_name, t) => {
    const c = new EntryCompactor();
    const a = c.entry(full({ protoinfo: { tcp: t } })).protoinfo;
    const b = c.entry(full({ protoinfo: { tcp: t } })).protoinfo;
    expect(a).toStrictEqual({ tcp: t });
    expect(a).not.toBe(b);
    expect(a?.tcp).not.toBe(t);
    expect(Object.isFrozen(a)).toBe(false);
    expect(c.internedCount).toBe(0);
  });

  it('copies TCP beside SCTP or DCCP, and does not intern it', () => {
    const c = new EntryCompactor();
    const p: ProtoInfo = { tcp: { state: 3, flagsOrig: { flags: 1, mask: 1 } }, dccp: { state: 2 } };
    const out = c.entry(full({ protoinfo: p })).protoinfo;
    expect(out).toStrictEqual(p);
    expect(out?.tcp).not.toBe(p.tcp);
    expect(out?.tcp?.flagsOrig).not.toBe(p.tcp?.flagsOrig);
    expect(out?.dccp).not.toBe(p.dccp);
    expect(c.internedCount).toBe(0);
    expect(c.entry(full({ protoinfo: { dccp: { state: 2 } } })).protoinfo).toStrictEqual({ dccp: { state: 2 } });
    const withSctp: ProtoInfo = { tcp: { state: 3 }, sctp: { state: 1, vtagOrig: 2 } };
    expect(c.entry(full({ protoinfo: withSctp })).protoinfo).toStrictEqual(withSctp);
    expect(c.entry(full({ protoinfo: {} })).protoinfo).toStrictEqual({});
    expect(c.internedCount).toBe(0);
  });
});

describe('sameIgnoringTimeout', () => {
  const rows: [string, object, object, boolean][] = [
    ['the same object', full(), full(), true],
    ['a timeout apart', { a: 1, timeout: 1 }, { a: 1, timeout: 2 }, true],
    ['a nested timeout is a field like any other', { a: { timeout: 1 } }, { a: { timeout: 2 } }, false],
    ['a field only the second has', { a: 1 }, { a: 1, b: 2 }, false],
    ['a field only the first has', { a: 1, b: 2 }, { a: 1 }, false],
    ['a field holding undefined equals an absent one', { a: 1, b: undefined }, { a: 1 }, true],
    ['and the other way round', { a: 1 }, { a: 1, b: undefined }, true],
    ['nested, equal', { a: { b: { c: 1 } } }, { a: { b: { c: 1 } } }, true],
    ['nested, a field only the second has', { a: { b: 1 } }, { a: { b: 1, c: 1 } }, false],
    ['nested, a field only the first has', { a: { b: 1, c: 1 } }, { a: { b: 1 } }, false],
    ['null and an object', { a: null }, { a: {} }, false],
    ['an object and null', { a: {} }, { a: null }, false],
    ['a number and a string', { a: 1 }, { a: '1' }, false],
    ['equal Buffers', { a: Buffer.from([1, 2]) }, { a: Buffer.from([1, 2]) }, true],
    ['different Buffers', { a: Buffer.from([1, 2]) }, { a: Buffer.from([1, 3]) }, false],
    ['a Buffer and an object with its bytes', { a: Buffer.from([1]) }, { a: { 0: 1 } }, false],
    ['an object with its bytes and a Buffer', { a: { 0: 1 } }, { a: Buffer.from([1]) }, false],
    ['a timeout only the second has', { a: 1 }, { a: 1, timeout: 5 }, true],
    ['a timeout only the first has', { a: 1, timeout: 5 }, { a: 1 }, true],
    ['nested, a field holding undefined only in the second', { a: { b: 1 } }, { a: { b: 1, c: undefined } }, true],
    ['an object and a number', { a: {} }, { a: 1 }, false],
    ['a number and an object', { a: 1 }, { a: {} }, false],
  ];

  it.each(rows)('%s', (_name, a, b, want) => {
    expect(sameIgnoringTimeout(a, b)).toBe(want);
  });

  it('the very same object', () => {
    const o = { a: { b: 1 } };
    expect(sameIgnoringTimeout(o, o)).toBe(true);
  });
});

describe('refreshTimeout', () => {
  it.each([
    ['a new timeout', 300, 42, 42, true],
    ['the same timeout', 300, 300, 300, true],
    ['no timeout given', 300, undefined, 300, true],
    ['0', 300, 0, 0, true],
  ])('%s: written in place', (_name, had, given, want, inPlace) => {
    const stored = full({ timeout: had });
    const out = refreshTimeout(stored, given);
    expect(out === stored).toBe(inPlace);
    expect(out.timeout).toBe(want);
    expect(stored.timeout).toBe(want);
  });

  it('a stored entry without a timeout gets a copy with one, and stays as it was', () => {
    const { timeout: _t, ...rest } = full();
    const bare: ConntrackEntry = rest;
    const out = refreshTimeout(bare, 9);
    expect(out).not.toBe(bare);
    expect(out).toStrictEqual({ ...bare, timeout: 9 });
    expect(bare.timeout).toBeUndefined();
    expect(refreshTimeout(bare, undefined)).toBe(bare);
  });
});
