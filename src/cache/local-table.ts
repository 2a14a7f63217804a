// The owner of this node's table: keeps the internal cache in step with the
// kernel (events, the initial dump, resyncs after an overrun or on request)
// and performs the operations that act on the kernel table as a whole
// (flush-kernel, purge-timeout). Every change to replicate leaves through
// LocalChangeListener, so this module knows nothing of the sync engine and
// can be driven on a FakeKernel alone.
import type {
  ConntrackEvent,
  ConntrackEvents,
  EventHandlers,
  EventType,
  ExpectEvent,
} from '../kernel/conntrack-events.js';
import type { ConntrackLink } from '../kernel/conntrack-link.js';
import type { RecordBuf } from '../kernel/ct-record.js';
import { type ConntrackEntry, type ExpectEntry, expectKey } from '../kernel/entry.js';
import type { DecodeError } from '../kernel/netlink-codec.js';
import type { Logger } from '../log.js';
import { type EntryFilter, type ExpectationPolicy, expectationPasses } from './filter.js';
import type { ChangeKind, InternalCache, ReconcileResult } from './internal-cache.js';

/** Overruns double the event buffer up to this by default; SO_RCVBUFFORCE lets root go past rmem_max. */
export const MAX_EVENT_BUFFER = 256 * 1024 * 1024;
/**
 * How long the event stream must go without another overrun before the
 * repairing dump starts. A burst that outruns the buffer overruns it again
 * and again, with empty reads in between; a dump at each of those re-read the
 * whole table each time (2 to 6 dumps per 200k-event burst through an 8 MiB
 * buffer, each competing with the burst it repairs). After the burst one
 * dump repairs everything it dropped. conntrackd waits 30 s by default
 * (NetlinkOverrunResync); a quarter of a second keeps the window in which a
 * dropped entry is not replicated short.
 */
export const OVERRUN_SETTLE_MS = 250;

/**
 * Which table a whole-table operation acts on (conntrackd's `ct|expect`
 * after -F, -R, -c): undefined is both.
 */
export type TableKind = 'ct' | 'expect';

/** What peers must hear about a local key (the sync engine's queue kinds). */
export type LocalChangeKind = 'new' | 'update' | 'delete';

/** Where the changes to replicate go: SyncNode satisfies it as it is, so the daemon hands it over directly. */
export interface LocalChangeListener {
  /**
   * key: the internal cache's slot for the entry (InternalCache.lastSlot);
   * entry: the deleted entry, given with 'delete' when it is known.
   */
  localChange(key: number, kind: LocalChangeKind, entry?: ConntrackEntry): void;
  localExpectChange(key: string, kind: 'new' | 'delete', entry?: ExpectEntry): void;
}

/** The parts of ConntrackEvents this module uses. */
export type LocalTableEvents = Pick<ConntrackEvents, 'start' | 'resizeReceiveBuffer' | 'receiveBuffer' | 'transport'>;

/** The parts of ConntrackLink this module uses. */
export type LocalTableLink = Pick<ConntrackLink, 'dump' | 'dumpRecords' | 'dumpExpectations' | 'batch' | 'flushExpectations'>;

export interface LocalTableCounters {
  /** Events our own requests caused that reached us anyway (the kernel filter was refused). */
  ownKernelEvents: number;
  overruns: number;
  /** Resync passes run because of an overrun. */
  overrunResyncs: number;
}

export interface LocalTableOptions {
  internal: InternalCache;
  filter: EntryFilter;
  events: LocalTableEvents;
  link: LocalTableLink;
  listener: LocalChangeListener;
  now: () => number;
  log: Logger;
  /** failover.purgeTimeoutSeconds. */
  purgeTimeoutSeconds: number;
  /** This host's addresses, read at each purge (interfaces come and go). */
  ownAddresses: () => Iterable<string>;
  /** kernel.netlinkBufferMaxBytes: overruns double the event buffer up to this. Default MAX_EVENT_BUFFER. */
  maxEventBufferBytes?: number;
  /** filter.expectations: which expectations are replicated, resynced and flushed. Default all. */
  expectations?: ExpectationPolicy;
  /** Quiet time after the last overrun before its dump; default OVERRUN_SETTLE_MS. */
  overrunSettleMs?: number;
  /** One-shot timer (default setTimeout, unref'd): wakes the settle wait. */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

export interface ResyncResult {
  /** Conntrack entries (0 when only expectations were asked for). */
  created: number;
  updated: number;
  deleted: number;
  /** The same for expectations; absent when they were not resynced (`ct`, or filter.expectations none). */
  expectations?: { created: number; updated: number; deleted: number };
}

export interface FlushKernelResult {
  /** Conntrack entries deleted (0 when only expectations were asked for). */
  deleted: number;
  failed: number;
  failures: Record<string, number>;
  /**
   * Expectations deleted; absent when none were flushed: `flush-kernel ct`,
   * or filter.expectations none (conntrackd without ExpectationSync leaves
   * them alone too).
   */
  expectations?: { deleted: number };
  durationMs: number;
}

export interface PurgeTimeoutResult {
  examined: number;
  shortened: number;
  local: number;
  failed: number;
  failures: Record<string, number>;
  timeoutSeconds: number;
}

const ENOENT = 2;

function unrefTimer(fn: () => void, ms: number): { cancel(): void } {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
}

export class LocalTable implements EventHandlers {
  readonly counters: LocalTableCounters = { ownKernelEvents: 0, overruns: 0, overrunResyncs: 0 };
  private readonly internal: InternalCache;
  private readonly filter: EntryFilter;
  private readonly events: LocalTableEvents;
  private readonly link: LocalTableLink;
  private readonly listener: LocalChangeListener;
  private readonly now: () => number;
  private readonly log: Logger;
  private dumpDone = false;
  private closed = false;
  private resyncRunning = false;
  private resyncAgain = false;
  private overrunPending = false;
  private capReported = false;
  private lastOverrunAt = Number.NEGATIVE_INFINITY;
  private settleTimer: { cancel(): void } | undefined;

  constructor(private readonly opts: LocalTableOptions) {
    this.internal = opts.internal;
    this.filter = opts.filter;
    this.events = opts.events;
    this.link = opts.link;
    this.listener = opts.listener;
    this.now = opts.now;
    this.log = opts.log;
  }

  /** The initial dump is done: the internal cache holds the whole table. */
  get initialDumpDone(): boolean {
    return this.dumpDone;
  }

  /** Starts taking kernel events. Subscribe (construct ConntrackEvents) before the initial dump so nothing falls between. */
  start(): void {
    this.events.start(this);
  }

  /** Ends resync loops; the sockets are the daemon's to close. */
  close(): void {
    this.closed = true;
    this.settleTimer?.cancel();
    this.settleTimer = undefined;
  }

  /**
   * The initial dump. Events interleave with it; a key an event touched
   * belongs to the events. Afterwards call resumeOverrunRecovery().
   */
  async initialDump(): Promise<ResyncResult> {
    const initial = await this.reconcileWithKernel();
    this.dumpDone = true;
    return initial;
  }

  /** An overrun during the initial dump waits for an empty queue; read it now so that happens. */
  resumeOverrunRecovery(): void {
    if (this.overrunPending) this.events.transport.drain();
  }

  onEvent(ev: ConntrackEvent): void {
    if (ev.own) {
      // Our own commits and injections are never replicated back.
      this.counters.ownKernelEvents++;
      return;
    }
    const internal = this.internal;
    const kind = internal.apply(ev.type, ev.entry);
    this.noteChange(internal.lastSlot, kind, internal.lastDeleted);
  }

  /** onEvent() for an event the kernel layer decoded straight into a record (see ConntrackEvents). */
  onRecordEvent(type: EventType, r: RecordBuf, at: number, own: boolean): void {
    if (own) {
      this.counters.ownKernelEvents++;
      return;
    }
    const internal = this.internal;
    const kind = internal.applyRecord(type, r, at);
    this.noteChange(internal.lastSlot, kind, internal.lastDeleted);
  }

  onExpectEvent(ev: ExpectEvent): void {
    if (ev.own) {
      this.counters.ownKernelEvents++;
      return;
    }
    // A destroy always passes: it can only remove what an earlier pass cached.
    if (ev.type !== 'destroy' && !expectationPasses(this.expectations, ev.entry)) return;
    const r = this.internal.applyExpect(ev.type, ev.entry);
    const key = expectKey(ev.entry);
    if (r === 'created' || r === 'updated') this.listener.localExpectChange(key, 'new');
    else if (r === 'deleted') this.listener.localExpectChange(key, 'delete', ev.entry);
  }

  /**
   * The kernel dropped events. It reports no further drops until our queue
   * has been read empty, so the reconciling dump starts then (onEmpty), not
   * earlier: a dump that overlaps a still-congested queue could miss entries
   * silently. The buffer doubles each time, up to maxEventBufferBytes;
   * reaching that is said once, as conntrackd does.
   */
  onOverrun(): void {
    this.counters.overruns++;
    const events = this.events;
    const before = events.receiveBuffer;
    const cap = this.opts.maxEventBufferBytes ?? MAX_EVENT_BUFFER;
    if (before < cap) events.resizeReceiveBuffer(Math.min(before * 2, cap));
    else if (!this.capReported) {
      this.capReported = true;
      this.log.warn('kernel event buffer at its cap (kernel.netlinkBufferMaxBytes): it grows no further', {
        receiveBufferBytes: before,
      });
    }
    this.log.warn('kernel event overrun: will resync with the kernel table', {
      receiveBufferBytes: events.receiveBuffer,
    });
    // Even during a resync: the next pass must also wait for an empty queue.
    this.overrunPending = true;
    this.lastOverrunAt = this.now();
  }

  onEmpty(): void {
    if (!this.overrunPending || !this.dumpDone || this.resyncRunning) return;
    // Not while a burst is still overrunning (OVERRUN_SETTLE_MS): one read of the queue once it has settled tells.
    const wait = this.lastOverrunAt + (this.opts.overrunSettleMs ?? OVERRUN_SETTLE_MS) - this.now();
    if (wait > 0) {
      this.settleTimer ??= (this.opts.setTimer ?? unrefTimer)(() => {
        this.settleTimer = undefined;
        if (!this.closed) this.events.transport.drain();
      }, wait);
      return;
    }
    this.overrunPending = false;
    void this.resyncKernel('overrun').catch((e: Error) =>
      this.log.error('kernel resync failed', { error: e.message }),
    );
  }

  onDecodeError(e: DecodeError): void {
    this.log.warn('undecodable kernel event', { code: e.code, reason: e.reason });
  }

  /**
   * Dumps the kernel table and replicates only the differences from the
   * internal cache. Events that arrive while the dump runs are newer than
   * what the dump may have seen, so they win over it (InternalCache's
   * reconcile session tracks them). A request while a resync runs makes it
   * run once more instead of overlapping it.
   */
  async resyncKernel(reason: string, kind?: TableKind): Promise<ResyncResult> {
    if (this.resyncRunning) {
      this.resyncAgain = true;
      return { created: 0, updated: 0, deleted: 0 };
    }
    this.resyncRunning = true;
    const total: ResyncResult = { created: 0, updated: 0, deleted: 0 };
    try {
      do {
        this.resyncAgain = false;
        const diff = await this.reconcileWithKernel(kind);
        total.created += diff.created;
        total.updated += diff.updated;
        total.deleted += diff.deleted;
        if (diff.expectations) {
          const x = (total.expectations ??= { created: 0, updated: 0, deleted: 0 });
          x.created += diff.expectations.created;
          x.updated += diff.expectations.updated;
          x.deleted += diff.expectations.deleted;
        }
        if (reason === 'overrun') this.counters.overrunResyncs++;
      } while (this.resyncAgain && !this.closed);
      this.log.info('kernel resync done', { reason, table: kind ?? 'all', ...total });
      return total;
    } finally {
      this.resyncRunning = false;
      // An overrun during this pass needs another once the queue is empty; reading it tells.
      if (this.overrunPending && !this.closed) this.events.transport.drain();
    }
  }

  /**
   * conntrackd -F [ct|expect]. `ct`: deletes every kernel conntrack entry the
   * filter accepts; entries it ignores (the sync link, loopback) stay.
   * `expect`: deletes the expectations filter.expectations replicates (all
   * of them, or those of its helpers; none with `none`). Without a kind,
   * both. Nothing beyond the kind asked for is touched. The deletions are
   * ours, so they are not replicated: peers keep their copy.
   */
  async flushKernel(kind?: TableKind): Promise<FlushKernelResult> {
    const started = this.now();
    const ct = kind === 'expect' ? { deleted: 0, failed: 0, failures: {} } : await this.flushConntrack();
    const expectations = kind === 'ct' ? undefined : await this.flushExpectations();
    const out: FlushKernelResult = {
      ...ct,
      ...(expectations === undefined ? {} : { expectations }),
      durationMs: this.now() - started,
    };
    this.log.info('kernel table flushed', { table: kind ?? 'all', ...out });
    return out;
  }

  private async flushConntrack(): Promise<Omit<FlushKernelResult, 'durationMs'>> {
    const link = this.link;
    const victims: ConntrackEntry[] = [];
    await link.dump((e) => {
      if (this.filter.check(e).pass) victims.push(e);
    });
    const r = await link.batch(
      victims.map((entry) => ({ op: 'delete' as const, entry })),
      { betweenChunks: () => this.events.transport.drain() },
    );
    const failures: Record<string, number> = {};
    let deleted = 0;
    for (let i = 0; i < victims.length; i++) {
      const errno = r.errnos[i]!;
      // ENOENT: it expired on its own meanwhile.
      if (errno === 0 || errno === ENOENT) {
        deleted++;
        this.internal.apply('destroy', victims[i]!);
      }
    }
    for (const [name, n] of Object.entries(r.failures)) if (name !== 'ENOENT') failures[name] = n;
    return { deleted, failed: victims.length - deleted, failures };
  }

  /**
   * The expectations of the policy, by one wholesale flush (all) or one
   * flush per helper name the dump found matching the list: the kernel
   * deletes by exact helper name itself. What the dump saw is what is
   * counted and leaves the internal cache.
   */
  private async flushExpectations(): Promise<{ deleted: number } | undefined> {
    const policy = this.expectations;
    if (policy === 'none') return undefined;
    const link = this.link;
    const victims: ExpectEntry[] = [];
    await link.dumpExpectations((x) => {
      if (expectationPasses(policy, x)) victims.push(x);
    });
    if (policy === 'all') await link.flushExpectations();
    else for (const helper of new Set(victims.map((x) => x.helper!))) await link.flushExpectations(0, helper);
    for (const x of victims) this.internal.applyExpect('destroy', x);
    return { deleted: victims.length };
  }

  /**
   * Shortens to purgeTimeoutSeconds the kernel timeouts of the connections
   * this node does not own: every entry the filter accepts whose endpoints
   * are not this node's own addresses. Zombies from this node's time as
   * primary then expire soon, unless traffic still flows through here and
   * keeps them alive (conntrackd's -t deletes them outright after the
   * delay). They also leave the internal cache, and peers are told (a
   * delete each): this node no longer holds them. A peer that also holds
   * them from the node now forwarding them keeps that node's copy (the
   * external cache keeps one copy per origin), so the delete takes away
   * only this node's, which it would otherwise keep for good, to be
   * committed at a later failover long after the connection ended.
   */
  async purgeTimeout(): Promise<PurgeTimeoutResult> {
    const link = this.link;
    const seconds = this.opts.purgeTimeoutSeconds;
    const own = new Set<string>(this.opts.ownAddresses());
    let examined = 0;
    let local = 0;
    const targets: ConntrackEntry[] = [];
    await link.dump((e) => {
      examined++;
      if (!this.filter.check(e).pass) return;
      if (own.has(e.orig.src) || own.has(e.orig.dst)) {
        local++;
        return;
      }
      targets.push(e);
    });
    const items = targets
      .filter((e) => e.timeout === undefined || e.timeout > seconds)
      .map((e) => ({ op: 'timeout' as const, entry: { ...e, timeout: seconds } }));
    const r = await link.batch(items, { betweenChunks: () => this.events.transport.drain() });
    const internal = this.internal;
    for (const e of targets) {
      const kind = internal.apply('destroy', e);
      this.noteChange(internal.lastSlot, kind, internal.lastDeleted);
    }
    const failures: Record<string, number> = {};
    for (const [name, n] of Object.entries(r.failures)) if (name !== 'ENOENT') failures[name] = n;
    const failed = Object.values(failures).reduce((a, b) => a + b, 0);
    const out = { examined, shortened: r.ok, local, failed, failures, timeoutSeconds: seconds };
    this.log.info('purge timeout applied', out);
    return out;
  }

  private get expectations(): ExpectationPolicy {
    return this.opts.expectations ?? 'all';
  }

  /** kind: only the conntrack table, only the expectations, or (undefined) both. */
  private async reconcileWithKernel(kind?: TableKind): Promise<ResyncResult> {
    const ct = kind === 'expect' ? { created: 0, updated: 0, deleted: 0 } : await this.reconcileConntrack();
    if (kind === 'ct' || this.expectations === 'none') return ct;
    return { ...ct, expectations: await this.reconcileExpectations() };
  }

  private async reconcileConntrack(): Promise<ResyncResult> {
    const session = this.internal.beginReconcile();
    let diff: ReconcileResult<number, ConntrackEntry>;
    try {
      await this.link.dumpRecords(
        (r, at) => session.addRecord(r, at),
        (e) => session.add(e),
      );
      diff = session.finish();
    } catch (e) {
      // Whatever was applied before the failure still goes out; nothing is deleted.
      this.replicate(session.abort());
      throw e;
    }
    this.replicate(diff);
    return { created: diff.created.length, updated: diff.updated.length, deleted: diff.deleted.length };
  }

  /** After the conntrack table (reconcileWithKernel), so the masters are current. */
  private async reconcileExpectations(): Promise<{ created: number; updated: number; deleted: number }> {
    const policy = this.expectations;
    const expectations: ExpectEntry[] = [];
    await this.link.dumpExpectations((x) => {
      if (expectationPasses(policy, x)) expectations.push(x);
    });
    const xdiff = this.internal.reconcileExpect(expectations);
    for (const key of [...xdiff.created, ...xdiff.updated]) this.listener.localExpectChange(key, 'new');
    for (const [i, x] of xdiff.deleted.entries()) this.listener.localExpectChange(xdiff.deletedKeys[i]!, 'delete', x);
    return { created: xdiff.created.length, updated: xdiff.updated.length, deleted: xdiff.deleted.length };
  }

  private replicate(diff: ReconcileResult<number, ConntrackEntry>): void {
    for (const key of diff.created) this.noteChange(key, 'created', undefined);
    for (const key of diff.updated) this.noteChange(key, 'updated', undefined);
    for (const [i, e] of diff.deleted.entries()) this.noteChange(diff.deletedKeys[i]!, 'deleted', e);
  }

  private noteChange(key: number, kind: ChangeKind, entry: ConntrackEntry | undefined): void {
    if (kind === 'created') this.listener.localChange(key, 'new');
    else if (kind === 'updated') this.listener.localChange(key, 'update');
    else if (kind === 'deleted') this.listener.localChange(key, 'delete', entry);
  }
}
