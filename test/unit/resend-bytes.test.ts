// The resend queue keeps entry messages as bytes in one ring (pushBytes) and
// control messages as objects (push). Whatever the mix, the wraps of the
// ring and its growth, it must give back exactly what was sent under a seq
// until it is released, and grow only as far as the bytes in flight need.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResendQueue } from '../../src/sync/engine/resend-queue.js';
import { seqAdd } from '../../src/sync/engine/seq.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { typicalTcpEntry } from './wire-helpers.js';

const SEED = Number(process.env.FC_SEED ?? 20261206);

/** A payload that tells seqs apart in every byte. */
function payload(seq: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seq * 31 + i * 7) & 0xff;
  return b;
}

describe('ResendQueue bytes', () => {
  it('keeps every message byte for byte across ring wraps, growth and restarts, growing only as needed (300 runs)', () => {
    fc.assert(
      // An op is one number: its low 4 bits the kind, the rest its size.
      fc.property(fc.array(fc.nat(), { minLength: 200, maxLength: 3000 }), fc.integer({ min: 4, max: 64 }), fc.nat(), fc.integer({ min: 1, max: 512 }), (ops, capacity, first, ringBytes) => {
        const q = new ResendQueue(capacity, first, ringBytes);
        const model = new Map<number, Buffer | undefined>();
        let next = first >>> 0;
        let front = next;
        let peak = 0;
        let largest = 0;
        const check = (seq: number): void => {
          if (!model.has(seq)) return;
          const want = model.get(seq);
          if (want === undefined) expect(q.get(seq)).toMatchObject({ kind: 'bulk-start', seq });
          else expect(q.bytesOf(seq)).toEqual(want);
        };
        for (const x of ops) {
          const kind = x & 15;
          const arg = x >>> 4;
          if (kind >= 11 && kind <= 14) {
            const to = seqAdd(front, Math.min(arg % 40, model.size));
            q.releaseBefore(to);
            for (; front !== to; front = seqAdd(front, 1)) model.delete(front);
          } else if (kind === 15) {
            // A seq that does not follow the newest: the queue starts over.
            if (q.full) q.shift();
            next = seqAdd(next, 3);
            const n = 1 + (arg % 100);
            expect(q.pushBytes(next, payload(next, n), 0, n, 0)).toBe(model.size === 0);
            model.clear();
            model.set(next, payload(next, n));
            front = next;
            next = seqAdd(next, 1);
          } else {
            if (q.full) {
              q.shift();
              model.delete(front);
              front = seqAdd(front, 1);
            }
            const seq = next;
            next = seqAdd(next, 1);
            if (kind === 10) {
              q.push(seq, { kind: 'bulk-start', seq, bulkId: 1, peer: '' }, 0);
              model.set(seq, undefined);
            } else {
              const n = 1 + (arg % 200);
              // From the middle of a larger buffer, as the encoder hands it over.
              const src = Buffer.concat([Buffer.alloc(5, 0xee), payload(seq, n), Buffer.alloc(3, 0xee)]);
              expect(q.pushBytes(seq, src, 5, 5 + n, 0)).toBe(true);
              model.set(seq, payload(seq, n));
              largest = Math.max(largest, n);
            }
          }
          expect(q.length).toBe(model.size);
          // The oldest message (the one a wrap must not overwrite) and the newest.
          check(front);
          check(seqAdd(next, -1));
          // Growth only when the live bytes need it: a doubling of less
          // than they and two of the largest messages (the bytes left
          // unused at the top when the ring wrapped, and the one being placed).
          peak = Math.max(peak, q.byteLength);
          expect(q.ringBytes).toBeLessThanOrEqual(Math.max(ringBytes, 2 * (peak + 2 * largest)));
        }
        expect(q.front).toBe(front);
        for (const seq of model.keys()) check(seq);
        expect(q.get(seqAdd(front, -1))).toBeUndefined();
        q.clear(next);
        expect(q.byteLength).toBe(0);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('gives entry messages back decoded, as they were encoded', () => {
    const enc = new DatagramEncoder({ cluster: 1, node: 'a', epoch: 7, mtu: 1400 });
    const q = new ResendQueue(100_000, 5, 1024);
    const e = typicalTcpEntry(1);
    let size = 0;
    for (let k = 0; k < 50_000; k++) {
      const m: WireMessage = { kind: k % 2 === 0 ? 'ct-new' : 'ct-update', seq: 5 + k, entry: { ...e, mark: k } };
      if (!enc.add(m)) {
        enc.flush();
        enc.add(m);
      }
      size += enc.lastEnd - enc.lastStart;
      q.pushBytes(5 + k, enc.bytes, enc.lastStart, enc.lastEnd, k);
      if (k % 100 === 99) {
        for (let s = q.front; s !== 5 + k - 50; s++) size -= q.bytesOf(s)!.length;
        q.releaseBefore(5 + k - 50);
      }
    }
    expect(q.length).toBe(51);
    expect(q.byteLength).toBe(size);
    expect(q.get(5 + 49_999)).toEqual({ kind: 'ct-update', seq: 5 + 49_999, entry: { ...e, mark: 49_999 } });
    expect(q.get(5 + 49_950)).toEqual({ kind: 'ct-new', seq: 5 + 49_950, entry: { ...e, mark: 49_950 } });
  });
});
