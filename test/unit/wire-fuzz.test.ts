// Property and fuzz tests of the sync wire format. The decoder faces
// whatever reaches the sync port, so: it must never throw, every result
// must be well formed, and whatever it accepts must be something our own
// encoder could have produced (it re-encodes to an equal decode).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AuthKeys } from '../../src/sync/wire/auth.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import {
  type DecodeResult,
  MAX_DATAGRAM_BYTES,
  PREFIX_BYTES,
  PROTOCOL_VERSION,
  type WireErrorCode,
  type WireMessage,
} from '../../src/sync/wire/types.js';
import {
  AUTH_A,
  CLUSTER,
  EPOCH,
  encodeAll,
  expectedAfterWire,
  FIXTURE_MESSAGES,
  messageArb,
  NODE,
  referenceDecode,
  referenceEncode,
  typicalTcpEntry,
} from './wire-helpers.js';
import { runs } from './fc-runs.js';

const CODES: ReadonlySet<WireErrorCode> = new Set([
  'ETRUNC',
  'EMAGIC',
  'EVERSION',
  'ECLUSTER',
  'EAUTH',
  'EDECODE',
  'ESIZE',
  'EVALUE',
]);

let fuzzed = 0;

/** Runs a fuzz property and checks it decoded at least numRuns datagrams itself (no tally shared across tests). */
function fuzz<T extends unknown[]>(numRuns: number, property: fc.IPropertyWithHooks<T>): void {
  const before = fuzzed;
  fc.assert(property, { numRuns });
  expect(fuzzed - before).toBeGreaterThanOrEqual(numRuns);
}

function withoutDeleteReply(m: WireMessage): unknown {
  if (m.kind !== 'ct-delete') return m;
  const { reply: _reply, ...rest } = m.entry;
  return { ...m, entry: rest };
}

/** Decodes and checks the result is well formed; returns it for further checks. */
function decodeChecked(buf: Buffer, auth?: AuthKeys): DecodeResult {
  fuzzed++;
  let r: DecodeResult;
  try {
    r = decodeDatagram(buf, { cluster: CLUSTER, auth });
  } catch (err) {
    throw new Error(`decodeDatagram threw on ${buf.toString('hex')}: ${String(err)}`);
  }
  if (!r.ok) {
    expect(CODES.has(r.error.code)).toBe(true);
    expect(typeof r.error.reason).toBe('string');
    expect(r.error.reason.length).toBeGreaterThan(0);
    // 'internal error' means a bug in the decoder, caught by its last-resort handler.
    expect(r.error.reason).not.toMatch(/^internal/);
    return r;
  }
  expect(r.header.version).toBe(PROTOCOL_VERSION);
  expect(r.header.cluster).toBe(CLUSTER);
  expect(r.header.node).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
  expect(r.header.epoch >>> 0).toBe(r.header.epoch);
  expect(Number.isInteger(r.unknownMessages) && r.unknownMessages >= 0).toBe(true);
  // Everything accepted must be encodable: the encoder validates every
  // value (addresses per family, u8/u16/u32 ranges, node ids, ...), and a
  // second decode must give the same messages.
  if (r.messages.length > 0) {
    const enc = new DatagramEncoder({
      cluster: CLUSTER,
      node: r.header.node,
      epoch: r.header.epoch,
      mtu: MAX_DATAGRAM_BYTES,
    });
    for (const m of r.messages) expect(enc.add(m)).toBe(true);
    const again = decodeDatagram(enc.flush()!, { cluster: CLUSTER });
    // A delete's reply tuple is not sent by our encoder (the receiver mirrors
    // orig), so only the fields that name the entry must survive.
    expect(again.ok && again.messages.map(withoutDeleteReply)).toEqual(r.messages.map(withoutDeleteReply));
  }
  return r;
}

// ---------------------------------------------------------------------------
// Corpus of valid datagrams to mutate

const corpus: Buffer[] = [];
for (const messages of Object.values(FIXTURE_MESSAGES)) corpus.push(encodeAll(messages));
corpus.push(
  encodeAll(
    Array.from({ length: 12 }, (_, i): WireMessage => ({ kind: 'ct-update', seq: i, entry: typicalTcpEntry(i) })),
  ),
);
for (const messages of fc.sample(fc.array(messageArb(), { minLength: 1, maxLength: 8 }), { numRuns: runs(40), seed: 7 })) {
  corpus.push(encodeAll(messages, undefined, MAX_DATAGRAM_BYTES));
}
const signedCorpus = corpus.map((b) => {
  const r = decodeDatagram(b, { cluster: CLUSTER });
  if (!r.ok) throw new Error('corpus datagram does not decode');
  return encodeAll(r.messages, AUTH_A, MAX_DATAGRAM_BYTES);
});

const signedSet = new Set(signedCorpus.map((b) => b.toString('hex')));

type Mutation =
  | { t: 'flip'; pos: number; bit: number }
  | { t: 'set'; pos: number; val: number }
  | { t: 'truncate'; len: number }
  | { t: 'splice'; other: number; at: number; from: number; len: number }
  | { t: 'insert'; at: number; bytes: Uint8Array }
  | { t: 'delete'; at: number; len: number }
  | { t: 'duplicate'; at: number; len: number };

const pos = fc.nat({ max: 1 << 20 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ t: fc.constant('flip' as const), pos, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ t: fc.constant('set' as const), pos, val: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ t: fc.constant('truncate' as const), len: pos }),
  fc.record({ t: fc.constant('splice' as const), other: fc.nat(), at: pos, from: pos, len: fc.nat({ max: 200 }) }),
  fc.record({ t: fc.constant('insert' as const), at: pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ t: fc.constant('delete' as const), at: pos, len: fc.integer({ min: 1, max: 32 }) }),
  fc.record({ t: fc.constant('duplicate' as const), at: pos, len: fc.integer({ min: 1, max: 64 }) }),
);

function mutate(base: Buffer, muts: Mutation[], pool: Buffer[]): Buffer {
  let b = Buffer.from(base);
  for (const m of muts) {
    const n = b.length;
    switch (m.t) {
      case 'flip':
        if (n > 0) b[m.pos % n] = b[m.pos % n]! ^ (1 << m.bit);
        break;
      case 'set':
        if (n > 0) b[m.pos % n] = m.val;
        break;
      case 'truncate':
        b = b.subarray(0, m.len % (n + 1));
        break;
      case 'splice': {
        // Our head, another datagram's tail: a plausible prefix with foreign protobuf.
        const o = pool[m.other % pool.length]!;
        const at = m.at % (n + 1);
        const from = m.from % (o.length + 1);
        b = Buffer.concat([b.subarray(0, at), o.subarray(from, from + m.len)]);
        break;
      }
      case 'insert': {
        const at = m.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = m.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      }
      case 'duplicate': {
        const at = m.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
        break;
      }
    }
  }
  return b;
}

const PREFIX = corpus[0]!.subarray(0, PREFIX_BYTES);

describe('fuzz: the decoder never throws and every result is well formed', () => {
  it('random bytes', () => {
    fuzz(
      runs(15_000),
      fc.property(fc.uint8Array({ maxLength: 1600 }), (bytes) => {
        decodeChecked(Buffer.from(bytes));
      }),
    );
  });

  it('random bytes behind a valid prefix (reaches the protobuf parser)', () => {
    fuzz(
      runs(20_000),
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        decodeChecked(Buffer.concat([PREFIX, bytes]));
      }),
    );
  });

  it('random protobuf-shaped bytes: valid prefix, node, then random fields', () => {
    const field = fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 20 }), fc.constant(0), fc.nat()),
      fc.tuple(fc.integer({ min: 1, max: 20 }), fc.constant(5), fc.nat()),
      fc.tuple(fc.integer({ min: 1, max: 20 }), fc.constant(2), fc.nat({ max: 40 })),
    );
    fuzz(
      runs(10_000),
      fc.property(fc.array(field, { maxLength: 40 }), fc.uint8Array({ maxLength: 200 }), (fields, filler) => {
        const out: number[] = [...PREFIX, 0x0a, 0x02, 0x66, 0x62];
        let k = 0;
        for (const [num, wt, v] of fields) {
          out.push((num << 3) | wt);
          if (wt === 5) out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
          else {
            let x = v;
            while (x > 0x7f) {
              out.push((x & 0x7f) | 0x80);
              x >>>= 7;
            }
            out.push(x);
            if (wt === 2) for (let i = 0; i < v; i++) out.push(filler[k++ % Math.max(1, filler.length)] ?? 0);
          }
        }
        decodeChecked(Buffer.from(out));
      }),
    );
  });

  it('mutations of valid datagrams (bit flips, truncation, splices, insertions, deletions)', () => {
    fuzz(
      runs(45_000),
      fc.property(
        fc.nat({ max: corpus.length - 1 }),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        (i, muts) => {
          decodeChecked(mutate(corpus[i]!, muts, corpus));
        },
      ),
    );
  });

  it('mutations of signed datagrams: any change is EAUTH (or rejected earlier)', () => {
    fuzz(
      runs(10_000),
      fc.property(
        fc.nat({ max: signedCorpus.length - 1 }),
        fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        (i, muts) => {
          const base = signedCorpus[i]!;
          const buf = mutate(base, muts, signedCorpus);
          const r = decodeChecked(buf, AUTH_A);
          // A splice can rebuild another genuinely signed datagram: a replay, which HMAC does not prevent.
          if (!signedSet.has(buf.toString('hex'))) expect(r.ok).toBe(false);
          // Without keys the same bytes must still be handled safely.
          decodeChecked(buf);
        },
      ),
    );
  });
});

describe('properties of valid messages', () => {
  it('decode(encode(messages)) gives back what the wire carries', () => {
    fc.assert(
      fc.property(fc.array(messageArb(), { minLength: 1, maxLength: 10 }), fc.boolean(), (messages, signed) => {
        const auth = signed ? AUTH_A : undefined;
        const buf = encodeAll(messages, auth, MAX_DATAGRAM_BYTES);
        const r = decodeDatagram(buf, { cluster: CLUSTER, auth });
        expect(r.ok && r.messages).toEqual(messages.map(expectedAfterWire));
        // Re-encoding the decoded messages reproduces the bytes.
        expect(r.ok && encodeAll(r.messages, auth, MAX_DATAGRAM_BYTES).equals(buf)).toBe(true);
      }),
      { numRuns: runs(2_000) },
    );
  });

  it('protobufjs reflection reads our encoding the same way, and writes the same bytes', () => {
    fc.assert(
      fc.property(fc.array(messageArb(), { minLength: 1, maxLength: 6 }), (messages) => {
        const buf = encodeAll(messages, undefined, MAX_DATAGRAM_BYTES);
        const body = buf.subarray(PREFIX_BYTES);
        const ref = referenceDecode(body);
        expect(ref).toEqual({ node: NODE, epoch: EPOCH, messages: messages.map(expectedAfterWire) });
        expect(referenceEncode(NODE, EPOCH, messages).equals(body)).toBe(true);
      }),
      { numRuns: runs(1_000) },
    );
  });
});
