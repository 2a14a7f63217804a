// What the daemon asks of a replication engine, whichever protocol it
// speaks: SyncNode (ctsyncd's own, sync.protocol: ctsyncd) and
// ConntrackdNode (conntrackd 1.4.x's, sync.protocol: conntrackd) both
// implement it, so the daemon, its operations and the stats never test the
// protocol's name.
import type { ConntrackEntry, ExpectEntry } from '../../kernel/entry.js';
import type { EntryHandle, QueueKind } from './sender.js';
import type { SyncStats } from './sync-node.js';

/** sync.protocol (the config's enum; SyncStats.protocol names the same values). */
export type SyncProtocol = SyncStats['protocol'];

/** Where a datagram came from (the transport's DatagramSource has this shape; engine/ does not import transport/). */
export interface DatagramOrigin {
  address: string;
}

export interface SyncEngine {
  readonly nodeId: string;
  readonly epoch: number;
  readonly firstSyncDone: boolean;
  readonly inSync: boolean;
  /** The peers each one's share of the external cache is counted against; at least 1. */
  readonly shareDivisor: number;
  start(): void;
  close(): void;
  localChange(key: EntryHandle, kind: QueueKind, gone?: ConntrackEntry): void;
  localExpectChange(key: string, kind: QueueKind, gone?: ExpectEntry): void;
  /**
   * One datagram from a sync channel and where it came from; ok = valid and
   * from a peer, live = also a sign of the peer's life (what may keep a
   * link up: a replay is valid but, where the protocol can tell, not live).
   */
  receive(datagram: Buffer, from?: DatagramOrigin): { ok: boolean; live: boolean };
  tick(): void;
  requestResync(peer?: string): void;
  bulkSend(peer?: string): number;
  stats(): SyncStats;
}
