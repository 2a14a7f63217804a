// conntrackd 1.4.x wire format: bytes written by hand from
// ../shared/docs/conntrackd.md §3 (and the [measured] captures there), then
// decoded; entries encoded and compared byte for byte; malformed input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';
import { CTD_F, CtdWriter, ctdHelloFlags, decodeCtdDatagram } from '../../src/sync/wire/conntrackd-codec.js';
import { runs } from './fc-runs.js';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

/** One TLV: u16 len (4 + payload), u16 attr, payload, zero padding to 4. */
function tlv(attr: number, payloadHex: string): string {
  const p = hex(payloadHex);
  const len = 4 + p.length;
  const pad = (4 - (len % 4)) % 4;
  return len.toString(16).padStart(4, '0') + attr.toString(16).padStart(4, '0') + p.toString('hex') + '00'.repeat(pad);
}

function msg(type: number, flags: number, seq: number, body: string): string {
  const len = 8 + hex(body).length;
  return (
    (0x10 | type).toString(16).padStart(2, '0') +
    flags.toString(16).padStart(2, '0') +
    len.toString(16).padStart(4, '0') +
    seq.toString(16).padStart(8, '0') +
    body
  );
}

// 10.99.1.2:1234 -> 10.99.2.3:80 TCP ESTABLISHED, status 0x18e (SNAT done), timeout 431999,
// mark 7, SNAT to 10.99.9.9 port 40000 (the reply goes to 10.99.9.9:40000).
const TCP_SNAT_BODY =
  tlv(0, '0a630102 0a630203') +
  tlv(5, '0000018e') +
  tlv(2, '06') +
  tlv(3, '04d2 0050') +
  tlv(4, '03') +
  tlv(6, '0006977f') +
  tlv(7, '00000007') +
  tlv(12, '0a630909') +
  tlv(14, '409c'); // 40000 = 0x9c40, little-endian on the wire

const TCP_SNAT: ConntrackEntry = {
  family: 2,
  orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, sport: 1234, dport: 80 },
  reply: { src: '10.99.2.3', dst: '10.99.9.9', proto: 6, sport: 80, dport: 40000 },
  status: 0x18e,
  timeout: 431999,
  mark: 7,
  protoinfo: { tcp: { state: 3 } },
};

// ICMP echo id 4660: the measured capture sends it as `34 12`.
const ICMP_BODY =
  tlv(0, '0a630102 0a630203') + tlv(5, '00000008') + tlv(2, '01') + tlv(22, '08') + tlv(23, '00') + tlv(24, '3412') + tlv(6, '0000001e');

const ICMP: ConntrackEntry = {
  family: 2,
  orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 4660 },
  reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 4660 },
  status: 8,
  timeout: 30,
};

// IPv6 UDP with DNAT of address and port, zone 3, labels 1 and 33.
const V6_BODY =
  tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
  tlv(5, '00000028') +
  tlv(2, '11') +
  tlv(3, '1388 0035') +
  tlv(6, '00000078') +
  tlv(30, '20010db8000000000000000000000009') +
  tlv(15, 'e914') + // 5353 little-endian
  tlv(28, '00000002 00000002') +
  tlv(32, '0003');

const V6: ConntrackEntry = {
  family: 10,
  orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 5000, dport: 53 },
  reply: { src: '2001:db8::9', dst: '2001:db8::1', proto: 17, sport: 5353, dport: 5000 },
  status: 0x28,
  timeout: 120,
  zone: 3,
  labels: hex('02000000 02000000 00000000 00000000'),
};

const CASES: { name: string; type: 0 | 1 | 2; body: string; entry: ConntrackEntry }[] = [
  { name: 'ipv4 tcp snat + port', type: 0, body: TCP_SNAT_BODY, entry: TCP_SNAT },
  { name: 'icmp echo', type: 1, body: ICMP_BODY, entry: ICMP },
  { name: 'ipv6 udp dnat, labels, zone', type: 2, body: V6_BODY, entry: V6 },
];

describe('conntrackd codec: entries', () => {
  for (const c of CASES) {
    it(`decodes ${c.name} from hand-made bytes`, () => {
      const r = decodeCtdDatagram(hex(msg(c.type, 0, 0x5f00_0001, c.body)));
      expect(r.errors).toEqual([]);
      expect(r.messages).toEqual([{ kind: 'ct', type: c.type, flags: 0, seq: 0x5f00_0001, entry: c.entry }]);
    });
    it(`encodes ${c.name} to the same bytes`, () => {
      const w = new CtdWriter(16);
      expect(w.entry(c.type, 0, 0x5f00_0001, c.entry)).toBe(true);
      expect(w.bytes().toString('hex')).toBe(msg(c.type, 0, 0x5f00_0001, c.body));
    });
  }

  it('the first byte of a CT_NEW is 0x10 and of a CT_DEL 0x12, as measured', () => {
    const w = new CtdWriter();
    w.entry(0, 0, 1, TCP_SNAT);
    const at = w.length;
    w.entry(2, 0, 2, TCP_SNAT);
    expect(w.bytes()[0]).toBe(0x10);
    expect(w.bytes()[at]).toBe(0x12);
  });

  it('keeps an expected connection’s master and the NAT sequence adjustment', () => {
    const e: ConntrackEntry = {
      family: 2,
      orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, sport: 40001, dport: 20 },
      reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 6, sport: 20, dport: 40001 },
      master: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, sport: 40000, dport: 21 },
      status: 0x18b,
      helper: 'ftp',
      seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
      seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
      protoinfo: { tcp: { state: 3 } },
    };
    const w = new CtdWriter();
    w.entry(0, 0, 9, e);
    expect(decodeCtdDatagram(w.bytes()).messages).toEqual([{ kind: 'ct', type: 0, flags: 0, seq: 9, entry: e }]);
  });

  it('round-trips random IPv4 TCP/UDP entries with NAT', () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const addr = fc.tuple(octet, octet, octet, octet).map((a) => a.join('.'));
    const port = fc.integer({ min: 0, max: 65535 });
    const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
    fc.assert(
      fc.property(
        fc.record({ s: addr, d: addr, ns: addr, nd: addr, sp: port, dp: port, nsp: port, ndp: port, proto: fc.constantFrom(6, 17) }),
        u32,
        u32,
        u32,
        (t, status, timeout, mark) => {
          const e: ConntrackEntry = {
            family: 2,
            orig: { src: t.s, dst: t.d, proto: t.proto, sport: t.sp, dport: t.dp },
            reply: { src: t.nd, dst: t.ns, proto: t.proto, sport: t.ndp, dport: t.nsp },
            status,
            timeout,
            mark,
          };
          if (t.proto === 6) e.protoinfo = { tcp: { state: 3 } };
          const w = new CtdWriter(8);
          expect(w.entry(1, CTD_F.HELLO, 77, e)).toBe(true);
          const r = decodeCtdDatagram(w.bytes());
          expect(r.errors).toEqual([]);
          expect(r.messages).toEqual([{ kind: 'ct', type: 1, flags: CTD_F.HELLO, seq: 77, entry: e }]);
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('refuses an entry whose address does not parse, writing nothing', () => {
    const w = new CtdWriter();
    w.control(CTD_F.ALIVE, 1);
    const bad = { ...TCP_SNAT, orig: { ...TCP_SNAT.orig, src: 'nope' } };
    expect(w.entry(0, 0, 2, bad)).toBe(false);
    expect(w.length).toBe(8);
  });
});

// Expectations (nta_exp_attr): an FTP data connection the server will open
// to the client's port 50000, as nf_conntrack_ftp sets it up from a PORT
// command on the control connection 10.92.0.1:40000 -> 10.92.0.2:21.
const FTP_EXP_BODY =
  tlv(0, '0a5c0001 0a5c0002') +
  tlv(2, '06') +
  tlv(3, '9c40 0015') +
  tlv(4, '0a5c0002 0a5c0001') +
  tlv(6, '06') +
  tlv(7, '0000 c350') +
  tlv(8, 'ffffffff ffffffff') +
  tlv(10, '06') +
  tlv(11, '0000 ffff') +
  tlv(12, '0000012c') +
  tlv(13, '00000000') +
  tlv(19, '66747000');

const FTP_EXP: ExpectEntry = {
  family: 2,
  master: { src: '10.92.0.1', dst: '10.92.0.2', proto: 6, sport: 40000, dport: 21 },
  tuple: { src: '10.92.0.2', dst: '10.92.0.1', proto: 6, sport: 0, dport: 50000 },
  mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 6, sport: 0, dport: 0xffff },
  timeout: 300,
  flags: 0,
  helper: 'ftp',
};

// The same behind NAT: class 1, the NAT tuple (saved address and port; the
// kernel leaves its dst zero), direction REPLY, and the NAT function's name.
const FTP_NAT_EXP_BODY =
  FTP_EXP_BODY.slice(0, FTP_EXP_BODY.indexOf('0008000d')) +
  tlv(13, '00000001') +
  tlv(14, '00000001') +
  tlv(15, '0a5c0909 00000000') +
  tlv(17, '06') +
  tlv(16, '0849 0000') +
  tlv(18, '00000001') +
  tlv(19, '66747000') +
  tlv(20, Buffer.from('nat-follow-master\0').toString('hex'));

const FTP_NAT_EXP: ExpectEntry = {
  ...FTP_EXP,
  flags: 1,
  class: 1,
  nat: { dir: 1, tuple: { src: '10.92.9.9', dst: '0.0.0.0', proto: 6, sport: 2121, dport: 0 } },
  fn: 'nat-follow-master',
};

// IPv6 SIP over UDP: no NAT (the format has no IPv6 NAT address), no class.
const SIP6_EXP_BODY =
  tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
  tlv(2, '11') +
  tlv(3, '13c4 13c4') +
  tlv(5, '20010db8000000000000000000000002 20010db8000000000000000000000001') +
  tlv(6, '11') +
  tlv(7, '0000 4e20') +
  tlv(9, 'ffffffffffffffffffffffffffffffff ffffffffffffffffffffffffffffffff') +
  tlv(10, '11') +
  tlv(11, '0000 ffff') +
  tlv(12, '0000003c') +
  tlv(13, '00000000') +
  tlv(19, '73697000');

const SIP6_EXP: ExpectEntry = {
  family: 10,
  master: { src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 5060, dport: 5060 },
  tuple: { src: '2001:db8::2', dst: '2001:db8::1', proto: 17, sport: 0, dport: 20000 },
  mask: { src: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', dst: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', proto: 17, sport: 0, dport: 0xffff },
  timeout: 60,
  flags: 0,
  helper: 'sip',
};

const EXP_CASES: { name: string; type: 3 | 4 | 5; body: string; entry: ExpectEntry }[] = [
  { name: 'ftp data connection', type: 3, body: FTP_EXP_BODY, entry: FTP_EXP },
  { name: 'ftp behind NAT', type: 4, body: FTP_NAT_EXP_BODY, entry: FTP_NAT_EXP },
  { name: 'ipv6 sip', type: 5, body: SIP6_EXP_BODY, entry: SIP6_EXP },
];

describe('conntrackd codec: expectations', () => {
  for (const c of EXP_CASES) {
    it(`decodes ${c.name} from hand-made bytes`, () => {
      const r = decodeCtdDatagram(hex(msg(c.type, 0, 0x5f00_0002, c.body)));
      expect(r.errors).toEqual([]);
      expect(r.messages).toEqual([{ kind: 'exp', type: c.type, flags: 0, seq: 0x5f00_0002, entry: c.entry }]);
    });
    it(`encodes ${c.name} to the same bytes`, () => {
      const w = new CtdWriter(16);
      expect(w.expect(c.type, 0, 0x5f00_0002, c.entry)).toBe(true);
      expect(w.bytes().toString('hex')).toBe(msg(c.type, 0, 0x5f00_0002, c.body));
    });
  }

  it('the first byte of an EXP_NEW is 0x13 and of an EXP_DEL 0x15', () => {
    const w = new CtdWriter();
    w.expect(3, 0, 1, FTP_EXP);
    const first = w.bytes()[0];
    w.reset();
    w.expect(5, 0, 2, FTP_EXP);
    expect([first, w.bytes()[0]]).toEqual([0x13, 0x15]);
  });

  it('sends flags 0 when the expectation has none, as conntrackd always sends them', () => {
    const { flags: _f, ...bare } = FTP_EXP;
    const w = new CtdWriter();
    w.expect(3, 0, 1, bare);
    expect(w.bytes().toString('hex')).toBe(msg(3, 0, 1, FTP_EXP_BODY));
  });

  const refused: { name: string; entry: ExpectEntry }[] = [
    { name: 'a zone (the format has none)', entry: { ...FTP_EXP, zone: 2 } },
    { name: 'IPv6 NAT (no NAT_IPV6)', entry: { ...SIP6_EXP, nat: { dir: 1, tuple: { ...SIP6_EXP.tuple } } } },
    { name: 'a helper name past conntrackd’s 12 bytes', entry: { ...FTP_EXP, helper: 'helper-of-13' } },
    { name: 'an address that does not parse', entry: { ...FTP_EXP, tuple: { ...FTP_EXP.tuple, src: 'nope' } } },
  ];
  for (const r of refused) {
    it(`refuses ${r.name}, writing nothing`, () => {
      const w = new CtdWriter();
      w.control(CTD_F.ALIVE, 1);
      expect(w.expect(3, 0, 2, r.entry)).toBe(false);
      expect(w.length).toBe(8);
    });
  }

  const bad: { name: string; body: string; code: string }[] = [
    { name: 'no expected tuple', body: tlv(0, '0a5c0001 0a5c0002') + tlv(2, '06') + tlv(8, 'ffffffff ffffffff') + tlv(10, '06'), code: 'EVALUE' },
    { name: 'no master protocol', body: FTP_EXP_BODY.replace(tlv(2, '06'), ''), code: 'EVALUE' },
    { name: 'an IPv4 mask on an IPv6 master', body: SIP6_EXP_BODY.replace(tlv(9, 'ff'.repeat(32)), tlv(8, 'ff'.repeat(8))), code: 'EVALUE' },
    { name: 'unknown attribute id 21', body: FTP_EXP_BODY + tlv(21, '00000000'), code: 'EDECODE' },
    { name: 'a port pair of 2 bytes', body: FTP_EXP_BODY.replace(tlv(7, '0000 c350'), tlv(7, 'c350')), code: 'EDECODE' },
    { name: 'a helper name without NUL', body: FTP_EXP_BODY.replace(tlv(19, '66747000'), tlv(19, '667470')), code: 'EVALUE' },
  ];
  for (const b of bad) {
    it(`${b.name}: ${b.code}, the next message still read`, () => {
      const r = decodeCtdDatagram(hex(msg(3, 0, 1, b.body) + msg(0, 0, 2, TCP_SNAT_BODY)));
      expect(r.errors.map((e) => e.code)).toEqual([b.code]);
      expect(r.messages.map((m) => m.kind)).toEqual(['ct']);
    });
  }
});

describe('conntrackd codec: control messages and packing', () => {
  it('reads the measured ALIVE+HELLO and ACK+HELLO+HELLO_BACK', () => {
    const r = decodeCtdDatagram(hex('1a30 0008 5f000010 | 1a68 0010 12345678 5f000001 5f000009'));
    expect(r.errors).toEqual([]);
    expect(r.messages).toEqual([
      { kind: 'ctl', flags: 0x30, seq: 0x5f000010, from: 0, to: 0 },
      { kind: 'ctl', flags: 0x68, seq: 0x12345678, from: 0x5f000001, to: 0x5f000009 },
    ]);
  });

  it('writes ALIVE in 8 bytes and ACK, NACK, RESYNC in 16', () => {
    const w = new CtdWriter();
    w.control(CTD_F.ALIVE | CTD_F.HELLO, 0x5f000010);
    w.control(CTD_F.NACK, 3, 0xffff_fffe, 1);
    w.control(CTD_F.RESYNC, 4);
    expect(w.bytes().toString('hex')).toBe('1a300008' + '5f000010' + '1a040010' + '00000003fffffffe00000001' + '1a020010' + '00000004' + '0000000000000000');
  });

  it('walks several messages in one datagram, entries and expectations', () => {
    const r = decodeCtdDatagram(hex(msg(0, 0, 1, TCP_SNAT_BODY) + msg(3, 0, 2, FTP_EXP_BODY) + msg(2, 0x40, 3, ICMP_BODY)));
    expect(r.errors).toEqual([]);
    expect(r.messages.map((m) => [m.kind, m.seq, m.flags])).toEqual([
      ['ct', 1, 0],
      ['exp', 2, 0],
      ['ct', 3, 0x40],
    ]);
  });
});

describe('conntrackd codec: malformed input', () => {
  const good = msg(0, 0, 5, TCP_SNAT_BODY);
  const table: { name: string; bytes: string; code: string; kept: number }[] = [
    { name: 'shorter than a header', bytes: '1000 0008 0000', code: 'ETRUNC', kept: 0 },
    { name: 'len larger than the datagram', bytes: '1000 0040 00000001', code: 'ETRUNC', kept: 0 },
    { name: 'len smaller than a header', bytes: '1000 0004 00000001', code: 'ETRUNC', kept: 0 },
    { name: 'ACK shorter than 16', bytes: '1a08 0008 00000001', code: 'ETRUNC', kept: 0 },
    { name: 'version 2', bytes: msg(0, 0, 1, TCP_SNAT_BODY).replace(/^10/, '20') + good, code: 'EVERSION', kept: 1 },
    { name: 'data type with ACK flag', bytes: '1008 0010 00000001 00000001 00000002' + good, code: 'EVALUE', kept: 1 },
    { name: 'CTL without a control flag', bytes: '1a00 0008 00000001' + good, code: 'EVALUE', kept: 1 },
    { name: 'type 7', bytes: '1700 0008 00000001' + good, code: 'EVALUE', kept: 1 },
    { name: 'nta_len below 4', bytes: msg(0, 0, 1, '00020000 00000000') + good, code: 'EDECODE', kept: 1 },
    { name: 'nta_len past the message', bytes: msg(0, 0, 1, '00400000 0a630102 0a630203') + good, code: 'EDECODE', kept: 1 },
    { name: 'unknown attribute id', bytes: msg(0, 0, 1, tlv(33, '00000000')) + good, code: 'EDECODE', kept: 1 },
    { name: 'fixed attribute of the wrong size', bytes: msg(0, 0, 1, tlv(0, '0a630102') + tlv(2, '06')) + good, code: 'EDECODE', kept: 1 },
    { name: 'no address', bytes: msg(0, 0, 1, tlv(2, '06')) + good, code: 'EVALUE', kept: 1 },
    { name: 'no L4PROTO', bytes: msg(0, 0, 1, tlv(0, '0a630102 0a630203')) + good, code: 'EVALUE', kept: 1 },
    {
      name: 'helper name without NUL',
      bytes: msg(0, 0, 1, tlv(0, '0a630102 0a630203') + tlv(2, '06') + tlv(27, '667470')) + good,
      code: 'EVALUE',
      kept: 1,
    },
    {
      name: 'labels not in words',
      bytes: msg(0, 0, 1, tlv(0, '0a630102 0a630203') + tlv(2, '06') + tlv(28, '010203')) + good,
      code: 'EVALUE',
      kept: 1,
    },
    {
      name: 'master address without its protocol',
      bytes: msg(0, 0, 1, tlv(0, '0a630102 0a630203') + tlv(2, '06') + tlv(8, '0a630102 0a630203')) + good,
      code: 'EVALUE',
      kept: 1,
    },
  ];
  for (const t of table) {
    it(`${t.name}: ${t.code}, ${t.kept} message(s) kept`, () => {
      const r = decodeCtdDatagram(hex(t.bytes));
      expect(r.errors.map((e) => e.code)).toEqual([t.code]);
      expect(r.messages).toHaveLength(t.kept);
    });
  }

  const base = tlv(0, '0a630102 0a630203') + tlv(2, '06');
  const helperHex = (name: string) => Buffer.from(name + '\0', 'latin1').toString('hex');
  it.each([
    { name: 'an empty labels attribute (nta_len 4)', body: tlv(28, '') + base, reason: 'message at 0: labels of 0 bytes' },
    { name: 'labels of 20 bytes', body: base + tlv(28, '00'.repeat(20)), reason: 'message at 0: labels of 20 bytes' },
    { name: 'labels of 6 bytes', body: base + tlv(28, '00'.repeat(6)), reason: 'message at 0: labels of 6 bytes' },
    { name: 'an empty helper name', body: tlv(27, '') + base, reason: 'message at 0: helper name of 0 bytes, not NUL-terminated within 16' },
    { name: 'a helper name of 17 bytes', body: base + tlv(27, helperHex('a'.repeat(16))), reason: 'message at 0: helper name of 17 bytes, not NUL-terminated within 16' },
    { name: 'nta_len 3', body: '00030000 00000000', reason: 'message at 0: attribute at 8: nta_len 3' },
    { name: 'nta_len one past the message', body: base + '000e0000 0a630102 0a630203 00', reason: 'message at 0: attribute at 28: nta_len 14' },
    { name: 'attribute id 33', body: tlv(33, '00000000'), reason: 'message at 0: attribute at 8: unknown id 33' },
    { name: 'L4PROTO of 2 bytes', body: tlv(0, '0a630102 0a630203') + tlv(2, '0600'), reason: 'message at 0: attribute 2: 2 bytes, not 1' },
    { name: 'no address', body: tlv(2, '06'), reason: 'message at 0: no IPV4 or IPV6 attribute' },
    { name: 'no protocol', body: tlv(0, '0a630102 0a630203'), reason: 'message at 0: no L4PROTO attribute' },
    { name: 'a master address without its protocol', body: base + tlv(8, '0a630102 0a630203'), reason: 'message at 0: master address without MASTER_L4PROTO' },
  ])('$name: refused with its reason', ({ body, reason }) => {
    const r = decodeCtdDatagram(hex(msg(0, 0, 1, body)));
    expect(r.errors.map((e) => e.reason)).toEqual([reason]);
    expect(r.messages).toEqual([]);
  });

  it.each([
    { name: 'a helper name of 16 bytes, NUL included', body: base + tlv(27, helperHex('a'.repeat(15))), helper: 'a'.repeat(15) },
    { name: 'a helper name of one byte (only the NUL)', body: base + tlv(27, '00'), helper: '' },
    { name: 'labels of 16 bytes', body: base + tlv(28, '00000001' + '00'.repeat(12)), helper: undefined },
  ])('$name: taken', ({ body, helper }) => {
    const r = decodeCtdDatagram(hex(msg(0, 0, 1, body)));
    expect(r.errors).toEqual([]);
    expect(r.messages).toHaveLength(1);
    const m = r.messages[0]!;
    expect(m.kind === 'ct' && m.entry.helper).toBe(m.kind === 'ct' && helper === undefined ? undefined : helper);
  });

  it('reads a message of exactly a header at the datagram’s end, and data type 5 (the last) as an expectation', () => {
    // Its header is read and its type known; an expectation delete with no
    // attributes names nothing (EVALUE), and what came before it stands.
    const r = decodeCtdDatagram(hex(good + '1500 0008 00000009'));
    expect(r.messages.map((m) => m.kind)).toEqual(['ct']);
    expect(r.errors.map((e) => e.code)).toEqual(['EVALUE']);
    expect(r.errors[0]!.reason).toMatch(/^message at 84: no MASTER IPV4/);
  });

  it('names where a truncated header or message is, and what a wrong version or type is', () => {
    expect(decodeCtdDatagram(hex(good + '1000 0008 0000')).errors[0]!.reason).toBe(`6 bytes left at ${hex(good).length}, shorter than a header`);
    expect(decodeCtdDatagram(hex('1000 0040 00000001')).errors[0]!.reason).toBe('message at 0: len 64, 8 bytes left, at least 8');
    expect(decodeCtdDatagram(hex('2000 0008 00000001')).errors[0]!.reason).toBe('message at 0: version 2, not 1');
    expect(decodeCtdDatagram(hex('1700 0008 00000001')).errors[0]!.reason).toBe('message at 0: type 7 with flags 0x0 is neither data nor control');
  });

  it('a tail of 4 bytes or fewer after the attributes is padding', () => {
    const r = decodeCtdDatagram(hex(msg(0, 0, 1, TCP_SNAT_BODY + '00000000')));
    expect(r.errors).toEqual([]);
    expect(r.messages).toHaveLength(1);
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (a) => {
        const r = decodeCtdDatagram(Buffer.from(a));
        expect(r.messages.length + r.errors.length).toBeGreaterThanOrEqual(a.length === 0 ? 0 : 1);
      }),
      { numRuns: runs(2000) },
    );
  });

  it('never throws on mutations of a valid datagram', () => {
    const base = hex(good + msg(2, 0, 6, V6_BODY));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const b = Buffer.from(base);
        b[i] = v;
        decodeCtdDatagram(b);
      }),
      { numRuns: runs(2000) },
    );
  });
});

// SCTP and DCCP protoinfo, synproxy, TCP window scales, masters, sequence
// adjustments and labels: each attribute in its place and byte order, both
// ways where the encoder writes it, one way where only conntrackd does.
describe('conntrackd codec: protoinfo, synproxy and the other extras, byte for byte', () => {
  const v4 = tlv(0, '0a630102 0a630203');
  const plain = (proto: number, extra: Partial<ConntrackEntry> = {}): ConntrackEntry => ({
    family: 2,
    orig: { src: '10.99.1.2', dst: '10.99.2.3', proto, sport: 5000, dport: 5001 },
    reply: { src: '10.99.2.3', dst: '10.99.1.2', proto, sport: 5001, dport: 5000 },
    ...extra,
  });
  const ports = tlv(3, '1388 1389');

  // Both ways: the encoder writes these bytes, and the decoder reads them back to the entry.
  const both: { name: string; body: string; entry: ConntrackEntry }[] = [
    {
      name: 'SCTP with both verification tags',
      body: v4 + tlv(2, '84') + ports + tlv(17, '03') + tlv(18, '11223344') + tlv(19, 'aabbccdd') + tlv(6, '00000e10'),
      entry: plain(132, { timeout: 3600, protoinfo: { sctp: { state: 3, vtagOrig: 0x11223344, vtagReply: 0xaabbccdd } } }),
    },
    {
      name: 'SCTP with tags of zero',
      body: v4 + tlv(2, '84') + ports + tlv(17, '07') + tlv(18, '00000000') + tlv(19, '00000000'),
      entry: plain(132, { protoinfo: { sctp: { state: 7, vtagOrig: 0, vtagReply: 0 } } }),
    },
    {
      name: 'DCCP with its role',
      body: v4 + tlv(5, '0000000e') + tlv(2, '21') + ports + tlv(20, '04') + tlv(21, '01'),
      entry: plain(33, { status: 0xe, protoinfo: { dccp: { state: 4, role: 1 } } }),
    },
    {
      name: 'synproxy, every field its own',
      body: v4 + tlv(2, '06') + ports + tlv(4, '03') + tlv(31, '0a0b0c0d 01020304 fffffff0'),
      entry: plain(6, { protoinfo: { tcp: { state: 3 } }, synproxy: { its: 0x0a0b0c0d, isn: 0x01020304, tsoff: 0xfffffff0 } }),
    },
    {
      name: 'synproxy with only its',
      body: v4 + tlv(2, '06') + ports + tlv(31, '00000001 00000000 00000000'),
      entry: plain(6, { synproxy: { its: 1, isn: 0, tsoff: 0 } }),
    },
    {
      name: 'synproxy with only isn',
      body: v4 + tlv(2, '06') + ports + tlv(31, '00000000 00000001 00000000'),
      entry: plain(6, { synproxy: { its: 0, isn: 1, tsoff: 0 } }),
    },
    {
      name: 'synproxy with only tsoff',
      body: v4 + tlv(2, '06') + ports + tlv(31, '00000000 00000000 00000001'),
      entry: plain(6, { synproxy: { its: 0, isn: 0, tsoff: 1 } }),
    },
    {
      name: 'labels, synproxy and zone in conntrackd’s order',
      body: v4 + tlv(2, '06') + ports + tlv(28, '00000000 80000000') + tlv(31, '00000001 00000002 00000003') + tlv(32, 'ffff'),
      entry: plain(6, {
        labels: hex('00000000 00000080 00000000 00000000'),
        synproxy: { its: 1, isn: 2, tsoff: 3 },
        zone: 0xffff,
      }),
    },
    {
      name: 'labels with only the last word set: all four words',
      body: v4 + tlv(2, '06') + ports + tlv(28, '00000000 00000000 00000000 00000001'),
      entry: plain(6, { labels: hex('00000000 00000000 00000000 01000000') }),
    },
    {
      name: 'labels with only the first word set: one word',
      body: v4 + tlv(2, '06') + ports + tlv(28, '01020304'),
      entry: plain(6, { labels: hex('04030201 00000000 00000000 00000000') }),
    },
    {
      name: 'an IPv6 master with its ports, and a helper',
      body:
        tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
        tlv(2, '06') +
        ports +
        tlv(9, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
        tlv(10, '06') +
        tlv(11, '9c40 0015') +
        tlv(27, Buffer.from('ftp\0').toString('hex')),
      entry: {
        family: 10,
        orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 5000, dport: 5001 },
        reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 6, sport: 5001, dport: 5000 },
        master: { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 40000, dport: 21 },
        helper: 'ftp',
      },
    },
    {
      name: 'a latin1 helper name, one byte a character',
      body: v4 + tlv(2, '06') + ports + tlv(27, 'e96800'),
      entry: plain(6, { helper: '\u00e9h' }),
    },
    {
      name: 'a master without ports (GRE)',
      body: v4 + tlv(2, '06') + ports + tlv(8, '0a630102 0a630203') + tlv(10, '2f'),
      entry: plain(6, { master: { src: '10.99.1.2', dst: '10.99.2.3', proto: 47 } }),
    },
    {
      name: 'IPv6 SNAT of address and port',
      body:
        tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
        tlv(2, '11') +
        ports +
        tlv(29, '20010db8000000000000000000000009') +
        tlv(14, '3930'),
      entry: {
        family: 10,
        orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 5000, dport: 5001 },
        reply: { src: '2001:db8::2', dst: '2001:db8::9', proto: 17, sport: 5001, dport: 12345 },
      },
    },
    {
      name: 'IPv4 DNAT of address and port',
      body: v4 + tlv(2, '11') + ports + tlv(13, '0a630909') + tlv(15, '3930'),
      entry: {
        family: 2,
        orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 17, sport: 5000, dport: 5001 },
        reply: { src: '10.99.9.9', dst: '10.99.1.2', proto: 17, sport: 12345, dport: 5000 },
      },
    },
    {
      name: 'sequence adjustments of u32 values',
      body: v4 + tlv(2, '06') + ports + tlv(16, 'ffffffff 00000002 80000000 00000004 00000005 00000006'),
      entry: plain(6, {
        seqAdjOrig: { correctionPos: 0xffffffff, offsetBefore: 2, offsetAfter: 0x80000000 },
        seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 },
      }),
    },
    {
      name: 'ICMP with id 0x0102 little-endian',
      body: v4 + tlv(2, '01') + tlv(22, '0d') + tlv(23, '05') + tlv(24, '0201'),
      entry: {
        family: 2,
        orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 1, icmpType: 13, icmpCode: 5, icmpId: 0x0102 },
        reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 1, icmpType: 14, icmpCode: 5, icmpId: 0x0102 },
      },
    },
  ];
  for (const c of both) {
    it(`encodes ${c.name}`, () => {
      const w = new CtdWriter(1);
      expect(w.entry(1, CTD_F.HELLO_BACK, 0xfffffffe, c.entry)).toBe(true);
      expect(w.bytes().toString('hex')).toBe(msg(1, CTD_F.HELLO_BACK, 0xfffffffe, c.body));
    });
    it(`decodes ${c.name}`, () => {
      const r = decodeCtdDatagram(hex(msg(1, CTD_F.HELLO_BACK, 0xfffffffe, c.body)));
      expect(r.errors).toEqual([]);
      expect(r.messages).toStrictEqual([{ kind: 'ct', type: 1, flags: CTD_F.HELLO_BACK, seq: 0xfffffffe, entry: c.entry }]);
    });
  }

  // Encoder only: what an entry without the optional parts sends.
  const encoded: { name: string; entry: ConntrackEntry; body: string }[] = [
    {
      name: 'SCTP without tags sends tags of zero',
      entry: plain(132, { protoinfo: { sctp: { state: 2 } } }),
      body: v4 + tlv(2, '84') + ports + tlv(17, '02') + tlv(18, '00000000') + tlv(19, '00000000'),
    },
    {
      name: 'DCCP without a role sends role 0',
      entry: plain(33, { protoinfo: { dccp: { state: 5 } } }),
      body: v4 + tlv(2, '21') + ports + tlv(20, '05') + tlv(21, '00'),
    },
    {
      name: 'TCP, SCTP and DCCP at once, in that order',
      entry: plain(6, { protoinfo: { tcp: { state: 1, wscaleOrig: 7 }, sctp: { state: 2, vtagReply: 9 }, dccp: { state: 3, role: 2 } } }),
      body: v4 + tlv(2, '06') + ports + tlv(4, '01') + tlv(17, '02') + tlv(18, '00000000') + tlv(19, '00000009') + tlv(20, '03') + tlv(21, '02'),
    },
    {
      name: 'ICMP without code and id sends zeros',
      entry: {
        family: 2,
        orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 1, icmpType: 8 },
        reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 1, icmpType: 0 },
      },
      body: v4 + tlv(2, '01') + tlv(22, '08') + tlv(23, '00') + tlv(24, '0000'),
    },
    {
      name: 'only the original’s sequence adjustment: the reply’s is zeros',
      entry: plain(6, { seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 } }),
      body: v4 + tlv(2, '06') + ports + tlv(16, '00000001 00000002 00000003 00000000 00000000 00000000'),
    },
    {
      name: 'only the reply’s sequence adjustment: the original’s is zeros',
      entry: plain(6, { seqAdjReply: { correctionPos: 4, offsetBefore: 5, offsetAfter: 6 } }),
      body: v4 + tlv(2, '06') + ports + tlv(16, '00000000 00000000 00000000 00000004 00000005 00000006'),
    },
    {
      name: 'all-zero labels and zone 0 send nothing',
      entry: plain(6, { labels: Buffer.alloc(16), zone: 0 }),
      body: v4 + tlv(2, '06') + ports,
    },
    {
      name: 'labels of 8 bytes send their set word only',
      entry: plain(6, { labels: hex('00000000 00000001') }),
      body: v4 + tlv(2, '06') + ports + tlv(28, '00000000 01000000'),
    },
    {
      name: 'labels past 16 bytes: the words past the 128 bits are not sent',
      entry: plain(6, { labels: hex('01000000 00000000 00000000 00000000 ffffffff') }),
      body: v4 + tlv(2, '06') + ports + tlv(28, '00000001'),
    },
    {
      name: 'a helper name of 15 bytes (16 with the NUL) fits',
      entry: plain(6, { helper: 'h'.repeat(15) }),
      body: v4 + tlv(2, '06') + ports + tlv(27, Buffer.from('h'.repeat(15) + '\0').toString('hex')),
    },
    {
      name: 'a reply port equal to the mirror sends no port NAT, one of them changed sends only it',
      entry: { ...plain(6), reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 6, sport: 8080, dport: 5000 } },
      body: v4 + tlv(2, '06') + ports + tlv(15, '901f'),
    },
    {
      name: 'an original with only a source port sends no ports (PORT carries both)',
      entry: { family: 2, orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, sport: 5000 }, reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 6, dport: 5000 } },
      body: v4 + tlv(2, '06'),
    },
    {
      name: 'a master with only a source port sends no master ports',
      entry: plain(6, { master: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, sport: 21 } }),
      body: v4 + tlv(2, '06') + ports + tlv(8, '0a630102 0a630203') + tlv(10, '06'),
    },
    {
      name: 'an original with only a destination port sends no ports',
      entry: { family: 2, orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, dport: 80 }, reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 6, sport: 80 } },
      body: v4 + tlv(2, '06'),
    },
    {
      name: 'a master with only a destination port sends no master ports',
      entry: plain(6, { master: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6, dport: 21 } }),
      body: v4 + tlv(2, '06') + ports + tlv(8, '0a630102 0a630203') + tlv(10, '06'),
    },
    {
      name: 'a reply without ports sends no port NAT',
      entry: { ...plain(6), reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 6 } },
      body: v4 + tlv(2, '06') + ports,
    },
    {
      name: 'u32 fields written as unsigned',
      entry: plain(6, { status: -1, timeout: -2, mark: 2 ** 32 + 5, synproxy: { its: -1, isn: -2, tsoff: -3 } }),
      body:
        v4 + tlv(5, 'ffffffff') + tlv(2, '06') + ports + tlv(6, 'fffffffe') + tlv(7, '00000005') + tlv(31, 'ffffffff fffffffe fffffffd'),
    },
  ];
  for (const c of encoded) {
    it(`encodes: ${c.name}`, () => {
      const w = new CtdWriter(1);
      expect(w.entry(0, 0, 3, c.entry)).toBe(true);
      expect(w.bytes().toString('hex')).toBe(msg(0, 0, 3, c.body));
    });
  }

  it('refuses a helper name of 16 bytes (17 with the NUL), writing nothing', () => {
    const w = new CtdWriter();
    expect(w.entry(0, 0, 3, plain(6, { helper: 'h'.repeat(16) }))).toBe(false);
    expect(w.length).toBe(0);
  });

  it.each([
    { name: 'an IPv4 entry with an IPv6 master', entry: plain(6, { master: { src: '2001:db8::1', dst: '2001:db8::2', proto: 6 } }) },
    { name: 'a master whose destination does not parse', entry: plain(6, { master: { src: '10.0.0.1', dst: 'x', proto: 6 } }) },
    { name: 'a SNAT address that does not parse', entry: { ...plain(6), reply: { ...plain(6).reply, dst: 'x' } } },
    { name: 'a DNAT address that does not parse', entry: { ...plain(6), reply: { ...plain(6).reply, src: 'x' } } },
    { name: 'an original destination that does not parse', entry: { ...plain(6), orig: { ...plain(6).orig, dst: 'x' } } },
    {
      name: 'an IPv6 entry with an IPv4 address',
      entry: { ...plain(6), family: 10 as const, orig: { ...plain(6).orig, src: '2001:db8::1' } },
    },
  ])('refuses $name after a message already written, which stays whole', ({ entry }) => {
    const w = new CtdWriter(1);
    expect(w.entry(0, 0, 1, TCP_SNAT)).toBe(true);
    const before = Buffer.from(w.bytes());
    expect(w.entry(0, 0, 2, entry)).toBe(false);
    expect(w.bytes()).toEqual(before);
    expect(w.entry(2, 0, 3, TCP_SNAT)).toBe(true);
    expect(w.bytes().toString('hex')).toBe(msg(0, 0, 1, TCP_SNAT_BODY) + msg(2, 0, 3, TCP_SNAT_BODY));
  });

  // Decoder only: what conntrackd may send that ctsyncd's encoder does not.
  const decoded: { name: string; body: string; entry: ConntrackEntry }[] = [
    {
      name: 'TCP window scales',
      body: v4 + tlv(2, '06') + ports + tlv(4, '03') + tlv(25, '07') + tlv(26, '0e'),
      entry: plain(6, { protoinfo: { tcp: { state: 3, wscaleOrig: 7, wscaleReply: 14 } } }),
    },
    {
      name: 'a reply window scale alone',
      body: v4 + tlv(2, '06') + ports + tlv(4, '03') + tlv(26, '02'),
      entry: plain(6, { protoinfo: { tcp: { state: 3, wscaleReply: 2 } } }),
    },
    {
      name: 'window scales without a TCP state: dropped',
      body: v4 + tlv(2, '06') + ports + tlv(25, '07') + tlv(26, '0e'),
      entry: plain(6),
    },
    {
      name: 'SCTP with only the reply tag',
      body: v4 + tlv(2, '84') + ports + tlv(17, '01') + tlv(19, '00000005'),
      entry: plain(132, { protoinfo: { sctp: { state: 1, vtagReply: 5 } } }),
    },
    {
      name: 'SCTP with only the original tag',
      body: v4 + tlv(2, '84') + ports + tlv(17, '01') + tlv(18, '00000006'),
      entry: plain(132, { protoinfo: { sctp: { state: 1, vtagOrig: 6 } } }),
    },
    {
      name: 'SCTP tags without a state: dropped',
      body: v4 + tlv(2, '84') + ports + tlv(18, '00000006') + tlv(19, '00000005'),
      entry: plain(132),
    },
    {
      name: 'DCCP without a role',
      body: v4 + tlv(2, '21') + ports + tlv(20, '02'),
      entry: plain(33, { protoinfo: { dccp: { state: 2 } } }),
    },
    {
      name: 'a DCCP role without a state: dropped',
      body: v4 + tlv(2, '21') + ports + tlv(21, '01'),
      entry: plain(33),
    },
    {
      name: 'synproxy of zeros (what ctnetlink gives every entry): dropped',
      body: v4 + tlv(2, '06') + ports + tlv(31, '00000000 00000000 00000000'),
      entry: plain(6),
    },
    {
      name: 'an IPv4 master beside an IPv6 entry: ignored',
      body:
        tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
        tlv(2, '06') +
        ports +
        tlv(8, '0a630102 0a630203'),
      entry: {
        family: 10,
        orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 5000, dport: 5001 },
        reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 6, sport: 5001, dport: 5000 },
      },
    },
    {
      name: 'IPv4 NAT beside an IPv6 entry: ignored',
      body:
        tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') +
        tlv(2, '06') +
        ports +
        tlv(12, '0a630909') +
        tlv(13, '0a630808'),
      entry: {
        family: 10,
        orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 5000, dport: 5001 },
        reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 6, sport: 5001, dport: 5000 },
      },
    },
    {
      name: 'IPv6 NAT beside an IPv4 entry: ignored',
      body: v4 + tlv(2, '06') + ports + tlv(29, '20010db8000000000000000000000009') + tlv(30, '20010db8000000000000000000000008'),
      entry: plain(6),
    },
    {
      name: 'an attribute sent twice: the last one wins',
      body: v4 + tlv(2, '06') + ports + tlv(7, '00000001') + tlv(7, '00000002'),
      entry: plain(6, { mark: 2 }),
    },
    {
      name: 'both address attributes: IPv6 wins',
      body: v4 + tlv(1, '20010db8000000000000000000000001 20010db8000000000000000000000002') + tlv(2, '06'),
      entry: {
        family: 10,
        orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 6 },
        reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 6 },
      },
    },
    {
      name: 'labels of one word, the second label bit set',
      body: v4 + tlv(2, '06') + tlv(28, '00000002'),
      entry: {
        family: 2,
        orig: { src: '10.99.1.2', dst: '10.99.2.3', proto: 6 },
        reply: { src: '10.99.2.3', dst: '10.99.1.2', proto: 6 },
        labels: hex('02000000 00000000 00000000 00000000'),
      },
    },
  ];
  for (const c of decoded) {
    it(`decodes: ${c.name}`, () => {
      const r = decodeCtdDatagram(hex(msg(0, 0, 3, c.body)));
      expect(r.errors).toEqual([]);
      expect(r.messages).toStrictEqual([{ kind: 'ct', type: 0, flags: 0, seq: 3, entry: c.entry }]);
    });
  }
});

// Expectations: the optional attributes each present and absent, the
// strings at conntrackd's bounds, and every refusal with its reason.
describe('conntrackd codec: expectation attributes one by one', () => {
  const tuples = FTP_EXP_BODY.slice(0, FTP_EXP_BODY.indexOf(tlv(12, '0000012c')));
  const bare: ExpectEntry = { family: 2, master: FTP_EXP.master, tuple: FTP_EXP.tuple, mask: FTP_EXP.mask };
  const str = (s: string) => Buffer.from(s + '\0', 'latin1').toString('hex');

  const both: { name: string; body: string; entry: ExpectEntry }[] = [
    { name: 'no timeout, class, helper or NAT (flags 0 always sent)', body: tuples + tlv(13, '00000000'), entry: { ...bare, flags: 0 } },
    {
      name: 'a NAT tuple without ports, its protocol its own',
      body: tuples + tlv(13, '00000000') + tlv(15, '0a5c0909 0a5c0808') + tlv(17, '11') + tlv(18, '00000000'),
      entry: { ...bare, flags: 0, nat: { dir: 0, tuple: { src: '10.92.9.9', dst: '10.92.8.8', proto: 17 } } },
    },
    {
      name: 'a helper name of 11 bytes (12 with the NUL, conntrackd’s bound)',
      body: tuples + tlv(13, '00000000') + tlv(19, str('h'.repeat(11))),
      entry: { ...bare, flags: 0, helper: 'h'.repeat(11) },
    },
    {
      name: 'a function name of 27 bytes (28 with the NUL)',
      body: tuples + tlv(13, '00000000') + tlv(20, str('f'.repeat(27))),
      entry: { ...bare, flags: 0, fn: 'f'.repeat(27) },
    },
    {
      name: 'an empty helper name (only the NUL)',
      body: tuples + tlv(13, '00000000') + tlv(19, '00'),
      entry: { ...bare, flags: 0, helper: '' },
    },
    {
      name: 'a latin1 helper name, one byte a character',
      body: tuples + tlv(13, '00000000') + tlv(19, 'e9e800'),
      entry: { ...bare, flags: 0, helper: '\u00e9\u00e8' },
    },
    {
      name: 'tuples without ports (GRE)',
      body:
        tlv(0, '0a5c0001 0a5c0002') +
        tlv(2, '2f') +
        tlv(4, '0a5c0002 0a5c0001') +
        tlv(6, '2f') +
        tlv(8, 'ffffffff ffffffff') +
        tlv(10, '2f') +
        tlv(13, '00000000'),
      entry: {
        family: 2,
        master: { src: '10.92.0.1', dst: '10.92.0.2', proto: 47 },
        tuple: { src: '10.92.0.2', dst: '10.92.0.1', proto: 47 },
        mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 47 },
        flags: 0,
      },
    },
  ];
  for (const c of both) {
    it(`encodes ${c.name}`, () => {
      const w = new CtdWriter(1);
      expect(w.expect(4, CTD_F.HELLO, 7, c.entry)).toBe(true);
      expect(w.bytes().toString('hex')).toBe(msg(4, CTD_F.HELLO, 7, c.body));
    });
    it(`decodes ${c.name}`, () => {
      const r = decodeCtdDatagram(hex(msg(4, CTD_F.HELLO, 7, c.body)));
      expect(r.errors).toEqual([]);
      expect(r.messages).toStrictEqual([{ kind: 'exp', type: 4, flags: CTD_F.HELLO, seq: 7, entry: c.entry }]);
    });
  }

  it.each([
    { name: 'zone 0 (the format’s only zone) is sent as no zone', entry: { ...bare, zone: 0 }, body: tuples + tlv(13, '00000000') },
    {
      name: 'tuples with one port only send no ports',
      entry: {
        ...bare,
        master: { ...bare.master, dport: undefined },
        tuple: { src: '10.92.0.2', dst: '10.92.0.1', proto: 6, dport: 50000 },
        mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 6, sport: 0 },
      },
      body:
        tlv(0, '0a5c0001 0a5c0002') +
        tlv(2, '06') +
        tlv(4, '0a5c0002 0a5c0001') +
        tlv(6, '06') +
        tlv(8, 'ffffffff ffffffff') +
        tlv(10, '06') +
        tlv(13, '00000000'),
    },
    {
      name: 'a NAT tuple with only a destination port sends no NAT ports',
      entry: { ...bare, nat: { dir: 1, tuple: { src: '10.92.9.9', dst: '0.0.0.0', proto: 6, dport: 2121 } } },
      body: tuples + tlv(13, '00000000') + tlv(15, '0a5c0909 00000000') + tlv(17, '06') + tlv(18, '00000001'),
    },
    {
      name: 'a NAT tuple with one port only sends no NAT ports',
      entry: { ...bare, nat: { dir: 1, tuple: { src: '10.92.9.9', dst: '0.0.0.0', proto: 6, sport: 2121 } } },
      body: tuples + tlv(13, '00000000') + tlv(15, '0a5c0909 00000000') + tlv(17, '06') + tlv(18, '00000001'),
    },
  ])('encodes: $name', ({ entry, body }) => {
    const w = new CtdWriter(1);
    expect(w.expect(3, 0, 1, entry)).toBe(true);
    expect(w.bytes().toString('hex')).toBe(msg(3, 0, 1, body));
  });

  it('writes each message’s own length when several share the writer', () => {
    const w = new CtdWriter(1);
    w.control(CTD_F.ALIVE, 1);
    expect(w.expect(3, 0, 2, FTP_EXP)).toBe(true);
    expect(w.expect(5, 0, 3, SIP6_EXP)).toBe(true);
    expect(w.bytes().toString('hex')).toBe('1a100008' + '00000001' + msg(3, 0, 2, FTP_EXP_BODY) + msg(5, 0, 3, SIP6_EXP_BODY));
  });

  it.each([
    { name: 'a helper name of 12 bytes (13 with the NUL)', entry: { ...bare, helper: 'h'.repeat(12) } },
    { name: 'a function name of 28 bytes (29 with the NUL)', entry: { ...bare, fn: 'f'.repeat(28) } },
    { name: 'an IPv6 expectation with an IPv4 NAT tuple', entry: { ...SIP6_EXP, nat: { dir: 0, tuple: { src: '10.0.0.1', dst: '10.0.0.2', proto: 17 } } } },
    { name: 'a NAT address that does not parse', entry: { ...bare, nat: { dir: 0, tuple: { src: '10.0.0.1', dst: 'x', proto: 6 } } } },
    { name: 'a master address that does not parse', entry: { ...bare, master: { ...bare.master, dst: 'x' } } },
    { name: 'a mask address that does not parse', entry: { ...bare, mask: { ...bare.mask, src: 'x' } } },
    { name: 'zone 1', entry: { ...bare, zone: 1 } },
  ])('refuses $name, the message before it kept whole', ({ entry }) => {
    const w = new CtdWriter(1);
    expect(w.expect(3, 0, 1, FTP_EXP)).toBe(true);
    expect(w.expect(3, 0, 2, entry)).toBe(false);
    expect(w.bytes().toString('hex')).toBe(msg(3, 0, 1, FTP_EXP_BODY));
  });

  const decoded: { name: string; body: string; entry: ExpectEntry }[] = [
    { name: 'no flags at all', body: tuples, entry: bare },
    {
      name: 'a NAT address alone: the expected tuple’s protocol, direction 0, no ports',
      body: tuples + tlv(15, '0a5c0909 00000000'),
      entry: { ...bare, nat: { dir: 0, tuple: { src: '10.92.9.9', dst: '0.0.0.0', proto: 6 } } },
    },
    {
      name: 'a helper name of 16 bytes with its NUL (the kernel’s bound, past conntrackd’s)',
      body: tuples + tlv(19, str('h'.repeat(15))),
      entry: { ...bare, helper: 'h'.repeat(15) },
    },
    {
      name: 'a 4-byte tail of padding after the attributes',
      body: tuples + tlv(12, '0000012c') + '00000000',
      entry: { ...bare, timeout: 300 },
    },
    {
      name: 'NAT attributes of an IPv6 expectation: ignored (the format has no IPv6 NAT)',
      body: SIP6_EXP_BODY + tlv(15, '0a5c0909 00000000') + tlv(18, '00000001'),
      entry: SIP6_EXP,
    },
  ];
  for (const c of decoded) {
    it(`decodes: ${c.name}`, () => {
      const r = decodeCtdDatagram(hex(msg(3, 0, 1, c.body)));
      expect(r.errors).toEqual([]);
      expect(r.messages).toStrictEqual([{ kind: 'exp', type: 3, flags: 0, seq: 1, entry: c.entry }]);
    });
  }

  const v6tuples = SIP6_EXP_BODY.slice(0, SIP6_EXP_BODY.indexOf(tlv(12, '0000003c')));
  it.each([
    { name: 'nta_len 3', body: '00030000 00000000', reason: 'attribute at 8: nta_len 3', code: 'EDECODE' },
    { name: 'nta_len one past the message', body: tuples + '000b000c 00000000 0000', reason: 'attribute at 92: nta_len 11', code: 'EDECODE' },
    { name: 'attribute id 21', body: tuples + tlv(21, '00000000'), reason: 'expectation attribute at 92: unknown id 21', code: 'EDECODE' },
    { name: 'a timeout of 2 bytes', body: tuples + tlv(12, '0001'), reason: 'expectation attribute 12: 2 bytes, not 4', code: 'EDECODE' },
    { name: 'no master address', body: tuples.replace(tlv(0, '0a5c0001 0a5c0002'), ''), reason: 'no MASTER IPV4 attribute', code: 'EVALUE' },
    { name: 'no expected IPv6 address', body: v6tuples.replace(tlv(5, '20010db8000000000000000000000002 20010db8000000000000000000000001'), ''), reason: 'no EXPECT IPV6 attribute', code: 'EVALUE' },
    { name: 'no expected protocol', body: tuples.replace(tlv(6, '06'), ''), reason: 'no EXPECT L4PROTO attribute', code: 'EVALUE' },
    { name: 'no mask protocol', body: tuples.replace(tlv(10, '06'), ''), reason: 'no MASK L4PROTO attribute', code: 'EVALUE' },
    { name: 'a helper name of 17 bytes', body: tuples + tlv(19, str('h'.repeat(16))), reason: 'helper name of 17 bytes, not NUL-terminated within 16', code: 'EVALUE' },
    { name: 'an empty helper name (nta_len 4, not at the end)', body: tlv(19, '') + tuples, reason: 'helper name of 0 bytes, not NUL-terminated within 16', code: 'EVALUE' },
    { name: 'a function name without NUL', body: tuples + tlv(20, '6e6174'), reason: 'expectation function name of 3 bytes, not NUL-terminated within 28', code: 'EVALUE' },
    { name: 'a function name of 29 bytes', body: tuples + tlv(20, str('f'.repeat(28))), reason: 'expectation function name of 29 bytes, not NUL-terminated within 28', code: 'EVALUE' },
  ])('$name: refused with its reason', ({ body, reason, code }) => {
    const r = decodeCtdDatagram(hex(msg(3, 0, 1, body) + msg(0, 0, 2, TCP_SNAT_BODY)));
    expect(r.errors).toEqual([{ code, reason: `message at 0: ${reason}` }]);
    expect(r.messages.map((m) => m.seq)).toEqual([2]);
  });

  it('ctdHelloFlags keeps only HELLO and HELLO_BACK', () => {
    expect([ctdHelloFlags(0xff), ctdHelloFlags(CTD_F.HELLO | CTD_F.ACK), ctdHelloFlags(CTD_F.ALIVE | CTD_F.RESYNC)]).toEqual([0x60, 0x20, 0]);
  });
});
