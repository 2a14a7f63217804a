import { describe, expect, it } from 'vitest';
import {
  ACCEPT_ALL,
  compileFilter,
  expectationPasses,
  type FilterRules,
  kernelEventRules,
  PrefixSet,
  STRIP_FIELDS,
  stripAttributes,
} from '../../src/cache/filter.js';
import type { StrippableAttribute } from '../../src/cache/strip.js';
import { STRIPPABLE_ATTRIBUTES } from '../../src/config/schema.js';
import { AF_INET, AF_INET6, IPPROTO, TCP_STATES, type TcpStateName } from '../../src/kernel/constants.js';
import { REC_WORDS, recordBuf, writeEntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';

const ESTABLISHED = TCP_STATES.indexOf('ESTABLISHED');
const SYN_SENT = TCP_STATES.indexOf('SYN_SENT');
const TIME_WAIT = TCP_STATES.indexOf('TIME_WAIT');

/** A flow from src to dst; `replySrc` stands in for a DNAT target. */
function flow(
  src: string,
  dst: string,
  opts: { proto?: number; state?: number; replySrc?: string; noProtoinfo?: boolean } = {},
): ConntrackEntry {
  const proto = opts.proto ?? IPPROTO.TCP;
  const family = src.includes(':') ? AF_INET6 : AF_INET;
  const ports = proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6 ? {} : { sport: 40000, dport: 443 };
  const rports = proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6 ? {} : { sport: 443, dport: 40000 };
  const e: ConntrackEntry = {
    family,
    orig: { src, dst, proto, ...ports },
    reply: { src: opts.replySrc ?? dst, dst: src, proto, ...rports },
    status: 14,
    timeout: 120,
  };
  if (proto === IPPROTO.TCP && !opts.noProtoinfo) e.protoinfo = { tcp: { state: opts.state ?? ESTABLISHED } };
  return e;
}

const NONE: FilterRules = { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } };

function rules(over: Partial<FilterRules>): FilterRules {
  return { ...NONE, ...over };
}

describe('compileFilter: protocols', () => {
  it('passes everything but loopback with an empty configuration', () => {
    const f = compileFilter(NONE, []);
    expect(f.check(flow('10.0.0.1', '10.0.0.2'))).toEqual({ pass: true });
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.UDP }))).toEqual({ pass: true });
    expect(f.check(flow('2001:db8::1', '2001:db8::2', { proto: IPPROTO.ICMPV6 }))).toEqual({ pass: true });
  });

  it('accept list: only the listed protocols pass', () => {
    const f = compileFilter(rules({ protocols: { accept: ['tcp', 'sctp'] } }), []);
    expect(f.check(flow('10.0.0.1', '10.0.0.2')).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.SCTP })).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.UDP }))).toEqual({ pass: false, reason: 'protocol' });
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.GRE }))).toEqual({
      pass: false,
      reason: 'protocol',
    });
    // A protocol ctsyncd has no name for is not on the accept list either.
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: 250 })).pass).toBe(false);
  });

  it('ignore list: the listed protocols are rejected, the rest pass', () => {
    const f = compileFilter(rules({ protocols: { ignore: ['udp', 'icmp', 'icmpv6', 'udplite', 'dccp'] } }), []);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.UDP }))).toEqual({ pass: false, reason: 'protocol' });
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.ICMP })).pass).toBe(false);
    expect(f.check(flow('2001:db8::1', '2001:db8::2', { proto: IPPROTO.ICMPV6 })).pass).toBe(false);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.UDPLITE })).pass).toBe(false);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.DCCP })).pass).toBe(false);
    expect(f.check(flow('10.0.0.1', '10.0.0.2')).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.GRE })).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: 250 })).pass).toBe(true);
  });
});

describe('compileFilter: addresses', () => {
  it('ignore list matches IPv4 hosts and prefixes of any length', () => {
    const f = compileFilter(rules({ addresses: { ignore: ['192.0.2.7', '198.51.100.0/24', '10.0.0.0/8'] } }), []);
    expect(f.check(flow('192.0.2.7', '203.0.113.1'))).toEqual({ pass: false, reason: 'address' });
    expect(f.check(flow('192.0.2.8', '203.0.113.1')).pass).toBe(true);
    expect(f.check(flow('198.51.100.255', '203.0.113.1')).pass).toBe(false);
    expect(f.check(flow('198.51.101.0', '203.0.113.1')).pass).toBe(true);
    expect(f.check(flow('10.255.255.255', '203.0.113.1')).pass).toBe(false);
    expect(f.check(flow('11.0.0.0', '203.0.113.1')).pass).toBe(true);
  });

  it('handles /0 and /32 edge lengths', () => {
    const all = compileFilter(rules({ addresses: { ignore: ['0.0.0.0/0'] } }), []);
    expect(all.check(flow('203.0.113.9', '198.51.100.1')).pass).toBe(false);
    expect(all.check(flow('255.255.255.255', '198.51.100.1')).pass).toBe(false);
    // An IPv4 /0 says nothing about IPv6 flows.
    expect(all.check(flow('2001:db8::1', '2001:db8::2')).pass).toBe(true);
    const host = compileFilter(rules({ addresses: { accept: ['203.0.113.9/32'] } }), []);
    expect(host.check(flow('203.0.113.9', '198.51.100.1')).pass).toBe(true);
    expect(host.check(flow('203.0.113.10', '198.51.100.1')).pass).toBe(false);
  });

  it('accept list admits only flows with a listed source', () => {
    const f = compileFilter(rules({ addresses: { accept: ['192.168.0.0/16', '2001:db8:1::/48'] } }), []);
    expect(f.check(flow('192.168.4.4', '203.0.113.1')).pass).toBe(true);
    expect(f.check(flow('172.16.0.1', '203.0.113.1'))).toEqual({ pass: false, reason: 'address' });
    expect(f.check(flow('2001:db8:1:ffff::1', '2001:db8:9::1')).pass).toBe(true);
    expect(f.check(flow('2001:db8:2::1', '2001:db8:9::1')).pass).toBe(false);
  });

  it('matches IPv6 prefixes that end inside a 32-bit word and across words', () => {
    const f = compileFilter(
      rules({ addresses: { ignore: ['2001:db8:abcd:1200::/56', 'fd00::/7', '2001:db8::42'] } }),
      [],
    );
    expect(f.check(flow('2001:db8:abcd:12ff::1', '2001:db8::9')).pass).toBe(false);
    expect(f.check(flow('2001:db8:abcd:1300::1', '2001:db8::9')).pass).toBe(true);
    expect(f.check(flow('fc00::1', '2001:db8::9')).pass).toBe(false);
    expect(f.check(flow('fdff:ffff::1', '2001:db8::9')).pass).toBe(false);
    expect(f.check(flow('fe00::1', '2001:db8::9')).pass).toBe(true);
    expect(f.check(flow('2001:db8::42', '2001:db8::9')).pass).toBe(false);
    expect(f.check(flow('2001:db8::43', '2001:db8::9')).pass).toBe(true);
    // The same address spelt uncompressed still matches: matching is numeric.
    expect(f.check(flow('2001:0db8:0000:0000:0000:0000:0000:0042', '2001:db8::9')).pass).toBe(false);
  });

  it('matches on the original source OR the reply source, never on destinations', () => {
    const f = compileFilter(rules({ addresses: { ignore: ['192.0.2.0/24'] } }), []);
    // Original source listed.
    expect(f.check(flow('192.0.2.5', '203.0.113.1')).pass).toBe(false);
    // Only the original destination listed: it is the reply source, so it matches too.
    expect(f.check(flow('203.0.113.1', '192.0.2.5')).pass).toBe(false);
    // DNAT: the original destination is listed but the reply comes from elsewhere,
    // and neither source is listed.
    expect(f.check(flow('203.0.113.1', '192.0.2.5', { replySrc: '198.51.100.80' })).pass).toBe(true);
    // DNAT to a listed server: the reply source matches.
    expect(f.check(flow('203.0.113.1', '198.51.100.80', { replySrc: '192.0.2.80' })).pass).toBe(false);

    const a = compileFilter(rules({ addresses: { accept: ['192.0.2.0/24'] } }), []);
    expect(a.check(flow('203.0.113.1', '198.51.100.80', { replySrc: '192.0.2.80' })).pass).toBe(true);
    expect(a.check(flow('203.0.113.1', '198.51.100.80')).pass).toBe(false);
  });

  it('always ignores loopback, IPv4 and IPv6, even under an accept list', () => {
    const plain = compileFilter(NONE, []);
    expect(plain.check(flow('127.0.0.1', '127.0.0.1'))).toEqual({ pass: false, reason: 'address' });
    expect(plain.check(flow('127.45.6.7', '10.0.0.1')).pass).toBe(false);
    expect(plain.check(flow('::1', '::1'))).toEqual({ pass: false, reason: 'address' });
    const accepting = compileFilter(rules({ addresses: { accept: ['0.0.0.0/0', '::/0'] } }), []);
    expect(accepting.check(flow('127.0.0.1', '127.0.0.1')).pass).toBe(false);
    expect(accepting.check(flow('::1', '::1')).pass).toBe(false);
    expect(accepting.check(flow('10.0.0.1', '10.0.0.2')).pass).toBe(true);
  });

  it('always ignores the sync-link addresses in both directions, even under an accept list', () => {
    const local = ['192.168.100.1', 'fd00:5::1'];
    for (const cfg of [NONE, rules({ addresses: { accept: ['192.168.100.0/24', 'fd00:5::/64'] } })]) {
      const f = compileFilter(cfg, local);
      // This node talking to its peer, and the peer talking to this node.
      expect(f.check(flow('192.168.100.1', '192.168.100.2', { proto: IPPROTO.UDP }))).toEqual({
        pass: false,
        reason: 'address',
      });
      expect(f.check(flow('192.168.100.2', '192.168.100.1', { proto: IPPROTO.UDP })).pass).toBe(false);
      expect(f.check(flow('fd00:5::2', 'fd00:5::1', { proto: IPPROTO.UDP })).pass).toBe(false);
      // Two other hosts on the sync segment are not this node's business but pass the filter.
      expect(f.check(flow('192.168.100.2', '192.168.100.3', { proto: IPPROTO.UDP })).pass).toBe(true);
    }
  });

  it('accepts prefixes in the local address list and rejects garbage', () => {
    const f = compileFilter(NONE, ['198.51.100.0/30']);
    expect(f.check(flow('198.51.100.3', '10.0.0.1')).pass).toBe(false);
    expect(f.check(flow('198.51.100.4', '10.0.0.1')).pass).toBe(true);
    expect(() => compileFilter(NONE, ['not-an-address'])).toThrow(RangeError);
    expect(() => compileFilter(NONE, ['10.0.0.0/33'])).toThrow(RangeError);
    expect(() => compileFilter(NONE, ['2001:db8::/129'])).toThrow(RangeError);
    expect(() => compileFilter(NONE, ['10.0.0.0/'])).toThrow(RangeError);
  });

  it('treats an unparsable entry address as matching nothing', () => {
    const ign = compileFilter(rules({ addresses: { ignore: ['0.0.0.0/0'] } }), []);
    expect(ign.check(flow('10.0.0.300', '10.0.0.1', { replySrc: 'bogus' })).pass).toBe(true);
    const acc = compileFilter(rules({ addresses: { accept: ['0.0.0.0/0'] } }), []);
    expect(acc.check(flow('10.0.0.300', '10.0.0.1', { replySrc: 'bogus' })).pass).toBe(false);
  });
});

describe('compileFilter: TCP states', () => {
  it('accept list passes only the listed states', () => {
    const f = compileFilter(rules({ tcpStates: { accept: ['ESTABLISHED', 'TIME_WAIT'] } }), []);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: ESTABLISHED })).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: TIME_WAIT })).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: SYN_SENT }))).toEqual({ pass: false, reason: 'tcp-state' });
    // A state number beyond the table is not on the list.
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: 42 })).pass).toBe(false);
  });

  it('ignore list rejects the listed states', () => {
    const f = compileFilter(rules({ tcpStates: { ignore: ['SYN_SENT', 'SYN_RECV'] } }), []);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: SYN_SENT }))).toEqual({ pass: false, reason: 'tcp-state' });
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: ESTABLISHED })).pass).toBe(true);
  });

  it('does not apply to other protocols, even those that have states', () => {
    const f = compileFilter(rules({ tcpStates: { accept: ['ESTABLISHED'] } }), []);
    const sctp = flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.SCTP });
    sctp.protoinfo = { sctp: { state: 1 } };
    expect(f.check(sctp).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.UDP })).pass).toBe(true);
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.ICMP })).pass).toBe(true);
  });

  it('passes TCP without state information only when there is no state rule', () => {
    const partial = flow('10.0.0.1', '10.0.0.2', { noProtoinfo: true });
    expect(compileFilter(NONE, []).check(partial).pass).toBe(true);
    expect(compileFilter(rules({ tcpStates: { accept: ['ESTABLISHED'] } }), []).check(partial)).toEqual({
      pass: false,
      reason: 'tcp-state',
    });
    expect(compileFilter(rules({ tcpStates: { ignore: ['SYN_SENT'] } }), []).check(partial).pass).toBe(false);
  });

  it('reports the first failing rule in the order protocol, address, TCP state', () => {
    const f = compileFilter(
      {
        protocols: { accept: ['tcp'] },
        addresses: { ignore: ['10.0.0.0/8'] },
        tcpStates: { accept: ['ESTABLISHED'] },
      },
      [],
    );
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { proto: IPPROTO.UDP }))).toEqual({ pass: false, reason: 'protocol' });
    expect(f.check(flow('10.0.0.1', '10.0.0.2', { state: SYN_SENT }))).toEqual({ pass: false, reason: 'address' });
    expect(f.check(flow('11.0.0.1', '11.0.0.2', { state: SYN_SENT }))).toEqual({ pass: false, reason: 'tcp-state' });
    expect(f.check(flow('11.0.0.1', '11.0.0.2'))).toEqual({ pass: true });
  });

  it('returns shared verdict objects (no allocation per check)', () => {
    const f = compileFilter(NONE, []);
    expect(f.check(flow('10.0.0.1', '10.0.0.2'))).toBe(f.check(flow('10.0.0.3', '10.0.0.4')));
    expect(f.check(flow('127.0.0.1', '10.0.0.2'))).toBe(f.check(flow('::1', '::1')));
    expect(ACCEPT_ALL.check(flow('127.0.0.1', '127.0.0.1')).pass).toBe(true);
  });
});

describe('PrefixSet', () => {
  it('clears host bits of a prefix it is given', () => {
    const s = new PrefixSet();
    s.add('10.1.2.3/16');
    expect(s.matchAddress(AF_INET, '10.1.200.200')).toBe(true);
    expect(s.matchAddress(AF_INET, '10.2.0.0')).toBe(false);
    expect(s.matchAddress(AF_INET6, '::1')).toBe(false);
    expect(s.size).toBe(1);
  });

  it('matches an IPv4-mapped IPv6 prefix only for IPv6 entries', () => {
    const s = new PrefixSet();
    s.add('::ffff:0:0/96');
    expect(s.matchAddress(AF_INET6, '::ffff:192.0.2.1')).toBe(true);
    expect(s.matchAddress(AF_INET, '192.0.2.1')).toBe(false);
  });
});

describe('stripAttributes', () => {
  it('knows exactly the attribute names the config schema accepts', () => {
    expect(Object.keys(STRIP_FIELDS).sort()).toEqual([...STRIPPABLE_ATTRIBUTES].sort());
  });

  const full: ConntrackEntry = {
    ...flow('10.0.0.1', '10.0.0.2'),
    mark: 7,
    labels: Buffer.alloc(16, 1),
    labelsMask: Buffer.alloc(16, 0xff),
    helper: 'ftp',
    secmark: 3,
    secctx: 'system_u:object_r:x:s0',
    countersOrig: { packets: 1n, bytes: 2n },
    countersReply: { packets: 3n, bytes: 4n },
    timestamp: { start: 5n },
    seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
    seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
    synproxy: { isn: 1, its: 2, tsoff: 3 },
    zone: 9,
  };

  it('returns the same object for an empty list', () => {
    expect(stripAttributes(full, [])).toBe(full);
  });

  it('returns the same object when the entry has none of the listed attributes', () => {
    const plain = flow('10.0.0.1', '10.0.0.2');
    expect(stripAttributes(plain, ['labels', 'mark', 'helper'])).toBe(plain);
  });

  it.each<[StrippableAttribute, (keyof ConntrackEntry)[]]>([
    ['labels', ['labels', 'labelsMask']],
    ['helper', ['helper']],
    ['mark', ['mark']],
    ['secmark', ['secmark']],
    ['secctx', ['secctx']],
    ['counters', ['countersOrig', 'countersReply']],
    ['timestamp', ['timestamp']],
    ['seqadj', ['seqAdjOrig', 'seqAdjReply']],
    ['synproxy', ['synproxy']],
  ])('%s removes %j and nothing else', (attr, fields) => {
    const before = Object.entries(full);
    const out = stripAttributes(full, [attr]);
    expect(out).not.toBe(full);
    for (const f of fields) expect(Object.hasOwn(out, f)).toBe(false);
    const expected: Record<string, unknown> = { ...full };
    for (const f of fields) delete expected[f];
    expect(out).toStrictEqual(expected);
    // The input is untouched.
    expect(Object.entries(full)).toStrictEqual(before);
  });

  it('strips several attributes at once and keeps what replication needs', () => {
    const out = stripAttributes(full, ['labels', 'mark', 'helper', 'secctx', 'secmark']);
    expect(Object.keys(out).sort()).toEqual(
      [
        'family',
        'orig',
        'reply',
        'status',
        'timeout',
        'protoinfo',
        'countersOrig',
        'countersReply',
        'timestamp',
        'seqAdjOrig',
        'seqAdjReply',
        'synproxy',
        'zone',
      ].sort(),
    );
    expect(out.orig).toBe(full.orig);
  });
});

describe('expectationPasses', () => {
  it.each([
    { policy: 'all' as const, helper: undefined, pass: true },
    { policy: 'all' as const, helper: 'ftp', pass: true },
    { policy: 'none' as const, helper: 'ftp', pass: false },
    { policy: { helpers: ['ftp'] }, helper: 'ftp', pass: true },
    { policy: { helpers: ['ftp'] }, helper: undefined, pass: false },
    { policy: { helpers: ['SIP'] }, helper: 'sip-5060', pass: true },
    { policy: { helpers: ['sip'] }, helper: 'SIP', pass: true },
    { policy: { helpers: ['ftp', 'sip'] }, helper: 'sip', pass: true },
    { policy: { helpers: ['ftp'] }, helper: 'tftp', pass: false },
    { policy: { helpers: [] }, helper: 'ftp', pass: false },
  ])('$policy with helper $helper: $pass', ({ policy, helper, pass }) => {
    expect(expectationPasses(policy, helper === undefined ? {} : { helper })).toBe(pass);
  });
});

describe('PrefixSet: size, families, exact IPv6 words', () => {
  it('counts each prefix once, hosts in a set, and says which families it holds', () => {
    const s = new PrefixSet();
    expect([s.size, s.hasV4, s.hasV6]).toEqual([0, false, false]);
    s.add('2001:db8::/32');
    expect([s.size, s.hasV4, s.hasV6]).toEqual([1, false, true]);
    s.add('2001:db8:1::/48');
    s.add('10.99.0.1');
    s.add('10.99.0.1/32');
    expect([s.size, s.hasV4, s.hasV6]).toEqual([3, true, true]);
    s.add('10.99.0.0/16');
    expect(s.size).toBe(4);
    const v4 = new PrefixSet();
    v4.add('10.99.1.0/24');
    expect([v4.size, v4.hasV4, v4.hasV6]).toEqual([1, true, false]);
  });

  it('refuses what is not an address or prefix, naming it', () => {
    expect(() => new PrefixSet().add('10.99.0.300')).toThrow(new RangeError('not an IPv4 or IPv6 address or prefix: 10.99.0.300'));
  });

  it.each([
    ['word 0', '2002:db8:0:0:5::1'],
    ['word 1', '2001:db9:0:0:5::1'],
    ['word 2', '2001:db8:0:0:6::1'],
    ['word 3', '2001:db8:0:0:5::2'],
  ])('a /128 does not match an address differing only in %s', (_w, addr) => {
    const s = new PrefixSet();
    s.add('2001:db8::5:0:0:1/128');
    expect(s.matchAddress(AF_INET6, '2001:db8::5:0:0:1')).toBe(true);
    expect(s.matchAddress(AF_INET6, addr)).toBe(false);
  });
});

describe('compileFilter: unknown names', () => {
  it('refuses an unknown protocol or TCP state by name, and takes the first state of the table', () => {
    expect(() => compileFilter(rules({ protocols: { accept: ['nope'] } }))).toThrow(new RangeError('unknown protocol nope'));
    expect(() => compileFilter(rules({ tcpStates: { ignore: ['NOPE' as TcpStateName] } }))).toThrow(
      new RangeError('unknown TCP state NOPE'),
    );
    const f = compileFilter(rules({ tcpStates: { accept: [TCP_STATES[0]!] } }));
    expect(f.check(flow('10.99.0.1', '10.99.0.2', { state: 0 }))).toEqual({ pass: true });
    expect(f.check(flow('10.99.0.1', '10.99.0.2', { state: ESTABLISHED }))).toEqual({ pass: false, reason: 'tcp-state' });
  });
});

describe('checkRecord: the verdict of check(), read from the record in place', () => {
  const A = { pass: true };
  const P = { pass: false, reason: 'protocol' };
  const ADDR = { pass: false, reason: 'address' };
  const ST = { pass: false, reason: 'tcp-state' };
  const v6Ignore = rules({ addresses: { ignore: ['2001:db8::5:0:0:1/128', '2001:db8:77::/48'] } });
  const v6Accept = rules({ addresses: { accept: ['2001:db8::5:0:0:1/128', '2001:db8:77::/48'] } });
  const v4Ignore = rules({ addresses: { ignore: ['10.98.0.0/16'] } });
  const v4Accept = rules({ addresses: { accept: ['10.98.0.0/16'] } });
  const onlyV6Accept = rules({ addresses: { accept: ['2001:db8:77::/48'] } });
  const onlyV4Accept = rules({ addresses: { accept: ['10.98.0.0/16'] } });
  const states = rules({ tcpStates: { accept: ['ESTABLISHED'] } });
  const udpOnly = rules({ protocols: { accept: ['udp'] } });
  it.each([
    // IPv6: each of the four words of the source, original or reply side.
    { n: 'v6 ignore: exact host as original source', cfg: v6Ignore, e: flow('2001:db8::5:0:0:1', '2001:db8:9::1'), v: ADDR },
    { n: 'v6 ignore: exact host as reply source', cfg: v6Ignore, e: flow('2001:db8:9::1', '2001:db8:9::2', { replySrc: '2001:db8::5:0:0:1' }), v: ADDR },
    { n: 'v6 ignore: word 1 differs', cfg: v6Ignore, e: flow('2001:db9::5:0:0:1', '2001:db8:9::1'), v: A },
    { n: 'v6 ignore: word 2 differs', cfg: v6Ignore, e: flow('2001:db8::6:0:0:1', '2001:db8:9::1'), v: A },
    { n: 'v6 ignore: word 3 differs', cfg: v6Ignore, e: flow('2001:db8::5:0:0:2', '2001:db8:9::1'), v: A },
    { n: 'v6 ignore: prefix, reply source', cfg: v6Ignore, e: flow('2001:db8:9::1', '2001:db8:9::2', { replySrc: '2001:db8:77:1::9' }), v: ADDR },
    { n: 'v6 accept: original source', cfg: v6Accept, e: flow('2001:db8::5:0:0:1', '2001:db8:9::1'), v: A },
    { n: 'v6 accept: reply source only', cfg: v6Accept, e: flow('2001:db8:9::1', '2001:db8:9::2', { replySrc: '2001:db8:77::3' }), v: A },
    { n: 'v6 accept: neither', cfg: v6Accept, e: flow('2001:db8::5:0:0:2', '2001:db8:9::1'), v: ADDR },
    { n: 'v6 accept list of v6 only: a v4 flow', cfg: onlyV6Accept, e: flow('10.98.0.1', '10.99.0.2'), v: ADDR },
    { n: 'v4 accept list of v4 only: a v6 flow', cfg: onlyV4Accept, e: flow('2001:db8:77::1', '2001:db8:9::1'), v: ADDR },
    { n: 'v4 ignore: reply source', cfg: v4Ignore, e: flow('10.99.0.1', '10.99.0.2', { replySrc: '10.98.3.4' }), v: ADDR },
    { n: 'v4 ignore: neither', cfg: v4Ignore, e: flow('10.99.0.1', '10.99.0.2'), v: A },
    { n: 'v4 accept: reply source only', cfg: v4Accept, e: flow('10.99.0.1', '10.99.0.2', { replySrc: '10.98.3.4' }), v: A },
    { n: 'v4 accept: original source only', cfg: v4Accept, e: flow('10.98.0.1', '10.99.0.2'), v: A },
    { n: 'v4 accept: neither', cfg: v4Accept, e: flow('10.99.0.1', '10.99.0.2'), v: ADDR },
    { n: 'v6 loopback', cfg: NONE, e: flow('::1', '2001:db8:9::1'), v: ADDR },
    { n: 'protocol', cfg: udpOnly, e: flow('10.99.0.1', '10.99.0.2'), v: P },
    { n: 'protocol passes', cfg: udpOnly, e: flow('10.99.0.1', '10.99.0.2', { proto: IPPROTO.UDP }), v: A },
    { n: 'state passes', cfg: states, e: flow('10.99.0.1', '10.99.0.2'), v: A },
    { n: 'state fails', cfg: states, e: flow('10.99.0.1', '10.99.0.2', { state: SYN_SENT }), v: ST },
    { n: 'no state under a state rule', cfg: states, e: flow('10.99.0.1', '10.99.0.2', { noProtoinfo: true }), v: ST },
    { n: 'no state without a state rule', cfg: NONE, e: flow('10.99.0.1', '10.99.0.2', { noProtoinfo: true }), v: A },
    { n: 'state rule, UDP', cfg: states, e: flow('10.99.0.1', '10.99.0.2', { proto: IPPROTO.UDP }), v: A },
    {
      n: 'TCP state in the extras (flags wider than a byte)',
      cfg: states,
      e: { ...flow('10.99.0.1', '10.99.0.2'), protoinfo: { tcp: { state: ESTABLISHED, flagsOrig: { flags: 0x1ff, mask: 0x1ff } } } },
      v: A,
    },
    {
      n: 'kept whole (helper, labels)',
      cfg: udpOnly,
      e: { ...flow('10.99.0.1', '10.99.0.2'), helper: 'ftp', labels: Buffer.alloc(16, 1), secctx: 'x' },
      v: P,
    },
  ])('$n', ({ cfg, e, v }) => {
    const f = compileFilter(cfg);
    const r = recordBuf(2);
    // At a record other than the first: offsets count from `at`.
    const x = writeEntryRecord(e, r, REC_WORDS);
    expect(x).not.toBe(false);
    expect(f.check(e)).toEqual(v);
    expect(f.checkRecord(r, REC_WORDS, x === false ? undefined : x)).toEqual(v);
  });
});

describe('kernelEventRules', () => {
  it('gives the event filter the same lists, loopback and sync-link addresses on the ignore side', () => {
    expect(
      kernelEventRules(
        { protocols: { accept: ['tcp', 'udp'] }, addresses: { ignore: ['10.98.0.0/16'] }, tcpStates: { ignore: ['TIME_WAIT', 'NONE'] } },
        ['10.99.0.4'],
      ),
    ).toEqual({
      protocols: { accept: true, numbers: [IPPROTO.TCP, IPPROTO.UDP] },
      ignoreSources: ['127.0.0.0/8', '::1/128', '10.99.0.4', '10.98.0.0/16'],
      tcpStates: { accept: false, states: [TIME_WAIT, 0] },
    });
    expect(
      kernelEventRules({ protocols: { ignore: ['icmp'] }, addresses: { accept: ['10.98.0.0/16'] }, tcpStates: { accept: ['ESTABLISHED'] } }),
    ).toEqual({
      protocols: { accept: false, numbers: [IPPROTO.ICMP] },
      ignoreSources: ['127.0.0.0/8', '::1/128'],
      acceptSources: ['10.98.0.0/16'],
      tcpStates: { accept: true, states: [ESTABLISHED] },
    });
  });

  it('refuses unknown names as compileFilter does', () => {
    expect(() => kernelEventRules(rules({ protocols: { ignore: ['nope'] } }))).toThrow(new RangeError('unknown protocol nope'));
    expect(() => kernelEventRules(rules({ tcpStates: { ignore: ['NOPE' as TcpStateName] } }))).toThrow(
      new RangeError('unknown TCP state NOPE'),
    );
  });
});
