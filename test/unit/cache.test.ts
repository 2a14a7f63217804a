import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ACCEPT_ALL,
  carriesNothingNew,
  compileFilter,
  ENTRY_FIELDS,
  EntryCompactor,
  ExternalCache,
  KERNEL_CURRENT,
  KERNEL_STALE,
  type FilterRules,
  InternalCache,
  refreshTimeout,
  sameIgnoringTimeout,
  TCP_FIELDS,
  TUPLE_FIELDS,
} from '../../src/cache/index.js';
import {
  AF_INET,
  AF_INET6,
  IPCTNL_MSG_CT_NEW,
  IPPROTO,
  IPS,
  NFNL_SUBSYS_CTNETLINK,
  NLM_F_MULTI,
  TCP_STATES,
} from '../../src/kernel/constants.js';
import { decodeConntrack, encodeConntrack } from '../../src/kernel/ct-codec.js';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey } from '../../src/kernel/entry.js';
import { NlWriter, parseNetlink } from '../../src/kernel/netlink-codec.js';
import { runs } from './fc-runs.js';
import { ftpExpectation } from './expectations.js';

const ESTABLISHED = TCP_STATES.indexOf('ESTABLISHED');
const SYN_SENT = TCP_STATES.indexOf('SYN_SENT');
const FIN_WAIT = TCP_STATES.indexOf('FIN_WAIT');
const TIME_WAIT = TCP_STATES.indexOf('TIME_WAIT');
const U32_MAX = 0xffff_ffff;

/** An IPv4 TCP flow 10.0.<n>:<port> -> 192.0.2.1:443, as a kernel dump would describe it. */
function tcp(n: number, over: Partial<ConntrackEntry> = {}, state = ESTABLISHED): ConntrackEntry {
  const src = `10.0.${(n >> 8) & 255}.${n & 255}`;
  const sport = 10000 + (n % 50000);
  return {
    family: AF_INET,
    orig: { src, dst: '192.0.2.1', proto: IPPROTO.TCP, sport, dport: 443 },
    reply: { src: '192.0.2.1', dst: src, proto: IPPROTO.TCP, sport: 443, dport: sport },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED,
    timeout: 432000,
    mark: 0,
    protoinfo: { tcp: { state, wscaleOrig: 7, wscaleReply: 7, flagsOrig: { flags: 0x23, mask: 0x23 } } },
    id: 1000 + n,
    use: 1,
    countersOrig: { packets: 5n, bytes: 500n },
    countersReply: { packets: 4n, bytes: 400n },
    timestamp: { start: 123n },
    ...over,
  };
}

function expectation(master: ConntrackEntry, port: number, over: Partial<ExpectEntry> = {}): ExpectEntry {
  return ftpExpectation(master, port, { id: 77, zone: master.zone, ...over });
}

const NO_RULES: FilterRules = { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } };
const STATE_ACCEPT: FilterRules = {
  ...NO_RULES,
  tcpStates: { accept: ['ESTABLISHED', 'TIME_WAIT', 'CLOSE_WAIT', 'CLOSE'] },
};

function internal(limit = 100, rules: FilterRules = NO_RULES): InternalCache {
  return new InternalCache({ limit, filter: compileFilter(rules, ['198.51.100.1']) });
}

/** A clock the test moves by hand. */
function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

describe('EntryCompactor', () => {
  it('drops id, use, counters and timestamp and keeps everything else', () => {
    const c = new EntryCompactor();
    const e = tcp(1, {
      zone: 3,
      labels: Buffer.alloc(16, 2),
      labelsMask: Buffer.alloc(16, 0xff),
      helper: 'ftp',
      secmark: 9,
      secctx: 'ctx',
      seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
      seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
      synproxy: { isn: 1, its: 2, tsoff: 3 },
      master: { src: '10.9.9.9', dst: '192.0.2.1', proto: IPPROTO.TCP, sport: 5000, dport: 21 },
    });
    const out = c.entry(e);
    const expected: Record<string, unknown> = { ...e };
    for (const [k, fate] of Object.entries(ENTRY_FIELDS)) if (fate === 'drop') delete expected[k];
    expect(out).toStrictEqual(expected);
    expect(Object.keys(out)).not.toContain('id');
    // Every field ENTRY_FIELDS keeps was populated above, so none was lost on the way.
    for (const [k, fate] of Object.entries(ENTRY_FIELDS)) if (fate === 'keep') expect(Object.hasOwn(out, k)).toBe(true);
  });

  it('copies every tuple and TCP field it knows about', () => {
    const c = new EntryCompactor();
    const icmp: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: IPPROTO.ICMP, icmpType: 8, icmpCode: 0, icmpId: 99, zone: 4 },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: IPPROTO.ICMP, icmpType: 0, icmpCode: 0, icmpId: 99 },
    };
    expect(c.entry(icmp)).toStrictEqual(icmp);
    const tuple = { src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2, icmpType: 3, icmpCode: 4, icmpId: 5, zone: 6 };
    expect(Object.keys(tuple).sort()).toEqual(Object.keys(TUPLE_FIELDS).sort());
    const odd: ConntrackEntry = { family: AF_INET, orig: tuple, reply: { ...tuple } };
    expect(c.entry(odd)).toStrictEqual(odd);
    const tcpInfo = {
      state: 3,
      wscaleOrig: 1,
      wscaleReply: 2,
      flagsOrig: { flags: 1, mask: 1 },
      flagsReply: { flags: 2, mask: 2 },
    };
    expect(Object.keys(tcpInfo).sort()).toEqual(Object.keys(TCP_FIELDS).sort());
    expect(c.entry(tcp(1, { protoinfo: { tcp: tcpInfo } })).protoinfo).toStrictEqual({ tcp: tcpInfo });
  });

  it('does not mutate its input', () => {
    const e = tcp(2);
    const snapshot = JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    new EntryCompactor().entry(e);
    expect(JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).toBe(snapshot);
    expect(e.id).toBe(1002);
  });

  it('interns TCP protoinfo: equal infos share one frozen object, different ones do not', () => {
    const c = new EntryCompactor();
    const a = c.entry(tcp(1));
    const b = c.entry(tcp(2));
    const d = c.entry(tcp(3, {}, TIME_WAIT));
    expect(a.protoinfo).toBe(b.protoinfo);
    expect(a.protoinfo).not.toBe(d.protoinfo);
    expect(d.protoinfo?.tcp?.state).toBe(TIME_WAIT);
    expect(Object.isFrozen(a.protoinfo)).toBe(true);
    expect(Object.isFrozen(a.protoinfo?.tcp)).toBe(true);
    expect(Object.isFrozen(a.protoinfo?.tcp?.flagsOrig)).toBe(true);
    expect(c.internedCount).toBe(2);
    // An absent field and one set to a value are different infos.
    const noScale = c.entry(tcp(4, { protoinfo: { tcp: { state: ESTABLISHED } } }));
    expect(noScale.protoinfo).toStrictEqual({ tcp: { state: ESTABLISHED } });
    expect(noScale.protoinfo).not.toBe(a.protoinfo);
  });

  it('stops interning at its bound but still copies correctly', () => {
    const c = new EntryCompactor(2);
    const outs = [0, 1, 2, 3, 4].map((s) => c.entry(tcp(s, {}, s)));
    expect(c.internedCount).toBe(2);
    expect(outs.map((o) => o.protoinfo?.tcp?.state)).toEqual([0, 1, 2, 3, 4]);
    // Values the intern key cannot hold are copied, not interned.
    const big = c.entry(tcp(9, { protoinfo: { tcp: { state: 300, wscaleOrig: 99 } } }));
    expect(big.protoinfo).toStrictEqual({ tcp: { state: 300, wscaleOrig: 99 } });
  });

  it('leaves SCTP and DCCP protoinfo as private copies', () => {
    const c = new EntryCompactor();
    const e: ConntrackEntry = {
      ...tcp(1),
      protoinfo: { sctp: { state: 3, vtagOrig: 1, vtagReply: 2 } },
    };
    const out = c.entry(e);
    expect(out.protoinfo).toStrictEqual(e.protoinfo);
    expect(out.protoinfo).not.toBe(e.protoinfo);
    expect(c.internedCount).toBe(0);
  });

  it('drops an all-zero synproxy state (what ctnetlink gives every entry it creates), keeps a real one', () => {
    const c = new EntryCompactor();
    expect(c.entry(tcp(1, { synproxy: { isn: 0, its: 0, tsoff: 0 } })).synproxy).toBeUndefined();
    expect(c.entry(tcp(1, { synproxy: { isn: 0, its: 0, tsoff: 7 } })).synproxy).toEqual({ isn: 0, its: 0, tsoff: 7 });
    expect(c.entry(tcp(1, { synproxy: { isn: 0x8000_0000, its: 0, tsoff: 0 } })).synproxy?.isn).toBe(0x8000_0000);
    // Zeros in an update do not wipe a real state stored before.
    const base = c.entry(tcp(1, { synproxy: { isn: 5, its: 6, tsoff: 7 } }));
    expect(c.entry(tcp(1, { synproxy: { isn: 0, its: 0, tsoff: 0 } }), base).synproxy).toEqual({ isn: 5, its: 6, tsoff: 7 });
    // A stored entry without synproxy equals an event carrying zeros: nothing to replicate.
    const stored = c.entry(tcp(2));
    expect(carriesNothingNew(stored, tcp(2, { synproxy: { isn: 0, its: 0, tsoff: 0 } }), false)).toBe(true);
    expect(carriesNothingNew(stored, tcp(2, { synproxy: { isn: 1, its: 0, tsoff: 0 } }), false)).toBe(false);
    const cache = new InternalCache({ limit: 10, filter: ACCEPT_ALL });
    expect(cache.apply('new', tcp(3, { synproxy: { isn: 0, its: 0, tsoff: 0 } }))).toBe('created');
    expect(cache.apply('update', tcp(3, { synproxy: { isn: 0, its: 0, tsoff: 0 } }))).toBe('unchanged');
    expect(cache.get(tcp(3))?.synproxy).toBeUndefined();
  });

  it('drops only the id of an expectation', () => {
    const exp = expectation(tcp(1), 20000);
    const out = new EntryCompactor().expect(exp);
    const { id: _id, ...rest } = exp;
    expect(out).toStrictEqual(rest);
  });
});

describe('sameIgnoringTimeout / merging an UPDATE', () => {
  it('ignores the timeout only', () => {
    expect(sameIgnoringTimeout(tcp(1), tcp(1, { timeout: 5 }))).toBe(true);
    expect(sameIgnoringTimeout(tcp(1), tcp(1, { mark: 5 }))).toBe(false);
    expect(sameIgnoringTimeout(tcp(1), tcp(1, {}, FIN_WAIT))).toBe(false);
    expect(sameIgnoringTimeout(tcp(1, { labels: Buffer.alloc(16) }), tcp(1, { labels: Buffer.alloc(16) }))).toBe(true);
    expect(sameIgnoringTimeout(tcp(1, { labels: Buffer.alloc(16) }), tcp(1, { labels: Buffer.alloc(16, 1) }))).toBe(
      false,
    );
    expect(sameIgnoringTimeout(tcp(1), tcp(1, { helper: 'ftp' }))).toBe(false);
    expect(sameIgnoringTimeout(tcp(1, { helper: 'ftp' }), tcp(1))).toBe(false);
    expect(sameIgnoringTimeout(tcp(1, { helper: undefined }), tcp(1))).toBe(true);
    expect(sameIgnoringTimeout(tcp(1, { countersOrig: { packets: 1n, bytes: 1n } }), tcp(1))).toBe(false);
  });

  it('carriesNothingNew skips timeout and dropped fields; partial compares only present fields', () => {
    const c = new EntryCompactor();
    const stored = c.entry(tcp(1, { labels: Buffer.alloc(16, 1) }));
    expect(carriesNothingNew(stored, tcp(1, { labels: Buffer.alloc(16, 1), timeout: 3, id: 9 }), false)).toBe(true);
    // A full entry without labels means the labels are gone.
    expect(carriesNothingNew(stored, tcp(1), false)).toBe(false);
    // A partial one without labels just did not touch them.
    const e = tcp(1);
    const partial: ConntrackEntry = { family: e.family, orig: e.orig, reply: e.reply, status: e.status, timeout: 1 };
    expect(carriesNothingNew(stored, partial, true)).toBe(true);
    expect(carriesNothingNew(stored, { ...partial, status: 1 }, true)).toBe(false);
    expect(carriesNothingNew(stored, { ...partial, protoinfo: { tcp: { state: FIN_WAIT } } }, true)).toBe(false);
  });

  it('carriesNothingNew notices a change in every field compaction keeps', () => {
    const full = tcp(1, {
      zone: 3,
      master: { src: '10.9.9.9', dst: '192.0.2.1', proto: IPPROTO.TCP, sport: 5000, dport: 21 },
      labels: Buffer.alloc(16, 2),
      labelsMask: Buffer.alloc(16, 0xff),
      helper: 'ftp',
      secmark: 9,
      secctx: 'ctx',
      seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
      seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
      synproxy: { isn: 1, its: 2, tsoff: 3 },
      protoinfo: { tcp: { state: ESTABLISHED, wscaleOrig: 7, flagsOrig: { flags: 1, mask: 1 } } },
    });
    type Kept = {
      [K in keyof typeof ENTRY_FIELDS]: (typeof ENTRY_FIELDS)[K] extends 'keep' ? K : never;
    }[keyof typeof ENTRY_FIELDS];
    // Typed so that a field added to ENTRY_FIELDS as 'keep' must be listed here.
    const changes: Record<Exclude<Kept, 'timeout'>, Partial<ConntrackEntry>> = {
      family: { family: AF_INET6 },
      orig: { orig: { ...full.orig, sport: 1 } },
      reply: { reply: { ...full.reply, src: '192.0.2.2' } },
      master: { master: { ...full.orig, dport: 22 } },
      status: { status: 1 },
      mark: { mark: 1 },
      zone: { zone: 4 },
      labels: { labels: Buffer.alloc(16, 3) },
      labelsMask: { labelsMask: Buffer.alloc(16, 1) },
      protoinfo: { protoinfo: { tcp: { state: ESTABLISHED, wscaleOrig: 7, flagsOrig: { flags: 1, mask: 3 } } } },
      seqAdjOrig: { seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 4 } },
      seqAdjReply: { seqAdjReply: { correctionPos: 4, offsetBefore: 6, offsetAfter: 6 } },
      helper: { helper: 'sip' },
      secmark: { secmark: 10 },
      secctx: { secctx: 'other' },
      synproxy: { synproxy: { isn: 1, its: 3, tsoff: 3 } },
    };
    const stored = new EntryCompactor().entry(full);
    expect(carriesNothingNew(stored, full, false)).toBe(true);
    expect(carriesNothingNew(stored, { ...full, timeout: 1 }, true)).toBe(true);
    for (const [field, change] of Object.entries(changes)) {
      const changed = { ...full, ...change };
      expect([field, carriesNothingNew(stored, changed, false)]).toEqual([field, false]);
      expect([field, carriesNothingNew(stored, changed, true)]).toEqual([field, false]);
      if (field === 'family' || field === 'orig' || field === 'reply') continue;
      const without: Record<string, unknown> = { ...full };
      delete without[field];
      const dropped = without as unknown as ConntrackEntry;
      expect([field, carriesNothingNew(stored, dropped, false)]).toEqual([field, false]);
      expect([field, carriesNothingNew(stored, dropped, true)]).toEqual([field, true]);
    }
    // SCTP and DCCP protoinfo are compared too.
    const sctp = new EntryCompactor().entry({ ...full, protoinfo: { sctp: { state: 3, vtagOrig: 1, vtagReply: 2 } } });
    expect(
      carriesNothingNew(sctp, { ...full, protoinfo: { sctp: { state: 3, vtagOrig: 1, vtagReply: 2 } } }, false),
    ).toBe(true);
    expect(
      carriesNothingNew(sctp, { ...full, protoinfo: { sctp: { state: 3, vtagOrig: 1, vtagReply: 9 } } }, false),
    ).toBe(false);
    const dccp = new EntryCompactor().entry({ ...full, protoinfo: { dccp: { state: 1, role: 0, handshakeSeq: 5n } } });
    expect(
      carriesNothingNew(dccp, { ...full, protoinfo: { dccp: { state: 1, role: 0, handshakeSeq: 5n } } }, false),
    ).toBe(true);
    expect(
      carriesNothingNew(dccp, { ...full, protoinfo: { dccp: { state: 1, role: 0, handshakeSeq: 6n } } }, false),
    ).toBe(false);
  });

  it('refreshTimeout writes the timeout in place, or copies when the field is missing', () => {
    const stored = new EntryCompactor().entry(tcp(1));
    expect(refreshTimeout(stored, 42)).toBe(stored);
    expect(stored.timeout).toBe(42);
    expect(refreshTimeout(stored, undefined)).toBe(stored);
    expect(stored.timeout).toBe(42);
    const { timeout: _t, ...rest } = stored;
    const noTimeout: ConntrackEntry = rest;
    const copy = refreshTimeout(noTimeout, 7);
    expect(copy).not.toBe(noTimeout);
    expect(copy.timeout).toBe(7);
    expect(noTimeout.timeout).toBeUndefined();
  });

  it('lays present fields of an update over the cached entry, reusing what did not change', () => {
    const c = new EntryCompactor();
    const cached = c.entry(
      tcp(1, {
        mark: 1,
        helper: 'ftp',
        labels: Buffer.alloc(16, 3),
        seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
      }),
    );
    const e = tcp(1);
    const partial: ConntrackEntry = {
      family: AF_INET,
      orig: { ...e.orig },
      reply: { ...e.reply },
      status: 0x1e,
      timeout: 10,
      mark: 2,
    };
    const merged = c.entry(partial, cached);
    expect(merged).toStrictEqual({ ...cached, status: 0x1e, timeout: 10, mark: 2 });
    expect(merged.orig).toBe(cached.orig);
    expect(merged.reply).toBe(cached.reply);
    expect(merged.protoinfo).toBe(cached.protoinfo);
    expect(cached.status).toBe(IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED);
    expect(cached.mark).toBe(1);
    // Present fields replace, including nested ones.
    const closing = c.entry({ ...partial, protoinfo: { tcp: { state: FIN_WAIT } }, helper: 'sip' }, cached);
    expect(closing.protoinfo).toStrictEqual({ tcp: { state: FIN_WAIT } });
    expect(closing.helper).toBe('sip');
    expect(closing.labels).toBe(cached.labels);
    // A changed reply tuple (not something the kernel does, but possible on the wire) is taken.
    const moved = c.entry({ ...partial, reply: { ...e.reply, src: '192.0.2.99' } }, cached);
    expect(moved.reply.src).toBe('192.0.2.99');
    expect(moved.orig).toBe(cached.orig);
  });
});

/** The entryKey() of the entry a slot of `c` holds (the cache's keys are slots). */
const keyIn = (c: InternalCache) => (slot: number) => entryKey(c.entryAt(slot)!);

describe('InternalCache: events', () => {
  it('creates, reports unchanged, updates and deletes', () => {
    const c = internal();
    const e = tcp(1);
    const key = e;
    expect(c.apply('new', e)).toBe('created');
    expect(c.size).toBe(1);
    expect(c.has(key)).toBe(true);
    const stored = c.get(key);
    expect(stored?.id).toBeUndefined();
    expect(stored?.countersOrig).toBeUndefined();
    expect(stored?.orig).toStrictEqual(e.orig);
    expect(c.apply('new', tcp(1))).toBe('unchanged');
    expect(c.apply('update', tcp(1, { status: 0x1e }))).toBe('updated');
    expect(c.get(key)?.status).toBe(0x1e);
    expect(c.apply('destroy', tcp(1))).toBe('deleted');
    expect(c.apply('destroy', tcp(1))).toBe('missing');
    expect(c.size).toBe(0);
    expect(c.counters).toMatchObject({ created: 1, unchanged: 1, updated: 1, destroyed: 1, missing: 1 });
  });

  it('stores a timeout-only change but does not report it', () => {
    const c = internal();
    c.apply('new', tcp(1));
    const slot = c.slotOf(tcp(1));
    expect(c.apply('update', tcp(1, { timeout: 99 }))).toBe('unchanged');
    expect(c.get(tcp(1))?.timeout).toBe(99);
    // Refreshed in place: the same slot, nothing to replicate.
    expect(c.slotOf(tcp(1))).toBe(slot);
    expect(c.reconcile([tcp(1, { timeout: 98 })]).updated).toEqual([]);
    expect(c.slotOf(tcp(1))).toBe(slot);
    expect(c.get(tcp(1))?.timeout).toBe(98);
    // Counters, id and timestamp are not stored, so their changes are not news either.
    expect(c.apply('update', tcp(1, { id: 5, countersOrig: { packets: 9n, bytes: 9n } }))).toBe('unchanged');
  });

  it('merges partial UPDATE events onto the cached entry', () => {
    const c = internal();
    c.apply('new', tcp(1, { mark: 7 }));
    const e = tcp(1);
    const partial: ConntrackEntry = { family: e.family, orig: e.orig, reply: e.reply, status: 0x3e, timeout: 50 };
    expect(c.apply('update', partial)).toBe('updated');
    const got = c.get(e);
    expect(got?.status).toBe(0x3e);
    expect(got?.mark).toBe(7);
    expect(got?.protoinfo?.tcp?.state).toBe(ESTABLISHED);
  });

  it('creates an entry on an UPDATE for an unknown key that passes the filter', () => {
    const c = internal(100, STATE_ACCEPT);
    expect(c.apply('new', tcp(1, {}, SYN_SENT))).toBe('filtered');
    expect(c.size).toBe(0);
    expect(c.apply('update', tcp(1, {}, ESTABLISHED))).toBe('created');
    expect(c.get(tcp(1))?.protoinfo?.tcp?.state).toBe(ESTABLISHED);
  });

  it('keeps the cached copy when an UPDATE moves into a filtered state', () => {
    const c = internal(100, STATE_ACCEPT);
    c.apply('new', tcp(1));
    expect(c.apply('update', tcp(1, {}, FIN_WAIT))).toBe('filtered');
    expect(c.get(tcp(1))?.protoinfo?.tcp?.state).toBe(ESTABLISHED);
    expect(c.apply('update', tcp(1, {}, TIME_WAIT))).toBe('updated');
    expect(c.counters.filtered['tcp-state']).toBe(1);
  });

  it('judges a partial UPDATE by the merged entry, so it keeps the cached state', () => {
    const c = internal(100, STATE_ACCEPT);
    c.apply('new', tcp(1));
    const e = tcp(1);
    // No protoinfo in the event: alone it would fail the state rule.
    expect(c.apply('update', { family: e.family, orig: e.orig, reply: e.reply, mark: 4 })).toBe('updated');
    expect(c.get(e)?.mark).toBe(4);
  });

  it('deletes a cached entry when a NEW for its key is filtered', () => {
    const c = internal(100, STATE_ACCEPT);
    c.apply('new', tcp(1));
    expect(c.apply('new', tcp(1, {}, SYN_SENT))).toBe('deleted');
    expect(c.size).toBe(0);
    expect(c.apply('new', tcp(1, {}, SYN_SENT))).toBe('filtered');
  });

  it('removes cached entries on DESTROY whatever the filter says', () => {
    const c = internal(100, STATE_ACCEPT);
    c.apply('new', tcp(1));
    expect(c.apply('destroy', tcp(1, {}, SYN_SENT))).toBe('deleted');
    expect(c.size).toBe(0);
  });

  it('counts filtered events by reason', () => {
    const c = internal(100, { ...STATE_ACCEPT, protocols: { ignore: ['udp'] } });
    const udp = tcp(1);
    udp.orig = { ...udp.orig, proto: IPPROTO.UDP };
    udp.reply = { ...udp.reply, proto: IPPROTO.UDP };
    delete udp.protoinfo;
    expect(c.apply('new', udp)).toBe('filtered');
    expect(c.apply('new', tcp(2, { orig: { ...tcp(2).orig, src: '127.0.0.1' } }))).toBe('filtered');
    expect(c.apply('new', tcp(3, { reply: { ...tcp(3).reply, src: '198.51.100.1' } }))).toBe('filtered');
    expect(c.apply('new', tcp(4, {}, SYN_SENT))).toBe('filtered');
    expect(c.counters.filtered).toEqual({ protocol: 1, address: 2, 'tcp-state': 1 });
    expect(c.size).toBe(0);
  });
});

describe('InternalCache: limit', () => {
  it('refuses new keys past the limit, counts them, and never evicts', () => {
    const c = internal(3);
    const results = [1, 2, 3, 4, 5].map((n) => c.apply('new', tcp(n)));
    expect(results).toEqual(['created', 'created', 'created', 'refused', 'refused']);
    expect(c.size).toBe(3);
    expect(c.counters.refused).toBe(2);
    for (const n of [1, 2, 3]) expect(c.has(tcp(n))).toBe(true);
    expect(c.has(tcp(4))).toBe(false);
    // Full, but known keys still update, and an UPDATE for an unknown key is refused too.
    expect(c.apply('update', tcp(2, { mark: 9 }))).toBe('updated');
    expect(c.apply('update', tcp(6))).toBe('refused');
    expect(c.counters.refused).toBe(3);
    // A destroy frees a slot.
    expect(c.apply('destroy', tcp(1))).toBe('deleted');
    expect(c.apply('new', tcp(4))).toBe('created');
    expect(c.limit).toBe(3);
  });
});

describe('InternalCache: reconcile', () => {
  it('reports exactly what the dump changed and applies it', () => {
    const c = internal(100, STATE_ACCEPT);
    for (const n of [1, 2, 3, 6]) c.apply('new', tcp(n));
    const dump = [
      tcp(1, { timeout: 17 }), // timeout moved only
      tcp(2, { mark: 5 }), // changed
      // 3 is gone from the kernel
      tcp(4), // new
      tcp(5, {}, SYN_SENT), // filtered, not cached
      tcp(6, {}, FIN_WAIT), // filtered, cached: kept as it was
    ];
    const r = c.reconcile(dump);
    expect(r.created.map(keyIn(c))).toEqual([entryKey(tcp(4))]);
    expect(r.updated.map(keyIn(c))).toEqual([entryKey(tcp(2))]);
    expect(r.deleted.map(entryKey)).toEqual([entryKey(tcp(3))]);
    expect(r.deleted[0]?.orig).toStrictEqual(tcp(3).orig);
    expect(r.deletedKeys).toHaveLength(1);
    expect([...c.values()].map(entryKey).sort()).toEqual([1, 2, 4, 6].map((n) => entryKey(tcp(n))).sort());
    expect(c.get(tcp(1))?.timeout).toBe(17);
    expect(c.get(tcp(2))?.mark).toBe(5);
    expect(c.get(tcp(6))?.protoinfo?.tcp?.state).toBe(ESTABLISHED);
    expect(c.counters.filtered['tcp-state']).toBe(2);
    expect(c.counters.reconciles).toBe(1);
    // A second identical dump changes nothing.
    const again = c.reconcile(dump);
    expect(again).toEqual({ created: [], updated: [], deleted: [], deletedKeys: [] });
  });

  it('empties the cache for an empty dump', () => {
    const c = internal();
    for (const n of [1, 2, 3]) c.apply('new', tcp(n));
    const r = c.reconcile([]);
    expect(r.deleted).toHaveLength(3);
    expect(c.size).toBe(0);
    expect(c.counters.destroyed).toBe(3);
  });

  it('deletes vanished keys before inserting, so a full cache can take their replacements', () => {
    const c = internal(3);
    for (const n of [1, 2, 3]) c.apply('new', tcp(n));
    const r = c.reconcile([tcp(2), tcp(4), tcp(5)]);
    expect(r.created.map(keyIn(c)).sort()).toEqual([entryKey(tcp(4)), entryKey(tcp(5))].sort());
    expect(r.deleted).toHaveLength(2);
    expect(c.counters.refused).toBe(0);
    expect(c.size).toBe(3);
  });

  it('refuses the surplus of a dump larger than the limit', () => {
    const c = internal(2);
    const r = c.reconcile([tcp(1), tcp(2), tcp(3)]);
    expect(r.created).toHaveLength(2);
    expect(c.size).toBe(2);
    expect(c.counters.refused).toBe(1);
  });

  it('reports a key the dump carries twice once', () => {
    const c = internal();
    const r = c.reconcile([tcp(1), tcp(1, { mark: 3 })]);
    expect(r).toEqual({ created: [c.slotOf(tcp(1))], updated: [], deleted: [], deletedKeys: [] });
    expect(c.get(tcp(1))?.mark).toBe(3);
  });

  it('stamps the reconcile time from the injected clock', () => {
    const clock = fakeClock(5000);
    const c = new InternalCache({ limit: 10, filter: ACCEPT_ALL, now: clock.now });
    expect(c.lastReconcileAt).toBeUndefined();
    c.reconcile([]);
    expect(c.lastReconcileAt).toBe(5000);
  });
});

describe('InternalCache: reconcile session with events in between', () => {
  it('does not delete a key an event created while the dump ran', () => {
    const c = internal();
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    s.add(tcp(1));
    // Created after the dump passed its bucket: the dump will not carry it.
    expect(c.apply('new', tcp(2))).toBe('created');
    const r = s.finish();
    expect(r.deleted).toEqual([]);
    expect(c.has(tcp(2))).toBe(true);
  });

  it('does not resurrect a key an event destroyed before the dump reached it', () => {
    const c = internal();
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    expect(c.apply('destroy', tcp(1))).toBe('deleted');
    s.add(tcp(1)); // read from the kernel before the destroy
    const r = s.finish();
    expect(c.has(tcp(1))).toBe(false);
    expect(r).toEqual({ created: [], updated: [], deleted: [], deletedKeys: [] });
  });

  it('lets an event win over an older dumped state of the same key', () => {
    const c = internal();
    c.apply('new', tcp(1));
    const s = c.beginReconcile();
    c.apply('update', tcp(1, {}, TIME_WAIT));
    s.add(tcp(1, {}, ESTABLISHED));
    expect(s.finish().updated).toEqual([]);
    expect(c.get(tcp(1))?.protoinfo?.tcp?.state).toBe(TIME_WAIT);
  });

  it('leaves out of the report keys an event destroyed after the dump created them', () => {
    const c = internal();
    const s = c.beginReconcile();
    s.add(tcp(1));
    s.add(tcp(2));
    c.apply('destroy', tcp(1));
    expect(s.finish().created.map(keyIn(c))).toEqual([entryKey(tcp(2))]);
  });

  it('inserts new keys that did not fit once the vanished ones are gone', () => {
    const c = internal(2);
    c.apply('new', tcp(1));
    c.apply('new', tcp(2));
    const s = c.beginReconcile();
    s.add(tcp(3));
    s.add(tcp(4));
    s.add(tcp(5));
    expect(c.size).toBe(2);
    const r = s.finish();
    expect(r.deleted.map(entryKey).sort()).toEqual([entryKey(tcp(1)), entryKey(tcp(2))].sort());
    expect(r.created).toHaveLength(2);
    expect(c.size).toBe(2);
    expect(c.counters.refused).toBe(1);
  });

  it('abort deletes nothing but reports what was already applied', () => {
    const c = internal();
    c.apply('new', tcp(1));
    c.apply('new', tcp(2));
    const s = c.beginReconcile();
    s.add(tcp(2, { mark: 8 }));
    s.add(tcp(3));
    const r = s.abort();
    expect(r).toEqual({ created: [c.slotOf(tcp(3))], updated: [c.slotOf(tcp(2))], deleted: [], deletedKeys: [] });
    expect(c.size).toBe(3);
    expect(c.counters.reconciles).toBe(0);
    expect(() => s.add(tcp(4))).toThrow(/ended/);
    expect(() => s.finish()).toThrow(/ended/);
  });

  it('allows one session at a time', () => {
    const c = internal();
    const s = c.beginReconcile();
    expect(() => c.beginReconcile()).toThrow(/in progress/);
    expect(() => c.reconcile([])).toThrow(/in progress/);
    s.finish();
    expect(() => c.reconcile([])).not.toThrow();
    // Events outside a session are not remembered by the next one.
    c.apply('new', tcp(1));
    expect(c.reconcile([]).deleted.map(entryKey)).toEqual([entryKey(tcp(1))]);
  });
});

describe('InternalCache: expectations', () => {
  it('keeps an expectation only while its master is cached', () => {
    const c = internal();
    const master = tcp(1);
    const exp = expectation(master, 20000);
    expect(c.applyExpect('new', exp)).toBe('filtered');
    expect(c.expectCounters.noMaster).toBe(1);
    c.apply('new', master);
    expect(c.applyExpect('new', exp)).toBe('created');
    expect(c.getExpect(expectKey(exp))?.id).toBeUndefined();
    expect(c.applyExpect('update', exp)).toBe('unchanged');
    expect(c.applyExpect('update', { ...exp, timeout: 1 })).toBe('unchanged');
    expect(c.applyExpect('update', { ...exp, flags: 1 })).toBe('updated');
    expect(c.applyExpect('destroy', exp)).toBe('deleted');
    expect(c.applyExpect('destroy', exp)).toBe('missing');
  });

  it('finds masters in a non-default zone', () => {
    const c = internal();
    const master = tcp(1, { zone: 5 });
    c.apply('new', master);
    expect(c.applyExpect('new', expectation(master, 1))).toBe('created');
    expect(c.applyExpect('new', expectation(master, 2, { zone: undefined }))).toBe('filtered');
  });

  it('applies its own limit', () => {
    const c = new InternalCache({ limit: 10, expectLimit: 1, filter: ACCEPT_ALL });
    const master = tcp(1);
    c.apply('new', master);
    expect(c.applyExpect('new', expectation(master, 1))).toBe('created');
    expect(c.applyExpect('new', expectation(master, 2))).toBe('refused');
    expect(c.expectCounters.refused).toBe(1);
    expect(c.expectSize).toBe(1);
  });

  it('reconciles expectations against a dump', () => {
    const c = internal();
    const m1 = tcp(1);
    c.apply('new', m1);
    const e1 = expectation(m1, 1);
    const e2 = expectation(m1, 2);
    c.applyExpect('new', e1);
    c.applyExpect('new', e2);
    const orphan = expectation(tcp(9), 3);
    const e4 = expectation(m1, 4);
    const r = c.reconcileExpect([{ ...e2, flags: 2 }, e4, orphan]);
    expect(r.created).toEqual([expectKey(e4)]);
    expect(r.updated).toEqual([expectKey(e2)]);
    expect(r.deleted.map(expectKey)).toEqual([expectKey(e1)]);
    expect([...c.expectEntries()].map(([k]) => k).sort()).toEqual([expectKey(e2), expectKey(e4)].sort());
  });

  it('flush empties both tables and counts them', () => {
    const c = internal();
    const m = tcp(1);
    c.apply('new', m);
    c.apply('new', tcp(2));
    c.applyExpect('new', expectation(m, 1));
    c.flush();
    expect(c.size).toBe(0);
    expect(c.expectSize).toBe(0);
    expect(c.counters.flushed).toBe(2);
    expect(c.expectCounters.flushed).toBe(1);
    expect(c.apply('new', tcp(1))).toBe('created');
  });
});

describe('ExternalCache: basics', () => {
  it('records origin, epoch, seq and update time', () => {
    const clock = fakeClock();
    const c = new ExternalCache({ limit: 10, now: clock.now });
    const key = tcp(1);
    expect(c.applyRemote('fw2', 7, 100, 'new', tcp(1))).toBe('created');
    const r1 = c.get(key);
    expect(r1).toMatchObject({ origin: 'fw2', epoch: 7, seq: 100, updatedAt: clock.now() });
    expect(r1?.entry.id).toBeUndefined();
    expect(r1?.entry.orig).toStrictEqual(tcp(1).orig);
    clock.advance(1500);
    expect(c.applyRemote('fw2', 7, 101, 'update', tcp(1, { mark: 3 }))).toBe('updated');
    expect(c.get(key)).toMatchObject({ seq: 101, updatedAt: clock.now() });
    expect(c.get(key)?.entry.mark).toBe(3);
    expect(c.size).toBe(1);
    expect(c.has(key)).toBe(true);
    expect(c.applyRemote('fw2', 7, 102, 'delete', tcp(1))).toBe('deleted');
    expect(c.applyRemote('fw2', 7, 103, 'delete', tcp(1))).toBe('missing');
    expect(c.size).toBe(0);
    expect(c.counters).toMatchObject({ created: 1, updated: 1, deleted: 1, missing: 1, stale: 0 });
  });

  it('keeps the stored entry of an unchanged re-send, refreshing its timeout, and the kernel copy current', () => {
    const clock = fakeClock();
    const c = new ExternalCache({ limit: 10, now: clock.now });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.noteInKernel(c.get(tcp(1))!, 1);
    expect(c.get(tcp(1))?.kernelCopy).toBe(KERNEL_CURRENT);
    clock.advance(10);
    expect(c.applyRemote('fw2', 1, 2, 'update', tcp(1, { timeout: 5 }))).toBe('updated');
    const rec = c.get(tcp(1));
    expect(rec).toMatchObject({ seq: 2, updatedAt: clock.now(), entry: { timeout: 5 }, kernelCopy: KERNEL_CURRENT });
    c.applyRemote('fw2', 1, 3, 'update', tcp(1, { mark: 4 }));
    expect(c.get(tcp(1))?.entry.mark).toBe(4);
    expect(c.get(tcp(1))?.kernelCopy).toBe(KERNEL_STALE);
    // The object handed out earlier follows the record's numbers, not its entry.
    expect(rec).toMatchObject({ seq: 3, kernelCopy: KERNEL_STALE, entry: { timeout: 5 } });
  });

  it('upserts on UPDATE for an unknown key', () => {
    const c = new ExternalCache({ limit: 10 });
    expect(c.applyRemote('fw2', 1, 5, 'update', tcp(1))).toBe('created');
  });

  it('keeps seq as an unsigned 32-bit number', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 0xfffffffe, U32_MAX - 1, 'new', tcp(1));
    expect(c.get(tcp(1))).toMatchObject({ seq: U32_MAX - 1, epoch: 0xfffffffe });
  });

  it('refuses new keys past the limit, counts them, and never evicts', () => {
    const c = new ExternalCache({ limit: 2 });
    expect(c.applyRemote('fw2', 1, 1, 'new', tcp(1))).toBe('created');
    expect(c.applyRemote('fw2', 1, 2, 'new', tcp(2))).toBe('created');
    expect(c.applyRemote('fw2', 1, 3, 'new', tcp(3))).toBe('refused');
    expect(c.applyRemote('fw3', 1, 1, 'update', tcp(4))).toBe('refused');
    expect(c.counters.refused).toBe(2);
    expect(c.size).toBe(2);
    expect(c.has(tcp(1)) && c.has(tcp(2))).toBe(true);
    expect(c.applyRemote('fw2', 1, 4, 'update', tcp(1, { mark: 1 }))).toBe('updated');
    c.applyRemote('fw2', 1, 5, 'delete', tcp(2));
    expect(c.applyRemote('fw2', 1, 6, 'new', tcp(3))).toBe('created');
  });

  it('tracks how many records each origin holds, across takeovers', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2));
    c.applyRemote('fw3', 1, 1, 'new', tcp(3));
    expect(c.origins()).toEqual(
      new Map([
        ['fw2', 2],
        ['fw3', 1],
      ]),
    );
    // Another origin's message for the same key always wins and takes the record over;
    // fw2's copy waits beside it (a shadow) and still counts as fw2's.
    expect(c.applyRemote('fw3', 1, 2, 'update', tcp(1))).toBe('updated');
    expect(c.get(tcp(1))?.origin).toBe('fw3');
    expect(c.origins()).toEqual(
      new Map([
        ['fw2', 2],
        ['fw3', 2],
      ]),
    );
    c.applyRemote('fw2', 1, 3, 'delete', tcp(2));
    c.applyRemote('fw2', 1, 4, 'delete', tcp(1));
    expect(c.origins()).toEqual(new Map([['fw3', 2]]));
    expect(c.size).toBe(2);
  });

  it('flushOrigin removes one origin, flush removes all', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2));
    c.applyRemote('fw3', 1, 1, 'new', tcp(3));
    c.applyRemoteExpect('fw2', 1, 3, 'new', expectation(tcp(1), 1));
    expect(c.flushOrigin('fw2')).toBe(3);
    expect([...c.entries()].map(([k]) => k)).toEqual([entryKey(tcp(3))]);
    expect(c.expectSize).toBe(0);
    expect(c.origins()).toEqual(new Map([['fw3', 1]]));
    expect(c.flushOrigin('nobody')).toBe(0);
    c.flush();
    expect(c.size).toBe(0);
    expect(c.counters.flushed).toBe(3);
    expect(c.expectCounters.flushed).toBe(1);
    expect(c.origins().size).toBe(0);
  });
});

describe('ExternalCache: a key two origins hold', () => {
  // RELIABILITY.md finding 1: fw1 committed fw3's entries and took them as its own.
  const shared = () => {
    const c = new ExternalCache({ limit: 10 });
    expect(c.applyRemote('fw3', 1, 10, 'new', tcp(1, { mark: 3 }))).toBe('created');
    expect(c.applyRemote('fw1', 1, 20, 'update', tcp(1, { mark: 1 }))).toBe('updated');
    return c;
  };

  it("a delete from the origin whose copy the table holds brings back the other origin's copy", () => {
    const c = shared();
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw1', seq: 20 });
    expect(c.applyRemote('fw1', 1, 21, 'delete', tcp(1))).toBe('deleted');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3', epoch: 1, seq: 10 });
    expect(c.get(tcp(1))?.entry.mark).toBe(3);
    expect(c.origins()).toEqual(new Map([['fw3', 1]]));
    expect(c.counters).toMatchObject({ deleted: 1, copyDeleted: 1 });
    // The last copy's delete removes the key.
    expect(c.applyRemote('fw3', 1, 11, 'delete', tcp(1))).toBe('deleted');
    expect(c.has(tcp(1))).toBe(false);
    expect(c.origins().size).toBe(0);
    expect(c.counters).toMatchObject({ deleted: 2, copyDeleted: 1 });
  });

  it("a delete from the shadow's origin removes that copy only", () => {
    const c = shared();
    expect(c.applyRemote('fw3', 1, 11, 'delete', tcp(1))).toBe('deleted');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw1', seq: 20 });
    expect(c.get(tcp(1))?.entry.mark).toBe(1);
    expect(c.origins()).toEqual(new Map([['fw1', 1]]));
    // Its copy is gone: fw1's delete now removes the key.
    expect(c.applyRemote('fw1', 1, 21, 'delete', tcp(1))).toBe('deleted');
    expect(c.size).toBe(0);
  });

  it('a delete from an origin holding no copy of the key changes nothing', () => {
    const c = shared();
    expect(c.applyRemote('fw2', 1, 5, 'delete', tcp(1))).toBe('missing');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw1', seq: 20 });
    expect(c.origins()).toEqual(
      new Map([
        ['fw1', 1],
        ['fw3', 1],
      ]),
    );
    expect(c.counters).toMatchObject({ deleted: 0, missing: 1 });
  });

  it("each origin's messages are ordered against its own copy, and its deletes against its tombstone", () => {
    const c = shared();
    expect(c.applyRemote('fw3', 1, 9, 'update', tcp(1, { mark: 9 }))).toBe('stale');
    expect(c.applyRemote('fw3', 1, 9, 'delete', tcp(1))).toBe('stale');
    expect(c.get(tcp(1))?.entry.mark).toBe(1);
    // A newer one from fw3 takes the table; fw1's copy waits in its turn.
    expect(c.applyRemote('fw3', 1, 12, 'update', tcp(1, { mark: 12 }))).toBe('updated');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3', seq: 12 });
    expect(c.applyRemote('fw1', 1, 19, 'update', tcp(1, { mark: 19 }))).toBe('stale');
    expect(c.applyRemote('fw3', 1, 13, 'delete', tcp(1))).toBe('deleted');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw1', seq: 20 });
    // fw3's late update from before its delete does not bring its copy back.
    expect(c.applyRemote('fw3', 1, 12, 'update', tcp(1, { mark: 12 }))).toBe('stale');
    expect(c.origins()).toEqual(new Map([['fw1', 1]]));
    // A restarted fw3 (new epoch) is believed.
    expect(c.applyRemote('fw3', 2, 1, 'new', tcp(1, { mark: 30 }))).toBe('updated');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3', epoch: 2 });
  });

  it("a bulk's end and a flush of one origin remove that origin's copies and keep the others'", () => {
    const c = shared();
    c.applyRemote('fw3', 1, 12, 'new', tcp(2, { mark: 3 }));
    c.applyRemote('fw1', 1, 22, 'new', tcp(2, { mark: 1 }));
    c.applyRemote('fw3', 1, 13, 'new', tcp(3));
    // fw3's bulk carries tcp(3) only: its copies of tcp(1) (a shadow) and tcp(2) (a shadow) go.
    c.beginBulk('fw3');
    c.applyRemote('fw3', 1, 14, 'update', tcp(3));
    expect(c.endBulk('fw3')).toBe(2);
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw1' });
    expect(c.origins()).toEqual(
      new Map([
        ['fw1', 2],
        ['fw3', 1],
      ]),
    );
    // fw3 takes tcp(1) again; flushing fw1 then leaves fw3's copies, tcp(2) (fw1's alone) goes.
    c.applyRemote('fw3', 1, 15, 'update', tcp(1, { mark: 15 }));
    expect(c.flushOrigin('fw1')).toBe(2);
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3', seq: 15 });
    expect(c.has(tcp(2))).toBe(false);
    expect(c.has(tcp(3))).toBe(true);
    expect(c.origins()).toEqual(new Map([['fw3', 2]]));
  });

  it('the table copy an origin loses at the end of its bulk gives way to the other origin\'s', () => {
    const c = shared();
    c.beginBulk('fw1');
    expect(c.endBulk('fw1')).toBe(1);
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3', seq: 10 });
    expect(c.get(tcp(1))?.entry.mark).toBe(3);
    expect(c.counters.bulkRemoved).toBe(1);
  });

  it('a rollover carries the shadows of the origin too', () => {
    const c = shared();
    c.continueEpoch('fw3', 1, 2, 0);
    expect(c.applyRemote('fw3', 2, 9, 'update', tcp(1))).toBe('stale');
    expect(c.applyRemote('fw1', 1, 21, 'delete', tcp(1))).toBe('deleted');
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3', epoch: 2, seq: 10 });
  });

  it('the kernel holds the dropped copy: the promoted one is stale there, and inject mode is told of it', () => {
    const changes: [string, string | undefined, number | undefined][] = [];
    const c = new ExternalCache({ limit: 10, onChange: (_k, change, rec, e) => changes.push([change, rec?.origin, e.mark]) });
    c.applyRemote('fw3', 1, 10, 'new', tcp(1, { mark: 3 }));
    c.applyRemote('fw1', 1, 20, 'update', tcp(1, { mark: 1 }));
    c.noteInKernel(c.get(tcp(1))!, 20);
    expect(c.get(tcp(1))?.kernelCopy).toBe(KERNEL_CURRENT);
    changes.length = 0;
    c.applyRemote('fw1', 1, 21, 'delete', tcp(1));
    expect(c.get(tcp(1))?.kernelCopy).toBe(KERNEL_STALE);
    expect(changes).toEqual([['updated', 'fw3', 3]]);
    // A copy that was only a shadow goes silently: the table's copy is unchanged.
    c.applyRemote('fw1', 1, 22, 'update', tcp(1, { mark: 1 }));
    changes.length = 0;
    c.applyRemote('fw3', 1, 11, 'delete', tcp(1));
    expect(changes).toEqual([]);
    c.applyRemote('fw1', 1, 23, 'delete', tcp(1));
    // The entry told is the delete message's.
    expect(changes).toEqual([['deleted', undefined, 0]]);
  });

  it('behaves like one copy per origin, the latest written shown, under random messages, bulks and flushes', () => {
    const ORIGINS = ['fw1', 'fw2', 'fw3'];
    const op = fc.oneof(
      { weight: 8, arbitrary: fc.record({ t: fc.constantFrom('new', 'update', 'delete'), o: fc.nat(2), k: fc.nat(3), mark: fc.nat(99) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('bulk'), o: fc.nat(2), keep: fc.array(fc.nat(3), { maxLength: 4 }) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('flush'), o: fc.nat(2) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const c = new ExternalCache({ limit: 100 });
        // key → origin → [write order, mark]: the model, one copy per origin.
        const model = new Map<number, Map<string, [number, number]>>();
        const seq = new Map<string, number>();
        let order = 0;
        const send = (o: string, kind: 'new' | 'update' | 'delete', k: number, mark: number) => {
          const s = (seq.get(o) ?? 0) + 1;
          seq.set(o, s);
          return c.applyRemote(o, 1, s, kind, tcp(k + 1, { mark }));
        };
        for (const x of ops) {
          const o = ORIGINS[x.o]!;
          if (x.t === 'bulk') {
            // A bulk from o carrying only the keys in `keep` that o holds.
            c.beginBulk(o);
            for (const k of new Set(x.keep)) {
              const copy = model.get(k)?.get(o);
              if (copy === undefined) continue;
              send(o, 'update', k, copy[1]);
              copy[0] = ++order;
            }
            c.endBulk(o);
            for (const [k, m] of model) if (!x.keep.includes(k)) m.delete(o);
          } else if (x.t === 'flush') {
            c.flushOrigin(o);
            for (const m of model.values()) m.delete(o);
          } else {
            const r = send(o, x.t, x.k, x.mark);
            let m = model.get(x.k);
            if (m === undefined) model.set(x.k, (m = new Map()));
            if (x.t === 'delete') {
              expect(r).toBe(m.has(o) ? 'deleted' : 'missing');
              m.delete(o);
            } else {
              m.set(o, [++order, x.mark]);
            }
          }
          for (const [k, m] of model) if (m.size === 0) model.delete(k);
          const counts = new Map<string, number>();
          for (const m of model.values()) for (const o2 of m.keys()) counts.set(o2, (counts.get(o2) ?? 0) + 1);
          expect(c.origins()).toEqual(counts);
          expect(c.size).toBe(model.size);
          for (let k = 0; k < 4; k++) {
            const m = model.get(k);
            const rec = c.get(tcp(k + 1));
            if (m === undefined) {
              expect(rec).toBeUndefined();
              continue;
            }
            const [latest, [, mark]] = [...m].reduce((a, b) => (b[1][0] > a[1][0] ? b : a));
            expect(rec?.origin).toBe(latest);
            expect(rec?.entry.mark).toBe(mark);
          }
        }
      }),
      { numRuns: runs(2000) },
    );
  });

  it('shadows are bounded by the limit: past it a takeover drops the old copy, counted', () => {
    const c = new ExternalCache({ limit: 2 });
    c.applyRemote('fw3', 1, 1, 'new', tcp(1));
    c.applyRemote('fw3', 1, 2, 'new', tcp(2));
    c.applyRemote('fw4', 1, 1, 'update', tcp(1));
    c.applyRemote('fw5', 1, 1, 'update', tcp(1));
    // Two shadows held (fw3's and fw4's copies of tcp(1)): fw6 takes tcp(2) without keeping fw3's.
    c.applyRemote('fw6', 1, 1, 'update', tcp(2));
    expect(c.counters.shadowsRefused).toBe(1);
    c.applyRemote('fw6', 1, 2, 'delete', tcp(2));
    expect(c.has(tcp(2))).toBe(false);
    c.applyRemote('fw5', 1, 2, 'delete', tcp(1));
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw4' });
    c.applyRemote('fw4', 1, 2, 'delete', tcp(1));
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw3' });
    expect(c.origins()).toEqual(new Map([['fw3', 1]]));
  });
});

describe('ExternalCache: stale updates', () => {
  it('rejects a message older than the live record from the same origin and epoch', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 10, 'new', tcp(1, { mark: 10 }));
    expect(c.applyRemote('fw2', 1, 9, 'update', tcp(1, { mark: 9 }))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 8, 'delete', tcp(1))).toBe('stale');
    expect(c.get(tcp(1))?.entry.mark).toBe(10);
    expect(c.counters.stale).toBe(2);
    // A duplicate of the last message is harmless and applied again.
    expect(c.applyRemote('fw2', 1, 10, 'update', tcp(1, { mark: 10 }))).toBe('updated');
  });

  it('lets another epoch or another origin win regardless of seq', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 1000, 'new', tcp(1, { mark: 1 }));
    expect(c.applyRemote('fw2', 2, 3, 'update', tcp(1, { mark: 2 }))).toBe('updated');
    expect(c.get(tcp(1))).toMatchObject({ epoch: 2, seq: 3 });
    expect(c.applyRemote('fw3', 2, 1, 'update', tcp(1, { mark: 3 }))).toBe('updated');
    expect(c.get(tcp(1))?.entry.mark).toBe(3);
  });

  it('continueEpoch: records of the old epoch are ordered by seq against the new one, very old ones moved up to the floor', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 100, 'new', tcp(1, { mark: 1 }));
    c.applyRemote('fw2', 1, 5, 'new', tcp(2, { mark: 1 }));
    c.applyRemote('fw3', 1, 100, 'new', tcp(3, { mark: 1 }));
    c.continueEpoch('fw2', 1, 2, 50);
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw2', epoch: 2, seq: 100 });
    expect(c.get(tcp(2))).toMatchObject({ epoch: 2, seq: 50 });
    // Another origin is not touched.
    expect(c.get(tcp(3))).toMatchObject({ origin: 'fw3', epoch: 1, seq: 100 });
    // An old message resent in the new epoch loses against the newer record of the old one ...
    expect(c.applyRemote('fw2', 2, 90, 'update', tcp(1, { mark: 2 }))).toBe('stale');
    expect(c.get(tcp(1))?.entry.mark).toBe(1);
    // ... and a newer one wins.
    expect(c.applyRemote('fw2', 2, 101, 'update', tcp(1, { mark: 3 }))).toBe('updated');
    expect(c.get(tcp(1))?.entry.mark).toBe(3);
    expect(c.applyRemote('fw2', 2, 49, 'update', tcp(2, { mark: 2 }))).toBe('stale');
    expect(c.applyRemote('fw2', 2, 51, 'update', tcp(2, { mark: 2 }))).toBe('updated');
  });

  it('continueEpoch: a bulk in progress across the rollover still counts what it carried', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 1, 'new', tcp(1));
    c.applyRemote('fw2', 1, 2, 'new', tcp(2));
    c.beginBulk('fw2', { epoch: 1, seq: 10 });
    c.applyRemote('fw2', 1, 11, 'update', tcp(1));
    c.continueEpoch('fw2', 1, 2, 0);
    c.applyRemote('fw2', 2, 12, 'new', tcp(3));
    // Bulk message for tcp(1) arrived before the rollover, tcp(3) after; tcp(2) was not carried.
    expect(c.endBulk('fw2')).toBe(1);
    expect(c.has(tcp(1))).toBe(true);
    expect(c.has(tcp(2))).toBe(false);
    expect(c.has(tcp(3))).toBe(true);
  });

  it('rejects a late UPDATE after a DELETE through the tombstone', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 5, 'new', tcp(1));
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    expect(c.tombstoneCount).toBe(1);
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(1))).toBe('stale');
    expect(c.has(tcp(1))).toBe(false);
    // Later messages from the same sender reopen the key.
    expect(c.applyRemote('fw2', 1, 11, 'new', tcp(1))).toBe('created');
  });

  it('lets a different epoch or origin through a tombstone', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    c.applyRemote('fw2', 1, 10, 'delete', tcp(2));
    expect(c.applyRemote('fw2', 2, 7, 'update', tcp(1))).toBe('created');
    expect(c.applyRemote('fw3', 1, 7, 'update', tcp(2))).toBe('created');
  });

  it('leaves a tombstone for a delete that arrives before its NEW', () => {
    const c = new ExternalCache({ limit: 10 });
    expect(c.applyRemote('fw2', 1, 12, 'delete', tcp(1))).toBe('missing');
    expect(c.applyRemote('fw2', 1, 10, 'new', tcp(1))).toBe('stale');
    expect(c.size).toBe(0);
  });

  it('does not move a tombstone backwards on a reordered older delete', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, 20, 'delete', tcp(1));
    // Older than the tombstone itself: stale.
    expect(c.applyRemote('fw2', 1, 15, 'delete', tcp(1))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 17, 'update', tcp(1))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 21, 'update', tcp(1))).toBe('created');
  });

  it('forgets tombstones after their TTL on the injected clock', () => {
    const clock = fakeClock();
    const c = new ExternalCache({ limit: 10, now: clock.now, tombstones: { max: 100, ttlMs: 60_000 } });
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    c.applyRemote('fw2', 1, 10, 'delete', tcp(2));
    clock.advance(60_000);
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(1))).toBe('stale');
    clock.advance(1);
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(2))).toBe('created');
  });

  it('is bounded: the least recently written tombstone is evicted first', () => {
    const c = new ExternalCache({ limit: 10, tombstones: { max: 2, ttlMs: 60_000 } });
    for (const n of [1, 2, 3]) c.applyRemote('fw2', 1, 10, 'delete', tcp(n));
    expect(c.tombstoneCount).toBe(2);
    // Eviction only reopens the race the tombstone guarded.
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(1))).toBe('created');
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(2))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(3))).toBe('stale');
  });

  it('can run without tombstones', () => {
    const c = new ExternalCache({ limit: 10, tombstones: { max: 0, ttlMs: 0 } });
    c.applyRemote('fw2', 1, 10, 'delete', tcp(1));
    expect(c.tombstoneCount).toBe(0);
    expect(c.applyRemote('fw2', 1, 7, 'update', tcp(1))).toBe('created');
  });

  it('orders sequence numbers across the 2^32 wrap', () => {
    const c = new ExternalCache({ limit: 10 });
    c.applyRemote('fw2', 1, U32_MAX - 15, 'new', tcp(1));
    // The sender wrapped: 5 comes after 2^32 - 16.
    expect(c.applyRemote('fw2', 1, 5, 'update', tcp(1, { mark: 5 }))).toBe('updated');
    expect(c.applyRemote('fw2', 1, U32_MAX - 7, 'update', tcp(1, { mark: 6 }))).toBe('stale');
    expect(c.get(tcp(1))).toMatchObject({ seq: 5, entry: { mark: 5 } });
    // Tombstones wrap too.
    c.applyRemote('fw2', 1, 3, 'delete', tcp(2));
    expect(c.applyRemote('fw2', 1, U32_MAX, 'update', tcp(2))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 4, 'update', tcp(2))).toBe('created');
    c.applyRemote('fw2', 1, U32_MAX - 1, 'delete', tcp(3));
    expect(c.applyRemote('fw2', 1, U32_MAX - 2, 'update', tcp(3))).toBe('stale');
    expect(c.applyRemote('fw2', 1, 0, 'update', tcp(3))).toBe('created');
  });
});

describe('ExternalCache: bulk', () => {
  it('removes the records of the bulk origin that the bulk did not carry', () => {
    const c = new ExternalCache({ limit: 100 });
    for (const n of [1, 2, 3]) c.applyRemote('fw2', 1, n, 'new', tcp(n));
    c.applyRemote('fw3', 1, 1, 'new', tcp(5));
    c.beginBulk('fw2');
    expect(c.inBulk('fw2')).toBe(true);
    // The restarted peer sends under a new epoch.
    c.applyRemote('fw2', 2, 1, 'update', tcp(1));
    c.applyRemote('fw2', 2, 2, 'new', tcp(4));
    // Another origin's traffic during the bulk is unaffected.
    c.applyRemote('fw3', 1, 2, 'new', tcp(6));
    expect(c.endBulk('fw2')).toBe(2);
    expect(c.inBulk('fw2')).toBe(false);
    expect([...c.entries()].map(([k]) => k).sort()).toEqual([1, 4, 5, 6].map((n) => entryKey(tcp(n))).sort());
    expect(c.counters.bulkRemoved).toBe(2);
    expect(c.origins()).toEqual(
      new Map([
        ['fw2', 2],
        ['fw3', 2],
      ]),
    );
    // Records carried by an earlier bulk are not "seen" by the next one.
    c.beginBulk('fw2');
    c.applyRemote('fw2', 2, 3, 'update', tcp(4));
    expect(c.endBulk('fw2')).toBe(1);
    expect(c.has(tcp(1))).toBe(false);
    expect(c.has(tcp(4))).toBe(true);
  });

  it('empties the origin for an empty bulk and is a no-op without one', () => {
    const c = new ExternalCache({ limit: 100 });
    expect(c.endBulk('fw2')).toBe(0);
    for (const n of [1, 2]) c.applyRemote('fw2', 1, n, 'new', tcp(n));
    c.beginBulk('fw2');
    expect(c.endBulk('fw2')).toBe(2);
    expect(c.size).toBe(0);
    expect(c.endBulk('fw2')).toBe(0);
  });

  it('with the bulk-start seq, keeps bulk entries that were applied before a late bulk-start', () => {
    const c = new ExternalCache({ limit: 100 });
    c.applyRemote('fw2', 1, 10, 'new', tcp(1)); // before the bulk, not carried by it
    c.applyRemote('fw2', 0, 99, 'new', tcp(2)); // an older epoch of the same peer
    // The bulk-start (seq 100) was lost and is retransmitted: entries 101 and 102 arrive first.
    c.applyRemote('fw2', 1, 101, 'new', tcp(3));
    c.applyRemote('fw2', 1, 102, 'update', tcp(1, { mark: 1 }));
    c.beginBulk('fw2', { epoch: 1, seq: 100 });
    c.applyRemote('fw2', 1, 103, 'new', tcp(4));
    c.applyRemote('fw2', 1, 104, 'new', tcp(5));
    // A late message from before the bulk, applied during it, also counts as carried.
    c.applyRemote('fw2', 1, 50, 'new', tcp(6));
    expect(c.endBulk('fw2')).toBe(1);
    expect(c.has(tcp(2))).toBe(false);
    expect([...c.entries()].map(([k]) => k).sort()).toEqual([1, 3, 4, 5, 6].map((n) => entryKey(tcp(n))).sort());
  });

  it('with the bulk-start seq, orders records across the wrap', () => {
    const c = new ExternalCache({ limit: 100 });
    c.applyRemote('fw2', 1, U32_MAX - 5, 'new', tcp(1)); // before the start
    c.applyRemote('fw2', 1, 2, 'new', tcp(2)); // after the start, past the wrap
    c.beginBulk('fw2', { epoch: 1, seq: U32_MAX - 1 });
    expect(c.endBulk('fw2')).toBe(1);
    expect(c.has(tcp(1))).toBe(false);
    expect(c.has(tcp(2))).toBe(true);
  });

  it('works for an origin first heard of in the bulk', () => {
    const c = new ExternalCache({ limit: 100 });
    c.beginBulk('fw9');
    c.applyRemote('fw9', 4, 1, 'new', tcp(1));
    expect(c.endBulk('fw9')).toBe(0);
    expect(c.get(tcp(1))).toMatchObject({ origin: 'fw9', epoch: 4 });
  });

  it('covers expectations too', () => {
    const c = new ExternalCache({ limit: 100 });
    const m = tcp(1);
    const e1 = expectation(m, 1);
    const e2 = expectation(m, 2);
    c.applyRemote('fw2', 1, 1, 'new', m);
    c.applyRemoteExpect('fw2', 1, 2, 'new', e1);
    c.applyRemoteExpect('fw2', 1, 3, 'new', e2);
    c.beginBulk('fw2');
    c.applyRemote('fw2', 1, 4, 'update', m);
    c.applyRemoteExpect('fw2', 1, 5, 'update', e2);
    expect(c.endBulk('fw2')).toBe(1);
    expect(c.getExpect(expectKey(e1))).toBeUndefined();
    expect(c.getExpect(expectKey(e2))?.entry.id).toBeUndefined();
    expect(c.expectCounters.bulkRemoved).toBe(1);
    expect(c.counters.bulkRemoved).toBe(0);
  });
});

describe('ExternalCache: expectations', () => {
  it('applies the same ordering rules and its own limit', () => {
    const c = new ExternalCache({ limit: 100, expectLimit: 1 });
    const e1 = expectation(tcp(1), 1);
    expect(c.applyRemoteExpect('fw2', 1, 5, 'new', e1)).toBe('created');
    expect(c.applyRemoteExpect('fw2', 1, 4, 'update', e1)).toBe('stale');
    expect(c.applyRemoteExpect('fw2', 1, 6, 'new', expectation(tcp(1), 2))).toBe('refused');
    expect(c.applyRemoteExpect('fw2', 1, 7, 'delete', e1)).toBe('deleted');
    expect(c.applyRemoteExpect('fw2', 1, 6, 'update', e1)).toBe('stale');
    expect(c.expectCounters).toMatchObject({ created: 1, stale: 2, refused: 1, deleted: 1 });
    // Expectations do not count as conntrack records of the origin.
    expect(c.origins().size).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Memory per entry. Prints only: the figure depends on the V8 build and is a
// benchmark, not a pass/fail criterion.

function getGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** Entries as the kernel link would hand them over: encoded as a dump, then decoded. */
function* kernelEntries(n: number, make: (i: number) => ConntrackEntry): Generator<ConntrackEntry> {
  const w = new NlWriter(1 << 20);
  for (let i = 0; i < n; i += 1000) {
    w.reset();
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const e = make(j);
      w.begin((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_MULTI, j, e.family);
      encodeConntrack(w, e, { readOnly: true });
      w.end();
    }
    for (const m of parseNetlink(Buffer.from(w.finish())).messages) {
      const r = decodeConntrack(m);
      if (!r.ok) throw new Error(r.error.reason);
      yield r.value;
    }
  }
}

function v4Flow(i: number): ConntrackEntry {
  const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const dst = `198.51.${(i >> 6) & 255}.${(i * 7) & 255}`;
  const sport = 1024 + (i % 60000);
  return {
    ...tcp(0),
    orig: { src, dst, proto: IPPROTO.TCP, sport, dport: 443 },
    reply: { src: dst, dst: src, proto: IPPROTO.TCP, sport: 443, dport: sport },
    protoinfo: {
      tcp: {
        state: ESTABLISHED,
        wscaleOrig: 7,
        wscaleReply: 9,
        flagsOrig: { flags: 0x23, mask: 0x23 },
        flagsReply: { flags: 0x23, mask: 0x23 },
      },
    },
    id: 0x8000_0000 + i,
  };
}

function v6Flow(i: number): ConntrackEntry {
  const src = `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
  const dst = `2001:db8:ffff::${(i % 4096).toString(16)}`;
  const e = v4Flow(i);
  return { ...e, family: AF_INET6, orig: { ...e.orig, src, dst }, reply: { ...e.reply, src: dst, dst: src } };
}

/** Heap growth per entry while `build` fills a cache; the cache is returned so it outlives the measurement. */
function measure<T extends { size: number }>(n: number, build: () => T): { bytes: number; cache: T } {
  const gc = getGc();
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const cache = build();
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(cache.size).toBe(n);
  return { bytes: (after - before) / n, cache };
}

describe('memory per entry (printed, not asserted)', () => {
  // Scaled down (FC_RUNS_SCALE) under mutation testing, where every surviving
  // cache mutant would pay for filling two caches of 100k.
  const N = runs(100_000);

  it('measures the internal and the external cache with 100k kernel-decoded entries', () => {
    const rows: string[] = [];
    const keep: { size: number }[] = [];
    // IPv6 adds about 25 B/entry; measured only on request to keep the suite quick.
    const kinds: [string, (i: number) => ConntrackEntry][] = [['IPv4 TCP', v4Flow]];
    if (process.env.CTSYNCD_MEM_IPV6 === '1') kinds.push(['IPv6 TCP', v6Flow]);
    for (const [name, make] of kinds) {
      const int = measure(N, () => {
        const c = new InternalCache({ limit: N, filter: ACCEPT_ALL });
        for (const e of kernelEntries(N, make)) c.apply('new', e);
        return c;
      });
      const ext = measure(N, () => {
        const c = new ExternalCache({ limit: N });
        // Starts below the wrap so it crosses it, and half the seqs exceed 2^31.
        let seq = U32_MAX - N / 2;
        for (const e of kernelEntries(N, make)) c.applyRemote('fw2', 0xdeadbeef, seq++ >>> 0, 'new', e);
        return c;
      });
      keep.push(int.cache, ext.cache);
      rows.push(`${name}: internal ${int.bytes.toFixed(0)} B/entry, external ${ext.bytes.toFixed(0)} B/entry`);
    }
    console.log(`cache memory, ${N} entries each, V8 heap growth:\n  ${rows.join('\n  ')}`);
    expect(keep.every((c) => c.size === N)).toBe(true);
  }, 120_000);
});
