// Generators shared by the codec property tests: random attribute trees,
// mutations of real kernel messages, and valid conntrack and expectation
// entries of every shape the codecs know.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { formatIPv4, formatIPv6 } from '../../src/common/address.js';
import {
  AF_INET,
  AF_INET6,
  IPCTNL_MSG_CT_NEW,
  IPCTNL_MSG_EXP_NEW,
  NFNL_SUBSYS_CTNETLINK,
  NFNL_SUBSYS_CTNETLINK_EXP,
  NLA_F_NESTED,
} from '../../src/kernel/constants.js';
import type { ConntrackEntry, ExpectEntry, Family, Tuple } from '../../src/kernel/entry.js';

export const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
export const EXP_NEW = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW;
const DIR = fileURLToPath(new URL('../fixtures/ctnetlink/', import.meta.url));
/** Real kernel messages (test/fixtures/ctnetlink/*.hex). */
export const corpus: Buffer[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.hex'))
  .sort()
  .map((f) => Buffer.from(readFileSync(DIR + f, 'utf8').replace(/\s+/g, ''), 'hex'));


// ---------------------------------------------------------------------------
// Generators

/** Random attribute trees: types biased towards the ones the decoders know. */
export const attrType = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 27 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
);
export const attrData = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(0, 1, 2, 3, 4, 5, 8, 12, 16, 20)
      .chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
);
export interface Tree {
  type: number;
  data?: Uint8Array;
  children?: Tree[];
}
export const tree: fc.Arbitrary<Tree[]> = fc.letrec<{ node: Tree; nodes: Tree[] }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 6, depthSize: 'small', withCrossShrink: true },
    fc.record({ type: attrType, data: attrData }),
    fc.record({ type: attrType, children: tie('nodes') }),
  ),
  nodes: fc.array(tie('node'), { maxLength: 5 }),
})).nodes;

export function serialise(nodes: Tree[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of nodes) {
    const body = n.children ? serialise(n.children) : Buffer.from(n.data ?? []);
    const len = 4 + body.length;
    if (len > 0xffff) continue;
    const b = Buffer.alloc((len + 3) & ~3);
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE((n.type & 0x3fff) | (n.children ? NLA_F_NESTED : 0), 2);
    body.copy(b, 4);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'len16'; at: number; value: number }
  | { kind: 'len32'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'splice'; at: number; donor: number; from: number; count: number };

export const lengthValue = fc.oneof(
  fc.constantFrom(0, 1, 3, 4, 5, 8, 15, 16, 17, 20, 0x7fff, 0xffff),
  fc.integer({ min: 0, max: 0xffff }),
);
// Weighted towards in-place edits, which leave most of a message decodable;
// the shifting kinds (truncate/delete/insert/splice) mostly hit framing checks.
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  },
  // Length fields sit on 4-byte boundaries: nlmsg_len at 0, nla_len of each attribute.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('len16' as const), at: fc.nat(), value: lengthValue }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('len32' as const),
      at: fc.constant(0),
      value: fc.oneof(lengthValue, fc.nat()),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('splice' as const),
      at: fc.nat(),
      donor: fc.nat(),
      from: fc.nat(),
      count: fc.integer({ min: 1, max: 64 }),
    }),
  },
);

export function mutate(input: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.kind) {
      case 'flip':
        b[at] = b[at]! ^ (1 << m.bit);
        break;
      case 'set':
        b[at] = m.value;
        break;
      case 'len16': {
        const o = at & ~3;
        if (o + 2 <= b.length) b.writeUInt16LE(m.value, o);
        break;
      }
      case 'len32':
        if (b.length >= 4) b.writeUInt32LE(m.value >>> 0, 0);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      case 'splice': {
        const donor = corpus[m.donor % corpus.length]!;
        const from = m.from % donor.length;
        b = Buffer.concat([b.subarray(0, at), donor.subarray(from, from + m.count), b.subarray(at)]);
        break;
      }
    }
  }
  return b;
}

// Valid entries for the round-trip property.
export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const s32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
export const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
export const name = fc.string({ unit: 'grapheme', maxLength: 24 }).filter((s) => !s.includes('\0'));
export const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIPv4(Buffer.from(b).readUInt32BE(0)));
export const v6 = fc
  .oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    // Mostly-zero addresses exercise "::" placement.
    fc.array(fc.constantFrom(0, 0, 0, 1, 0xff), { minLength: 16, maxLength: 16 }).map((a) => Uint8Array.from(a)),
  )
  .map((b) => formatIPv6(Buffer.from(b)));

export function tupleOf(family: Family): fc.Arbitrary<Tuple> {
  const addr = family === AF_INET ? v4 : v6;
  const ported = fc.record(
    { src: addr, dst: addr, proto: fc.constantFrom(6, 17, 33, 47, 132, 136), sport: u16, dport: u16, zone: u16 },
    { requiredKeys: ['src', 'dst', 'proto'] },
  );
  // Protocols the kernel tracks generically: address pair only.
  const generic = fc.record(
    { src: addr, dst: addr, proto: fc.constantFrom(0, 2, 41, 50, 255), zone: u16 },
    { requiredKeys: ['src', 'dst', 'proto'] },
  );
  const icmp = fc.record(
    { src: addr, dst: addr, proto: fc.constant(family === AF_INET ? 1 : 58), icmpId: u16, icmpType: u8, icmpCode: u8 },
    { requiredKeys: ['src', 'dst', 'proto'] },
  );
  return fc.oneof(ported, icmp, generic);
}

export const entryArb: fc.Arbitrary<ConntrackEntry> = fc.constantFrom<Family>(AF_INET, AF_INET6).chain((family) =>
  fc.record(
    {
      family: fc.constant(family),
      orig: tupleOf(family),
      reply: tupleOf(family),
      master: tupleOf(family),
      status: u32,
      timeout: u32,
      mark: u32,
      zone: u16,
      labels: fc
        .constantFrom(4, 8, 12, 16)
        .chain((n) => fc.uint8Array({ minLength: n, maxLength: n }))
        .map((b) => Buffer.from(b)),
      labelsMask: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b)),
      protoinfo: fc.record(
        {
          tcp: fc.record(
            {
              state: u8,
              wscaleOrig: u8,
              wscaleReply: u8,
              flagsOrig: fc.record({ flags: u8, mask: u8 }),
              flagsReply: fc.record({ flags: u8, mask: u8 }),
            },
            { requiredKeys: ['state'] },
          ),
          sctp: fc.record({ state: u8, vtagOrig: u32, vtagReply: u32 }, { requiredKeys: ['state'] }),
          dccp: fc.record({ state: u8, role: u8, handshakeSeq: u64 }, { requiredKeys: ['state'] }),
        },
        { requiredKeys: [] },
      ),
      seqAdjOrig: fc.record({ correctionPos: u32, offsetBefore: s32, offsetAfter: s32 }),
      seqAdjReply: fc.record({ correctionPos: u32, offsetBefore: s32, offsetAfter: s32 }),
      helper: name,
      secmark: u32,
      secctx: name,
      id: u32,
      use: u32,
      countersOrig: fc.record({ packets: u64, bytes: u64 }),
      countersReply: fc.record({ packets: u64, bytes: u64 }),
      timestamp: fc.record({ start: u64, stop: u64 }, { requiredKeys: [] }),
      synproxy: fc.record({ isn: u32, its: u32, tsoff: u32 }),
    },
    { requiredKeys: ['family', 'orig', 'reply'] },
  ),
);

export const expectArb: fc.Arbitrary<ExpectEntry> = fc.constantFrom<Family>(AF_INET, AF_INET6).chain((family) =>
  fc.record(
    {
      family: fc.constant(family),
      master: tupleOf(family),
      tuple: tupleOf(family),
      mask: tupleOf(family),
      timeout: u32,
      id: u32,
      helper: name,
      zone: u16,
      flags: u32,
      class: u32,
      nat: fc.record({ dir: u32, tuple: tupleOf(family) }),
      fn: name,
    },
    { requiredKeys: ['family', 'master', 'tuple', 'mask'] },
  ),
);

