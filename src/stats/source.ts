// What the metrics registry reads: the part of the daemon's stats object
// (`ctsyncd stats --json`) that becomes Prometheus metrics. The daemon hands
// over that very object, built from the modules' plain counters at scrape
// time, so /metrics and `ctsyncd stats` never disagree. Typed here so a
// renamed or removed stats field breaks the build rather than a dashboard.
import type { CommitStats } from '../cache/commit.js';
import type { FilterReason } from '../cache/filter.js';
import type { InjectCounters } from '../cache/inject.js';
import type { ExpectCounters, InternalCounters } from '../cache/internal-cache.js';
import type { ExternalCounters } from '../cache/external-cache.js';
import type { PeerEntryCounters } from '../cache/peer-validate.js';
import type { FailoverTarget } from '../keepalived/notify.js';
import type { FailoverSequencerCounters } from '../keepalived/sequencer.js';
import type { EventCounters } from '../kernel/conntrack-events.js';
import type { LinkCounters } from '../kernel/conntrack-link.js';
import type { ReadAheadCounters } from '../kernel/read-ahead.js';
import type { EventFilterRule } from '../kernel/event-filter.js';
import type { SenderCounters } from '../sync/engine/sender.js';
import type { AdmissionStats } from '../sync/engine/admission.js';
import type { SyncCounters, SyncPeerStats } from '../sync/engine/sync-node.js';
import type { ChannelStats } from '../sync/transport/channel-set.js';
import type { FlowlogSnapshot } from '../flowlog/writer.js';

export interface InternalCacheSnapshot extends InternalCounters {
  entries: number;
  limit: number;
  filtered: Record<FilterReason, number>;
  expectations: ExpectCounters & { entries: number };
}

export interface ExternalCacheSnapshot extends ExternalCounters {
  entries: number;
  limit: number;
  expectations: ExternalCounters & { entries: number };
  /** Peers' entries filtered, fixed (status bits, timeout) and refused over their share (src/cache/peer-validate.ts). */
  peerEntries: PeerEntryCounters;
}

/** The commit counters; the last report itself is not a metric. */
export type CommitSnapshot = Omit<CommitStats, 'last'>;

export interface KernelSnapshot {
  /** The BPF filter that drops our own commits' events in the kernel is attached. */
  ownEventsFiltered: boolean;
  /**
   * The event socket's kernel filter (src/kernel/event-filter.ts): which of
   * the filter's rules it applies before events are queued, and which are
   * applied in userspace only. It cannot count what it drops.
   */
  eventFilter: EventFilterSnapshot;
  /** Empty before the event socket is open. */
  events: Partial<EventCounters>;
  link: Partial<LinkCounters>;
  receiveBufferBytes: number;
  /**
   * Events read off the kernel queue ahead of handling them
   * (src/kernel/read-ahead.ts): the bound, what is held now, the most ever
   * held, and how often the bound stopped reading. All 0 when off.
   */
  readAhead: ReadAheadCounters;
  overruns: number;
  overrunResyncs: number;
}

export interface EventFilterSnapshot {
  attached: boolean;
  rules: EventFilterRule[];
  userspaceOnly: EventFilterRule[];
  instructions: number;
  /** Why the kernel refused the full program, or null. */
  refused: string | null;
}

/** Absent parts (counters, sender, resendQueue) mean the sync engine has not started yet. */
export interface SyncSnapshot {
  inSync?: boolean;
  counters?: SyncCounters;
  sender?: SenderCounters & { queueLength: number };
  resendQueue?: { length: number; capacity: number };
  peerCounters?: { ups: number; downs: number; restarts: number };
  /** cluster.nodes / maxNodes, peers tracked, and the datagrams admission refused (src/sync/engine/admission.ts). */
  admission?: AdmissionStats;
  channels: ChannelStats[];
  /** hmac: every datagram is signed and checked (sync.auth keys); none: `sync.auth: none`. */
  auth: SyncAuthMode;
}

export const SYNC_AUTH_MODES = ['hmac', 'none'] as const;
export type SyncAuthMode = (typeof SYNC_AUTH_MODES)[number];

/**
 * The control socket's counters (ControlServer's, src/control/server.ts);
 * empty when the daemon runs without one.
 */
export interface ControlSnapshot {
  /** Connections open now. */
  open?: number;
  /** Connections accepted, reserve ones included. */
  connections?: number;
  requests?: number;
  failedRequests?: number;
  badRequests?: number;
  /** Closed at their deadline (trickled requests, idle, unread replies). */
  deadlineClosed?: number;
  /** Of deadlineClosed, those with reply bytes still queued. */
  outputStalled?: number;
  /** Dropped while waiting for their reader: all unread replies together were over the limit. */
  outputDropped?: number;
  /** Requests answered beyond maxConnections (failover, commit, stats, ping). */
  reserveServed?: number;
  /** Connections beyond maxConnections closed unserved. */
  refused?: number;
}

export type InjectSnapshot = { enabled: boolean; queued?: number } & Partial<InjectCounters>;

export interface FailoverSnapshot {
  inSync: boolean;
  keepalivedState: FailoverTarget | null;
  sequencer: FailoverSequencerCounters | null;
}

// Declared where it is made (the flow log's writer and its thread report the same shape).
export type { FlowlogSnapshot };

/** The subset of Daemon.stats() the metrics are derived from. */
export interface StatsSnapshot {
  ready: boolean;
  internal: InternalCacheSnapshot;
  external: ExternalCacheSnapshot;
  peers: SyncPeerStats[];
  commit: CommitSnapshot;
  failover: FailoverSnapshot;
  inject: InjectSnapshot;
  kernel: KernelSnapshot;
  sync: SyncSnapshot;
  control: ControlSnapshot;
  /** Absent from snapshots made before the flow log existed; read as disabled. */
  flowlog?: FlowlogSnapshot;
}

export interface MetricsSource {
  /** A fresh stats snapshot; called once per scrape. */
  snapshot(): StatsSnapshot;
  /** The initial kernel dump and the first peer sync attempt are done (/readyz). */
  ready(): boolean;
}
