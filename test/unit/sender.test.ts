// The sender packs the common item (a new, update or bulk item of a numeric
// handle) into one integer and tracks its pending position by handle; other
// handles go as objects. Both must behave exactly alike: the same merges,
// the same messages, seqs and datagrams, and the same sequenced bytes handed
// to the reliability layer as the messages it would have been given.
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';
import { type EntryHandle, type QueueKind, SyncSender } from '../../src/sync/engine/sender.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import { decodeDatagram } from '../../src/sync/wire/datagram-decoder.js';
import { decodeMessageField, ProtoWriter, writeMessage } from '../../src/sync/wire/proto-codec.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { runs } from './fc-runs.js';
import { typicalTcpEntry } from './wire-helpers.js';

const SEED = Number(process.env.FC_SEED ?? 20261206);

/** Entry k as its version-th change left it. */
function entry(k: number, version: number): ConntrackEntry {
  return { ...typicalTcpEntry(k), timeout: 100 + version };
}

type Op =
  | { op: 'change'; k: number; kind: QueueKind }
  | { op: 'bulk'; ks: number[] }
  | { op: 'control' }
  | { op: 'flush'; room: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ op: fc.constant('change' as const), k: fc.integer({ min: 0, max: 40 }), kind: fc.constantFrom<QueueKind>('new', 'update', 'delete') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('bulk' as const), ks: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 10 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'control' as const }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('flush' as const), room: fc.integer({ min: 0, max: 30 }) }) },
);

interface Run {
  datagrams: string[];
  sequenced: string[];
  counters: unknown;
}

function bytesOf(m: WireMessage): string {
  const w = new ProtoWriter(4096);
  writeMessage(w, m);
  return w.buf.toString('hex', 0, w.pos);
}

/** Runs ops against a sender whose handles are made by `handle`; what it sent. */
function run(ops: Op[], handle: (k: number) => EntryHandle, bytes: boolean): Run {
  // The local table: key → version (a change bumps it), undefined once deleted.
  const table = new Map<EntryHandle, number>();
  const datagrams: string[] = [];
  const sequenced: string[] = [];
  let pending: (() => void) | undefined;
  let room = Number.POSITIVE_INFINITY;
  let version = 0;
  const sender = new SyncSender({
    encoder: new DatagramEncoder({ cluster: 1, node: 'a', epoch: 9, mtu: 600 }),
    send: (buf) => {
      const d = decodeDatagram(buf, { cluster: 1 });
      if (!d.ok) throw new Error(d.error.reason);
      datagrams.push(d.messages.map(bytesOf).join(','));
    },
    lookup: (key) => {
      const v = table.get(key);
      return v === undefined ? undefined : entry(Number(String(key).replace('k', '')), v);
    },
    firstSeq: 0xffff_fff0,
    sliceMessages: 7,
    schedule: (fn) => {
      pending = fn;
    },
    room: () => room,
    onSequenced: (m) => {
      room--;
      sequenced.push(bytesOf(m));
    },
    ...(bytes
      ? {
          onSequencedBytes: (seq: number, buf: Buffer, start: number, end: number) => {
            room--;
            const m = decodeMessageField(buf, start, end);
            expect(m).toMatchObject({ seq });
            sequenced.push(buf.toString('hex', start, end));
          },
        }
      : {}),
  });
  const drain = (): void => {
    for (let i = 0; i < 1000 && pending; i++) {
      const fn = pending;
      pending = undefined;
      fn();
    }
  };
  for (const o of ops) {
    if (o.op === 'change') {
      const key = handle(o.k);
      const had = table.get(key);
      if (o.kind === 'delete') {
        if (had === undefined) continue;
        table.delete(key);
        sender.enqueue(key, 'delete', entry(o.k, had));
      } else {
        table.set(key, ++version);
        sender.enqueue(key, had === undefined ? 'new' : o.kind);
      }
    } else if (o.op === 'bulk') {
      sender.enqueueBulk(o.ks.map(handle).filter((k) => table.has(k)));
    } else if (o.op === 'control') {
      sender.enqueueControl((seq) => ({ kind: 'bulk-start', seq, bulkId: 3, peer: '' }), true);
    } else {
      room = o.room;
      drain();
      room = Number.POSITIVE_INFINITY;
      sender.resume();
    }
  }
  drain();
  return { datagrams, sequenced, counters: { ...sender.counters } };
}

describe('SyncSender', () => {
  it('sends the same as packed items and as object items, merges and flow control included (2,000 runs)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
        const packed = run(ops, (k) => k, true);
        const objects = run(ops, (k) => `k${k}`, true);
        const messages = run(ops, (k) => k, false);
        expect(packed.datagrams).toEqual(objects.datagrams);
        expect(packed.sequenced).toEqual(objects.sequenced);
        expect(packed.counters).toEqual(objects.counters);
        // Bytes handed over are the bytes of the messages the other way hands over.
        expect(packed.sequenced).toEqual(messages.sequenced);
        expect(packed.datagrams).toEqual(messages.datagrams);
      }),
      { seed: SEED, numRuns: runs(2000) },
    );
  });

  it('merges a change into the pending one: new+update is new, update+new is new, anything+delete is the delete', () => {
    const cases: Array<[QueueKind[], string[]]> = [
      [['new', 'update'], ['ct-new']],
      [['update', 'update'], ['ct-update']],
      [['update', 'new'], ['ct-new']],
      [['new', 'delete'], ['ct-delete']],
      [['update', 'delete', 'new'], ['ct-delete', 'ct-new']],
      [['new', 'update', 'update'], ['ct-new']],
      [['delete', 'new'], ['ct-delete', 'ct-new']],
      [['delete', 'update'], ['ct-delete', 'ct-update']],
    ];
    for (const [kinds, want] of cases) {
      for (const key of [7, 'k7'] as EntryHandle[]) {
        const sent: string[] = [];
        let pending: (() => void) | undefined;
        const sender = new SyncSender({
          encoder: new DatagramEncoder({ cluster: 1, node: 'a', epoch: 9, mtu: 1400 }),
          send: (buf) => {
            const d = decodeDatagram(buf, { cluster: 1 });
            if (d.ok) for (const m of d.messages) sent.push(m.kind);
          },
          lookup: () => entry(7, 1),
          firstSeq: 1,
          schedule: (fn) => {
            pending = fn;
          },
        });
        for (const k of kinds) sender.enqueue(key, k, k === 'delete' ? entry(7, 1) : undefined);
        pending?.();
        expect(sent, `${kinds.join('+')} for ${typeof key} handle`).toEqual(want);
        expect(sender.counters.merged).toBe(kinds.length - want.length);
      }
    }
  });
});

// Direct tables: exact messages, seqs, datagrams and counters for each path
// of the sender, where the property above only compares the two item forms
// with each other (a bug in both passes it).

const EXP: ExpectEntry = {
  family: 2,
  master: { src: '10.92.0.1', dst: '10.92.0.2', proto: 6, sport: 40000, dport: 21 },
  tuple: { src: '10.92.0.2', dst: '10.92.0.1', proto: 6, sport: 0, dport: 50000 },
  mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 6, sport: 0, dport: 0xffff },
  timeout: 300,
};

interface Bench {
  sender: SyncSender;
  /** Entries by handle; the entry's mark names it in what was sent. */
  table: Map<EntryHandle, ConntrackEntry>;
  expects: Map<string, ExpectEntry>;
  /** One string per datagram: its messages as kind:seq:mark (the last octet of the source; the timeout for expectations). */
  readonly datagrams: string[];
  /** The datagrams as sent, decoded only when read (the long test sends 65k messages). */
  raw: Buffer[];
  looked: EntryHandle[];
  sequenced: string[];
  bytesSeqs: number[];
  schedules: number;
  /** Runs the flushes scheduled so far, one at a time; how many messages each sent. */
  drain(): number[];
  put(key: EntryHandle, mark: number): ConntrackEntry;
}

function describeMessage(m: WireMessage): string {
  // A delete carries the tuple only: entries are told apart by their source address (typicalTcpEntry(mark)).
  if (m.kind === 'ct-new' || m.kind === 'ct-update' || m.kind === 'ct-delete') {
    return `${m.kind}:${m.seq}:${(m.entry as ConntrackEntry).orig.src.split('.')[3]}`;
  }
  if (m.kind === 'exp-new' || m.kind === 'exp-delete') return `${m.kind}:${m.seq}:${m.entry.timeout}`;
  return 'seq' in m ? `${m.kind}:${m.seq}` : m.kind;
}

function describeDatagram(buf: Buffer): string {
  const d = decodeDatagram(buf, { cluster: 1 });
  if (!d.ok) throw new Error(d.error.reason);
  return d.messages.map(describeMessage).join(' ');
}

function bench(o: { room?: () => number; slice?: number; mtu?: number; bytes?: boolean; firstSeq?: number } = {}): Bench {
  const table = new Map<EntryHandle, ConntrackEntry>();
  const expects = new Map<string, ExpectEntry>();
  const raw: Buffer[] = [];
  const looked: EntryHandle[] = [];
  const sequenced: string[] = [];
  const bytesSeqs: number[] = [];
  const queue: Array<() => void> = [];
  const b: Bench = {
    sender: undefined as unknown as SyncSender,
    table,
    expects,
    get datagrams() {
      return raw.map(describeDatagram);
    },
    raw,
    looked,
    sequenced,
    bytesSeqs,
    schedules: 0,
    drain: () => {
      const per: number[] = [];
      for (let i = 0; i < 100 && queue.length > 0; i++) {
        const before = b.sender.counters.messagesSent;
        queue.shift()!();
        per.push(b.sender.counters.messagesSent - before);
      }
      return per;
    },
    put: (key, mark) => {
      const e = { ...typicalTcpEntry(mark), mark };
      table.set(key, e);
      return e;
    },
  };
  b.sender = new SyncSender({
    encoder: new DatagramEncoder({ cluster: 1, node: 'a', epoch: 9, mtu: o.mtu ?? 1400 }),
    send: (buf) => raw.push(buf),
    lookup: (key) => {
      looked.push(key);
      return table.get(key);
    },
    lookupExpect: (key) => expects.get(key),
    firstSeq: o.firstSeq ?? 10,
    ...(o.slice === undefined ? {} : { sliceMessages: o.slice }),
    schedule: (fn) => {
      b.schedules++;
      queue.push(fn);
    },
    ...(o.room === undefined ? {} : { room: o.room }),
    onSequenced: (m) => sequenced.push(describeMessage(m)),
    ...(o.bytes
      ? {
          onSequencedBytes: (seq: number, buf: Buffer, start: number, end: number) => {
            expect(decodeMessageField(buf, start, end)).toMatchObject({ seq });
            bytesSeqs.push(seq);
          },
        }
      : {}),
  });
  return b;
}

const HANDLES: Array<[string, (k: number) => EntryHandle]> = [
  ['packed', (k) => k],
  ['object', (k) => `k${k}`],
];

describe('SyncSender, exactly', () => {
  for (const [form, h] of HANDLES) {
    it(`${form}: sends new, update and delete once each, numbered from firstSeq, in one datagram`, () => {
      const b = bench();
      b.put(h(1), 1);
      b.put(h(2), 2);
      const gone = { ...typicalTcpEntry(3), mark: 3 };
      b.sender.enqueue(h(1), 'new');
      b.sender.enqueue(h(2), 'update');
      b.sender.enqueue(h(3), 'delete', gone);
      expect(b.sender.length).toBe(3);
      expect(b.schedules).toBe(1);
      expect(b.drain()).toEqual([3]);
      expect(b.datagrams).toEqual(['ct-new:10:1 ct-update:11:2 ct-delete:12:3']);
      expect(b.sequenced).toEqual(['ct-new:10:1', 'ct-update:11:2', 'ct-delete:12:3']);
      expect(b.sender.counters).toEqual({ queued: 3, merged: 0, messagesSent: 3, datagramsSent: 1, vanished: 0, unencodable: 0 });
      expect(b.sender.nextSeq).toBe(13);
      expect(b.sender.length).toBe(0);
    });

    it(`${form}: merges again after a flush, and a delete after the change went out is sent`, () => {
      const b = bench();
      const e = b.put(h(5), 5);
      for (let round = 0; round < 3; round++) {
        b.sender.enqueue(h(5), 'new');
        b.sender.enqueue(h(5), 'update');
        b.drain();
      }
      b.table.delete(h(5));
      b.sender.enqueue(h(5), 'delete', e);
      b.drain();
      expect(b.datagrams).toEqual(['ct-new:10:5', 'ct-new:11:5', 'ct-new:12:5', 'ct-delete:13:5']);
      expect(b.sender.counters).toMatchObject({ queued: 4, merged: 3, messagesSent: 4, datagramsSent: 4 });
    });

    it(`${form}: a change of an entry gone before the flush is counted as vanished and takes no seq`, () => {
      const b = bench();
      b.put(h(2), 2);
      b.sender.enqueue(h(1), 'new');
      b.sender.enqueue(h(2), 'new');
      b.drain();
      expect(b.datagrams).toEqual(['ct-new:10:2']);
      expect(b.sender.counters).toMatchObject({ messagesSent: 1, vanished: 1 });
    });

    it(`${form}: a delete without the gone entry sends nothing and takes no seq`, () => {
      const b = bench();
      b.put(h(2), 2);
      b.sender.enqueue(h(1), 'delete');
      b.sender.enqueue(h(2), 'new');
      b.drain();
      expect(b.datagrams).toEqual(['ct-new:10:2']);
      expect(b.sender.counters).toMatchObject({ messagesSent: 1, vanished: 0, queued: 2 });
    });

    it(`${form}: an item sent out of a bulk does not end the pending change of the same key`, () => {
      let room = 1;
      const b = bench({ room: () => room });
      b.put(h(5), 5);
      b.sender.enqueueBulk([h(5)]);
      b.sender.enqueue(h(5), 'update');
      b.drain();
      expect(b.sender.length).toBe(1);
      // Still pending: merged into.
      b.sender.enqueue(h(5), 'update');
      room = 10;
      b.sender.resume();
      b.drain();
      expect(b.datagrams).toEqual(['ct-update:10:5', 'ct-update:11:5']);
      expect(b.sender.counters.merged).toBe(1);
    });

    it(`${form}: a delete sent does not end a later pending change of the key`, () => {
      let room = 1;
      const b = bench({ room: () => room });
      const e = b.put(h(5), 5);
      b.sender.enqueue(h(5), 'new');
      b.sender.enqueue(h(5), 'delete', e);
      b.sender.enqueue(h(5), 'new');
      b.drain();
      expect(b.datagrams).toEqual(['ct-delete:10:5']);
      b.sender.enqueue(h(5), 'update');
      room = 10;
      b.sender.resume();
      b.drain();
      expect(b.datagrams).toEqual(['ct-delete:10:5', 'ct-new:11:5']);
      expect(b.sender.counters).toMatchObject({ merged: 2, messagesSent: 2 });
    });
  }

  it('packs only integer handles from 0 to 2^28 - 1; any other handle works as well', () => {
    const keys: EntryHandle[] = [0, 7, 1023, 1024, 2048, 5000, 2 ** 32 + 5, -3, 2.5, 'k'];
    const b = bench();
    keys.forEach((k, i) => b.put(k, i + 1));
    for (const k of keys) b.sender.enqueue(k, 'new');
    for (const k of keys) b.sender.enqueue(k, 'update');
    b.drain();
    expect(b.looked).toEqual(keys);
    expect(b.datagrams).toEqual([keys.map((_, i) => `ct-new:${10 + i}:${i + 1}`).join(' ')]);
    expect(b.sender.counters).toMatchObject({ queued: keys.length, merged: keys.length, messagesSent: keys.length });
  });

  it('a bulk carries every key as an update, never merged, then its expectations as new', () => {
    const b = bench();
    b.put(1, 1);
    b.put('k2', 2);
    b.expects.set('x', EXP);
    b.sender.enqueue(1, 'new');
    expect(b.sender.enqueueBulk([1, 'k2'], ['x'])).toBe(3);
    expect(b.sender.enqueueBulk([])).toBe(0);
    b.sender.enqueue(1, 'update');
    b.sender.enqueue('k2', 'update');
    b.drain();
    expect(b.datagrams).toEqual(['ct-new:10:1 ct-update:11:1 ct-update:12:2 exp-new:13:300 ct-update:14:2']);
    expect(b.sequenced).toEqual(['ct-new:10:1', 'ct-update:11:1', 'ct-update:12:2', 'exp-new:13:300', 'ct-update:14:2']);
    expect(b.sender.counters).toMatchObject({ queued: 5, merged: 1 });
  });

  it('expectations: new, merged changes, deletes, and ones gone before the flush', () => {
    const b = bench();
    b.expects.set('a', EXP);
    b.expects.set('b', { ...EXP, timeout: 301 });
    b.sender.enqueueExpect('a', 'update'); // no update on the wire: sent as new
    b.sender.enqueueExpect('a', 'update'); // merged
    b.sender.enqueueExpect('b', 'new');
    b.sender.enqueueExpect('b', 'delete', { ...EXP, timeout: 302 }); // merged into a delete
    b.sender.enqueueExpect('c', 'new'); // vanished
    b.sender.enqueueExpect('d', 'delete'); // no gone entry: nothing
    b.sender.enqueueExpect('e', 'delete', { ...EXP, timeout: 303 });
    expect(b.sender.length).toBe(5);
    b.drain();
    expect(b.datagrams).toEqual(['exp-new:10:300 exp-delete:11:302 exp-delete:12:303']);
    expect(b.sender.counters).toEqual({ queued: 5, merged: 2, messagesSent: 3, datagramsSent: 1, vanished: 1, unencodable: 0 });
    // Sent: the next change of the same expectation is a new item.
    b.sender.enqueueExpect('a', 'delete', EXP);
    b.sender.enqueueExpect('a', 'new');
    b.drain();
    expect(b.datagrams.at(-1)).toBe('exp-new:13:300');
    expect(b.sender.counters.merged).toBe(3);
  });

  it('an expectation and a conntrack entry of the same key are separate items', () => {
    const b = bench();
    b.put('a', 1);
    b.expects.set('a', EXP);
    b.sender.enqueue('a', 'new');
    b.sender.enqueueExpect('a', 'new');
    b.drain();
    expect(b.datagrams).toEqual(['ct-new:10:1 exp-new:11:300']);
    expect(b.sender.counters.merged).toBe(0);
  });

  it('room() bounds the sequenced messages of a flush; unsequenced controls and vanished items do not use it', () => {
    let room = 2;
    const b = bench({ room: () => room });
    b.put(1, 1);
    b.put(3, 3);
    b.put(4, 4);
    b.sender.enqueue(1, 'new');
    b.sender.enqueue(2, 'new'); // vanished
    b.sender.enqueueControl(() => ({ kind: 'challenge', peer: 'b', nonceHi: 1, nonceLo: 2 }), false);
    b.sender.enqueue(3, 'new');
    b.sender.enqueue(4, 'new');
    b.sender.enqueueControl((seq) => ({ kind: 'alive', seq }), false);
    expect(b.drain()).toEqual([3]);
    expect(b.datagrams).toEqual(['ct-new:10:1 challenge ct-new:11:3']);
    expect(b.sender.length).toBe(2);
    // Out of room: an unsequenced control at the head would still go, a sequenced item waits.
    room = 0;
    b.sender.resume();
    expect(b.drain()).toEqual([0]);
    room = 5;
    b.sender.resume();
    expect(b.drain()).toEqual([2]);
    expect(b.datagrams.at(-1)).toBe('ct-new:12:4 alive:13');
    expect(b.sequenced).toEqual(['ct-new:10:1', 'ct-new:11:3', 'ct-new:12:4']);
    expect(b.sender.counters).toMatchObject({ messagesSent: 5, vanished: 1, queued: 6 });
  });

  it('an unsequenced control goes out at zero room and takes no seq', () => {
    const b = bench({ room: () => 0 });
    b.sender.enqueueControl((seq) => ({ kind: 'alive', seq }), false);
    b.sender.enqueueControl((seq) => ({ kind: 'alive', seq }), false);
    b.drain();
    expect(b.datagrams).toEqual(['alive:10 alive:10']);
    expect(b.sender.nextSeq).toBe(10);
    expect(b.sequenced).toEqual([]);
  });

  it('resume() schedules a flush only while something waits; one flush is scheduled at a time', () => {
    const b = bench({ room: () => 0 });
    b.sender.resume();
    expect(b.schedules).toBe(0);
    b.put(1, 1);
    b.sender.enqueue(1, 'new');
    b.sender.enqueueControl((seq) => ({ kind: 'bulk-start', seq, bulkId: 1, peer: '' }), true);
    b.sender.resume();
    expect(b.schedules).toBe(1);
    b.drain();
    expect(b.sender.length).toBe(2);
    b.sender.resume();
    b.sender.resume();
    expect(b.schedules).toBe(2);
  });

  // [slice, items, messages per flush]
  const slices: Array<[number, number, number[]]> = [
    [3, 7, [3, 3, 1]],
    [1, 2, [1, 1]],
    [7, 7, [7]],
  ];
  for (const [slice, n, per] of slices) {
    it(`flushes ${n} items in slices of ${slice}: ${per.join(', ')}`, () => {
      const b = bench({ slice });
      for (let k = 0; k < n; k++) {
        b.put(k, k + 1);
        b.sender.enqueue(k, 'new');
      }
      expect(b.drain()).toEqual(per);
      expect(b.schedules).toBe(per.length);
      expect(b.sender.length).toBe(0);
    });
  }

  it('slices at 4096 messages by default', () => {
    const b = bench();
    const one = b.put(0, 1);
    for (let k = 0; k < 4097; k++) {
      b.table.set(k, one);
      b.sender.enqueue(k, 'update');
    }
    expect(b.drain()).toEqual([4096, 1]);
  });

  it('packs messages into as few datagrams as the MTU allows, splitting where one would not fit', () => {
    const b = bench({ mtu: 512 });
    const want: string[] = [];
    for (let k = 0; k < 12; k++) {
      b.put(k, k + 1);
      b.sender.enqueue(k, 'new');
      want.push(`ct-new:${10 + k}:${k + 1}`);
    }
    b.drain();
    const counts = b.datagrams.map((d) => d.split(' ').length);
    expect(counts.length).toBeGreaterThan(1);
    expect(b.datagrams.join(' ')).toBe(want.join(' '));
    expect(b.sender.counters.datagramsSent).toBe(b.datagrams.length);
    // Full datagrams: each but the last would not have taken the next message.
    const first = counts[0]!;
    expect(counts.slice(0, -1).every((c) => c === first)).toBe(true);
  });

  for (const bytes of [false, true]) {
    it(`an entry the wire cannot carry is counted and dropped, its seq given back (bytes ${bytes})`, () => {
      const b = bench({ bytes });
      b.put(1, 1);
      b.table.set(2, { ...typicalTcpEntry(2), mark: 2, orig: { ...typicalTcpEntry(2).orig, sport: 70_000 } });
      b.put(3, 3);
      for (const k of [1, 2, 3]) b.sender.enqueue(k, 'new');
      b.drain();
      expect(b.datagrams).toEqual(['ct-new:10:1 ct-new:11:3']);
      expect(b.sender.counters).toMatchObject({ messagesSent: 2, unencodable: 1, vanished: 0 });
      expect(b.sender.nextSeq).toBe(12);
      expect(bytes ? b.bytesSeqs : b.sequenced).toEqual(bytes ? [10, 11] : ['ct-new:10:1', 'ct-new:11:3']);
    });
  }

  it('an unencodable control message does not move the seq of the next', () => {
    const b = bench();
    b.put(1, 1);
    // A node id the wire refuses: RangeError at encoding.
    b.sender.enqueueControl(() => ({ kind: 'challenge', peer: 'bad id', nonceHi: 1, nonceLo: 2 }), false);
    b.sender.enqueue(1, 'new');
    b.drain();
    expect(b.datagrams).toEqual(['ct-new:10:1']);
    expect(b.sender.counters).toMatchObject({ unencodable: 1, messagesSent: 1 });
  });

  it('an unencodable control without a seq leaves seq 0 as the next', () => {
    const b = bench({ firstSeq: 0 });
    b.put(1, 1);
    b.sender.enqueueControl(() => ({ kind: 'challenge', peer: 'bad id', nonceHi: 1, nonceLo: 2 }), false);
    b.sender.enqueue(1, 'new');
    b.drain();
    expect(b.datagrams).toEqual(['ct-new:0:1']);
    expect(b.sender.nextSeq).toBe(1);
  });

  it('without lookupExpect every expectation change counts as vanished', () => {
    const sent: Buffer[] = [];
    let flush: (() => void) | undefined;
    const sender = new SyncSender({
      encoder: new DatagramEncoder({ cluster: 1, node: 'a', epoch: 9, mtu: 1400 }),
      send: (buf) => sent.push(buf),
      lookup: () => undefined,
      firstSeq: 1,
      schedule: (fn) => {
        flush = fn;
      },
    });
    sender.enqueueExpect('a', 'new');
    flush?.();
    expect(sent).toEqual([]);
    expect(sender.counters).toMatchObject({ vanished: 1, messagesSent: 0 });
    expect(sender.nextSeq).toBe(1);
  });

  it('an error other than RangeError from the encoder is not swallowed', () => {
    const b = bench();
    b.table.set(1, { ...typicalTcpEntry(1), orig: undefined } as unknown as ConntrackEntry);
    b.sender.enqueue(1, 'new');
    expect(() => b.drain()).toThrow(TypeError);
  });

  it('with onSequencedBytes, entries are handed over as bytes and only sequenced controls as messages', () => {
    const b = bench({ bytes: true });
    b.put(1, 1);
    b.put('k2', 2);
    b.expects.set('x', EXP);
    b.sender.enqueue(1, 'new');
    b.sender.enqueue('k2', 'update');
    b.sender.enqueueControl((seq) => ({ kind: 'bulk-start', seq, bulkId: 4, peer: '' }), true);
    b.sender.enqueueControl((seq) => ({ kind: 'alive', seq }), false);
    b.sender.enqueue(3, 'delete', { ...typicalTcpEntry(3), mark: 3 });
    b.sender.enqueueExpect('x', 'new');
    b.drain();
    expect(b.bytesSeqs).toEqual([10, 11, 13, 14]);
    expect(b.sequenced).toEqual(['bulk-start:12']);
    expect(b.datagrams).toEqual(['ct-new:10:1 ct-update:11:2 bulk-start:12 alive:13 ct-delete:13:3 exp-new:14:300']);
  });

  it('without onSequencedBytes, every sequenced message is handed over, unsequenced controls not', () => {
    const b = bench();
    b.put(1, 1);
    b.sender.enqueue(1, 'new');
    b.sender.enqueueControl((seq) => ({ kind: 'bulk-start', seq, bulkId: 4, peer: '' }), true);
    b.sender.enqueueControl((seq) => ({ kind: 'alive', seq }), false);
    b.drain();
    expect(b.sequenced).toEqual(['ct-new:10:1', 'bulk-start:11']);
  });

  it('keeps positions right when a long partial flush compacts the queue', () => {
    const n = 65_540;
    let room = 65_538;
    const b = bench({ room: () => room, slice: 100_000 });
    const one = b.put(0, 1);
    for (let k = 0; k < n; k++) {
      b.table.set(k, one);
      b.sender.enqueue(k, 'update');
    }
    b.put(n - 1, 2);
    expect(b.drain()).toEqual([65_538]);
    expect(b.sender.length).toBe(2);
    // Still pending after the compaction: update then new goes out as new, in place.
    b.sender.enqueue(n - 1, 'new');
    expect(b.sender.length).toBe(2);
    room = 10;
    b.sender.resume();
    b.drain();
    expect(describeDatagram(b.raw.at(-1)!).split(' ').slice(-2)).toEqual([`ct-update:${10 + n - 2}:1`, `ct-new:${10 + n - 1}:2`]);
    expect(b.sender.counters).toMatchObject({ messagesSent: n, merged: 1 });
  });

  it('seqs wrap modulo 2^32', () => {
    const b = bench({ firstSeq: 0xffff_ffff });
    b.put(1, 1);
    b.put(2, 2);
    b.sender.enqueue(1, 'new');
    b.sender.enqueue(2, 'new');
    b.drain();
    expect(b.datagrams).toEqual(['ct-new:4294967295:1 ct-new:0:2']);
    expect(b.sender.nextSeq).toBe(1);
  });

  it('without firstSeq, starts at a random u32; without schedule, flushes on setImmediate', async () => {
    const spy = vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const sent: number[] = [];
    let sender: SyncSender;
    try {
      sender = new SyncSender({
        encoder: new DatagramEncoder({ cluster: 1, node: 'a', epoch: 9, mtu: 1400 }),
        send: (buf) => sent.push(buf.length),
        lookup: () => typicalTcpEntry(1),
      });
    } finally {
      spy.mockRestore();
    }
    expect(sender.nextSeq).toBe(0x7fff_ffff);
    sender.enqueue(1, 'new');
    expect(sent).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(sent.length).toBe(1);
    expect(sender.nextSeq).toBe(0x8000_0000);
  });
});
