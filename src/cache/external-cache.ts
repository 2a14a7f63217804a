// The external cache: connections learned from peers, waiting to be
// committed to the kernel at failover. Keyed like the internal cache
// (entryKey: original tuple + zone); each record remembers which node sent
// it, under which epoch (that node's incarnation) and with which message
// sequence number, and when it was last updated.
//
// Ordering. Datagrams can arrive late or twice (retransmission, reordering
// across links). Every message therefore carries (origin, epoch, seq), and
// a message for a key whose last applied message came from the same origin
// and epoch with a later seq is stale and rejected (a duplicate of the last
// applied message is applied again, harmlessly). Deletes leave a
// tombstone with their (origin, epoch, seq) so that the same check still
// works once the record is gone: without it a late UPDATE would resurrect a
// closed connection. Tombstones live in a bounded LRU (lru-cache) with a TTL
// read from the injected clock: losing one early only reopens the rare race
// it guards, which is the kind of side state an evicting cache may hold.
// Live records are never evicted; past the limit new keys are refused.
//
// A message from another origin, or from the same origin under another
// epoch (it restarted and its sequence numbers began again), always wins.

import { LRUCache } from 'lru-cache';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey } from '../kernel/entry.js';
import type { ReplicaSink } from '../sync/engine/replica-sink.js';
import { seqAfter, seqBefore } from '../sync/engine/seq.js';
import { carriesNothingNew, EntryCompactor, refreshTimeout } from './compact.js';

export type RemoteKind = 'new' | 'update' | 'delete';
export type RemoteResult = 'created' | 'updated' | 'deleted' | 'missing' | 'stale' | 'refused';

/** A cached remote entry. Records are live: a later message for the key updates the same object. */
export interface ExternalRecord<T = ConntrackEntry> {
  readonly entry: T;
  readonly origin: string;
  readonly epoch: number;
  /** u32 sequence number of the last message applied to this key. */
  readonly seq: number;
  /** now() when that message was applied, to the millisecond. */
  readonly updatedAt: number;
  /** What this node's kernel holds of the entry, as far as commit and inject wrote it. */
  readonly kernelCopy: KernelCopy;
}

/**
 * NONE: never written to the kernel by us. STALE: we wrote an older version.
 * CURRENT: we wrote this version. Lets a repeated commit leave the kernel
 * alone, and tells an entry we wrote (update it) from one the kernel had of
 * its own (replace it).
 */
export const KERNEL_NONE = 0;
export const KERNEL_STALE = 1;
export const KERNEL_CURRENT = 2;
export type KernelCopy = typeof KERNEL_NONE | typeof KERNEL_STALE | typeof KERNEL_CURRENT;

/** A conntrack record changed by a peer's message (see ExternalCacheOptions.onChange). */
export type ExternalChange = 'created' | 'updated' | 'deleted';

export interface ExternalCounters {
  created: number;
  updated: number;
  deleted: number;
  /** Deletes for keys not cached. */
  missing: number;
  /** Messages rejected as older than the record or tombstone of their key. */
  stale: number;
  /** New keys turned away because the cache was full. */
  refused: number;
  /** Records removed by endBulk() because the bulk did not carry them. */
  bulkRemoved: number;
  /** Records removed by flush() and flushOrigin(). */
  flushed: number;
}

export interface ExternalCacheOptions {
  /** Most conntrack entries (cache.externalLimit). */
  limit: number;
  /** Most expectations; defaults to limit. */
  expectLimit?: number;
  /** Delete tombstones: how many to keep and for how long. max 0 turns them off. */
  tombstones?: { max: number; ttlMs: number };
  /** Milliseconds; Date.now by default. Drives updatedAt and tombstone expiry. */
  now?: () => number;
  /** Called after a peer's message changed a conntrack record (inject mode writes it to the kernel). */
  onChange?: (key: string, change: ExternalChange, record: ExternalRecord | undefined, entry: ConntrackEntry) => void;
}

export const DEFAULT_TOMBSTONES = { max: 65_536, ttlMs: 60_000 } as const;

/**
 * One (origin, epoch) pair, shared by all its records so that a record holds
 * one pointer instead of a string and a number. `base` lets records store
 * their time as a small offset (see StoredRecord).
 */
class Source {
  constructor(
    readonly origin: string,
    readonly epoch: number,
    readonly base: number,
  ) {}
}

class StoredRecord<T> implements ExternalRecord<T> {
  // seq as int32 and time as a rounded offset: both stay small integers
  // (V8 Smis) instead of a boxed double per record.
  constructor(
    public entry: T,
    public src: Source,
    public seqI32: number,
    public at: number,
    /** Bulk generation this record was last seen in; 0 for none. */
    public bulk: number,
    public kernelCopy: KernelCopy = KERNEL_NONE,
  ) {}

  get origin(): string {
    return this.src.origin;
  }

  get epoch(): number {
    return this.src.epoch;
  }

  get seq(): number {
    return this.seqI32 >>> 0;
  }

  get updatedAt(): number {
    return this.src.base + this.at;
  }
}

interface Tombstone {
  src: Source;
  /** u32 sequence number of the delete. */
  seq: number;
  /** now() of the delete, absolute. */
  at: number;
}

interface OriginState {
  source: Source;
  /** Conntrack records currently held for this origin. */
  entries: number;
  /** Generation of the bulk in progress, 0 when none. */
  bulk: number;
  /** Epoch and seq of the bulk-start message, when beginBulk() was given them. */
  bulkStart: { epoch: number; seq: number } | undefined;
}

class Table<T> {
  onChange: ((key: string, change: ExternalChange, record: StoredRecord<T> | undefined, entry: T) => void) | undefined;
  readonly map = new Map<string, StoredRecord<T>>();
  readonly counters: ExternalCounters = {
    created: 0,
    updated: 0,
    deleted: 0,
    missing: 0,
    stale: 0,
    refused: 0,
    bulkRemoved: 0,
    flushed: 0,
  };
  constructor(
    readonly limit: number,
    /** Whether records count towards OriginState.entries. */
    readonly counted: boolean,
    /**
     * The stored entry updated for an incoming one, without a copy when it
     * carries nothing new; undefined when a copy is needed.
     */
    readonly reuse: (stored: T, incoming: T) => T | undefined,
  ) {}
}

function flatKey(key: string): string {
  // See compact.ts: a stored cons-string key costs twice the memory.
  key.charCodeAt(0);
  return key;
}

export class ExternalCache implements ReplicaSink {
  readonly limit: number;
  readonly expectLimit: number;
  private readonly now: () => number;
  private readonly base: number;
  private readonly ct: Table<ConntrackEntry>;
  private readonly exp: Table<ExpectEntry>;
  private readonly tombs: LRUCache<string, Tombstone> | undefined;
  private readonly tombTtl: number;
  private readonly states = new Map<string, OriginState>();
  private readonly compactor = new EntryCompactor();
  // Bound once: a closure per applied message would be garbage per entry.
  private readonly compactEntry = (e: ConntrackEntry): ConntrackEntry => this.compactor.entry(e);
  private readonly compactExpect = (e: ExpectEntry): ExpectEntry => this.compactor.expect(e);
  private bulkGen = 0;

  constructor(opts: ExternalCacheOptions) {
    this.limit = opts.limit;
    this.expectLimit = opts.expectLimit ?? opts.limit;
    this.now = opts.now ?? Date.now;
    this.base = this.now();
    // A bulk re-sends every entry; keeping the stored copy of the unchanged
    // ones spares the old generation a million replaced objects.
    this.ct = new Table<ConntrackEntry>(this.limit, true, (stored, e) =>
      carriesNothingNew(stored, e, false) ? refreshTimeout(stored, e.timeout) : undefined,
    );
    this.ct.onChange = opts.onChange;
    // Expectations are few: always copied.
    this.exp = new Table<ExpectEntry>(this.expectLimit, false, () => undefined);
    const t = opts.tombstones ?? DEFAULT_TOMBSTONES;
    // No ttl option: lru-cache would then read its own clock. Expiry is
    // checked against the injected one on lookup, so no timers either.
    this.tombs = t.max > 0 ? new LRUCache<string, Tombstone>({ max: t.max }) : undefined;
    this.tombTtl = t.ttlMs;
  }

  get counters(): Readonly<ExternalCounters> {
    return this.ct.counters;
  }

  get expectCounters(): Readonly<ExternalCounters> {
    return this.exp.counters;
  }

  /** Applies one conntrack message from a peer; see the file comment for the ordering rules. */
  applyRemote(origin: string, epoch: number, seq: number, kind: RemoteKind, entry: ConntrackEntry): RemoteResult {
    return this.applyTo(this.ct, entryKey(entry), origin, epoch, seq, kind, entry, this.compactEntry);
  }

  /** applyRemote() for expectations. */
  applyRemoteExpect(origin: string, epoch: number, seq: number, kind: RemoteKind, entry: ExpectEntry): RemoteResult {
    return this.applyTo(this.exp, expectKey(entry), origin, epoch, seq, kind, entry, this.compactExpect);
  }

  /**
   * Starts a bulk (full state transfer) from `origin`. Until endBulk(), every
   * record that origin's messages create or update is marked as carried.
   * Starting again restarts the marking.
   *
   * Pass `start`, the epoch and seq of the bulk-start message itself, when it
   * has one: a record whose last message from that epoch is not before it
   * also counts as carried. That keeps bulk entries processed before a
   * retransmitted or reordered bulk-start from being removed at endBulk().
   */
  beginBulk(origin: string, start?: { epoch: number; seq: number }): void {
    const gen = ++this.bulkGen;
    let st = this.states.get(origin);
    if (st === undefined) {
      st = { source: new Source(origin, start?.epoch ?? 0, this.base), entries: 0, bulk: 0, bulkStart: undefined };
      this.states.set(origin, st);
    }
    st.bulk = gen;
    st.bulkStart = start === undefined ? undefined : { epoch: start.epoch, seq: start.seq >>> 0 };
  }

  /**
   * Ends the bulk from `origin`: its records (conntrack and expectation)
   * that the bulk did not carry are removed, since the peer no longer has
   * them. Returns how many were removed; 0 without a bulk in progress.
   */
  endBulk(origin: string): number {
    const st = this.states.get(origin);
    if (st === undefined || st.bulk === 0) return 0;
    const gen = st.bulk;
    const start = st.bulkStart;
    st.bulk = 0;
    st.bulkStart = undefined;
    const stale = (r: StoredRecord<unknown>): boolean =>
      r.src.origin === origin &&
      r.bulk !== gen &&
      !(start !== undefined && r.src.epoch === start.epoch && !seqBefore(r.seqI32 >>> 0, start.seq));
    const n1 = this.removeWhere(this.ct, stale);
    const n2 = this.removeWhere(this.exp, stale);
    this.ct.counters.bulkRemoved += n1;
    this.exp.counters.bulkRemoved += n2;
    return n1 + n2;
  }

  /** Whether a bulk from `origin` is in progress. */
  inBulk(origin: string): boolean {
    return (this.states.get(origin)?.bulk ?? 0) !== 0;
  }

  /** Removes every record of `origin`; returns how many (conntrack and expectation). */
  flushOrigin(origin: string): number {
    const n1 = this.removeWhere(this.ct, (r) => r.src.origin === origin);
    const n2 = this.removeWhere(this.exp, (r) => r.src.origin === origin);
    this.ct.counters.flushed += n1;
    this.exp.counters.flushed += n2;
    return n1 + n2;
  }

  /** Forgets everything, tombstones and bulks in progress included. */
  flush(): void {
    this.ct.counters.flushed += this.ct.map.size;
    this.exp.counters.flushed += this.exp.map.size;
    this.ct.map.clear();
    this.exp.map.clear();
    this.tombs?.clear();
    this.states.clear();
  }

  get(key: string): ExternalRecord | undefined {
    return this.ct.map.get(key);
  }

  has(key: string): boolean {
    return this.ct.map.has(key);
  }

  get size(): number {
    return this.ct.map.size;
  }

  /** Live view in insertion order, e.g. for commit and dumps; do not mutate entries. */
  entries(): IterableIterator<[string, ExternalRecord]> {
    return this.ct.map.entries();
  }

  /** entries() without the keys (and without a [key, record] pair per step). */
  records(): IterableIterator<ExternalRecord> {
    return this.ct.map.values();
  }

  getExpect(key: string): ExternalRecord<ExpectEntry> | undefined {
    return this.exp.map.get(key);
  }

  get expectSize(): number {
    return this.exp.map.size;
  }

  expectEntries(): IterableIterator<[string, ExternalRecord<ExpectEntry>]> {
    return this.exp.map.entries();
  }

  /** Conntrack records held per origin (origins holding none are left out). */
  origins(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [origin, st] of this.states) if (st.entries > 0) out.set(origin, st.entries);
    return out;
  }

  /**
   * Records that the kernel now holds `record` as it was at `seq` (commit or
   * inject wrote it). Ignored when the record changed or left meanwhile: the
   * kernel then holds an older version.
   */
  noteInKernel(record: ExternalRecord, seq: number): void {
    // No lookup by key: a record that left the cache meanwhile is no longer
    // reachable from it, so marking it changes nothing anyone can see, and a
    // commit spares a hash lookup per entry.
    if (!(record instanceof StoredRecord)) return;
    record.kernelCopy = record.seqI32 >>> 0 === seq >>> 0 ? KERNEL_CURRENT : KERNEL_STALE;
  }

  /** Tombstones held, expired ones included until they are looked up or evicted. */
  get tombstoneCount(): number {
    return this.tombs?.size ?? 0;
  }

  private applyTo<T>(
    table: Table<T>,
    key: string,
    origin: string,
    epoch: number,
    seq: number,
    kind: RemoteKind,
    entry: T,
    compact: (e: T) => T,
  ): RemoteResult {
    const c = table.counters;
    seq >>>= 0;
    const now = this.now();
    const rec = table.map.get(key);
    if (rec !== undefined) {
      if (rec.src.origin === origin && rec.src.epoch === epoch && seqBefore(seq, rec.seqI32 >>> 0)) {
        c.stale++;
        return 'stale';
      }
    } else if (this.buriedAfter(key, origin, epoch, seq, now)) {
      c.stale++;
      return 'stale';
    }
    const st = this.stateFor(origin, epoch);
    if (kind === 'delete') {
      this.bury(key, st.source, seq, now);
      if (rec === undefined) {
        c.missing++;
        return 'missing';
      }
      table.map.delete(key);
      if (table.counted) this.uncount(rec.src.origin);
      c.deleted++;
      table.onChange?.(key, 'deleted', undefined, entry);
      return 'deleted';
    }
    const at = Math.round(now - this.base);
    if (rec !== undefined) {
      if (table.counted && rec.src.origin !== origin) {
        this.uncount(rec.src.origin);
        st.entries++;
      }
      const reused = table.reuse(rec.entry, entry);
      rec.entry = reused ?? compact(entry);
      // A refresh that carries nothing new leaves the kernel's copy current.
      if (reused === undefined && rec.kernelCopy === KERNEL_CURRENT) rec.kernelCopy = KERNEL_STALE;
      rec.src = st.source;
      rec.seqI32 = seq | 0;
      rec.at = at;
      if (st.bulk !== 0) rec.bulk = st.bulk;
      c.updated++;
      table.onChange?.(key, 'updated', rec, rec.entry);
      return 'updated';
    }
    if (table.map.size >= table.limit) {
      c.refused++;
      return 'refused';
    }
    const created = new StoredRecord(compact(entry), st.source, seq | 0, at, st.bulk);
    table.map.set(flatKey(key), created);
    if (table.counted) st.entries++;
    // The live record's own (origin, epoch, seq) guards the key from now on.
    if (this.tombs !== undefined && this.tombs.size > 0) this.tombs.delete(key);
    c.created++;
    table.onChange?.(key, 'created', created, created.entry);
    return 'created';
  }

  /** Whether a live tombstone of the same origin and epoch is newer than seq. */
  private buriedAfter(key: string, origin: string, epoch: number, seq: number, now: number): boolean {
    // Most records arrive with no delete pending anywhere: skip the lookup.
    if (this.tombs === undefined || this.tombs.size === 0) return false;
    const t = this.tombs.peek(key);
    if (t === undefined) return false;
    if (now - t.at > this.tombTtl) {
      this.tombs?.delete(key);
      return false;
    }
    return t.src.origin === origin && t.src.epoch === epoch && seqBefore(seq, t.seq);
  }

  private bury(key: string, src: Source, seq: number, now: number): void {
    const tombs = this.tombs;
    if (tombs === undefined) return;
    const t = tombs.peek(key);
    // A duplicate or reordered delete must not move a tombstone backwards.
    if (t !== undefined && t.src.origin === src.origin && t.src.epoch === src.epoch && seqAfter(t.seq, seq)) return;
    tombs.set(key, { src, seq, at: now });
  }

  private stateFor(origin: string, epoch: number): OriginState {
    let st = this.states.get(origin);
    if (st === undefined) {
      st = { source: new Source(origin, epoch, this.base), entries: 0, bulk: 0, bulkStart: undefined };
      this.states.set(origin, st);
    } else if (st.source.epoch !== epoch) {
      st.source = new Source(st.source.origin, epoch, this.base);
    }
    return st;
  }

  private uncount(origin: string): void {
    const st = this.states.get(origin);
    if (st !== undefined) st.entries--;
  }

  private removeWhere<T>(table: Table<T>, pred: (r: StoredRecord<T>) => boolean): number {
    let n = 0;
    for (const [key, rec] of table.map) {
      if (pred(rec)) {
        table.map.delete(key);
        if (table.counted) this.uncount(rec.src.origin);
        n++;
      }
    }
    return n;
  }
}
