// The internal cache: this node's kernel conntrack (and expectation) table
// after filtering, as conntrackd keeps it. Filled by the initial dump, kept
// current by kernel events, and reconciled against a fresh dump after an
// event overrun or on a resync (beginReconcile(), which also suits the
// initial dump: events may interleave with it). Every mutation reports what
// changed, so the daemon replicates differences only.
//
// Rules worth knowing when driving it:
//  - A change of `timeout` alone is stored but reported 'unchanged': peers
//    derive their own timeout on commit, and replicating every refresh would
//    turn each dump into a full resend.
//  - UPDATE events are partial (the kernel only includes what changed) and
//    are merged onto the cached entry before filtering; see
//    EntryCompactor.entry().
//  - An UPDATE that fails the filter leaves the cached entry as it was
//    (conntrackd drops such events too). The typical case is a state accept
//    list: a flow moving ESTABLISHED -> FIN_WAIT keeps its ESTABLISHED copy
//    until a later accepted state or its DESTROY.
//  - A NEW that fails the filter while its key is cached deletes the cached
//    entry ('deleted'): the kernel only reports NEW for a tuple once the
//    previous connection with that tuple is gone.
//  - DESTROY removes a cached entry whatever the filter says, so a filter
//    change or a state rule can never strand an entry on the peers.
//  - The limit refuses new keys, it never evicts: a dropped live flow is
//    a failover that breaks a connection.
//
// Conntrack entries are records in a RecordTable (src/kernel/ct-record.ts,
// record-table.ts), not objects: the cache hands out their slot numbers as
// keys (lastSlot after each apply), and entry objects only when asked
// (entryAt, get, values). Kernel events come in as records already
// (applyRecord); apply() takes an entry object and writes it as one.
// Expectations, a few per FTP or SIP control flow, stay objects.

import type { EventType } from '../kernel/conntrack-events.js';
import {
  type EntryIdentity,
  EntryRecord,
  F_FLAGS_ORIG,
  F_FLAGS_REPLY,
  F_MARK,
  F_PROTOINFO,
  F_SECMARK,
  F_STATUS,
  F_TCP,
  F_TIMEOUT,
  F_WHOLE,
  F_WSCALE_ORIG,
  F_WSCALE_REPLY,
  F_ZONE,
  copyRecordWords,
  recordKeyString,
  type RecordBuf,
  type RecordExtras,
  readEntryRecord,
  recordBuf,
  recordHash,
  W_FLAGS,
  W_MARK,
  W_SECMARK,
  W_STATUS,
  W_TCP,
  W_TCPFLAGS,
  W_TIMEOUT,
  writeEntryRecord,
  writeKeyWords,
} from '../kernel/ct-record.js';
import { type ConntrackEntry, type ExpectEntry, expectKey } from '../kernel/entry.js';
import { EntryCompactor, recordCarriesNothingNew, refreshTimeout, sameIgnoringTimeout } from './compact.js';
import type { EntryFilter, FilterReason } from './filter.js';
import { SlotInts } from '../common/slot-ints.js';
import { RecordTable } from './record-table.js';

export type ChangeKind = 'created' | 'updated' | 'deleted' | 'unchanged' | 'filtered' | 'refused' | 'missing';

export interface InternalCounters {
  /** Keys added, by event or reconcile. */
  created: number;
  /** Cached entries whose content (timeout aside) changed. */
  updated: number;
  /** Events or dump entries that carried nothing new. */
  unchanged: number;
  /** Keys removed, by event or reconcile (flush not included). */
  destroyed: number;
  /** DESTROY events for keys that were not cached. */
  missing: number;
  /** New keys turned away because the cache was full. */
  refused: number;
  /** Events and dump entries rejected by the filter, by the rule that rejected them. */
  filtered: Record<FilterReason, number>;
  /** Entries removed by flush(). */
  flushed: number;
  reconciles: number;
}

export interface ExpectCounters {
  created: number;
  updated: number;
  unchanged: number;
  destroyed: number;
  missing: number;
  refused: number;
  /** Expectations whose master connection is not cached (filtered or refused). */
  noMaster: number;
  flushed: number;
  reconciles: number;
}

/**
 * What a reconcile changed. Deleted entries are returned whole, since they
 * are gone from the cache, with the key each had (`deletedKeys`, same order).
 */
export interface ReconcileResult<K, T> {
  created: K[];
  updated: K[];
  deleted: T[];
  deletedKeys: K[];
}

/** An incremental reconcile; see InternalCache.beginReconcile(). */
export interface ReconcileSession {
  /** Feeds one dumped entry. */
  add(e: ConntrackEntry): void;
  /**
   * add() for a dumped entry of the common shape already decoded as a record
   * at `r.w[at]` (no extras): the way a dump feeds most entries, without an
   * object. The record is only read.
   */
  addRecord(r: RecordBuf, at: number): void;
  /** The dump is complete: deletes what it did not carry and reports every difference. */
  finish(): ReconcileResult<number, ConntrackEntry>;
  /**
   * The dump failed: ends the session without deleting anything (a partial
   * dump proves nothing about absent keys) and reports what was created or
   * updated so far, which is applied and still needs replicating.
   */
  abort(): ReconcileResult<number, ConntrackEntry>;
}

interface SessionState {
  /** Stamps seenAt/touchedAt of the slots this session marks. */
  id: number;
  /** Keys events touched while not cached (destroyed, filtered, missing), as key strings. */
  touchedAbsent: Set<string>;
  /** New keys that did not fit yet, for finish(): a record copy and its extras. */
  pending: Map<string, { rec: RecordBuf; x: RecordExtras | undefined }>;
  created: Set<number>;
  updated: Set<number>;
}

export interface InternalCacheOptions {
  /** Most conntrack entries (cache.internalLimit). */
  limit: number;
  /** Most expectations; defaults to limit. */
  expectLimit?: number;
  filter: EntryFilter;
  /** Milliseconds; Date.now by default. Only stamps lastReconcileAt: entries carry no times. */
  now?: () => number;
  /** Records to make room for at first; the table grows by doubling. */
  initialSlots?: number;
}

function flatKey(key: string): string {
  // expectKey builds a cons string, about twice the size of a flat one; this
  // string is stored for the entry's lifetime, so flatten it (see compact.ts).
  key.charCodeAt(0);
  return key;
}


/** The fields of a partial UPDATE that fall back to the cached entry's when absent (see EntryCompactor.entry). */
const TCP_BITS = F_PROTOINFO | F_TCP | F_WSCALE_ORIG | F_WSCALE_REPLY | F_FLAGS_ORIG | F_FLAGS_REPLY;
const WORD_FIELDS: readonly (readonly [number, number])[] = [
  [F_STATUS, W_STATUS],
  [F_TIMEOUT, W_TIMEOUT],
  [F_MARK, W_MARK],
  [F_SECMARK, W_SECMARK],
];
const EXTRA_FIELDS = [
  'master',
  'labels',
  'labelsMask',
  'seqAdjOrig',
  'seqAdjReply',
  'helper',
  'secctx',
  'synproxy',
] as const satisfies readonly Exclude<keyof RecordExtras, 'whole' | 'protoinfo'>[];

export class InternalCache {
  readonly limit: number;
  readonly expectLimit: number;
  readonly counters: InternalCounters = {
    created: 0,
    updated: 0,
    unchanged: 0,
    destroyed: 0,
    missing: 0,
    refused: 0,
    filtered: { protocol: 0, address: 0, 'tcp-state': 0 },
    flushed: 0,
    reconciles: 0,
  };
  readonly expectCounters: ExpectCounters = {
    created: 0,
    updated: 0,
    unchanged: 0,
    destroyed: 0,
    missing: 0,
    refused: 0,
    noMaster: 0,
    flushed: 0,
    reconciles: 0,
  };
  /**
   * The slot (the cache's key) of the entry the last apply() or
   * applyRecord() was about, -1 when none; for 'deleted', the slot it had.
   */
  lastSlot = -1;
  /** The entry the last apply() or applyRecord() deleted, for the peers' delete message. */
  lastDeleted: ConntrackEntry | undefined;
  private readonly filter: EntryFilter;
  private readonly now: () => number;
  private reconciledAt: number | undefined;
  private session: SessionState | undefined;
  private sessionIds = 0;
  private readonly table: RecordTable;
  /** By slot: the session that saw the key in its dump, and the one whose events touched it. */
  private readonly seenAt = new SlotInts();
  private readonly touchedAt = new SlotInts();
  private readonly exp = new Map<string, ExpectEntry>();
  private readonly compactor = new EntryCompactor();
  // Bound once: a closure per event would be garbage per entry.
  private readonly compactEntry = (e: ConntrackEntry): ConntrackEntry => this.compactor.entry(e);
  private readonly scratch: RecordBuf = recordBuf(1);
  private readonly view = new EntryRecord(this.scratch.w, this.scratch.b, 0, undefined);

  constructor(opts: InternalCacheOptions) {
    this.limit = opts.limit;
    this.expectLimit = opts.expectLimit ?? opts.limit;
    this.filter = opts.filter;
    this.now = opts.now ?? Date.now;
    this.table = new RecordTable(Math.min(opts.initialSlots ?? 1024, Math.max(16, this.limit)));
  }

  /** Applies one kernel event given as an entry object; see the file comment for the rules. */
  apply(type: EventType, entry: ConntrackEntry): ChangeKind {
    const r = this.scratch;
    const x = writeEntryRecord(entry, r, 0, this.compactEntry);
    if (x === false) {
      // No decoder makes such an entry: nothing to key it by.
      this.lastSlot = -1;
      this.lastDeleted = undefined;
      this.counters.refused++;
      return 'refused';
    }
    return this.applyRecord(type, r, 0, x);
  }

  /**
   * Applies one kernel event held as a record at `r.w[at]` (which it may
   * overwrite: merging a partial UPDATE happens in place).
   */
  applyRecord(type: EventType, r: RecordBuf, at: number, extras?: RecordExtras): ChangeKind {
    const t = this.table;
    const hash = recordHash(r.w, at);
    const slot = t.find(r.w, at, hash);
    this.lastSlot = slot;
    this.lastDeleted = undefined;
    if (this.session !== undefined) this.touch(this.session, slot, r.w, at);
    if (type === 'destroy') {
      if (slot < 0) {
        this.counters.missing++;
        return 'missing';
      }
      this.lastDeleted = this.entryAt(slot);
      this.free(slot);
      this.counters.destroyed++;
      return 'deleted';
    }
    let x = extras;
    if (slot >= 0) {
      // UPDATE events carry what changed: the rest is the cached entry's.
      if (type === 'update') x = this.mergeOnto(slot, r, at, x);
      // The common event or dump line changes nothing but the timeout. (A
      // cached entry passed the filter, so the same content passes it again.)
      if (recordCarriesNothingNew(t.recOf(slot).w, t.at(slot), t.extrasOf(slot), r.w, at, x)) return this.keep(slot, r, at);
    }
    const verdict = this.filter.checkRecord(r, at, x);
    if (!verdict.pass) {
      this.counters.filtered[verdict.reason]++;
      if (type === 'new' && slot >= 0) {
        this.lastDeleted = this.entryAt(slot);
        this.free(slot);
        this.counters.destroyed++;
        return 'deleted';
      }
      return 'filtered';
    }
    const kind = this.store(slot, r, at, x, hash);
    // A key an event created during a reconcile is the events' (see beginReconcile()).
    if (kind === 'created' && this.session !== undefined) this.touchedAt.set(this.lastSlot, this.session.id);
    return kind;
  }

  /**
   * Brings the cache in line with a complete dump of the kernel table and
   * reports the differences; beginReconcile() fed with every entry. Use the
   * session form when kernel events are applied while the dump runs.
   */
  reconcile(dump: Iterable<ConntrackEntry>): ReconcileResult<number, ConntrackEntry> {
    const session = this.beginReconcile();
    for (const e of dump) session.add(e);
    return session.finish();
  }

  /**
   * Starts a reconcile that is fed one dumped entry at a time, so the work
   * spreads over the dump's batches and kernel events can keep being
   * applied in between. Rules:
   *  - a dumped entry updates or creates its key as a NEW would, except that
   *    a filtered one leaves a cached entry of its key alone (as an UPDATE);
   *  - a key touched by an event since the session began belongs to the
   *    events: dumped entries for it are ignored (the dump may predate the
   *    event, and re-creating a key destroyed meanwhile would leave a zombie
   *    on every peer), and finish() does not delete it;
   *  - finish() deletes cached keys that neither the dump nor an event
   *    touched, then inserts the new keys that did not fit while the
   *    vanished ones still took room; what still does not fit is refused.
   * One session at a time.
   */
  beginReconcile(): ReconcileSession {
    if (this.session !== undefined) throw new Error('InternalCache: a reconcile is already in progress');
    // Stamps are positive and never repeat within 2^31 sessions.
    this.sessionIds = (this.sessionIds % 0x7fffffff) + 1;
    const st: SessionState = {
      id: this.sessionIds,
      touchedAbsent: new Set(),
      pending: new Map(),
      created: new Set(),
      updated: new Set(),
    };
    this.session = st;
    const live = (): SessionState => {
      if (this.session !== st) throw new Error('InternalCache: this reconcile has ended');
      return st;
    };
    return {
      add: (e) => this.sessionAdd(live(), e),
      addRecord: (r, at) => this.sessionAddRecord(live(), r, at, undefined),
      finish: () => this.sessionEnd(live(), true),
      abort: () => this.sessionEnd(live(), false),
    };
  }

  /** now() at the end of the last reconcile(), for status output. */
  get lastReconcileAt(): number | undefined {
    return this.reconciledAt;
  }

  /** The cached entry with the identity (original tuple and zone) of `e`. */
  get(e: EntryIdentity): ConntrackEntry | undefined {
    const slot = this.slotOf(e);
    return slot < 0 ? undefined : this.entryAt(slot);
  }

  has(e: EntryIdentity): boolean {
    return this.slotOf(e) >= 0;
  }

  /** The slot of the entry with the identity of `e`, -1 when it is not cached. */
  slotOf(e: EntryIdentity): number {
    const r = this.scratch;
    return writeKeyWords(e, r, 0) ? this.table.find(r.w, 0) : -1;
  }

  /** The entry a slot holds, undefined when the slot is free. */
  entryAt(slot: number): ConntrackEntry | undefined {
    const t = this.table;
    if (slot < 0 || !t.isLive(slot)) return undefined;
    return readEntryRecord(t.recOf(slot), t.at(slot), t.extrasOf(slot));
  }

  /**
   * The record a slot holds, as one EntryRecord re-pointed on every call (no
   * copy, no object): valid until the next viewAt() or change to the cache.
   * For the sender, which encodes it at once. Undefined when the slot is free.
   */
  viewAt(slot: number): EntryRecord | undefined {
    const t = this.table;
    if (slot < 0 || !t.isLive(slot)) return undefined;
    return this.view.point(t.recOf(slot), t.at(slot), t.extrasOf(slot));
  }

  get size(): number {
    return this.table.size;
  }

  /** Every cached slot (the keys lastSlot and localChange speak of). */
  *slots(): IterableIterator<number> {
    const t = this.table;
    for (let s = t.next(-1); s >= 0; s = t.next(s)) yield s;
  }

  /** Every cached entry, made as it goes. */
  *values(): IterableIterator<ConntrackEntry> {
    const t = this.table;
    for (let s = t.next(-1); s >= 0; s = t.next(s)) yield readEntryRecord(t.recOf(s), t.at(s), t.extrasOf(s));
  }

  /**
   * Applies one expectation event. NEW and UPDATE replace the cached copy
   * (expectation events carry the whole expectation) and are kept only
   * while the master connection is cached, as in conntrackd: an expectation
   * whose master is filtered out or refused is useless to a peer.
   */
  applyExpect(type: EventType, e: ExpectEntry): ChangeKind {
    const key = expectKey(e);
    const cached = this.exp.get(key);
    const c = this.expectCounters;
    if (type === 'destroy') {
      if (cached === undefined) {
        c.missing++;
        return 'missing';
      }
      this.exp.delete(key);
      c.destroyed++;
      return 'deleted';
    }
    if (!this.hasMaster(e)) {
      c.noMaster++;
      return 'filtered';
    }
    return this.storeExpect(key, cached, this.compactor.expect(e));
  }

  /** reconcile() for expectations; run it after the conntrack reconcile so masters are current. */
  reconcileExpect(dump: Iterable<ExpectEntry>): ReconcileResult<string, ExpectEntry> {
    const c = this.expectCounters;
    c.reconciles++;
    const fresh = new Map<string, ExpectEntry>();
    for (const e of dump) {
      if (this.hasMaster(e)) fresh.set(expectKey(e), this.compactor.expect(e));
      else c.noMaster++;
    }
    const deleted: ExpectEntry[] = [];
    const deletedKeys: string[] = [];
    for (const [key, old] of this.exp) {
      if (!fresh.has(key)) {
        this.exp.delete(key);
        deleted.push(old);
        deletedKeys.push(key);
      }
    }
    c.destroyed += deleted.length;
    const created: string[] = [];
    const updated: string[] = [];
    for (const [key, e] of fresh) {
      const r = this.storeExpect(key, this.exp.get(key), e);
      if (r === 'created') created.push(key);
      else if (r === 'updated') updated.push(key);
    }
    return { created, updated, deleted, deletedKeys };
  }

  getExpect(key: string): ExpectEntry | undefined {
    return this.exp.get(key);
  }

  get expectSize(): number {
    return this.exp.size;
  }

  expectEntries(): IterableIterator<[string, ExpectEntry]> {
    return this.exp.entries();
  }

  /** Empties both tables without reporting deletions (an operator's flush, not kernel state). */
  flush(): void {
    this.counters.flushed += this.table.size;
    this.expectCounters.flushed += this.exp.size;
    this.table.clear();
    this.seenAt.fill(0);
    this.touchedAt.fill(0);
    this.exp.clear();
  }

  private touch(st: SessionState, slot: number, w: Int32Array, at: number): void {
    if (slot >= 0) this.touchedAt.set(slot, st.id);
    else st.touchedAbsent.add(recordKeyString(w, at));
  }

  private touched(st: SessionState, slot: number, w: Int32Array, at: number): boolean {
    if (slot >= 0 && this.touchedAt.get(slot) === st.id) return true;
    return st.touchedAbsent.size > 0 && st.touchedAbsent.has(recordKeyString(w, at));
  }

  private sessionAdd(st: SessionState, e: ConntrackEntry): void {
    const r = this.scratch;
    const x = writeEntryRecord(e, r, 0, this.compactEntry);
    if (x === false) {
      this.counters.refused++;
      return;
    }
    this.sessionAddRecord(st, r, 0, x);
  }

  private sessionAddRecord(st: SessionState, r: RecordBuf, at: number, x: RecordExtras | undefined): void {
    const t = this.table;
    const hash = recordHash(r.w, at);
    const slot = t.find(r.w, at, hash);
    if (this.touched(st, slot, r.w, at)) return;
    if (slot >= 0) {
      this.seenAt.set(slot, st.id);
      if (recordCarriesNothingNew(t.recOf(slot).w, t.at(slot), t.extrasOf(slot), r.w, at, x)) {
        this.keep(slot, r, at);
        return;
      }
    }
    const verdict = this.filter.checkRecord(r, at, x);
    if (!verdict.pass) {
      this.counters.filtered[verdict.reason]++;
      if (slot < 0) st.pending.delete(recordKeyString(r.w, at));
      return;
    }
    if (slot < 0 && t.size >= this.limit) {
      const copy = recordBuf(1);
      copyRecordWords(r.w, at, copy.w, 0);
      st.pending.set(recordKeyString(r.w, at), { rec: copy, x });
      return;
    }
    const kind = this.store(slot, r, at, x, hash);
    if (kind === 'created') this.seenAt.set(this.lastSlot, st.id);
    this.note(st, this.lastSlot, kind);
  }

  private sessionEnd(st: SessionState, complete: boolean): ReconcileResult<number, ConntrackEntry> {
    this.session = undefined;
    const deleted: ConntrackEntry[] = [];
    const deletedKeys: number[] = [];
    const t = this.table;
    if (complete) {
      for (let s = t.next(-1); s >= 0; s = t.next(s)) {
        if (this.seenAt.get(s) !== st.id && this.touchedAt.get(s) !== st.id) {
          deleted.push(readEntryRecord(t.recOf(s), t.at(s), t.extrasOf(s)));
          deletedKeys.push(s);
          this.free(s);
        }
      }
      this.counters.destroyed += deleted.length;
      for (const [key, p] of st.pending) {
        if (st.touchedAbsent.has(key)) continue;
        const hash = recordHash(p.rec.w, 0);
        // Cached by now: a later line of the dump (which may carry a key
        // twice) or an event put it there, and either is newer than this copy.
        if (t.find(p.rec.w, 0, hash) >= 0) continue;
        const kind = this.store(-1, p.rec, 0, p.x, hash);
        this.note(st, this.lastSlot, kind);
      }
      this.counters.reconciles++;
      this.reconciledAt = this.now();
    }
    // Keys events destroyed since were dropped from these as they went (see free()).
    const created = [...st.created];
    const updated = [...st.updated].filter((s) => !st.created.has(s));
    return { created, updated, deleted, deletedKeys };
  }

  /** Records a change store() made; `slot` is lastSlot, where store() left it. */
  private note(st: SessionState, slot: number, r: ChangeKind): void {
    if (r === 'created') st.created.add(slot);
    else if (r === 'updated') st.updated.add(slot);
  }

  private hasMaster(e: ExpectEntry): boolean {
    // CTA_EXPECT_MASTER is the master's original tuple, and an expectation
    // lives in its master's zone.
    return this.has({ family: e.family, orig: e.master, zone: e.zone });
  }

  /**
   * Lays the partial record at `r.w[at]` over the cached one in `slot`:
   * fields it lacks take the cached values, as EntryCompactor.entry() does
   * for objects. Returns the merged extras.
   */
  private mergeOnto(slot: number, r: RecordBuf, at: number, x: RecordExtras | undefined): RecordExtras | undefined {
    const t = this.table;
    const sw = t.recOf(slot).w;
    const so = t.at(slot);
    const sx = t.extrasOf(slot);
    const w = r.w;
    const sf = sw[so + W_FLAGS]!;
    let f = w[at + W_FLAGS]!;
    if ((f | sf) & F_WHOLE) {
      // A shape the words cannot hold on either side: merge as objects.
      const merged = this.compactor.entry(readEntryRecord(r, at, x), readEntryRecord(t.recOf(slot), so, sx));
      const mx = writeEntryRecord(merged, r, at, this.compactEntry);
      return mx === false ? x : mx;
    }
    for (const [bit, word] of WORD_FIELDS) {
      if ((f & bit) === 0 && (sf & bit) !== 0) {
        w[at + word] = sw[so + word]!;
        f |= bit;
      }
    }
    if ((f & F_ZONE) === 0) f |= sf & F_ZONE;
    let out = x;
    if ((f & F_PROTOINFO) === 0 && (sf & F_PROTOINFO) !== 0) {
      f = (f & ~TCP_BITS) | (sf & TCP_BITS);
      w[at + W_TCP] = sw[so + W_TCP]!;
      w[at + W_TCPFLAGS] = sw[so + W_TCPFLAGS]!;
      if (sx?.protoinfo !== undefined) out = { ...out, protoinfo: sx.protoinfo };
    }
    w[at + W_FLAGS] = f;
    if (sx !== undefined) {
      for (const k of EXTRA_FIELDS) {
        if (sx[k] !== undefined && out?.[k] === undefined) out = { ...out, [k]: sx[k] };
      }
    }
    return out;
  }

  private store(slot: number, r: RecordBuf, at: number, x: RecordExtras | undefined, hash: number): ChangeKind {
    const t = this.table;
    if (slot < 0) {
      if (t.size >= this.limit) {
        this.counters.refused++;
        return 'refused';
      }
      const created = t.insert(r.w, at, x, hash);
      if (created >= this.seenAt.length) {
        this.seenAt.cover(created + 1);
        this.touchedAt.cover(created + 1);
      }
      this.seenAt.set(created, 0);
      this.touchedAt.set(created, 0);
      this.lastSlot = created;
      this.counters.created++;
      return 'created';
    }
    this.lastSlot = slot;
    // Normally caught before; this also covers a record the filter judged after a merge.
    if (recordCarriesNothingNew(t.recOf(slot).w, t.at(slot), t.extrasOf(slot), r.w, at, x)) return this.keep(slot, r, at);
    t.overwrite(slot, r.w, at);
    t.setExtras(slot, x);
    this.counters.updated++;
    return 'updated';
  }

  /** An unchanged entry: only its timeout is refreshed, so dumps and the sender see it. */
  private keep(slot: number, r: RecordBuf, at: number): ChangeKind {
    if (r.w[at + W_FLAGS]! & F_TIMEOUT) {
      const t = this.table;
      const so = t.at(slot);
      const timeout = r.w[at + W_TIMEOUT]!;
      const sw = t.recOf(slot).w;
      sw[so + W_TIMEOUT] = timeout;
      sw[so + W_FLAGS] |= F_TIMEOUT;
      const sx = t.extrasOf(slot);
      if (sx?.whole !== undefined) sx.whole = refreshTimeout(sx.whole, timeout >>> 0);
    }
    this.counters.unchanged++;
    return 'unchanged';
  }

  private free(slot: number): void {
    // A key an event removes during a reconcile stays the events': remember it by its key.
    // Its slot may take another key before the session ends: forget what the dump did to it.
    const st = this.session;
    if (st !== undefined) {
      st.touchedAbsent.add(recordKeyString(this.table.recOf(slot).w, this.table.at(slot)));
      st.created.delete(slot);
      st.updated.delete(slot);
    }
    this.table.remove(slot);
    this.seenAt.set(slot, 0);
    this.touchedAt.set(slot, 0);
  }

  private storeExpect(key: string, cached: ExpectEntry | undefined, e: ExpectEntry): ChangeKind {
    const c = this.expectCounters;
    if (cached === undefined) {
      if (this.exp.size >= this.expectLimit) {
        c.refused++;
        return 'refused';
      }
      this.exp.set(flatKey(key), e);
      c.created++;
      return 'created';
    }
    this.exp.set(key, e);
    if (sameIgnoringTimeout(cached, e)) {
      c.unchanged++;
      return 'unchanged';
    }
    c.updated++;
    return 'updated';
  }
}
