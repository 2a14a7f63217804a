// Which node ids a SyncNode keeps any state for (cluster.nodes,
// cluster.maxNodes, cluster.pruneAfterMs).
//
// Admission is decided from the datagram's header alone, before the peer
// table, a receiver (its window is 16 KiB in ftfw, 128 KiB in notrack), the
// transmitter or the external cache hears of the id: a refused id costs one
// counter increment and nothing else, so a flood of forged ids cannot grow
// memory or the metrics' `peer` labels. With cluster.nodes the listed ids
// are the only ones admitted; without it the first maxNodes ids heard are,
// until one of them is pruned.
//
// Pruning gives back what a long-dead peer held. A peer silent for
// peerTimeoutMs is down; pruneAfterMs later its receiver, retransmission
// state and retired epochs are freed. A listed peer stays in the peer table
// (as down, so stats and `ctsyncd_peer_up` keep showing it); an unlisted one
// is forgotten altogether and its slot is free for another id. Its entries
// stay in the external cache either way: they are what a failover commits.
import type { Logger } from '../../log.js';

/** cluster.nodes / maxNodes / pruneAfterMs as the engine takes them. */
export interface AdmissionConfig {
  /** The cluster's node ids; undefined admits any id up to maxNodes. */
  nodes?: readonly string[] | undefined;
  /** Most peers tracked at once. */
  maxNodes: number;
  /** Milliseconds a peer may stay down before its state is freed. */
  pruneAfterMs: number;
}

/** Used when a SyncNode is built without an admission config (tests, tools). */
export const DEFAULT_ADMISSION: AdmissionConfig = { maxNodes: 16, pruneAfterMs: 60_000 };

export interface AdmissionCounters {
  /** Datagrams from a node id not in cluster.nodes. */
  unknownNode: number;
  /** Datagrams from a new node id while maxNodes peers were tracked. */
  nodeLimit: number;
  /** Peers whose state was freed after pruneAfterMs down. */
  pruned: number;
}

export interface AdmissionStats {
  /** cluster.nodes, or null when any node id is admitted. */
  nodes: string[] | null;
  maxNodes: number;
  /** Ids with state now: verified peers, and first contacts still being challenged (freshness.ts). */
  tracked: number;
  /** Receivers (per-peer receive windows) held now; at most tracked. */
  receivers: number;
  counters: AdmissionCounters;
}

export type AdmissionVerdict = 'admitted' | 'unknown-node' | 'node-limit';

/** What Admission reads of the peer table. */
export interface TrackedPeers {
  has(id: string): boolean;
  readonly size: number;
}

/** One tracked peer, as prunable() judges it. */
export interface PeerLiveness {
  readonly id: string;
  readonly state: string;
  readonly lastSeenMs: number;
}

export class Admission {
  readonly counters: AdmissionCounters = { unknownNode: 0, nodeLimit: 0, pruned: 0 };
  private readonly listed: ReadonlySet<string> | undefined;
  /** Each kind of refusal is logged once (a flood must not flood the log); the counters say the rest. */
  private warned = { unknownNode: false, nodeLimit: false };

  constructor(
    private readonly cfg: AdmissionConfig,
    /** This node's own id: never counted as a peer even when listed. */
    private readonly self: string,
    private readonly log?: Logger,
  ) {
    this.listed = cfg.nodes === undefined ? undefined : new Set(cfg.nodes);
  }

  /** Whether ids are restricted to cluster.nodes. */
  get restricted(): boolean {
    return this.listed !== undefined;
  }

  /** Whether id is one of cluster.nodes (always false without a list). */
  isListed(id: string): boolean {
    return this.listed?.has(id) ?? false;
  }

  /**
   * The peers each one's share of the external cache is counted against:
   * the listed ones when cluster.nodes is given (known from the start),
   * else those tracked now; at least 1.
   */
  shareDivisor(tracked: number): number {
    const listed = this.listed;
    if (listed === undefined) return Math.max(1, tracked);
    return Math.max(1, listed.size - (listed.has(this.self) ? 1 : 0));
  }

  /** Decides a datagram from node id `id` (not ours); counts what it refuses. */
  check(id: string, peers: TrackedPeers): AdmissionVerdict {
    if (this.listed !== undefined && !this.listed.has(id)) {
      this.counters.unknownNode++;
      if (!this.warned.unknownNode) {
        this.warned.unknownNode = true;
        this.log?.warn('datagram from a node id not in cluster.nodes dropped (logged once; see stats sync.admission)', { node: id });
      }
      return 'unknown-node';
    }
    if (peers.has(id)) return 'admitted';
    if (peers.size >= this.cfg.maxNodes) {
      this.counters.nodeLimit++;
      if (!this.warned.nodeLimit) {
        this.warned.nodeLimit = true;
        this.log?.warn('cluster.maxNodes peers tracked: datagrams of further node ids dropped (logged once; see stats sync.admission)', {
          node: id,
          maxNodes: this.cfg.maxNodes,
        });
      }
      return 'node-limit';
    }
    return 'admitted';
  }

  /**
   * Ids of peers down for longer than pruneAfterMs past the peer timeout
   * (silent for peerTimeoutMs + pruneAfterMs), given `now`.
   */
  prunable(peers: Iterable<PeerLiveness>, now: number, peerTimeoutMs: number): string[] {
    const limit = peerTimeoutMs + this.cfg.pruneAfterMs;
    const out: string[] = [];
    for (const p of peers) if (p.state !== 'up' && now - p.lastSeenMs > limit) out.push(p.id);
    return out;
  }

  stats(tracked: number, receivers: number): AdmissionStats {
    return {
      nodes: this.cfg.nodes === undefined ? null : [...this.cfg.nodes],
      maxNodes: this.cfg.maxNodes,
      tracked,
      receivers,
      counters: { ...this.counters },
    };
  }
}
