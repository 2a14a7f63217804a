// RecordTable (src/cache/record-table.ts) driven directly, with hashes of the
// test's choosing: collisions, probe runs that wrap past the end of the
// index and deletions from the middle of a run are built on purpose rather
// than hoped for, and every step is checked against a Map. The behaviour on
// real records under random operations is in ct-record.test.ts.
import { describe, expect, it } from 'vitest';
import { CHUNK_RECORDS, RecordTable } from '../../src/cache/record-table.js';
import { REC_WORDS, type RecordBuf, type RecordExtras, recordBuf, recordHash, W_MARK } from '../../src/kernel/ct-record.js';
import { mulberry32 } from './prng.js';

/** A record whose key is `id` (key word 1) and whose payload is `mark`. */
function rec(id: number, mark = 0): RecordBuf {
  const r = recordBuf(1);
  r.w[1] = id;
  r.w[W_MARK] = mark;
  return r;
}

/** The index of a table of this capacity has indexSizeFor(cap) positions: 32 for the least capacity, 16. */
const MASK16 = 31;

/** A table and a Map kept side by side: key id → [slot, hash, mark]. */
class Checked {
  readonly t: RecordTable;
  readonly model = new Map<number, { slot: number; hash: number; mark: number }>();

  constructor(initialSlots?: number) {
    this.t = new RecordTable(initialSlots);
  }

  insert(id: number, hash: number, mark = id, x?: RecordExtras): number {
    const slot = this.t.insert(rec(id, mark).w, 0, x, hash);
    for (const v of this.model.values()) expect(v.slot).not.toBe(slot);
    this.model.set(id, { slot, hash, mark });
    return slot;
  }

  remove(id: number): void {
    const m = this.model.get(id)!;
    this.t.remove(m.slot);
    this.model.delete(id);
  }

  /** Every key is found where it was put and holds its payload; absent ones are not found. */
  verify(absent: readonly [number, number][] = []): void {
    const t = this.t;
    expect(t.size).toBe(this.model.size);
    for (const [id, m] of this.model) {
      expect(t.find(rec(id).w, 0, m.hash), `key ${id}`).toBe(m.slot);
      expect(t.isLive(m.slot)).toBe(true);
      expect(t.recOf(m.slot).w[t.at(m.slot) + 1]).toBe(id);
      expect(t.recOf(m.slot).w[t.at(m.slot) + W_MARK]).toBe(m.mark);
    }
    for (const [id, hash] of absent) expect(t.find(rec(id).w, 0, hash), `absent key ${id}`).toBe(-1);
    const slots: number[] = [];
    for (let s = t.next(-1); s >= 0; s = t.next(s)) slots.push(s);
    expect(slots).toEqual([...this.model.values()].map((m) => m.slot).sort((a, b) => a - b));
  }
}

describe('RecordTable: sizes', () => {
  it.each([
    [undefined, 1024],
    [0, 16],
    [1, 16],
    [15, 16],
    [16, 16],
    [17, 17],
    [100, 100],
  ])('new RecordTable(%s) holds %i slots before it grows', (initial, cap) => {
    const t = new RecordTable(initial);
    expect(t.capacity).toBe(cap);
    expect(t.size).toBe(0);
    for (let i = 0; i < cap; i++) t.insert(rec(i).w, 0, undefined);
    expect(t.capacity).toBe(cap);
    t.insert(rec(cap).w, 0, undefined);
    expect(t.capacity).toBe(cap * 2);
    expect(t.size).toBe(cap + 1);
    for (let i = 0; i <= cap; i++) expect(t.find(rec(i).w, 0)).toBe(i);
  });

  it('hands out slots in order, and a freed slot before a new one, the last freed first', () => {
    const c = new Checked();
    expect([1, 2, 3, 4, 5].map((id) => c.insert(id, id))).toEqual([0, 1, 2, 3, 4]);
    c.remove(2);
    c.remove(4);
    expect(c.insert(6, 6)).toBe(3);
    expect(c.insert(7, 7)).toBe(1);
    expect(c.insert(8, 8)).toBe(5);
    c.verify([
      [2, 2],
      [4, 4],
    ]);
  });

  it('keeps records of the second chunk apart from the first', () => {
    const t = new RecordTable(16);
    for (let i = 0; i <= CHUNK_RECORDS; i++) t.insert(rec(i, i + 7).w, 0, undefined);
    const last = t.find(rec(CHUNK_RECORDS).w, 0);
    expect(last).toBe(CHUNK_RECORDS);
    expect(t.recOf(last)).not.toBe(t.recOf(0));
    expect(t.at(last)).toBe(0);
    expect(t.at(1)).toBe(REC_WORDS);
    expect(t.at(CHUNK_RECORDS - 1)).toBe((CHUNK_RECORDS - 1) * REC_WORDS);
    expect(t.recOf(last).w[t.at(last) + W_MARK]).toBe(CHUNK_RECORDS + 7);
    expect(t.recOf(0).w[t.at(0) + W_MARK]).toBe(7);
    expect(t.recOf(1).w[t.at(1) + W_MARK]).toBe(8);
  });

  it('finds every key by its own hash when none is given', () => {
    const t = new RecordTable(16);
    for (let i = 0; i < 40; i++) t.insert(rec(i).w, 0, undefined);
    for (let i = 0; i < 40; i++) expect(t.find(rec(i).w, 0)).toBe(t.find(rec(i).w, 0, recordHash(rec(i).w, 0)));
    for (let i = 0; i < 40; i++) expect(t.find(rec(i).w, 0)).toBe(i);
    expect(t.find(rec(40).w, 0)).toBe(-1);
  });
});

describe('RecordTable: collisions and backward-shift deletion', () => {
  // Each row: the hashes of keys 1..n, inserted in order into a table of 16
  // slots (index of 32 positions). Every key is then removed in turn from a
  // fresh copy, and the others must stay reachable: the backward shift must
  // pull exactly the members whose home lies outside (hole, position].
  const rows: [string, number[]][] = [
    ['one probe run from one home', [5, 5, 5, 5]],
    ['a run that wraps past the last position', [30, 30, 31, 30, 0]],
    ['two homes merged into one run', [4, 5, 4, 5, 6]],
    ['a member at its own home after the hole', [7, 7, 9, 7, 9]],
    ['hashes above the mask', [MASK16 + 3, 3, 2 * (MASK16 + 1) + 3, 4]],
    ['wrapping, with members at home in the middle', [29, 30, 29, 31, 0, 29, 1]],
  ];

  it.each(rows)('%s', (_name, hashes) => {
    for (let gone = 0; gone < hashes.length; gone++) {
      const c = new Checked(16);
      hashes.forEach((h, i) => c.insert(i + 1, h));
      c.verify();
      c.remove(gone + 1);
      c.verify([[gone + 1, hashes[gone]!]]);
      // The hole and the shifted positions take new members correctly.
      c.insert(100, hashes[gone]!);
      c.insert(101, hashes[0]!);
      c.verify([[gone + 1, hashes[gone]!]]);
      // And everything can leave again, in the order it came.
      for (const [id, m] of [...c.model]) {
        c.remove(id);
        c.verify([[id, m.hash]]);
      }
    }
  });

  it('stays a Map under seeded churn on a few colliding hashes, across growth and rehashing', () => {
    const rnd = mulberry32(18);
    const c = new Checked(16);
    const hashOf = (id: number) => (id * 7) % 23;
    for (let step = 0; step < 3000; step++) {
      const id = Math.floor(rnd() * 60);
      const m = c.model.get(id);
      if (m === undefined) c.insert(id, hashOf(id), step);
      else if (rnd() < 0.6) c.remove(id);
      else {
        c.t.overwrite(m.slot, rec(id, step).w, 0);
        m.mark = step;
      }
      if (step % 50 === 0) c.verify();
    }
    c.verify([...Array(60).keys()].filter((id) => !c.model.has(id)).map((id) => [id, hashOf(id)] as [number, number]));
  });

  it('keeps removed keys gone and reused slots right across a rebuild of the index', () => {
    const c = new Checked(16);
    for (let id = 0; id < 16; id++) c.insert(id, id);
    c.remove(3);
    c.remove(9);
    // 14 live: the third insert makes 17, and the index is rebuilt at twice the size.
    c.insert(20, 3);
    c.insert(21, 40);
    c.insert(22, 41);
    c.verify([
      [3, 3],
      [9, 9],
    ]);
  });

  it('stays a Map while its index grows a few slots at a time: finds, removals and reuse of moved and unmoved slots', () => {
    const rnd = mulberry32(7);
    const c = new Checked(16);
    // Few distinct hashes: long probe runs in both indexes, through the old index's stale entries.
    const hashOf = (id: number) => (id * 13) % 251;
    let verifiedGrowing = 0;
    for (let step = 0; step < 5000; step++) {
      const id = Math.floor(rnd() * 600);
      const m = c.model.get(id);
      if (m === undefined) c.insert(id, hashOf(id), step);
      else if (rnd() < 0.45) c.remove(id);
      else {
        c.t.overwrite(m.slot, rec(id, step).w, 0);
        m.mark = step;
      }
      if (c.t.growing) {
        // Every step of a move, the whole table against the model, absent keys included.
        verifiedGrowing++;
        const absent = [...Array(602).keys()].filter((a) => !c.model.has(a));
        c.verify(absent.map((a) => [a, hashOf(a)] as [number, number]));
      }
    }
    expect(verifiedGrowing).toBeGreaterThan(50);
    c.verify();
  });

  it('does not find a removed key through the old index, even once its slot holds another key of the same hash', () => {
    const c = new Checked(64);
    for (let id = 0; id < 64; id++) c.insert(id, 5);
    // The 65th starts a move to a larger index; each insert or removal moves 8 slots.
    c.insert(64, 5);
    expect(c.t.growing).toBe(true);
    // A slot taken during the move, above it, is in the new index only; removed, it is gone from there.
    expect(c.insert(65, 5)).toBe(65);
    c.remove(65);
    // Slot 40 has not moved (nor does it with this removal's step): it is in the old index only,
    // where it stays, no longer live, and must not be found.
    c.remove(40);
    c.verify([
      [40, 5],
      [65, 5],
    ]);
    // Its slot is reused by another key of the same hash, which goes to the new index.
    expect(c.insert(100, 5)).toBe(40);
    c.verify([[40, 5]]);
    // And by the removed key again.
    c.remove(100);
    expect(c.insert(40, 5)).toBe(40);
    expect(c.insert(66, 5)).toBe(65);
    c.verify([[100, 5]]);
    for (let i = 0; i < 10 && c.t.growing; i++) c.insert(200 + i, 5);
    expect(c.t.growing).toBe(false);
    c.verify([
      [100, 5],
      [300, 5],
    ]);
  });

  it('a slot taken at the move\'s cursor is indexed once: removed, its key is gone', () => {
    const c = new Checked(64);
    for (let id = 0; id < 64; id++) c.insert(id, 9);
    // The 65th starts the move; its step moves slots 0-7.
    c.insert(64, 9);
    // Slot 16 is not moved yet: removed, it stays in the old index only; this removal's step moves 8-15.
    c.remove(16);
    // The next insert takes slot 16, exactly at the cursor: into the new index, and not moved there again.
    expect(c.insert(100, 9)).toBe(16);
    c.verify();
    c.remove(100);
    c.verify([
      [100, 9],
      [16, 9],
    ]);
  });

  it('answers for slots it never handed out, in chunks it never made', () => {
    const t = new RecordTable(16);
    expect(t.isLive(5 * CHUNK_RECORDS)).toBe(false);
    t.remove(5 * CHUNK_RECORDS);
    expect(t.size).toBe(0);
  });

  it('walks exactly a full chunk', () => {
    const t = new RecordTable(16);
    for (let i = 0; i < CHUNK_RECORDS; i++) t.insert(rec(i).w, 0, undefined);
    let n = 0;
    let last = -1;
    for (let s = t.next(-1); s >= 0; s = t.next(s)) {
      n++;
      last = s;
    }
    expect([n, last]).toEqual([CHUNK_RECORDS, CHUNK_RECORDS - 1]);
  });

  it('ignores the removal of a slot that is not live', () => {
    const c = new Checked(16);
    c.insert(1, 4);
    c.insert(2, 4);
    const slot = c.model.get(1)!.slot;
    c.remove(1);
    c.t.remove(slot);
    c.t.remove(7);
    c.verify([[1, 4]]);
    expect(c.insert(3, 4)).toBe(slot);
    expect(c.insert(4, 4)).toBe(2);
    c.verify([[1, 4]]);
  });
});

describe('RecordTable: extras', () => {
  it('keeps extras per slot and lets go of them when the slot is freed', () => {
    const t = new RecordTable(16);
    expect(t.extrasOf(0)).toBeUndefined();
    const helper: RecordExtras = { helper: 'ftp' };
    const a = t.insert(rec(1).w, 0, helper);
    const b = t.insert(rec(2).w, 0, undefined);
    expect(t.extrasOf(a)).toBe(helper);
    expect(t.extrasOf(b)).toBeUndefined();
    t.setExtras(b, { secctx: 'x' });
    expect(t.extrasOf(b)).toEqual({ secctx: 'x' });
    t.setExtras(b, undefined);
    expect(t.extrasOf(b)).toBeUndefined();
    t.remove(a);
    expect(t.extrasOf(a)).toBeUndefined();
    // The freed slot comes back without the old extras.
    expect(t.insert(rec(3).w, 0, undefined)).toBe(a);
    expect(t.extrasOf(a)).toBeUndefined();
    expect(t.insert(rec(4).w, 0, { helper: 'sip' })).toBe(2);
    expect(t.extrasOf(2)).toEqual({ helper: 'sip' });
  });
});

describe('RecordTable: clear', () => {
  it('forgets every key, slot, extras and free slot, and starts over at slot 0', () => {
    const c = new Checked(16);
    for (let id = 0; id < 6; id++) c.insert(id, id % 3, id, id === 2 ? { helper: 'ftp' } : undefined);
    c.remove(4);
    c.remove(1);
    c.t.clear();
    c.model.clear();
    expect(c.t.size).toBe(0);
    expect(c.t.next(-1)).toBe(-1);
    for (let s = 0; s < 6; s++) {
      expect(c.t.isLive(s)).toBe(false);
      expect(c.t.extrasOf(s)).toBeUndefined();
    }
    c.verify([...Array(6).keys()].map((id) => [id, id % 3] as [number, number]));
    // Refilled from slot 0, each slot handed out once.
    expect([10, 11, 12].map((id) => c.insert(id, 0))).toEqual([0, 1, 2]);
    c.verify([[0, 0]]);
  });
});
