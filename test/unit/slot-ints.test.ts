// SlotInts (src/common/slot-ints.ts): a per-slot int32 array grown a chunk at a time.
import { describe, expect, it } from 'vitest';
import { SLOT_CHUNK, SlotInts, SlotRefs } from '../../src/common/slot-ints.js';

describe('SlotInts', () => {
  it('covers nothing at first and whole chunks after cover()', () => {
    const a = new SlotInts();
    expect(a.length).toBe(0);
    a.cover(1);
    expect(a.length).toBe(SLOT_CHUNK);
    a.cover(SLOT_CHUNK);
    expect(a.length).toBe(SLOT_CHUNK);
    a.cover(SLOT_CHUNK + 1);
    expect(a.length).toBe(2 * SLOT_CHUNK);
    a.cover(5 * SLOT_CHUNK - 1);
    expect(a.length).toBe(5 * SLOT_CHUNK);
  });

  it('keeps each slot its own value on both sides of every chunk edge, and keeps them when it grows', () => {
    const a = new SlotInts();
    a.cover(3 * SLOT_CHUNK);
    const slots = [0, 1, SLOT_CHUNK - 1, SLOT_CHUNK, SLOT_CHUNK + 1, 2 * SLOT_CHUNK - 1, 2 * SLOT_CHUNK, 3 * SLOT_CHUNK - 1];
    slots.forEach((s, i) => a.set(s, -1 - i * 1000));
    a.cover(4 * SLOT_CHUNK);
    slots.forEach((s, i) => expect(a.get(s), `slot ${s}`).toBe(-1 - i * 1000));
    expect(a.get(2)).toBe(0);
    expect(a.get(3 * SLOT_CHUNK)).toBe(0);
    // A u32 comes back as its int32 bits.
    a.set(7, 0xffff_fffe);
    expect(a.get(7)).toBe(-2);
    expect(a.get(7) >>> 0).toBe(0xffff_fffe);
  });

  it('fill() sets every covered slot', () => {
    const a = new SlotInts();
    a.cover(2 * SLOT_CHUNK);
    a.set(5, 9);
    a.set(SLOT_CHUNK + 5, 9);
    a.fill(3);
    expect([a.get(0), a.get(5), a.get(SLOT_CHUNK + 5), a.get(2 * SLOT_CHUNK - 1)]).toEqual([3, 3, 3, 3]);
    a.fill(0);
    expect(a.get(SLOT_CHUNK + 5)).toBe(0);
  });
});

describe('SlotRefs', () => {
  it('holds a reference per slot across chunk edges, undefined where none was set, and lets go of all on clear()', () => {
    const a = new SlotRefs<{ id: number }>();
    expect(a.length).toBe(0);
    a.cover(SLOT_CHUNK + 1);
    expect(a.length).toBe(2 * SLOT_CHUNK);
    const x = { id: 1 };
    const y = { id: 2 };
    a.set(SLOT_CHUNK - 1, x);
    a.set(SLOT_CHUNK, y);
    a.cover(3 * SLOT_CHUNK);
    expect(a.get(SLOT_CHUNK - 1)).toBe(x);
    expect(a.get(SLOT_CHUNK)).toBe(y);
    expect(a.get(0)).toBeUndefined();
    expect(a.get(3 * SLOT_CHUNK - 1)).toBeUndefined();
    a.clear();
    expect(a.get(SLOT_CHUNK - 1)).toBeUndefined();
    expect(a.get(SLOT_CHUNK)).toBeUndefined();
    expect(a.length).toBe(3 * SLOT_CHUNK);
  });
});
