// The hand-written protobuf reader and writer (src/sync/wire/proto-codec.ts)
// at their bounds, one row each: every refusal with its exact code and
// reason, varints of every length, fields the sender left out, the reply
// tuple left out exactly when it is the original mirrored (checked against
// protobufjs), mirrorTuple's ICMP inversions, entries read as records and
// when not, and the datagram's own fields and message bound. Direct tables,
// small enough to run under mutation testing (TESTING.md).
import { describe, expect, it } from 'vitest';
import type { ConntrackEntry, Tuple } from '../../src/kernel/entry.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { EntryRecord } from '../../src/kernel/ct-record.js';
import { decodeMessageField, mirrorTuple, ProtoWriter, readDatagram, readerRelease, readerReset, WireFail, writeMessage } from '../../src/sync/wire/proto-codec.js';
import { PREFIX_BYTES, PROTOCOL_VERSION, type WireMessage } from '../../src/sync/wire/types.js';
import { CLUSTER, EPOCH, NODE, referenceEncode, varint } from './wire-helpers.js';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');


/** A length-delimited field. */
function len(field: number, ...parts: Buffer[]): Buffer {
  const p = Buffer.concat(parts);
  return Buffer.concat([varint((field << 3) | 2), varint(p.length), p]);
}

/** A varint field. */
function vf(field: number, v: number): Buffer {
  return Buffer.concat([varint(field << 3), varint(v)]);
}

/** A fixed32 field. */
function f32(field: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return Buffer.concat([varint((field << 3) | 5), b]);
}

const ip4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
/** A Tuple body: 10.0.0.1 -> 10.0.0.2 TCP 1 -> 2, then `extra`. */
const tup = (...extra: Buffer[]): Buffer => Buffer.concat([len(1, ip4('10.0.0.1')), len(2, ip4('10.0.0.2')), vf(3, 6), vf(4, 1), vf(5, 2), ...extra]);
const tup6 = (): Buffer => Buffer.concat([len(1, Buffer.alloc(16, 1)), len(2, Buffer.alloc(16, 2)), vf(3, 6)]);

/** A datagram of node fw-b and these Message bodies. */
function dgram(...messages: Buffer[]): Buffer {
  const p = Buffer.alloc(PREFIX_BYTES);
  p.write('CS', 0, 'latin1');
  p[2] = PROTOCOL_VERSION;
  p.writeUInt32BE(CLUSTER, 4);
  return Buffer.concat([p, len(1, Buffer.from('fw-b')), ...messages.map((m) => len(3, m))]);
}

const ctNew = (...entry: Buffer[]): Buffer => Buffer.concat([f32(1, 9), len(2, ...entry)]);
const expNew = (...exp: Buffer[]): Buffer => len(5, ...exp);

function decode(buf: Buffer) {
  return decodeDatagram(buf, { cluster: CLUSTER });
}

describe('proto-codec: every refusal with its reason', () => {
  const rows: { name: string; buf: Buffer; code: string; reason: string }[] = [
    { name: 'a varint cut at its first byte', buf: dgram(h('08')), code: 'EDECODE', reason: 'varint runs past its field' },
    { name: 'a varint cut after its first byte', buf: dgram(h('0880')), code: 'EDECODE', reason: 'varint runs past its field' },
    { name: 'a varint cut after five bytes', buf: dgram(h('08ffffffffff')), code: 'EDECODE', reason: 'varint runs past its field' },
    // The same cuts with another message after them: its bytes lie past the field's end and must not be read.
    { name: 'a varint cut at its first byte, a message after it', buf: dgram(h('08'), len(9)), code: 'EDECODE', reason: 'varint runs past its field' },
    { name: 'a varint cut after its first byte, a message after it', buf: dgram(h('0880'), len(9)), code: 'EDECODE', reason: 'varint runs past its field' },
    { name: 'a varint cut after five bytes, a message after it', buf: dgram(h('08ffffffffff'), len(9)), code: 'EDECODE', reason: 'varint runs past its field' },
    { name: 'a varint of 11 bytes', buf: dgram(h('08ffffffffffffffffffff01')), code: 'EDECODE', reason: 'varint longer than 10 bytes' },
    { name: 'a seq cut at 3 bytes', buf: dgram(h('0d010203')), code: 'EDECODE', reason: 'fixed32 runs past its field' },
    { name: 'an unknown fixed32 cut at 3 bytes', buf: dgram(h('7d010203')), code: 'EDECODE', reason: 'fixed32 runs past its field' },
    { name: 'an unknown fixed64 cut at 7 bytes', buf: dgram(h('79 01020304050607')), code: 'EDECODE', reason: 'fixed64 runs past its field' },
    { name: 'a field number 0', buf: dgram(h('0001')), code: 'EDECODE', reason: 'field number 0' },
    { name: 'a group (wire type 3)', buf: dgram(h('7b')), code: 'EDECODE', reason: 'unsupported wire type 3 (field 15)' },
    { name: 'wire type 6', buf: dgram(h('7e')), code: 'EDECODE', reason: 'unsupported wire type 6 (field 15)' },
    { name: 'a length past its field', buf: dgram(h('7a05 01020304')), code: 'EDECODE', reason: 'length 5 runs past its field (4 bytes left)' },
    { name: 'an entry without orig', buf: dgram(ctNew(vf(3, 1))), code: 'EVALUE', reason: 'entry without orig tuple' },
    { name: 'a source of 5 bytes', buf: dgram(ctNew(len(1, len(1, Buffer.alloc(5)), len(2, Buffer.alloc(5))))), code: 'EVALUE', reason: 'orig.src: address of 5 bytes, expected 4 or 16' },
    { name: 'no source', buf: dgram(ctNew(len(1, len(2, ip4('10.0.0.2'))))), code: 'EVALUE', reason: 'orig.src: address of 0 bytes, expected 4 or 16' },
    { name: 'a destination of 16 bytes beside a source of 4', buf: dgram(ctNew(len(1, len(1, ip4('10.0.0.1')), len(2, Buffer.alloc(16))))), code: 'EVALUE', reason: 'orig.dst: address of 16 bytes, src has 4' },
    { name: 'an IPv6 reply to an IPv4 orig', buf: dgram(ctNew(len(1, tup()), len(2, tup6()))), code: 'EVALUE', reason: 'reply: IPv4 and IPv6 addresses mixed' },
    { name: 'an IPv4 master to an IPv6 orig', buf: dgram(ctNew(len(1, tup6()), len(10, tup()))), code: 'EVALUE', reason: 'master: IPv4 and IPv6 addresses mixed' },
    { name: 'protocol 256', buf: dgram(ctNew(len(1, tup(vf(3, 256))))), code: 'EVALUE', reason: 'orig.proto 256 does not fit u8' },
    { name: 'a source port of 65536', buf: dgram(ctNew(len(1, tup(vf(4, 65536))))), code: 'EVALUE', reason: 'orig.sport 65536 does not fit u16' },
    { name: 'a destination port of 65536', buf: dgram(ctNew(len(1, tup(vf(5, 65536))))), code: 'EVALUE', reason: 'orig.dport 65536 does not fit u16' },
    { name: 'a lone source port of 65536', buf: dgram(ctNew(len(1, len(1, ip4('10.0.0.1')), len(2, ip4('10.0.0.2')), vf(4, 65536)))), code: 'EVALUE', reason: 'orig.sport 65536 does not fit u16' },
    { name: 'a lone destination port of 65536', buf: dgram(ctNew(len(1, len(1, ip4('10.0.0.1')), len(2, ip4('10.0.0.2')), vf(5, 65536)))), code: 'EVALUE', reason: 'orig.dport 65536 does not fit u16' },
    { name: 'ICMP type 256', buf: dgram(ctNew(len(1, tup(vf(6, 256))))), code: 'EVALUE', reason: 'orig.icmpType 256 does not fit u8' },
    { name: 'ICMP code 256', buf: dgram(ctNew(len(1, tup(vf(7, 256))))), code: 'EVALUE', reason: 'orig.icmpCode 256 does not fit u8' },
    { name: 'ICMP id 65536', buf: dgram(ctNew(len(1, tup(vf(8, 65536))))), code: 'EVALUE', reason: 'orig.icmpId 65536 does not fit u16' },
    { name: 'a tuple zone of 65536', buf: dgram(ctNew(len(1, tup(vf(9, 65536))))), code: 'EVALUE', reason: 'orig.zone 65536 does not fit u16' },
    { name: 'an entry zone of 65536', buf: dgram(ctNew(len(1, tup()), vf(6, 65536))), code: 'EVALUE', reason: 'zone 65536 does not fit u16' },
    { name: 'TCP state 10', buf: dgram(ctNew(len(1, tup()), len(7, vf(1, 10)))), code: 'EVALUE', reason: 'tcp.state 10 is not below 10' },
    { name: 'SCTP state 10', buf: dgram(ctNew(len(1, tup()), len(8, vf(1, 10)))), code: 'EVALUE', reason: 'sctp.state 10 is not below 10' },
    { name: 'DCCP state 10', buf: dgram(ctNew(len(1, tup()), len(9, vf(1, 10)))), code: 'EVALUE', reason: 'dccp.state 10 is not below 10' },
    { name: 'a window scale of 256', buf: dgram(ctNew(len(1, tup()), len(7, vf(2, 256)))), code: 'EVALUE', reason: 'tcp.wscaleOrig 256 does not fit u8' },
    { name: 'a reply window scale of 256', buf: dgram(ctNew(len(1, tup()), len(7, vf(3, 256)))), code: 'EVALUE', reason: 'tcp.wscaleReply 256 does not fit u8' },
    { name: 'TCP flags of 65536', buf: dgram(ctNew(len(1, tup()), len(7, vf(4, 65536)))), code: 'EVALUE', reason: 'tcp.flagsOrig 65536 does not fit flags | mask << 8' },
    { name: 'reply TCP flags of 65536', buf: dgram(ctNew(len(1, tup()), len(7, vf(5, 65536)))), code: 'EVALUE', reason: 'tcp.flagsReply 65536 does not fit flags | mask << 8' },
    { name: 'a DCCP role of 256', buf: dgram(ctNew(len(1, tup()), len(9, vf(2, 256)))), code: 'EVALUE', reason: 'dccp.role 256 does not fit u8' },
    { name: 'labels of 6 bytes', buf: dgram(ctNew(len(1, tup()), len(11, Buffer.alloc(6)))), code: 'EVALUE', reason: 'labels of 6 bytes, expected 4, 8, 12 or 16' },
    { name: 'labels of 0 bytes', buf: dgram(ctNew(len(1, tup()), len(11))), code: 'EVALUE', reason: 'labels of 0 bytes, expected 4, 8, 12 or 16' },
    { name: 'labels of 20 bytes', buf: dgram(ctNew(len(1, tup()), len(11, Buffer.alloc(20)))), code: 'EVALUE', reason: 'labels of 20 bytes, expected 4, 8, 12 or 16' },
    { name: 'a label mask of 2 bytes', buf: dgram(ctNew(len(1, tup()), len(12, Buffer.alloc(2)))), code: 'EVALUE', reason: 'labelsMask of 2 bytes, expected 4, 8, 12 or 16' },
    { name: 'a helper of 33 bytes', buf: dgram(ctNew(len(1, tup()), len(13, Buffer.alloc(33, 0x61)))), code: 'EVALUE', reason: 'helper of 33 bytes, at most 32' },
    { name: 'a helper not UTF-8', buf: dgram(ctNew(len(1, tup()), len(13, h('66ff')))), code: 'EVALUE', reason: 'helper is not valid UTF-8' },
    { name: 'an expectation without master', buf: dgram(expNew(len(2, tup()), len(3, tup()))), code: 'EVALUE', reason: 'expectation without master tuple' },
    { name: 'an expectation without tuple', buf: dgram(expNew(len(1, tup()), len(3, tup()))), code: 'EVALUE', reason: 'expectation without tuple' },
    { name: 'an expectation without mask', buf: dgram(expNew(len(1, tup()), len(2, tup()))), code: 'EVALUE', reason: 'expectation without mask' },
    { name: 'an expectation NAT without tuple', buf: dgram(expNew(len(1, tup()), len(2, tup()), len(3, tup()), len(9, vf(1, 1)))), code: 'EVALUE', reason: 'expectation nat without tuple' },
    { name: 'an expectation NAT tuple of another family', buf: dgram(expNew(len(1, tup()), len(9, len(2, tup6())))), code: 'EVALUE', reason: 'nat.tuple: IPv4 and IPv6 addresses mixed' },
    { name: 'an IPv6 mask on an IPv4 expectation', buf: dgram(expNew(len(1, tup()), len(2, tup()), len(3, tup6()))), code: 'EVALUE', reason: 'mask: IPv4 and IPv6 addresses mixed' },
    { name: 'an expectation zone of 65536', buf: dgram(expNew(len(1, tup()), len(2, tup()), len(3, tup()), vf(6, 65536))), code: 'EVALUE', reason: 'zone 65536 does not fit u16' },
    { name: 'an expectation fn of 33 bytes', buf: dgram(expNew(len(10, Buffer.alloc(33, 0x61)))), code: 'EVALUE', reason: 'fn of 33 bytes, at most 32' },
    { name: 'an ack without peer', buf: dgram(len(7, f32(2, 1))), code: 'EVALUE', reason: 'ack.peer: empty node id' },
    { name: 'a nack without peer', buf: dgram(len(8, f32(3, 1))), code: 'EVALUE', reason: 'nack.peer: empty node id' },
    { name: 'a hello-ack without peer', buf: dgram(len(11, f32(2, 1))), code: 'EVALUE', reason: 'hello-ack.peer: empty node id' },
    { name: 'a challenge without peer', buf: dgram(len(15, f32(3, 1))), code: 'EVALUE', reason: 'challenge.peer: empty node id' },
    { name: 'a challenge response without peer', buf: dgram(len(16, f32(3, 1))), code: 'EVALUE', reason: 'challenge-response.peer: empty node id' },
    { name: 'a peer of 65 bytes', buf: dgram(len(7, len(1, Buffer.alloc(65, 0x61)))), code: 'EVALUE', reason: 'peer of 65 bytes, at most 64' },
    { name: 'a peer with a space', buf: dgram(len(12, len(1, Buffer.from('fw b')))), code: 'EVALUE', reason: 'peer: byte 0x20 is not allowed in a node id' },
    { name: 'a bulk peer with a slash', buf: dgram(len(13, len(2, Buffer.from('fw/b')))), code: 'EVALUE', reason: 'peer: byte 0x2f is not allowed in a node id' },
  ];
  it.each(rows)('$name: $code, $reason', ({ buf, code, reason }) => {
    const r = decode(buf);
    expect(r.ok ? 'ok' : r.error).toEqual({ code, reason });
  });

  it.each([
    ['no node', Buffer.concat([h('435303000000002a'), len(3, len(9))]), 'node: empty node id'],
    ['a node of 65 bytes', Buffer.concat([h('435303000000002a'), len(1, Buffer.alloc(65, 0x61))]), 'node of 65 bytes, at most 64'],
  ])('a datagram with %s is refused: %s', (_name, buf, reason) => {
    const r = decode(buf);
    expect(r.ok ? 'ok' : r.error).toEqual({ code: 'EVALUE', reason });
  });

  it('node ids take every allowed byte: A-Z a-z 0-9 _ . -', () => {
    const node = 'AZaz09_.-';
    const buf = Buffer.concat([h('435303000000002a'), len(1, Buffer.from(node)), len(3, len(9))]);
    const r = decode(buf);
    expect(r.ok && r.header.node).toBe(node);
    for (const c of ['@', '[', '`', '{', '/', ':', ',', '\u00ff']) {
      const bad = Buffer.concat([h('435303000000002a'), len(1, Buffer.from('a' + c, 'latin1')), len(3, len(9))]);
      const rb = decode(bad);
      expect(rb.ok ? 'ok' : rb.error.reason).toBe(`node: byte 0x${Buffer.from(c, 'latin1')[0]!.toString(16)} is not allowed in a node id`);
    }
  });
});

describe('proto-codec: values read exactly', () => {
  const entryOf = (buf: Buffer): ConntrackEntry => {
    const r = decode(buf);
    if (!r.ok) throw new Error(r.error.reason);
    return (r.messages[0] as { entry: ConntrackEntry }).entry;
  };
  const orig: Tuple = { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 1, dport: 2 };
  const reply: Tuple = { src: '10.0.0.2', dst: '10.0.0.1', proto: 6, sport: 2, dport: 1 };

  it.each([
    { name: 'a 1-byte varint', v: h('7f'), want: 127 },
    { name: 'a 2-byte varint', v: h('8001'), want: 128 },
    { name: 'a 5-byte varint of 2^32 - 1', v: h('ffffffff0f'), want: 0xffffffff },
    { name: 'a 5-byte varint whose high bits fall off', v: h('ffffffff7f'), want: 0xffffffff },
    { name: 'a 6-byte varint: bits above 32 dropped', v: h('8180808090 01'), want: 1 },
    { name: 'a 10-byte varint (a negative int64)', v: h('feffffffffffffffff01'), want: 0xfffffffe },
    { name: 'a 7-byte varint with a byte of 0x80 past the fifth', v: h('ffffffffff8001'), want: 0xffffffff },
  ])('status as $name: $want', ({ v, want }) => {
    expect(entryOf(dgram(ctNew(len(1, tup()), h('18'), v))).status).toBe(want);
  });

  it('reads every optional field into its own place', () => {
    const e = entryOf(
      dgram(
        ctNew(
          len(1, tup()),
          vf(3, 1),
          vf(4, 2),
          vf(5, 3),
          vf(6, 4),
          len(7, vf(1, 5), vf(2, 6), vf(3, 7), vf(4, 0x0102), vf(5, 0x0304)),
          len(8, vf(1, 8), f32(2, 0xdeadbeef), f32(3, 9)),
          len(9, vf(1, 9), vf(2, 1), f32(3, 0x01020304), f32(4, 0x05060708)),
          len(10, tup()),
          len(11, h('01000000')),
          len(12, h('ffffffff')),
          len(13, Buffer.from('ftp')),
          len(14, f32(1, 10), vf(2, 1), vf(3, 2)),
          len(15, f32(1, 11), vf(2, 0xfffffffe), vf(3, 0xffffffff)),
          len(16, f32(1, 12), f32(2, 13), f32(3, 14)),
          vf(17, 15),
        ),
      ),
    );
    expect(e).toEqual({
      family: 2,
      orig,
      reply,
      master: orig,
      status: 1,
      timeout: 2,
      mark: 3,
      zone: 4,
      labels: h('01000000'),
      labelsMask: h('ffffffff'),
      protoinfo: {
        tcp: { state: 5, wscaleOrig: 6, wscaleReply: 7, flagsOrig: { flags: 2, mask: 1 }, flagsReply: { flags: 4, mask: 3 } },
        sctp: { state: 8, vtagOrig: 0xdeadbeef, vtagReply: 9 },
        dccp: { state: 9, role: 1, handshakeSeq: 0x0102030405060708n },
      },
      seqAdjOrig: { correctionPos: 10, offsetBefore: -1, offsetAfter: 1 },
      seqAdjReply: { correctionPos: 11, offsetBefore: 0x7fffffff, offsetAfter: -0x80000000 },
      helper: 'ftp',
      secmark: 15,
      synproxy: { isn: 12, its: 13, tsoff: 14 },
    });
  });

  it.each([
    { name: 'a tuple with only a source port', body: len(1, len(1, ip4('10.0.0.1')), len(2, ip4('10.0.0.2')), vf(3, 6), vf(4, 7)), want: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 7 } },
    { name: 'a tuple with only a destination port', body: len(1, len(1, ip4('10.0.0.1')), len(2, ip4('10.0.0.2')), vf(3, 6), vf(5, 7)), want: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, dport: 7 } },
    { name: 'a tuple with ports and a zone', body: len(1, tup(vf(9, 3))), want: { ...orig, zone: 3 } },
    { name: 'a tuple with ports and an ICMP id', body: len(1, tup(vf(8, 3))), want: { ...orig, icmpId: 3 } },
  ])('reads $name, with no other keys', ({ body, want }) => {
    expect(entryOf(dgram(ctNew(body))).orig).toStrictEqual(want);
  });

  it.each([
    { name: 'only its high word', body: f32(3, 1), want: 1n << 32n },
    { name: 'only its low word', body: f32(4, 0xffffffff), want: 0xffffffffn },
  ])('a DCCP handshake sequence of $name', ({ body, want }) => {
    expect(entryOf(dgram(ctNew(len(1, tup()), len(9, body)))).protoinfo).toStrictEqual({ dccp: { state: 0, handshakeSeq: want } });
  });

  it('empty nested messages read as their defaults, with no key for a field left out', () => {
    expect(entryOf(dgram(ctNew(len(1, tup()), len(7), len(8), len(9), len(14), len(16))))).toStrictEqual({
      family: 2,
      orig,
      reply,
      protoinfo: { tcp: { state: 0 }, sctp: { state: 0 }, dccp: { state: 0 } },
      seqAdjOrig: { correctionPos: 0, offsetBefore: 0, offsetAfter: 0 },
      synproxy: { isn: 0, its: 0, tsoff: 0 },
    });
  });

  it('skips a known field sent with another wire type, and unknown fields inside every nested message', () => {
    const junk = Buffer.concat([vf(20, 1), f32(21, 2), len(22, h('00')), h('b901 0102030405060708')]);
    const e = entryOf(
      dgram(
        ctNew(
          // Field 20's fixed32 holds the bytes of a protocol field (18 11): skipped, not read.
          len(1, tup(f32(3, 17), f32(20, 0x1118), junk)),
          f32(3, 5),
          len(7, vf(1, 3), f32(1, 9), junk),
          len(8, vf(1, 2), vf(2, 7), junk),
          len(9, vf(1, 1), vf(3, 7), junk),
          len(14, vf(1, 4), f32(2, 1), junk),
          len(16, vf(1, 2), junk),
        ),
      ),
    );
    expect(e).toEqual({
      family: 2,
      orig,
      reply,
      protoinfo: { tcp: { state: 3 }, sctp: { state: 2 }, dccp: { state: 1 } },
      seqAdjOrig: { correctionPos: 0, offsetBefore: 0, offsetAfter: 0 },
      synproxy: { isn: 0, its: 0, tsoff: 0 },
    });
  });

  it('a delete keeps only orig, its reply and zone', () => {
    const r = decode(dgram(Buffer.concat([f32(1, 3), len(4, len(1, tup()), vf(3, 1), vf(6, 9), len(13, Buffer.from('x')))])));
    expect(r.ok && r.messages).toEqual([{ kind: 'ct-delete', seq: 3, entry: { family: 2, orig, reply, zone: 9 } }]);
  });

  it('reads an expectation’s every field, the NAT direction defaulting to 0 and the last NAT winning', () => {
    const r = decode(
      dgram(
        Buffer.concat([
          f32(1, 4),
          len(6, len(1, tup()), len(2, tup()), len(3, tup()), vf(4, 30), len(5, Buffer.from('sip')), vf(6, 2), vf(7, 1), vf(8, 3), len(9, vf(1, 1), len(2, tup())), len(9, len(2, tup()), f32(1, 5)), len(10, Buffer.from('f'))),
        ]),
      ),
    );
    expect(r.ok && r.messages).toEqual([
      { kind: 'exp-delete', seq: 4, entry: { family: 2, master: orig, tuple: orig, mask: orig, timeout: 30, helper: 'sip', zone: 2, flags: 1, class: 3, nat: { dir: 0, tuple: orig }, fn: 'f' } },
    ]);
  });

  it.each<[string, Buffer, WireMessage]>([
    ['an ack', len(7, len(1, Buffer.from('p')), f32(2, 1), f32(3, 2), f32(4, 3), vf(9, 1)), { kind: 'ack', peer: 'p', epoch: 1, from: 2, to: 3 }],
    ['a nack', len(8, len(1, Buffer.from('p')), f32(4, 0xffffffff)), { kind: 'nack', peer: 'p', epoch: 0, from: 0, to: 0xffffffff }],
    ['a hello-ack', len(11, len(1, Buffer.from('p')), f32(2, 7), vf(9, 1)), { kind: 'hello-ack', peer: 'p', epoch: 7 }],
    ['a resync request', len(12, len(1, Buffer.from('p')), f32(2, 7), vf(3, 300), vf(9, 1)), { kind: 'resync-request', peer: 'p', epoch: 7, request: 300 }],
    ['a resync request for everyone', len(12), { kind: 'resync-request', peer: '', epoch: 0, request: 0 }],
    ['a bulk start', len(13, vf(1, 5), len(2, Buffer.from('p')), vf(3, 99), vf(9, 1)), { kind: 'bulk-start', seq: 0, bulkId: 5, peer: 'p' }],
    ['a bulk end', len(14, vf(1, 5), vf(3, 99), f32(9, 1)), { kind: 'bulk-end', seq: 0, bulkId: 5, peer: '', count: 99 }],
    ['a challenge', len(15, len(1, Buffer.from('p')), f32(2, 1), f32(3, 2), f32(4, 3), f32(5, 4), vf(9, 1)), { kind: 'challenge', peer: 'p', nonceHi: 2, nonceLo: 3 }],
    ['a challenge response', len(16, len(1, Buffer.from('p')), f32(2, 1), f32(3, 2), f32(4, 3), f32(5, 4)), { kind: 'challenge-response', seq: 0, peer: 'p', epoch: 1, nonceHi: 2, nonceLo: 3, firstEpoch: 4 }],
    ['an alive with a field of a later version', len(9, vf(1, 1)), { kind: 'alive', seq: 0 }],
    ['a hello with a field of a later version', len(10, f32(1, 1)), { kind: 'hello', seq: 0 }],
  ])('reads %s', (_name, body, want) => {
    const r = decode(dgram(body));
    expect(r.ok && r.messages).toEqual([want]);
  });

  it.each([
    ['field 1 as bytes (not a kind)', len(1, h('00'))],
    ['field 17 (a kind of a later version)', len(17, h('00'))],
    ['a kind field as a varint', vf(9, 0)],
    ['no kind at all', f32(1, 5)],
  ])('a message of %s is unknown: counted, not read', (_name, body) => {
    const r = decode(dgram(body, len(9)));
    expect(r.ok && [r.messages, r.unknownMessages]).toEqual([[{ kind: 'alive', seq: 0 }], 1]);
  });

  it('reads the kinds at both ends of the oneof (fields 2 and 16)', () => {
    const r = decode(dgram(ctNew(len(1, tup())), len(16, len(1, Buffer.from('p')))));
    expect(r.ok && r.messages.map((m) => m.kind)).toEqual(['ct-new', 'challenge-response']);
  });

  it('decodeMessageField reads one message field as the encoder wrote it, and nothing else', () => {
    const w = new ProtoWriter(256);
    writeMessage(w, { kind: 'hello', seq: 3 });
    const one = Buffer.from(w.buf.subarray(0, w.pos));
    expect(decodeMessageField(one, 0, one.length)).toEqual({ kind: 'hello', seq: 3 });
    const shifted = Buffer.concat([h('ffff'), one]);
    expect(decodeMessageField(shifted, 2, shifted.length)).toEqual({ kind: 'hello', seq: 3 });
    // A trailing byte inside [start, end), another tag, a broken body, a cut: undefined.
    expect(decodeMessageField(Buffer.concat([one, h('00')]), 0, one.length + 1)).toBeUndefined();
    expect(decodeMessageField(Buffer.concat([h('22'), one.subarray(1)]), 0, one.length)).toBeUndefined();
    expect(decodeMessageField(len(3, h('0d01')), 0, 4)).toBeUndefined();
    expect(decodeMessageField(one, 0, one.length - 1)).toBeUndefined();
  });
});

describe('proto-codec: the reply tuple is left out exactly when it is the original mirrored', () => {
  const t: Tuple = { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 1000, dport: 22 };
  const icmp: Tuple = { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 5 };
  const icmp6: Tuple = { src: '2001:db8::1', dst: '2001:db8::2', proto: 58, icmpType: 128, icmpCode: 0, icmpId: 5 };
  const rows: { name: string; orig: Tuple; reply: Tuple; family?: 2 | 10 }[] = [
    { name: 'a mirrored TCP flow', orig: t, reply: mirrorTuple(t) },
    { name: 'a mirrored ICMPv6 echo (128 → 129)', orig: icmp6, reply: { ...icmp6, src: icmp6.dst, dst: icmp6.src, icmpType: 129 }, family: 10 },
    { name: 'an ICMPv6 echo answered with 128', orig: icmp6, reply: { ...icmp6, src: icmp6.dst, dst: icmp6.src }, family: 10 },
    { name: 'another reply source', orig: t, reply: { ...mirrorTuple(t), src: '10.0.0.9' } },
    { name: 'another reply destination', orig: t, reply: { ...mirrorTuple(t), dst: '10.0.0.9' } },
    { name: 'another reply protocol', orig: t, reply: { ...mirrorTuple(t), proto: 17 } },
    { name: 'another reply source port', orig: t, reply: { ...mirrorTuple(t), sport: 23 } },
    { name: 'another reply destination port', orig: t, reply: { ...mirrorTuple(t), dport: 1001 } },
    { name: 'a reply without ports', orig: t, reply: { src: t.dst, dst: t.src, proto: 6 } },
    { name: 'a zone on the reply only', orig: t, reply: { ...mirrorTuple(t), zone: 1 } },
    { name: 'a zone on both', orig: { ...t, zone: 2 }, reply: { ...mirrorTuple(t), zone: 2 } },
    { name: 'a mirrored echo (8 → 0)', orig: icmp, reply: mirrorTuple(icmp) },
    { name: 'an echo answered with type 8', orig: icmp, reply: { ...mirrorTuple(icmp), icmpType: 8 } },
    { name: 'an echo with another reply code', orig: icmp, reply: { ...mirrorTuple(icmp), icmpCode: 1 } },
    { name: 'an echo with another reply id', orig: icmp, reply: { ...mirrorTuple(icmp), icmpId: 6 } },
    { name: 'an echo whose reply has no type', orig: icmp, reply: { src: icmp.dst, dst: icmp.src, proto: 1, icmpCode: 0, icmpId: 5 } },
    { name: 'a reply with a type the orig has not', orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0 } },
    { name: 'ICMP type 3, mirrored as itself', orig: { ...icmp, icmpType: 3 }, reply: { ...mirrorTuple(icmp), icmpType: 3 } },
    { name: 'ICMP type 3 answered with 0', orig: { ...icmp, icmpType: 3 }, reply: { ...mirrorTuple(icmp), icmpType: 0 } },
    { name: 'TCP with an ICMP type: not inverted', orig: { ...t, icmpType: 8 }, reply: { ...mirrorTuple(t), icmpType: 8 } },
    { name: 'TCP with an ICMP type answered inverted', orig: { ...t, icmpType: 8 }, reply: { ...mirrorTuple(t), icmpType: 0 } },
  ];
  it.each(rows)('$name: the bytes protobufjs writes, and read back the same', ({ orig, reply, family }) => {
    const m: WireMessage = { kind: 'ct-new', seq: 1, entry: { family: family ?? 2, orig, reply, mark: 1 } };
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 1472 });
    enc.add(m);
    const out = enc.flush()!;
    expect(out.subarray(PREFIX_BYTES).toString('hex')).toBe(referenceEncode(NODE, EPOCH, [m]).toString('hex'));
    const r = decodeDatagram(out, { cluster: CLUSTER });
    expect(r.ok && r.messages).toEqual([m]);
  });
});

describe('mirrorTuple', () => {
  const base = { src: 'a', dst: 'b' };
  it.each([
    [1, 8, 0],
    [1, 0, 8],
    [1, 13, 14],
    [1, 14, 13],
    [1, 15, 16],
    [1, 16, 15],
    [1, 17, 18],
    [1, 18, 17],
    [1, 3, 3],
    [1, 128, 128],
    [58, 128, 129],
    [58, 129, 128],
    [58, 139, 140],
    [58, 140, 139],
    [58, 8, 8],
    [58, 1, 1],
    [6, 8, 8],
    [6, 128, 128],
    [17, 129, 129],
  ])('protocol %i, type %i: the reply’s type is %i', (proto, type, want) => {
    expect(mirrorTuple({ ...base, proto, icmpType: type, icmpCode: 2, icmpId: 7 })).toEqual({ src: 'b', dst: 'a', proto, icmpType: want, icmpCode: 2, icmpId: 7 });
  });

  it.each<[string, Tuple, Tuple]>([
    ['both ports', { ...base, proto: 6, sport: 1, dport: 2 }, { src: 'b', dst: 'a', proto: 6, sport: 2, dport: 1 }],
    ['only a source port', { ...base, proto: 6, sport: 1 }, { src: 'b', dst: 'a', proto: 6, dport: 1 }],
    ['only a destination port', { ...base, proto: 6, dport: 2 }, { src: 'b', dst: 'a', proto: 6, sport: 2 }],
    ['ports and a zone', { ...base, proto: 6, sport: 1, dport: 2, zone: 3 }, { src: 'b', dst: 'a', proto: 6, sport: 2, dport: 1, zone: 3 }],
    ['ports and an ICMP id', { ...base, proto: 6, sport: 1, dport: 2, icmpId: 4 }, { src: 'b', dst: 'a', proto: 6, sport: 2, dport: 1, icmpId: 4 }],
    ['ports and an ICMP code', { ...base, proto: 6, sport: 1, dport: 2, icmpCode: 0 }, { src: 'b', dst: 'a', proto: 6, sport: 2, dport: 1, icmpCode: 0 }],
    ['nothing but addresses', { ...base, proto: 47 }, { src: 'b', dst: 'a', proto: 47 }],
  ])('%s', (_name, t, want) => {
    expect(mirrorTuple(t)).toStrictEqual(want);
  });
});

// Entries read with `records` (rEntryRecord): the common shape comes back as
// an EntryRecord, anything else as the object rEntry() reads, and a refusal
// is rEntry()'s, with its code and reason. Each field that bounds the record
// path is at its edge, last in its message (a refusal there leaves the
// cursor at the message's end).
describe('proto-codec: entries read as records, and when not', () => {
  const a4 = ip4('10.0.0.1');
  const b4 = ip4('10.0.0.2');
  /** A tuple body from 10.0.0.1 to 10.0.0.2 of protocol `proto`, then `extra`. */
  const tp = (proto: number, ...extra: Buffer[]): Buffer => Buffer.concat([len(1, a4), len(2, b4), vf(3, proto), ...extra]);
  /** The reply direction's body of the same. */
  const rtp = (proto: number, ...extra: Buffer[]): Buffer => Buffer.concat([len(1, b4), len(2, a4), vf(3, proto), ...extra]);
  const icmpOrig = tp(1, vf(6, 8), vf(7, 0), vf(8, 5));
  const icmpReply = rtp(1, vf(6, 0), vf(7, 0), vf(8, 5));
  const tup4: Tuple = { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 1, dport: 2 };
  type Want = 'record' | 'object' | { code: string; reason: string };
  const rows: { name: string; fields: Buffer[]; want: Want }[] = [
    { name: 'TCP with both ports, mirrored', fields: [len(1, tup())], want: 'record' },
    { name: 'a TCP info given twice (the last wins whole)', fields: [len(1, tup()), len(7, vf(1, 3), vf(2, 7)), len(7, vf(1, 4))], want: 'object' },
    { name: 'a TCP state given twice', fields: [len(1, tup()), len(7, vf(1, 1), vf(1, 2))], want: 'object' },
    { name: 'an unknown entry field whose bytes hold a status field', fields: [len(1, tup()), len(22, vf(3, 5))], want: 'object' },
    { name: 'an orig with ports and an ICMP id', fields: [len(1, tup(vf(8, 3)))], want: 'object' },
    { name: 'a reply with ports and an ICMP id', fields: [len(1, tup()), len(2, rtp(6, vf(4, 2), vf(5, 1), vf(8, 3)))], want: 'object' },
    { name: 'protocol 0 with a NATed reply', fields: [len(1, tp(0)), len(2, len(1, ip4('10.0.0.9')), len(2, a4), vf(3, 0))], want: 'record' },
    { name: 'protocol 255 with a NATed reply', fields: [len(1, tp(255)), len(2, len(1, ip4('10.0.0.9')), len(2, a4), vf(3, 255))], want: 'record' },
    { name: 'protocol 256, last in its tuple', fields: [len(1, tp(256))], want: { code: 'EVALUE', reason: 'orig.proto 256 does not fit u8' } },
    { name: 'a source port of 65536, last in its tuple', fields: [len(1, tp(6, vf(5, 2), vf(4, 65536)))], want: { code: 'EVALUE', reason: 'orig.sport 65536 does not fit u16' } },
    { name: 'a source port given twice', fields: [len(1, tup(vf(4, 0x30)))], want: 'object' },
    { name: 'ICMP type and code 255', fields: [len(1, tp(1, vf(6, 255), vf(7, 255), vf(8, 0)))], want: 'record' },
    { name: 'ICMP type 256, last in its tuple', fields: [len(1, tp(1, vf(7, 0), vf(6, 256)))], want: { code: 'EVALUE', reason: 'orig.icmpType 256 does not fit u8' } },
    { name: 'ICMP id 65536, last in its tuple', fields: [len(1, tp(1, vf(6, 8), vf(8, 65536)))], want: { code: 'EVALUE', reason: 'orig.icmpId 65536 does not fit u16' } },
    { name: 'a tuple zone', fields: [len(1, tup(vf(9, 3)))], want: 'object' },
    // Field 5 as a fixed32 whose bytes (18 11 20 07) read as varints would be protocol 17 and source port 7.
    { name: 'a port sent as a fixed32 holding a protocol and a port', fields: [len(1, len(1, a4), len(2, b4), f32(5, 0x07201118))], want: 'object' },
    { name: 'a tuple with the destination before the source', fields: [len(1, len(2, b4), len(1, a4), vf(3, 6), vf(4, 1), vf(5, 2))], want: 'record' },
    { name: 'a tuple without addresses', fields: [len(1, vf(3, 6), vf(4, 1), vf(5, 2))], want: { code: 'EVALUE', reason: 'orig.src: address of 0 bytes, expected 4 or 16' } },
    { name: 'a destination of 16 bytes beside a source of 4', fields: [len(1, len(1, a4), len(2, Buffer.alloc(16)), vf(3, 6))], want: { code: 'EVALUE', reason: 'orig.dst: address of 16 bytes, src has 4' } },
    { name: 'no orig', fields: [vf(3, 1)], want: { code: 'EVALUE', reason: 'entry without orig tuple' } },
    { name: 'a reply of another protocol', fields: [len(1, tup()), len(2, rtp(17, vf(4, 2), vf(5, 1)))], want: 'object' },
    { name: 'an IPv6 reply to an IPv4 orig', fields: [len(1, tup()), len(2, tup6())], want: { code: 'EVALUE', reason: 'reply: IPv4 and IPv6 addresses mixed' } },
    { name: 'ESP (no ports) with an ICMP type, no reply', fields: [len(1, tp(50, vf(6, 8)))], want: 'object' },
    // Labels whose bytes (18 05 20 07) read as fields would be a status of 5 and a timeout of 7.
    { name: 'labels whose bytes hold a status and a timeout field', fields: [len(1, tup()), len(11, h('18052007'))], want: 'object' },
    { name: 'a source of 5 bytes', fields: [len(1, len(1, Buffer.alloc(5)), len(2, Buffer.alloc(5)), vf(3, 6))], want: { code: 'EVALUE', reason: 'orig.src: address of 5 bytes, expected 4 or 16' } },
    { name: 'TCP with an ICMP type and no ports', fields: [len(1, tp(6, vf(6, 8)))], want: 'object' },
    { name: 'an ICMP echo whose reply has ports', fields: [len(1, icmpOrig), len(2, rtp(1, vf(4, 1), vf(5, 2)))], want: 'object' },
    { name: 'a zone of 65535', fields: [len(1, tup()), vf(6, 65535)], want: 'record' },
    { name: 'a zone of 65536', fields: [len(1, tup()), vf(6, 65536)], want: { code: 'EVALUE', reason: 'zone 65536 does not fit u16' } },
    { name: 'TCP at its bounds: state 9, scales 255, flags 65535', fields: [len(1, tup()), len(7, vf(1, 9), vf(2, 255), vf(3, 255), vf(4, 65535), vf(5, 65535))], want: 'record' },
    { name: 'TCP state 10, last', fields: [len(1, tup()), len(7, vf(2, 1), vf(1, 10))], want: { code: 'EVALUE', reason: 'tcp.state 10 is not below 10' } },
    { name: 'a window scale of 256, last', fields: [len(1, tup()), len(7, vf(1, 1), vf(2, 256))], want: { code: 'EVALUE', reason: 'tcp.wscaleOrig 256 does not fit u8' } },
    { name: 'a reply window scale of 256, last', fields: [len(1, tup()), len(7, vf(1, 1), vf(3, 256))], want: { code: 'EVALUE', reason: 'tcp.wscaleReply 256 does not fit u8' } },
    { name: 'TCP flags of 65536, last', fields: [len(1, tup()), len(7, vf(1, 1), vf(4, 65536))], want: { code: 'EVALUE', reason: 'tcp.flagsOrig 65536 does not fit flags | mask << 8' } },
    { name: 'reply TCP flags of 65536, last', fields: [len(1, tup()), len(7, vf(1, 1), vf(5, 65536))], want: { code: 'EVALUE', reason: 'tcp.flagsReply 65536 does not fit flags | mask << 8' } },
    // A fixed32 state: the record path reads every TCP field as a varint, and ff ff ff ff runs past the message.
    { name: 'a TCP state sent as a fixed32 of ff ff ff ff', fields: [len(1, tup()), len(7, f32(1, 0xffffffff))], want: 'object' },
    // Read as varints, the fixed32's bytes (05 10 80 01) would be 5, then a window scale of 128.
    { name: 'a TCP state sent as a fixed32 holding a window scale', fields: [len(1, tup()), len(7, f32(1, 0x01801005))], want: 'object' },
    // A refusal in the middle of a nested message: the record path gives up
    // there. The bytes after it (28 81 01) read as entry fields would be a
    // mark of 129 (for the object reader a field 16 fixed64, cut), and an
    // ICMP reply read first leaves an ICMP tuple's bits behind.
    { name: 'an ICMP reply, then an orig whose 5-byte source holds a status and a mark', fields: [len(2, icmpReply), len(1, len(1, h('1805288101')))], want: { code: 'EVALUE', reason: 'orig.src: address of 5 bytes, expected 4 or 16' } },
    { name: 'an ICMP reply, then an orig with a repeated source port', fields: [len(2, icmpReply), len(1, tp(6, vf(4, 1), vf(5, 2)), h('20288101'))], want: { code: 'EDECODE', reason: 'fixed64 runs past its field' } },
    { name: 'a TCP state given twice, the second holding a mark', fields: [len(1, tup()), len(7, vf(1, 1), h('08288101'))], want: { code: 'EDECODE', reason: 'fixed64 runs past its field' } },
    { name: 'a TCP state sent as a fixed32 holding a mark', fields: [len(1, tup()), len(7, f32(1, 0x01812805))], want: 'object' },
  ];
  it.each(rows)('$name: $want', ({ fields, want }) => {
    const buf = dgram(ctNew(...fields));
    const objects = decode(buf);
    const records = decodeDatagram(buf, { cluster: CLUSTER, records: true });
    if (typeof want === 'object') {
      expect(objects.ok ? 'ok' : objects.error).toEqual(want);
      expect(records.ok ? 'ok' : records.error).toEqual(want);
      return;
    }
    if (!objects.ok || !records.ok) throw new Error(`refused: ${objects.ok ? '' : objects.error.reason} ${records.ok ? '' : records.error.reason}`);
    const o = (objects.messages[0] as { entry: ConntrackEntry }).entry;
    const r = (records.messages[0] as { entry: ConntrackEntry | EntryRecord }).entry;
    expect(r instanceof EntryRecord ? 'record' : 'object').toBe(want);
    expect(r instanceof EntryRecord ? r.entry() : r).toEqual(o);
  });

  it.each([
    { name: 'a TCP info given twice', fields: [len(1, tup()), len(7, vf(1, 3), vf(2, 7)), len(7, vf(1, 4))], want: { protoinfo: { tcp: { state: 4 } } } },
    { name: 'a TCP state given twice', fields: [len(1, tup()), len(7, vf(1, 1), vf(1, 2))], want: { protoinfo: { tcp: { state: 2 } } } },
    { name: 'an unknown field holding a status field', fields: [len(1, tup()), len(22, vf(3, 5))], want: {} },
    { name: 'a source port given twice', fields: [len(1, tup(vf(4, 0x30)))], want: { orig: { ...tup4, sport: 0x30 }, reply: { ...mirrorTuple(tup4), dport: 0x30 } } },
    { name: 'a port sent as a fixed32', fields: [len(1, len(1, a4), len(2, b4), f32(5, 0x07201118))], want: { orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 0 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 0 } } },
    { name: 'a TCP state sent as a fixed32', fields: [len(1, tup()), len(7, f32(1, 0x01801005))], want: { protoinfo: { tcp: { state: 0 } } } },
    { name: 'ESP with an ICMP type', fields: [len(1, tp(50, vf(6, 8)))], want: { orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 50, icmpType: 8 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 50, icmpType: 8 } } },
    { name: 'labels whose bytes hold fields', fields: [len(1, tup()), len(11, h('18052007'))], want: { labels: h('18052007') } },
  ])('$name, read exactly as an object', ({ fields, want }) => {
    const r = decode(dgram(ctNew(...fields)));
    expect(r.ok && (r.messages[0] as { entry: ConntrackEntry }).entry).toStrictEqual({ family: 2, orig: tup4, reply: mirrorTuple(tup4), ...want });
  });

  it('200 records in one datagram: each its own, past the first 64 and 128', () => {
    const entries = Array.from({ length: 200 }, (_, i) => ctNew(len(1, tup()), vf(3, i + 1)));
    const r = decodeDatagram(dgram(...entries), { cluster: CLUSTER, records: true });
    if (!r.ok) throw new Error(r.error.reason);
    const status = r.messages.map((m) => {
      const e = (m as { entry: ConntrackEntry | EntryRecord }).entry;
      return e instanceof EntryRecord ? e.entry().status : 'object';
    });
    expect(status).toEqual(entries.map((_, i) => i + 1));
  });

  it('the record at a position is the same object in the next datagram (no garbage per datagram)', () => {
    const first = decodeDatagram(dgram(ctNew(len(1, tup()), vf(3, 1))), { cluster: CLUSTER, records: true });
    const second = decodeDatagram(dgram(ctNew(len(1, tup()), vf(3, 2))), { cluster: CLUSTER, records: true });
    if (!first.ok || !second.ok) throw new Error('refused');
    const a = (first.messages[0] as { entry: EntryRecord }).entry;
    const b = (second.messages[0] as { entry: EntryRecord }).entry;
    expect(b).toBeInstanceOf(EntryRecord);
    expect(b).toBe(a);
    expect(b.entry().status).toBe(2);
  });
});

describe('proto-codec: the rest of the reader, exactly', () => {
  const orig: Tuple = { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 1, dport: 2 };
  const reply = mirrorTuple(orig);
  const node = (s: string): Buffer => len(1, Buffer.from(s));

  it('an entry with only a TCP state has no other key', () => {
    const r = decode(dgram(ctNew(len(1, tup()), len(7, vf(1, 3)))));
    expect(r.ok && (r.messages[0] as { entry: ConntrackEntry }).entry).toStrictEqual({ family: 2, orig, reply, protoinfo: { tcp: { state: 3 } } });
  });

  it('a delete without a zone has no zone key', () => {
    const r = decode(dgram(Buffer.concat([f32(1, 3), len(4, len(1, tup()), vf(3, 1))])));
    expect(r.ok && r.messages).toStrictEqual([{ kind: 'ct-delete', seq: 3, entry: { family: 2, orig, reply } }]);
  });

  it.each([
    { name: 'only its three tuples', extra: [], want: {} },
    { name: 'a NAT of direction 1', extra: [len(9, vf(1, 1), len(2, tup()))], want: { nat: { dir: 1, tuple: orig } } },
    // Field 22's bytes (20 63) read as a field would be a timeout of 99.
    { name: 'an unknown field holding a timeout field', extra: [len(22, vf(4, 99))], want: {} },
  ])('an expectation with $name: no other key', ({ extra, want }) => {
    const r = decode(dgram(Buffer.concat([f32(1, 2), expNew(len(1, tup()), len(2, tup()), len(3, tup()), ...extra)])));
    expect(r.ok && r.messages).toStrictEqual([{ kind: 'exp-new', seq: 2, entry: { family: 2, master: orig, tuple: orig, mask: orig, ...want } }]);
  });

  it.each([
    { name: 'an IPv6 master after an IPv4 tuple', buf: dgram(expNew(len(2, tup()), len(1, tup6()))), reason: 'master: IPv4 and IPv6 addresses mixed' },
    { name: 'an IPv6 tuple after an IPv4 master', buf: dgram(expNew(len(1, tup()), len(2, tup6()))), reason: 'tuple: IPv4 and IPv6 addresses mixed' },
    { name: 'an expectation helper of 33 bytes', buf: dgram(expNew(len(5, Buffer.alloc(33, 0x61)))), reason: 'helper of 33 bytes, at most 32' },
    { name: 'a hello-ack peer with a space', buf: dgram(len(11, node('fw b'))), reason: 'peer: byte 0x20 is not allowed in a node id' },
    { name: 'a challenge peer with a space', buf: dgram(len(15, node('fw b'))), reason: 'peer: byte 0x20 is not allowed in a node id' },
    { name: 'a challenge response peer with a space', buf: dgram(len(16, node('fw b'))), reason: 'peer: byte 0x20 is not allowed in a node id' },
    { name: 'an ack peer with a space', buf: dgram(len(7, node('fw b'))), reason: 'peer: byte 0x20 is not allowed in a node id' },
  ])('$name: EVALUE, $reason', ({ buf, reason }) => {
    const r = decode(buf);
    expect(r.ok ? 'ok' : r.error).toEqual({ code: 'EVALUE', reason });
  });

  it.each([
    ['an alive', 9],
    ['a hello', 10],
  ])('%s whose body holds a group is refused: its fields are checked, not only skipped', (_name, field) => {
    const r = decode(dgram(len(field, h('0b'))));
    expect(r.ok ? 'ok' : r.error).toEqual({ code: 'EDECODE', reason: 'unsupported wire type 3 (field 1)' });
  });

  it('decodeMessageField reads an entry as an object, never a record', () => {
    const w = new ProtoWriter(256);
    writeMessage(w, { kind: 'ct-new', seq: 5, entry: { family: 2, orig, reply, mark: 1 } });
    const one = Buffer.from(w.buf.subarray(0, w.pos));
    const m = decodeMessageField(one, 0, one.length) as { entry: unknown };
    expect(m.entry).not.toBeInstanceOf(EntryRecord);
    expect(m).toStrictEqual({ kind: 'ct-new', seq: 5, entry: { family: 2, orig, reply, mark: 1 } });
  });

  it.each([
    { name: 'an epoch and no number', fields: [f32(2, 7)], epoch: 7, number: undefined },
    { name: 'a number and no epoch', fields: [f32(4, 9)], epoch: 0, number: 9 },
    { name: 'both', fields: [f32(4, 0xffffffff), f32(2, 1)], epoch: 1, number: 0xffffffff },
  ])('a datagram header with $name', ({ fields, epoch, number }) => {
    const r = decode(Buffer.concat([dgram(), ...fields]));
    expect(r.ok && [r.header.epoch, r.header.number, r.messages]).toStrictEqual([epoch, number, []]);
  });

  it('an unknown datagram field is skipped whole, even when its bytes hold a message field', () => {
    // Field 22's bytes read as fields: 02 (field 0), then 1a 00, an empty message.
    const r = decode(Buffer.concat([dgram(), len(22, len(3))]));
    expect(r.ok && [r.messages, r.unknownMessages]).toStrictEqual([[], 0]);
  });

  /** readDatagram over a datagram's body with at most `max` messages: what it read, or its refusal. */
  function readAtMost(buf: Buffer, max: number): unknown {
    readerReset(buf, PREFIX_BYTES);
    try {
      const d = readDatagram(buf.length, max);
      return [d.messages.map((m) => m.kind), d.unknownMessages];
    } catch (e) {
      if (e instanceof WireFail) return { code: e.code, reason: e.reason };
      throw e;
    } finally {
      readerRelease();
    }
  }
  const alive = len(9);
  const unknown = len(17, h('00'));
  it.each([
    { name: 'two messages', msgs: [alive, alive], want: [['alive', 'alive'], 0] },
    { name: 'a message and an unknown one', msgs: [alive, unknown], want: [['alive'], 1] },
    { name: 'three messages', msgs: [alive, alive, alive], want: { code: 'EVALUE', reason: 'more than 2 messages in one datagram' } },
    { name: 'two messages and an unknown one', msgs: [alive, unknown, alive], want: { code: 'EVALUE', reason: 'more than 2 messages in one datagram' } },
    { name: 'three unknown messages', msgs: [unknown, unknown, unknown], want: { code: 'EVALUE', reason: 'more than 2 messages in one datagram' } },
  ])('at most 2 messages: $name', ({ msgs, want }) => {
    expect(readAtMost(dgram(...msgs), 2)).toStrictEqual(want);
  });
});
