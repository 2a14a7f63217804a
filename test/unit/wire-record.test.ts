// Entries sent as records (EntryRecord) must put the same bytes on the wire
// as the entry objects they hold: the receiver cannot tell them apart.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntryCompactor } from '../../src/cache/compact.js';
import { EntryRecord, F_WHOLE, REC_WORDS, RecordPool, recordBuf, W_FLAGS, writeEntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { ProtoWriter, writeMessage } from '../../src/sync/wire/proto-codec.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { entryArb, u16, u8, v4 } from './ct-arbitraries.js';
import { atLeast, runs } from './fc-runs.js';

const SEED = Number(process.env.FC_SEED ?? 20261208);

function bytes(m: WireMessage): Buffer | string {
  const w = new ProtoWriter(4096);
  try {
    writeMessage(w, m);
  } catch (e) {
    // Both forms must refuse the same entries, with the same reason.
    return e instanceof RangeError ? `RangeError: ${e.message}` : String(e);
  }
  return Buffer.from(w.buf.subarray(0, w.pos));
}

/** Plain flows, mirrored or NATed, ICMP echoes among them: the records the fast path writes itself. */
const plain: fc.Arbitrary<ConntrackEntry> = fc
  .record({ a: v4, b: v4, nat: fc.option(v4, { nil: undefined }), sp: u16, dp: u16, icmp: fc.boolean(), type: fc.constantFrom(0, 8, 13, 3), code: u8, state: fc.integer({ min: 0, max: 12 }), mark: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }) })
  .map((g): ConntrackEntry => {
    if (g.icmp) {
      const inv = g.type === 8 ? 0 : g.type === 0 ? 8 : g.type === 13 ? 14 : g.type;
      return {
        family: 2,
        orig: { src: g.a, dst: g.b, proto: 1, icmpType: g.type, icmpCode: g.code, icmpId: g.sp },
        reply: { src: g.nat ?? g.b, dst: g.a, proto: 1, icmpType: g.nat ? g.type : inv, icmpCode: g.code, icmpId: g.sp },
        status: 0x18e,
        timeout: 30,
        ...(g.mark === undefined ? {} : { mark: g.mark }),
      };
    }
    return {
      family: 2,
      orig: { src: g.a, dst: g.b, proto: 6, sport: g.sp, dport: g.dp },
      reply: { src: g.nat ?? g.b, dst: g.a, proto: 6, sport: g.dp, dport: g.sp },
      status: 0x18e,
      timeout: 300,
      ...(g.mark === undefined ? {} : { mark: g.mark }),
      protoinfo: { tcp: { state: g.state, wscaleOrig: 7, flagsOrig: { flags: 3, mask: 3 } } },
    };
  });

describe('EntryRecord on the wire', () => {
  it('encodes exactly like the compact entry object, for every kind and shape (30,000)', () => {
    let fast = 0;
    // One pool: records sit at every offset of its chunks.
    const pool = new RecordPool();
    fc.assert(
      fc.property(fc.oneof(entryArb, plain), fc.constantFrom<'ct-new' | 'ct-update'>('ct-new', 'ct-update'), fc.nat(), (e, kind, seq) => {
        const compactor = new EntryCompactor();
        const r = recordBuf(1);
        const x = writeEntryRecord(e, r, 0, (v) => compactor.entry(v));
        if (x === false) return;
        if (x === undefined && (r.w[W_FLAGS]! & F_WHOLE) === 0) fast++;
        const rec = pool.copy(r.w, 0, x);
        expect(bytes({ kind, seq, entry: rec })).toEqual(bytes({ kind, seq, entry: compactor.entry(e) }));
      }),
      { numRuns: runs(30_000), seed: SEED },
    );
    expect(fast).toBeGreaterThan(atLeast(5_000));
  });
});

describe('receiving entries as records', () => {
  /** One datagram of ct-new/ct-update messages for these entries. */
  function datagram(entries: ConntrackEntry[]): Buffer {
    const enc = new DatagramEncoder({ cluster: 7, node: 'fw1', epoch: 1, mtu: 65_000 });
    entries.forEach((entry, i) => {
      try {
        enc.add({ kind: i % 2 === 0 ? 'ct-new' : 'ct-update', seq: i + 1, entry });
      } catch (e) {
        // Entries the wire cannot carry (a TCP state past the limit) are left out, as the sender does.
        if (!(e instanceof RangeError)) throw e;
      }
    });
    return enc.flush() ?? datagramOfNothing(enc);
  }

  function datagramOfNothing(enc: DatagramEncoder): Buffer {
    enc.add({ kind: 'alive' } as WireMessage);
    return enc.flush()!;
  }

  /**
   * Decoding with records gives what decoding without gives, message by
   * message: a record holds exactly what writeEntryRecord makes of the
   * object, and errors are the same errors. Returns how many came as records.
   */
  function agree(buf: Buffer): number {
    const objects = decodeDatagram(buf, { cluster: 7 });
    const records = decodeDatagram(buf, { cluster: 7, records: true });
    expect(records.ok).toBe(objects.ok);
    if (!objects.ok || !records.ok) {
      expect(records).toEqual(objects);
      return 0;
    }
    expect(records.messages).toHaveLength(objects.messages.length);
    let n = 0;
    records.messages.forEach((m, i) => {
      const o = objects.messages[i]!;
      if (!('entry' in m) || !(m.entry instanceof EntryRecord)) {
        expect(m).toEqual(o);
        return;
      }
      n++;
      expect(m.kind).toBe(o.kind);
      const want = recordBuf(1);
      const x = writeEntryRecord((o as { entry: ConntrackEntry }).entry, want, 0);
      expect(x).toBeUndefined();
      expect([...m.entry.w.subarray(m.entry.at, m.entry.at + REC_WORDS)]).toEqual([...want.w]);
    });
    return n;
  }

  it('gives the records of what the object decoder reads, for entries of every shape (5,000 datagrams)', () => {
    let records = 0;
    fc.assert(
      fc.property(fc.array(fc.oneof(entryArb, plain), { minLength: 1, maxLength: 8 }), (entries) => {
        records += agree(datagram(entries));
      }),
      { numRuns: runs(5_000), seed: SEED + 1 },
    );
    expect(records).toBeGreaterThan(atLeast(5_000));
  });

  it('keeps every record of a datagram of hundreds apart, and reuses its space for the next datagram', () => {
    // More records than the decoder's first scratch space holds: it grows mid-datagram.
    const many = fc.sample(plain, { numRuns: runs(600), seed: SEED + 3 });
    expect(agree(datagram(many))).toBeGreaterThan(atLeast(500));
    const first = decodeDatagram(datagram(many.slice(0, 3)), { cluster: 7, records: true });
    const second = decodeDatagram(datagram(many.slice(3, 6)), { cluster: 7, records: true });
    // Records are valid until the next datagram: the same views, now holding the second's.
    expect(first.ok && second.ok).toBe(true);
    if (first.ok && second.ok) {
      second.messages.forEach((m, i) => expect('entry' in m && m.entry).toBe('entry' in first.messages[i]! && first.messages[i]!.entry));
      expect(agree(datagram(many.slice(3, 6)))).toBe(3);
    }
  });

  it('agrees on damaged datagrams: the same errors, or the same entries (20,000)', () => {
    fc.assert(
      fc.property(
        fc.array(plain, { minLength: 1, maxLength: 4 }),
        fc.array(fc.record({ at: fc.nat(), v: u8 }), { minLength: 1, maxLength: 3 }),
        (entries, edits) => {
          const b = Buffer.from(datagram(entries));
          // Past the 8-byte prefix: the body is what the entry readers see.
          for (const { at, v } of edits) b[8 + (at % (b.length - 8))] = v;
          agree(b);
        },
      ),
      { numRuns: runs(20_000), seed: SEED + 2 },
    );
  });
});
