// What a SyncNode writes the peers' state into. The external cache
// (src/cache/external-cache.ts) implements it; declaring it here keeps the
// sync layer below the cache, and lets tests hand a SyncNode any store.
import type { EntryRecord } from '../../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../../kernel/entry.js';

export type ReplicaOp = 'new' | 'update' | 'delete';

export interface ReplicaSink {
  /**
   * A peer's entry message, with the (epoch, seq) that orders it against
   * that peer's others; a record when the message carries one.
   */
  applyRemote(origin: string, epoch: number, seq: number, op: ReplicaOp, entry: ConntrackEntry | EntryRecord): void;
  /** applyRemote() for expectations (never 'update' on the wire). */
  applyRemoteExpect(origin: string, epoch: number, seq: number, op: ReplicaOp, entry: ExpectEntry): void;
  /** A bulk (full state) from origin starts: from here on, what it carries is marked. */
  beginBulk(origin: string, start?: { epoch: number; seq: number }): void;
  /** The bulk ended: drops origin's records the bulk did not carry; returns how many. */
  endBulk(origin: string): number;
  /**
   * origin's stream goes on in epoch `to` after `from` (a rollover, not a
   * restart): its records of `from` are ordered by seq with what `to`
   * brings; those older than `floor` move up to it (carryFloor in seq.ts).
   */
  continueEpoch(origin: string, from: number, to: number, floor: number): void;
  /** origin was pruned and left no trace in the sync layer: its records give way when room is needed. */
  release(origin: string): void;
}
