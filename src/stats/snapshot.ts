// The stats object (`ctsyncd stats --json`, and what /metrics reads): built
// from the modules' own counters at the moment of asking. A pure function of
// the parts handed in, so its keys and their order (which scripts and
// dashboards see) are pinned by a unit test rather than by a running daemon.
import type { CommitStats } from '../cache/commit.js';
import type { InjectCounters } from '../cache/inject.js';
import type { ExpectCounters, InternalCounters } from '../cache/internal-cache.js';
import type { ExternalCounters } from '../cache/external-cache.js';
import type { PeerEntryCounters } from '../cache/peer-validate.js';
import type { LocalTableCounters } from '../cache/local-table.js';
import type { FailoverTarget } from '../keepalived/notify.js';
import type { FailoverSequencerCounters } from '../keepalived/sequencer.js';
import type { EventCounters, KernelFilterStatus } from '../kernel/conntrack-events.js';
import type { LinkCounters } from '../kernel/conntrack-link.js';
import type { ReadAheadCounters } from '../kernel/read-ahead.js';
import type {
  ControlSnapshot,
  EventFilterSnapshot,
  FlowlogSnapshot,
  StatsSnapshot,
  SyncAuthMode,
  SyncSnapshot,
} from './source.js';

export interface InternalCacheView {
  readonly size: number;
  readonly counters: InternalCounters;
  readonly expectSize: number;
  readonly expectCounters: ExpectCounters;
}

export interface ExternalCacheView {
  readonly size: number;
  readonly counters: ExternalCounters;
  /** What the peer-entry checks and the per-origin share fixed and refused. */
  readonly peerCounters: PeerEntryCounters;
  origins(): Map<string, number>;
  readonly expectSize: number;
  readonly expectCounters: ExternalCounters;
}

/** The sync engine's stats() as far as this module looks into it; the rest is passed through. */
export interface SyncStatsView {
  peers: StatsSnapshot['peers'];
}

export interface StatsParts<S extends SyncStatsView> {
  ready: boolean;
  node: string;
  epoch: number;
  /** Milliseconds, same clock as now. */
  startedAt: number;
  now: number;
  pid: number;
  internal: InternalCacheView;
  internalLimit: number;
  external: ExternalCacheView;
  externalLimit: number;
  /** Undefined before the sync engine exists. */
  sync: S | undefined;
  /** Read after sync (reading it may latch the engine's in-sync state). */
  inSync: boolean;
  commit: CommitStats;
  failover: {
    inject: boolean;
    purgeTimeoutSeconds: number;
    trackFile: string | undefined;
    trackValue: 0 | 1 | undefined;
    notifyFifo: string | undefined;
    /** Undefined until the first failover or the notify FIFO uses it. */
    sequencer: { readonly state: FailoverTarget | undefined; readonly counters: FailoverSequencerCounters } | undefined;
  };
  injector: { readonly queued: number; readonly counters: InjectCounters } | undefined;
  /** Undefined before the kernel sockets are open. */
  events:
    | {
        readonly counters: EventCounters;
        readonly ownEventsFiltered: boolean;
        readonly receiveBuffer: number;
        readonly readAhead?: ReadAheadCounters | undefined;
        readonly kernelFilter?: KernelFilterStatus;
      }
    | undefined;
  link: { readonly counters: LinkCounters } | undefined;
  kernelCounters: LocalTableCounters;
  channels: { stats(): SyncSnapshot['channels']; readonly active: string } | undefined;
  /** How sync datagrams are authenticated (config sync.auth: keys or none). */
  auth: SyncAuthMode;
  /** The control socket; undefined before it listens or without one. */
  control: { readonly activeConnections: number; readonly counters: Required<Omit<ControlSnapshot, 'open'>> } | undefined;
  /** The flow log's counters, already flat; undefined without flowlog. */
  flowlog?: FlowlogSnapshot | undefined;
}

/** The stats object, built afresh from the parts' counters at each call. */
export function buildStatsSnapshot<S extends SyncStatsView>(p: StatsParts<S>) {
  const kernel = p.events?.counters;
  const sync = p.sync;
  const seq = p.failover.sequencer;
  // The peers are listed at the top level, so sync's own list is blanked (its key stays, as undefined).
  const syncTail = {
    peers: undefined,
    channels: p.channels?.stats() ?? [],
    activeChannel: p.channels?.active ?? null,
    auth: p.auth,
  };
  return {
    ready: p.ready,
    node: p.node,
    epoch: p.epoch,
    uptimeSeconds: Math.round((p.now - p.startedAt) / 1000),
    pid: p.pid,
    internal: {
      entries: p.internal.size,
      limit: p.internalLimit,
      ...p.internal.counters,
      expectations: { entries: p.internal.expectSize, ...p.internal.expectCounters },
    },
    external: {
      entries: p.external.size,
      limit: p.externalLimit,
      ...p.external.counters,
      origins: Object.fromEntries(p.external.origins()),
      expectations: { entries: p.external.expectSize, ...p.external.expectCounters },
      peerEntries: { ...p.external.peerCounters, filtered: { ...p.external.peerCounters.filtered } },
    },
    peers: sync ? sync.peers : [],
    commit: { ...p.commit, last: p.commit.last },
    failover: {
      inSync: p.inSync,
      inject: p.failover.inject,
      purgeTimeoutSeconds: p.failover.purgeTimeoutSeconds,
      trackFile: p.failover.trackFile ?? null,
      trackValue: p.failover.trackValue ?? null,
      notifyFifo: p.failover.notifyFifo ?? null,
      keepalivedState: seq?.state ?? null,
      sequencer: seq ? { ...seq.counters } : null,
    },
    inject: p.injector ? { enabled: true, queued: p.injector.queued, ...p.injector.counters } : { enabled: false },
    kernel: {
      ownEventsFiltered: p.events?.ownEventsFiltered ?? false,
      eventFilter: eventFilterSnapshot(p.events?.kernelFilter),
      events: kernel ? { ...kernel } : {},
      link: p.link ? { ...p.link.counters } : {},
      receiveBufferBytes: p.events?.receiveBuffer ?? 0,
      readAhead: p.events?.readAhead ?? { limitBytes: 0, heldBytes: 0, maxHeldBytes: 0, limitReached: 0 },
      ...p.kernelCounters,
    },
    sync: sync ? { ...(sync as Omit<S, 'peers'>), ...syncTail } : syncTail,
    control: p.control ? { open: p.control.activeConnections, ...p.control.counters } : {},
    flowlog: p.flowlog ? { ...p.flowlog } : { enabled: false },
  };
}

function eventFilterSnapshot(f: KernelFilterStatus | undefined): EventFilterSnapshot {
  if (!f) return { attached: false, rules: [], userspaceOnly: [], instructions: 0, refused: null };
  return {
    attached: f.attached,
    rules: [...f.rules],
    userspaceOnly: [...f.userspaceOnly],
    instructions: f.instructions,
    refused: f.refused ?? null,
  };
}
