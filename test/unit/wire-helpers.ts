// Shared by wire.test.ts and wire-fuzz.test.ts: fixture messages, entry
// generators, and an independent reference codec built on protobufjs
// reflection over proto/ctsyncd.proto, against which the hand-written codec
// in src/sync/wire/proto-codec.ts is checked.

import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { formatIPv4At, formatIPv6At, parseIPv4, parseIPv6 } from '../../src/common/address.js';
import { EntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry, Family, Tuple } from '../../src/kernel/entry.js';
import type { AuthKeys } from '../../src/sync/wire/auth.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { mirrorTuple } from '../../src/sync/wire/proto-codec.js';
import type { WireMessage } from '../../src/sync/wire/types.js';

export const CLUSTER = 42;
export const NODE = 'fw-a';
export const EPOCH = 0x5eed1234;
export const KEY_A = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
export const KEY_B = Buffer.from('f0e0d0c0b0a090807060504030201000fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0', 'hex');
export const AUTH_A: AuthKeys = { sign: KEY_A, verify: [KEY_A] };
export const AUTH_B: AuthKeys = { sign: KEY_B, verify: [KEY_B] };

export function encodeAll(messages: WireMessage[], auth?: AuthKeys, mtu = 1472): Buffer {
  const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu, auth });
  for (const m of messages) {
    if (!enc.add(m)) throw new Error('fixture does not fit one datagram');
  }
  const out = enc.flush();
  if (!out) throw new Error('empty fixture');
  return out;
}

/** A typical established IPv4 TCP flow as the kernel reports it (SNAT'ed, mark 0). */
export function typicalTcpEntry(i: number): ConntrackEntry {
  const client = `10.${(i >>> 16) & 0xff}.${(i >>> 8) & 0xff}.${i & 0xff}`;
  const sport = 32768 + (i % 28232);
  return {
    family: 2,
    orig: { src: client, dst: '198.51.100.20', proto: 6, sport, dport: 443 },
    reply: { src: '198.51.100.20', dst: '203.0.113.1', proto: 6, sport: 443, dport: 1024 + (i % 64000) },
    status: 0x19e,
    timeout: 431999,
    mark: 0,
    protoinfo: {
      tcp: {
        state: 3,
        wscaleOrig: 7,
        wscaleReply: 7,
        flagsOrig: { flags: 0x23, mask: 0 },
        flagsReply: { flags: 0x23, mask: 0 },
      },
    },
  };
}

// ---------------------------------------------------------------------------
// Fixtures

const dnatEntry: ConntrackEntry = {
  family: 2,
  orig: { src: '192.168.1.10', dst: '203.0.113.5', proto: 6, sport: 51234, dport: 443 },
  reply: { src: '10.0.0.80', dst: '192.168.1.10', proto: 6, sport: 8443, dport: 51234 },
  status: 0x1ae,
  timeout: 431999,
  mark: 0x10,
  labels: Buffer.from('02000000000000000000000010000000', 'hex'),
  labelsMask: Buffer.from('ffffffffffffffffffffffffffffffff', 'hex'),
  protoinfo: {
    tcp: {
      state: 3,
      wscaleOrig: 7,
      wscaleReply: 9,
      flagsOrig: { flags: 0x23, mask: 0x23 },
      flagsReply: { flags: 0x33, mask: 0x33 },
    },
  },
};

export const FIXTURE_MESSAGES: Record<string, WireMessage[]> = {
  'ipv4-tcp-dnat-labels': [{ kind: 'ct-new', seq: 0x01020304, entry: dnatEntry }],
  'ipv6-udp': [
    {
      kind: 'ct-update',
      seq: 7,
      entry: {
        family: 10,
        orig: { src: '2001:db8::1', dst: '2001:db8:0:1::53', proto: 17, sport: 40000, dport: 53 },
        reply: { src: '2001:db8:0:1::53', dst: '2001:db8::1', proto: 17, sport: 53, dport: 40000 },
        status: 0x8,
        timeout: 30,
        zone: 3,
      },
    },
  ],
  icmp: [
    {
      kind: 'ct-new',
      seq: 0xfffffffe,
      entry: {
        family: 2,
        orig: { src: '10.1.1.1', dst: '10.2.2.2', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 0x1234 },
        reply: { src: '10.2.2.2', dst: '10.1.1.1', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 0x1234 },
        status: 0x8,
        timeout: 30,
      },
    },
  ],
  delete: [
    {
      kind: 'ct-delete',
      seq: 0,
      entry: {
        family: 2,
        orig: { src: '192.168.1.10', dst: '203.0.113.5', proto: 6, sport: 51234, dport: 443 },
        reply: { src: '203.0.113.5', dst: '192.168.1.10', proto: 6, sport: 443, dport: 51234 },
        zone: 5,
      },
    },
  ],
  control: [
    { kind: 'ack', peer: 'fw-b', epoch: 0xa1b2c3d4, from: 100, to: 163 },
    { kind: 'nack', peer: 'fw-b', epoch: 0xa1b2c3d4, from: 164, to: 170 },
    { kind: 'alive', seq: 1000 },
    { kind: 'hello', seq: 1000 },
    { kind: 'hello-ack', peer: 'fw-c.dc2', epoch: 77 },
    { kind: 'resync-request', peer: '', epoch: 0, request: 0 },
    { kind: 'resync-request', peer: 'fw-b', epoch: 0xa1b2c3d4, request: 7 },
    { kind: 'challenge', peer: 'fw-b', nonceHi: 0xdeadbeef, nonceLo: 1 },
    { kind: 'challenge-response', seq: 1000, peer: 'fw-a', epoch: 0x6000_0001, nonceHi: 0xdeadbeef, nonceLo: 1, firstEpoch: 0 },
    {
      kind: 'challenge-response',
      seq: 1000,
      peer: 'fw-a',
      epoch: 0x6000_0002,
      nonceHi: 0xdeadbeef,
      nonceLo: 2,
      firstEpoch: 0x6000_0001,
    },
    { kind: 'bulk-start', seq: 1001, bulkId: 3, peer: '' },
    { kind: 'bulk-end', seq: 1002, bulkId: 3, peer: 'fw-b', count: 12345 },
  ],
  expect: [
    {
      kind: 'exp-new',
      seq: 55,
      entry: {
        family: 2,
        master: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 40000, dport: 21 },
        tuple: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 0, dport: 50000 },
        mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 6, sport: 0, dport: 0xffff },
        timeout: 300,
        helper: 'ftp',
        zone: 0,
        flags: 0,
        class: 0,
        nat: { dir: 1, tuple: { src: '0.0.0.0', dst: '192.0.2.1', proto: 6, sport: 0, dport: 50000 } },
        fn: 'nat-follow-master',
      },
    },
    {
      kind: 'exp-delete',
      seq: 56,
      entry: {
        family: 10,
        master: { src: 'fe80::1', dst: 'fe80::2', proto: 6, sport: 40001, dport: 21 },
        tuple: { src: 'fe80::1', dst: 'fe80::2', proto: 6, sport: 0, dport: 50001 },
        mask: { src: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', dst: '::', proto: 6, sport: 0, dport: 0xffff },
      },
    },
  ],
  // Every replicated field at least once.
  'all-fields': [
    {
      kind: 'ct-update',
      seq: 0x80000000,
      entry: {
        family: 2,
        orig: { src: '172.16.0.1', dst: '172.16.0.2', proto: 132, sport: 5000, dport: 5001, zone: 9 },
        reply: { src: '172.16.0.2', dst: '172.16.0.1', proto: 132, sport: 5001, dport: 5000, zone: 9 },
        master: { src: '172.16.0.1', dst: '172.16.0.2', proto: 6, sport: 1111, dport: 2222 },
        status: 0xffffffff,
        timeout: 0,
        mark: 0xffffffff,
        zone: 0xffff,
        labels: Buffer.from('00000001', 'hex'),
        labelsMask: Buffer.from('ffffffff', 'hex'),
        protoinfo: {
          tcp: { state: 9 },
          sctp: { state: 4, vtagOrig: 0xdeadbeef, vtagReply: 0 },
          dccp: { state: 4, role: 1, handshakeSeq: 0x0000123456789abcn },
        },
        seqAdjOrig: { correctionPos: 0x12345678, offsetBefore: -5, offsetAfter: 2147483647 },
        seqAdjReply: { correctionPos: 0, offsetBefore: 0, offsetAfter: -2147483648 },
        helper: 'sip',
        secmark: 7,
        synproxy: { isn: 1, its: 0xffffffff, tsoff: 0 },
      },
    },
  ],
};

/** The entry a message carries, made from its record when it holds one. */
function entryOf(e: ConntrackEntry | EntryRecord): ConntrackEntry {
  return e instanceof EntryRecord ? e.entry() : e;
}

/** The value decode(encode(m)) must equal: what the wire carries, with reply rebuilt for deletes. */
export function expectedAfterWire(m: WireMessage): WireMessage {
  switch (m.kind) {
    case 'ct-new':
    case 'ct-update':
      return { kind: m.kind, seq: m.seq, entry: replicatedEntry(entryOf(m.entry)) };
    case 'ct-delete': {
      const e: ConntrackEntry = { family: m.entry.family, orig: m.entry.orig, reply: mirrorTuple(m.entry.orig) };
      if (m.entry.zone !== undefined) e.zone = m.entry.zone;
      return { kind: m.kind, seq: m.seq, entry: e };
    }
    case 'exp-new':
    case 'exp-delete': {
      const { id: _id, ...rest } = m.entry;
      return { kind: m.kind, seq: m.seq, entry: rest };
    }
    default:
      return m;
  }
}

function replicatedEntry(e: ConntrackEntry): ConntrackEntry {
  const {
    id: _id,
    use: _use,
    countersOrig: _co,
    countersReply: _cr,
    timestamp: _ts,
    secctx: _sc,
    protoinfo,
    ...rest
  } = e;
  const out: ConntrackEntry = { ...rest };
  if (protoinfo && (protoinfo.tcp || protoinfo.sctp || protoinfo.dccp)) out.protoinfo = protoinfo;
  return out;
}

// ---------------------------------------------------------------------------
// Arbitraries for valid messages

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const s32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const state = fc.integer({ min: 0, max: 9 });
const nodeIdChars = fc.constantFrom(...'abcXYZ019_.-'.split(''));
export const nodeIdArb = fc.string({ unit: nodeIdChars, minLength: 1, maxLength: 64 });
const peerArb = fc.oneof(fc.constant(''), nodeIdArb);
const nameArb = fc.string({ maxLength: 10 });

function addrArb(family: Family): fc.Arbitrary<string> {
  if (family === 2) return fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIPv4At(Buffer.from(b), 0));
  return fc.oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIPv6At(Buffer.from(b), 0)),
    fc.constantFrom('::', '::1', '2001:db8::1', '::ffff:192.0.2.1', 'fe80::1:0:0:1'),
  );
}

function tupleArb(family: Family): fc.Arbitrary<Tuple> {
  return fc
    .record(
      {
        src: addrArb(family),
        dst: addrArb(family),
        proto: u8,
        sport: u16,
        dport: u16,
        icmpType: u8,
        icmpCode: u8,
        icmpId: u16,
        zone: u16,
      },
      { requiredKeys: ['src', 'dst', 'proto'] },
    )
    .map((t) => t as Tuple);
}

const labelsArb = fc
  .integer({ min: 1, max: 4 })
  .chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 }))
  .map((b) => Buffer.from(b));

export function entryArb(): fc.Arbitrary<ConntrackEntry> {
  return fc.constantFrom<Family>(2, 10).chain((family) =>
    fc
      .record(
        {
          orig: tupleArb(family),
          reply: tupleArb(family),
          master: tupleArb(family),
          status: u32,
          timeout: u32,
          mark: u32,
          zone: u16,
          labels: labelsArb,
          labelsMask: labelsArb,
          protoinfo: fc.record(
            {
              tcp: fc.record(
                {
                  state,
                  wscaleOrig: u8,
                  wscaleReply: u8,
                  flagsOrig: fc.record({ flags: u8, mask: u8 }),
                  flagsReply: fc.record({ flags: u8, mask: u8 }),
                },
                { requiredKeys: ['state'] },
              ),
              sctp: fc.record({ state, vtagOrig: u32, vtagReply: u32 }, { requiredKeys: ['state'] }),
              dccp: fc.record(
                { state, role: u8, handshakeSeq: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
                { requiredKeys: ['state'] },
              ),
            },
            { requiredKeys: [] },
          ),
          seqAdjOrig: fc.record({ correctionPos: u32, offsetBefore: s32, offsetAfter: s32 }),
          seqAdjReply: fc.record({ correctionPos: u32, offsetBefore: s32, offsetAfter: s32 }),
          helper: nameArb,
          secmark: u32,
          synproxy: fc.record({ isn: u32, its: u32, tsoff: u32 }),
          // Node-local fields: never replicated, must be dropped on the wire.
          id: u32,
          use: u32,
          secctx: nameArb,
          countersOrig: fc.record({ packets: fc.bigInt({ min: 0n, max: 1n << 40n }), bytes: fc.bigInt() }),
        },
        { requiredKeys: ['orig', 'reply'] },
      )
      .map((e) => ({ family, ...e }) as ConntrackEntry),
  );
}

export function expectArb(): fc.Arbitrary<ExpectEntry> {
  return fc.constantFrom<Family>(2, 10).chain((family) =>
    fc
      .record(
        {
          master: tupleArb(family),
          tuple: tupleArb(family),
          mask: tupleArb(family),
          timeout: u32,
          id: u32,
          helper: nameArb,
          zone: u16,
          flags: u32,
          class: u32,
          nat: fc.record({ dir: u32, tuple: tupleArb(family) }),
          fn: nameArb,
        },
        { requiredKeys: ['master', 'tuple', 'mask'] },
      )
      .map((e) => ({ family, ...e }) as ExpectEntry),
  );
}

export function messageArb(): fc.Arbitrary<WireMessage> {
  return fc.oneof(
    fc.record({ kind: fc.constantFrom('ct-new' as const, 'ct-update' as const), seq: u32, entry: entryArb() }),
    fc.record({ kind: fc.constant('ct-delete' as const), seq: u32, entry: entryArb() }),
    fc.record({ kind: fc.constantFrom('exp-new' as const, 'exp-delete' as const), seq: u32, entry: expectArb() }),
    fc.record({
      kind: fc.constantFrom('ack' as const, 'nack' as const),
      peer: nodeIdArb,
      epoch: u32,
      from: u32,
      to: u32,
    }),
    fc.record({ kind: fc.constantFrom('alive' as const, 'hello' as const), seq: u32 }),
    fc.record({ kind: fc.constant('hello-ack' as const), peer: nodeIdArb, epoch: u32 }),
    fc.record({ kind: fc.constant('resync-request' as const), peer: peerArb, epoch: u32, request: u32 }),
    fc.record({ kind: fc.constant('challenge' as const), peer: nodeIdArb, nonceHi: u32, nonceLo: u32 }),
    fc.record({
      kind: fc.constant('challenge-response' as const),
      seq: u32,
      peer: nodeIdArb,
      epoch: u32,
      nonceHi: u32,
      nonceLo: u32,
      firstEpoch: u32,
    }),
    fc.record({ kind: fc.constant('bulk-start' as const), seq: u32, bulkId: u32, peer: peerArb }),
    fc.record({ kind: fc.constant('bulk-end' as const), seq: u32, bulkId: u32, peer: peerArb, count: u32 }),
  );
}

// ---------------------------------------------------------------------------
// Reference codec: protobufjs reflection over the .proto, with its own
// conversion to and from the daemon's types. Deliberately written apart from
// proto-codec.ts so the two can disagree.

const PROTO_PATH = fileURLToPath(new URL('../../proto/ctsyncd.proto', import.meta.url));
const root = protobuf.loadSync(PROTO_PATH);
export const PbDatagram = root.lookupType('ctsyncd.v1.Datagram');

interface PTuple {
  src?: Uint8Array;
  dst?: Uint8Array;
  proto?: number;
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  zone?: number;
}
type PObj = Record<string, unknown>;

function pAddr(s: string, family: Family): Buffer {
  if (family === 2) {
    const v = parseIPv4(s);
    if (v === undefined) throw new Error(`bad IPv4 ${s}`);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  }
  const b = parseIPv6(s);
  if (!b) throw new Error(`bad IPv6 ${s}`);
  return b;
}

function toPTuple(t: Tuple, family: Family): PTuple {
  const { src, dst, ...rest } = t;
  return { src: pAddr(src, family), dst: pAddr(dst, family), ...rest };
}

function fromPTuple(p: PTuple): Tuple {
  const addr = (b: Uint8Array | undefined): string => {
    const buf = Buffer.from(b ?? []);
    if (buf.length === 4) return formatIPv4At(buf, 0);
    if (buf.length === 16) return formatIPv6At(buf, 0);
    throw new Error(`address of ${buf.length} bytes`);
  };
  const t: Tuple = { src: addr(p.src), dst: addr(p.dst), proto: p.proto ?? 0 };
  for (const k of ['sport', 'dport', 'icmpType', 'icmpCode', 'icmpId', 'zone'] as const) {
    if (p[k] !== undefined) t[k] = p[k];
  }
  return t;
}

function copyDefined(from: object, to: PObj, keys: readonly string[]): void {
  for (const k of keys) {
    const v = (from as PObj)[k];
    if (v !== undefined) to[k] = v;
  }
}

function toPEntry(e: ConntrackEntry, isDelete: boolean): PObj {
  const f = e.family;
  const p: PObj = { orig: toPTuple(e.orig, f) };
  if (isDelete) {
    copyDefined(e, p, ['zone']);
    return p;
  }
  // The sender leaves out a reply that is just orig mirrored (no NAT).
  if (!isDeepStrictEqual(e.reply, mirrorTuple(e.orig))) p.reply = toPTuple(e.reply, f);
  if (e.master) p.master = toPTuple(e.master, f);
  copyDefined(e, p, ['status', 'timeout', 'mark', 'zone', 'labels', 'labelsMask', 'helper', 'secmark']);
  const tcp = e.protoinfo?.tcp;
  if (tcp) {
    const t: PObj = { state: tcp.state };
    copyDefined(tcp, t, ['wscaleOrig', 'wscaleReply']);
    if (tcp.flagsOrig) t.flagsOrig = tcp.flagsOrig.flags + tcp.flagsOrig.mask * 256;
    if (tcp.flagsReply) t.flagsReply = tcp.flagsReply.flags + tcp.flagsReply.mask * 256;
    p.tcp = t;
  }
  if (e.protoinfo?.sctp) p.sctp = { ...e.protoinfo.sctp };
  const dccp = e.protoinfo?.dccp;
  if (dccp) {
    const d: PObj = { state: dccp.state };
    copyDefined(dccp, d, ['role']);
    if (dccp.handshakeSeq !== undefined) {
      d.handshakeSeqHi = Number(dccp.handshakeSeq / 4294967296n);
      d.handshakeSeqLo = Number(dccp.handshakeSeq % 4294967296n);
    }
    p.dccp = d;
  }
  if (e.seqAdjOrig) p.seqAdjOrig = { ...e.seqAdjOrig };
  if (e.seqAdjReply) p.seqAdjReply = { ...e.seqAdjReply };
  if (e.synproxy) p.synproxy = { ...e.synproxy };
  return p;
}

function toPExpect(e: ExpectEntry): PObj {
  const f = e.family;
  const p: PObj = { master: toPTuple(e.master, f), tuple: toPTuple(e.tuple, f), mask: toPTuple(e.mask, f) };
  copyDefined(e, p, ['timeout', 'helper', 'zone', 'flags', 'fn']);
  if (e.class !== undefined) p.expectClass = e.class;
  if (e.nat) p.nat = { dir: e.nat.dir, tuple: toPTuple(e.nat.tuple, f) };
  return p;
}

const KIND_FIELD: Record<WireMessage['kind'], string> = {
  'ct-new': 'ctNew',
  'ct-update': 'ctUpdate',
  'ct-delete': 'ctDelete',
  'exp-new': 'expNew',
  'exp-delete': 'expDelete',
  ack: 'ack',
  nack: 'nack',
  alive: 'alive',
  hello: 'hello',
  'hello-ack': 'helloAck',
  'resync-request': 'resyncRequest',
  'bulk-start': 'bulkStart',
  'bulk-end': 'bulkEnd',
  challenge: 'challenge',
  'challenge-response': 'challengeResponse',
};

export function toPMessage(m: WireMessage): PObj {
  const out: PObj = {};
  if ('seq' in m) out.seq = m.seq;
  let body: PObj;
  switch (m.kind) {
    case 'ct-new':
    case 'ct-update':
    case 'ct-delete':
      body = toPEntry(entryOf(m.entry), m.kind === 'ct-delete');
      break;
    case 'exp-new':
    case 'exp-delete':
      body = toPExpect(m.entry);
      break;
    case 'ack':
    case 'nack':
      body = { peer: m.peer, epoch: m.epoch, from: m.from, to: m.to };
      break;
    case 'alive':
    case 'hello':
      body = {};
      break;
    case 'hello-ack':
      body = { peer: m.peer, epoch: m.epoch };
      break;
    case 'resync-request':
      body = { peer: m.peer, epoch: m.epoch, request: m.request };
      break;
    case 'challenge':
      body = { peer: m.peer, nonceHi: m.nonceHi, nonceLo: m.nonceLo };
      break;
    case 'challenge-response':
      body = { peer: m.peer, epoch: m.epoch, nonceHi: m.nonceHi, nonceLo: m.nonceLo, firstEpoch: m.firstEpoch };
      break;
    case 'bulk-start':
      body = { bulkId: m.bulkId, peer: m.peer };
      break;
    case 'bulk-end':
      body = { bulkId: m.bulkId, peer: m.peer, count: m.count };
      break;
  }
  out[KIND_FIELD[m.kind]] = body;
  return out;
}

/** The protobuf body (no prefix, no trailer) protobufjs makes of these messages. */
export function referenceEncode(node: string, epoch: number, messages: WireMessage[]): Buffer {
  const obj = { node, epoch, messages: messages.map(toPMessage) };
  const err = PbDatagram.verify(obj);
  if (err) throw new Error(`reference encoder: ${err}`);
  return Buffer.from(PbDatagram.encode(PbDatagram.fromObject(obj)).finish());
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : 0;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function fromPEntry(p: PObj): ConntrackEntry {
  const orig = fromPTuple(p.orig as PTuple);
  const reply = p.reply ? fromPTuple(p.reply as PTuple) : mirrorTuple(orig);
  const e: ConntrackEntry = { family: (p.orig as PTuple).src?.length === 4 ? 2 : 10, orig, reply };
  if (p.master) e.master = fromPTuple(p.master as PTuple);
  copyDefined(p, e as unknown as PObj, ['status', 'timeout', 'mark', 'zone', 'helper', 'secmark']);
  if (p.labels) e.labels = Buffer.from(p.labels as Uint8Array);
  if (p.labelsMask) e.labelsMask = Buffer.from(p.labelsMask as Uint8Array);
  const tcp = p.tcp as PObj | undefined;
  const sctp = p.sctp as PObj | undefined;
  const dccp = p.dccp as PObj | undefined;
  if (tcp || sctp || dccp) e.protoinfo = {};
  if (tcp && e.protoinfo) {
    const t: PObj = { state: num(tcp.state) };
    copyDefined(tcp, t, ['wscaleOrig', 'wscaleReply']);
    for (const k of ['flagsOrig', 'flagsReply'] as const) {
      if (tcp[k] !== undefined) t[k] = { flags: num(tcp[k]) % 256, mask: Math.floor(num(tcp[k]) / 256) };
    }
    e.protoinfo.tcp = t as unknown as NonNullable<typeof e.protoinfo.tcp>;
  }
  if (sctp && e.protoinfo) {
    const s: PObj = { state: num(sctp.state) };
    copyDefined(sctp, s, ['vtagOrig', 'vtagReply']);
    e.protoinfo.sctp = s as unknown as NonNullable<typeof e.protoinfo.sctp>;
  }
  if (dccp && e.protoinfo) {
    const d: PObj = { state: num(dccp.state) };
    copyDefined(dccp, d, ['role']);
    if (dccp.handshakeSeqHi !== undefined || dccp.handshakeSeqLo !== undefined) {
      d.handshakeSeq = BigInt(num(dccp.handshakeSeqHi)) * 4294967296n + BigInt(num(dccp.handshakeSeqLo));
    }
    e.protoinfo.dccp = d as unknown as NonNullable<typeof e.protoinfo.dccp>;
  }
  for (const k of ['seqAdjOrig', 'seqAdjReply'] as const) {
    const s = p[k] as PObj | undefined;
    if (s)
      e[k] = {
        correctionPos: num(s.correctionPos),
        offsetBefore: num(s.offsetBefore),
        offsetAfter: num(s.offsetAfter),
      };
  }
  const sp = p.synproxy as PObj | undefined;
  if (sp) e.synproxy = { isn: num(sp.isn), its: num(sp.its), tsoff: num(sp.tsoff) };
  return e;
}

function fromPExpect(p: PObj): ExpectEntry {
  const e: ExpectEntry = {
    family: (p.master as PTuple).src?.length === 4 ? 2 : 10,
    master: fromPTuple(p.master as PTuple),
    tuple: fromPTuple(p.tuple as PTuple),
    mask: fromPTuple(p.mask as PTuple),
  };
  copyDefined(p, e as unknown as PObj, ['timeout', 'helper', 'zone', 'flags', 'fn']);
  if (p.expectClass !== undefined) e.class = num(p.expectClass);
  const nat = p.nat as PObj | undefined;
  if (nat) e.nat = { dir: num(nat.dir), tuple: fromPTuple(nat.tuple as PTuple) };
  return e;
}

/** protobufjs' reading of a Datagram body, in the daemon's types. */
export function referenceDecode(body: Buffer): { node: string; epoch: number; messages: WireMessage[] } {
  const obj = PbDatagram.toObject(PbDatagram.decode(body), { oneofs: true }) as PObj;
  const messages: WireMessage[] = [];
  for (const pm of (obj.messages ?? []) as PObj[]) {
    const seq = num(pm.seq);
    const kind = pm.kind as string;
    const b = pm[kind] as PObj;
    switch (kind) {
      case 'ctNew':
      case 'ctUpdate':
        messages.push({ kind: kind === 'ctNew' ? 'ct-new' : 'ct-update', seq, entry: fromPEntry(b) });
        break;
      case 'ctDelete':
        messages.push({ kind: 'ct-delete', seq, entry: fromPEntry(b) });
        break;
      case 'expNew':
      case 'expDelete':
        messages.push({ kind: kind === 'expNew' ? 'exp-new' : 'exp-delete', seq, entry: fromPExpect(b) });
        break;
      case 'ack':
      case 'nack':
        messages.push({ kind, peer: str(b.peer), epoch: num(b.epoch), from: num(b.from), to: num(b.to) });
        break;
      case 'alive':
      case 'hello':
        messages.push({ kind, seq });
        break;
      case 'helloAck':
        messages.push({ kind: 'hello-ack', peer: str(b.peer), epoch: num(b.epoch) });
        break;
      case 'resyncRequest':
        messages.push({ kind: 'resync-request', peer: str(b.peer), epoch: num(b.epoch), request: num(b.request) });
        break;
      case 'challenge':
        messages.push({ kind: 'challenge', peer: str(b.peer), nonceHi: num(b.nonceHi), nonceLo: num(b.nonceLo) });
        break;
      case 'challengeResponse':
        messages.push({
          kind: 'challenge-response',
          seq,
          peer: str(b.peer),
          epoch: num(b.epoch),
          nonceHi: num(b.nonceHi),
          nonceLo: num(b.nonceLo),
          firstEpoch: num(b.firstEpoch),
        });
        break;
      case 'bulkStart':
        messages.push({ kind: 'bulk-start', seq, bulkId: num(b.bulkId), peer: str(b.peer) });
        break;
      case 'bulkEnd':
        messages.push({ kind: 'bulk-end', seq, bulkId: num(b.bulkId), peer: str(b.peer), count: num(b.count) });
        break;
      default:
        throw new Error(`reference decoder: kind ${kind}`);
    }
  }
  return { node: str(obj.node), epoch: num(obj.epoch), messages };
}

/**
 * An FTP data expectation of a connection whose original tuple is `master`
 * (as if its dport were 21): the data connection from the server back to
 * the client's port `dport`.
 */
export function ftpExpectationOf(master: Tuple, dport: number): ExpectEntry {
  return {
    family: 2,
    master,
    tuple: { src: master.dst, dst: master.src, proto: 6, sport: 0, dport },
    mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 6, sport: 0, dport: 0xffff },
    timeout: 300,
    flags: 0,
    helper: 'ftp',
  };
}

/** The varint bytes of n, as the protobuf encoding spec writes them. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
