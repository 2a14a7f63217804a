// Property tests: the decoders must survive anything (random bytes, random
// attribute trees, mutated real kernel messages) without throwing and must
// return well-formed values; valid entries must survive an encode/decode trip.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CT_NEW, corpus, EXP_NEW, entryArb, expectArb, mutate, mutation, serialise, tree } from './ct-arbitraries.js';
import { AF_INET, AF_INET6, IPS } from '../../src/kernel/constants.js';
import { COMMIT_FORM, commitForm } from '../../src/cache/commit.js';
import {
  AS_IS,
  decodeConntrack,
  decodeExpect,
  encodeConntrack,
  encodeExpect,
  encodeNatSetup,
  encodeRequest,
  natCreateForm,
  type RequestForm,
} from '../../src/kernel/ct-codec.js';
import type { ConntrackEntry, ExpectEntry, Family, Tuple } from '../../src/kernel/entry.js';
import { canonicalIPv6, formatIPv6, parseIPv4, parseIPv6 } from '../../src/common/address.js';
import {
  type DecodeError,
  type DecodeErrorCode,
  decodeAttrTree,
  decodeNlError,
  type NlMessage,
  NlWriter,
  parseNetlink,
} from '../../src/kernel/netlink-codec.js';
import { atLeast, runs } from './fc-runs.js';

const CODES = new Set<DecodeErrorCode>([
  'ETRUNC_HEADER',
  'EMSG_LEN',
  'EATTR_LEN',
  'ENEST_DEPTH',
  'EATTR_SIZE',
  'EMISSING',
  'EFAMILY',
  'EZERO_LEN',
  'EMSG_TYPE',
  'EVALUE',
]);

// ---------------------------------------------------------------------------
// Well-formedness of whatever the decoders return

function checkError(e: DecodeError, bufferLength: number): void {
  if (!CODES.has(e.code)) throw new Error(`unknown error code ${e.code}`);
  if (!Number.isInteger(e.offset) || e.offset < 0 || e.offset > bufferLength) {
    throw new Error(`${e.code}: offset ${e.offset} outside [0, ${bufferLength}]`);
  }
  if (typeof e.reason !== 'string' || e.reason.length === 0) throw new Error(`${e.code}: empty reason`);
}

function checkUint(v: unknown, bits: number, what: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw new Error(`${what}: ${String(v)} is not a u${bits}`);
  }
}

function checkOptUint(v: unknown, bits: number, what: string): void {
  if (v !== undefined) checkUint(v, bits, what);
}

function checkBigU64(v: unknown, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v >= 2n ** 64n) throw new Error(`${what}: ${String(v)} is not a u64`);
}

function checkTuple(t: Tuple, family: Family, what: string): void {
  for (const a of [t.src, t.dst]) {
    const valid = family === AF_INET ? parseIPv4(a) !== undefined : canonicalIPv6(a) === a;
    if (!valid) throw new Error(`${what}: ${JSON.stringify(a)} is not a canonical address of family ${family}`);
  }
  checkUint(t.proto, 8, `${what}.proto`);
  checkOptUint(t.sport, 16, `${what}.sport`);
  checkOptUint(t.dport, 16, `${what}.dport`);
  checkOptUint(t.icmpId, 16, `${what}.icmpId`);
  checkOptUint(t.icmpType, 8, `${what}.icmpType`);
  checkOptUint(t.icmpCode, 8, `${what}.icmpCode`);
  checkOptUint(t.zone, 16, `${what}.zone`);
}

function checkLabels(b: Buffer | undefined, input: Buffer): void {
  if (b === undefined) return;
  if (!Buffer.isBuffer(b) || b.length === 0 || b.length > 16 || b.length % 4 !== 0) throw new Error('bad labels');
  const overlaps =
    b.buffer === input.buffer &&
    b.byteOffset < input.byteOffset + input.length &&
    input.byteOffset < b.byteOffset + b.length;
  if (overlaps) throw new Error('labels alias the input buffer');
}

function checkEntry(e: ConntrackEntry, input: Buffer, lookup: boolean): void {
  if (e.family !== AF_INET && e.family !== AF_INET6) throw new Error(`family ${e.family}`);
  checkTuple(e.orig, e.family, 'orig');
  if (e.reply) checkTuple(e.reply, e.family, 'reply');
  else if (!lookup) throw new Error('no reply outside lookup mode');
  if (e.master) checkTuple(e.master, e.family, 'master');
  for (const k of ['status', 'timeout', 'mark', 'secmark', 'id', 'use'] as const) checkOptUint(e[k], 32, k);
  checkOptUint(e.zone, 16, 'zone');
  checkLabels(e.labels, input);
  checkLabels(e.labelsMask, input);
  for (const c of [e.countersOrig, e.countersReply]) {
    if (c) {
      checkBigU64(c.packets, 'packets');
      checkBigU64(c.bytes, 'bytes');
    }
  }
  if (e.timestamp?.start !== undefined) checkBigU64(e.timestamp.start, 'start');
  if (e.timestamp?.stop !== undefined) checkBigU64(e.timestamp.stop, 'stop');
  const tcp = e.protoinfo?.tcp;
  if (tcp) {
    checkUint(tcp.state, 8, 'tcp.state');
    for (const f of [tcp.flagsOrig, tcp.flagsReply]) {
      if (f) {
        checkUint(f.flags, 8, 'flags');
        checkUint(f.mask, 8, 'mask');
      }
    }
  }
  if (e.protoinfo?.sctp) checkUint(e.protoinfo.sctp.state, 8, 'sctp.state');
  if (e.protoinfo?.dccp) checkUint(e.protoinfo.dccp.state, 8, 'dccp.state');
  for (const s of [e.seqAdjOrig, e.seqAdjReply]) {
    if (s && !(Number.isInteger(s.offsetBefore) && Number.isInteger(s.offsetAfter))) throw new Error('seqadj');
  }
  if (e.helper !== undefined && typeof e.helper !== 'string') throw new Error('helper');
}

function checkExpect(e: ExpectEntry): void {
  if (e.family !== AF_INET && e.family !== AF_INET6) throw new Error(`family ${e.family}`);
  checkTuple(e.master, e.family, 'master');
  checkTuple(e.tuple, e.family, 'tuple');
  checkTuple(e.mask, e.family, 'mask');
  if (e.nat) {
    checkUint(e.nat.dir, 32, 'nat.dir');
    checkTuple(e.nat.tuple, e.family, 'nat.tuple');
  }
  for (const k of ['timeout', 'id', 'flags', 'class'] as const) checkOptUint(e[k], 32, k);
}

/** Whatever decodes must re-encode (valid addresses etc.) and decode to the same value. */
function reencodeConntrack(msg: NlMessage, e: ConntrackEntry): void {
  const w = new NlWriter(256);
  w.begin(msg.type, msg.flags, msg.seq, e.family);
  encodeConntrack(w, e, { readOnly: true });
  w.end();
  const again = decodeConntrack(parseNetlink(w.finish()).messages[0]!);
  if (!again.ok) throw new Error(`re-encoded entry does not decode: ${again.error.reason}`);
  expect(again.value).toEqual(e);
}

function reencodeExpect(msg: NlMessage, e: ExpectEntry): void {
  const w = new NlWriter(256);
  w.begin(msg.type, msg.flags, msg.seq, e.family);
  encodeExpect(w, e, { readOnly: true });
  w.end();
  const again = decodeExpect(parseNetlink(w.finish()).messages[0]!);
  if (!again.ok) throw new Error(`re-encoded expectation does not decode: ${again.error.reason}`);
  expect(again.value).toEqual(e);
}

const stats = {
  properties: 0,
  inputs: 0,
  messages: 0,
  conntrackOk: 0,
  expectOk: 0,
  errorsByCode: new Map<string, number>(),
};

function note(r: { ok: boolean; error?: DecodeError }): void {
  if (!r.ok && r.error) stats.errorsByCode.set(r.error.code, (stats.errorsByCode.get(r.error.code) ?? 0) + 1);
}

/** Feeds one message to every decoder, also as the other message types. */
function feedMessage(m: NlMessage): void {
  stats.messages++;
  const len = m.payload.length;
  for (const type of new Set([m.type, CT_NEW, EXP_NEW])) {
    const msg = type === m.type ? m : { ...m, type };
    const c = decodeConntrack(msg);
    note(c);
    if (c.ok) {
      stats.conntrackOk++;
      checkEntry(c.value, m.payload, false);
      reencodeConntrack(msg, c.value);
    } else checkError(c.error, len);
    const l = decodeConntrack(msg, { lookup: true });
    if (l.ok) checkEntry(l.value as ConntrackEntry, m.payload, true);
    else checkError(l.error, len);
    const x = decodeExpect(msg);
    note(x);
    if (x.ok) {
      stats.expectOk++;
      checkExpect(x.value);
      reencodeExpect(msg, x.value);
    } else checkError(x.error, len);
  }
  for (const flags of [m.flags, 0x300, 0x200]) {
    const n = decodeNlError(m.payload, flags);
    if (n.ok) {
      checkUint(n.value.errno, 31, 'errno');
      checkUint(n.value.request.type, 16, 'request.type');
      checkUint(n.value.request.seq, 32, 'request.seq');
    } else checkError(n.error, len);
  }
  const t = decodeAttrTree(m.payload, Math.min(4, len));
  if (!t.ok) checkError(t.error, len);
}

/** The whole pipeline on one buffer; throws on any violation. */
function exercise(buf: Buffer): void {
  stats.inputs++;
  const { messages, error } = parseNetlink(buf);
  let end = 0;
  for (const m of messages) {
    checkUint(m.type, 16, 'type');
    checkUint(m.seq, 32, 'seq');
    if (m.payload.buffer !== buf.buffer) throw new Error('payload is not a view of the input');
    const start = m.payload.byteOffset - buf.byteOffset;
    if (start < end + 16 || start + m.payload.length > buf.length) throw new Error('payload outside its message');
    end = start + m.payload.length;
  }
  if (error) checkError(error, buf.length);
  for (const m of messages) feedMessage(m);
}

function asMessage(type: number, flags: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(16 + payload.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  payload.copy(b, 16);
  return b;
}

// ---------------------------------------------------------------------------

const SEED = Number(process.env.FC_SEED ?? 20240611);

describe('decoders never throw and return well-formed results', () => {
  it('random bytes (25,000 buffers)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => exercise(Buffer.from(bytes))),
      { numRuns: runs(25_000), seed: SEED },
    );
    stats.properties++;
  });

  it('random payloads under valid headers (20,000 messages)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(CT_NEW, CT_NEW | 2, EXP_NEW, 2, 3, 0xffff),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 400 }),
        (type, flags, payload) => exercise(asMessage(type, flags, Buffer.from(payload))),
      ),
      { numRuns: runs(20_000), seed: SEED + 1 },
    );
    stats.properties++;
  });

  it('random attribute trees in ctnetlink messages (30,000 messages)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(CT_NEW, EXP_NEW),
        fc.constantFrom(AF_INET, AF_INET6, 0, 7),
        tree,
        (type, family, nodes) =>
          exercise(asMessage(type, 0, Buffer.concat([Buffer.from([family, 0, 0, 0]), serialise(nodes)]))),
      ),
      { numRuns: runs(30_000), seed: SEED + 2 },
    );
    stats.properties++;
  });

  it('mutated real kernel messages: bit flips, truncations, length edits, splices (40,000 buffers)', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: corpus.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        // Mostly repair nlmsg_len afterwards: a damaged payload under an intact
        // header reaches the attribute decoders instead of stopping at framing.
        fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        (i, ms, repair) => {
          const b = mutate(corpus[i]!, ms);
          if (repair && b.length >= 16) b.writeUInt32LE(b.length, 0);
          exercise(b);
        },
      ),
      { numRuns: runs(40_000), seed: SEED + 3 },
    );
    stats.properties++;
  });

  it('covered real ground: many mutants still decode, and every error code showed up', () => {
    // Runs after the properties above (same file, sequential): guards against a
    // generator that silently stopped reaching the decoders. Meaningless when a
    // -t filter ran only some of them.
    if (stats.properties < 4) return;
    console.log(JSON.stringify({ ...stats, errorsByCode: Object.fromEntries(stats.errorsByCode) }));
    expect(stats.inputs).toBeGreaterThanOrEqual(atLeast(100_000));
    expect(stats.conntrackOk).toBeGreaterThan(atLeast(3_000));
    expect(stats.expectOk).toBeGreaterThan(atLeast(500));
    for (const code of ['EATTR_LEN', 'EATTR_SIZE', 'EMISSING', 'EFAMILY', 'EZERO_LEN', 'EMSG_TYPE', 'ETRUNC_HEADER']) {
      expect(stats.errorsByCode.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });
});

describe('encode/decode round trips', () => {
  it('any valid conntrack entry survives encode -> parse -> decode (both layouts)', () => {
    fc.assert(
      fc.property(entryArb, (e) => {
        for (const layout of ['dump', 'event'] as const) {
          const w = new NlWriter(64);
          w.begin(CT_NEW, 0, 1, e.family);
          encodeConntrack(w, e, { readOnly: true, layout });
          w.end();
          const r = decodeConntrack(parseNetlink(w.finish()).messages[0]!);
          if (!r.ok) throw new Error(r.error.reason);
          const { use, ...withoutUse } = e;
          expect(r.value).toEqual(layout === 'dump' ? e : withoutUse);
          if (layout === 'dump') expect(r.value.use).toBe(use);
        }
      }),
      { numRuns: runs(2_000), seed: SEED + 4 },
    );
  });

  it('a request in a form encodes as the form applied to a copy of the entry would', () => {
    // The reference is how requests were built before forms: commitForm's
    // copy, natCreateForm's copy for a NATed create, CONFIRMED on a spread.
    const reference = (e: ConntrackEntry, commit: boolean, create: boolean): Buffer => {
      const f = commit ? commitForm(e) : e;
      const status = (f.status ?? 0) | IPS.CONFIRMED;
      const w = new NlWriter(64);
      w.begin(CT_NEW, 0, 1, e.family);
      if (create) {
        const c = natCreateForm(f);
        encodeConntrack(w, { ...c.entry, status });
        if (c.nat) encodeNatSetup(w, f);
      } else {
        encodeConntrack(w, { ...f, status, master: undefined });
      }
      w.end();
      return Buffer.from(w.finish());
    };
    const encoded = (e: ConntrackEntry, base: RequestForm, create: boolean): Buffer => {
      const w = new NlWriter(64);
      w.begin(CT_NEW, 0, 1, e.family);
      encodeRequest(w, e, { ...base, statusSet: base.statusSet | IPS.CONFIRMED }, create);
      w.end();
      return Buffer.from(w.finish());
    };
    // Half of the entries without NAT: the reply tuple is the inverted original.
    const mirrored = entryArb.map((e) => ({
      ...e,
      reply: { ...e.reply, src: e.orig.dst, dst: e.orig.src, sport: e.orig.dport, dport: e.orig.sport, icmpId: e.orig.icmpId },
    }));
    fc.assert(
      fc.property(fc.oneof(entryArb, mirrored), fc.boolean(), fc.boolean(), (e, commit, create) => {
        expect(encoded(e, commit ? COMMIT_FORM : AS_IS, create)).toEqual(reference(e, commit, create));
      }),
      { numRuns: runs(1_500), seed: SEED + 6 },
    );
  });

  it('any valid expectation survives encode -> parse -> decode', () => {
    fc.assert(
      fc.property(expectArb, (e) => {
        const w = new NlWriter(64);
        w.begin(EXP_NEW, 0, 1, e.family);
        encodeExpect(w, e, { readOnly: true });
        w.end();
        const r = decodeExpect(parseNetlink(w.finish()).messages[0]!);
        if (!r.ok) throw new Error(r.error.reason);
        expect(r.value).toEqual(e);
      }),
      { numRuns: runs(2_000), seed: SEED + 5 },
    );
  });

  it('IPv6 text: format(parse(x)) is canonical and stable, parse(format(b)) is b', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (raw, sparse) => {
        const b = Buffer.from(raw);
        if (sparse) for (let i = 0; i < 16; i++) if (b[i]! & 1) b[i] = 0;
        const s = formatIPv6(b);
        expect(parseIPv6(s)).toEqual(b);
        expect(canonicalIPv6(s)).toBe(s);
        expect(canonicalIPv6(s.toUpperCase())).toBe(s);
        // The fully expanded form parses to the same address.
        const full = Array.from({ length: 8 }, (_, g) =>
          b
            .readUInt16BE(2 * g)
            .toString(16)
            .padStart(4, '0'),
        ).join(':');
        expect(canonicalIPv6(full)).toBe(s);
      }),
      { numRuns: runs(5_000), seed: SEED + 6 },
    );
  });
});
