// Entries sent as records (EntryRecord) must put the same bytes on the wire
// as the entry objects they hold: the receiver cannot tell them apart.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntryCompactor } from '../../src/cache/compact.js';
import { EntryRecord, F_WHOLE, recordBuf, W_FLAGS, writeEntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { ProtoWriter, writeMessage } from '../../src/sync/wire/proto-codec.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { entryArb, u16, u8, v4 } from './ct-arbitraries.js';

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
    fc.assert(
      fc.property(fc.oneof(entryArb, plain), fc.constantFrom<'ct-new' | 'ct-update'>('ct-new', 'ct-update'), fc.nat(), (e, kind, seq) => {
        const compactor = new EntryCompactor();
        const r = recordBuf(1);
        const x = writeEntryRecord(e, r, 0, (v) => compactor.entry(v));
        if (x === false) return;
        if (x === undefined && (r.w[W_FLAGS]! & F_WHOLE) === 0) fast++;
        const rec = new EntryRecord(r.w, 0, x);
        expect(bytes({ kind, seq, entry: rec })).toEqual(bytes({ kind, seq, entry: compactor.entry(e) }));
      }),
      { numRuns: 30_000, seed: SEED },
    );
    expect(fast).toBeGreaterThan(5_000);
  });
});
