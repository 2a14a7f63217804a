// The protobuf writer of src/sync/wire/proto-codec.ts (lines 1-710) at its
// bounds, one row each: ProtoWriter's varints and nested lengths at every
// length boundary, each message kind and field at its edges written exactly
// as protobufjs writes it from proto/ctsyncd.proto, the same through the
// record path, and every refusal with its exact message. Direct tables,
// small enough to run under mutation testing (TESTING.md).
import { describe, expect, it } from 'vitest';
import { EntryCompactor } from '../../src/cache/compact.js';
import { RecordPool, recordBuf, writeEntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry, Tuple } from '../../src/kernel/entry.js';
import { isNodeId, ProtoWriter, writeMessage, writeNodeId } from '../../src/sync/wire/proto-codec.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { PbDatagram, toPMessage, varint } from './wire-helpers.js';

const hex = (b: Buffer): string => b.toString('hex');

/** What writeMessage appends for `m`, or the RangeError's message. */
function written(m: WireMessage): string {
  const w = new ProtoWriter(4096);
  // Dirty memory: a byte the writer does not write must not reach the output.
  w.buf.fill(0xee);
  try {
    writeMessage(w, m);
  } catch (e) {
    return e instanceof RangeError ? `RangeError: ${e.message}` : `not a RangeError: ${String(e)}`;
  }
  return hex(w.buf.subarray(0, w.pos));
}

/** Datagram.messages field 3 as protobufjs writes it: the Datagram of this one message, without node and epoch. */
function reference(m: WireMessage): string {
  const obj = { messages: [toPMessage(m)] };
  const err = PbDatagram.verify(obj);
  if (err) throw new Error(`reference encoder: ${err}`);
  return hex(Buffer.from(PbDatagram.encode(PbDatagram.fromObject(obj)).finish()));
}


describe('ProtoWriter at every length boundary', () => {
  const values = [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 0x7fffffff, 0x80000000, 0xffffffff];
  it.each(values)('varint(%i)', (v) => {
    const w = new ProtoWriter(16);
    w.buf.fill(0xee);
    w.varint(7);
    w.varint(v);
    expect(hex(w.buf.subarray(0, w.pos))).toBe(hex(Buffer.concat([Buffer.from([7]), varint(v)])));
  });

  it('fixed32 is little-endian, every byte its own', () => {
    const w = new ProtoWriter(16);
    w.buf.fill(0xee);
    w.fixed32Field(0x0d, 0x80402010);
    w.fixed32(0xffffffff);
    w.fixed32(0);
    expect(hex(w.buf.subarray(0, w.pos))).toBe('0d10204080' + 'ffffffff' + '00000000');
  });

  it('bytesField and stringField write the tag, the length and the bytes', () => {
    const w = new ProtoWriter(64);
    w.buf.fill(0xee);
    w.bytesField(0x0a, Buffer.from([1, 2, 3]));
    w.stringField(0x12, 'é-x', 4, 'utf8');
    w.stringField(0x1a, 'é', 1, 'latin1');
    w.bytesField(0x22, Buffer.alloc(0));
    expect(hex(w.buf.subarray(0, w.pos))).toBe('0a03010203' + '1204c3a92d78' + '1a01e9' + '2200');
  });

  // A nested message reserves one length byte and shifts its content when longer.
  const lengths = [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000];
  it.each(lengths)('a nested message of %i bytes, between two fields', (n) => {
    const content = Buffer.alloc(n);
    for (let i = 0; i < n; i++) content[i] = (i * 7 + 1) & 0xff;
    const w = new ProtoWriter(n + 32);
    w.buf.fill(0xee);
    w.u32Field(0x08, 5);
    const lp = w.begin(0x12);
    w.buf.set(content, w.pos);
    w.pos += n;
    w.end(lp);
    w.u32Field(0x18, 6);
    const want = Buffer.concat([Buffer.from([0x08, 5, 0x12]), varint(n), content, Buffer.from([0x18, 6])]);
    expect(w.pos).toBe(want.length);
    expect(w.buf.subarray(0, w.pos).equals(want)).toBe(true);
  });

  it('nested messages inside nested messages, the inner one longer than 127 bytes', () => {
    const w = new ProtoWriter(512);
    const outer = w.begin(0x0a);
    const inner = w.begin(0x12);
    w.bytesField(0x1a, Buffer.alloc(200, 9));
    w.end(inner);
    w.u32Field(0x20, 1);
    w.end(outer);
    const innerBytes = Buffer.concat([Buffer.from([0x1a]), varint(200), Buffer.alloc(200, 9)]);
    const outerBody = Buffer.concat([Buffer.from([0x12]), varint(innerBytes.length), innerBytes, Buffer.from([0x20, 1])]);
    expect(hex(w.buf.subarray(0, w.pos))).toBe(hex(Buffer.concat([Buffer.from([0x0a]), varint(outerBody.length), outerBody])));
  });
});

const t4 = (over: Partial<Tuple> = {}): Tuple => ({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 1000, dport: 80, ...over });
const r4 = (over: Partial<Tuple> = {}): Tuple => ({ src: '10.0.0.2', dst: '10.0.0.1', proto: 6, sport: 80, dport: 1000, ...over });
const t6 = (over: Partial<Tuple> = {}): Tuple => ({ src: '2001:db8::1', dst: 'fd00::ffff:2', proto: 17, sport: 1, dport: 2, ...over });
const r6 = (over: Partial<Tuple> = {}): Tuple => ({ src: 'fd00::ffff:2', dst: '2001:db8::1', proto: 17, sport: 2, dport: 1, ...over });
const e4 = (over: Partial<ConntrackEntry> = {}): ConntrackEntry => ({ family: 2, orig: t4(), reply: r4(), ...over });
const e6 = (over: Partial<ConntrackEntry> = {}): ConntrackEntry => ({ family: 10, orig: t6(), reply: r6(), ...over });
const icmp = (type: number, code: number, id: number): Tuple => ({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: type, icmpCode: code, icmpId: id });
const icmpReply = (type: number, code: number, id: number): Tuple => ({ src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: type, icmpCode: code, icmpId: id });
const x4 = (over: Partial<ExpectEntry> = {}): ExpectEntry => ({
  family: 2,
  master: t4(),
  tuple: { src: '10.0.0.2', dst: '10.0.0.1', proto: 6, sport: 0, dport: 20 },
  mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 255, sport: 0, dport: 0xffff },
  ...over,
});

const ct = (entry: ConntrackEntry, seq = 1, kind: 'ct-new' | 'ct-update' = 'ct-new'): WireMessage => ({ kind, seq, entry });

describe('writeMessage writes what protobufjs writes', () => {
  const rows: Array<[string, WireMessage]> = [
    // Every kind, its numbers at zero (left out) and at their largest.
    ['alive, seq 0', { kind: 'alive', seq: 0 }],
    ['alive, seq 2^32-1', { kind: 'alive', seq: 0xffffffff }],
    ['hello', { kind: 'hello', seq: 0x80 }],
    ['ack, all zero', { kind: 'ack', peer: 'p', epoch: 0, from: 0, to: 0 }],
    ['ack', { kind: 'ack', peer: 'fw-b', epoch: 1, from: 0xfffffffe, to: 0xffffffff }],
    ['nack', { kind: 'nack', peer: 'A.z_0-9', epoch: 0x80000000, from: 7, to: 9 }],
    ['hello-ack', { kind: 'hello-ack', peer: 'x'.repeat(64), epoch: 3 }],
    ['hello-ack, epoch 0', { kind: 'hello-ack', peer: 'x', epoch: 0 }],
    ['resync-request to every node', { kind: 'resync-request', peer: '', epoch: 0, request: 0 }],
    ['resync-request', { kind: 'resync-request', peer: 'fw-a', epoch: 5, request: 0xffffffff }],
    ['challenge', { kind: 'challenge', peer: 'fw-a', nonceHi: 1, nonceLo: 0xffffffff }],
    ['challenge, zero nonces', { kind: 'challenge', peer: 'fw-a', nonceHi: 0, nonceLo: 0 }],
    ['challenge-response', { kind: 'challenge-response', seq: 4, peer: 'fw-a', epoch: 6, nonceHi: 7, nonceLo: 8, firstEpoch: 9 }],
    ['challenge-response, all zero', { kind: 'challenge-response', seq: 0, peer: 'fw-a', epoch: 0, nonceHi: 0, nonceLo: 0, firstEpoch: 0 }],
    ['bulk-start', { kind: 'bulk-start', seq: 1, bulkId: 0x4000, peer: 'fw-b' }],
    ['bulk-start to all, id 0', { kind: 'bulk-start', seq: 1, bulkId: 0, peer: '' }],
    ['bulk-end', { kind: 'bulk-end', seq: 2, bulkId: 1, peer: 'fw-b', count: 0x1fffff }],
    ['bulk-end, count 0', { kind: 'bulk-end', seq: 2, bulkId: 1, peer: '', count: 0 }],
    // Entries: the reply tuple left out only when it is the original mirrored.
    ['ct-new, mirrored', ct(e4())],
    ['ct-update, SNAT', ct(e4({ reply: r4({ dst: '192.0.2.1', dport: 40000 }) }), 9, 'ct-update')],
    ['ct-delete keeps orig and zone only', { kind: 'ct-delete', seq: 3, entry: e4({ reply: r4({ src: '192.0.2.7' }), zone: 0, status: 5, mark: 6, protoinfo: { tcp: { state: 3 } } }) }],
    ['ct-delete without a zone', { kind: 'ct-delete', seq: 3, entry: e4({ status: 5 }) }],
    ['ct-delete, zone 65535', { kind: 'ct-delete', seq: 3, entry: e6({ zone: 65535 }) }],
    ['IPv6, mirrored', ct(e6())],
    ['IPv6, DNAT', ct(e6({ reply: r6({ src: '::' }) }))],
    ['protocol 0 and no ports', ct({ family: 2, orig: { src: '0.0.0.0', dst: '255.255.255.255', proto: 0 }, reply: { src: '255.255.255.255', dst: '0.0.0.0', proto: 0 } })],
    ['protocol 255', ct({ family: 2, orig: { src: '1.2.3.4', dst: '5.6.7.8', proto: 255 }, reply: { src: '5.6.7.8', dst: '1.2.3.4', proto: 255 } })],
    ['ports 0 and 65535', ct(e4({ orig: t4({ sport: 0, dport: 65535 }), reply: r4({ sport: 65535, dport: 0 }) }))],
    ['a source port only', ct(e4({ orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 7 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 6, dport: 7 } }))],
    ['a destination port only, not mirrored', ct(e4({ orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 17, dport: 7 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 17, dport: 7 } }))],
    ['tuple zones', ct(e4({ orig: t4({ zone: 0 }), reply: r4({ zone: 65535 }) }))],
    ['ICMP echo', ct({ family: 2, orig: icmp(8, 0, 0xffff), reply: icmpReply(0, 0, 0xffff) })],
    ['ICMP at 255', ct({ family: 2, orig: icmp(255, 255, 0), reply: icmpReply(255, 255, 0) })],
    ['ICMP reply not the mirror', ct({ family: 2, orig: icmp(8, 0, 1), reply: icmpReply(8, 0, 1) })],
    ['NAT of the reply source port alone', ct(e4({ reply: r4({ sport: 8080 }) }))],
    ['NAT of the reply destination port alone', ct(e4({ reply: r4({ dport: 1 }) }))],
    ['ICMP without a type, mirrored', ct({ family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpCode: 3, icmpId: 4 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpCode: 3, icmpId: 4 } })],
    ['ICMP with a type in the reply only', ct({ family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpCode: 3 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0, icmpCode: 3 } })],
    ['ICMP with a type in the original only', ct({ family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1 } })],
    ['ICMP with another code', ct({ family: 2, orig: icmp(3, 1, 0), reply: icmpReply(3, 2, 0) })],
    ['ICMP with another id', ct({ family: 2, orig: icmp(8, 0, 1), reply: icmpReply(0, 0, 2) })],
    ['ICMP with a code in the original only', ct({ family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpCode: 0 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0 } })],
    ['ICMP with an id in the reply only', ct({ family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0, icmpId: 0 } })],
    ['ICMPv6 echo, mirrored', ct({ family: 10, orig: { src: '::1', dst: '::2', proto: 58, icmpType: 128, icmpCode: 0, icmpId: 1 }, reply: { src: '::2', dst: '::1', proto: 58, icmpType: 129, icmpCode: 0, icmpId: 1 } })],
    ['type 8 on GRE is not inverted', ct({ family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 47, icmpType: 8 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 47, icmpType: 8 } })],
    ['a source port in the original only', ct(e4({ orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 5 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 6 } }))],
    ['a port in the reply only', ct(e4({ orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 6, sport: 0 } }))],
    ['another reply destination address, IPv6, last word', ct(e6({ reply: r6({ dst: '2001:db8::2' }) }))],
    ['status, timeout, mark, secmark at every varint length', ct(e4({ status: 0x7f, timeout: 0x80, mark: 0x3fff, secmark: 0x4000 }))],
    ['status, timeout, mark, secmark at zero (present)', ct(e4({ status: 0, timeout: 0, mark: 0, secmark: 0, zone: 0 }))],
    ['status, timeout, mark, secmark at 2^32-1', ct(e4({ status: 0xffffffff, timeout: 0xffffffff, mark: 0xffffffff, secmark: 0xffffffff, zone: 65535 }))],
    ['TCP, state 0 only', ct(e4({ protoinfo: { tcp: { state: 0 } } }))],
    [
      'TCP, every field at its largest',
      ct(e4({ protoinfo: { tcp: { state: 9, wscaleOrig: 255, wscaleReply: 0, flagsOrig: { flags: 255, mask: 255 }, flagsReply: { flags: 0, mask: 1 } } } })),
    ],
    ['TCP, flags original only', ct(e4({ protoinfo: { tcp: { state: 1, flagsOrig: { flags: 1, mask: 0 } } } }))],
    ['an empty protoinfo', ct(e4({ protoinfo: {} }))],
    ['SCTP', ct(e4({ orig: t4({ proto: 132 }), reply: r4({ proto: 132 }), protoinfo: { sctp: { state: 9, vtagOrig: 0, vtagReply: 0xffffffff } } }))],
    ['SCTP, state 0 only', ct(e4({ orig: t4({ proto: 132 }), reply: r4({ proto: 132 }), protoinfo: { sctp: { state: 0 } } }))],
    ['DCCP', ct(e4({ orig: t4({ proto: 33 }), reply: r4({ proto: 33 }), protoinfo: { dccp: { state: 8, role: 1, handshakeSeq: (1n << 64n) - 1n } } }))],
    ['DCCP, sequence 2^32', ct(e4({ orig: t4({ proto: 33 }), reply: r4({ proto: 33 }), protoinfo: { dccp: { state: 0, role: 0, handshakeSeq: 1n << 32n } } }))],
    ['DCCP, sequence 0', ct(e4({ orig: t4({ proto: 33 }), reply: r4({ proto: 33 }), protoinfo: { dccp: { state: 1, handshakeSeq: 0n } } }))],
    ['TCP, SCTP and DCCP at once', ct(e4({ protoinfo: { tcp: { state: 2 }, sctp: { state: 3 }, dccp: { state: 4 } } }))],
    ['a master', ct(e4({ master: t4({ sport: 21, dport: 2121 }) }))],
    ['labels of 4 and a mask of 16 bytes', ct(e4({ labels: Buffer.from([1, 2, 3, 4]), labelsMask: Buffer.alloc(16, 0xff) }))],
    ['labels of 8 and 12 bytes', ct(e4({ labels: Buffer.alloc(8, 1), labelsMask: Buffer.alloc(12, 2) }))],
    ['a helper of 32 bytes of UTF-8', ct(e4({ helper: 'é'.repeat(16) }))],
    ['an empty helper', ct(e4({ helper: '' }))],
    [
      'sequence adjustments, both signs and the s32 edges',
      ct(e4({ seqAdjOrig: { correctionPos: 0xffffffff, offsetBefore: -1, offsetAfter: 2147483647 }, seqAdjReply: { correctionPos: 1, offsetBefore: -2147483648, offsetAfter: 1 } })),
    ],
    ['sequence adjustments at zero', ct(e4({ seqAdjOrig: { correctionPos: 0, offsetBefore: 0, offsetAfter: 0 } }))],
    ['synproxy', ct(e4({ synproxy: { isn: 1, its: 0xffffffff, tsoff: 0x80000000 } }))],
    ['synproxy, all zero', ct(e4({ synproxy: { isn: 0, its: 0, tsoff: 0 } }))],
    [
      'every field, IPv6, longer than 127 bytes',
      ct(
        e6({
          reply: r6({ src: 'fd00::9', sport: 9 }),
          status: 1,
          timeout: 2,
          mark: 3,
          zone: 4,
          secmark: 5,
          master: t6({ sport: 7 }),
          labels: Buffer.alloc(16, 3),
          labelsMask: Buffer.alloc(16, 4),
          helper: 'h'.repeat(32),
          seqAdjOrig: { correctionPos: 1, offsetBefore: 2, offsetAfter: 3 },
          seqAdjReply: { correctionPos: 4, offsetBefore: -5, offsetAfter: -6 },
          synproxy: { isn: 1, its: 2, tsoff: 3 },
          protoinfo: { tcp: { state: 3, wscaleOrig: 1 } },
        }),
        0xffffffff,
      ),
    ],
    // Expectations
    ['exp-new, bare', { kind: 'exp-new', seq: 1, entry: x4() }],
    [
      'exp-new, every field',
      {
        kind: 'exp-new',
        seq: 2,
        entry: x4({ timeout: 0xffffffff, helper: 'ftp', zone: 65535, flags: 0x80, class: 3, nat: { dir: 1, tuple: t4({ src: '192.0.2.1' }) }, fn: 'f'.repeat(32) }),
      },
    ],
    ['exp-new, NAT direction 0 and zero numbers', { kind: 'exp-new', seq: 3, entry: x4({ timeout: 0, zone: 0, flags: 0, class: 0, nat: { dir: 0, tuple: t4() } }) }],
    [
      'exp-delete, IPv6',
      { kind: 'exp-delete', seq: 4, entry: { family: 10, master: t6(), tuple: r6({ sport: 0 }), mask: t6({ src: 'ffff::', dst: 'ffff::', sport: 0, dport: 0xffff }) } },
    ],
  ];
  it.each(rows)('%s', (_name, m) => {
    expect(written(m)).toBe(reference(m));
  });

  // The record path (writeEntryRecordBody) gives the entry's bytes for every
  // entry row a record can hold; those with extras take the entry's path.
  const pool = new RecordPool();
  const asRecord = (m: WireMessage): WireMessage | undefined => {
    if (m.kind !== 'ct-new' && m.kind !== 'ct-update') return undefined;
    const e = m.entry as ConntrackEntry;
    const r = recordBuf(1);
    const compactor = new EntryCompactor();
    const x = writeEntryRecord(e, r, 0, (v) => compactor.entry(v));
    if (x === false) return undefined;
    return { ...m, entry: pool.copy(r.w, 0, x) };
  };
  const recordRows = rows.flatMap(([name, m]): Array<[string, WireMessage, WireMessage]> => {
    const rm = asRecord(m);
    return rm === undefined ? [] : [[name, rm, m]];
  });
  it('has record rows', () => {
    expect(recordRows.length).toBeGreaterThan(25);
  });
  it.each(recordRows)('as a record: %s', (_name, rm, m) => {
    const e = (m as { entry: ConntrackEntry }).entry;
    // A record holds the compacted entry: what it writes is what that entry writes.
    const compacted = new EntryCompactor().entry(e);
    expect(written(rm)).toBe(reference({ ...m, entry: compacted } as WireMessage));
  });
});

describe('writeMessage refuses what the wire cannot carry, with the field and the value', () => {
  const big = 2 ** 32;
  const rows: Array<[string, WireMessage]> = [
    ['seq: 1.5 is not a u32', { kind: 'alive', seq: 1.5 }],
    ['seq: -1 is not a u32', { kind: 'hello', seq: -1 }],
    ['message kind: bogus is not a known kind', { kind: 'bogus' } as unknown as WireMessage],
    ['family: 7 is not AF_INET (2) or AF_INET6 (10)', ct(e4({ family: 7 as 2 }))],
    ['family: 7 is not AF_INET (2) or AF_INET6 (10)', { kind: 'exp-new', seq: 1, entry: x4({ family: 7 as 2 }) }],
    ['orig.src: "::1" is not an IPv4 address', ct(e4({ orig: t4({ src: '::1' }) }))],
    ['orig.dst: "10.0.0.256" is not an IPv4 address', ct(e4({ orig: t4({ dst: '10.0.0.256' }) }))],
    ['reply.src: "10.0.0.2" is not an IPv6 address', ct(e6({ reply: r6({ src: '10.0.0.2' }) }))],
    ['reply.dst: "x" is not an IPv6 address', ct(e6({ reply: r6({ dst: 'x' }) }))],
    ['orig.proto: 256 is not a u8', ct(e4({ orig: t4({ proto: 256 }) }))],
    ['orig.proto: -1 is not a u8', { kind: 'ct-delete', seq: 1, entry: e4({ orig: t4({ proto: -1 }) }) }],
    ['orig.sport: 65536 is not a u16', ct(e4({ orig: t4({ sport: 65536 }) }))],
    ['orig.dport: -1 is not a u16', ct(e4({ orig: t4({ dport: -1 }) }))],
    ['reply.icmpType: 256 is not a u8', ct(e4({ reply: r4({ icmpType: 256 }) }))],
    ['reply.icmpCode: 0.5 is not a u8', ct(e4({ reply: r4({ icmpCode: 0.5 }) }))],
    ['orig.icmpId: 65536 is not a u16', ct(e4({ orig: t4({ icmpId: 65536 }) }))],
    ['orig.zone: 65536 is not a u16', ct(e4({ orig: t4({ zone: 65536 }) }))],
    ['master.sport: 65536 is not a u16', ct(e4({ master: t4({ sport: 65536 }) }))],
    ['status: -1 is not a u32', ct(e4({ status: -1 }))],
    ['timeout: 4294967296 is not a u32', ct(e4({ timeout: big }))],
    ['mark: 1.5 is not a u32', ct(e4({ mark: 1.5 }))],
    ['secmark: 4294967296 is not a u32', ct(e4({ secmark: big }))],
    ['zone: 65536 is not a u16', ct(e4({ zone: 65536 }))],
    ['zone: -1 is not a u16', { kind: 'ct-delete', seq: 1, entry: e4({ zone: -1 }) }],
    ['tcp.state: 10 is not a state below 10', ct(e4({ protoinfo: { tcp: { state: 10 } } }))],
    ['tcp.state: -1 is not a state below 10', ct(e4({ protoinfo: { tcp: { state: -1 } } }))],
    ['tcp.wscaleOrig: 256 is not a u8', ct(e4({ protoinfo: { tcp: { state: 1, wscaleOrig: 256 } } }))],
    ['tcp.wscaleReply: -1 is not a u8', ct(e4({ protoinfo: { tcp: { state: 1, wscaleReply: -1 } } }))],
    ['tcp.flagsOrig.flags: 256 is not a u8', ct(e4({ protoinfo: { tcp: { state: 1, flagsOrig: { flags: 256, mask: 0 } } } }))],
    ['tcp.flagsOrig.mask: 256 is not a u8', ct(e4({ protoinfo: { tcp: { state: 1, flagsOrig: { flags: 0, mask: 256 } } } }))],
    ['tcp.flagsReply.flags: -1 is not a u8', ct(e4({ protoinfo: { tcp: { state: 1, flagsReply: { flags: -1, mask: 0 } } } }))],
    ['tcp.flagsReply.mask: 300 is not a u8', ct(e4({ protoinfo: { tcp: { state: 1, flagsReply: { flags: 0, mask: 300 } } } }))],
    ['sctp.state: 10 is not a state below 10', ct(e4({ protoinfo: { sctp: { state: 10 } } }))],
    ['sctp.vtagOrig: -1 is not a u32', ct(e4({ protoinfo: { sctp: { state: 1, vtagOrig: -1 } } }))],
    ['sctp.vtagReply: 4294967296 is not a u32', ct(e4({ protoinfo: { sctp: { state: 1, vtagReply: big } } }))],
    ['dccp.state: 256 is not a state below 10', ct(e4({ protoinfo: { dccp: { state: 256 } } }))],
    ['dccp.role: 256 is not a u8', ct(e4({ protoinfo: { dccp: { state: 1, role: 256 } } }))],
    ['dccp.handshakeSeq: -1 is not a u64 bigint', ct(e4({ protoinfo: { dccp: { state: 1, handshakeSeq: -1n } } }))],
    ['dccp.handshakeSeq: 18446744073709551616 is not a u64 bigint', ct(e4({ protoinfo: { dccp: { state: 1, handshakeSeq: 1n << 64n } } }))],
    ['dccp.handshakeSeq: 5 is not a u64 bigint', ct(e4({ protoinfo: { dccp: { state: 1, handshakeSeq: 5 as unknown as bigint } } }))],
    ['labels: 0 bytes is not 4, 8, 12 or 16 bytes', ct(e4({ labels: Buffer.alloc(0) }))],
    ['labels: 6 bytes is not 4, 8, 12 or 16 bytes', ct(e4({ labels: Buffer.alloc(6) }))],
    ['labelsMask: 20 bytes is not 4, 8, 12 or 16 bytes', ct(e4({ labelsMask: Buffer.alloc(20) }))],
    ['labelsMask: 17 bytes is not 4, 8, 12 or 16 bytes', ct(e4({ labelsMask: Buffer.alloc(17) }))],
    [`helper: "${'é'.repeat(16)}x" is not at most 32 bytes`, ct(e4({ helper: `${'é'.repeat(16)}x` }))],
    ['seqAdjOrig.correctionPos: -1 is not a u32', ct(e4({ seqAdjOrig: { correctionPos: -1, offsetBefore: 0, offsetAfter: 0 } }))],
    ['seqAdjOrig.offsetBefore: 2147483648 is not an s32', ct(e4({ seqAdjOrig: { correctionPos: 0, offsetBefore: 2147483648, offsetAfter: 0 } }))],
    ['seqAdjReply.offsetAfter: 1.5 is not an s32', ct(e4({ seqAdjReply: { correctionPos: 0, offsetBefore: 0, offsetAfter: 1.5 } }))],
    ['seqAdjReply.offsetBefore: -2147483649 is not an s32', ct(e4({ seqAdjReply: { correctionPos: 0, offsetBefore: -2147483649, offsetAfter: 0 } }))],
    ['synproxy.isn: -1 is not a u32', ct(e4({ synproxy: { isn: -1, its: 0, tsoff: 0 } }))],
    ['synproxy.its: 4294967296 is not a u32', ct(e4({ synproxy: { isn: 0, its: big, tsoff: 0 } }))],
    ['synproxy.tsoff: 0.5 is not a u32', ct(e4({ synproxy: { isn: 0, its: 0, tsoff: 0.5 } }))],
    ['tuple.src: "::1" is not an IPv4 address', { kind: 'exp-new', seq: 1, entry: x4({ tuple: t4({ src: '::1' }) }) }],
    ['mask.dport: 65536 is not a u16', { kind: 'exp-new', seq: 1, entry: x4({ mask: t4({ dport: 65536 }) }) }],
    ['master.proto: 256 is not a u8', { kind: 'exp-delete', seq: 1, entry: x4({ master: t4({ proto: 256 }) }) }],
    ['timeout: -1 is not a u32', { kind: 'exp-new', seq: 1, entry: x4({ timeout: -1 }) }],
    [`helper: "${'h'.repeat(33)}" is not at most 32 bytes`, { kind: 'exp-new', seq: 1, entry: x4({ helper: 'h'.repeat(33) }) }],
    ['zone: 65536 is not a u16', { kind: 'exp-new', seq: 1, entry: x4({ zone: 65536 }) }],
    ['flags: 4294967296 is not a u32', { kind: 'exp-new', seq: 1, entry: x4({ flags: big }) }],
    ['class: -1 is not a u32', { kind: 'exp-new', seq: 1, entry: x4({ class: -1 }) }],
    ['nat.dir: -1 is not a u32', { kind: 'exp-new', seq: 1, entry: x4({ nat: { dir: -1, tuple: t4() } }) }],
    ['nat.tuple.sport: 65536 is not a u16', { kind: 'exp-new', seq: 1, entry: x4({ nat: { dir: 0, tuple: t4({ sport: 65536 }) } }) }],
    [`fn: "${'f'.repeat(33)}" is not at most 32 bytes`, { kind: 'exp-new', seq: 1, entry: x4({ fn: 'f'.repeat(33) }) }],
    ['peer: "" is not a node id (1-64 of A-Z a-z 0-9 _ . -)', { kind: 'ack', peer: '', epoch: 1, from: 1, to: 2 }],
    ['epoch: -1 is not a u32', { kind: 'nack', peer: 'p', epoch: -1, from: 1, to: 2 }],
    ['from: 4294967296 is not a u32', { kind: 'ack', peer: 'p', epoch: 1, from: big, to: 2 }],
    ['to: 1.5 is not a u32', { kind: 'ack', peer: 'p', epoch: 1, from: 1, to: 1.5 }],
    ['peer: "" is not a node id (1-64 of A-Z a-z 0-9 _ . -)', { kind: 'hello-ack', peer: '', epoch: 1 }],
    ['epoch: -1 is not a u32', { kind: 'hello-ack', peer: 'p', epoch: -1 }],
    [`peer: "${'p'.repeat(65)}" is not a node id (1-64 of A-Z a-z 0-9 _ . -)`, { kind: 'resync-request', peer: 'p'.repeat(65), epoch: 1, request: 1 }],
    ['epoch: -1 is not a u32', { kind: 'resync-request', peer: 'p', epoch: -1, request: 1 }],
    ['request: 4294967296 is not a u32', { kind: 'resync-request', peer: '', epoch: 1, request: big }],
    ['peer: "" is not a node id (1-64 of A-Z a-z 0-9 _ . -)', { kind: 'challenge', peer: '', nonceHi: 1, nonceLo: 2 }],
    ['nonceHi: -1 is not a u32', { kind: 'challenge', peer: 'p', nonceHi: -1, nonceLo: 2 }],
    ['nonceLo: 4294967296 is not a u32', { kind: 'challenge', peer: 'p', nonceHi: 1, nonceLo: big }],
    ['epoch: -1 is not a u32', { kind: 'challenge-response', seq: 1, peer: 'p', epoch: -1, nonceHi: 1, nonceLo: 2, firstEpoch: 0 }],
    ['firstEpoch: -1 is not a u32', { kind: 'challenge-response', seq: 1, peer: 'p', epoch: 1, nonceHi: 1, nonceLo: 2, firstEpoch: -1 }],
    ['peer: "a b" is not a node id (1-64 of A-Z a-z 0-9 _ . -)', { kind: 'challenge-response', seq: 1, peer: 'a b', epoch: 1, nonceHi: 1, nonceLo: 2, firstEpoch: 0 }],
    ['bulkId: -1 is not a u32', { kind: 'bulk-start', seq: 1, bulkId: -1, peer: '' }],
    ['peer: "a/b" is not a node id (1-64 of A-Z a-z 0-9 _ . -)', { kind: 'bulk-end', seq: 1, bulkId: 1, peer: 'a/b', count: 1 }],
    ['count: 4294967296 is not a u32', { kind: 'bulk-end', seq: 1, bulkId: 1, peer: '', count: big }],
  ];
  it.each(rows)('%s', (msg, m) => {
    expect(written(m)).toBe(`RangeError: ${msg}`);
  });

  it('a count is not checked on a bulk-start, which has none', () => {
    const m = { kind: 'bulk-start', seq: 1, bulkId: 1, peer: '', count: -1 } as unknown as WireMessage;
    expect(written(m)).toBe(reference({ kind: 'bulk-start', seq: 1, bulkId: 1, peer: '' }));
  });

  it('a challenge writes neither epoch nor firstEpoch, even when given', () => {
    const m = { kind: 'challenge', peer: 'p', nonceHi: 1, nonceLo: 2, epoch: 3, firstEpoch: 4 } as unknown as WireMessage;
    expect(written(m)).toBe(reference({ kind: 'challenge', peer: 'p', nonceHi: 1, nonceLo: 2 }));
  });

  it('a delete given as a record writes orig and zone only, as the entry does', () => {
    for (const e of [e4({ zone: 9, status: 1, reply: r4({ src: '192.0.2.1' }) }), e6({ mark: 2 })]) {
      const r = recordBuf(1);
      expect(writeEntryRecord(e, r, 0)).toBeUndefined();
      const m = { kind: 'ct-delete', seq: 5, entry: new RecordPool().copy(r.w, 0, undefined) } as unknown as WireMessage;
      expect(written(m)).toBe(reference({ kind: 'ct-delete', seq: 5, entry: e }));
    }
  });

  it('a record refused on the entry path is refused with the same message', () => {
    const r = recordBuf(1);
    const e = e4({ protoinfo: { tcp: { state: 10 } } });
    const x = writeEntryRecord(e, r, 0);
    expect(x).toBeUndefined();
    expect(written(ct(e))).toBe('RangeError: tcp.state: 10 is not a state below 10');
    expect(written({ kind: 'ct-new', seq: 1, entry: new RecordPool().copy(r.w, 0, undefined) })).toBe('RangeError: tcp.state: 10 is not a state below 10');
  });
});

describe('node ids', () => {
  const ok = ['a', 'Z', '0', '9', '_', '.', '-', 'fw-1.dc_2', 'x'.repeat(64)];
  const refused = ['', 'x'.repeat(65), 'a b', 'a/b', 'é', 'a\n', '@', '[', '`', '{', ':', '/'];
  it.each(ok)('%j is one, and writeNodeId writes it', (s) => {
    expect(isNodeId(s)).toBe(true);
    const w = new ProtoWriter(128);
    writeNodeId(w, 0x0a, s, 'node', false);
    expect(hex(w.buf.subarray(0, w.pos))).toBe(hex(Buffer.concat([Buffer.from([0x0a, s.length]), Buffer.from(s, 'latin1')])));
  });
  it.each(refused)('%j is not', (s) => {
    expect(isNodeId(s)).toBe(false);
    const w = new ProtoWriter(128);
    expect(() => writeNodeId(w, 0x0a, s, 'node', s !== '')).toThrow(
      new RangeError(`node: ${JSON.stringify(s)} is not a node id (1-64 of A-Z a-z 0-9 _ . -)`),
    );
    expect(w.pos).toBe(0);
  });
  it('writes nothing for an empty id where it is allowed', () => {
    const w = new ProtoWriter(8);
    writeNodeId(w, 0x0a, '', 'node', true);
    expect(w.pos).toBe(0);
  });
});
