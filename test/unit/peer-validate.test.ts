// Peers' entries before they enter the external cache (src/cache/peer-validate.ts):
// the local filter, the status allow-list, the timeout cap, the per-origin
// share, and commit subtracting an entry's age. Every rule runs on both ways
// in: entry objects (applyRemote) and the wire decoder's scratch records.
import { describe, expect, it } from 'vitest';
import { commitExternal } from '../../src/cache/commit.js';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { compileFilter, type FilterRules } from '../../src/cache/filter.js';
import {
  agedForCommit,
  COMMIT_TIMEOUT_FLOOR,
  commitTimeout,
  PEER_MAX_TIMEOUT,
  PEER_STATUS_BITS,
  PeerEntryCheck,
} from '../../src/cache/peer-validate.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import { EntryRecord, recordBuf, writeEntryRecord } from '../../src/kernel/ct-record.js';
import { type ConntrackEntry, entryKey, type ExpectEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { CLUSTER } from './wire-helpers.js';

const NONE: FilterRules = { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } };

function flow(i: number, extra: Partial<ConntrackEntry> = {}, proto: number = IPPROTO.TCP): ConntrackEntry {
  const src = `10.99.${(i >> 8) & 255}.${i & 255}`;
  const ports = proto === IPPROTO.ICMP ? { icmpType: 8, icmpCode: 0, icmpId: i } : { sport: 1000 + i, dport: 80 };
  const rports = proto === IPPROTO.ICMP ? { icmpType: 0, icmpCode: 0, icmpId: i } : { sport: 80, dport: 1000 + i };
  return {
    family: AF_INET,
    orig: { src, dst: '10.99.250.1', proto, ...ports },
    reply: { src: '10.99.250.1', dst: src, proto, ...rports },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED,
    timeout: 300,
    mark: 0,
    ...(proto === IPPROTO.TCP ? { protoinfo: { tcp: { state: 3 } } } : {}),
    ...extra,
  };
}

/** The entry as the receiver sees it: an EntryRecord in the decoder's scratch space, or the object. */
type Way = 'object' | 'record';

function viaWire(e: ConntrackEntry): ConntrackEntry | EntryRecord {
  const enc = new DatagramEncoder({ cluster: CLUSTER, node: 'fw2', epoch: 1, mtu: 1472 });
  enc.add({ kind: 'ct-new', seq: 1, entry: e });
  const r = decodeDatagram(enc.flush()!, { cluster: CLUSTER, records: true });
  if (!r.ok) throw new Error(r.error.reason);
  const m = r.messages[0]!;
  if (m.kind !== 'ct-new') throw new Error('not ct-new');
  return m.entry;
}

function apply(cache: ExternalCache, way: Way, e: ConntrackEntry, seq = 1, origin = 'fw2') {
  const entry = way === 'object' ? e : viaWire(e);
  if (way === 'record') expect(entry).toBeInstanceOf(EntryRecord);
  return cache.applyRemote(origin, 1, seq, 'new', entry);
}

function cacheWith(rules: Partial<FilterRules> = {}, local: string[] = []) {
  const check = new PeerEntryCheck(compileFilter({ ...NONE, ...rules }, local));
  return { cache: new ExternalCache({ limit: 1000, peerCheck: check }), check };
}

const WAYS: Way[] = ['object', 'record'];

describe.each(WAYS)('peer entries as %s', (way) => {
  it.each([
    { name: 'protocol ignored', rules: { protocols: { ignore: ['tcp'] } }, e: flow(1), reason: 'protocol' },
    { name: 'address ignored', rules: { addresses: { ignore: ['10.99.0.0/24'] } }, e: flow(1), reason: 'address' },
    { name: 'outside an accept list', rules: { addresses: { accept: ['192.0.2.0/24'] } }, e: flow(1), reason: 'address' },
    { name: 'TCP state not accepted', rules: { tcpStates: { accept: ['SYN_SENT'] } }, e: flow(1), reason: 'tcp-state' },
    { name: 'loopback, always ignored', rules: {}, e: flow(1, { orig: { ...flow(1).orig, src: '127.0.0.5' } }), reason: 'address' },
    { name: 'a sync-link address, always ignored', rules: {}, local: ['10.99.250.1'], e: flow(1), reason: 'address' },
    { name: 'passes', rules: { protocols: { accept: ['tcp'] } }, e: flow(1), reason: undefined },
  ] as const)('the local filter: $name', ({ rules, e, reason, ...rest }) => {
    const local: string[] = 'local' in rest && rest.local !== undefined ? [...rest.local] : [];
    const { cache, check } = cacheWith(rules as Partial<FilterRules>, local);
    const r = apply(cache, way, e);
    expect(r).toBe(reason === undefined ? 'created' : 'filtered');
    expect(cache.size).toBe(reason === undefined ? 1 : 0);
    const filtered = { protocol: 0, address: 0, 'tcp-state': 0 };
    if (reason !== undefined) filtered[reason]++;
    expect(check.counters.filtered).toEqual(filtered);
    expect(cache.peerCounters).toBe(check.counters);
  });

  it('a cached key whose update the filter rejects is dropped', () => {
    const { cache } = cacheWith({ tcpStates: { ignore: ['TIME_WAIT'] } });
    expect(apply(cache, way, flow(1))).toBe('created');
    expect(apply(cache, way, flow(1, { protoinfo: { tcp: { state: 7 } } }), 2)).toBe('filtered');
    expect(cache.size).toBe(0);
    expect(cache.counters.deleted).toBe(1);
  });

  it("a key two origins hold: the filter rejecting one origin's update drops that origin's copy only", () => {
    const { cache } = cacheWith({ tcpStates: { ignore: ['TIME_WAIT'] } });
    const timeWait = flow(1, { protoinfo: { tcp: { state: 7 } } });
    expect(apply(cache, way, flow(1, { mark: 3 }), 1, 'fw3')).toBe('created');
    expect(apply(cache, way, flow(1, { mark: 2 }), 1, 'fw2')).toBe('updated');
    // fw3's copy is a shadow: rejecting fw3's next message leaves fw2's in the table.
    expect(apply(cache, way, timeWait, 2, 'fw3')).toBe('filtered');
    expect(cache.get(flow(1))).toMatchObject({ origin: 'fw2', seq: 1 });
    expect(cache.origins()).toEqual(new Map([['fw2', 1]]));
    // An origin holding no copy: nothing to drop.
    expect(apply(cache, way, timeWait, 1, 'fw4')).toBe('filtered');
    expect(cache.size).toBe(1);
    // fw3 again, then fw2's copy (the table's) rejected: fw3's comes back.
    expect(apply(cache, way, flow(1, { mark: 3 }), 3, 'fw3')).toBe('updated');
    expect(apply(cache, way, flow(1, { mark: 2 }), 2, 'fw2')).toBe('updated');
    expect(apply(cache, way, timeWait, 3, 'fw2')).toBe('filtered');
    expect(cache.get(flow(1))).toMatchObject({ origin: 'fw3', seq: 3 });
    expect(cache.get(flow(1))?.entry.mark).toBe(3);
    expect(cache.counters.deleted).toBe(2);
  });

  const B = IPS;
  it.each([
    { name: 'everything allowed', status: B.SEEN_REPLY | B.ASSURED | B.CONFIRMED | B.SRC_NAT | B.SRC_NAT_DONE, kept: -1 },
    { name: 'DNAT, seqadj, expected', status: B.DST_NAT | B.DST_NAT_DONE | B.SEQ_ADJUST | B.EXPECTED | B.CONFIRMED, kept: -1 },
    { name: 'FIXED_TIMEOUT', status: B.ASSURED | B.FIXED_TIMEOUT, kept: B.ASSURED },
    { name: 'DYING and TEMPLATE', status: B.CONFIRMED | B.DYING | B.TEMPLATE, kept: B.CONFIRMED },
    { name: 'OFFLOAD, HW_OFFLOAD, HELPER, NAT_CLASH', status: B.ASSURED | B.OFFLOAD | B.HW_OFFLOAD | B.HELPER | B.NAT_CLASH, kept: B.ASSURED },
    { name: 'bits above the known ones', status: (B.ASSURED | 0x8000_0000 | 0x10000) >>> 0, kept: B.ASSURED },
  ])('status allow-list: $name', ({ status, kept }) => {
    const { cache, check } = cacheWith();
    expect(apply(cache, way, flow(1, { status }))).toBe('created');
    const want = kept < 0 ? status : kept;
    expect(cache.get(flow(1))!.entry.status).toBe(want);
    expect(check.counters.statusStripped).toBe(kept < 0 ? 0 : 1);
    expect(want & ~PEER_STATUS_BITS).toBe(0);
  });

  it.each([
    { name: 'TCP at its cap', proto: IPPROTO.TCP, timeout: 432_000, stored: 432_000 },
    { name: 'TCP beyond it (the forged 8,589,934 s)', proto: IPPROTO.TCP, timeout: 8_589_934, stored: 432_000 },
    { name: 'TCP at u32 max', proto: IPPROTO.TCP, timeout: 0xffff_ffff, stored: 432_000 },
    // An hour for UDP is a timeout policy or sysctl, not an attack: kept, as conntrackd keeps it.
    { name: 'UDP at an hour', proto: IPPROTO.UDP, timeout: 3600, stored: 3600 },
    { name: 'UDP beyond 5 days', proto: IPPROTO.UDP, timeout: 432_001, stored: 432_000 },
    { name: 'ICMP beyond 5 days', proto: IPPROTO.ICMP, timeout: 1_000_000, stored: 432_000 },
    { name: 'GRE at a day', proto: IPPROTO.GRE, timeout: 86_400, stored: 86_400 },
  ])('timeout cap: $name', ({ proto, timeout, stored }) => {
    const { cache, check } = cacheWith();
    const e = flow(1, { timeout }, proto);
    expect(apply(cache, way, e)).toBe('created');
    expect(cache.get(e)!.entry.timeout).toBe(stored);
    expect(check.counters.timeoutCapped).toBe(stored < timeout ? 1 : 0);
  });

  it('the record handed in is never written (the decoder scratch or the caller’s)', () => {
    const { cache } = cacheWith();
    const e = flow(1, { timeout: 999_999, status: IPS.ASSURED | IPS.DYING });
    const entry = way === 'object' ? e : viaWire(e);
    const before = entry instanceof EntryRecord ? entry.entry() : { ...entry };
    cache.applyRemote('fw2', 1, 1, 'new', entry);
    expect(entry instanceof EntryRecord ? entry.entry() : entry).toEqual(before);
    expect(cache.get(e)!.entry).toMatchObject({ timeout: 432_000, status: IPS.ASSURED });
  });

  it('per-origin share: an origin at floor(limit / divisor) gets no new key, another still does', () => {
    let divisor = 2;
    // floor(11 / 2) = 5 each: the cache itself is never full here.
    const cache = new ExternalCache({ limit: 11, shareDivisor: () => divisor });
    for (let i = 0; i < 5; i++) expect(apply(cache, way, flow(i), i + 1, 'fw2')).toBe('created');
    expect(apply(cache, way, flow(5), 6, 'fw2')).toBe('refused');
    expect(cache.peerCounters.overShare).toBe(1);
    // Updates of its own keys still pass.
    expect(apply(cache, way, flow(0, { timeout: 200 }), 7, 'fw2')).toBe('updated');
    for (let i = 10; i < 15; i++) expect(apply(cache, way, flow(i), i, 'fw3')).toBe('created');
    expect(apply(cache, way, flow(15), 16, 'fw3')).toBe('refused');
    expect(cache.peerCounters.overShare).toBe(2);
    expect(Object.fromEntries(cache.origins())).toEqual({ fw2: 5, fw3: 5 });
    expect(cache.counters.refused).toBe(0);
    // One origin alone may take the whole limit.
    divisor = 1;
    const alone = new ExternalCache({ limit: 10, shareDivisor: () => divisor });
    for (let i = 0; i < 10; i++) expect(apply(alone, way, flow(i), i + 1, 'fw2')).toBe('created');
    expect(apply(alone, way, flow(10), 11, 'fw2')).toBe('refused');
    expect(alone.counters.refused).toBe(1);
    expect(alone.peerCounters.overShare).toBe(0);
  });
});

describe('peer expectations', () => {
  const exp = (i: number, helper = 'ftp'): ExpectEntry => {
    const m = flow(i);
    return {
      family: AF_INET,
      master: m.orig,
      tuple: { src: m.reply.src, dst: m.orig.src, proto: IPPROTO.TCP, sport: 0, dport: 20_000 + i },
      mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 255, sport: 0, dport: 0xffff },
      timeout: 300,
      helper,
    };
  };

  it('filter.expectations applies: one it rejects is not held, and a cached copy of its key goes', () => {
    const check = new PeerEntryCheck(compileFilter(NONE, []), { helpers: ['ftp'] });
    const cache = new ExternalCache({ limit: 100, peerCheck: check });
    expect(cache.applyRemoteExpect('fw2', 1, 1, 'new', exp(1, 'ftp'))).toBe('created');
    expect(cache.applyRemoteExpect('fw2', 1, 2, 'new', exp(2, 'sip'))).toBe('filtered');
    // The same key again, now with a helper the policy rejects: the cached ftp copy goes.
    expect(cache.applyRemoteExpect('fw2', 1, 3, 'new', exp(1, 'sip'))).toBe('filtered');
    expect(cache.expectSize).toBe(0);
    expect(check.counters.expectFiltered).toBe(2);
    const none = new ExternalCache({ limit: 100, peerCheck: new PeerEntryCheck(compileFilter(NONE, []), 'none') });
    expect(none.applyRemoteExpect('fw2', 1, 1, 'new', exp(1))).toBe('filtered');
  });

  it('per-origin share of the expectation limit, kept right through deletes and a takeover by another origin', () => {
    const cache = new ExternalCache({ limit: 100, expectLimit: 4, shareDivisor: () => 2 });
    expect(cache.applyRemoteExpect('fw2', 1, 1, 'new', exp(1))).toBe('created');
    expect(cache.applyRemoteExpect('fw2', 1, 2, 'new', exp(2))).toBe('created');
    expect(cache.applyRemoteExpect('fw2', 1, 3, 'new', exp(3))).toBe('refused');
    expect(cache.peerCounters.overShare).toBe(1);
    expect(cache.applyRemoteExpect('fw3', 1, 1, 'new', exp(4))).toBe('created');
    // fw3 takes fw2's key over: fw2 has room again, fw3 is at its share.
    expect(cache.applyRemoteExpect('fw3', 1, 2, 'new', exp(1))).toBe('updated');
    expect(cache.applyRemoteExpect('fw3', 1, 3, 'new', exp(5))).toBe('refused');
    expect(cache.applyRemoteExpect('fw2', 1, 4, 'new', exp(3))).toBe('created');
    expect(cache.applyRemoteExpect('fw3', 1, 4, 'delete', exp(4))).toBe('deleted');
    expect(cache.applyRemoteExpect('fw3', 1, 5, 'new', exp(5))).toBe('created');
    expect(cache.peerCounters.overShare).toBe(2);
  });
});

describe('timeouts', () => {
  it('caps every protocol at 5 days, the largest default timeout of any', () => {
    expect(PEER_MAX_TIMEOUT).toBe(432_000);
  });

  it.each([
    { timeout: 1000, ageMs: 0, want: 1000 },
    { timeout: 1000, ageMs: 999, want: 1000 },
    { timeout: 1000, ageMs: 300_000, want: 700 },
    { timeout: 1000, ageMs: 970_000, want: COMMIT_TIMEOUT_FLOOR },
    { timeout: 1000, ageMs: 5_000_000, want: COMMIT_TIMEOUT_FLOOR },
    { timeout: 10, ageMs: 60_000, want: 10 },
    { timeout: 300, ageMs: -5000, want: 300 },
  ])('commitTimeout($timeout s, $ageMs ms) = $want', ({ timeout, ageMs, want }) => {
    expect(commitTimeout(timeout, ageMs)).toBe(want);
  });
});

describe('agedForCommit', () => {
  const asRecord = (e: ConntrackEntry): EntryRecord => {
    const r = recordBuf(1);
    const x = writeEntryRecord(e, r, 0);
    if (x === false) throw new Error('not keyable');
    return new EntryRecord(r.w, r.b, 0, x);
  };
  it('with a scratch record: the view it was given is left as it was', () => {
    const view = asRecord(flow(1, { timeout: 1000 }));
    const scratch = asRecord(flow(2));
    const out = agedForCommit(view, 600_000, scratch);
    expect(out).toBe(scratch);
    expect((out as EntryRecord).entry()).toEqual({ ...flow(1), timeout: 400 });
    expect(view.entry().timeout).toBe(1000);
  });
  it('without one: the caller’s own copy is aged in place', () => {
    const own = asRecord(flow(1, { timeout: 1000 }));
    expect(agedForCommit(own, 100_000)).toBe(own);
    expect(own.entry().timeout).toBe(900);
  });
  it('objects are copied, an entry without a timeout is left alone', () => {
    const e = flow(1, { timeout: 100 });
    expect(agedForCommit(e, 200_000)).toEqual({ ...e, timeout: COMMIT_TIMEOUT_FLOOR });
    expect(e.timeout).toBe(100);
    const { timeout: _t, ...bare } = flow(1);
    expect(agedForCommit(bare, 200_000)).toBe(bare);
  });
});

describe('commit subtracts an entry’s age', () => {
  it.each(WAYS)('%s: the kernel gets the timeout less the time since the entry was received', async (way) => {
    const clock = { now: 5_000_000 };
    const kernel = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: kernel.openSocket });
    const cache = new ExternalCache({ limit: 100, now: () => clock.now });
    const young = flow(1, { timeout: 1000 });
    const old = flow(2, { timeout: 1000 });
    const expired = flow(3, { timeout: 100 });
    apply(cache, way, old, 1);
    apply(cache, way, expired, 2);
    clock.now += 400_000;
    apply(cache, way, young, 3);
    clock.now += 100_000;
    const r = await commitExternal(cache, link, { now: () => clock.now });
    expect(r).toMatchObject({ entries: 3, committed: 3, failed: 0 });
    const timeout = (e: ConntrackEntry) => kernel.table.get(entryKey(e))?.timeout;
    expect(timeout(young)).toBe(900);
    expect(timeout(old)).toBe(500);
    expect(timeout(expired)).toBe(COMMIT_TIMEOUT_FLOOR);
    // The cache keeps the timeout as received.
    expect(cache.get(old)!.entry.timeout).toBe(1000);
    link.close();
  });

  it('an entry kept whole gets its age subtracted without the cache’s copy changing', async () => {
    const clock = { now: 1_000_000 };
    const kernel = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: kernel.openSocket });
    const cache = new ExternalCache({ limit: 100, now: () => clock.now });
    // A reply protocol other than the original's cannot be held in the words.
    const whole = flow(1, { timeout: 600, reply: { ...flow(1).reply, proto: IPPROTO.UDP } });
    cache.applyRemote('fw2', 1, 1, 'new', whole);
    clock.now += 200_000;
    const sent: number[] = [];
    await commitExternal(
      cache,
      {
        batchOf: (items, o) => {
          for (let i = 0; i < items.length; i++) {
            const it = items.entry(i);
            if (it === null) continue;
            sent.push((it instanceof EntryRecord ? it.entry() : it).timeout ?? -1);
          }
          return link.batchOf(items, o);
        },
        createExpectation: (e) => link.createExpectation(e),
      },
      { now: () => clock.now },
    );
    expect(sent[0]).toBe(400);
    expect(cache.get(whole)!.entry.timeout).toBe(600);
    link.close();
  });
});
