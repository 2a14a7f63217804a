// A table of conntrack records (src/kernel/ct-record.ts) in typed-array
// chunks, indexed by an open-addressing hash table on their key words.
// It replaces a Map from string keys to entry objects: no key string, no
// object per entry, nothing in it for the garbage collector to trace.
//
// Slots are stable while their record lives (callers keep per-slot data in
// chunked arrays of their own, src/common/slot-ints.ts); freed slots are reused, so
// iteration order is slot order, not insertion order. Records sit in chunks
// of CHUNK_RECORDS that are never copied: on this kind of machine a page
// touched for the first time costs more than writing the records in it, so
// a slab that doubles by copying pays for its memory two or three times. The
// per-slot hashes and live flags are chunked the same way. The index is
// linear probing at most half full, with backward-shift deletion: no
// tombstones to slow lookups after churn.
//
// The index grows without stopping the daemon. Rebuilding it in one go took
// 0.22 s at 2^21 records (fw1, 40k entries/s: enough with the callers' own
// growth to overrun an 8 MiB event buffer), most of it first touches of the
// new index's pages. Instead the new index (twice the size) is filled a few
// slots per insert or removal (MOVE_STEP), in slot order, while lookups that
// miss in it also probe the previous one for slots not moved yet. A slot
// taken while a move runs goes straight into the new index and is marked so
// (IN_NEW), so the move does not place it twice. Entries of the previous
// index are never removed: a slot freed before the move reached it is left
// there and ignored (no longer LIVE), and the whole index is dropped once
// the move has passed every slot. The move finishes within half the inserts
// that would start the next one, so at most two indexes exist.

import {
  copyRecordWords,
  REC_WORDS,
  type RecordBuf,
  type RecordExtras,
  recordBuf,
  recordHash,
  sameRecordKey,
} from '../kernel/ct-record.js';

const EMPTY = 0;
/** live[] values: free; live and in the current index; live, in the current index, and above the move's cursor. */
const FREE = 0;
const LIVE = 1;
const IN_NEW = 2;
/** Slots moved to a growing index per insert or removal. */
const MOVE_STEP = 8;
const CHUNK_SHIFT = 14;
/** Records per chunk: 16384 × 104 bytes, 1.6 MiB. */
export const CHUNK_RECORDS = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_RECORDS - 1;

export class RecordTable {
  /** The records, CHUNK_RECORDS per chunk; see recOf(). */
  private readonly chunks: RecordBuf[] = [];
  /** Rare fields per slot (see RecordExtras). */
  private extras: (RecordExtras | undefined)[] = [];
  /**
   * Each slot's hash and live state (FREE, LIVE, IN_NEW), chunked as the
   * records. Not SlotInts: the probe loop indexes these chunks directly, and
   * a live flag is a byte.
   */
  private readonly hashes: Int32Array[] = [];
  private readonly live: Uint8Array[] = [];
  /** slot + 1 per index position, EMPTY for none. */
  private index: Int32Array;
  private mask: number;
  /** While the index grows: the previous one, still indexing the LIVE slots at or above `moved`. */
  private old: Int32Array | undefined;
  private oldMask = 0;
  /** Slots below this are in `index`; see the file comment. */
  private moved = 0;
  private free: number[] = [];
  /** Slots ever handed out; slots above it are untouched. */
  private used = 0;
  private count = 0;
  private cap: number;

  constructor(initialSlots = 1024) {
    this.cap = Math.max(16, initialSlots);
    const size = indexSizeFor(this.cap);
    this.index = new Int32Array(size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.count;
  }

  /**
   * The initial size, doubled each time slots run out: what the table was
   * sized for, for tests and stats. Nothing is sized by it any more: the
   * records, hashes and live flags are chunks, and so is callers' per-slot
   * data (SlotInts), covering the slots handed out.
   */
  get capacity(): number {
    return this.cap;
  }

  /** Whether the index is being moved to a larger one (for tests and stats). */
  get growing(): boolean {
    return this.old !== undefined;
  }

  /** The chunk that holds a slot's record; the record starts at word at(slot) of it. */
  recOf(slot: number): RecordBuf {
    return this.chunks[slot >>> CHUNK_SHIFT]!;
  }

  /** Word offset of a slot's record in recOf(slot).w. */
  at(slot: number): number {
    return (slot & CHUNK_MASK) * REC_WORDS;
  }

  extrasOf(slot: number): RecordExtras | undefined {
    return this.extras[slot];
  }

  setExtras(slot: number, x: RecordExtras | undefined): void {
    if (x !== undefined || this.extras[slot] !== undefined) this.extras[slot] = x;
  }

  /** The slot holding a record whose key words equal those at `src.w[at]`, or -1. */
  find(src: Int32Array, at: number, hash: number = recordHash(src, at)): number {
    const slot = this.probe(this.index, this.mask, src, at, hash, false);
    if (slot >= 0 || this.old === undefined) return slot;
    return this.probe(this.old, this.oldMask, src, at, hash, true);
  }

  /**
   * Copies the record at `src.w[at]` into a new slot and indexes it; the
   * caller has made sure its key is not in the table. Returns the slot.
   */
  insert(src: Int32Array, at: number, extras: RecordExtras | undefined, hash: number = recordHash(src, at)): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used === this.cap) this.cap *= 2;
      slot = this.used++;
      if (slot >>> CHUNK_SHIFT === this.chunks.length) {
        this.chunks.push(recordBuf(CHUNK_RECORDS));
        this.hashes.push(new Int32Array(CHUNK_RECORDS));
        this.live.push(new Uint8Array(CHUNK_RECORDS));
      }
    }
    const c = slot >>> CHUNK_SHIFT;
    const i = slot & CHUNK_MASK;
    copyRecordWords(src, at, this.chunks[c]!.w, i * REC_WORDS);
    this.hashes[c]![i] = hash;
    if (extras !== undefined || this.extras[slot] !== undefined) this.extras[slot] = extras;
    this.count++;
    if (this.count * 2 > this.index.length) this.startGrowth();
    this.live[c]![i] = this.old !== undefined && slot >= this.moved ? IN_NEW : LIVE;
    place(this.index, this.mask, slot, hash);
    if (this.old !== undefined) this.move(MOVE_STEP);
    return slot;
  }

  /** Overwrites a live slot's record (same key) with the one at `src.w[at]`. */
  overwrite(slot: number, src: Int32Array, at: number): void {
    copyRecordWords(src, at, this.recOf(slot).w, this.at(slot));
  }

  remove(slot: number): void {
    const c = slot >>> CHUNK_SHIFT;
    const i = slot & CHUNK_MASK;
    const state = this.live[c]?.[i];
    if (state !== LIVE && state !== IN_NEW) return;
    // A slot the move has not reached is only in the old index: it is left there, no longer LIVE, and ignored.
    if (this.old === undefined || slot < this.moved || state === IN_NEW) this.unindex(slot, this.hashes[c]![i]!);
    this.live[c]![i] = FREE;
    if (this.extras[slot] !== undefined) this.extras[slot] = undefined;
    this.free.push(slot);
    this.count--;
    if (this.old !== undefined) this.move(MOVE_STEP);
  }

  isLive(slot: number): boolean {
    const v = this.live[slot >>> CHUNK_SHIFT]?.[slot & CHUNK_MASK];
    return v === LIVE || v === IN_NEW;
  }

  /** The first live slot after `slot` (-1 to start), or -1: `for (let s = t.next(-1); s >= 0; s = t.next(s))`. */
  next(slot: number): number {
    const live = this.live;
    for (let s = slot + 1; s < this.used; s++) if (live[s >>> CHUNK_SHIFT]![s & CHUNK_MASK] !== FREE) return s;
    return -1;
  }

  clear(): void {
    this.index.fill(EMPTY);
    this.old = undefined;
    this.moved = 0;
    for (const l of this.live) l.fill(FREE);
    this.extras = [];
    // The chunks stay: a flushed table is usually refilled.
    this.free = [];
    this.used = 0;
    this.count = 0;
  }

  /**
   * Looks a key up in one index. In the old one only a LIVE slot counts: a
   * slot moved since is found in the new index first (under its current key),
   * and a FREE or IN_NEW one was removed after the move began (see the file
   * comment).
   */
  private probe(idx: Int32Array, mask: number, src: Int32Array, at: number, hash: number, old: boolean): number {
    const chunks = this.chunks;
    const hashes = this.hashes;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const v = idx[i]!;
      if (v === EMPTY) return -1;
      const slot = v - 1;
      const c = slot >>> CHUNK_SHIFT;
      const k = slot & CHUNK_MASK;
      if (
        hashes[c]![k] === hash &&
        (!old || this.live[c]![k] === LIVE) &&
        sameRecordKey(chunks[c]!.w, k * REC_WORDS, src, at)
      )
        return slot;
    }
  }

  /** Removes a slot from the current index, pulling later members of its probe run into the hole. */
  private unindex(slot: number, hash: number): void {
    const idx = this.index;
    const mask = this.mask;
    const hashes = this.hashes;
    let i = hash & mask;
    while (idx[i] !== slot + 1) i = (i + 1) & mask;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const v = idx[j]!;
      if (v === EMPTY) break;
      const s = v - 1;
      const home = hashes[s >>> CHUNK_SHIFT]![s & CHUNK_MASK]! & mask;
      // Movable when its home is not in the (cyclic) range (i, j].
      if (((j - home) & mask) >= ((j - i) & mask)) {
        idx[i] = v;
        i = j;
      }
    }
    idx[i] = EMPTY;
  }

  /** Starts moving to an index twice the size (finishing a move still running first, which MOVE_STEP makes rare). */
  private startGrowth(): void {
    if (this.old !== undefined) this.move(Number.POSITIVE_INFINITY);
    this.old = this.index;
    this.oldMask = this.mask;
    // Zeroed pages the kernel hands out as they are first written: the move pays for them a few at a time.
    this.index = new Int32Array(this.index.length * 2);
    this.mask = this.index.length - 1;
    this.moved = 0;
  }

  /** Moves up to `n` slots' worth of the old index into the new one; drops the old index at the end. */
  private move(n: number): void {
    const live = this.live;
    const hashes = this.hashes;
    let s = this.moved;
    const end = Math.min(this.used, s + n);
    for (; s < end; s++) {
      const c = s >>> CHUNK_SHIFT;
      const k = s & CHUNK_MASK;
      const v = live[c]![k];
      if (v === LIVE) place(this.index, this.mask, s, hashes[c]![k]!);
      else if (v === IN_NEW) live[c]![k] = LIVE;
    }
    this.moved = s;
    if (s >= this.used) {
      this.old = undefined;
      this.moved = 0;
    }
  }
}

function place(idx: Int32Array, mask: number, slot: number, hash: number): void {
  let i = hash & mask;
  while (idx[i] !== EMPTY) i = (i + 1) & mask;
  idx[i] = slot + 1;
}

function indexSizeFor(slots: number): number {
  let n = 16;
  while (n < slots * 2) n *= 2;
  return n;
}
