import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seqAdd, seqAfter, seqBefore, seqDiff, seqForward } from '../../src/sync/engine/seq.js';

const MAX = 0xffff_ffff;
const HALF = 0x8000_0000;
const u32 = fc.integer({ min: 0, max: MAX });

describe('seqAdd', () => {
  it('wraps past 2^32 - 1 to 0 and back', () => {
    expect(seqAdd(MAX, 1)).toBe(0);
    expect(seqAdd(MAX, 3)).toBe(2);
    expect(seqAdd(0, -1)).toBe(MAX);
    expect(seqAdd(5, -10)).toBe(MAX - 4);
    expect(seqAdd(100, 23)).toBe(123);
  });

  it('always yields a u32', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: -(2 ** 33), max: 2 ** 33 }), (a, n) => {
        const r = seqAdd(a, n);
        expect(Number.isInteger(r) && r >= 0 && r <= MAX).toBe(true);
        expect(seqAdd(r, -n)).toBe(a);
      }),
    );
  });
});

describe('seqDiff', () => {
  it('measures the short way round the circle', () => {
    expect(seqDiff(10, 15)).toBe(5);
    expect(seqDiff(15, 10)).toBe(-5);
    expect(seqDiff(MAX, 0)).toBe(1);
    expect(seqDiff(0, MAX)).toBe(-1);
    expect(seqDiff(MAX - 2, 3)).toBe(6);
    expect(seqDiff(7, 7)).toBe(0);
  });

  it('reports exactly half the circle as +2^31 from either side', () => {
    expect(seqDiff(0, HALF)).toBe(HALF);
    expect(seqDiff(HALF, 0)).toBe(HALF);
    expect(seqDiff(5, 5 + HALF)).toBe(HALF);
  });

  it('inverts seqAdd for any distance in (-2^31, 2^31]', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: -HALF + 1, max: HALF }), (a, d) => {
        expect(seqDiff(a, seqAdd(a, d))).toBe(d);
      }),
    );
  });
});

describe('seqForward', () => {
  it.each([
    [0, 0, 0],
    [5, 9, 4],
    [9, 5, 0xffff_fffc],
    [0xffff_fffe, 1, 3],
    [0, 0x8000_0000, 0x8000_0000],
    [0, 0xc000_0000, 0xc000_0000],
  ])('from %d to %d is %d, never negative', (a, b, d) => {
    expect(seqForward(a, b)).toBe(d);
  });
});

describe('seqBefore / seqAfter', () => {
  it('orders numbers across the wrap', () => {
    expect(seqBefore(MAX, 0)).toBe(true);
    expect(seqAfter(0, MAX)).toBe(true);
    expect(seqBefore(0, MAX)).toBe(false);
    expect(seqBefore(MAX - 10, 10)).toBe(true);
    expect(seqAfter(10, MAX - 10)).toBe(true);
    expect(seqBefore(1, 2)).toBe(true);
    expect(seqAfter(2, 1)).toBe(true);
  });

  it('is strict: a number is neither before nor after itself', () => {
    expect(seqBefore(42, 42)).toBe(false);
    expect(seqAfter(42, 42)).toBe(false);
    expect(seqBefore(MAX, MAX)).toBe(false);
  });

  it('leaves numbers exactly 2^31 apart unordered (RFC 1982 leaves them undefined)', () => {
    expect(seqBefore(0, HALF)).toBe(false);
    expect(seqAfter(0, HALF)).toBe(false);
    expect(seqBefore(HALF, 0)).toBe(false);
    expect(seqAfter(HALF, 0)).toBe(false);
    // One less than half is still "after".
    expect(seqBefore(0, HALF - 1)).toBe(true);
    expect(seqAfter(0, HALF + 1)).toBe(true);
  });

  it('is antisymmetric and agrees with seqAdd', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: 1, max: HALF - 1 }), (a, n) => {
        const b = seqAdd(a, n);
        expect(seqBefore(a, b)).toBe(true);
        expect(seqAfter(b, a)).toBe(true);
        expect(seqBefore(b, a)).toBe(false);
        expect(seqAfter(a, b)).toBe(false);
      }),
    );
  });
});
