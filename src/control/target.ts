// What the control commands may ask of a daemon. The commands
// (src/control/commands.ts) are written against this interface, not the
// Daemon class, so the client, which shares their declarations, never loads
// the daemon; every import here is type-only for the same reason.
import type { CommitReport } from '../cache/commit.js';
import type { FlushKernelResult, PurgeTimeoutResult, ResyncResult as KernelResyncResult } from '../cache/local-table.js';
import type { FailoverResult, FailoverTarget } from '../keepalived/index.js';
import type { entryToJson } from '../kernel/entry-json.js';

export type CacheName = 'internal' | 'external';
/** conntrackd's `ct|expect` after -c, -F, -R, -i, -e: the conntrack table or the expectations. */
export type TableKind = 'ct' | 'expect';
export type DumpKind = TableKind;
/** The keepalived states a client may ask for; 'stop' is the daemon's own. */
export type FailoverState = Exclude<FailoverTarget, 'stop'>;

/** One entry or expectation of a dump, as `dump --json` prints it (owned by src/kernel/entry-json.ts). */
export type EntryJson = ReturnType<typeof entryToJson>;

/** The daemon's counters: a nested JSON object that `stats KIND` picks paths from (src/control/format.ts). */
export interface StatsJson {
  [key: string]: unknown;
}

/** Entries dropped per cache by a flush; a cache that was not flushed is absent. */
export interface FlushResult {
  internal?: number;
  external?: number;
}

export type { FailoverResult, FlushKernelResult, PurgeTimeoutResult };

/** A kernel resync as the control command reports it: LocalTable's counts and how long it took. */
export interface ResyncResult extends KernelResyncResult {
  durationMs: number;
}

/** The operations behind the control commands; the daemon supplies them (DaemonOperations). */
export interface ControlTarget {
  stats(): StatsJson;
  dump(cache: CacheName): Promise<EntryJson[]>;
  dumpExpect(cache: CacheName): EntryJson[] | Promise<EntryJson[]>;
  /** kind: only conntrack entries or only expectations; both when absent. */
  commit(peer?: string, kind?: TableKind): Promise<CommitReport>;
  flush(which?: CacheName): FlushResult;
  /** kind: only conntrack entries or only expectations; both when absent. Never more than asked. */
  flushKernel(kind?: TableKind): Promise<FlushKernelResult>;
  /** Kernel table → internal cache, replicating the differences; timed by the daemon's clock. kind as for flushKernel. */
  resync(kind?: TableKind): Promise<ResyncResult>;
  purgeTimeout(): Promise<PurgeTimeoutResult>;
  /** Asks every peer for a full resync; resolves with the ids of the peers known now. */
  requestResync(): readonly string[];
  /** Queues the internal cache for every peer; the number of entries queued. */
  bulkSend(): number;
  failover(state: FailoverState): Promise<FailoverResult>;
  /** Starts stopping the daemon after the reply has gone out. */
  shutdown(): void;
}
