// What this node knows of each peer: its epoch (a new one means it
// restarted), when it was last heard from, and a small state machine
// unknown → up → down → up. Transitions are logged and counted.
import type { Logger } from '../../log.js';

export type PeerState = 'unknown' | 'up' | 'down';

export interface PeerInfo {
  id: string;
  state: PeerState;
  epoch: number;
  lastSeenMs: number;
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

  /** A valid datagram arrived from id with epoch. */
  seen(id: string, epoch: number): PeerInfo {
    const now = this.opts.now();
    let p = this.peers.get(id);
    if (!p) {
      p = { id, state: 'unknown', epoch, lastSeenMs: now, restarts: 0, ups: 0, downs: 0 };
      this.peers.set(id, p);
    } else if (p.epoch !== epoch) {
      const previous = p.epoch;
      p.epoch = epoch;
      p.restarts++;
      this.counters.restarts++;
      this.opts.log.info('peer restarted', { peer: id, epoch, previousEpoch: previous });
      this.opts.onRestart?.(id, epoch, previous);
    }
    p.lastSeenMs = now;
    if (p.state !== 'up') {
      p.state = 'up';
      p.ups++;
      this.counters.ups++;
      this.opts.log.info('peer up', { peer: id, epoch });
      this.opts.onUp?.(id);
    }
    return p;
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
