// What an operator (control commands) or keepalived (failover steps) can ask
// of a running daemon, over the parts the Daemon wires together. The
// commands themselves, their arguments and replies are declared in
// src/control/commands.ts against ControlTarget; the step sequences live in
// src/keepalived/failover.ts against FailoverOperations. This class is the
// one place both meet the caches, the local table, the commit runner and
// the sync engine.
import type { CommitReport } from '../cache/commit.js';
import type { CommitRunner } from '../cache/commit-runner.js';
import type { ExternalCache } from '../cache/external-cache.js';
import type { InternalCache } from '../cache/internal-cache.js';
import type { LocalTable } from '../cache/local-table.js';
import { OperationError } from '../common/errors.js';
import type {
  CacheName,
  ControlTarget,
  EntryJson,
  FailoverState,
  FlushKernelResult,
  FlushResult,
  PurgeTimeoutResult,
  ResyncResult,
  StatsJson,
  TableKind,
} from '../control/target.js';
import { Failover, type FailoverOperations, type FailoverResult, type FailoverStep } from '../keepalived/index.js';
import { entryToJson, expectToJson } from '../kernel/entry-json.js';
import type { Logger } from '../log.js';
import type { SyncEngine } from '../sync/engine/sync-engine.js';

/** Entries converted per slice of a control dump (about 5 ms of work). */
const DUMP_SLICE = 5000;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface OperationParts {
  internal: InternalCache;
  external: ExternalCache;
  commits: CommitRunner;
  /** The local table once start() opened the kernel link. */
  table: () => LocalTable | undefined;
  /** The sync engine once start() built it. */
  sync: () => SyncEngine | undefined;
  /** The stats object `ctsyncd stats --json` prints (src/stats/snapshot.ts). */
  stats: () => StatsJson;
  /** Stops the daemon; called after the shutdown reply has gone out. */
  stop: () => Promise<void>;
  log: Logger;
  now: () => number;
  /** failover.vrrpName: the keepalived sync group or instance to follow. */
  vrrpName?: string;
}

export class DaemonOperations implements ControlTarget, FailoverOperations {
  /** keepalived's step sequences, run against these same operations. */
  readonly failovers: Failover;

  constructor(private readonly parts: OperationParts) {
    this.failovers = new Failover(this, { log: parts.log, name: parts.vrrpName, now: parts.now });
  }

  private localTable(): LocalTable {
    const table = this.parts.table();
    if (!table) throw new OperationError('ENOTREADY', 'the kernel link is not open yet');
    return table;
  }

  stats(): StatsJson {
    return this.parts.stats();
  }

  /** The entries of one cache as JSON objects, built in slices that yield to the loop. */
  async dump(which: CacheName): Promise<EntryJson[]> {
    const out: EntryJson[] = [];
    let n = 0;
    if (which === 'internal') {
      for (const e of this.parts.internal.values()) {
        out.push(entryToJson(e));
        if (++n % DUMP_SLICE === 0) await yieldToLoop();
      }
    } else {
      for (const r of this.parts.external.records()) {
        out.push({ ...entryToJson(r.entry), origin: r.origin });
        if (++n % DUMP_SLICE === 0) await yieldToLoop();
      }
    }
    return out;
  }

  /** Expectations of one cache as JSON objects. */
  dumpExpect(which: CacheName): EntryJson[] {
    const out: EntryJson[] = [];
    if (which === 'internal') for (const [, e] of this.parts.internal.expectEntries()) out.push(expectToJson(e));
    else for (const [, r] of this.parts.external.expectEntries()) out.push({ ...expectToJson(r.entry), origin: r.origin });
    return out;
  }

  /** See CommitRunner: one at a time, like conntrackd; a second request while one runs is refused. */
  commit(peer?: string, kind?: TableKind): Promise<CommitReport> {
    return this.parts.commits.commit(peer, kind);
  }

  /** Empties the internal and/or external cache (like conntrackd -f). Nothing is sent to peers. */
  flush(which?: CacheName): FlushResult {
    const out: FlushResult = {};
    if (which !== 'external') {
      out.internal = this.parts.internal.size;
      this.parts.internal.flush();
    }
    if (which !== 'internal') {
      out.external = this.parts.external.size;
      this.parts.external.flush();
    }
    this.parts.log.info('caches flushed', { ...out });
    return out;
  }

  /** Like conntrackd -F [ct|expect]; see LocalTable.flushKernel. */
  async flushKernel(kind?: TableKind): Promise<FlushKernelResult> {
    return this.localTable().flushKernel(kind);
  }

  /** Like conntrackd -t, but shortening timeouts; see LocalTable.purgeTimeout. */
  async purgeTimeout(): Promise<PurgeTimeoutResult> {
    return this.localTable().purgeTimeout();
  }

  /** Reconciles the internal cache with a kernel dump; see LocalTable.resyncKernel. */
  async resyncKernel(reason: string, kind?: TableKind): Promise<Omit<ResyncResult, 'durationMs'>> {
    return this.localTable().resyncKernel(reason, kind);
  }

  /** The resync command (-R [ct|expect]): resyncKernel, timed by the daemon's clock. */
  async resync(kind?: TableKind): Promise<ResyncResult> {
    const started = this.parts.now();
    const r = await this.resyncKernel('command', kind);
    return { ...r, durationMs: this.parts.now() - started };
  }

  /** Asks every peer for a full resync; the ids of the peers known now. */
  requestResync(): string[] {
    const sync = this.parts.sync();
    sync?.requestResync('');
    return (sync?.stats().peers ?? []).map((p) => p.id);
  }

  /** Queues the whole internal cache for every peer; the number of entries queued. */
  bulkSend(): number {
    return this.parts.sync()?.bulkSend('') ?? 0;
  }

  /** `ctsyncd failover primary|backup|fault`; see Failover.failover. */
  failover(state: FailoverState): Promise<FailoverResult> {
    return this.failovers.failover(state);
  }

  /** One failover step, run in this process (see Failover). */
  runFailoverStep(step: FailoverStep): Promise<unknown> {
    return this.failovers.runStep(step);
  }

  shutdown(): void {
    setImmediate(() => void this.parts.stop());
  }
}
