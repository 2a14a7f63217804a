// What this node knows of each peer: its epoch (a new one means it
// restarted), when it was last heard from, and a small state machine
// unknown → up → down → up. Transitions are logged and counted.
import type { Logger } from '../../log.js';
import { seqAfter } from './seq.js';

export type PeerState = 'unknown' | 'up' | 'down';

export interface PeerInfo {
  id: string;
  state: PeerState;
  epoch: number;
  lastSeenMs: number;
  /** The highest datagram number seen in this epoch; undefined before the first numbered one. */
  lastNumber: number | undefined;
  restarts: number;
  ups: number;
  downs: number;
}

export interface PeerTableOptions {
  now: () => number;
  deadAfterMs: number;
  log: Logger;
  onRestart?: (id: string, epoch: number, previousEpoch: number) => void;
  onUp?: (id: string) => void;
  onDown?: (id: string) => void;
}

export class PeerTable {
  readonly counters = { ups: 0, downs: 0, restarts: 0 };
  private readonly peers = new Map<string, PeerInfo>();

  constructor(private readonly opts: PeerTableOptions) {}

  /**
   * A valid datagram arrived from id with epoch (`number`: its
   * Datagram.number, if any). Returns whether it is a sign of life: any
   * datagram but a numbered one whose number is not past the highest seen
   * in the epoch, which a replay of the current epoch is (and a datagram
   * overtaken on another link, harmlessly). Only a sign of life refreshes
   * lastSeen and brings the peer up.
   */
  seen(id: string, epoch: number, number?: number): boolean {
    const now = this.opts.now();
    let p = this.peers.get(id);
    if (!p) {
      p = { id, state: 'unknown', epoch, lastSeenMs: now, lastNumber: undefined, restarts: 0, ups: 0, downs: 0 };
      this.peers.set(id, p);
    } else if (p.epoch !== epoch) {
      const previous = p.epoch;
      p.epoch = epoch;
      p.lastNumber = undefined;
      p.restarts++;
      this.counters.restarts++;
      this.opts.log.info('peer restarted', { peer: id, epoch, previousEpoch: previous });
      this.opts.onRestart?.(id, epoch, previous);
    }
    if (number !== undefined) {
      if (p.lastNumber !== undefined && !seqAfter(number, p.lastNumber)) return false;
      p.lastNumber = number;
    }
    p.lastSeenMs = now;
    if (p.state !== 'up') {
      p.state = 'up';
      p.ups++;
      this.counters.ups++;
      this.opts.log.info('peer up', { peer: id, epoch });
      this.opts.onUp?.(id);
    }
    return true;
  }

  /**
   * id took a new epoch by a rollover (its stream goes on, see
   * sync-node.ts): the epoch changes with no restart counted.
   */
  rolled(id: string, epoch: number): void {
    const p = this.peers.get(id);
    if (p === undefined || p.epoch === epoch) return;
    this.opts.log.info('peer epoch rolled over', { peer: id, epoch, previousEpoch: p.epoch });
    p.epoch = epoch;
    // Numbers are compared within an epoch only (the sender takes a new one long before they wrap).
    p.lastNumber = undefined;
  }

  /** Marks peers that stayed silent too long as down. */
  sweep(): void {
    const now = this.opts.now();
    for (const p of this.peers.values()) {
      if (p.state === 'up' && now - p.lastSeenMs > this.opts.deadAfterMs) {
        p.state = 'down';
        p.downs++;
        this.counters.downs++;
        this.opts.log.warn('peer down', { peer: p.id, silentMs: now - p.lastSeenMs });
        this.opts.onDown?.(p.id);
      }
    }
  }

  get(id: string): PeerInfo | undefined {
    return this.peers.get(id);
  }

  has(id: string): boolean {
    return this.peers.has(id);
  }

  /** Peers tracked (any state). */
  get size(): number {
    return this.peers.size;
  }

  /** Every tracked peer, live (admission.ts prunes from it). */
  infos(): IterableIterator<PeerInfo> {
    return this.peers.values();
  }

  /** Drops id altogether (pruned: see admission.ts); true if it was tracked. */
  forget(id: string): boolean {
    return this.peers.delete(id);
  }

  list(): Array<{ id: string; state: PeerState; epoch: number; lastSeenAgeSeconds: number; restarts: number }> {
    const now = this.opts.now();
    return [...this.peers.values()].map((p) => ({
      id: p.id,
      state: p.state,
      epoch: p.epoch,
      lastSeenAgeSeconds: Math.round((now - p.lastSeenMs) / 100) / 10,
      restarts: p.restarts,
    }));
  }
}
