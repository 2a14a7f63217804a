// Entries held as records (EntryRecord), one shape per row: written to the
// wire they give the bytes their entry object gives, and read back with
// `records` they give the words writeEntryRecord makes of the object the
// object decoder reads. The same checks as wire-record.test.ts's properties,
// on a table small enough to run under mutation testing (TESTING.md).
import { describe, expect, it } from 'vitest';
import { EntryCompactor } from '../../src/cache/compact.js';
import { EntryRecord, F_WHOLE, REC_WORDS, RecordPool, recordBuf, W_FLAGS, writeEntryRecord } from '../../src/kernel/ct-record.js';
import type { ConntrackEntry, Tuple } from '../../src/kernel/entry.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { ProtoWriter, writeMessage } from '../../src/sync/wire/proto-codec.js';
import type { WireMessage } from '../../src/sync/wire/types.js';

const tcp4 = (sport = 40000, dport = 443): Tuple => ({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport, dport });
const mirror = (t: Tuple): Tuple => ({ src: t.dst, dst: t.src, proto: t.proto, sport: t.dport, dport: t.sport });
const tcp6: Tuple = { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 1, dport: 65535 };

type Row = { name: string; entry: ConntrackEntry; fast: boolean };
const rows: Row[] = [
  {
    name: 'TCP, mirrored, every word',
    entry: {
      family: 2,
      orig: tcp4(),
      reply: mirror(tcp4()),
      status: 0x18e,
      timeout: 431999,
      mark: 0xffffffff,
      zone: 7,
      secmark: 0x80000001,
      protoinfo: { tcp: { state: 3, wscaleOrig: 7, wscaleReply: 14, flagsOrig: { flags: 0x23, mask: 0x23 }, flagsReply: { flags: 0x01, mask: 0x33 } } },
    },
    fast: true,
  },
  { name: 'TCP state 0, no scales or flags', entry: { family: 2, orig: tcp4(), reply: mirror(tcp4()), protoinfo: { tcp: { state: 0 } } }, fast: true },
  { name: 'TCP with only the reply scale and flags', entry: { family: 2, orig: tcp4(), reply: mirror(tcp4()), protoinfo: { tcp: { state: 9, wscaleReply: 1, flagsReply: { flags: 2, mask: 0 } } } }, fast: true },
  { name: 'SNAT of the address', entry: { family: 2, orig: tcp4(), reply: { ...mirror(tcp4()), dst: '192.0.2.9' }, status: 0x18e }, fast: true },
  { name: 'DNAT of the address', entry: { family: 2, orig: tcp4(), reply: { ...mirror(tcp4()), src: '192.0.2.8' } }, fast: true },
  { name: 'NAT of the reply source port', entry: { family: 2, orig: tcp4(), reply: { ...mirror(tcp4()), sport: 8443 } }, fast: true },
  { name: 'NAT of the reply destination port', entry: { family: 2, orig: tcp4(), reply: { ...mirror(tcp4()), dport: 1024 } }, fast: true },
  { name: 'ports of 0 and 65535', entry: { family: 2, orig: tcp4(0, 65535), reply: mirror(tcp4(0, 65535)) }, fast: true },
  {
    name: 'UDP over IPv6 with a zone',
    entry: { family: 10, orig: { ...tcp6, proto: 17 }, reply: mirror({ ...tcp6, proto: 17 }), zone: 65535, timeout: 30 },
    fast: true,
  },
  { name: 'TCP over IPv6, NATed', entry: { family: 10, orig: tcp6, reply: { ...mirror(tcp6), src: '2001:db8::9' } }, fast: true },
  {
    name: 'ICMP echo, the reply an echo reply',
    entry: {
      family: 2,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 0x1234 },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 0x1234 },
    },
    fast: true,
  },
  {
    name: 'ICMP timestamp request (13 → 14), code 5',
    entry: {
      family: 2,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 13, icmpCode: 5, icmpId: 0xffff },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 14, icmpCode: 5, icmpId: 0xffff },
    },
    fast: true,
  },
  {
    name: 'ICMP echo whose reply keeps the request type (not the mirror)',
    entry: {
      family: 2,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 1 },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 1 },
    },
    fast: true,
  },
  {
    name: 'ICMP with another id in the reply',
    entry: {
      family: 2,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 1 },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 2 },
    },
    fast: true,
  },
  {
    name: 'ICMP with another code in the reply',
    entry: {
      family: 2,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 3, icmpCode: 1, icmpId: 0 },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 3, icmpCode: 2, icmpId: 0 },
    },
    fast: true,
  },
  {
    name: 'ICMPv6 echo (128 → 129)',
    entry: {
      family: 10,
      orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 58, icmpType: 128, icmpCode: 0, icmpId: 77 },
      reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 58, icmpType: 129, icmpCode: 0, icmpId: 77 },
    },
    fast: true,
  },
  {
    name: 'ICMPv6 type 1 (no inverse) mirrored as itself',
    entry: {
      family: 10,
      orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 58, icmpType: 1, icmpCode: 4, icmpId: 0 },
      reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 58, icmpType: 1, icmpCode: 4, icmpId: 0 },
    },
    fast: true,
  },
  {
    name: 'ICMP type 8 over protocol 58 is not inverted',
    entry: {
      family: 10,
      orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 58, icmpType: 8, icmpCode: 0, icmpId: 3 },
      reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 58, icmpType: 8, icmpCode: 0, icmpId: 3 },
    },
    fast: true,
  },
  {
    name: 'GRE: no ports, protocol 47',
    entry: { family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 47 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 47 }, mark: 1 },
    fast: true,
  },
  {
    name: 'protocol 0',
    entry: { family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 0 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', proto: 0 } },
    fast: true,
  },
  {
    name: 'SCTP protoinfo (not in the words: the entry’s path)',
    entry: { family: 2, orig: { ...tcp4(), proto: 132 }, reply: mirror({ ...tcp4(), proto: 132 }), protoinfo: { sctp: { state: 3, vtagOrig: 1 } } },
    fast: false,
  },
  {
    name: 'a helper (an extra: the entry’s path)',
    entry: { family: 2, orig: tcp4(), reply: mirror(tcp4()), helper: 'ftp', protoinfo: { tcp: { state: 3 } } },
    fast: false,
  },
];

function bytes(m: WireMessage): string {
  const w = new ProtoWriter(4096);
  try {
    writeMessage(w, m);
  } catch (e) {
    return e instanceof RangeError ? `RangeError: ${e.message}` : String(e);
  }
  return w.buf.subarray(0, w.pos).toString('hex');
}

function record(e: ConntrackEntry, pool = new RecordPool()): { rec: EntryRecord; whole: ConntrackEntry } {
  const compactor = new EntryCompactor();
  const r = recordBuf(1);
  const x = writeEntryRecord(e, r, 0, (v) => compactor.entry(v));
  if (x === false) throw new Error('no record for this entry');
  return { rec: pool.copy(r.w, 0, x), whole: compactor.entry(e) };
}

describe('EntryRecord on the wire, one shape per row', () => {
  // Deletes carry entry objects only (WireMessage), so new and update.
  it.each(rows)('$name: the same bytes as the entry, for new and update', ({ entry, fast }) => {
    const { rec, whole } = record(entry);
    expect(rec.x === undefined && (rec.w[rec.at + W_FLAGS]! & F_WHOLE) === 0).toBe(fast);
    for (const kind of ['ct-new', 'ct-update'] as const) {
      const want = bytes({ kind, seq: 5, entry: whole });
      expect(want).not.toMatch(/^RangeError/);
      expect(bytes({ kind, seq: 5, entry: rec })).toBe(want);
    }
  });

  it('a record at another offset of its buffer writes its own words', () => {
    const pool = new RecordPool();
    const a = record(rows[0]!.entry, pool);
    const b = record(rows[3]!.entry, pool);
    expect(b.rec.at).toBe(a.rec.at + REC_WORDS);
    expect(bytes({ kind: 'ct-new', seq: 1, entry: b.rec })).toBe(bytes({ kind: 'ct-new', seq: 1, entry: b.whole }));
  });

  it('a TCP state the wire cannot carry is refused the same way from the record', () => {
    const e: ConntrackEntry = { family: 2, orig: tcp4(), reply: mirror(tcp4()), protoinfo: { tcp: { state: 12 } } };
    const { rec, whole } = record(e);
    const want = bytes({ kind: 'ct-new', seq: 1, entry: whole });
    expect(want).toBe('RangeError: tcp.state: 12 is not a state below 10');
    expect(bytes({ kind: 'ct-new', seq: 1, entry: rec })).toBe(want);
  });
});

describe('reading entries as records, one shape per row', () => {
  const enc = (entries: ConntrackEntry[]): Buffer => {
    const d = new DatagramEncoder({ cluster: 7, node: 'fw1', epoch: 1, mtu: 65_000 });
    entries.forEach((entry, i) => expect(d.add({ kind: i % 2 === 0 ? 'ct-new' : 'ct-update', seq: i + 1, entry })).toBe(true));
    return d.flush()!;
  };

  it.each(rows)('$name: the record holds what writeEntryRecord makes of the object read', ({ entry }) => {
    const buf = enc([entry, entry]);
    const objects = decodeDatagram(buf, { cluster: 7 });
    const records = decodeDatagram(buf, { cluster: 7, records: true });
    if (!objects.ok || !records.ok) throw new Error('decode failed');
    expect(records.messages.map((m) => m.kind)).toEqual(['ct-new', 'ct-update']);
    records.messages.forEach((m, i) => {
      const o = objects.messages[i] as { entry: ConntrackEntry };
      const want = recordBuf(1);
      const x = writeEntryRecord(o.entry, want, 0);
      const got = (m as { entry: ConntrackEntry | EntryRecord }).entry;
      if (x === undefined && (want.w[W_FLAGS]! & F_WHOLE) === 0) {
        expect(got).toBeInstanceOf(EntryRecord);
        const r = got as EntryRecord;
        expect([...r.w.subarray(r.at, r.at + REC_WORDS)]).toEqual([...want.w]);
        expect(r.entry()).toEqual(o.entry);
      } else {
        expect(got).toEqual(o.entry);
      }
    });
  });
});
