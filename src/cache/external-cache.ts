// The external cache: connections learned from peers, waiting to be
// committed to the kernel at failover. Keyed like the internal cache
// (original tuple + zone); each record remembers which node sent it, under
// which epoch (that node's incarnation) and with which message sequence
// number, and when it was last updated.
//
// Storage. Conntrack entries are records (src/kernel/ct-record.ts) in a
// RecordTable, and what the cache knows of each is kept in typed arrays by
// slot: no object per entry, so a million peers' flows cost the garbage
// collector nothing to trace. ExternalRecord objects are made only when
// someone asks (commit, dumps, inject, tests). Expectations, a few per
// FTP or SIP control flow, stay objects in a Map.
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
// it guards, which is the kind of side state an evicting cache may hold. The
// LRU is made at the first delete: loading lru-cache and building one for
// 65,536 keys took ~20 ms of CPU on the start-up path (issue 13), and a
// restarted node receiving its peers' bulk has no delete to remember.
// Live records are never evicted; past the limit new keys are refused.
//
// A message from another origin, or from the same origin under another
// epoch (it restarted and its sequence numbers began again), always wins.
//
// Shared keys. Two origins can hold the same connection at once: a node
// that committed its peers' entries and took them into its own table (a
// resync, an overrun's resync, an operator's commit without failover)
// while the owner still forwards them, or the new primary of a failover
// until the old one's purge. The table holds the copy of the latest
// message; each other origin's copy waits beside it as a shadow (a pooled
// record with its own origin, epoch and seq). A delete removes only the
// sender's copy: when that was the table's, the newest shadow takes its
// place. Without that, a delete from one origin took away a connection
// another origin still held, and nothing sent it again until its next
// update (RELIABILITY.md, finding 1). Shadows are few and objects; their
// number is bounded by `limit` (past it a takeover drops the old copy, as
// before), so forged origins cannot grow them without end.

import { createRequire } from 'node:module';
import type { LRUCache } from 'lru-cache';
import {
  type EntryIdentity,
  EntryRecord,
  F_TIMEOUT,
  recordKeyString,
  type RecordBuf,
  type RecordExtras,
  readEntryRecord,
  recordBuf,
  recordHash,
  RecordPool,
  W_FLAGS,
  W_TIMEOUT,
  writeEntryRecord,
  writeKeyWords,
} from '../kernel/ct-record.js';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey } from '../kernel/entry.js';
import type { ReplicaSink } from '../sync/engine/replica-sink.js';
import { seqAfter, seqBefore } from '../sync/engine/seq.js';
import { EntryCompactor, recordCarriesNothingNew, refreshTimeout } from './compact.js';
import { newPeerEntryCounters, PEER_FIXED, PEER_REJECT, type PeerEntryCheck, type PeerEntryCounters } from './peer-validate.js';
import { SlotInts, SlotRefs } from '../common/slot-ints.js';
import { RecordTable } from './record-table.js';

export type RemoteKind = 'new' | 'update' | 'delete';
export type RemoteResult = 'created' | 'updated' | 'deleted' | 'missing' | 'stale' | 'refused' | 'filtered';

/**
 * A cached remote entry, as the cache hands it out. Its numbers are live
 * (a later message for the key shows in seq, updatedAt, kernelCopy) while
 * the key stays cached; `entry` is the entry as it was when the object was
 * made.
 */
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
  /** Records of pruned peers (release()) removed to make room for a live peer's new key. */
  released: number;
  /** Deletes that removed one origin's copy of a key another origin still holds (the key stays). */
  copyDeleted: number;
  /** Takeovers that dropped the old origin's copy because `limit` shadows were held already. */
  shadowsRefused: number;
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
  /** Records to make room for at first; the table grows by doubling. */
  initialSlots?: number;
  /**
   * Judges and fixes each peer's new or updated entry before it is stored
   * (local filter, status allow-list, timeout cap: peer-validate.ts). None
   * by default: every entry is taken as it comes.
   */
  peerCheck?: PeerEntryCheck;
  /**
   * How many origins share `limit`: a new key from an origin already holding
   * floor(limit / shareDivisor()) entries is refused (counted overShare),
   * so one peer cannot take the room of another. 1 by default (no share).
   */
  shareDivisor?: () => number;
}

export const DEFAULT_TOMBSTONES = { max: 65_536, ttlMs: 60_000 } as const;

let lruCache: typeof LRUCache | undefined;
/** lru-cache's class, required on first use (see the file comment). */
function lruCacheClass(): typeof LRUCache {
  return (lruCache ??= (createRequire(import.meta.url)('lru-cache') as typeof import('lru-cache')).LRUCache);
}

/**
 * One (origin, epoch) pair, shared by all its records so that a record holds
 * one pointer instead of a string and a number. `base` lets records store
 * their time as a small offset.
 */
class Source {
  constructor(
    readonly origin: string,
    /** Changes only when the origin's stream goes on in a new epoch (continueEpoch). */
    public epoch: number,
    readonly base: number,
  ) {}
}

/** An expectation record: expectations stay objects (see the file comment). */
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

/**
 * A conntrack record handed out by the cache: the slot and the generation
 * it had, so that a slot freed and reused meanwhile is told apart.
 */
export class SlotRecord implements ExternalRecord {
  private readonly src0: Source;
  private readonly seq0: number;
  private readonly at0: number;
  private readonly copy0: KernelCopy;
  private made: ConntrackEntry | undefined;

  constructor(
    private readonly cache: ExternalCache,
    readonly slot: number,
    readonly gen: number,
    /** A copy of the record as it was when this object was made: what commit writes. */
    readonly record: EntryRecord,
  ) {
    const m = cache.slotMeta;
    this.src0 = m.src.get(slot)!;
    this.seq0 = m.seq.get(slot);
    this.at0 = m.at.get(slot);
    this.copy0 = m.copy.get(slot) as KernelCopy;
  }

  /** The entry, made from the record on first use. */
  get entry(): ConntrackEntry {
    return (this.made ??= this.record.entry());
  }

  /** Whether the entry names a master connection (an expected one: committed after the masters). */
  get related(): boolean {
    const x = this.record.x;
    return x !== undefined && (x.master !== undefined || x.whole?.master !== undefined);
  }

  /** Whether the key still holds the record this object was made of. */
  get current(): boolean {
    return this.cache.holds(this.slot, this.gen);
  }

  get origin(): string {
    return (this.current ? this.cache.slotMeta.src.get(this.slot)! : this.src0).origin;
  }

  get epoch(): number {
    return (this.current ? this.cache.slotMeta.src.get(this.slot)! : this.src0).epoch;
  }

  get seq(): number {
    return this.current ? this.cache.slotSeq(this.slot) : this.seq0 >>> 0;
  }

  get updatedAt(): number {
    return this.current ? this.cache.slotUpdatedAt(this.slot) : this.src0.base + this.at0;
  }

  get kernelCopy(): KernelCopy {
    return this.current ? this.cache.slotKernelCopy(this.slot) : (this.copy0 as KernelCopy);
  }
}

interface Tombstone {
  src: Source;
  /** u32 sequence number of the delete. */
  seq: number;
  /** now() of the delete, absolute. */
  at: number;
}

/** Another origin's copy of a key the table holds under a newer message (see "Shared keys"). */
interface Shadow {
  /** Pooled copy of the record as that origin last sent it. */
  rec: EntryRecord;
  src: Source;
  /** u32 seq as int32, time and bulk generation: as SlotMeta keeps them. */
  seq: number;
  at: number;
  bulk: number;
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

function emptyCounters(): ExternalCounters {
  return {
    created: 0,
    updated: 0,
    deleted: 0,
    missing: 0,
    stale: 0,
    refused: 0,
    bulkRemoved: 0,
    flushed: 0,
    released: 0,
    copyDeleted: 0,
    shadowsRefused: 0,
  };
}

/**
 * The conntrack records one commit writes (ExternalCache.commitOrder): slots
 * and the generation each had, no object per record.
 */
export interface CommitOrder {
  /** Masters in [0, masters), then related entries, which name their master and must follow it. */
  slots: Int32Array;
  gens: Uint32Array;
  masters: number;
  /** Origins of these records, sorted. */
  peers: string[];
}

/**
 * What the cache knows of each conntrack record, by slot, in chunked arrays
 * that grow a chunk at a time (src/common/slot-ints.ts): arrays doubled by
 * copying stopped the receiver for tens of milliseconds at each power of two.
 */
interface SlotMeta {
  readonly src: SlotRefs<Source>;
  /** u32 sequence number of the last applied message, stored as int32. */
  readonly seq: SlotInts;
  /** updatedAt - src.base, rounded to the millisecond. */
  readonly at: SlotInts;
  /** Bulk generation the record was last seen in; 0 for none. */
  readonly bulk: SlotInts;
  /** KernelCopy. */
  readonly copy: SlotInts;
  /** u32, bumped each time the slot takes a new key, for SlotRecord.current (stored as int32). */
  readonly gen: SlotInts;
}

function slotMeta(): SlotMeta {
  return { src: new SlotRefs(), seq: new SlotInts(), at: new SlotInts(), bulk: new SlotInts(), copy: new SlotInts(), gen: new SlotInts() };
}

/** Makes every per-slot array cover slots below n (a chunk at a time). */
function coverSlotMeta(m: SlotMeta, n: number): void {
  m.src.cover(n);
  m.seq.cover(n);
  m.at.cover(n);
  m.bulk.cover(n);
  m.copy.cover(n);
  m.gen.cover(n);
}

export class ExternalCache implements ReplicaSink {
  readonly limit: number;
  readonly expectLimit: number;
  private readonly now: () => number;
  private readonly base: number;
  private readonly table: RecordTable;
  /** Per-slot state; read by SlotRecord. */
  readonly slotMeta: SlotMeta = slotMeta();
  private readonly ctCounters: ExternalCounters = emptyCounters();
  private readonly onChange: ExternalCacheOptions['onChange'];
  private readonly exp = new Map<string, StoredRecord<ExpectEntry>>();
  private readonly expCounters: ExternalCounters = emptyCounters();
  /** Made by bury() on the first delete; undefined until then (and always when tombstones are off). */
  private tombs: LRUCache<string, Tombstone> | undefined;
  private readonly tombMax: number;
  /** Other origins' copies of held keys, by key string (see "Shared keys"). */
  private readonly shadows = new Map<string, Shadow[]>();
  private shadowCount = 0;
  private readonly tombTtl: number;
  private readonly states = new Map<string, OriginState>();
  /** Expectations held per origin (their share of the expectation limit). */
  private readonly expectsBy = new Map<string, number>();
  /** Origins pruned by the sync layer (release()): first to go when the cache is full. */
  private readonly released = new Set<string>();
  private readonly compactor = new EntryCompactor();
  // Bound once: a closure per applied message would be garbage per entry.
  private readonly compactEntry = (e: ConntrackEntry): ConntrackEntry => this.compactor.entry(e);
  /** Where incoming entries are written before they are compared and stored. */
  private readonly scratch: RecordBuf = recordBuf(1);
  /** Where recordAt() copies records (see SlotRecord). */
  private readonly pool = new RecordPool();
  /** currentRecord()'s view, re-pointed on each call. */
  private readonly view = new EntryRecord(this.scratch.w, this.scratch.b, 0, undefined);
  private bulkGen = 0;
  private readonly peerCheck: PeerEntryCheck | undefined;
  private readonly shareDivisor: (() => number) | undefined;
  /** What peerCheck and the per-origin share fixed and refused. */
  readonly peerCounters: PeerEntryCounters;

  constructor(opts: ExternalCacheOptions) {
    this.peerCheck = opts.peerCheck;
    this.shareDivisor = opts.shareDivisor;
    this.peerCounters = opts.peerCheck?.counters ?? newPeerEntryCounters();
    this.limit = opts.limit;
    this.expectLimit = opts.expectLimit ?? opts.limit;
    this.now = opts.now ?? Date.now;
    this.base = this.now();
    this.table = new RecordTable(Math.min(opts.initialSlots ?? 1024, Math.max(16, this.limit)));
    this.onChange = opts.onChange;
    const t = opts.tombstones ?? DEFAULT_TOMBSTONES;
    this.tombMax = t.max;
    this.tombTtl = t.ttlMs;
  }

  get counters(): Readonly<ExternalCounters> {
    return this.ctCounters;
  }

  get expectCounters(): Readonly<ExternalCounters> {
    return this.expCounters;
  }

  /** Applies one conntrack message from a peer; see the file comment for the ordering rules. */
  applyRemote(
    origin: string,
    epoch: number,
    seq: number,
    kind: RemoteKind,
    entry: ConntrackEntry | EntryRecord,
  ): RemoteResult {
    if (entry instanceof EntryRecord) return this.applyRecord(origin, epoch, seq, kind, entry, entry.at, entry.x);
    const r = this.scratch;
    const x = writeEntryRecord(entry, r, 0, this.compactEntry);
    if (x === false) {
      // No decoder makes such an entry (see writeEntryRecord): nothing to key it by.
      this.ctCounters.refused++;
      return 'refused';
    }
    return this.applyRecord(origin, epoch, seq, kind, r, 0, x);
  }

  /**
   * applyRemote() for an entry already written as a record at `r.w[at]`
   * with its extras: the wire decoder's way in, without an entry object.
   * The record is only read (a fix goes to the cache's scratch copy).
   */
  applyRecord(
    origin: string,
    epoch: number,
    seq: number,
    kind: RemoteKind,
    r: RecordBuf,
    at: number,
    extras: RecordExtras | undefined,
  ): RemoteResult {
    const c = this.ctCounters;
    seq >>>= 0;
    const now = this.now();
    const t = this.table;
    const hash = recordHash(r.w, at);
    const slot = t.find(r.w, at, hash);
    const m = this.slotMeta;
    // Another origin's message for a held key: compared with that origin's own copy (a shadow) or tombstone.
    let key: string | undefined;
    let own: Shadow | undefined;
    if (slot >= 0) {
      const src = m.src.get(slot)!;
      if (src.origin === origin) {
        if (src.epoch === epoch && seqBefore(seq, m.seq.get(slot) >>> 0)) {
          c.stale++;
          return 'stale';
        }
      } else {
        key = recordKeyString(r.w, at);
        own = this.shadowOf(key, origin);
        if (own !== undefined ? own.src.epoch === epoch && seqBefore(seq, own.seq >>> 0) : this.buriedAfter(key, origin, epoch, seq, now)) {
          c.stale++;
          return 'stale';
        }
      }
    } else if (this.tombs !== undefined && this.tombs.size > 0 && this.buriedAfter(recordKeyString(r.w, at), origin, epoch, seq, now)) {
      c.stale++;
      return 'stale';
    }
    const check = this.peerCheck;
    if (kind !== 'delete' && check !== undefined) {
      const v = check.check(r, at, extras, this.scratch);
      if (v === PEER_REJECT) {
        // What the filter rejects is not held: the origin's cached copy of the key (its state before) goes too.
        if (slot >= 0 && this.dropCopy(slot, origin, r, at, extras)) c.deleted++;
        return 'filtered';
      }
      if (v === PEER_FIXED) {
        r = this.scratch;
        at = 0;
        extras = check.fixedExtras;
      }
    }
    const st = this.stateFor(origin, epoch);
    if (kind === 'delete') {
      if (this.tombMax > 0) this.bury(key ?? recordKeyString(r.w, at), st.source, seq, now);
      if (slot < 0 || (key !== undefined && own === undefined)) {
        c.missing++;
        return 'missing';
      }
      this.dropCopy(slot, origin, r, at, extras);
      c.deleted++;
      return 'deleted';
    }
    const time = Math.round(now - this.base);
    if (slot >= 0) {
      if (key !== undefined) this.takeOver(slot, key, st, own);
      const w = t.recOf(slot).w;
      const so = t.at(slot);
      const sx = t.extrasOf(slot);
      if (recordCarriesNothingNew(w, so, sx, r.w, at, extras)) {
        // A refresh that carries nothing new leaves the kernel's copy current.
        if (r.w[at + W_FLAGS]! & F_TIMEOUT) {
          w[so + W_TIMEOUT] = r.w[at + W_TIMEOUT]!;
          w[so + W_FLAGS] |= F_TIMEOUT;
          if (sx?.whole !== undefined) sx.whole = refreshTimeout(sx.whole, r.w[at + W_TIMEOUT]! >>> 0);
        }
      } else {
        t.overwrite(slot, r.w, at);
        t.setExtras(slot, extras);
        if (m.copy.get(slot) === KERNEL_CURRENT) m.copy.set(slot, KERNEL_STALE);
      }
      m.src.set(slot, st.source);
      m.seq.set(slot, seq | 0);
      m.at.set(slot, time);
      if (st.bulk !== 0) m.bulk.set(slot, st.bulk);
      c.updated++;
      if (this.onChange !== undefined) this.onChange(recordKeyString(r.w, at), 'updated', this.recordAt(slot), this.entryAt(slot));
      return 'updated';
    }
    if (t.size >= this.limit && !this.makeRoom(origin)) {
      c.refused++;
      return 'refused';
    }
    if (this.shareDivisor !== undefined && st.entries >= Math.floor(this.limit / this.shareDivisor())) {
      this.peerCounters.overShare++;
      return 'refused';
    }
    const created = t.insert(r.w, at, extras, hash);
    const n = this.slotMeta;
    if (created >= n.seq.length) coverSlotMeta(n, created + 1);
    n.src.set(created, st.source);
    n.seq.set(created, seq | 0);
    n.at.set(created, time);
    n.bulk.set(created, st.bulk);
    n.copy.set(created, KERNEL_NONE);
    n.gen.set(created, (n.gen.get(created) + 1) >>> 0);
    st.entries++;
    // The live record's own (origin, epoch, seq) guards the key from now on.
    if (this.tombs !== undefined && this.tombs.size > 0) this.tombs.delete(recordKeyString(r.w, at));
    c.created++;
    if (this.onChange !== undefined) this.onChange(recordKeyString(r.w, at), 'created', this.recordAt(created), this.entryAt(created));
    return 'created';
  }

  /** applyRemote() for expectations. */
  applyRemoteExpect(origin: string, epoch: number, seq: number, kind: RemoteKind, entry: ExpectEntry): RemoteResult {
    const c = this.expCounters;
    const key = expectKey(entry);
    seq >>>= 0;
    const now = this.now();
    const rec = this.exp.get(key);
    if (rec !== undefined) {
      if (rec.src.origin === origin && rec.src.epoch === epoch && seqBefore(seq, rec.seqI32 >>> 0)) {
        c.stale++;
        return 'stale';
      }
    } else if (this.tombs !== undefined && this.tombs.size > 0 && this.buriedAfter(key, origin, epoch, seq, now)) {
      c.stale++;
      return 'stale';
    }
    if (kind !== 'delete' && this.peerCheck !== undefined && !this.peerCheck.checkExpect(entry)) {
      // As for conntrack entries: what the policy rejects is not held, a cached copy of the key included.
      if (rec !== undefined) this.dropExpect(key, rec);
      return 'filtered';
    }
    const st = this.stateFor(origin, epoch);
    if (kind === 'delete') {
      this.bury(key, st.source, seq, now);
      if (rec === undefined) {
        c.missing++;
        return 'missing';
      }
      this.dropExpect(key, rec);
      c.deleted++;
      return 'deleted';
    }
    const at = Math.round(now - this.base);
    if (rec !== undefined) {
      // Expectations are few: always copied.
      rec.entry = this.compactor.expect(entry);
      if (rec.kernelCopy === KERNEL_CURRENT) rec.kernelCopy = KERNEL_STALE;
      if (rec.src.origin !== origin) {
        // Another origin takes the key over: it counts against that one's share now.
        this.dropExpect(key, rec);
        this.exp.set(flatKey(key), rec);
        this.expectsBy.set(origin, (this.expectsBy.get(origin) ?? 0) + 1);
      }
      rec.src = st.source;
      rec.seqI32 = seq | 0;
      rec.at = at;
      if (st.bulk !== 0) rec.bulk = st.bulk;
      c.updated++;
      return 'updated';
    }
    if (this.exp.size >= this.expectLimit) {
      c.refused++;
      return 'refused';
    }
    const held = this.expectsBy.get(origin) ?? 0;
    if (this.shareDivisor !== undefined && held >= Math.floor(this.expectLimit / this.shareDivisor())) {
      this.peerCounters.overShare++;
      return 'refused';
    }
    this.expectsBy.set(origin, held + 1);
    this.exp.set(flatKey(key), new StoredRecord(this.compactor.expect(entry), st.source, seq | 0, at, st.bulk));
    if (this.tombs !== undefined && this.tombs.size > 0) this.tombs.delete(key);
    c.created++;
    return 'created';
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
    const stale = (src: Source, bulk: number, seq: number): boolean =>
      src.origin === origin &&
      bulk !== gen &&
      !(start !== undefined && src.epoch === start.epoch && !seqBefore(seq >>> 0, start.seq));
    const n1 = this.removeCopiesWhere(stale);
    const n2 = this.removeExpectWhere((r) => stale(r.src, r.bulk, r.seqI32));
    this.ctCounters.bulkRemoved += n1;
    this.expCounters.bulkRemoved += n2;
    return n1 + n2;
  }

  /**
   * `origin` took a new epoch without restarting (a rollover): its
   * sequence numbers go on from where they were, so its records of epoch
   * `from` become records of `to`, ordered by seq against what comes next
   * rather than overwritten by anything of the new epoch (a retransmitted
   * old message would otherwise win over a newer one). Records older than
   * `floor` are moved up to it (CARRY_SPAN in seq.ts says why).
   */
  continueEpoch(origin: string, from: number, to: number, floor: number): void {
    const st = this.states.get(origin);
    if (st === undefined) return;
    const src = st.source.epoch === from || st.source.epoch === to ? st.source : new Source(origin, to, this.base);
    src.epoch = to;
    st.source = src;
    if (st.bulkStart?.epoch === from) st.bulkStart.epoch = to;
    floor >>>= 0;
    // Every record of the pair, whichever Source object it was made with, joins the one of the stream.
    const carried = (s: Source): boolean => s === src || (s.origin === origin && s.epoch === from);
    const m = this.slotMeta;
    const t = this.table;
    for (let s = t.next(-1); s >= 0; s = t.next(s)) {
      if (!carried(m.src.get(s)!)) continue;
      m.src.set(s, src);
      if (seqBefore(m.seq.get(s) >>> 0, floor)) m.seq.set(s, floor | 0);
    }
    for (const list of this.shadows.values()) {
      for (const x of list) {
        if (!carried(x.src)) continue;
        x.src = src;
        if (seqBefore(x.seq >>> 0, floor)) x.seq = floor | 0;
      }
    }
    for (const r of this.exp.values()) {
      if (!carried(r.src)) continue;
      r.src = src;
      if (seqBefore(r.seqI32 >>> 0, floor)) r.seqI32 = floor | 0;
    }
  }

  /** Whether a bulk from `origin` is in progress. */
  inBulk(origin: string): boolean {
    return (this.states.get(origin)?.bulk ?? 0) !== 0;
  }

  /** Removes every record of `origin`; returns how many (conntrack and expectation). */
  flushOrigin(origin: string): number {
    return this.removeOrigin(origin, 'flushed');
  }

  /**
   * `origin` was pruned (silent too long, and not in cluster.nodes): its
   * records stay, since a peer cut off by a long partition may still be the
   * one whose connections a failover must keep, but they give way when the
   * cache is full and a live origin needs room. Without that, ids that come
   * and go (forged ones on a segment without keys) would fill the cache for
   * good. A message from the origin makes it live again.
   */
  release(origin: string): void {
    if (this.states.has(origin)) this.released.add(origin);
  }

  /** Frees the records of one released origin other than `origin`; true if the table has room now. */
  private makeRoom(origin: string): boolean {
    for (const gone of this.released) {
      this.released.delete(gone);
      if (gone === origin) continue;
      this.removeOrigin(gone, 'released');
      if (this.table.size < this.limit) return true;
    }
    return false;
  }

  /** Forgets everything, tombstones and bulks in progress included. */
  flush(): void {
    this.ctCounters.flushed += this.table.size;
    this.expCounters.flushed += this.exp.size;
    this.table.clear();
    this.slotMeta.src.clear();
    this.exp.clear();
    this.shadows.clear();
    this.shadowCount = 0;
    this.tombs?.clear();
    this.states.clear();
    this.released.clear();
    this.expectsBy.clear();
  }

  /** The record held for the entry's key (original tuple and zone), if any. */
  get(e: EntryIdentity): ExternalRecord | undefined {
    const slot = this.slotOf(e);
    return slot < 0 ? undefined : this.recordAt(slot);
  }

  has(e: EntryIdentity): boolean {
    return this.slotOf(e) >= 0;
  }

  get size(): number {
    return this.table.size;
  }

  /** Every conntrack record, e.g. for commit and dumps. Made as it goes: records changed meanwhile show their new state. */
  *records(): IterableIterator<ExternalRecord> {
    const t = this.table;
    for (let s = t.next(-1); s >= 0; s = t.next(s)) yield this.recordAt(s);
  }

  /**
   * The records a commit is to write (all, or `origin`'s), as slots: the
   * order of commit's phases, masters then related entries. Commit reads
   * each one back with currentRecord() when it encodes it, so a record
   * updated meanwhile goes in as it is then, and one deleted meanwhile not.
   */
  commitOrder(origin?: string): CommitOrder {
    const t = this.table;
    const m = this.slotMeta;
    const slots = new Int32Array(t.size);
    const gens = new Uint32Array(t.size);
    const peers = new Set<string>();
    let n = 0;
    let related = 0;
    let last: Source | undefined;
    let take = false;
    for (let pass = 0; pass < 2; pass++) {
      for (let s = t.next(-1); s >= 0; s = t.next(s)) {
        const src = m.src.get(s)!;
        // Records come in runs of one source: one comparison and Set insert per run.
        if (src !== last) {
          last = src;
          take = origin === undefined || src.origin === origin;
          if (take) peers.add(src.origin);
        }
        if (!take) continue;
        const x = t.extrasOf(s);
        const isRelated = x !== undefined && (x.master !== undefined || x.whole?.master !== undefined);
        if (isRelated !== (pass === 1)) continue;
        if (isRelated) related++;
        slots[n] = s;
        gens[n++] = m.gen.get(s);
      }
      last = undefined;
    }
    return { slots: slots.subarray(0, n), gens: gens.subarray(0, n), masters: n - related, peers: [...peers].sort() };
  }

  /** Whether `slot` still holds the record of generation `gen`: the same key, not freed or flushed since. */
  holds(slot: number, gen: number): boolean {
    return this.slotMeta.gen.get(slot) >>> 0 === gen && this.table.isLive(slot);
  }

  /**
   * A view of the record in `slot` if it still holds generation `gen` (the
   * key commitOrder() saw), else null. Valid until the next call or change
   * to the cache.
   */
  currentRecord(slot: number, gen: number): EntryRecord | null {
    if (!this.holds(slot, gen)) return null;
    const t = this.table;
    return this.view.point(t.recOf(slot), t.at(slot), t.extrasOf(slot));
  }

  /** The u32 seq of the last message applied to a live slot. */
  slotSeq(slot: number): number {
    return this.slotMeta.seq.get(slot) >>> 0;
  }

  /** now() when the last message for a live slot was applied (ExternalRecord.updatedAt). */
  slotUpdatedAt(slot: number): number {
    const m = this.slotMeta;
    return m.src.get(slot)!.base + m.at.get(slot);
  }

  /** What the kernel holds of a live slot's record (see KernelCopy). */
  slotKernelCopy(slot: number): KernelCopy {
    return this.slotMeta.copy.get(slot) as KernelCopy;
  }

  /** noteInKernel() by slot: ignored unless the slot still holds generation `gen`. */
  noteSlotInKernel(slot: number, gen: number, seq: number): void {
    if (!this.holds(slot, gen)) return;
    const m = this.slotMeta;
    m.copy.set(slot, m.seq.get(slot) >>> 0 === seq >>> 0 ? KERNEL_CURRENT : KERNEL_STALE);
  }

  /** records() with each one's entryKey(), for callers that match them against other caches' keys. */
  *entries(): IterableIterator<[string, ExternalRecord]> {
    for (const r of this.records()) yield [entryKey(r.entry), r];
  }

  getExpect(key: string): ExternalRecord<ExpectEntry> | undefined {
    return this.exp.get(key);
  }

  get expectSize(): number {
    return this.exp.size;
  }

  expectEntries(): IterableIterator<[string, ExternalRecord<ExpectEntry>]> {
    return this.exp.entries();
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
    if (record instanceof SlotRecord) {
      this.noteSlotInKernel(record.slot, record.gen, seq);
    } else if (record instanceof StoredRecord) {
      record.kernelCopy = record.seqI32 >>> 0 === seq >>> 0 ? KERNEL_CURRENT : KERNEL_STALE;
    }
  }

  /** Tombstones held, expired ones included until they are looked up or evicted. */
  get tombstoneCount(): number {
    return this.tombs?.size ?? 0;
  }

  /**
   * Removes `origin`'s copy of the key in `slot` (a delete, or its entry the
   * filter now rejects). When the table's copy is another origin's, only
   * the shadow goes; when it is `origin`'s, the newest shadow takes its
   * place, and only a key no other origin holds leaves the cache (inject
   * mode deletes it from the kernel). r/at/extras: the message's record.
   * False when `origin` held no copy.
   */
  private dropCopy(slot: number, origin: string, r: RecordBuf, at: number, extras: RecordExtras | undefined): boolean {
    const m = this.slotMeta;
    const sh = this.shadows;
    if (m.src.get(slot)!.origin !== origin) {
      // Only the origin's shadow, if it has one: the table's copy is another origin's.
      const key = recordKeyString(r.w, at);
      const list = sh.get(key);
      const i = list === undefined ? -1 : list.findIndex((x) => x.src.origin === origin);
      if (i < 0) return false;
      this.dropShadow(key, list!, i);
      this.ctCounters.copyDeleted++;
      return true;
    }
    if (sh.size !== 0) {
      const key = recordKeyString(r.w, at);
      const list = sh.get(key);
      if (list !== undefined) {
        this.uncount(origin);
        this.promote(slot, key, list);
        this.ctCounters.copyDeleted++;
        return true;
      }
    }
    const gone = this.onChange !== undefined ? readEntryRecord(r, at, extras) : undefined;
    this.uncount(origin);
    this.free(slot);
    if (gone !== undefined) this.onChange?.(recordKeyString(r.w, at), 'deleted', undefined, gone);
    return true;
  }

  /** The shadow `origin` holds of `key`, if any. */
  private shadowOf(key: string, origin: string): Shadow | undefined {
    if (this.shadows.size === 0) return undefined;
    return this.shadows.get(key)?.find((x) => x.src.origin === origin);
  }

  /**
   * `st`'s origin writes a key another origin's copy fills: that copy
   * becomes a shadow (unless `limit` shadows are held: then it goes), and
   * the new origin's own shadow, if it had one, gives way to the table's copy.
   */
  private takeOver(slot: number, key: string, st: OriginState, own: Shadow | undefined): void {
    const m = this.slotMeta;
    const t = this.table;
    let list = this.shadows.get(key);
    if (own !== undefined) {
      list!.splice(list!.indexOf(own), 1);
      this.shadowCount--;
    } else {
      st.entries++;
    }
    if (this.shadowCount >= this.limit) {
      this.uncount(m.src.get(slot)!.origin);
      this.ctCounters.shadowsRefused++;
    } else {
      if (list === undefined) this.shadows.set(flatKey(key), (list = []));
      list.push({
        rec: this.pool.copy(t.recOf(slot).w, t.at(slot), t.extrasOf(slot)),
        src: m.src.get(slot)!,
        seq: m.seq.get(slot),
        at: m.at.get(slot),
        bulk: m.bulk.get(slot),
      });
      this.shadowCount++;
    }
    if (list !== undefined && list.length === 0) this.shadows.delete(key);
  }

  /**
   * The newest of `key`'s shadows takes the table's place in `slot` (its
   * origin's copy was dropped). A copy is written only while it is the
   * table's, and shadows are pushed as they leave it, so the last one is
   * the newest.
   */
  private promote(slot: number, key: string, list: Shadow[]): void {
    const i = list.length - 1;
    const s = list[i]!;
    this.removeShadow(key, list, i);
    const t = this.table;
    t.overwrite(slot, s.rec.w, s.rec.at);
    t.setExtras(slot, s.rec.x);
    const m = this.slotMeta;
    m.src.set(slot, s.src);
    m.seq.set(slot, s.seq);
    m.at.set(slot, s.at);
    m.bulk.set(slot, s.bulk);
    // The kernel holds the dropped copy, if any: this one differs.
    if (m.copy.get(slot) !== KERNEL_NONE) m.copy.set(slot, KERNEL_STALE);
    if (this.onChange !== undefined) this.onChange(key, 'updated', this.recordAt(slot), this.entryAt(slot));
  }

  /** Removes shadow i of `key` and its origin's count. */
  private dropShadow(key: string, list: Shadow[], i: number): void {
    this.uncount(list[i]!.src.origin);
    this.removeShadow(key, list, i);
  }

  private removeShadow(key: string, list: Shadow[], i: number): void {
    list.splice(i, 1);
    this.shadowCount--;
    if (list.length === 0) this.shadows.delete(key);
  }

  private slotOf(e: EntryIdentity): number {
    const r = this.scratch;
    return writeKeyWords(e, r, 0) ? this.table.find(r.w, 0) : -1;
  }

  private recordAt(slot: number): SlotRecord {
    const t = this.table;
    return new SlotRecord(this, slot, this.slotMeta.gen.get(slot) >>> 0, this.pool.copy(t.recOf(slot).w, t.at(slot), t.extrasOf(slot)));
  }

  private entryAt(slot: number): ConntrackEntry {
    const t = this.table;
    return readEntryRecord(t.recOf(slot), t.at(slot), t.extrasOf(slot));
  }

  private free(slot: number): void {
    this.table.remove(slot);
    const m = this.slotMeta;
    m.src.set(slot, undefined);
    m.gen.set(slot, (m.gen.get(slot) + 1) >>> 0);
  }

  /** Whether a live tombstone of the same origin and epoch is newer than seq. */
  private buriedAfter(key: string, origin: string, epoch: number, seq: number, now: number): boolean {
    const t = this.tombs?.peek(key);
    if (t === undefined) return false;
    if (now - t.at > this.tombTtl) {
      this.tombs?.delete(key);
      return false;
    }
    return t.src.origin === origin && t.src.epoch === epoch && seqBefore(seq, t.seq);
  }

  private bury(key: string, src: Source, seq: number, now: number): void {
    if (this.tombMax <= 0) return;
    // No ttl option: lru-cache would then read its own clock. Expiry is
    // checked against the injected one on lookup, so no timers either.
    const tombs = (this.tombs ??= new (lruCacheClass())<string, Tombstone>({ max: this.tombMax }));
    const t = tombs.peek(key);
    // A duplicate or reordered delete must not move a tombstone backwards.
    if (t !== undefined && t.src.origin === src.origin && t.src.epoch === src.epoch && seqAfter(t.seq, seq)) return;
    tombs.set(key, { src, seq, at: now });
  }

  private stateFor(origin: string, epoch: number): OriginState {
    // A message from a released origin: it is back (a pruned id is believed again only after a challenge).
    if (this.released.size !== 0) this.released.delete(origin);
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
    if (st === undefined) return;
    // An origin holding nothing and sending no bulk is forgotten: origins come and go (pruned
    // peers, forged ids on a link without keys), and records and tombstones hold their Source themselves.
    if (--st.entries === 0 && st.bulk === 0) this.states.delete(origin);
  }

  /**
   * Removes every copy, in the table or a shadow, whose (source, bulk, seq)
   * `pred` accepts; a key another origin still holds stays, under that
   * origin's copy. Returns how many copies went.
   */
  private removeCopiesWhere(pred: (src: Source, bulk: number, seq: number) => boolean): number {
    let n = 0;
    if (this.shadows.size !== 0) {
      for (const [key, list] of this.shadows) {
        for (let i = list.length - 1; i >= 0; i--) {
          const x = list[i]!;
          if (!pred(x.src, x.bulk, x.seq)) continue;
          this.dropShadow(key, list, i);
          n++;
        }
      }
    }
    const t = this.table;
    const m = this.slotMeta;
    for (let s = t.next(-1); s >= 0; s = t.next(s)) {
      if (!pred(m.src.get(s)!, m.bulk.get(s), m.seq.get(s))) continue;
      this.uncount(m.src.get(s)!.origin);
      const key = this.shadows.size === 0 ? undefined : recordKeyString(t.recOf(s).w, t.at(s));
      const list = key === undefined ? undefined : this.shadows.get(key);
      if (list !== undefined) this.promote(s, key!, list);
      else this.free(s);
      n++;
    }
    return n;
  }

  private removeExpectWhere(pred: (r: StoredRecord<ExpectEntry>) => boolean): number {
    let n = 0;
    for (const [key, rec] of this.exp) {
      if (pred(rec)) {
        this.dropExpect(key, rec);
        n++;
      }
    }
    return n;
  }

  /** Removes every record of `origin`, counted under `why`; it is no longer released. */
  private removeOrigin(origin: string, why: 'flushed' | 'released'): number {
    const n1 = this.removeCopiesWhere((src) => src.origin === origin);
    const n2 = this.removeExpectWhere((r) => r.src.origin === origin);
    this.ctCounters[why] += n1;
    this.expCounters[why] += n2;
    this.released.delete(origin);
    return n1 + n2;
  }

  /** Removes an expectation record, keeping its origin's count (the share) right. */
  private dropExpect(key: string, rec: StoredRecord<ExpectEntry>): void {
    this.exp.delete(key);
    const o = rec.src.origin;
    const n = (this.expectsBy.get(o) ?? 1) - 1;
    if (n > 0) this.expectsBy.set(o, n);
    else this.expectsBy.delete(o);
  }
}

function flatKey(key: string): string {
  // See compact.ts: a stored cons-string key costs twice the memory.
  key.charCodeAt(0);
  return key;
}
