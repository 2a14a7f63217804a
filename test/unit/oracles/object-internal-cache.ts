// ORACLE for test/unit/internal-cache-diff.test.ts: the internal cache as it
// was before entries became records (Map of compacted entry objects keyed by
// entryKey). Kept verbatim apart from its imports and the expectation part,
// so the record cache can be run against it on random event streams.
//
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

import type { EventType } from '../../../src/kernel/conntrack-events.js';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey } from '../../../src/kernel/entry.js';
import { carriesNothingNew, EntryCompactor, refreshTimeout, sameIgnoringTimeout } from '../../../src/cache/compact.js';
import type { EntryFilter } from '../../../src/cache/filter.js';

// The types it reports in are the record cache's own: the two must agree on them.
import type { ChangeKind, ExpectCounters, InternalCounters } from '../../../src/cache/internal-cache.js';

/** What a reconcile changed. Deleted entries are returned whole: they are gone from the cache. */
export interface ReconcileResult<T> {
  created: string[];
  updated: string[];
  deleted: T[];
}

/** An incremental reconcile; see InternalCache.beginReconcile(). */
export interface ReconcileSession {
  /** Feeds one dumped entry. */
  add(e: ConntrackEntry): void;
  /** The dump is complete: deletes what it did not carry and reports every difference. */
  finish(): ReconcileResult<ConntrackEntry>;
  /**
   * The dump failed: ends the session without deleting anything (a partial
   * dump proves nothing about absent keys) and reports what was created or
   * updated so far, which is applied and still needs replicating.
   */
  abort(): ReconcileResult<ConntrackEntry>;
}

interface SessionState {
  /** Keys the dump carried. */
  seen: Set<string>;
  /** Keys events touched since the session began. */
  touched: Set<string>;
  /** New keys that did not fit yet, for finish(). */
  pending: Map<string, ConntrackEntry>;
  created: Set<string>;
  updated: Set<string>;
}

export interface InternalCacheOptions {
  /** Most conntrack entries (cache.internalLimit). */
  limit: number;
  /** Most expectations; defaults to limit. */
  expectLimit?: number;
  filter: EntryFilter;
  /** Milliseconds; Date.now by default. Only stamps lastReconcileAt: entries carry no times. */
  now?: () => number;
}

function flatKey(key: string): string {
  // entryKey builds a cons string, about twice the size of a flat one; this
  // string is stored for the entry's lifetime, so flatten it (see compact.ts).
  key.charCodeAt(0);
  return key;
}

export class ObjectInternalCache {
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
  private readonly filter: EntryFilter;
  private readonly now: () => number;
  private reconciledAt: number | undefined;
  private session: SessionState | undefined;
  private readonly map = new Map<string, ConntrackEntry>();
  private readonly exp = new Map<string, ExpectEntry>();
  private readonly compactor = new EntryCompactor();

  constructor(opts: InternalCacheOptions) {
    this.limit = opts.limit;
    this.expectLimit = opts.expectLimit ?? opts.limit;
    this.filter = opts.filter;
    this.now = opts.now ?? Date.now;
  }

  /** Applies one kernel event; see the file comment for the rules. `key` is entryKey(entry), when the caller has it. */
  apply(type: EventType, entry: ConntrackEntry, key: string = entryKey(entry)): ChangeKind {
    this.session?.touched.add(key);
    const cached = this.map.get(key);
    if (type === 'destroy') {
      if (cached === undefined) {
        this.counters.missing++;
        return 'missing';
      }
      this.map.delete(key);
      this.counters.destroyed++;
      return 'deleted';
    }
    // The common event or dump line changes nothing but the timeout. (A
    // cached entry passed the filter, so the same content passes it again.)
    if (cached !== undefined && carriesNothingNew(cached, entry, type === 'update'))
      return this.keep(key, cached, entry.timeout);
    // Merged and compacted before the filter when there is something to merge
    // onto (the filter must judge the merged state); otherwise filtered
    // first, so rejected events cost no copy.
    const merged = type === 'update' && cached !== undefined ? this.compactor.entry(entry, cached) : undefined;
    const verdict = this.filter.check(merged ?? entry);
    if (!verdict.pass) {
      this.counters.filtered[verdict.reason]++;
      if (type === 'new' && cached !== undefined) {
        this.map.delete(key);
        this.counters.destroyed++;
        return 'deleted';
      }
      return 'filtered';
    }
    return this.store(key, cached, merged ?? this.compactor.entry(entry));
  }

  /**
   * Brings the cache in line with a complete dump of the kernel table and
   * reports the differences; beginReconcile() fed with every entry. Use the
   * session form when kernel events are applied while the dump runs.
   */
  reconcile(dump: Iterable<ConntrackEntry>): ReconcileResult<ConntrackEntry> {
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
    const st: SessionState = {
      seen: new Set(),
      touched: new Set(),
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
      finish: () => this.sessionEnd(live(), true),
      abort: () => this.sessionEnd(live(), false),
    };
  }

  /** now() at the end of the last reconcile(), for status output. */
  get lastReconcileAt(): number | undefined {
    return this.reconciledAt;
  }

  get(key: string): ConntrackEntry | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  get size(): number {
    return this.map.size;
  }

  /** Live view in insertion order; entries are shared, never mutate them. */
  entries(): IterableIterator<[string, ConntrackEntry]> {
    return this.map.entries();
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
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
  reconcileExpect(dump: Iterable<ExpectEntry>): ReconcileResult<ExpectEntry> {
    const c = this.expectCounters;
    c.reconciles++;
    const fresh = new Map<string, ExpectEntry>();
    for (const e of dump) {
      if (this.hasMaster(e)) fresh.set(expectKey(e), this.compactor.expect(e));
      else c.noMaster++;
    }
    const deleted: ExpectEntry[] = [];
    for (const [key, old] of this.exp) {
      if (!fresh.has(key)) {
        this.exp.delete(key);
        deleted.push(old);
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
    return { created, updated, deleted };
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
    this.counters.flushed += this.map.size;
    this.expectCounters.flushed += this.exp.size;
    this.map.clear();
    this.exp.clear();
  }

  private sessionAdd(st: SessionState, e: ConntrackEntry): void {
    const key = entryKey(e);
    if (st.touched.has(key)) return;
    st.seen.add(key);
    const cached = this.map.get(key);
    if (cached !== undefined && carriesNothingNew(cached, e, false)) {
      this.keep(key, cached, e.timeout);
      return;
    }
    const verdict = this.filter.check(e);
    if (!verdict.pass) {
      this.counters.filtered[verdict.reason]++;
      st.pending.delete(key);
      return;
    }
    const c = this.compactor.entry(e);
    if (cached === undefined && this.map.size >= this.limit) {
      st.pending.set(key, c);
      return;
    }
    this.note(st, key, this.store(key, cached, c));
  }

  private sessionEnd(st: SessionState, complete: boolean): ReconcileResult<ConntrackEntry> {
    this.session = undefined;
    const deleted: ConntrackEntry[] = [];
    if (complete) {
      for (const [key, old] of this.map) {
        if (!st.seen.has(key) && !st.touched.has(key)) {
          this.map.delete(key);
          deleted.push(old);
        }
      }
      this.counters.destroyed += deleted.length;
      for (const [key, c] of st.pending) {
        // A key cached by now came from a later dump line or an event: newer than this copy.
        if (!st.touched.has(key) && !this.map.has(key)) this.note(st, key, this.store(key, undefined, c));
      }
      this.counters.reconciles++;
      this.reconciledAt = this.now();
    }
    // Events may have destroyed some of these since; the caller needs only live keys.
    const created = [...st.created].filter((k) => this.map.has(k));
    const updated = [...st.updated].filter((k) => !st.created.has(k) && this.map.has(k));
    return { created, updated, deleted };
  }

  private note(st: SessionState, key: string, r: ChangeKind): void {
    if (r === 'created') st.created.add(key);
    else if (r === 'updated') st.updated.add(key);
  }

  private hasMaster(e: ExpectEntry): boolean {
    // CTA_EXPECT_MASTER is the master's original tuple, and an expectation
    // lives in its master's zone.
    return this.map.has(entryKey({ family: e.family, orig: e.master, zone: e.zone }));
  }

  private store(key: string, cached: ConntrackEntry | undefined, e: ConntrackEntry): ChangeKind {
    if (cached === undefined) {
      if (this.map.size >= this.limit) {
        this.counters.refused++;
        return 'refused';
      }
      this.map.set(flatKey(key), e);
      this.counters.created++;
      return 'created';
    }
    // Normally caught before compaction; this also covers differences that
    // compaction irons out.
    if (carriesNothingNew(cached, e, false)) return this.keep(key, cached, e.timeout);
    this.map.set(key, e);
    this.counters.updated++;
    return 'updated';
  }

  /** An unchanged entry: only its timeout is refreshed, so dumps and the sender see it. */
  private keep(key: string, cached: ConntrackEntry, timeout: number | undefined): ChangeKind {
    const kept = refreshTimeout(cached, timeout);
    if (kept !== cached) this.map.set(key, kept);
    this.counters.unchanged++;
    return 'unchanged';
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
