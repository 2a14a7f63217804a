// ReadAhead (src/kernel/read-ahead.ts) against a scripted socket: every
// byte and every marker (a receive error, "read empty") reaches the
// receiver once, in the order the socket produced them, whatever the
// slicing, the refills and the chunk boundaries.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BatchReader, ReadAhead } from '../../src/kernel/read-ahead.js';
import type { NetlinkReceiver } from '../../src/kernel/transport.js';

const SEED = Number(process.env.FC_SEED ?? 20261207);
const EAGAIN = 11;
const ENOBUFS = 105;

/** One read of the script: n bytes (each a running counter), then the errno that ended it. */
interface Step {
  n: number;
  errno: number;
}

/** A socket that plays `steps` in order, then reads empty for ever. Bytes are numbered 1, 2, 3, … (mod 251). */
function scripted(steps: Step[]): { reader: BatchReader; produced: string[] } {
  let i = 0;
  let counter = 0;
  const produced: string[] = [];
  const reader: BatchReader = (buf, status) => {
    const s = steps[i++] ?? { n: 0, errno: EAGAIN };
    const n = Math.min(s.n, buf.length);
    const bytes: number[] = [];
    for (let k = 0; k < n; k++) {
      counter = (counter % 251) + 1;
      buf[k] = counter;
      bytes.push(counter);
    }
    if (n > 0) produced.push(`data:${bytes.join(',')}`);
    if (s.errno === EAGAIN) produced.push('empty');
    else if (s.errno !== 0) produced.push(`error:${s.errno}`);
    status[0] = s.errno;
    status[1] = n > 0 ? 1 : 0;
    return n;
  };
  return { reader, produced };
}

function recorder(): { r: NetlinkReceiver; got: string[] } {
  const got: string[] = [];
  return {
    got,
    r: {
      onData: (buf, start, end) => got.push(`data:${[...buf.subarray(start, end)].join(',')}`),
      onError: (errno) => got.push(`error:${errno}`),
      onEmpty: () => got.push('empty'),
    },
  };
}

/** Adjacent data segments joined, repeated "empty" collapsed: what a reader of the stream can tell apart. */
function normalise(events: string[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.startsWith('data:') && last?.startsWith('data:')) out[out.length - 1] = `${last},${e.slice(5)}`;
    else if (e === 'empty' && last === 'empty') continue;
    else out.push(e);
  }
  return out;
}

describe('ReadAhead', () => {
  it('delivers data and markers in the order they were read', () => {
    const { reader } = scripted([
      { n: 3, errno: 0 },
      { n: 2, errno: ENOBUFS },
      { n: 1, errno: EAGAIN },
    ]);
    const ra = new ReadAhead(reader, { limit: 1 << 20, chunkBytes: 64, minSpace: 8 });
    ra.fill();
    expect(ra.pending).toBe(true);
    const { r, got } = recorder();
    expect(ra.deliver(r, () => false)).toBe(false);
    expect(got).toEqual(['data:1,2,3', 'data:4,5', `error:${ENOBUFS}`, 'data:6', 'empty']);
    expect(ra.counters.heldBytes).toBe(0);
    expect(ra.counters.maxHeldBytes).toBe(6);
  });

  it('stops reading at its limit and leaves the rest to the kernel queue', () => {
    const steps = Array.from({ length: 100 }, () => ({ n: 10, errno: 0 }));
    const { reader } = scripted(steps);
    const ra = new ReadAhead(reader, { limit: 35, chunkBytes: 64, minSpace: 16 });
    ra.fill();
    expect(ra.counters.heldBytes).toBe(40);
    expect(ra.counters.limitReached).toBe(1);
    const { r, got } = recorder();
    ra.deliver(r, () => false);
    expect(normalise(got)).toEqual(['data:' + Array.from({ length: 40 }, (_, k) => k + 1).join(',')]);
  });

  it('keeps earlier chunks intact when reads move on to a new one', () => {
    const { reader } = scripted([
      { n: 30, errno: 0 },
      { n: 30, errno: 0 },
      { n: 30, errno: EAGAIN },
    ]);
    // Room for one 30-byte read per chunk.
    const ra = new ReadAhead(reader, { limit: 1 << 20, chunkBytes: 40, minSpace: 30 });
    ra.fill();
    const { r, got } = recorder();
    ra.deliver(r, () => false);
    expect(normalise(got)).toEqual(['data:' + Array.from({ length: 90 }, (_, k) => k + 1).join(','), 'empty']);
  });

  it('reuses the chunks it has handled: a long stream read and handled in turns needs a few', () => {
    // The socket holds three reads' worth at a time.
    const { reader } = scripted(Array.from({ length: 2100 }, (_, i) => ({ n: 30, errno: i % 3 === 2 ? EAGAIN : 0 })));
    const ra = new ReadAhead(reader, { limit: 1 << 20, chunkBytes: 100, minSpace: 30 });
    const bufs = new Set<Buffer>();
    let bytes = 0;
    const r: NetlinkReceiver = {
      onData: (buf, start, end) => {
        bufs.add(buf);
        bytes += end - start;
      },
      onError: () => {},
    };
    // Read what is there, handle as much, and again: the backlog stays a few
    // reads long and never empties (so no chunk is reused by starting over).
    ra.fill();
    for (let k = 0; k < 699; k++) {
      // Three reads and an "empty" per fill; four handled per turn, so it keeps pace.
      let left = 4;
      ra.fill();
      ra.deliver(r, () => --left <= 0);
    }
    while (ra.deliver(r, () => false));
    expect(bytes).toBe(63_000);
    expect(bufs.size).toBeLessThanOrEqual(4);
  });

  it('any script, any slicing and refills: the receiver sees exactly the stream', () => {
    const step = fc.oneof(
      { weight: 6, arbitrary: fc.record({ n: fc.integer({ min: 1, max: 40 }), errno: fc.constant(0) }) },
      { weight: 2, arbitrary: fc.record({ n: fc.integer({ min: 0, max: 40 }), errno: fc.constant(EAGAIN) }) },
      { weight: 1, arbitrary: fc.record({ n: fc.integer({ min: 0, max: 40 }), errno: fc.constant(ENOBUFS) }) },
      { weight: 1, arbitrary: fc.record({ n: fc.integer({ min: 0, max: 40 }), errno: fc.constant(9) }) },
    );
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 40, max: 200 }),
        fc.boolean(),
        (steps, slices, chunkBytes, refills) => {
          const { reader, produced } = scripted(steps);
          const ra = new ReadAhead(reader, { limit: 1 << 20, chunkBytes, minSpace: 40 });
          const { r, got } = recorder();
          // Drain as NetlinkSocket does: fill, deliver a slice (n segments), repeat.
          for (let round = 0; round < 1000; round++) {
            ra.fill();
            let left = slices[round % slices.length]!;
            ra.deliver(r, () => --left <= 0, refills ? () => ra.fill() : undefined);
            if (!ra.pending && produced.length > 0 && round > steps.length) break;
          }
          expect(ra.pending).toBe(false);
          expect(normalise(got)).toEqual(normalise(produced));
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
