import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { canonicalIPv6, formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../../src/common/address.js';
import {
  NLA_F_NESTED,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
} from '../../src/kernel/constants.js';
import {
  AttrIterator,
  beU64,
  type DecodeErrorCode,
  decodeAttrTree,
  decodeNlError,
  MAX_NEST_DEPTH,
  NlWriter,
  parseNetlink,
} from '../../src/kernel/netlink-codec.js';
import { attr } from './nl-bytes.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/ctnetlink/', import.meta.url));

function fixture(name: string): Buffer {
  return Buffer.from(readFileSync(`${FIXTURES}${name}.hex`, 'utf8').replace(/\s+/g, ''), 'hex');
}

function meta(name: string): { expect: { errno: number } } {
  return JSON.parse(readFileSync(`${FIXTURES}${name}.json`, 'utf8'));
}

/** A raw nlmsghdr (host order = little-endian on the machines we run on) followed by `body`. */
function nlmsg(type: number, body: number[] | Buffer, opts: { len?: number; flags?: number; seq?: number } = {}) {
  const payload = Buffer.from(body);
  const b = Buffer.alloc(16 + payload.length);
  b.writeUInt32LE(opts.len ?? b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(opts.flags ?? 0, 6);
  b.writeUInt32LE(opts.seq ?? 0, 8);
  payload.copy(b, 16);
  return b;
}

const nla = attr;

describe('parseNetlink', () => {
  it('splits a real dump batch into its entries and NLMSG_DONE', () => {
    const batch = fixture('dump-batch');
    const { messages, error } = parseNetlink(batch);
    expect(error).toBeUndefined();
    expect(messages.map((m) => m.type)).toEqual([0x100, 0x100, 0x100, NLMSG_DONE]);
    for (const m of messages) expect(m.flags & NLM_F_MULTI).toBe(NLM_F_MULTI);
    // All replies of one dump share its sequence number and our port id.
    expect(new Set(messages.map((m) => m.seq)).size).toBe(1);
    expect(new Set(messages.map((m) => m.pid)).size).toBe(1);
    expect(messages[0]!.pid).not.toBe(0);
    const total = messages.reduce((n, m) => n + 16 + m.payload.length, 0);
    expect(total).toBe(batch.length);
  });

  it('returns payload views into the buffer, not copies', () => {
    const batch = fixture('dump-batch');
    const { messages } = parseNetlink(batch);
    const p = messages[0]!.payload;
    expect(p.buffer).toBe(batch.buffer);
    expect(p.byteOffset).toBe(batch.byteOffset + 16);
  });

  it('honours start/end and reports offsets relative to the whole buffer', () => {
    const a = nlmsg(0x100, [2, 0, 0, 0]);
    const b = nlmsg(NLMSG_DONE, [0, 0, 0, 0]);
    const buf = Buffer.concat([Buffer.alloc(8, 0xee), a, b, Buffer.alloc(5, 0xee)]);
    const ok = parseNetlink(buf, 8, 8 + a.length + b.length);
    expect(ok.error).toBeUndefined();
    expect(ok.messages.map((m) => m.type)).toEqual([0x100, NLMSG_DONE]);
    const bad = parseNetlink(buf, 8, buf.length);
    expect(bad.messages).toHaveLength(2);
    expect(bad.error).toMatchObject({ code: 'ETRUNC_HEADER', offset: 8 + a.length + b.length });
  });

  it('accepts an empty range and a final message without alignment padding', () => {
    expect(parseNetlink(Buffer.alloc(0))).toEqual({ messages: [] });
    const m = nlmsg(0x100, [2, 0, 0, 0, 5, 0, 7, 0, 9]); // 25 bytes, not a multiple of 4
    const r = parseNetlink(m);
    expect(r.error).toBeUndefined();
    expect(r.messages[0]!.payload.length).toBe(9);
  });

  it('rejects a range outside the buffer', () => {
    expect(parseNetlink(Buffer.alloc(16), 0, 17).error?.code).toBe('EMSG_LEN');
    expect(parseNetlink(Buffer.alloc(16), 8, 4).error?.code).toBe('EMSG_LEN');
  });

  const good = nlmsg(0x100, [2, 0, 0, 0]);
  const malformed: Array<[string, Buffer, DecodeErrorCode, number, number]> = [
    ['truncated header', good.subarray(0, 10), 'ETRUNC_HEADER', 0, 0],
    ['nlmsg_len 0', nlmsg(0x100, [], { len: 0 }), 'EZERO_LEN', 0, 0],
    ['nlmsg_len < 16', nlmsg(0x100, [0, 0, 0, 0], { len: 12 }), 'EMSG_LEN', 0, 0],
    ['nlmsg_len beyond the buffer', nlmsg(0x100, [0, 0, 0, 0], { len: 64 }), 'EMSG_LEN', 0, 0],
    ['second message truncated', Buffer.concat([good, good.subarray(0, 10)]), 'ETRUNC_HEADER', 20, 1],
    ['second header whole, body cut', Buffer.concat([good, good.subarray(0, 18)]), 'EMSG_LEN', 20, 1],
    ['second message overlong', Buffer.concat([good, nlmsg(3, [0, 0, 0, 0], { len: 21 })]), 'EMSG_LEN', 20, 1],
  ];
  it.each(malformed)('%s -> %s', (_name, buf, code, offset, before) => {
    const r = parseNetlink(buf);
    expect(r.error?.code).toBe(code);
    expect(r.error?.offset).toBe(offset);
    expect(r.error?.reason).toBeTruthy();
    expect(r.messages).toHaveLength(before);
  });
});

describe('decodeNlError', () => {
  const payloadOf = (name: string) => {
    const { messages } = parseNetlink(fixture(name));
    const m = messages[0]!;
    expect(m.type).toBe(NLMSG_ERROR);
    return m;
  };

  it('reads an ACK (errno 0) with the request header it answers', () => {
    const m = payloadOf('ack');
    expect(m.flags & NLM_F_CAPPED).toBe(NLM_F_CAPPED);
    const r = decodeNlError(m.payload, m.flags);
    expect(r).toEqual({ ok: true, value: { errno: 0, request: { type: 0x100, flags: 0x605, seq: m.seq, pid: 0 } } });
  });

  it('reads EEXIST with the whole request echoed, and capped', () => {
    const full = payloadOf('error-eexist');
    const r = decodeNlError(full.payload);
    expect(r.ok && r.value.errno).toBe(17);
    expect(r.ok && r.value.request.seq).toBe(full.seq);
    expect(full.payload.length).toBeGreaterThan(20);
    const capped = payloadOf('error-eexist-capped');
    expect(capped.payload.length).toBe(20);
    const c = decodeNlError(capped.payload, capped.flags);
    expect(c.ok && c.value.errno).toBe(17);
    expect(c.ok && c.value.request.type).toBe(0x100);
    expect(decodeNlError(payloadOf('error-enoent').payload)).toMatchObject({ ok: true, value: { errno: 2 } });
  });

  it('reads extended-ack TLVs when given the message flags', () => {
    const m = payloadOf('error-extack');
    expect(m.flags & NLM_F_ACK_TLVS).toBe(NLM_F_ACK_TLVS);
    const r = decodeNlError(m.payload, m.flags);
    if (!r.ok) throw new Error(r.error.reason);
    expect(r.value.errno).toBe(meta('error-extack').expect.errno);
    expect(r.value.extAck?.msg).toBe('Attribute failed policy validation');
    // The offset points at the bad CTA_TIMEOUT inside the echoed request.
    const off = r.value.extAck!.offset!;
    expect(m.payload.readUInt16LE(4 + off + 2) & 0x3fff).toBe(7);
    // Without flags the TLVs are not looked at.
    expect(decodeNlError(m.payload)).toMatchObject({ ok: true, value: { errno: r.value.errno } });
    const plain = decodeNlError(m.payload);
    expect(plain.ok && plain.value.extAck).toBeUndefined();
  });

  it('rejects short and nonsensical payloads', () => {
    expect(decodeNlError(Buffer.alloc(19))).toMatchObject({ ok: false, error: { code: 'ETRUNC_HEADER' } });
    const positive = Buffer.alloc(20);
    positive.writeInt32LE(5, 0);
    expect(decodeNlError(positive)).toMatchObject({ ok: false, error: { code: 'EVALUE' } });
    const huge = Buffer.alloc(20);
    huge.writeInt32LE(-0x80000000, 0);
    expect(decodeNlError(huge)).toMatchObject({ ok: false, error: { code: 'EVALUE' } });
    huge.writeInt32LE(-4095, 0);
    expect(decodeNlError(huge)).toMatchObject({ ok: true, value: { errno: 4095 } });
    const badEcho = Buffer.alloc(24);
    badEcho.writeInt32LE(-22, 0);
    badEcho.writeUInt32LE(400, 4);
    expect(decodeNlError(badEcho, NLM_F_ACK_TLVS)).toMatchObject({ ok: false, error: { code: 'EMSG_LEN' } });
  });
});

describe('AttrIterator', () => {
  it('masks NLA_F_NESTED/NLA_F_NET_BYTEORDER off the type and skips unknown ones', () => {
    const buf = Buffer.concat([nla(0x8001, [1, 2, 3, 4]), nla(0x4002, [9]), nla(0x3fff, [])]);
    const it = new AttrIterator().reset(buf, 0, buf.length, 0);
    const seen: Array<[number, boolean, number]> = [];
    while (it.next()) seen.push([it.type, it.nested, it.len]);
    expect(it.error).toBeUndefined();
    expect(seen).toEqual([
      [1, true, 4],
      [2, false, 1],
      [0x3fff, false, 0],
    ]);
  });

  const cases: Array<[string, Buffer, DecodeErrorCode, number]> = [
    ['nla_len < 4', Buffer.concat([nla(1, [1, 2, 3, 4]), nla(2, [], 2)]), 'EATTR_LEN', 8],
    ['nla_len 0', nla(1, [1, 2, 3, 4], 0), 'EZERO_LEN', 0],
    ['attribute longer than its parent', nla(1, [1, 2, 3, 4], 12), 'EATTR_LEN', 0],
    [
      'stray bytes after the last attribute',
      Buffer.concat([nla(1, [1, 2, 3, 4]), Buffer.from([1, 0])]),
      'EATTR_LEN',
      8,
    ],
  ];
  it.each(cases)('%s -> %s, never a throw', (_n, buf, code, offset) => {
    const it = new AttrIterator().reset(buf, 0, buf.length, 0);
    while (it.next()) {
      // walk to the end
    }
    expect(it.error).toMatchObject({ code, offset });
    // A stopped iterator stays stopped.
    expect(it.next()).toBe(false);
  });

  it('refuses to go deeper than MAX_NEST_DEPTH', () => {
    const it = new AttrIterator().reset(nla(NLA_F_NESTED | 1, []), 0, 4, MAX_NEST_DEPTH);
    expect(it.next()).toBe(true);
    expect(it.enter(new AttrIterator())).toBe(false);
    expect(it.error?.code).toBe('ENEST_DEPTH');
  });
});

describe('decodeAttrTree', () => {
  function nested(depth: number): Buffer {
    let inner = nla(1, [0xaa]);
    for (let i = 0; i < depth; i++) inner = nla(NLA_F_NESTED | 2, inner);
    return inner;
  }

  it('decodes a real message into a tree', () => {
    const { messages } = parseNetlink(fixture('ipv4-udp'));
    const p = messages[0]!.payload;
    const r = decodeAttrTree(p, 4);
    if (!r.ok) throw new Error(r.error.reason);
    expect(r.value[0]!.type).toBe(1); // CTA_TUPLE_ORIG
    expect(r.value[0]!.children?.[0]?.children?.[0]?.data).toEqual(Buffer.from([10, 99, 0, 3]));
  });

  it(`accepts ${MAX_NEST_DEPTH} levels of nesting and rejects more with ENEST_DEPTH`, () => {
    expect(decodeAttrTree(nested(MAX_NEST_DEPTH)).ok).toBe(true);
    const deep = decodeAttrTree(nested(MAX_NEST_DEPTH + 1));
    expect(deep).toMatchObject({ ok: false, error: { code: 'ENEST_DEPTH' } });
    // 200 levels: bounded work, still a value rather than a stack overflow.
    expect(decodeAttrTree(nested(200))).toMatchObject({ ok: false, error: { code: 'ENEST_DEPTH' } });
  });

  it('reports errors of nested attributes at their offset', () => {
    const bad = nla(NLA_F_NESTED | 1, Buffer.concat([nla(1, [1, 2, 3, 4]), nla(2, [1, 2], 3)]));
    expect(decodeAttrTree(bad)).toMatchObject({ ok: false, error: { code: 'EATTR_LEN', offset: 12 } });
  });
});

describe('NlWriter', () => {
  it('writes the exact bytes of nlmsghdr, nfgenmsg and attributes', () => {
    const w = new NlWriter(64);
    w.begin(0x101, 0x301, 0x01020304, 10, 0xabcd, 77);
    w.u8(1, 0x11);
    w.u16be(2, 0x2233);
    w.u32be(3, 0x44556677);
    w.u64be(4, 0x8899aabbccddeeffn);
    w.string(5, 'ftp');
    const n = w.nest(6);
    w.bytes(7, Buffer.from([1, 2, 3]));
    w.endNest(n);
    w.end();
    const expected = Buffer.from(
      [
        '4c000000 0101 0103 04030201 4d000000', // nlmsghdr (little-endian host)
        '0a 00 abcd', // nfgenmsg: family, version 0, res_id big-endian
        '0500 0100 11000000',
        '0600 0200 22330000',
        '0800 0300 44556677',
        '0c00 0400 8899aabbccddeeff',
        '0800 0500 66747000',
        '0c00 0680 0700 0700 01020300', // nest: NLA_F_NESTED set, inner padding zeroed
      ]
        .join('')
        .replace(/ /g, ''),
      'hex',
    );
    expect(w.finish()).toEqual(expected);
    expect(w.messageCount).toBe(1);
    expect(w.length).toBe(expected.length);
  });

  it('writes negative u32 values in two’s complement and masks u64 to 64 bits', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    w.u32be(1, -2);
    w.u64be(2, -1n);
    w.end();
    const out = w.finish();
    expect(out.readInt32BE(24)).toBe(-2);
    expect(out.readBigUInt64BE(32)).toBe(0xffffffffffffffffn);
  });

  it('grows by doubling across thousands of messages and stays parseable', () => {
    const w = new NlWriter(64);
    for (let i = 0; i < 5000; i++) {
      w.begin(0x100, 0x405, i, 2);
      const n = w.nest(1);
      w.ipv4(1, `10.99.${i >> 8}.${i & 0xff}`);
      w.string(2, 'x'.repeat(i % 7));
      w.endNest(n);
      w.end();
    }
    expect(w.messageCount).toBe(5000);
    const { messages, error } = parseNetlink(w.finish());
    expect(error).toBeUndefined();
    expect(messages).toHaveLength(5000);
    expect(messages[4999]!.seq).toBe(4999);
    expect(messages[4999]!.payload.subarray(12, 16)).toEqual(Buffer.from([10, 99, 19, 135]));
  });

  it('zeroes alignment padding even when reusing dirty memory', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    w.bytes(1, Buffer.alloc(40, 0xff));
    w.end();
    w.reset();
    w.begin(0, 0, 0, 2);
    w.u8(1, 0xff);
    w.end();
    expect(w.finish().subarray(20)).toEqual(Buffer.from([5, 0, 1, 0, 0xff, 0, 0, 0]));
  });

  it('reset() starts over and abort() drops only the open message', () => {
    const w = new NlWriter(64);
    w.begin(1, 0, 1, 2);
    w.end();
    const first = Buffer.from(w.finish());
    w.begin(1, 0, 2, 2);
    w.u32be(1, 5);
    w.abort();
    expect(w.finish()).toEqual(first);
    expect(w.messageCount).toBe(1);
    w.reset();
    expect(w.length).toBe(0);
    expect(w.messageCount).toBe(0);
  });

  it('throws on misuse and on addresses that do not parse, leaving no partial attribute', () => {
    const w = new NlWriter(64);
    expect(() => w.end()).toThrow();
    w.begin(1, 0, 1, 10);
    expect(() => w.begin(1, 0, 1, 10)).toThrow(/not ended/);
    const before = w.length;
    expect(() => w.ipv6(3, 'fd99::1::2')).toThrow(RangeError);
    expect(() => w.ipv4(1, '10.99.0.256')).toThrow(RangeError);
    expect(w.length).toBe(before);
    const n = w.nest(1);
    expect(() => w.end()).toThrow(/nest/);
    w.endNest(n);
    w.end();
    expect(() => w.bytes(1, Buffer.alloc(70000))).toThrow(RangeError);
  });
});

describe('addresses', () => {
  const v6: Array<[string, string]> = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['FD99:0000:0000:0000:0000:0000:0000:0001', 'fd99::1'],
    ['fd99:0:0:0:1:0:0:a', 'fd99::1:0:0:a'], // longest run wins
    ['fd99:0:0:1:0:0:0:a', 'fd99:0:0:1::a'],
    ['fd99:0:0:1:1:0:0:a', 'fd99::1:1:0:0:a'], // equal runs: the first one
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['2001:0db8::0001', '2001:db8::1'],
    ['::ffff:10.99.0.1', '::ffff:10.99.0.1'],
    ['::ffff:a63:1', '::ffff:10.99.0.1'],
    ['64:ff9b::10.99.0.1', '64:ff9b::a63:1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ];
  it.each(v6)('IPv6 %s -> %s', (input, canonical) => {
    expect(canonicalIPv6(input)).toBe(canonical);
    expect(formatIPv6(parseIPv6(canonical)!)).toBe(canonical);
  });

  const badV6 = [
    '',
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    '12345::',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7',
    'fd99::g',
    'fd99::1:',
    ':1::',
    '::ffff:1.2.3',
    '::ffff:1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
  ];
  it.each(badV6)('rejects IPv6 %j', (s) => {
    expect(parseIPv6(s)).toBeUndefined();
  });

  it('parses and formats IPv4 strictly', () => {
    expect(parseIPv4('10.99.0.1')).toBe(0x0a630001);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIPv4('0.0.0.0')).toBe(0);
    expect(formatIPv4(0x0a630001)).toBe('10.99.0.1');
    expect(formatIPv4(0xffffffff)).toBe('255.255.255.255');
    for (const bad of [
      '',
      '10.99.0',
      '10.99.0.1.',
      '10.99.0.256',
      '010.99.0.1',
      '10.99.0.-1',
      '1e1.0.0.1',
      ' 1.2.3.4',
    ]) {
      expect(parseIPv4(bad)).toBeUndefined();
    }
  });
});

// Issue 18 (mutation testing): every error the framing and attribute layers
// can give, with its exact code, offset and reason, at each bound and one
// step either side of it; and the fields each decoder reads, at distinct
// values so that a swapped or shifted read shows.
describe('exact errors at every bound', () => {
  const good = nlmsg(0x100, [2, 0, 0, 0]);
  const walks: Array<[string, Buffer, number, number, { code: DecodeErrorCode; offset: number; reason: string }]> = [
    ['15 bytes left', good.subarray(0, 15), 0, 15, { code: 'ETRUNC_HEADER', offset: 0, reason: '15 bytes left, nlmsghdr needs 16' }],
    ['1 byte left after a message', Buffer.concat([good, Buffer.from([1])]), 0, 21, { code: 'ETRUNC_HEADER', offset: 20, reason: '1 bytes left, nlmsghdr needs 16' }],
    ['nlmsg_len 0', nlmsg(1, [], { len: 0 }), 0, 16, { code: 'EZERO_LEN', offset: 0, reason: 'nlmsg_len is 0' }],
    ['nlmsg_len 1', nlmsg(1, [], { len: 1 }), 0, 16, { code: 'EMSG_LEN', offset: 0, reason: 'nlmsg_len 1 < 16' }],
    ['nlmsg_len 15', nlmsg(1, [], { len: 15 }), 0, 16, { code: 'EMSG_LEN', offset: 0, reason: 'nlmsg_len 15 < 16' }],
    ['nlmsg_len one past the end', nlmsg(1, [0, 0, 0, 0], { len: 21 }), 0, 20, { code: 'EMSG_LEN', offset: 0, reason: 'nlmsg_len 21 exceeds the 20 bytes left' }],
    ['the second message one past a narrowed end', Buffer.concat([good, good]), 0, 36, { code: 'EMSG_LEN', offset: 20, reason: 'nlmsg_len 20 exceeds the 16 bytes left' }],
  ];
  it.each(walks)('parseNetlink: %s', (_n, buf, start, end, error) => {
    const r = parseNetlink(buf, start, end);
    expect(r.error).toEqual(error);
  });

  it('parseNetlink takes a message of exactly 16 bytes and one that ends exactly at `end`', () => {
    const bare = nlmsg(NLMSG_DONE, []);
    expect(parseNetlink(bare)).toEqual({ messages: [{ type: NLMSG_DONE, flags: 0, seq: 0, pid: 0, payload: Buffer.alloc(0) }] });
    const two = Buffer.concat([good, bare]);
    expect(parseNetlink(two, 0, two.length).messages.map((m) => m.type)).toEqual([0x100, NLMSG_DONE]);
    // Range edges: the whole buffer and an empty range at its end are fine.
    expect(parseNetlink(two, two.length, two.length)).toEqual({ messages: [] });
    expect(parseNetlink(two, 0, 0)).toEqual({ messages: [] });
  });

  it('parseNetlink reads every header field from its own offset', () => {
    const b = Buffer.alloc(20);
    b.writeUInt32LE(20, 0);
    b.writeUInt16LE(0x0a0b, 4);
    b.writeUInt16LE(0x0c0d, 6);
    b.writeUInt32LE(0x11223344, 8);
    b.writeUInt32LE(0x55667788, 12);
    b.writeUInt32LE(0x99aabbcc, 16);
    expect(parseNetlink(b).messages).toEqual([
      { type: 0x0a0b, flags: 0x0c0d, seq: 0x11223344, pid: 0x55667788, payload: Buffer.from([0xcc, 0xbb, 0xaa, 0x99]) },
    ]);
  });

  const ranges: Array<[number, number]> = [
    [-1, 16],
    [0, 17],
    [9, 8],
  ];
  it.each(ranges)('parseNetlink and decodeAttrTree refuse the range [%i, %i) of 16 bytes', (start, end) => {
    const buf = Buffer.alloc(16);
    const reason = `range [${start}, ${end}) outside a buffer of 16 bytes`;
    expect(parseNetlink(buf, start, end)).toEqual({ messages: [], error: { code: 'EMSG_LEN', offset: start, reason } });
    expect(decodeAttrTree(buf, start, end)).toEqual({ ok: false, error: { code: 'EATTR_LEN', offset: start, reason } });
  });

  const attrs: Array<[string, Buffer, { code: DecodeErrorCode; offset: number; reason: string }]> = [
    ['1 trailing byte', Buffer.concat([nla(1, [1, 2, 3, 4]), Buffer.from([9])]), { code: 'EATTR_LEN', offset: 8, reason: '1 trailing bytes, shorter than an attribute header' }],
    ['3 trailing bytes', Buffer.concat([nla(1, [1, 2, 3, 4]), Buffer.from([9, 9, 9])]), { code: 'EATTR_LEN', offset: 8, reason: '3 trailing bytes, shorter than an attribute header' }],
    ['nla_len 0', nla(1, [1, 2, 3, 4], 0), { code: 'EZERO_LEN', offset: 0, reason: 'nla_len is 0' }],
    ['nla_len 1', nla(1, [1, 2, 3, 4], 1), { code: 'EATTR_LEN', offset: 0, reason: 'nla_len 1 < 4' }],
    ['nla_len 3', nla(1, [1, 2, 3, 4], 3), { code: 'EATTR_LEN', offset: 0, reason: 'nla_len 3 < 4' }],
    ['nla_len one past its parent', nla(1, [1, 2, 3, 4], 9), { code: 'EATTR_LEN', offset: 0, reason: 'nla_len 9 exceeds the 8 bytes of its parent' }],
  ];
  it.each(attrs)('AttrIterator: %s', (_n, buf, error) => {
    const it = new AttrIterator().reset(buf, 0, buf.length, 0);
    let n = 0;
    while (it.next()) n++;
    // The good attribute before the bad one, and nothing for the bad one itself.
    expect(n).toBe(error.offset === 0 ? 0 : 1);
    expect(it.error).toEqual(error);
    expect(decodeAttrTree(buf)).toEqual({ ok: false, error });
  });

  it('AttrIterator exposes each attribute: header, payload, length, flags, and the next one after padding', () => {
    // A 5-byte payload (padded to 8), a bare header, a nest with NLA_F_NET_BYTEORDER too.
    const buf = Buffer.concat([nla(7, [1, 2, 3, 4, 5]), nla(0x4003, []), nla(0xc002, [9, 9, 9, 9])]);
    const it = new AttrIterator().reset(buf, 0, buf.length, 3);
    expect([it.type, it.nested, it.off, it.len, it.hdr, it.depth]).toEqual([0, false, 0, 0, 0, 3]);
    const seen: number[][] = [];
    while (it.next()) seen.push([it.type, it.nested ? 1 : 0, it.hdr, it.off, it.len]);
    expect(seen).toEqual([
      [7, 0, 0, 4, 5],
      [3, 0, 12, 16, 0],
      [2, 1, 16, 20, 4],
    ]);
    expect(it.error).toBeUndefined();
    // A reset clears what the previous walk left.
    const bad = nla(1, [], 0);
    it.reset(bad, 0, 4, 0);
    expect(it.next()).toBe(false);
    expect(it.error?.code).toBe('EZERO_LEN');
    it.reset(buf, 12, 16, 1);
    expect(it.error).toBeUndefined();
    expect([it.type, it.nested, it.off, it.len, it.hdr]).toEqual([0, false, 12, 0, 12]);
    expect(it.next()).toBe(true);
    expect(it.next()).toBe(false);
    expect(it.error).toBeUndefined();
  });

  it('AttrIterator.enter goes down to MAX_NEST_DEPTH and no further, pointing at the payload', () => {
    const inner = nla(5, [0xaa]);
    const buf = nla(NLA_F_NESTED | 1, inner);
    const it = new AttrIterator().reset(buf, 0, buf.length, MAX_NEST_DEPTH - 1);
    expect(it.next()).toBe(true);
    const into = new AttrIterator();
    expect(it.enter(into)).toBe(true);
    expect(it.error).toBeUndefined();
    expect(into.depth).toBe(MAX_NEST_DEPTH);
    expect(into.next()).toBe(true);
    expect([into.type, into.off, into.len]).toEqual([5, 8, 1]);
    expect(into.next()).toBe(false);
    expect(into.next()).toBe(false);
    const deep = new AttrIterator().reset(buf, 0, buf.length, MAX_NEST_DEPTH);
    deep.next();
    expect(deep.enter(new AttrIterator())).toBe(false);
    expect(deep.error).toEqual({ code: 'ENEST_DEPTH', offset: 0, reason: `nesting deeper than ${MAX_NEST_DEPTH}` });
  });

  it('decodeAttrTree gives every node its type, flag, offset, data and children', () => {
    const buf = Buffer.concat([nla(0x4001, [1]), nla(NLA_F_NESTED | 2, Buffer.concat([nla(3, [7, 7]), nla(NLA_F_NESTED | 4, [])]))]);
    expect(decodeAttrTree(buf, 0, buf.length)).toEqual({
      ok: true,
      value: [
        { type: 1, nested: false, offset: 0, data: Buffer.from([1]) },
        {
          type: 2,
          nested: true,
          offset: 8,
          data: buf.subarray(12, 24),
          children: [
            { type: 3, nested: false, offset: 12, data: Buffer.from([7, 7]) },
            { type: 4, nested: true, offset: 20, data: Buffer.alloc(0), children: [] },
          ],
        },
      ],
    });
    // An error inside a nest stops the walk with that error.
    const bad = Buffer.concat([nla(NLA_F_NESTED | 2, nla(3, [7], 2)), nla(1, [1])]);
    expect(decodeAttrTree(bad)).toEqual({ ok: false, error: { code: 'EATTR_LEN', offset: 4, reason: 'nla_len 2 < 4' } });
  });
});

describe('decodeNlError: every field and bound', () => {
  /** struct nlmsgerr: error, then the echoed request's header (and `echoed` more bytes). */
  function nlmsgerr(error: number, echoedLen: number, extra: Buffer = Buffer.alloc(0)): Buffer {
    const b = Buffer.alloc(20);
    b.writeInt32LE(error, 0);
    b.writeUInt32LE(echoedLen, 4);
    b.writeUInt16LE(0x0102, 8);
    b.writeUInt16LE(0x0304, 10);
    b.writeUInt32LE(0x05060708, 12);
    b.writeUInt32LE(0x090a0b0c, 16);
    return Buffer.concat([b, extra]);
  }
  const request = { type: 0x0102, flags: 0x0304, seq: 0x05060708, pid: 0x090a0b0c };

  it('reads the errno and the echoed header from their offsets; an ACK is +0', () => {
    const ack = decodeNlError(nlmsgerr(0, 16));
    expect(ack).toEqual({ ok: true, value: { errno: 0, request } });
    expect(Object.is(ack.ok && ack.value.errno, 0)).toBe(true);
    expect(decodeNlError(nlmsgerr(-1, 16))).toEqual({ ok: true, value: { errno: 1, request } });
    expect(decodeNlError(nlmsgerr(-4095, 16))).toEqual({ ok: true, value: { errno: 4095, request } });
  });

  const bad: Array<[string, Buffer, { code: DecodeErrorCode; offset: number; reason: string }]> = [
    ['19 bytes', Buffer.alloc(19), { code: 'ETRUNC_HEADER', offset: 0, reason: 'nlmsgerr needs 20 bytes, got 19' }],
    ['0 bytes', Buffer.alloc(0), { code: 'ETRUNC_HEADER', offset: 0, reason: 'nlmsgerr needs 20 bytes, got 0' }],
    ['error 1', nlmsgerr(1, 16), { code: 'EVALUE', offset: 0, reason: 'nlmsgerr.error 1 is not 0 or -errno' }],
    ['error -4096', nlmsgerr(-4096, 16), { code: 'EVALUE', offset: 0, reason: 'nlmsgerr.error -4096 is not 0 or -errno' }],
  ];
  it.each(bad)('refuses %s', (_n, p, error) => {
    expect(decodeNlError(p)).toEqual({ ok: false, error });
  });

  it('checks the echoed length only when TLVs follow an uncapped echo', () => {
    const tlv = nla(1, Buffer.from('bad\0'));
    // Echoed header alone (16) and the TLVs right after it.
    expect(decodeNlError(nlmsgerr(-22, 16, tlv), NLM_F_ACK_TLVS)).toEqual({ ok: true, value: { errno: 22, request, extAck: { msg: 'bad' } } });
    const fail = (len: number, p: Buffer) =>
      expect(decodeNlError(p, NLM_F_ACK_TLVS)).toEqual({
        ok: false,
        error: { code: 'EMSG_LEN', offset: 4, reason: `echoed nlmsg_len ${len} does not fit the error message` },
      });
    fail(15, nlmsgerr(-22, 15, tlv));
    fail(0, nlmsgerr(-22, 0, tlv));
    // 4 + echoed up to the payload's end fits (no TLVs then); one more does not.
    expect(decodeNlError(nlmsgerr(-22, 24, tlv), NLM_F_ACK_TLVS)).toEqual({ ok: true, value: { errno: 22, request, extAck: {} } });
    fail(25, nlmsgerr(-22, 25, tlv));
    // Capped: the echoed length is not looked at, the TLVs start after the header.
    expect(decodeNlError(nlmsgerr(-22, 999, tlv), NLM_F_ACK_TLVS | NLM_F_CAPPED)).toEqual({ ok: true, value: { errno: 22, request, extAck: { msg: 'bad' } } });
    // Without NLM_F_ACK_TLVS, NLM_F_CAPPED alone reads no TLVs.
    expect(decodeNlError(nlmsgerr(-22, 999, tlv), NLM_F_CAPPED)).toEqual({ ok: true, value: { errno: 22, request } });
  });

  it('skips an unaligned echoed body to its padded end, and reads only a 4-byte offset', () => {
    // 17 echoed bytes take 20 with padding; the TLVs start after them.
    const body = Buffer.from([0xee, 0, 0, 0]);
    // The message fills its attribute to the last byte and the next header follows (no NUL, no padding);
    // an offset of 2 bytes and one of an unknown type are not offsets.
    const tlvs = Buffer.concat([nla(2, [0x10, 0, 0, 0]), nla(1, Buffer.from('abcd')), nla(2, [1, 2]), nla(9, [0x20, 0, 0, 0]), nla(9, [1])]);
    const r = decodeNlError(nlmsgerr(-2, 17, Buffer.concat([body, tlvs])), NLM_F_ACK_TLVS);
    expect(r).toEqual({ ok: true, value: { errno: 2, request, extAck: { msg: 'abcd', offset: 16 } } });
    // A broken TLV is an error, not an ext-ack.
    const broken = decodeNlError(nlmsgerr(-2, 16, nla(1, [1], 2)), NLM_F_ACK_TLVS);
    expect(broken).toEqual({ ok: false, error: { code: 'EATTR_LEN', offset: 20, reason: 'nla_len 2 < 4' } });
  });
});

describe('NlWriter: exact bytes of every writer', () => {
  it('encodes IPv4 addresses right when several alternate (the last two are cached)', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    for (const a of ['10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.3', '10.0.0.2', '10.0.0.3', '10.0.0.1', '10.0.0.1']) w.ipv4(1, a);
    w.end();
    const got = parseNetlink(w.finish()).messages[0]!.payload;
    const last = [...got.subarray(4)].filter((_, i) => i % 8 === 7);
    expect(last).toEqual([1, 2, 1, 3, 2, 3, 1, 1]);
    expect(() => w.ipv4(1, '10.0.0.1.1')).toThrow('not an IPv4 address: "10.0.0.1.1"');
  });

  it('writes a 16-byte IPv6 address and addrWords of one and four words', () => {
    const words = new Int32Array([0x04030201, 0x08070605, 0x0c0b0a09, 0x100f0e0d, -1]);
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 10);
    w.ipv6(3, 'fd99::1');
    w.addrWords(1, words, 0, 1);
    w.addrWords(4, words, 1, 4);
    w.end();
    const hex = w.finish().subarray(20).toString('hex');
    // Record words hold the address bytes in network order: the low byte first.
    expect(hex).toBe(
      ['1400 0300 fd990000000000000000000000000001', '0800 0100 01020304', '1400 0400 05060708090a0b0c0d0e0f10ffffffff']
        .join('')
        .replace(/ /g, ''),
    );
    expect(() => w.ipv6(3, 'nope')).toThrow('not an IPv6 address: "nope"');
  });

  it('grows for one large attribute and for a nest header at the very end', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    w.bytes(1, Buffer.alloc(300, 7));
    const n = w.nest(2);
    w.u8(3, 1);
    w.endNest(n);
    w.end();
    const m = parseNetlink(w.finish()).messages[0]!;
    expect(m.payload.length).toBe(4 + 304 + 12);
    expect(m.payload.subarray(8, 308)).toEqual(Buffer.alloc(300, 7));
    // A writer whose first size is below 64 starts at 64 and still grows.
    const tiny = new NlWriter(1);
    for (let i = 0; i < 20; i++) {
      tiny.begin(0, 0, i, 2);
      tiny.u32be(1, i);
      tiny.end();
    }
    expect(parseNetlink(tiny.finish()).messages.map((x) => x.payload.readUInt32BE(8))).toEqual([...Array(20).keys()]);
  });

  it('refuses an attribute or a nest over 65535 bytes, with the size in the message', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    expect(() => w.bytes(1, Buffer.alloc(65532))).toThrow('attribute of 65536 bytes exceeds nla_len');
    w.bytes(1, Buffer.alloc(65531)); // 65535 with its header: the largest
    w.abort();
    w.begin(0, 0, 0, 2);
    const n = w.nest(1);
    w.bytes(2, Buffer.alloc(65528));
    expect(() => w.endNest(n)).toThrow('nested attribute of 65536 bytes exceeds nla_len');
    w.abort();
    w.begin(0, 0, 0, 2);
    const ok = w.nest(1);
    w.bytes(2, Buffer.alloc(65524)); // the largest nest: 4 + 4 + 65524 = 65532, a multiple of 4
    w.endNest(ok);
    w.end();
    expect(parseNetlink(w.finish()).messages[0]!.payload.readUInt16LE(4)).toBe(65532);
  });

  it('decodeAttrTree takes an empty range; a writer of size 0 still grows; an empty address is refused', () => {
    expect(decodeAttrTree(Buffer.alloc(8), 4, 4)).toEqual({ ok: true, value: [] });
    const w = new NlWriter(0);
    w.begin(0, 0, 0, 2);
    w.u32be(1, 7);
    w.end();
    expect(parseNetlink(w.finish()).messages[0]!.payload.readUInt32BE(8)).toBe(7);
    // A fresh writer has no address cached: '' must not read as one.
    expect(() => new NlWriter(64).ipv4(1, '')).toThrow('not an IPv4 address: ""');
  });

  it('says what was misused', () => {
    const w = new NlWriter(64);
    expect(() => w.end()).toThrow('NlWriter.end: no message open');
    w.abort(); // nothing open: nothing dropped
    expect(w.length).toBe(0);
    w.begin(0, 0, 0, 2);
    expect(() => w.begin(0, 0, 0, 2)).toThrow('NlWriter.begin: the previous message was not ended');
    w.nest(1);
    expect(() => w.end()).toThrow('NlWriter.end: a nest is still open');
    // abort() forgets the open nest too: the next message can end.
    w.abort();
    w.begin(0, 0, 0, 2);
    w.end();
    expect(w.messageCount).toBe(1);
    expect(w.length).toBe(20);
  });
});

describe('NlWriter on dirty memory and after reset', () => {
  it('writes every padding byte and the string NUL itself', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    w.bytes(1, Buffer.alloc(40, 0xff));
    w.end();
    w.reset();
    w.begin(0, 0, 0, 2);
    w.u16be(1, 0x0102);
    w.string(2, 'ab');
    w.string(3, '');
    w.end();
    expect(w.finish().subarray(20).toString('hex')).toBe('0600010001020000' + '0700020061620000' + '0500030000000000');
  });

  it('grows inside a message of many small attributes', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    for (let i = 0; i < 40; i++) if (i % 2) w.u8(i, i);
    else w.u16be(i, i);
    w.end();
    const m = parseNetlink(w.finish()).messages[0]!;
    const tree = decodeAttrTree(m.payload, 4);
    if (!tree.ok) throw new Error(tree.error.reason);
    expect(tree.value.map((n) => [n.type, n.data.length === 1 ? n.data[0] : n.data.readUInt16BE(0)])).toEqual([...Array(40).keys()].map((i) => [i, i]));
  });

  it('reset() forgets an open message and an open nest', () => {
    const w = new NlWriter(64);
    w.begin(0, 0, 0, 2);
    w.nest(1);
    w.reset();
    w.begin(5, 0, 0, 2);
    w.end();
    expect(parseNetlink(w.finish()).messages.map((m) => m.type)).toEqual([5]);
  });

  it('reads 64-bit counters exactly around 2^53', () => {
    for (const v of [2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 0x1f_ffff_ffff_ffffn, 0x20_0000_0000_0001n, 2n ** 64n - 1n]) {
      const w = new NlWriter(64);
      w.begin(0x100, 0, 0, 2);
      w.u64be(1, v);
      w.end();
      expect(beU64(Buffer.from(w.finish()), 24)).toBe(v);
    }
  });
});
