// The sender packs the common item (a new, update or bulk item of a numeric
// handle) into one integer and tracks its pending position by handle; other
// handles go as objects. Both must behave exactly alike: the same merges,
// the same messages, seqs and datagrams, and the same sequenced bytes handed
// to the reliability layer as the messages it would have been given.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
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
