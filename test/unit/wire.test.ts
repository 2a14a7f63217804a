import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConntrackEntry, Tuple } from '../../src/kernel/entry.js';
import { type AuthKeys, keyFileExposure, keyWeakness, loadAuthKeys, WireKeyError } from '../../src/sync/wire/auth.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { decodeMessageField, mirrorTuple } from '../../src/sync/wire/proto-codec.js';
import {
  MAX_MESSAGES_PER_DATAGRAM,
  PREFIX_BYTES,
  PROTOCOL_VERSION,
  type WireErrorCode,
  type WireMessage,
} from '../../src/sync/wire/types.js';
import {
  AUTH_A,
  AUTH_B,
  CLUSTER,
  EPOCH,
  encodeAll,
  expectedAfterWire,
  FIXTURE_MESSAGES,
  KEY_A,
  KEY_B,
  messageArb,
  NODE,
  PbDatagram,
  referenceDecode,
  referenceEncode,
  typicalTcpEntry,
} from './wire-helpers.js';
import { runs } from './fc-runs.js';

// Checked-in bytes. Regenerate only for a deliberate wire change, which
// also needs a PROTOCOL_VERSION bump unless it only adds fields or kinds.
const FIXTURE_HEX: Record<string, string> = {
  'ipv4-tcp-dnat-labels':
    '435303000000002a0a0466772d61153412ed5e1a700d0403020112690a150a04c0a8010a1204cb007105180620a2900328bb0312150a04' +
    '0a0000501204c0a8010a180620fb4128a2900318ae0320ffae1a28103a0c08031007180920a34628b3665a100200000000000000000000' +
    '00100000006210ffffffffffffffffffffffffffffffff',
  'ipv6-udp':
    '435303000000002a0a0466772d61153412ed5e1a3b0d070000001a340a2c0a1020010db8000000000000000000000001121020010db800' +
    '0000010000000000000053181120c0b80228351808201e3003',
  icmp: '435303000000002a0a0466772d61153412ed5e1a220dfeffffff121b0a150a040a01010112040a02020218013008380040b4241808201e',
  delete: '435303000000002a0a0466772d61153412ed5e1a1b22190a150a04c0a8010a1204cb007105180620a2900328bb033005',
  control:
    '435303000000002a0a0466772d61153412ed5e1a173a150a0466772d6215d4c3b2a11d6400000025a30000001a1742150a0466772d6215' +
    'd4c3b2a11da400000025aa0000001a070de80300004a001a070de803000052001a115a0f0a0866772d632e646332154d0000001a026200' +
    '1a0f620d0a0466772d6215d4c3b2a118071a127a100a0466772d621defbeadde25010000001a1d0de80300008201150a0466772d611501' +
    '0000601defbeadde25010000001a220de803000082011a0a0466772d6115020000601defbeadde25020000002d010000601a090de90300' +
    '006a0208031a120dea030000720b0803120466772d6218b960',
  expect:
    '435303000000002a0a0466772d61153412ed5e1a84010d370000002a7d0a140a040a00000112040a000002180620c0b802281512140a04' +
    '0a00000112040a0000021806200028d086031a140a04ffffffff1204ffffffff1806200028ffff0320ac022a036674703000380040004a' +
    '18080112140a04000000001204c00002011806200028d0860352116e61742d666f6c6c6f772d6d61737465721a92010d38000000328a01' +
    '0a2c0a10fe8000000000000000000000000000011210fe800000000000000000000000000002180620c1b8022815122c0a10fe80000000' +
    '00000000000000000000011210fe8000000000000000000000000000021806200028d186031a2c0a10ffffffffffffffffffffffffffff' +
    'ffff1210000000000000000000000000000000001806200028ffff03',
  'all-fields':
    '435303000000002a0a0466772d61153412ed5e1aa3010d000000801a9b010a170a04ac1000011204ac1000021884012088272889274809' +
    '18ffffffff0f200028ffffffff0f30ffff033a020809420c080415efbeadde1d000000004a0e080410011d3412000025bc9a785652140a' +
    '04ac1000011204ac100002180620d70828ae115a04000000016204ffffffff6a03736970720d0d78563412100918feffffff0f7a0618ff' +
    'ffffff0f82010a0d0100000015ffffffff880107',
};

/** The 'ipv4-tcp-dnat-labels' fixture signed with KEY_A (trailer checked against openssl dgst -hmac). */
const SIGNED_HEX =
  '435303010000002a0a0466772d61153412ed5e1a700d0403020112690a150a04c0a8010a1204cb007105180620a2900328bb0312150a04' +
  '0a0000501204c0a8010a180620fb4128a2900318ae0320ffae1a28103a0c08031007180920a34628b3665a100200000000000000000000' +
  '00100000006210ffffffffffffffffffffffffffffffff2869fa6f7ceb10706542d109159cba26d441ca665be53195c2c8a87346449110';

function decode(buf: Buffer, auth?: AuthKeys, cluster = CLUSTER) {
  return decodeDatagram(buf, { cluster, auth });
}

function decodeOk(buf: Buffer, auth?: AuthKeys) {
  const r = decode(buf, auth);
  if (!r.ok) throw new Error(`decode failed: ${r.error.code} ${r.error.reason}`);
  return r;
}

/** Prefix + protobuf body (+ optional trailer): for datagrams our encoder refuses to make. */
function frame(body: Buffer, opts: { cluster?: number; flags?: number; version?: number } = {}): Buffer {
  const p = Buffer.alloc(PREFIX_BYTES);
  p.write('CS', 0, 'latin1');
  p[2] = opts.version ?? PROTOCOL_VERSION;
  p[3] = opts.flags ?? 0;
  p.writeUInt32BE(opts.cluster ?? CLUSTER, 4);
  return Buffer.concat([p, body]);
}

function signWith(key: Buffer, unsigned: Buffer): Buffer {
  const b = Buffer.from(unsigned);
  b[3] = b[3]! | 1;
  return Buffer.concat([b, createHmac('sha256', key).update(b).digest()]);
}

/** A Datagram body built by protobufjs from plain objects (any bytes allowed in `bytes` fields). */
function rawBody(obj: Record<string, unknown>): Buffer {
  return Buffer.from(PbDatagram.encode(PbDatagram.fromObject(obj)).finish());
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A length-delimited protobuf field. */
function lenField(field: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(varint((field << 3) | 2)), Buffer.from(varint(payload.length)), payload]);
}

const v4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const tcpTuple = { src: v4('10.0.0.1'), dst: v4('10.0.0.2'), proto: 6, sport: 1, dport: 2 };

describe('fixtures', () => {
  for (const [name, messages] of Object.entries(FIXTURE_MESSAGES)) {
    const hex = FIXTURE_HEX[name]!;
    describe(name, () => {
      it('encodes to the checked-in bytes', () => {
        expect(encodeAll(messages).toString('hex')).toBe(hex);
      });

      it('decodes from the checked-in bytes', () => {
        const r = decodeOk(Buffer.from(hex, 'hex'));
        expect(r.header).toEqual({ version: PROTOCOL_VERSION, cluster: CLUSTER, node: NODE, epoch: EPOCH });
        expect(r.messages).toEqual(messages.map(expectedAfterWire));
        expect(r.unknownMessages).toBe(0);
        expect(r.signed).toBe(false);
      });

      it('round-trips: encode(decode(bytes)) === bytes', () => {
        const r = decodeOk(Buffer.from(hex, 'hex'));
        expect(encodeAll(r.messages).toString('hex')).toBe(hex);
      });

      it('agrees with protobufjs reflection over proto/ctsyncd.proto', () => {
        const buf = Buffer.from(hex, 'hex');
        const body = buf.subarray(PREFIX_BYTES);
        // protobufjs reads our bytes as we do...
        const ref = referenceDecode(body);
        expect(ref.node).toBe(NODE);
        expect(ref.epoch).toBe(EPOCH);
        expect(ref.messages).toEqual(decodeOk(buf).messages);
        // ...and writes exactly the bytes we write.
        expect(referenceEncode(NODE, EPOCH, messages).toString('hex')).toBe(body.toString('hex'));
      });
    });
  }

  describe('signed (HMAC-SHA256)', () => {
    const signed = Buffer.from(SIGNED_HEX, 'hex');
    const messages = FIXTURE_MESSAGES['ipv4-tcp-dnat-labels']!;

    it('encodes to the checked-in bytes, trailer = HMAC over everything before it', () => {
      const out = encodeAll(messages, AUTH_A);
      expect(out.toString('hex')).toBe(SIGNED_HEX);
      expect(out[3]).toBe(1);
      const mac = createHmac('sha256', KEY_A)
        .update(out.subarray(0, out.length - 32))
        .digest();
      expect(out.subarray(out.length - 32)).toEqual(mac);
      // Same body as the unsigned fixture; only the flag and the trailer differ.
      expect(out.subarray(4, out.length - 32)).toEqual(
        Buffer.from(FIXTURE_HEX['ipv4-tcp-dnat-labels']!, 'hex').subarray(4),
      );
    });

    it('decodes with the key', () => {
      const r = decodeOk(signed, AUTH_A);
      expect(r.messages).toEqual(messages.map(expectedAfterWire));
      expect(r.signed).toBe(true);
    });

    it('is accepted, trailer stripped, by a node without auth', () => {
      const r = decodeOk(signed);
      expect(r.messages).toEqual(messages.map(expectedAfterWire));
      expect(r.signed).toBe(true);
    });
  });
});

describe('datagram numbers', () => {
  it('numbers each datagram at flush, in the header protobufjs reads too, and keeps them through an epoch change', () => {
    let n = 0xffff_fffe;
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 1472, number: () => (n = (n + 1) >>> 0) });
    const out: Buffer[] = [];
    for (let i = 0; i < 3; i++) {
      enc.add({ kind: 'alive', seq: 7 + i });
      if (i === 2) enc.setEpoch(EPOCH + 1);
      out.push(enc.flush()!);
    }
    const read = out.map((b) => {
      const r = decodeDatagram(b, { cluster: CLUSTER });
      if (!r.ok) throw new Error(r.error.reason);
      return [r.header.epoch, r.header.number, r.messages];
    });
    expect(read).toEqual([
      [EPOCH, 0xffff_ffff, [{ kind: 'alive', seq: 7 }]],
      [EPOCH, 0, [{ kind: 'alive', seq: 8 }]],
      [EPOCH + 1, 1, [{ kind: 'alive', seq: 9 }]],
    ]);
    const ref = PbDatagram.toObject(PbDatagram.decode(out[2]!.subarray(8))) as { number?: number; epoch?: number };
    expect([ref.epoch, ref.number]).toEqual([EPOCH + 1, 1]);
  });

  it('an encoder without numbers writes none, and the decoder says so', () => {
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 1472 });
    enc.add({ kind: 'alive', seq: 1 });
    const r = decodeDatagram(enc.flush()!, { cluster: CLUSTER });
    expect(r.ok && r.header.number).toBe(undefined);
  });
});

describe('ct-delete', () => {
  it('carries only orig and zone; the decoder mirrors orig into reply', () => {
    const entry: ConntrackEntry = {
      ...typicalTcpEntry(1),
      zone: 4,
      labels: Buffer.alloc(16, 1),
      helper: 'ftp',
    };
    const full = encodeAll([{ kind: 'ct-update', seq: 1, entry }]);
    const del = encodeAll([{ kind: 'ct-delete', seq: 1, entry }]);
    expect(del.length).toBeLessThan(full.length / 2);
    const r = decodeOk(del);
    expect(r.messages).toEqual([
      { kind: 'ct-delete', seq: 1, entry: { family: 2, orig: entry.orig, reply: mirrorTuple(entry.orig), zone: 4 } },
    ]);
  });

  it('mirrors ports, addresses and ICMP echo types the way the kernel inverts a tuple', () => {
    expect(mirrorTuple({ src: 'a', dst: 'b', proto: 6, sport: 1, dport: 2 })).toEqual({
      src: 'b',
      dst: 'a',
      proto: 6,
      sport: 2,
      dport: 1,
    });
    const icmp: Tuple = { src: 'a', dst: 'b', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 7 };
    expect(mirrorTuple(icmp)).toEqual({ src: 'b', dst: 'a', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 7 });
    expect(mirrorTuple({ ...icmp, proto: 58, icmpType: 128 }).icmpType).toBe(129);
    expect(mirrorTuple({ ...icmp, icmpType: 3 }).icmpType).toBe(3);
  });

  it('keeps a reply tuple that a sender chose to include', () => {
    const reply = { src: '10.9.9.9', dst: '10.0.0.1', proto: 6, sport: 2, dport: 1 };
    const body = rawBody({
      node: NODE,
      messages: [
        {
          seq: 3,
          ctDelete: {
            orig: tcpTuple,
            reply: { ...tcpTuple, src: v4('10.9.9.9'), dst: v4('10.0.0.1'), sport: 2, dport: 1 },
          },
        },
      ],
    });
    const r = decodeOk(frame(body));
    expect(r.messages[0]).toMatchObject({ kind: 'ct-delete', entry: { reply } });
  });
});

describe('reply tuples', () => {
  it('leaves out a reply that is orig mirrored and derives it back; keeps a NAT reply', () => {
    const orig = { src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 1000, dport: 80 };
    const plain: ConntrackEntry = { family: 2, orig, reply: mirrorTuple(orig), status: 8, timeout: 30 };
    const natted: ConntrackEntry = { ...plain, reply: { ...plain.reply, dst: '192.0.2.7' } };
    const ping = { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 7 };
    const icmp: ConntrackEntry = { family: 2, orig: ping, reply: mirrorTuple(ping), status: 8 };
    const sizes = [plain, natted, icmp].map((entry) => encodeAll([{ kind: 'ct-new', seq: 1, entry }]).length);
    expect(sizes[0]).toBeLessThan(sizes[1]! - 10);
    for (const entry of [plain, natted, icmp]) {
      const r = decodeOk(encodeAll([{ kind: 'ct-new', seq: 1, entry }]));
      expect(r.messages).toEqual([{ kind: 'ct-new', seq: 1, entry }]);
    }
    expect(mirrorTuple(ping).icmpType).toBe(0);
  });
});

const big: Tuple = {
  src: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
  dst: '2001:db8:ffff:ffff:ffff:ffff:ffff:fffe',
  proto: 255,
  sport: 65535,
  dport: 65535,
  icmpType: 255,
  icmpCode: 255,
  icmpId: 65535,
  zone: 65535,
};
/** Every field at its widest: the largest entry message the field limits allow. */
const huge: ConntrackEntry = {
  family: 10,
  orig: big,
  reply: big,
  master: big,
  status: 0xffffffff,
  timeout: 0xffffffff,
  mark: 0xffffffff,
  zone: 0xffff,
  labels: Buffer.alloc(16, 0xff),
  labelsMask: Buffer.alloc(16, 0xff),
  protoinfo: {
    tcp: {
      state: 9,
      wscaleOrig: 255,
      wscaleReply: 255,
      flagsOrig: { flags: 255, mask: 255 },
      flagsReply: { flags: 255, mask: 255 },
    },
    sctp: { state: 9, vtagOrig: 0xffffffff, vtagReply: 0xffffffff },
    dccp: { state: 9, role: 255, handshakeSeq: (1n << 64n) - 1n },
  },
  seqAdjOrig: { correctionPos: 0xffffffff, offsetBefore: -0x80000000, offsetAfter: -0x80000000 },
  seqAdjReply: { correctionPos: 0xffffffff, offsetBefore: -0x80000000, offsetAfter: -0x80000000 },
  helper: 'h'.repeat(32),
  secmark: 0xffffffff,
  synproxy: { isn: 0xffffffff, its: 0xffffffff, tsoff: 0xffffffff },
};

describe('MTU packing', () => {
  const mtu = 1472;

  function pack(
    auth: AuthKeys | undefined,
    make: (i: number) => ConntrackEntry,
  ): { perDatagram: number; size: number } {
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: 'fw-primary-01', epoch: EPOCH, mtu, auth });
    let i = 0;
    while (enc.add({ kind: 'ct-update', seq: 0x9e3779b9 + i, entry: make(i) })) i++;
    return { perDatagram: i, size: enc.size };
  }

  it('fits at least 10 typical IPv4 TCP entries in 1472 bytes, with and without HMAC', () => {
    const plain = pack(undefined, typicalTcpEntry);
    const signed = pack(AUTH_A, typicalTcpEntry);
    console.log(
      `wire: typical IPv4 TCP entries per ${mtu}-byte datagram: ${plain.perDatagram} (${plain.size} bytes), ` +
        `with HMAC: ${signed.perDatagram} (${signed.size} bytes)`,
    );
    expect(plain.perDatagram).toBeGreaterThanOrEqual(10);
    expect(signed.perDatagram).toBeGreaterThanOrEqual(10);
    expect(plain.size).toBeLessThanOrEqual(mtu);
    expect(signed.size).toBeLessThanOrEqual(mtu);
  });

  it('fits at least 10 IPv6 TCP entries too', () => {
    const v6 = (i: number): ConntrackEntry => {
      const e = typicalTcpEntry(i);
      return {
        ...e,
        family: 10,
        orig: { ...e.orig, src: `2001:db8:1::${(i & 0xffff).toString(16)}`, dst: '2001:db8:2::20' },
        reply: { ...e.reply, src: '2001:db8:2::20', dst: `2001:db8:1::${(i & 0xffff).toString(16)}` },
      };
    };
    const r = pack(AUTH_A, v6);
    console.log(`wire: IPv6 TCP entries per ${mtu}-byte signed datagram: ${r.perDatagram}`);
    expect(r.perDatagram).toBeGreaterThanOrEqual(10);
  });

  it('add() returns false exactly when the next message would cross the MTU; size is exact', () => {
    for (const auth of [undefined, AUTH_A]) {
      const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu, auth });
      const headerOnly = enc.size;
      let i = 0;
      let before = enc.size;
      const msg = (n: number): WireMessage => ({ kind: 'ct-new', seq: n, entry: typicalTcpEntry(n * 7919) });
      while (enc.add(msg(i))) {
        expect(enc.size).toBeGreaterThan(before);
        before = enc.size;
        i++;
      }
      // Rejected: nothing changed...
      expect(enc.size).toBe(before);
      expect(enc.messageCount).toBe(i);
      // ...and it really would not have fitted.
      const alone = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu, auth });
      alone.add(msg(i));
      expect(before + (alone.size - headerOnly)).toBeGreaterThan(mtu);
      const out = enc.flush();
      expect(out?.length).toBe(before);
      expect(out?.length).toBeLessThanOrEqual(mtu);
      // After flush the header is all that is left, and the message now fits.
      expect(enc.size).toBe(headerOnly);
      expect(enc.messageCount).toBe(0);
      expect(enc.add(msg(i))).toBe(true);
      expect(decodeOk(out!, auth).messages).toHaveLength(i);
    }
  });

  it('never exceeds the MTU and loses nothing, for any mix of messages, MTU and auth', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb(), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 512, max: 3000 }),
        fc.boolean(),
        (messages, mtuBytes, signed) => {
          const auth = signed ? AUTH_A : undefined;
          const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: mtuBytes, auth });
          const out: Buffer[] = [];
          const flush = () => {
            const size = enc.size;
            const d = enc.flush();
            if (d) {
              expect(d.length).toBe(size);
              out.push(d);
            }
          };
          for (const m of messages) {
            if (!enc.add(m)) {
              flush();
              expect(enc.add(m)).toBe(true);
            }
          }
          flush();
          const decoded: WireMessage[] = [];
          for (const d of out) {
            expect(d.length).toBeLessThanOrEqual(mtuBytes);
            decoded.push(...decodeOk(d, auth).messages);
          }
          expect(decoded).toEqual(messages.map(expectedAfterWire));
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('flush() returns undefined when empty and a fresh buffer each time', () => {
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu });
    expect(enc.flush()).toBeUndefined();
    enc.add({ kind: 'alive', seq: 1 });
    const a = enc.flush()!;
    const copy = Buffer.from(a);
    enc.add({ kind: 'alive', seq: 2 });
    const b = enc.flush()!;
    expect(a).toEqual(copy);
    expect(a.buffer === b.buffer && a.byteOffset === b.byteOffset).toBe(false);
    expect(enc.flush()).toBeUndefined();
  });

  it(`caps a datagram at ${MAX_MESSAGES_PER_DATAGRAM} messages`, () => {
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 65507 });
    let n = 0;
    while (enc.add({ kind: 'alive', seq: n })) n++;
    expect(n).toBe(MAX_MESSAGES_PER_DATAGRAM);
    expect(decodeOk(enc.flush()!).messages).toHaveLength(n);
  });

  it('throws RangeError for a message that can never fit, leaving the datagram intact', () => {
    const node = 'n'.repeat(64);
    const enc = new DatagramEncoder({ cluster: CLUSTER, node, epoch: EPOCH, mtu: 512, auth: AUTH_A });
    enc.add({ kind: 'alive', seq: 1 });
    const size = enc.size;
    expect(() => enc.add({ kind: 'ct-update', seq: 0xffffffff, entry: huge })).toThrow(/can never fit/);
    expect(enc.size).toBe(size);
    expect(enc.messageCount).toBe(1);
    // The largest message the field limits allow still fits a 1472-byte datagram.
    const roomy = new DatagramEncoder({ cluster: CLUSTER, node, epoch: EPOCH, mtu, auth: AUTH_A });
    expect(roomy.add({ kind: 'ct-update', seq: 0xffffffff, entry: huge })).toBe(true);
    console.log(
      `wire: largest possible entry message: ${roomy.size - new DatagramEncoder({ cluster: CLUSTER, node, epoch: EPOCH, mtu, auth: AUTH_A }).size} bytes`,
    );
    expect(decodeOk(roomy.flush()!, AUTH_A).messages[0]).toEqual({ kind: 'ct-update', seq: 0xffffffff, entry: huge });
  });

  const e = typicalTcpEntry(0);
  const invalid: [string, WireMessage][] = [
    ['an IPv6 address in an IPv4 entry', { kind: 'ct-new', seq: 1, entry: { ...e, orig: { ...e.orig, src: '::1' } } }],
    ['a malformed address', { kind: 'ct-new', seq: 1, entry: { ...e, reply: { ...e.reply, dst: '10.0.0.256' } } }],
    ['a port above 65535', { kind: 'ct-new', seq: 1, entry: { ...e, orig: { ...e.orig, sport: 65536 } } }],
    ['a protocol above 255', { kind: 'ct-new', seq: 1, entry: { ...e, orig: { ...e.orig, proto: 256 } } }],
    ['a negative mark', { kind: 'ct-new', seq: 1, entry: { ...e, mark: -1 } }],
    ['a TCP state of 10', { kind: 'ct-new', seq: 1, entry: { ...e, protoinfo: { tcp: { state: 10 } } } }],
    ['labels of 5 bytes', { kind: 'ct-new', seq: 1, entry: { ...e, labels: Buffer.alloc(5) } }],
    ['labels of 20 bytes', { kind: 'ct-new', seq: 1, entry: { ...e, labels: Buffer.alloc(20) } }],
    ['a helper name of 33 bytes', { kind: 'ct-new', seq: 1, entry: { ...e, helper: 'x'.repeat(33) } }],
    ['family 7', { kind: 'ct-new', seq: 1, entry: { ...e, family: 7 as 2 } }],
    ['a fractional seq', { kind: 'alive', seq: 1.5 }],
    ['a seq above 2^32', { kind: 'hello', seq: 2 ** 32 }],
    ['an ack for an empty peer', { kind: 'ack', peer: '', epoch: 1, from: 1, to: 2 }],
    ['a peer id with a space', { kind: 'resync-request', peer: 'fw b', epoch: 1, request: 1 }],
    ['a challenge for an empty peer', { kind: 'challenge', peer: '', nonceHi: 1, nonceLo: 2 }],
    ['a nonce above 2^32', { kind: 'challenge', peer: 'fw-b', nonceHi: 2 ** 32, nonceLo: 2 }],
    ['a request number above 2^32', { kind: 'resync-request', peer: 'fw-b', epoch: 1, request: 2 ** 32 }],
    ['a peer id of 65 chars', { kind: 'bulk-start', seq: 1, bulkId: 1, peer: 'p'.repeat(65) }],
    ['an unknown kind', { kind: 'bogus' } as unknown as WireMessage],
  ];
  for (const [what, msg] of invalid) {
    it(`add() throws RangeError for ${what}, leaving the datagram intact`, () => {
      const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu });
      enc.add({ kind: 'alive', seq: 9 });
      const size = enc.size;
      expect(() => enc.add(msg)).toThrow(RangeError);
      expect(enc.size).toBe(size);
      expect(enc.messageCount).toBe(1);
      expect(decodeOk(enc.flush()!).messages).toEqual([{ kind: 'alive', seq: 9 }]);
    });
  }

  it('rejects bad encoder options', () => {
    const ok = { cluster: 1, node: 'a', epoch: 1, mtu: 1472 };
    expect(() => new DatagramEncoder({ ...ok, mtu: 511 })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, mtu: 65508 })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, mtu: 1000.5 })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, node: '' })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, node: 'a'.repeat(65) })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, node: 'fw\n1' })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, cluster: -1 })).toThrow(RangeError);
    expect(() => new DatagramEncoder({ ...ok, epoch: 2 ** 32 })).toThrow(RangeError);
    expect(new DatagramEncoder({ ...ok, cluster: 0xffffffff, epoch: 0, node: 'a'.repeat(64) }).size).toBeLessThan(100);
  });
});

describe('DatagramEncoder at its bounds', () => {
  const ok = { cluster: 1, node: 'a', epoch: 1, mtu: 1472 };

  it.each([
    { opts: { ...ok, cluster: -1 }, message: 'cluster -1 is not a u32' },
    { opts: { ...ok, cluster: 2 ** 32 }, message: 'cluster 4294967296 is not a u32' },
    { opts: { ...ok, epoch: 1.5 }, message: 'epoch 1.5 is not a u32' },
    { opts: { ...ok, node: 'fw b' }, message: 'node id "fw b" is not 1-64 of A-Z a-z 0-9 _ . -' },
    { opts: { ...ok, mtu: 511 }, message: 'mtu 511 is not an integer in 512..65507' },
  ])('refuses $message', ({ opts, message }) => {
    expect(() => new DatagramEncoder(opts)).toThrow(new RangeError(message));
  });

  it('writes the prefix, the node and no epoch field for epoch 0', () => {
    const enc = new DatagramEncoder({ cluster: 0x01020304, node: 'fw-a', epoch: 0, mtu: 512 });
    expect(enc.add({ kind: 'alive', seq: 1 })).toBe(true);
    // 'C' 'S' version flags cluster | node (field 1) | messages (field 3): seq (fixed32 1), alive (field 9, empty)
    expect(enc.flush()!.toString('hex')).toBe('4353' + '03' + '00' + '01020304' + '0a04' + '66772d61' + '1a07' + '0d01000000' + '4a00');
  });

  it.each([
    { name: 'epoch 0', from: 7, to: 0 },
    { name: 'an epoch past 2^32', from: 7, to: 2 ** 32 },
    { name: 'a fractional epoch', from: 7, to: 7.5 },
    { name: 'any epoch, on an encoder started with epoch 0', from: 0, to: 8 },
  ])('setEpoch refuses $name and leaves the header as it was', ({ from, to }) => {
    const enc = new DatagramEncoder({ cluster: 1, node: 'a', epoch: from, mtu: 512 });
    expect(() => enc.setEpoch(to)).toThrow(new RangeError(`epoch ${to} cannot replace epoch ${from}`));
    enc.add({ kind: 'alive', seq: 1 });
    const r = decodeDatagram(enc.flush()!, { cluster: 1 });
    expect(r.ok && r.header.epoch).toBe(from);
  });

  it('takes a message that ends exactly at the MTU, with and without HMAC', () => {
    for (const auth of [undefined, AUTH_A]) {
      const messages = Array.from({ length: 60 }, (_, i): WireMessage => ({ kind: 'alive', seq: i + 1 }));
      const sizing = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 65507, auth });
      let k = 0;
      while (sizing.size < 512) expect(sizing.add(messages[k++]!)).toBe(true);
      const mtu = sizing.size;
      const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu, auth });
      for (let i = 0; i < k; i++) expect(enc.add(messages[i]!)).toBe(true);
      expect(enc.size).toBe(mtu);
      expect(enc.add(messages[k]!)).toBe(false);
      const out = enc.flush()!;
      expect(out.length).toBe(mtu);
      expect(decodeOk(out, auth).messages).toHaveLength(k);
    }
  });

  it('a message exactly as large as the room after the header waits for the next datagram instead of throwing', () => {
    const node = 'n'.repeat(64);
    const sizing = new DatagramEncoder({ cluster: CLUSTER, node, epoch: EPOCH, mtu: 65507, auth: AUTH_A });
    const header = sizing.size;
    const msg: WireMessage = { kind: 'ct-update', seq: 0xffffffff, entry: huge };
    expect(sizing.add(msg)).toBe(true);
    const mtu = sizing.size;
    expect(mtu).toBeGreaterThanOrEqual(512);
    const enc = new DatagramEncoder({ cluster: CLUSTER, node, epoch: EPOCH, mtu, auth: AUTH_A });
    expect(enc.size).toBe(header);
    expect(enc.add({ kind: 'alive', seq: 1 })).toBe(true);
    expect(enc.add(msg)).toBe(false);
    enc.flush();
    expect(enc.add(msg)).toBe(true);
    expect(enc.size).toBe(mtu);
  });

  it('bytes[lastStart, lastEnd) is the last message added, as decodeMessageField reads it', () => {
    const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 1472 });
    const first: WireMessage = { kind: 'alive', seq: 5 };
    const second: WireMessage = { kind: 'ct-new', seq: 6, entry: typicalTcpEntry(3) };
    enc.add(first);
    const at = [enc.lastStart, enc.lastEnd];
    expect(decodeMessageField(enc.bytes, at[0]!, at[1]!)).toEqual(first);
    enc.add(second);
    expect(enc.lastStart).toBe(at[1]);
    expect(decodeMessageField(enc.bytes, enc.lastStart, enc.lastEnd)).toEqual(expectedAfterWire(second));
    expect(enc.lastEnd).toBe(enc.size);
  });
});

describe('malformed datagrams', () => {
  const good = Buffer.from(FIXTURE_HEX['ipv4-tcp-dnat-labels']!, 'hex');
  const signed = Buffer.from(SIGNED_HEX, 'hex');
  const patch = (b: Buffer, at: number, v: number): Buffer => {
    const c = Buffer.from(b);
    c[at] = v;
    return c;
  };
  const entryBody = (entry: Record<string, unknown>, kind = 'ctNew') =>
    frame(rawBody({ node: NODE, epoch: 1, messages: [{ seq: 1, [kind]: entry }] }));
  const tuple = (t: Record<string, unknown>) => ({ ...tcpTuple, ...t });

  const cases: {
    name: string;
    buf: Buffer;
    code: WireErrorCode;
    auth?: AuthKeys;
    cluster?: number;
    maxSize?: number;
  }[] = [
    { name: 'empty', buf: Buffer.alloc(0), code: 'ETRUNC' },
    { name: '1 byte', buf: Buffer.from('C'), code: 'ETRUNC' },
    { name: 'prefix cut at 7 bytes', buf: good.subarray(0, 7), code: 'ETRUNC' },
    { name: 'bad magic', buf: patch(good, 0, 0x10), code: 'EMAGIC' },
    { name: 'a conntrackd (C) datagram', buf: Buffer.from('1a300008000003e8', 'hex'), code: 'EMAGIC' },
    { name: 'version 1 (before reply tuples could be left out)', buf: patch(good, 2, 1), code: 'EVERSION' },
    { name: 'version 2 (before challenges and fresh resync requests)', buf: patch(good, 2, 2), code: 'EVERSION' },
    { name: 'version 4', buf: patch(good, 2, 4), code: 'EVERSION' },
    { name: 'version 0', buf: patch(good, 2, 0), code: 'EVERSION' },
    { name: 'a reserved flag bit', buf: patch(good, 3, 0x80), code: 'EVERSION' },
    { name: 'another cluster', buf: good, code: 'ECLUSTER', cluster: CLUSTER + 1 },
    { name: 'another cluster, signed with another key', buf: signed, code: 'ECLUSTER', cluster: 7, auth: AUTH_B },
    { name: 'larger than maxSize', buf: good, code: 'ESIZE', maxSize: good.length - 1 },
    { name: 'truncated protobuf', buf: good.subarray(0, good.length - 5), code: 'EDECODE' },
    { name: 'truncated inside the header', buf: good.subarray(0, 12), code: 'EDECODE' },
    { name: 'trailing garbage (0xff 0xff)', buf: Buffer.concat([good, Buffer.from([0xff, 0xff])]), code: 'EDECODE' },
    { name: 'trailing zero byte (field 0)', buf: Buffer.concat([good, Buffer.from([0])]), code: 'EDECODE' },
    { name: 'a group wire type', buf: Buffer.concat([good, Buffer.from([0x0b, 0x0c])]), code: 'EDECODE' },
    {
      name: 'a varint of 11 bytes',
      buf: Buffer.concat([good, Buffer.from('28ffffffffffffffffffff01', 'hex')]),
      code: 'EDECODE',
    },
    { name: 'HMAC with the wrong key', buf: signed, code: 'EAUTH', auth: AUTH_B },
    { name: 'HMAC missing', buf: good, code: 'EAUTH', auth: AUTH_A },
    { name: 'HMAC flag set, trailer cut off', buf: patch(good, 3, 1), code: 'EAUTH', auth: AUTH_A },
    { name: 'HMAC truncated by 1 byte', buf: signed.subarray(0, signed.length - 1), code: 'EAUTH', auth: AUTH_A },
    { name: 'HMAC flag set, shorter than an HMAC', buf: patch(good, 3, 1).subarray(0, 39), code: 'ETRUNC' },
    { name: 'signed body altered', buf: patch(signed, 20, signed[20]! ^ 1), code: 'EAUTH', auth: AUTH_A },
    { name: 'signed prefix altered (flag cleared)', buf: patch(signed, 3, 0), code: 'EAUTH', auth: AUTH_A },
    {
      name: 'key rotation: signed with the new key, receiver still has only the old one',
      buf: signWith(KEY_B, good),
      code: 'EAUTH',
      auth: AUTH_A,
    },
    {
      name: 'an IPv4 address of 5 bytes',
      buf: entryBody({ orig: tuple({ src: Buffer.alloc(5) }), reply: tcpTuple }),
      code: 'EVALUE',
    },
    {
      name: 'an address of 8 bytes (unknown family)',
      buf: entryBody({ orig: tuple({ src: Buffer.alloc(8), dst: Buffer.alloc(8) }), reply: tcpTuple }),
      code: 'EVALUE',
    },
    { name: 'no addresses', buf: entryBody({ orig: { proto: 6 }, reply: tcpTuple }), code: 'EVALUE' },
    // A destination whose length differs from the source's (issue 18).
    {
      name: 'an IPv4 source with a 16-byte destination',
      buf: entryBody({ orig: tuple({ dst: Buffer.alloc(16, 1) }), reply: tcpTuple }),
      code: 'EVALUE',
    },
    {
      name: 'an IPv4 source with a 3-byte destination',
      buf: entryBody({ orig: tuple({ dst: Buffer.alloc(3, 1) }), reply: tcpTuple }),
      code: 'EVALUE',
    },
    {
      name: 'an IPv6 source with a 4-byte destination',
      buf: entryBody({ orig: tuple({ src: Buffer.alloc(16, 1), dst: Buffer.alloc(4, 1) }), reply: tcpTuple }),
      code: 'EVALUE',
    },
    {
      name: 'a reply tuple with a 5-byte destination',
      buf: entryBody({ orig: tcpTuple, reply: tuple({ dst: Buffer.alloc(5, 1) }) }),
      code: 'EVALUE',
    },
    {
      name: 'a source but no destination',
      buf: entryBody({ orig: { ...tcpTuple, dst: undefined }, reply: tcpTuple }),
      code: 'EVALUE',
    },
    {
      name: 'IPv4 orig with IPv6 reply',
      buf: entryBody({ orig: tcpTuple, reply: tuple({ src: Buffer.alloc(16), dst: Buffer.alloc(16) }) }),
      code: 'EVALUE',
    },
    { name: 'a port of 65536', buf: entryBody({ orig: tuple({ sport: 65536 }), reply: tcpTuple }), code: 'EVALUE' },
    { name: 'protocol 256', buf: entryBody({ orig: tuple({ proto: 256 }), reply: tcpTuple }), code: 'EVALUE' },
    { name: 'ICMP type 256', buf: entryBody({ orig: tuple({ icmpType: 256 }), reply: tcpTuple }), code: 'EVALUE' },
    { name: 'TCP state 10', buf: entryBody({ orig: tcpTuple, reply: tcpTuple, tcp: { state: 10 } }), code: 'EVALUE' },
    {
      name: 'TCP flags above u16',
      buf: entryBody({ orig: tcpTuple, reply: tcpTuple, tcp: { flagsOrig: 0x10000 } }),
      code: 'EVALUE',
    },
    {
      name: 'labels of 17 bytes',
      buf: entryBody({ orig: tcpTuple, reply: tcpTuple, labels: Buffer.alloc(17) }),
      code: 'EVALUE',
    },
    // Label lengths that are not a whole number of u32 words (issue 18).
    ...[1, 5, 6, 7, 15].map((n) => ({
      name: `labels of ${n} bytes`,
      buf: entryBody({ orig: tcpTuple, reply: tcpTuple, labels: Buffer.alloc(n, 1) }),
      code: 'EVALUE' as const,
    })),
    {
      name: 'a label mask of 6 bytes',
      buf: entryBody({ orig: tcpTuple, reply: tcpTuple, labels: Buffer.alloc(8, 1), labelsMask: Buffer.alloc(6, 1) }),
      code: 'EVALUE',
    },
    {
      name: 'labels of 0 bytes',
      buf: entryBody({ orig: tcpTuple, reply: tcpTuple, labels: Buffer.alloc(0) }),
      code: 'EVALUE',
    },
    { name: 'a zone of 65536', buf: entryBody({ orig: tcpTuple, reply: tcpTuple, zone: 65536 }), code: 'EVALUE' },
    {
      name: 'a helper of 33 bytes',
      buf: entryBody({ orig: tcpTuple, reply: tcpTuple, helper: 'x'.repeat(33) }),
      code: 'EVALUE',
    },
    { name: 'entry without orig', buf: entryBody({ reply: tcpTuple }, 'ctDelete'), code: 'EVALUE' },
    {
      name: 'expectation without mask',
      buf: entryBody({ master: tcpTuple, tuple: tcpTuple }, 'expNew'),
      code: 'EVALUE',
    },
    {
      name: 'expectation nat without tuple',
      buf: entryBody({ master: tcpTuple, tuple: tcpTuple, mask: tcpTuple, nat: { dir: 1 } }, 'expNew'),
      code: 'EVALUE',
    },
    {
      name: 'node id of 65 chars',
      buf: frame(rawBody({ node: 'n'.repeat(65), messages: [{ alive: {} }] })),
      code: 'EVALUE',
    },
    {
      name: 'node id with a newline',
      buf: frame(rawBody({ node: 'fw\nb', messages: [{ alive: {} }] })),
      code: 'EVALUE',
    },
    { name: 'no node id', buf: frame(rawBody({ epoch: 1, messages: [{ alive: {} }] })), code: 'EVALUE' },
    {
      name: 'ack without peer',
      buf: frame(rawBody({ node: NODE, messages: [{ ack: { from: 1, to: 2 } }] })),
      code: 'EVALUE',
    },
    {
      name: `more than ${MAX_MESSAGES_PER_DATAGRAM} messages`,
      buf: frame(
        rawBody({ node: NODE, messages: Array.from({ length: MAX_MESSAGES_PER_DATAGRAM + 1 }, () => ({ alive: {} })) }),
      ),
      code: 'EVALUE',
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.code}`, () => {
      const r = decodeDatagram(c.buf, { cluster: c.cluster ?? CLUSTER, auth: c.auth, maxSize: c.maxSize });
      expect(r.ok ? 'ok' : r.error.code).toBe(c.code);
      if (!r.ok) expect(r.error.reason).toMatch(/\S/);
    });
  }

  it('key rotation: a datagram signed with the old key is accepted while both keys are loaded', () => {
    const rotating: AuthKeys = { sign: KEY_B, verify: [KEY_B, KEY_A] };
    expect(decodeOk(signed, rotating).messages).toHaveLength(1);
    expect(decodeOk(signWith(KEY_B, good), rotating).messages).toHaveLength(1);
    // And what the rotating node sends, an old-key-only node rejects until it loads the new key.
    const out = encodeAll(FIXTURE_MESSAGES['ipv4-tcp-dnat-labels']!, rotating);
    expect(decode(out, AUTH_A).ok).toBe(false);
    expect(decode(out, { sign: KEY_A, verify: [KEY_A, KEY_B] }).ok).toBe(true);
  });

  it('skips and counts message kinds it does not know, keeping the rest', () => {
    const alive = lenField(3, lenField(9, Buffer.alloc(0)));
    const future = lenField(
      3,
      Buffer.concat([Buffer.from('0d07000000', 'hex'), lenField(99, Buffer.from('0801', 'hex'))]),
    );
    const empty = lenField(3, Buffer.alloc(0));
    const body = Buffer.concat([Buffer.from('0a0466772d62', 'hex'), future, alive, empty]);
    const r = decodeOk(frame(body));
    expect(r.header.node).toBe('fw-b');
    expect(r.messages).toEqual([{ kind: 'alive', seq: 0 }]);
    expect(r.unknownMessages).toBe(2);
  });

  it('ignores unknown fields at every level (forward compatibility)', () => {
    const unknown = Buffer.from('a00601a2060378797aad06ffffffffb10601020304050607 08'.replace(/ /g, ''), 'hex');
    // Field 100 varint, 100 bytes, 101 fixed32, 102 fixed64 ... appended to a tuple, an entry, a message and the datagram.
    const t = (extra: Buffer) =>
      Buffer.concat([lenField(1, v4('10.0.0.1')), lenField(2, v4('10.0.0.2')), Buffer.from('1806', 'hex'), extra]);
    const entry = Buffer.concat([lenField(1, t(unknown)), lenField(2, t(Buffer.alloc(0))), unknown]);
    const msg = Buffer.concat([Buffer.from('0d01000000', 'hex'), lenField(2, entry), unknown]);
    const body = Buffer.concat([Buffer.from('0a0466772d62', 'hex'), unknown, lenField(3, msg), unknown]);
    const r = decodeOk(frame(body));
    expect(r.messages).toEqual([
      {
        kind: 'ct-new',
        seq: 1,
        entry: {
          family: 2,
          orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6 },
          reply: { src: '10.0.0.1', dst: '10.0.0.2', proto: 6 },
        },
      },
    ]);
  });

  it('reads fields in any order and keeps the last of a repeated one', () => {
    // epoch before node, seq after the body, two oneof cases (the last wins).
    const msg = Buffer.concat([
      lenField(9, Buffer.alloc(0)),
      lenField(10, Buffer.alloc(0)),
      Buffer.from('0d2a000000', 'hex'),
    ]);
    const body = Buffer.concat([
      Buffer.from('1501000000', 'hex'),
      lenField(3, msg),
      Buffer.from('0a0466772d62', 'hex'),
    ]);
    const r = decodeOk(frame(body));
    expect(r.header).toMatchObject({ node: 'fw-b', epoch: 1 });
    expect(r.messages).toEqual([{ kind: 'hello', seq: 42 }]);
  });

  it('does not keep references into the receive buffer', () => {
    const buf = Buffer.from(good);
    const r = decodeOk(buf);
    buf.fill(0);
    expect(r.messages).toEqual(FIXTURE_MESSAGES['ipv4-tcp-dnat-labels']!.map(expectedAfterWire));
  });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('loadAuthKeys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-wire-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** A key file as the daemon wants it: ours and 0600 (chmod, so the umask cannot widen it). */
  const file = (name: string, content: string | Buffer, mode = 0o600): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    chmodSync(p, mode);
    return p;
  };

  it('reads a hex key (as openssl rand -hex 32 writes it, newline included)', () => {
    const f = file('hex', `${KEY_A.toString('hex')}\n`);
    expect(loadAuthKeys([f])).toEqual({ sign: KEY_A, verify: [KEY_A] });
  });

  it('reads upper-case hex and hex with surrounding whitespace', () => {
    const f = file('HEX', `  ${KEY_B.toString('hex').toUpperCase()}\r\n`);
    expect(loadAuthKeys([f]).sign).toEqual(KEY_B);
  });

  it('reads a raw key byte for byte', () => {
    const raw = Buffer.concat([Buffer.from(' \n'), randomBytes(30), Buffer.from('\n')]);
    const f = file('raw', raw);
    expect(loadAuthKeys([f]).sign).toEqual(raw);
  });

  it('takes a short hex-looking string as a raw passphrase, and refuses it as too short', () => {
    const f = file('pass', 'deadbeefdeadbeefdead');
    expect(thrown(() => loadAuthKeys([f]))).toMatchObject({
      code: 'EAUTH_KEY_WEAK',
      message: expect.stringContaining('key of 20 bytes, at least 32'),
    });
  });

  it('rejects a key shorter than 32 bytes, naming the file', () => {
    const f = file('short', 'secret\n');
    const err = thrown(() => loadAuthKeys([f]));
    expect(err).toBeInstanceOf(WireKeyError);
    expect(err).toMatchObject({ code: 'EAUTH_KEY_WEAK', file: f });
    expect((err as Error).message).toContain(f);
  });

  it('rejects one byte repeated, also when written as hex', () => {
    expect(thrown(() => loadAuthKeys([file('aa', 'a'.repeat(64))]))).toMatchObject({
      code: 'EAUTH_KEY_WEAK',
      message: expect.stringContaining('one byte (0xaa) repeated'),
    });
    expect(thrown(() => loadAuthKeys([file('zero', Buffer.alloc(32))]))).toMatchObject({ code: 'EAUTH_KEY_WEAK' });
  });

  it('rejects an odd number of hex digits instead of dropping one', () => {
    const f = file('odd', `${KEY_A.toString('hex')}0`);
    expect(thrown(() => loadAuthKeys([f]))).toMatchObject({ code: 'EAUTH_KEY', file: f });
  });

  it('rejects a missing file with a typed error', () => {
    const f = join(dir, 'missing');
    const err = thrown(() => loadAuthKeys([f]));
    expect(err).toBeInstanceOf(WireKeyError);
    expect(err).toMatchObject({ code: 'EAUTH_KEY', file: f, message: expect.stringContaining('ENOENT') });
  });

  it.each([0o644, 0o640, 0o604, 0o620, 0o602, 0o660])('rejects a key file of mode %o before reading it', (mode) => {
    const f = file(`open-${mode.toString(8)}`, KEY_A.toString('hex'), mode);
    expect(thrown(() => loadAuthKeys([f]))).toMatchObject({
      code: 'EAUTH_KEY_PERMS',
      file: f,
      message: expect.stringContaining('chmod 600'),
    });
  });

  it('accepts 0400, and judges the file a symlink points to', () => {
    const f = file('ro', KEY_A.toString('hex'), 0o400);
    expect(loadAuthKeys([f]).sign).toEqual(KEY_A);
    const open = file('open', KEY_B.toString('hex'), 0o644);
    const link = join(dir, 'link');
    symlinkSync(open, link);
    expect(thrown(() => loadAuthKeys([link]))).toMatchObject({ code: 'EAUTH_KEY_PERMS' });
  });

  it("rejects a key file owned by someone other than root or the daemon's user", () => {
    const f = file('theirs', KEY_A.toString('hex'));
    if (process.getuid?.() === 0) chownSync(f, 65534, 65534);
    const owner = statSync(f).uid;
    // A daemon running as a user who is neither root nor the file's owner.
    expect(thrown(() => loadAuthKeys([f], owner + 1))).toMatchObject({
      code: 'EAUTH_KEY_PERMS',
      message: expect.stringContaining(`owned by uid ${owner}`),
    });
    expect(loadAuthKeys([f], owner).sign).toEqual(KEY_A);
  });

  it('rejects a directory', () => {
    const d = join(dir, 'a-dir');
    mkdirSync(d, { mode: 0o700 });
    expect(thrown(() => loadAuthKeys([d]))).toMatchObject({ code: 'EAUTH_KEY_PERMS', message: expect.stringContaining('not a regular file') });
  });

  it('loads two files: the first signs, both verify', () => {
    const a = file('a', KEY_A.toString('hex'));
    const b = file('b', KEY_B);
    const keys = loadAuthKeys([a, b]);
    expect(keys.sign).toEqual(KEY_A);
    expect(keys.verify).toEqual([KEY_A, KEY_B]);
    // A sender on [b, a] and a receiver on [a, b] understand each other both ways.
    const other = loadAuthKeys([b, a]);
    const msg: WireMessage[] = [{ kind: 'alive', seq: 1 }];
    expect(decode(encodeAll(msg, keys), other).ok).toBe(true);
    expect(decode(encodeAll(msg, other), keys).ok).toBe(true);
  });

  it('wants one or two files', () => {
    expect(() => loadAuthKeys([])).toThrow(WireKeyError);
    const f = file('k', KEY_A.toString('hex'));
    expect(() => loadAuthKeys([f, f, f])).toThrow(WireKeyError);
  });
});

describe('keyWeakness', () => {
  it.each([
    ['32 random bytes', randomBytes(32), undefined],
    ['the test key 00..1f', KEY_A, undefined],
    ['31 random bytes', randomBytes(31), /key of 31 bytes, at least 32/],
    ['empty', Buffer.alloc(0), /key of 0 bytes/],
    ['32 zero bytes', Buffer.alloc(32), /one byte \(0x00\) repeated/],
    ['64 times 0xff', Buffer.alloc(64, 0xff), /one byte \(0xff\) repeated/],
    ['abab...', Buffer.from('ab'.repeat(32)), /only 2 distinct byte values/],
    ['seven letters over and over', Buffer.from('abcdefg'.repeat(6)), /only 7 distinct/],
    ['eight letters over and over', Buffer.from('abcdefgh'.repeat(4)), undefined],
  ])('%s', (_name, key, want) => {
    const got = keyWeakness(key);
    if (want === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(want);
  });
});

describe('keyFileExposure', () => {
  const st = (uid: number, mode: number, file = true) => ({ uid, mode: (file ? 0o100000 : 0o040000) | mode, isFile: () => file });
  it.each([
    ['root, 0600', st(0, 0o600), 0, undefined],
    ['root, 0400', st(0, 0o400), 0, undefined],
    ['root, 0600, daemon runs as 998', st(0, 0o600), 998, undefined],
    ["the daemon's user, 0600", st(998, 0o600), 998, undefined],
    ['another user, 0600', st(1000, 0o600), 998, /owned by uid 1000, not by root or the daemon's user \(uid 998\)/],
    ['another user, 0600, daemon is root', st(1000, 0o600), 0, /owned by uid 1000/],
    ['root, 0644', st(0, 0o644), 0, /mode 0644 lets group or others read it; chmod 600 it/],
    ['root, 0640', st(0, 0o640), 0, /mode 0640 lets group or others read/],
    ['root, 0604', st(0, 0o604), 0, /read/],
    ['root, 0620', st(0, 0o620), 0, /mode 0620 lets group or others write/],
    ['root, 0601', st(0, 0o601), 0, /mode 0601/],
    ['a directory', st(0, 0o700, false), 0, /not a regular file/],
  ])('%s', (_name, stat, ownUid, want) => {
    const got = keyFileExposure(stat, ownUid);
    if (want === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(want);
  });
});

describe('throughput (informational)', () => {
  it('encodes and decodes 100k typical entries', () => {
    // Scaled down (FC_RUNS_SCALE) under mutation testing: every surviving codec mutant would pay for it.
    const n = runs(100_000);
    const messages: WireMessage[] = [];
    for (let i = 0; i < n; i++) messages.push({ kind: 'ct-update', seq: i, entry: typicalTcpEntry(i) });
    for (const auth of [undefined, AUTH_A]) {
      const enc = new DatagramEncoder({ cluster: CLUSTER, node: NODE, epoch: EPOCH, mtu: 1472, auth });
      const run = () => {
        const out: Buffer[] = [];
        for (const m of messages) {
          if (!enc.add(m)) {
            out.push(enc.flush()!);
            enc.add(m);
          }
        }
        out.push(enc.flush()!);
        return out;
      };
      run(); // warm-up
      let t = performance.now();
      const datagrams = run();
      const encMs = performance.now() - t;
      let decoded = 0;
      for (const d of datagrams) decoded += decodeOk(d, auth).messages.length; // warm-up
      t = performance.now();
      decoded = 0;
      for (const d of datagrams) {
        const r = decodeDatagram(d, { cluster: CLUSTER, auth });
        if (r.ok) decoded += r.messages.length;
      }
      const decMs = performance.now() - t;
      expect(decoded).toBe(n);
      const rate = (ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString('en-US')} entries/s`;
      console.log(
        `wire throughput${auth ? ' (HMAC)' : ''}: ${n} entries in ${datagrams.length} datagrams ` +
          `(${(n / datagrams.length).toFixed(1)}/datagram); encode ${rate(encMs)}, decode ${rate(decMs)}`,
      );
    }
  });
});
