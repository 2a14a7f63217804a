// IPFIX export of the flow log (issue 16): the encoder's bytes against
// tables written from RFC 7011 and the IANA registry, message splitting and
// sequence numbers read back by a parser of the test's own, and the
// exporter's drops counted when the collector cannot be reached.
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { type DatagramSender, IpfixExporter } from '../../src/flowlog/ipfix-exporter.js';
import { UdpSender } from '../../src/flowlog/udp-sender.js';
import {
  encodeMessages,
  type IpfixFlow,
  ipfixFlowOf,
  minimumMessageBytes,
  NAT_EVENT,
  recordLength,
  TEMPLATE_ID,
  type TemplateId,
  writeDataRecord,
  writeTemplateSet,
} from '../../src/flowlog/ipfix.js';
import { AF_INET, AF_INET6, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { silentLogger } from '../../src/log.js';

const T = Date.UTC(2026, 11, 7, 2, 0, 0, 123);
const hex = (s: string): string => s.replace(/\s+/g, '');

/** The template set with one template, as RFC 7011 3.4.1 lays it out (field ids from the IANA registry). */
const FLOW4_TEMPLATE_SET = hex(`
  0002 003c  0100 000b
  0008 0004  000c 0004  0007 0002  000b 0002  0004 0001
  0098 0008  0099 0008  0001 0008  0002 0008
  8001 0008 00007279  8002 0008 00007279`);
const NAT4_TEMPLATE_SET = hex(`
  0002 0050  0101 0010
  0008 0004  000c 0004  0007 0002  000b 0002  0004 0001
  0098 0008  0099 0008  0001 0008  0002 0008
  8001 0008 00007279  8002 0008 00007279
  00e1 0004  00e2 0004  00e3 0002  00e4 0002  00e6 0001`);
const NAT6_TEMPLATE_SET = hex(`
  0002 0050  0103 0010
  001b 0010  001c 0010  0007 0002  000b 0002  0004 0001
  0098 0008  0099 0008  0001 0008  0002 0008
  8001 0008 00007279  8002 0008 00007279
  0119 0010  011a 0010  00e3 0002  00e4 0002  00e6 0001`);

const NAT4_FLOW: IpfixFlow = {
  template: TEMPLATE_ID.nat4,
  src: '10.99.1.5',
  dst: '198.51.100.9',
  sport: 50005,
  dport: 443,
  proto: IPPROTO.TCP,
  startMs: T,
  endMs: T + 5000,
  origBytes: 1234n,
  origPackets: 10n,
  replyBytes: 5678n,
  replyPackets: 12n,
  nat: { src: '203.0.113.7', dst: '198.51.100.9', sport: 40005, dport: 443, event: NAT_EVENT.nat44SessionDelete },
};
/** NAT4_FLOW's record, field by field. */
const NAT4_RECORD = hex(`
  0a630105 c6336409 c355 01bb 06
  000001a24e3ab57b 000001a24e3ac903
  00000000000004d2 000000000000000a 000000000000162e 000000000000000c
  cb007107 c6336409 9c45 01bb 05`);

function written(f: (out: Buffer) => number): string {
  const out = Buffer.alloc(2048);
  const end = f(out);
  return end < 0 ? 'invalid' : out.subarray(0, end).toString('hex');
}

describe('IPFIX templates and data records', () => {
  it.each([
    ['IPv4 flow', [TEMPLATE_ID.flow4], FLOW4_TEMPLATE_SET],
    ['IPv4 NAT', [TEMPLATE_ID.nat4], NAT4_TEMPLATE_SET],
    ['IPv6 NAT (281/282)', [TEMPLATE_ID.nat6], NAT6_TEMPLATE_SET],
  ] as [string, TemplateId[], string][])('template set: %s', (_name, ids, bytes) => {
    expect(written((out) => writeTemplateSet(ids, out, 0))).toBe(bytes);
  });

  it('two templates share one set, its length covering both', () => {
    const both = written((out) => writeTemplateSet([TEMPLATE_ID.flow4, TEMPLATE_ID.nat4], out, 0));
    expect(both).toBe(`00020088${FLOW4_TEMPLATE_SET.slice(8)}${NAT4_TEMPLATE_SET.slice(8)}`);
  });

  it('a NAT data record carries the fields in the template order', () => {
    expect(written((out) => writeDataRecord(NAT4_FLOW, out, 0))).toBe(NAT4_RECORD);
    expect(recordLength(TEMPLATE_ID.nat4)).toBe(NAT4_RECORD.length / 2);
  });

  it('an IPv6 flow record: 16-byte addresses', () => {
    const f: IpfixFlow = {
      template: TEMPLATE_ID.flow6,
      src: '2001:db8::1',
      dst: 'fd00::2',
      sport: 1,
      dport: 2,
      proto: IPPROTO.UDP,
      startMs: 1,
      endMs: 2,
      origBytes: 3n,
      origPackets: 4n,
      replyBytes: 5n,
      replyPackets: 6n,
    };
    expect(written((out) => writeDataRecord(f, out, 0))).toBe(
      hex(`20010db8000000000000000000000001 fd000000000000000000000000000002 0001 0002 11
           0000000000000001 0000000000000002 0000000000000003 0000000000000004 0000000000000005 0000000000000006`),
    );
    expect(recordLength(TEMPLATE_ID.flow6)).toBe(85);
  });

  it.each([
    ['an IPv6 address in an IPv4 template', { ...NAT4_FLOW, src: '2001:db8::1' }],
    ['an IPv4 address in an IPv6 template', { ...NAT4_FLOW, template: TEMPLATE_ID.nat6 }],
    ['a translation missing from a NAT template', { ...NAT4_FLOW, nat: undefined }],
    ['a translation in a template without one', { ...NAT4_FLOW, template: TEMPLATE_ID.flow4 }],
    ['a bad post-NAT address', { ...NAT4_FLOW, nat: { ...NAT4_FLOW.nat!, dst: '198.51.100' } }],
  ] as [string, IpfixFlow][])('refuses %s (-1, no exception)', (_name, f) => {
    expect(written((out) => writeDataRecord(f, out, 0))).toBe('invalid');
  });

  it('counters beyond 64 bits and negative times are clamped, not thrown', () => {
    const f = { ...NAT4_FLOW, origBytes: 1n << 70n, startMs: -5 };
    const out = written((o) => writeDataRecord(f, o, 0));
    expect(out.slice(26, 42)).toBe('0000000000000000');
    expect(out.slice(58, 74)).toBe('ffffffffffffffff');
  });
});

/** A natted TCP flow as the kernel reports it. */
function natted(extra: Partial<ConntrackEntry> = {}): ConntrackEntry {
  return {
    family: AF_INET,
    orig: { src: '10.99.1.5', dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 50005, dport: 443 },
    reply: { src: '198.51.100.9', dst: '203.0.113.7', proto: IPPROTO.TCP, sport: 443, dport: 40005 },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED | IPS.SRC_NAT | IPS.SRC_NAT_DONE,
    ...extra,
  };
}

describe('which events are exported, and as what', () => {
  const NOW = T + 60_000;

  it('a finished NAT flow: NAT44 session delete, kernel timestamps and per-direction counters', () => {
    const e = natted({
      timestamp: { start: BigInt(T) * 1_000_000n + 456n, stop: BigInt(T + 5000) * 1_000_000n },
      countersOrig: { packets: 10n, bytes: 1234n },
      countersReply: { packets: 12n, bytes: 5678n },
    });
    expect(ipfixFlowOf('destroy', e, NOW)).toEqual(NAT4_FLOW);
  });

  it('a new NAT flow: NAT44 session create, start and end at its start, no counters', () => {
    expect(ipfixFlowOf('new', natted(), NOW)).toEqual({
      ...NAT4_FLOW,
      startMs: NOW,
      endMs: NOW,
      origBytes: 0n,
      origPackets: 0n,
      replyBytes: 0n,
      replyPackets: 0n,
      nat: { ...NAT4_FLOW.nat, event: NAT_EVENT.nat44SessionCreate },
    });
  });

  it('a DNAT flow: the post-NAT destination is where the reply came from', () => {
    const e = natted({
      orig: { src: '198.51.100.9', dst: '203.0.113.7', proto: IPPROTO.TCP, sport: 1234, dport: 80 },
      reply: { src: '10.99.2.2', dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 8080, dport: 1234 },
    });
    expect(ipfixFlowOf('destroy', e, NOW)?.nat).toEqual({ src: '198.51.100.9', dst: '10.99.2.2', sport: 1234, dport: 8080, event: 5 });
  });

  it('not exported: updates, and new flows without a translation', () => {
    const plain = natted({ reply: { src: '198.51.100.9', dst: '10.99.1.5', proto: IPPROTO.TCP, sport: 443, dport: 50005 } });
    expect(ipfixFlowOf('update', natted(), NOW)).toBeUndefined();
    expect(ipfixFlowOf('new', plain, NOW)).toBeUndefined();
    expect(ipfixFlowOf('destroy', plain, NOW)).toMatchObject({ template: TEMPLATE_ID.flow4, startMs: NOW, endMs: NOW });
    expect(ipfixFlowOf('destroy', plain, NOW)?.nat).toBeUndefined();
  });

  it('IPv6: the v6 templates, translations with the family-less natEvent codes, ICMP with port 0', () => {
    const v6: ConntrackEntry = {
      family: AF_INET6,
      orig: { src: 'fd00::5', dst: '2001:db8::9', proto: IPPROTO.ICMPV6, icmpType: 128, icmpCode: 0, icmpId: 7 },
      reply: { src: '2001:db8::9', dst: '2001:db8:1::5', proto: IPPROTO.ICMPV6, icmpType: 129, icmpCode: 0, icmpId: 7 },
    };
    expect(ipfixFlowOf('new', v6, NOW)).toMatchObject({
      template: TEMPLATE_ID.nat6,
      sport: 0,
      dport: 0,
      nat: { src: '2001:db8:1::5', dst: '2001:db8::9', event: NAT_EVENT.translationCreate },
    });
  });
});

// --- messages, read back by a parser written from RFC 7011 alone ----------

interface ParsedMessage {
  length: number;
  exportTime: number;
  sequence: number;
  domain: number;
  templateSets: number;
  /** Data records by template id, in order: each record's bytes as hex. */
  records: { template: number; hex: string }[];
}

function parseMessage(b: Buffer): ParsedMessage {
  expect(b.readUInt16BE(0)).toBe(10);
  const m: ParsedMessage = {
    length: b.readUInt16BE(2),
    exportTime: b.readUInt32BE(4),
    sequence: b.readUInt32BE(8),
    domain: b.readUInt32BE(12),
    templateSets: 0,
    records: [],
  };
  expect(m.length).toBe(b.length);
  let o = 16;
  while (o < b.length) {
    const id = b.readUInt16BE(o);
    const len = b.readUInt16BE(o + 2);
    expect(len).toBeGreaterThan(4);
    expect(o + len).toBeLessThanOrEqual(b.length);
    if (id === 2) m.templateSets++;
    else {
      const rl = recordLength(id as TemplateId);
      expect((len - 4) % rl).toBe(0);
      for (let r = o + 4; r < o + len; r += rl) m.records.push({ template: id, hex: b.subarray(r, r + rl).toString('hex') });
    }
    o += len;
  }
  expect(o).toBe(b.length);
  return m;
}

const flowArb: fc.Arbitrary<IpfixFlow> = fc
  .record({
    nat: fc.boolean(),
    v6: fc.boolean(),
    a: fc.integer({ min: 1, max: 254 }),
    port: fc.integer({ min: 0, max: 65535 }),
    bytes: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  })
  .map(({ nat, v6, a, port, bytes }) => {
    const addr = (n: number): string => (v6 ? `2001:db8::${n.toString(16)}` : `10.99.${n}.1`);
    const template = v6 ? (nat ? TEMPLATE_ID.nat6 : TEMPLATE_ID.flow6) : nat ? TEMPLATE_ID.nat4 : TEMPLATE_ID.flow4;
    const f: IpfixFlow = {
      template,
      src: addr(a),
      dst: addr(255 - a),
      sport: port,
      dport: 65535 - port,
      proto: 17,
      startMs: T,
      endMs: T + a,
      origBytes: bytes,
      origPackets: 1n,
      replyBytes: 2n,
      replyPackets: 3n,
    };
    if (nat) f.nat = { src: addr(a + 1), dst: addr(255 - a), sport: port ^ 1, dport: 65535 - port, event: 5 };
    return f;
  });

describe('IPFIX messages', () => {
  const base = { observationDomainId: 7, exportTime: 1_796_608_800, sequence: 0, maxBytes: 1472, withTemplates: true };

  it('one message: header, the templates, one data set; sequence number 0 for the first', () => {
    const out = encodeMessages([NAT4_FLOW, NAT4_FLOW], base);
    expect(out.messages).toHaveLength(1);
    expect(out.records).toEqual([2]);
    expect(out.sequence).toBe(2);
    const b = out.messages[0]!;
    // Header: version 10, length, export time, sequence, domain (RFC 7011 3.1).
    expect(b.subarray(0, 16).toString('hex')).toBe(`000a${b.length.toString(16).padStart(4, '0')}6b1613200000000000000007`);
    const m = parseMessage(b);
    expect(m.templateSets).toBe(1);
    // The data set right after the template set: id 257, both records.
    expect(b.toString('hex').endsWith(`0101${(4 + 2 * 74).toString(16).padStart(4, '0')}${NAT4_RECORD}${NAT4_RECORD}`)).toBe(true);
  });

  it('without templates and flows, nothing; templates alone when asked for', () => {
    expect(encodeMessages([], { ...base, withTemplates: false }).messages).toEqual([]);
    const alone = encodeMessages([], base);
    expect(alone.records).toEqual([0]);
    expect(parseMessage(alone.messages[0]!)).toMatchObject({ templateSets: 1, records: [], sequence: 0 });
  });

  it('splits across messages no longer than maxBytes; each sequence number counts the records sent before it', () => {
    fc.assert(
      fc.property(
        fc.array(flowArb, { maxLength: 120 }),
        fc.integer({ min: minimumMessageBytes(), max: 2000 }),
        fc.nat({ max: 0xffffffff }),
        fc.boolean(),
        (flows, maxBytes, start, withTemplates) => {
          const out = encodeMessages(flows, { ...base, maxBytes, sequence: start, withTemplates });
          const parsed = out.messages.map(parseMessage);
          let seq = start;
          const got: string[] = [];
          parsed.forEach((m, i) => {
            expect(m.length).toBeLessThanOrEqual(maxBytes);
            expect(m.sequence).toBe(seq);
            expect(m.records).toHaveLength(out.records[i]!);
            expect(m.templateSets).toBe(withTemplates && i === 0 ? 1 : 0);
            seq = (seq + m.records.length) % 2 ** 32;
            for (const r of m.records) got.push(`${r.template}:${r.hex}`);
          });
          expect(out.sequence).toBe(seq);
          expect(out.invalid).toBe(0);
          // Every record, in order, each exactly as writeDataRecord writes it alone.
          expect(got).toEqual(flows.map((f) => `${f.template}:${written((o) => writeDataRecord(f, o, 0))}`));
          // A message ends only when the next record would not have fitted.
          parsed.slice(0, -1).forEach((m, i) => {
            const next = parsed[i + 1]!.records[0]!;
            const sameSet = m.records.at(-1)?.template === next.template;
            expect(m.length + recordLength(next.template as TemplateId) + (sameSet ? 0 : 4)).toBeGreaterThan(maxBytes);
          });
        },
      ),
    );
  });

  it('1472 bytes (Ethernet, IPv4) hold 16 NAT records besides the templates, 19 without; the sequence wraps at 2^32', () => {
    const flows = Array.from({ length: 40 }, () => NAT4_FLOW);
    const out = encodeMessages(flows, { ...base, sequence: 0xffff_fff0 });
    // 16 + 268 (templates) + 4 + 16 × 74 = 1472 exactly; without templates 16 + 4 + 19 × 74 = 1426 (a 20th: 1500).
    expect(out.records).toEqual([16, 19, 5]);
    expect(out.messages.map((m) => m.length)).toEqual([1472, 1426, 16 + 4 + 5 * 74]);
    expect(out.messages.map((m) => m.readUInt32BE(8))).toEqual([0xffff_fff0, 0, 19]);
    expect(out.sequence).toBe(24);
  });

  it('a record that does not encode is skipped and counted; no empty set is left behind', () => {
    const bad = { ...NAT4_FLOW, template: TEMPLATE_ID.flow4 };
    const out = encodeMessages([bad, NAT4_FLOW, bad], { ...base, withTemplates: false });
    expect(out.invalid).toBe(2);
    expect(out.sequence).toBe(1);
    const m = parseMessage(out.messages[0]!);
    expect(m.records.map((r) => r.template)).toEqual([TEMPLATE_ID.nat4]);
    expect(out.messages[0]!.length).toBe(16 + 4 + 74);
  });

  it('refuses a message size that cannot hold the templates and a record (EIPFIX_SIZE)', () => {
    expect(() => encodeMessages([], { ...base, maxBytes: minimumMessageBytes() - 1 })).toThrow(expect.objectContaining({ code: 'EIPFIX_SIZE' }));
  });
});

// --- the exporter -------------------------------------------------------------

/** The exporter's socket, answering each send when the test says so. */
class FakeSender implements DatagramSender {
  readonly sent: Buffer[] = [];
  readonly waiting: ((err: Error | null) => void)[] = [];
  closed = false;
  send(msg: Buffer, done: (err: Error | null) => void): void {
    this.sent.push(msg);
    this.waiting.push(done);
  }
  answer(err: Error | null = null): void {
    for (const d of this.waiting.splice(0)) d(err);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function exporter(sender: FakeSender, clock: { t: number }, refreshMs = 600_000): IpfixExporter {
  return new IpfixExporter({
    sender,
    observationDomainId: 3,
    templateRefreshMs: refreshMs,
    maxMessageBytes: 1472,
    now: () => clock.t,
    log: silentLogger,
  });
}

describe('IpfixExporter', () => {
  const destroy = natted({ countersOrig: { packets: 1n, bytes: 2n } });

  it('sends one batch as messages, templates first and again after the refresh interval', () => {
    const sender = new FakeSender();
    const clock = { t: T };
    const x = exporter(sender, clock, 10_000);
    for (let i = 0; i < 3; i++) x.write('destroy', destroy, () => '', clock.t);
    x.write('update', destroy, () => '', clock.t);
    x.endBatch();
    sender.answer();
    expect(sender.sent.map((b) => parseMessage(b)).map((m) => [m.templateSets, m.records.length, m.sequence, m.domain])).toEqual([[1, 3, 0, 3]]);
    clock.t += 9_999;
    x.write('destroy', destroy, () => '', clock.t);
    x.endBatch();
    clock.t += 1;
    x.write('destroy', destroy, () => '', clock.t);
    x.endBatch();
    sender.answer();
    expect(sender.sent.slice(1).map((b) => parseMessage(b)).map((m) => [m.templateSets, m.sequence])).toEqual([
      [0, 3],
      [1, 4],
    ]);
    expect(x.counters).toMatchObject({ messages: 3, records: 5, templates: 2, unsent: 0, sendErrors: 0 });
  });

  it('a collector that is down: every record counted unsent, the templates go again with the next message, the sequence keeps counting', () => {
    const sender = new FakeSender();
    const clock = { t: T };
    const x = exporter(sender, clock);
    x.write('destroy', destroy, () => '', clock.t);
    x.write('destroy', destroy, () => '', clock.t);
    x.endBatch();
    sender.answer(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(x.counters).toMatchObject({ messages: 0, records: 0, unsent: 2, sendErrors: 1 });
    x.write('destroy', destroy, () => '', clock.t);
    x.endBatch();
    sender.answer();
    const m = parseMessage(sender.sent[1]!);
    // The collector sees the loss as a gap: this message's records start at 2.
    expect([m.templateSets, m.sequence]).toEqual([1, 2]);
    expect(x.counters).toMatchObject({ messages: 1, records: 1, unsent: 2 });
  });

  it('never waits on a stuck socket: past 256 messages in flight, messages are dropped and counted', () => {
    const sender = new FakeSender();
    const clock = { t: T };
    const x = exporter(sender, clock);
    for (let batch = 0; batch < 300; batch++) {
      x.write('destroy', destroy, () => '', clock.t);
      x.endBatch();
    }
    expect(sender.sent).toHaveLength(256);
    expect(x.messagesInFlight).toBe(256);
    expect(x.counters.unsent).toBe(44);
    sender.answer();
    expect(x.messagesInFlight).toBe(0);
    x.write('destroy', destroy, () => '', clock.t);
    x.endBatch();
    // 300 records numbered before it, sent or not.
    expect(parseMessage(sender.sent[256]!).sequence).toBe(300);
  });

  it('close() sends what was gathered and closes the socket', async () => {
    const sender = new FakeSender();
    const x = exporter(sender, { t: T });
    x.write('destroy', destroy, () => '', T);
    await x.close();
    expect(sender.sent).toHaveLength(1);
    expect(sender.closed).toBe(true);
  });
});

describe('flowlog.ipfix in the config', () => {
  const node = 'node: { id: fw1 }';
  const parse = (flowlog: string) => parseConfig(`${node}\nflowlog: ${flowlog}\n`, 'ix.yaml');

  it('fills the defaults; a flow log may export only', () => {
    const cfg = parse('{ ipfix: { collector: "192.0.2.10:4739" } }');
    expect(cfg.flowlog?.ipfix).toEqual({ collector: '192.0.2.10:4739', observationDomainId: 1, templateRefreshSeconds: 600, mtu: 1500 });
    expect(cfg.flowlog?.file).toBeUndefined();
  });

  it.each([
    ['{ collector: 192.0.2.10 }', /ix\.yaml:2:\d+ flowlog\.ipfix\.collector expected host:port/],
    ['{ collector: "[2001:db8::1]:4739", mtu: 511 }', /flowlog\.ipfix\.mtu/],
    ['{ collector: "collector.example:4739", observationDomainId: -1 }', /flowlog\.ipfix\.observationDomainId/],
    ['{ collector: "collector.example:4739", templateRefreshSeconds: 0 }', /flowlog\.ipfix\.templateRefreshSeconds/],
    ['{ collector: "x:1", port: 4739 }', /flowlog\.ipfix\.port/],
  ])('refuses %s', (ipfix, error) => {
    expect(() => parse(`{ ipfix: ${ipfix} }`)).toThrow(error);
  });

  it('a flow log with no output at all is refused', () => {
    expect(() => parse('{ events: [new] }')).toThrow(/flowlog\.file.*file, ipfix, syslog/);
  });
});

describe('UdpSender (a real UDP socket on loopback)', () => {
  it('sends to the collector it is connected to; a collector gone shows as ECONNREFUSED on a later send', async () => {
    const collector = createSocket('udp4');
    const got: Buffer[] = [];
    collector.on('message', (m) => got.push(m));
    await new Promise<void>((r) => collector.bind(0, '127.0.0.1', r));
    const port = collector.address().port;
    const s = new UdpSender({ host: '127.0.0.1', port, now: () => 0, log: silentLogger });
    await s.connect();
    const send = (b: Buffer) => new Promise<Error | null>((r) => s.send(b, r));
    expect(await send(Buffer.from('one'))).toBeNull();
    await until(() => got.length === 1, 'the datagram received');
    expect(got[0]!.toString()).toBe('one');
    await new Promise<void>((r) => collector.close(() => r()));
    // The first send after the close draws the port unreachable; a later one reports it.
    const errors: (string | undefined)[] = [];
    for (let i = 0; i < 50 && !errors.includes('ECONNREFUSED'); i++) {
      const e = await send(Buffer.from('two'));
      errors.push((e as (Error & { code?: string }) | null)?.code);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(errors).toContain('ECONNREFUSED');
    await s.close();
  });

  it('not connected: sends fail with ENOTCONN at once, and a new connect is tried at most every 5 s', async () => {
    const clock = { t: 0 };
    // Port 0: every connect fails (ERR_SOCKET_BAD_PORT), as one to a collector without a route would.
    const s = new UdpSender({ host: '127.0.0.1', port: 0, now: () => clock.t, log: silentLogger });
    const tries: number[] = [];
    const connect = s.connect.bind(s);
    s.connect = () => {
      tries.push(clock.t);
      return connect();
    };
    await s.connect();
    for (const t of [1000, 4999, 5000, 6000, 10_000]) {
      clock.t = t;
      const err = await new Promise<Error | null>((r) => s.send(Buffer.from('x'), r));
      expect(err).toMatchObject({ code: 'ENOTCONN' });
    }
    expect(tries).toEqual([0, 5000, 10_000]);
    await s.close();
  });
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}
