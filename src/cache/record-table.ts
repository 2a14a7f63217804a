// A table of conntrack records (src/kernel/ct-record.ts) in one growing
// typed array, indexed by an open-addressing hash table on their key words.
// It replaces a Map from string keys to entry objects: no key string, no
// object per entry, nothing in it for the garbage collector to trace.
//
// Slots are stable while their record lives (callers keep per-slot data in
// arrays of their own, sized by `capacity`); freed slots are reused, so
// iteration order is slot order, not insertion order. Records sit in chunks
// of CHUNK_RECORDS that are never copied: on this kind of machine a page
// touched for the first time costs more than writing the records in it, so
// a slab that doubles by copying pays for its memory two or three times. The index is linear
// probing at most half full, with backward-shift deletion: no tombstones to
// slow lookups after churn.

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
const CHUNK_SHIFT = 14;
/** Records per chunk: 16384 × 104 bytes, 1.6 MiB. */
export const CHUNK_RECORDS = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_RECORDS - 1;

export class RecordTable {
  /** The records, CHUNK_RECORDS per chunk; see recOf(). */
  private readonly chunks: RecordBuf[] = [];
  /** Rare fields per slot (see RecordExtras). */
  private extras: (RecordExtras | undefined)[] = [];
  private hashes: Int32Array;
  private live: Uint8Array;
  /** slot + 1 per index position, EMPTY for none. */
  private index: Int32Array;
  private mask: number;
  private free: number[] = [];
  /** Slots ever handed out; slots above it are untouched. */
  private used = 0;
  private count = 0;

  constructor(initialSlots = 1024) {
    const cap = Math.max(16, initialSlots);
    this.hashes = new Int32Array(cap);
    this.live = new Uint8Array(cap);
    const size = indexSizeFor(cap);
    this.index = new Int32Array(size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Slots the arrays hold now; per-slot data of callers must cover this many. */
  get capacity(): number {
    return this.live.length;
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
    const idx = this.index;
    const mask = this.mask;
    const chunks = this.chunks;
    const hashes = this.hashes;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const v = idx[i]!;
      if (v === EMPTY) return -1;
      const slot = v - 1;
      if (hashes[slot] === hash && sameRecordKey(chunks[slot >>> CHUNK_SHIFT]!.w, (slot & CHUNK_MASK) * REC_WORDS, src, at))
        return slot;
    }
  }

  /**
   * Copies the record at `src.w[at]` into a new slot and indexes it; the
   * caller has made sure its key is not in the table. Returns the slot.
   */
  insert(src: Int32Array, at: number, extras: RecordExtras | undefined, hash: number = recordHash(src, at)): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used === this.capacity) this.grow();
      slot = this.used++;
      if (slot >>> CHUNK_SHIFT === this.chunks.length) this.chunks.push(recordBuf(CHUNK_RECORDS));
    }
    copyRecordWords(src, at, this.recOf(slot).w, this.at(slot));
    this.hashes[slot] = hash;
    this.live[slot] = 1;
    if (extras !== undefined || this.extras[slot] !== undefined) this.extras[slot] = extras;
    this.count++;
    if (this.count * 2 > this.index.length) this.rehash(this.index.length * 2);
    else this.place(slot, hash);
    return slot;
  }

  /** Overwrites a live slot's record (same key) with the one at `src.w[at]`. */
  overwrite(slot: number, src: Int32Array, at: number): void {
    copyRecordWords(src, at, this.recOf(slot).w, this.at(slot));
  }

  remove(slot: number): void {
    if (this.live[slot] !== 1) return;
    const idx = this.index;
    const mask = this.mask;
    let i = this.hashes[slot]! & mask;
    while (idx[i] !== slot + 1) i = (i + 1) & mask;
    // Backward shift: pull later members of the probe run into the hole.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const v = idx[j]!;
      if (v === EMPTY) break;
      const home = this.hashes[v - 1]! & mask;
      // Movable when its home is not in the (cyclic) range (i, j].
      if (((j - home) & mask) >= ((j - i) & mask)) {
        idx[i] = v;
        i = j;
      }
    }
    idx[i] = EMPTY;
    this.live[slot] = 0;
    if (this.extras[slot] !== undefined) this.extras[slot] = undefined;
    this.free.push(slot);
    this.count--;
  }

  isLive(slot: number): boolean {
    return this.live[slot] === 1;
  }

  /** The first live slot after `slot` (-1 to start), or -1: `for (let s = t.next(-1); s >= 0; s = t.next(s))`. */
  next(slot: number): number {
    const live = this.live;
    for (let s = slot + 1; s < this.used; s++) if (live[s] === 1) return s;
    return -1;
  }

  clear(): void {
    this.index.fill(EMPTY);
    this.live.fill(0);
    this.extras = [];
    // The chunks stay: a flushed table is usually refilled.
    this.free = [];
    this.used = 0;
    this.count = 0;
  }

  private place(slot: number, hash: number): void {
    const idx = this.index;
    const mask = this.mask;
    let i = hash & mask;
    while (idx[i] !== EMPTY) i = (i + 1) & mask;
    idx[i] = slot + 1;
  }

  private rehash(size: number): void {
    this.index = new Int32Array(size);
    this.mask = size - 1;
    const live = this.live;
    for (let s = 0; s < this.used; s++) if (live[s] === 1) this.place(s, this.hashes[s]!);
  }

  /** Grows the per-slot arrays (5 bytes a slot; the records are chunked). */
  private grow(): void {
    const cap = this.capacity * 2;
    const hashes = new Int32Array(cap);
    hashes.set(this.hashes);
    this.hashes = hashes;
    const live = new Uint8Array(cap);
    live.set(this.live);
    this.live = live;
  }
}

function indexSizeFor(slots: number): number {
  let n = 16;
  while (n < slots * 2) n *= 2;
  return n;
}

