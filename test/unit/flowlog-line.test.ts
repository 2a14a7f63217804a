// The flow log's byte encoder (src/flowlog/line-encoder.ts) against the
// object path it stands in for, flowLine(decodeConntrack(...)): the same
// line, byte for byte, on every kernel fixture, on random entries and on
// damaged messages; and the file sink taking lines as bytes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/cache/filter.js';
import { FileSink, FlowLog, flowLine } from '../../src/flowlog/index.js';
import { FlowLineEncoder, LINE_FILTERED, LINE_PUNT, msFromNs, writeIso, writeUint } from '../../src/flowlog/line-encoder.js';
import type { EventType } from '../../src/kernel/conntrack-events.js';
import { AF_INET, AF_INET6, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK } from '../../src/kernel/constants.js';
import { decodeConntrack, encodeConntrack } from '../../src/kernel/ct-codec.js';
import type { ConntrackEntry, Tuple } from '../../src/kernel/entry.js';
import { type NlMessage, NlWriter, parseNetlink } from '../../src/kernel/netlink-codec.js';
import { silentLogger } from '../../src/log.js';
import { corpus, entryArb, mutate, mutation, u16, u32, u64, u8, v4, v6 } from './ct-arbitraries.js';
import { atLeast, runs } from './fc-runs.js';

const SEED = Number(process.env.FC_SEED ?? 20261209);
const KINDS: EventType[] = ['new', 'update', 'destroy'];

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The message's bytes as the event socket hands them over: header and payload. */
function raw(m: NlMessage): Buffer {
  const b = Buffer.alloc(16 + m.payload.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(m.type, 4);
  b.writeUInt16LE(m.flags, 6);
  m.payload.copy(b, 16);
  return b;
}

function eventOf(e: ConntrackEntry, kind: EventType): Buffer {
  const w = new NlWriter(1024);
  w.begin((NFNL_SUBSYS_CTNETLINK << 8) | (kind === 'destroy' ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW), 0, 0, e.family);
  encodeConntrack(w, e, { readOnly: true, layout: 'event' });
  w.end();
  return Buffer.from(w.finish());
}

const encoder = new FlowLineEncoder();

/**
 * The encoder's promise on one message: it punts, or the object decoder
 * accepts the message and flowLine gives the very same bytes. Framed inside
 * a larger buffer, as the queue hands messages over.
 */
function agree(kind: EventType, msg: Buffer, now: number): 'fast' | 'punt' {
  const framed = Buffer.concat([Buffer.alloc(8, 0xa5), msg, Buffer.alloc(8, 0x5a)]);
  const n = encoder.encode(kind, framed, 8, msg.length, now);
  if (n === LINE_PUNT) return 'punt';
  expect(n).toBeGreaterThan(0);
  const d = decodeConntrack(parseNetlink(msg).messages[0]!);
  expect(d.ok).toBe(true);
  if (!d.ok) throw new Error('unreachable');
  expect(encoder.out.toString('latin1', 0, n)).toBe(flowLine(kind, d.value, now));
  return 'fast';
}

/** A tuple of the common shape: the protocol's ports, or ICMP's type, code and id (each may be absent). */
function plainTuple(family: number, proto: number): fc.Arbitrary<Tuple> {
  const a = family === AF_INET ? v4 : v6;
  if (proto === 1 || proto === 58) {
    return fc.record({ src: a, dst: a, proto: fc.constant(proto), icmpType: u8, icmpCode: u8, icmpId: u16 }, { requiredKeys: ['src', 'dst', 'proto'] });
  }
  return fc.record({ src: a, dst: a, proto: fc.constant(proto), sport: u16, dport: u16 }, { requiredKeys: ['src', 'dst', 'proto'] });
}

/** Entries of the common shape, with the fields only the flow log reads (id, counters, timestamps). */
const ns = fc.oneof(u64, fc.bigInt({ min: 0n, max: 253_402_300_799_999n * 1_000_000n }));
const plain: fc.Arbitrary<ConntrackEntry> = fc
  .tuple(fc.constantFrom(AF_INET, AF_INET6), fc.constantFrom(6, 17, 1, 47, 250))
  .chain(([family, p]) => {
    const proto = family === AF_INET6 && p === 1 ? 58 : p;
    // Both tuples of one shape, as the kernel sends them (a NATed or a mirrored one alike).
    const t = proto === 47 || proto === 250 ? fc.record({ src: family === AF_INET ? v4 : v6, dst: family === AF_INET ? v4 : v6, proto: fc.constant(proto) }) : plainTuple(family, proto);
    return fc.record(
      {
        family: fc.constant(family as 2 | 10),
        orig: t,
        reply: t,
        status: u32,
        timeout: u32,
        mark: u32,
        zone: u16,
        id: u32,
        use: u32,
        protoinfo: proto === 6 ? fc.record({ tcp: fc.record({ state: u8, wscaleOrig: u8 }, { requiredKeys: ['state'] }) }) : fc.constant(undefined),
        countersOrig: fc.record({ packets: u64, bytes: u64 }),
        countersReply: fc.record({ packets: fc.oneof(u64, fc.bigInt({ min: 0n, max: 1000n })), bytes: u64 }),
        timestamp: fc.record({ start: ns, stop: ns }, { requiredKeys: [] }),
      },
      { requiredKeys: ['family', 'orig', 'reply'] },
    );
  })
  .map((e) => {
    if (e.protoinfo === undefined) delete e.protoinfo;
    return e;
  });

describe('FlowLineEncoder: the same line as the object path', () => {
  it('on every conntrack message of the kernel fixtures, each kind of event', () => {
    let fast = 0;
    let all = 0;
    for (const buf of corpus) {
      for (const m of parseNetlink(buf).messages) {
        if (m.type >> 8 !== NFNL_SUBSYS_CTNETLINK || (m.type & 0xff) > IPCTNL_MSG_CT_DELETE) continue;
        for (const kind of KINDS) {
          all++;
          if (agree(kind, raw(m), 1_765_000_000_123) === 'fast') fast++;
        }
      }
    }
    // The fixtures are mostly of the common shape.
    expect(all).toBeGreaterThan(30);
    expect(fast).toBeGreaterThan(all / 2);
  });

  it('on random entries of the common shape, IPv4 and IPv6 (10,000)', () => {
    let fast = 0;
    fc.assert(
      fc.property(plain, fc.constantFrom(...KINDS), fc.integer({ min: 0, max: 253_402_300_799_999 }), (e, kind, now) => {
        if (agree(kind, eventOf(e, kind), now) === 'fast') fast++;
      }),
      { numRuns: runs(10_000), seed: SEED },
    );
    expect(fast).toBeGreaterThan(atLeast(5_000));
  });

  it('on random entries with every rare field (punted or equal; 5,000)', () => {
    fc.assert(
      fc.property(entryArb, fc.constantFrom(...KINDS), (e, kind) => {
        agree(kind, eventOf(e, kind), 0);
      }),
      { numRuns: runs(5_000), seed: SEED + 1 },
    );
  });

  it('never throws and never writes a line the object decoder would not, on mutated fixtures (20,000)', () => {
    const cts = corpus.filter((b) => parseNetlink(b).messages.some((m) => m.type >> 8 === NFNL_SUBSYS_CTNETLINK));
    fc.assert(
      fc.property(fc.nat({ max: cts.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
        const b = mutate(cts[i]!, ms);
        if (b.length >= 16) b.writeUInt32LE(b.length, 0);
        for (const m of parseNetlink(b).messages) if (m.type >> 8 === NFNL_SUBSYS_CTNETLINK) agree('new', raw(m), 0);
      }),
      { numRuns: runs(20_000), seed: SEED + 2 },
    );
  });

  it('punts what is too short to hold a message', () => {
    const b = Buffer.alloc(19);
    expect(encoder.encode('new', b, 0, 19, 0)).toBe(LINE_PUNT);
  });

  it("the filter's record form: what it rejects is not written", () => {
    const filter = compileFilter(
      { protocols: { ignore: [] }, addresses: { ignore: ['10.99.1.3/32'] }, tcpStates: { ignore: [] } },
      [],
    );
    const enc = new FlowLineEncoder((r, at) => filter.checkRecord(r, at, undefined).pass);
    const e = (n: number): ConntrackEntry => ({
      family: AF_INET,
      orig: { src: `10.99.1.${n}`, dst: '198.51.100.9', proto: 6, sport: 50000, dport: 443 },
      reply: { src: '198.51.100.9', dst: '203.0.113.7', proto: 6, sport: 443, dport: 40000 },
      protoinfo: { tcp: { state: 3 } },
    });
    const one = eventOf(e(1), 'new');
    const three = eventOf(e(3), 'new');
    expect(enc.encode('new', one, 0, one.length, 0)).toBeGreaterThan(0);
    expect(enc.encode('new', three, 0, three.length, 0)).toBe(LINE_FILTERED);
  });
});

describe('FlowLineEncoder: numbers and times', () => {
  it('writeIso is toISOString for every millisecond of years 1970..9999, and beyond', () => {
    const b = Buffer.alloc(40);
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 253_402_300_799_999 }), fc.integer({ min: -8.64e15, max: 8.64e15 }), fc.double({ min: 0, max: 2e12, noNaN: true })), (ms) => {
        const n = writeIso(b, 0, ms);
        expect(b.toString('latin1', 0, n)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: runs(20_000), seed: SEED + 3 },
    );
    for (const ms of [0, 951_782_400_000, 253_402_300_799_999, 253_402_300_800_000, 1_765_000_000_999]) {
      expect(b.toString('latin1', 0, writeIso(b, 0, ms))).toBe(new Date(ms).toISOString());
    }
  });

  it('msFromNs is floor(ns / 10^6) for every u64, without BigInt', () => {
    fc.assert(
      fc.property(u64, (ns) => {
        expect(msFromNs(Number(ns >> 32n), Number(ns & 0xffff_ffffn))).toBe(Number(ns / 1_000_000n));
      }),
      { numRuns: runs(20_000), seed: SEED + 4 },
    );
  });

  it('writeUint writes the decimal digits of every integer below 2^53', () => {
    const b = Buffer.alloc(20);
    fc.assert(
      fc.property(fc.maxSafeNat(), (v) => {
        expect(b.toString('latin1', 0, writeUint(b, 0, v))).toBe(String(v));
      }),
      { numRuns: runs(10_000), seed: SEED + 5 },
    );
  });
});

describe('FileSink: lines as bytes and as strings, in order', () => {
  it('keeps the order of both kinds of write across chunks, and writes every byte', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-fll-'));
    dirs.push(dir);
    const path = join(dir, 'flows.jsonl');
    const sink = new FileSink({ path, durability: 'buffered', log: silentLogger });
    await sink.open();
    const want: string[] = [];
    const b = Buffer.alloc(3000);
    for (let i = 0; i < 400; i++) {
      // Lines of up to ~2,700 bytes: several 256 KiB chunks per flush, and some a chunk's tail cannot hold.
      const line = `{"i":${i},"pad":"${'x'.repeat((i * 37) % 2700)}","é":"ü"}`;
      want.push(line);
      if (i % 2 === 0) sink.write(line);
      else sink.writeBytes(b, b.write(line, 0, 'utf8'));
      expect(sink.pendingBytes).toBeGreaterThan(0);
      if (i % 150 === 149) await sink.flush();
    }
    await sink.close();
    expect(readFileSync(path, 'utf8')).toBe(`${want.join('\n')}\n`);
    expect(sink.counters.written).toBe(400);
  });
});

describe('FileSink: buffered lines go out once a megabyte waits, not only at the interval', () => {
  it('starts a write by itself past 1 MiB pending, and not before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-fll-'));
    dirs.push(dir);
    const path = join(dir, 'flows.jsonl');
    const sink = new FileSink({ path, durability: 'buffered', log: silentLogger });
    await sink.open();
    const line = Buffer.from('x'.repeat(1023));
    for (let i = 0; i < 1023; i++) sink.writeBytes(line, line.length);
    await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(path).length).toBe(0);
    sink.writeBytes(line, line.length);
    expect(sink.pendingBytes).toBe(0);
    // The count follows the write's completion, which can come after the bytes are in the file: wait for it.
    for (let i = 0; i < 200 && sink.counters.written < 1024; i++) await new Promise((r) => setTimeout(r, 10));
    expect(sink.counters.written).toBe(1024);
    expect(readFileSync(path).length).toBe(1024 * 1024);
    await sink.close();
  });
});

describe('FlowLog: the byte path', () => {
  it('writes the object path line when the file is the only output; with an object filter alone it keeps to the object path', () => {
    const lines: string[] = [];
    const sink = {
      pendingBytes: 0,
      write: (l: string) => void lines.push(`s:${l}`),
      writeBytes: (b: Buffer, n: number) => void lines.push(`b:${b.toString('latin1', 0, n)}`),
      flush: () => Promise.resolve(),
    };
    const e: ConntrackEntry = {
      family: AF_INET6,
      orig: { src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 5353, dport: 53 },
      reply: { src: '2001:db8::2', dst: '2001:db8::1', proto: 17, sport: 53, dport: 5353 },
      id: 7,
    };
    const msg = eventOf(e, 'new');
    const runsOf: Array<() => void> = [];
    const mk = (accept?: (x: ConntrackEntry) => boolean) =>
      new FlowLog({ events: ['new'], queueBytes: 4096, sink, flushEachBatch: false, now: () => 5, schedule: (f) => runsOf.push(f), log: silentLogger, accept });
    for (const fl of [mk(), mk(() => true)]) {
      fl.onConntrackMessage('new', msg, 0, msg.length);
      runsOf.splice(0).forEach((f) => f());
    }
    const d = decodeConntrack(parseNetlink(msg).messages[0]!);
    if (!d.ok) throw new Error(d.error.reason);
    const text = flowLine('new', d.value, 5);
    expect(lines).toEqual([`b:${text}`, `s:${text}`]);
  });
});
