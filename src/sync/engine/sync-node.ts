// The replication engine: everything between "a local entry changed" and
// "a peer's external cache holds it", with the reliability protocol.
//
// Sequence numbers. Every data message (ct/exp new, update, delete) and
// every bulk-start/bulk-end takes the next of this node's u32 seqs (random
// start, wrapping); ack, nack, alive, hello, hello-ack, resync-request,
// challenge and challenge-response do not. All peers see one stream, and
// each receiver tracks it per (node id, epoch), so any number of active
// nodes work. seq.ts does every comparison.
//
//   Freshness      (freshness.ts)      which epoch of each peer we believe: challenge–response, request numbers
//
// The pieces, each a small state machine driven by now() and tick():
//   PeerTable      (peers.ts)          unknown → up → down → up; restarts (new epoch)
//   SyncSender     (sender.ts)         transmit queue, merging, MTU packing, flow control
//   Transmitter    (reliability-tx.ts) resend queue, per-peer acks, RTO, bulk bookkeeping
//   FtfwReceiver / NotrackReceiver
//                  (reliability-rx.ts) per (peer, epoch): window, acks, NACKs, ordered bulk end
//   SyncModeStrategy (sync-mode.ts; syncModes in sync-modes.ts, picked by sync.mode)
//                  ftfw or notrack: receiver kind, acks and resend queue, periodic refresh
//
// Restarts and first contact. A peer's epoch is believed only once the
// peer answered a challenge in it (freshness.ts): until then its datagrams
// are dropped, and the answer's seq is where tracking its stream starts.
// A (peer, epoch) first believed may have sent things we never saw, and a
// new epoch of a known peer leaves records of its old epoch behind: either
// way we ask that peer for a bulk (and repeat the request until a bulk for
// us completes), so neither a lost first datagram nor a restart leaves
// anything missing or stale. A new epoch also gets our state pushed to the
// peer as a directed bulk; what we owed its previous incarnation is dropped
// for that peer only (the resend queue still serves everyone else).
// Datagrams of an older epoch (late, or replayed) are dropped rather than
// taken for another restart. After MAX_SEQS_PER_EPOCH sequence numbers this
// node takes a new epoch itself (rollover), so no comparison wraps. A
// rollover is not a restart: the node's seqs go on, and its answer to the
// challenge the new epoch draws names the epoch before, so a peer that
// believed that one carries on (same receiver, same resend queue, the
// external cache's records relabelled) and no bulk goes either way.
//
// Nothing here sets a timer: tick() (about every 20 ms) evaluates the ack,
// NACK, retransmission, alive, liveness, resync and refresh deadlines
// against now(), and flushes go through the injected schedule().
import type { EntryRecord } from '../../kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../../kernel/entry.js';
import type { Logger } from '../../log.js';
import type { AuthKeys } from '../wire/auth.js';
import { decodeDatagram } from '../wire/datagram-decoder.js';
import { DatagramEncoder } from '../wire/datagram-encoder.js';
import type { WireMessage } from '../wire/types.js';
import { Freshness, type FreshnessCounters, newFreshnessCounters, type Nonce } from './freshness.js';
import { LogLimiter } from './log-limiter.js';
import { Admission, type AdmissionConfig, type AdmissionStats, DEFAULT_ADMISSION } from './admission.js';
import { PeerTable, type PeerState } from './peers.js';
import { MAX_SEQS_PER_EPOCH, type ReliabilityConfig } from './reliability.js';
import { carryFloor } from './seq.js';
import {
  type BulkEnd,
  type BulkStart,
  type DataMessage,
  newRxCounters,
  type Receiver,
  type RxCounters,
  type RxInfo,
  type RxSink,
} from './reliability-rx.js';
import { type BulkReason, newTxCounters, Transmitter, type TxCounters, type TxInfo } from './reliability-tx.js';
import type { ReplicaSink } from './replica-sink.js';
import { type EntryHandle, type QueueKind, type SenderCounters, SyncSender } from './sender.js';
import { seqDiff } from './seq.js';
import type { SyncModeName, SyncModeStrategy } from './sync-mode.js';
import { syncModes } from './sync-modes.js';

/** sync.mode; the strategy behind each name is in sync-modes.ts. */
export type SyncMode = SyncModeName;

export interface SyncNodeDeps {
  nodeId: string;
  cluster: number;
  /** This incarnation of the node: non-zero, above every epoch this node used before (epoch.ts). */
  epoch: number;
  /**
   * The epoch to take at a rollover (after maxSeqsPerEpoch seqs): above
   * every one used before. epoch + 1 when absent.
   */
  nextEpoch?: () => number;
  /** Seqs per epoch before a rollover; MAX_SEQS_PER_EPOCH when absent (tests use less). */
  maxSeqsPerEpoch?: number;
  /** A uniformly random u32, for challenge nonces; crypto.getRandomValues when absent. */
  random?: () => number;
  mtu: number;
  auth?: AuthKeys | undefined;
  mode: SyncMode;
  /** Receives the peers' entries (the daemon's ExternalCache). */
  external: ReplicaSink;
  /**
   * Current local state of a key, already stripped; undefined when gone.
   * Encoded at once and never kept, so a view into the cache will do.
   */
  lookup: (key: EntryHandle) => ConntrackEntry | EntryRecord | undefined;
  /** Every local key, for bulks. Iterated synchronously. */
  localKeys: () => Iterable<EntryHandle>;
  /** Current local state of an expectation; undefined when gone. */
  lookupExpect?: (key: string) => ExpectEntry | undefined;
  /** Every local expectation key, for bulks (sent after the conntrack entries). */
  localExpectKeys?: () => Iterable<string>;
  send: (datagram: Buffer) => void;
  /** Milliseconds. */
  now: () => number;
  /** Runs a transmit flush later; setImmediate by default. */
  schedule?: (fn: () => void) => void;
  log: Logger;
  timers: ReliabilityConfig;
  /** Which node ids are tracked (cluster.nodes, maxNodes, pruneAfterMs); DEFAULT_ADMISSION when absent. */
  admission?: AdmissionConfig;
  /**
   * Whether the local table is complete (the daemon's initial kernel dump is
   * done). Bulks that peers asked for wait until it is; explicit bulkSend()
   * does not. Always true when absent.
   */
  localReady?: () => boolean;
  /** First sequence number (random when absent); for tests of the wrap. */
  firstSeq?: number;
  /** Messages per transmit flush slice (SyncSender's default when absent). */
  sliceMessages?: number;
  onPeerUp?: (peer: string, epoch: number) => void;
  onPeerDown?: (peer: string) => void;
  onPeerRestart?: (peer: string, epoch: number, previousEpoch: number) => void;
  /** A bulk from peer was fully applied (removed = stale records dropped). */
  onBulkReceived?: (peer: string, removed: number) => void;
}

export interface SyncCounters extends RxCounters, TxCounters, FreshnessCounters {
  datagramsReceived: number;
  /** Undecodable or rejected datagrams, by wire error code. */
  datagramsDropped: Record<string, number>;
  ownDatagrams: number;
  /** Datagrams of an epoch older than the one believed (late or replayed). */
  staleEpochDatagrams: number;
  /** Epochs this node took after MAX_SEQS_PER_EPOCH seqs (or datagrams) in one. */
  epochRollovers: number;
  /**
   * Valid datagrams of a believed epoch whose number was not past the last
   * one seen (replayed, or overtaken on another link): handled, but taken
   * as no sign of the peer's life.
   */
  datagramsNotLive: number;
  /** Per-datagram warnings not logged (rate limit). */
  warningsSuppressed: number;
  messagesReceived: number;
  unknownMessages: number;
  /** Data messages handed to the external cache. */
  applied: number;
  datagramsSent: number;
  acksSent: number;
  nacksSent: number;
  /** Seqs named by the NACKs sent. */
  nackedMessages: number;
  alivesSent: number;
  hellosSent: number;
  hellosReceived: number;
  helloAcksReceived: number;
  resyncRequestsSent: number;
  resyncRequestsReceived: number;
  /** Bulks queued for sending (any reason), and their entries. */
  bulksSent: number;
  bulkEntriesSent: number;
  /** Why peers wanted a bulk from us. */
  bulksWanted: Record<BulkReason, number>;
  /** notrack periodic refreshes. */
  refreshes: number;
  /** Bulks for us that started / completed; stale records their ends removed. */
  bulksStarted: number;
  bulksReceived: number;
  bulkStaleRemoved: number;
}

export interface SyncPeerStats {
  id: string;
  state: PeerState;
  epoch: number;
  lastSeenAgeSeconds: number;
  restarts: number;
  rx: RxInfo | null;
  tx: TxInfo | null;
}

export interface SyncStats {
  node: string;
  epoch: number;
  /** sync.protocol: whose messages this engine speaks. */
  protocol: 'ctsyncd' | 'conntrackd';
  mode: SyncMode;
  started: boolean;
  firstSyncDone: boolean;
  inSync: boolean;
  nextSeq: number;
  counters: SyncCounters;
  peerCounters: { ups: number; downs: number; restarts: number };
  sender: SenderCounters & { queueLength: number };
  resendQueue: { length: number; capacity: number; front: number };
  peers: SyncPeerStats[];
  /** cluster.nodes / maxNodes and what admission refused and pruned. */
  admission: AdmissionStats;
}

/** Every counter of SyncCounters at zero; the conntrackd-protocol engine starts from the same set. */
export function newSyncCounters(): SyncCounters {
  return {
    ...newRxCounters(),
    ...newTxCounters(),
    ...newFreshnessCounters(),
    datagramsReceived: 0,
    datagramsDropped: {},
    ownDatagrams: 0,
    staleEpochDatagrams: 0,
    epochRollovers: 0,
    datagramsNotLive: 0,
    warningsSuppressed: 0,
    messagesReceived: 0,
    unknownMessages: 0,
    applied: 0,
    datagramsSent: 0,
    acksSent: 0,
    nacksSent: 0,
    nackedMessages: 0,
    alivesSent: 0,
    hellosSent: 0,
    hellosReceived: 0,
    helloAcksReceived: 0,
    resyncRequestsSent: 0,
    resyncRequestsReceived: 0,
    bulksSent: 0,
    bulkEntriesSent: 0,
    bulksWanted: { request: 0, hello: 0, restart: 0, gap: 0 },
    refreshes: 0,
    bulksStarted: 0,
    bulksReceived: 0,
    bulkStaleRemoved: 0,
  };
}

function forUs(peer: string, self: string): boolean {
  return peer === '' || peer === self;
}

export class SyncNode {
  readonly counters: SyncCounters;
  readonly peers: PeerTable;
  readonly admission: Admission;
  private readonly sender: SyncSender;
  private readonly tx: Transmitter;
  /** The receiver of each peer's current epoch. */
  private readonly rx = new Map<string, Receiver>();
  private readonly fresh: Freshness;
  private readonly warnings: LogLimiter;
  private readonly ctl: DatagramEncoder;
  private readonly data: DatagramEncoder;
  private epochNow: number;
  private epochFirstSeq: number;
  /** The epoch before epochNow when epochNow came by a rollover; 0 while it is the one we started with. */
  private epochBefore = 0;
  /** The number of the last datagram sent (Datagram.number), and of the last one before this epoch. */
  private datagramNo = 0;
  private epochFirstDatagram = 0;
  private readonly cfg: ReliabilityConfig;
  private readonly mode: SyncModeStrategy;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly sink: RxSink;
  private started = false;
  private closed = false;
  private startedAt = 0;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private lastRefreshAt = 0;
  private heardAny = false;
  private bulkEverReceived = false;
  /** A bulk became wanted since the last serveWantedBulks(). */
  private bulkWantedNow = false;
  private syncLatched = false;
  private firstSync = false;
  private nextBulkId = 1;

  constructor(private readonly deps: SyncNodeDeps) {
    this.cfg = deps.timers;
    this.mode = syncModes[deps.mode];
    this.now = deps.now;
    this.log = deps.log;
    this.counters = newSyncCounters();
    const encoderOpts = {
      cluster: deps.cluster,
      node: deps.nodeId,
      epoch: deps.epoch,
      mtu: deps.mtu,
      auth: deps.auth,
      // One count for both encoders: peers take only a number past every one seen as a sign of life.
      number: () => (this.datagramNo = (this.datagramNo + 1) >>> 0),
    };
    this.ctl = new DatagramEncoder(encoderOpts);
    this.data = new DatagramEncoder(encoderOpts);
    this.epochNow = deps.epoch;
    this.fresh = new Freshness({ random: deps.random ?? randomU32, counters: this.counters });
    this.warnings = new LogLimiter(deps.log);
    this.admission = new Admission(deps.admission ?? DEFAULT_ADMISSION, deps.nodeId, deps.log);
    this.peers = new PeerTable({
      now: deps.now,
      deadAfterMs: this.cfg.peerTimeoutMs,
      log: deps.log,
      onUp: (id) => this.onPeerUp(id),
      onDown: (id) => this.onPeerDown(id),
      onRestart: (id, epoch, previous) => this.onPeerRestart(id, epoch, previous),
    });
    const firstSeq = deps.firstSeq ?? (Math.random() * 0x1_0000_0000) >>> 0;
    this.epochFirstSeq = firstSeq;
    this.sender = new SyncSender({
      encoder: this.data,
      send: (buf) => this.emit(buf),
      lookup: deps.lookup,
      lookupExpect: deps.lookupExpect,
      onSequenced: (msg) => this.tx.onSequenced(msg, this.now()),
      onSequencedBytes: (seq, buf, start, end) => this.tx.onSequencedBytes(seq, buf, start, end, this.now()),
      firstSeq,
      sliceMessages: deps.sliceMessages,
      schedule: deps.schedule,
      room: () => (this.started && !this.closed ? this.tx.room() : 0),
    });
    this.tx = new Transmitter({
      acknowledged: this.mode.acknowledged,
      cfg: this.cfg,
      firstSeq,
      nextSeq: () => this.sender.nextSeq,
      resend: (msg) => this.out(msg),
      log: deps.log,
      counters: this.counters,
    });
    this.sink = {
      apply: (rx, m) => this.apply(rx, m),
      beginBulk: (rx, m) => this.beginBulk(rx, m),
      endBulk: (rx, m) => this.endBulk(rx, m, undefined),
      endLossyBulk: (rx, m, removeBefore, missing) => this.endBulk(rx, m, { removeBefore, missing }),
      ack: (rx, from, to) => {
        this.counters.acksSent++;
        this.out({ kind: 'ack', peer: rx.node, epoch: rx.epoch, from, to });
      },
      nack: (rx, from, to) => {
        this.counters.nacksSent++;
        this.counters.nackedMessages += seqDiff(from, to) + 1;
        this.out({ kind: 'nack', peer: rx.node, epoch: rx.epoch, from, to });
      },
    };
  }

  get nodeId(): string {
    return this.deps.nodeId;
  }

  /** The current epoch (the one at start, or the latest rollover's). */
  get epoch(): number {
    return this.epochNow;
  }

  /** The seq the next sequenced message will carry. */
  get nextSeq(): number {
    return this.sender.nextSeq;
  }

  /**
   * True once a bulk from some peer completed, or when no peer at all was
   * heard within startupSyncWaitMs of start() (a lone node is as synced as
   * it gets). Stays true.
   */
  get firstSyncDone(): boolean {
    return this.firstSync;
  }

  /**
   * Whether our external cache holds the peers' state, for keepalived's
   * track_file: false until some peer's bulk has completed to us and every
   * peer that is up has completed one; from then on true for the life of this
   * daemon. It gates the initial sync only: a peer that restarts later is the
   * one without state, and if this node dropped its own priority while that
   * peer's bulk runs, the empty peer could win the election.
   */
  get inSync(): boolean {
    if (this.syncLatched) return true;
    let any = this.bulkEverReceived;
    for (const [id, rx] of this.rx) {
      if (this.peers.get(id)?.state !== 'up') continue;
      if (!rx.synced) return false;
      any = true;
    }
    if (any) this.syncLatched = true;
    return any;
  }

  /** Announces this node (hello with our first seq) and asks every peer for its state. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    const now = this.now();
    this.startedAt = now;
    this.lastRefreshAt = now;
    this.counters.hellosSent++;
    // Peers answer with a challenge; each peer we then believe is asked for its state.
    this.out({ kind: 'hello', seq: this.sender.nextSeq });
    this.log.info('hello sent', { epoch: this.epochNow });
    this.flushOut();
    this.sender.resume();
  }

  /** Stops all sending and receiving (the node is going away). */
  close(): void {
    this.closed = true;
  }

  /** A local entry changed; for deletes, `gone` names it (the table no longer has it). */
  localChange(key: EntryHandle, kind: QueueKind, gone?: ConntrackEntry): void {
    if (this.closed) return;
    this.sender.enqueue(key, kind, gone);
  }

  /** A local expectation changed; for deletes, `gone` names it. */
  localExpectChange(key: string, kind: QueueKind, gone?: ExpectEntry): void {
    if (this.closed) return;
    this.sender.enqueueExpect(key, kind, gone);
  }

  /**
   * One datagram from the sync channel. ok = a valid datagram from a peer,
   * handled; live = also a sign of the peer's life (its number past every
   * one seen in its epoch, see PeerTable.seen): only that may count as link
   * liveness, since a replayed datagram is valid too.
   */
  receive(datagram: Buffer): { ok: boolean; live: boolean } {
    if (this.closed) return NOT_OK;
    const c = this.counters;
    c.datagramsReceived++;
    // Nothing larger than the MTU is ever sent (the encoder packs to it), so nothing larger is read.
    const r = decodeDatagram(datagram, {
      cluster: this.deps.cluster,
      auth: this.deps.auth,
      records: true,
      maxSize: this.deps.mtu,
    });
    if (!r.ok) {
      const code = r.error.code;
      c.datagramsDropped[code] = (c.datagramsDropped[code] ?? 0) + 1;
      this.warn(`drop-${code}`, 'sync datagram dropped', { code, reason: r.error.reason });
      return NOT_OK;
    }
    const { node, epoch } = r.header;
    if (node === this.deps.nodeId) {
      c.ownDatagrams++;
      return NOT_OK;
    }
    // Before anything is kept for the id: see admission.ts.
    // Counted against maxNodes: every id with state here, verified or still being challenged.
    if (this.admission.check(node, this.fresh) !== 'admitted') return NOT_OK;
    const now = this.now();
    if (!this.admitEpoch(node, epoch, r.messages, now)) {
      this.flushOut();
      return NOT_OK;
    }
    this.heardAny = true;
    const live = this.peers.seen(node, epoch, r.header.number);
    if (!live) c.datagramsNotLive++;
    let rx = this.rx.get(node);
    if (rx === undefined || rx.epoch !== epoch) {
      rx = this.mode.createReceiver(node, epoch, this.cfg, this.sink, c, now);
      this.rx.set(node, rx);
    }
    c.unknownMessages += r.unknownMessages;
    let acked = false;
    for (const m of r.messages) {
      c.messagesReceived++;
      if (this.onMessage(rx, m, now)) acked = true;
    }
    rx.afterDatagram(now);
    this.maybeRequestResync(rx, now);
    // A bulk this datagram made wanted (a restarted peer believed, a request)
    // goes now, not at the next tick: a restarted peer waits for nothing else.
    if (this.bulkWantedNow && this.started) this.serveWantedBulks(now);
    this.flushOut();
    if (acked) this.resumeSender();
    return live ? LIVE : OK_NOT_LIVE;
  }

  /**
   * Evaluates every deadline against now(): acks, NACK repeats,
   * retransmissions, resync requests, wanted bulks, notrack refresh, alive,
   * peer liveness and the startup wait. Call it every ~20 ms.
   */
  tick(): void {
    if (!this.started || this.closed) return;
    const now = this.now();
    this.peers.sweep();
    this.prune(now);
    if (!this.firstSync && !this.heardAny && now - this.startedAt >= this.cfg.startupSyncWaitMs) {
      this.markFirstSyncDone('no peer answered');
    }
    for (const rx of this.rx.values()) {
      rx.tick(now);
      this.maybeRequestResync(rx, now);
    }
    this.tx.tick(now);
    this.maybeRollover();
    const ready = this.deps.localReady?.() ?? true;
    if (ready) {
      this.serveWantedBulks(now);
      if (this.mode.periodicRefresh && now - this.lastRefreshAt >= this.cfg.refreshIntervalMs) {
        this.lastRefreshAt = now;
        this.counters.refreshes++;
        this.queueBulk('', 'refresh');
      }
    }
    if (this.ctl.messageCount === 0 && now - this.lastSentAt >= this.cfg.aliveIntervalMs) {
      this.counters.alivesSent++;
      this.out({ kind: 'alive', seq: this.sender.nextSeq });
    }
    this.flushOut();
    this.resumeSender();
  }

  /**
   * Asks peer ('' = every peer we believe) for its whole state; repeated
   * until a bulk for us completes. A peer not yet believed is asked once it
   * answers our challenge (a first contact always asks).
   */
  requestResync(peer = ''): void {
    if (this.closed) return;
    const now = this.now();
    this.log.info('resync requested', { peer: peer || '*' });
    for (const rx of this.rx.values()) {
      if (peer !== '' && rx.node !== peer) continue;
      this.sendResyncRequest(rx);
      rx.wantResync(now);
    }
    this.flushOut();
  }

  /** Pushes our whole state to peer ('' = every peer) now; returns the number of entries queued. */
  bulkSend(peer = ''): number {
    if (this.closed) return 0;
    return this.queueBulk(peer, 'explicit');
  }

  stats(): SyncStats {
    const q = this.tx.queue;
    const peers: SyncPeerStats[] = this.peers.list().map((p) => ({
      ...p,
      rx: this.rx.get(p.id)?.info() ?? null,
      tx: this.tx.info(p.id) ?? null,
    }));
    this.counters.warningsSuppressed = this.warnings.suppressedTotal;
    return {
      node: this.deps.nodeId,
      epoch: this.epochNow,
      protocol: 'ctsyncd',
      mode: this.deps.mode,
      started: this.started,
      firstSyncDone: this.firstSync,
      inSync: this.inSync,
      nextSeq: this.sender.nextSeq,
      counters: {
        ...this.counters,
        datagramsDropped: { ...this.counters.datagramsDropped },
        bulksWanted: { ...this.counters.bulksWanted },
      },
      peerCounters: { ...this.peers.counters },
      sender: { ...this.sender.counters, queueLength: this.sender.length },
      resendQueue: { length: q?.length ?? 0, capacity: q?.capacity ?? 0, front: this.tx.front() },
      peers,
      admission: this.admission.stats(this.fresh.size, this.rx.size),
    };
  }

  /**
   * The peers each one's share of the external cache is counted against
   * (cluster.nodes when listed, else the peers tracked now); at least 1.
   */
  get shareDivisor(): number {
    return this.admission.shareDivisor(this.peers.size);
  }

  /** Frees what peers down for longer than pruneAfterMs hold (see admission.ts). */
  private prune(now: number): void {
    this.fresh.expireUnverified(now, this.cfg.peerTimeoutMs);
    const ids = this.admission.prunable(this.peers.infos(), now, this.cfg.peerTimeoutMs);
    for (const id of ids) {
      let freed = this.rx.delete(id);
      freed = this.tx.forget(id) || freed;
      // A listed peer's verified epoch stays: the floor below which its
      // datagrams are replays. An unlisted one leaves no trace.
      if (!this.admission.isListed(id)) {
        freed = this.peers.forget(id) || freed;
        freed = this.fresh.forget(id) || freed;
        this.deps.external.release(id);
      }
      if (!freed) continue;
      this.admission.counters.pruned++;
      this.log.info('peer pruned: down too long, its sync state freed', { peer: id });
    }
  }

  /** Handles one message; returns true for an ack that made progress. */
  private onMessage(rx: Receiver, m: WireMessage, now: number): boolean {
    const self = this.deps.nodeId;
    switch (m.kind) {
      case 'ct-new':
      case 'ct-update':
      case 'ct-delete':
      case 'exp-new':
      case 'exp-delete':
        rx.onSequenced(m, false, now);
        return false;
      case 'bulk-start':
      case 'bulk-end':
        rx.onSequenced(m, forUs(m.peer, self), now);
        return false;
      case 'alive':
        rx.onAlive(m.seq, now);
        return false;
      case 'hello':
        // No bulk for a hello: the new epoch it announces got one when we believed it
        // (a restart), or asks us itself (first contact). A replayed hello starts nothing.
        if (rx.onHello(m.seq, now)) this.counters.hellosReceived++;
        return false;
      case 'hello-ack':
        if (m.peer === self && m.epoch === this.epochNow) this.counters.helloAcksReceived++;
        return false;
      case 'ack':
        if (this.mode.acknowledged && m.peer === self && this.ownEpoch(m.epoch)) {
          return this.tx.onAck(rx.node, m.to, now);
        }
        return false;
      case 'nack':
        if (this.mode.acknowledged && m.peer === self && this.ownEpoch(m.epoch)) {
          this.tx.onNack(rx.node, m.from, m.to, now);
        }
        return false;
      case 'resync-request':
        // Only a request to this very epoch of ours, with a number not honoured yet: a replayed one starts no bulk.
        if (m.peer === self && m.epoch === this.epochNow) {
          this.honourRequest(rx.node, m.request);
        } else if (m.peer === self || m.peer === '') {
          this.counters.staleRequests++;
        }
        return false;
      case 'challenge':
        if (m.peer === self) this.answer(rx.node, rx.epoch, m, now);
        return false;
      case 'challenge-response':
        // Taken in admitEpoch(), before the datagram's epoch was judged.
        return false;
    }
  }

  /**
   * Whether a datagram of (node, epoch) is processed. Answers the
   * challenges it carries when its epoch is not the one believed, takes a
   * response to our challenge (then the epoch is believed from now on and
   * the datagram processed), and challenges node when its epoch is newer
   * than the one believed or it challenged us from an older one.
   */
  private admitEpoch(node: string, epoch: number, messages: WireMessage[], now: number): boolean {
    const self = this.deps.nodeId;
    for (const m of messages) {
      if (m.kind !== 'challenge-response' || m.peer !== self) continue;
      const r = this.fresh.onResponse(node, epoch, m, m.firstEpoch);
      if (r !== false) {
        this.believe(node, epoch, m.seq, r.previous, r.continued, now);
        const held = this.fresh.takeHeldRequest(node, epoch);
        if (held !== undefined) this.honourRequest(node, held);
        return true;
      }
    }
    const verdict = this.fresh.verdict(node, epoch);
    if (verdict === 'current') return true;
    let challenged = false;
    for (const m of messages) {
      if (m.kind !== 'challenge' || m.peer !== self) continue;
      challenged = true;
      // A new epoch's first move is to challenge us; it must hear back before it believes us.
      if (verdict === 'unverified') this.answer(node, epoch, m, now);
    }
    if (verdict === 'unverified') {
      for (const m of messages) {
        if (m.kind === 'resync-request' && m.peer === self && m.epoch === this.epochNow) {
          this.fresh.holdRequest(node, epoch, m.request);
        }
      }
    }
    if (verdict === 'unverified' || challenged) {
      const n = this.fresh.challenge(node, now);
      if (n !== undefined) this.out({ kind: 'challenge', peer: node, ...n });
    }
    if (verdict === 'stale') {
      this.counters.staleEpochDatagrams++;
      this.warn('stale-epoch', 'sync datagram of an older epoch of the peer dropped (late or replayed)', {
        peer: node,
        epoch,
        believed: this.fresh.verified(node) ?? null,
      });
    } else {
      this.counters.unverifiedDatagrams++;
      this.log.debug('sync datagram of an epoch not verified yet dropped', { peer: node, epoch });
    }
    return false;
  }

  /**
   * node answered our challenge in `epoch`: that is its epoch now; tracking
   * starts at `seq`, or goes on when `continued` (a rollover from the epoch
   * we believed).
   */
  private believe(
    node: string,
    epoch: number,
    seq: number,
    previous: number | undefined,
    continued: boolean,
    now: number,
  ): void {
    if (previous === epoch) return;
    const going = this.rx.get(node);
    if (continued && previous !== undefined && going !== undefined && going.epoch === previous) {
      this.peers.rolled(node, epoch);
      this.tx.rolled(node, epoch);
      going.continueIn(epoch);
      this.deps.external.continueEpoch(node, previous, epoch, carryFloor(seq));
      // Whatever of the old epoch's stream has not arrived yet is a gap now, NACKed and resent in the new one.
      going.onAlive(seq, now);
      return;
    }
    this.log.info('peer epoch verified', { peer: node, epoch, previousEpoch: previous ?? null });
    this.peers.seen(node, epoch);
    const rx = this.mode.createReceiver(node, epoch, this.cfg, this.sink, this.counters, now);
    // Everything it sent before this answer is either in the bulk we are about to ask for or a recording.
    rx.onAlive(seq, now);
    this.rx.set(node, rx);
  }

  /** Answers node's challenge, sent in its epoch `epoch`, unless freshness says it was answered already. */
  private answer(node: string, epoch: number, m: Nonce, now: number): void {
    if (!this.fresh.shouldAnswer(node, m, now)) return;
    this.out({
      kind: 'challenge-response',
      seq: this.sender.nextSeq,
      peer: node,
      epoch,
      nonceHi: m.nonceHi,
      nonceLo: m.nonceLo,
      firstEpoch: this.deps.epoch,
    });
  }

  /**
   * Whether an ack or NACK addressed to our `epoch` is for this stream: the
   * current epoch, or the one before a rollover (a peer goes on addressing
   * that until it has verified the new one). A recorded ack or NACK is
   * harmless either way: acks only ever move forward, and a NACK is served
   * only from the resend queue.
   */
  private ownEpoch(epoch: number): boolean {
    return epoch === this.epochNow || (this.epochBefore !== 0 && epoch === this.epochBefore);
  }

  /** A resync request to this epoch of ours: a bulk for node, unless its number was honoured already. */
  private honourRequest(node: string, request: number): void {
    // acceptRequest counts a refused number as stale itself.
    if (!this.fresh.acceptRequest(node, request)) return;
    this.counters.resyncRequestsReceived++;
    this.wantBulk(node, 'request');
  }

  private sendResyncRequest(rx: Receiver): void {
    this.counters.resyncRequestsSent++;
    this.out({ kind: 'resync-request', peer: rx.node, epoch: rx.epoch, request: this.fresh.nextRequest() });
  }

  private warn(kind: string, msg: string, ctx: Record<string, unknown>): void {
    this.warnings.warn(kind, this.now(), msg, ctx);
  }

  /** After maxSeqsPerEpoch seqs in this epoch: take a new one (peers verify it and carry on, see the file comment). */
  private maybeRollover(): void {
    const used = (this.sender.nextSeq - this.epochFirstSeq) >>> 0;
    // Datagram numbers are compared modulo 2^32 within an epoch too: a node that only acks uses no seqs.
    const datagrams = (this.datagramNo - this.epochFirstDatagram) >>> 0;
    const max = Math.min(this.deps.maxSeqsPerEpoch ?? MAX_SEQS_PER_EPOCH, MAX_SEQS_PER_EPOCH);
    if (used < max && datagrams < max) return;
    const previous = this.epochNow;
    const next = this.deps.nextEpoch?.() ?? (previous + 1) >>> 0;
    this.flushOut();
    this.epochBefore = previous;
    this.epochNow = next;
    this.epochFirstSeq = this.sender.nextSeq;
    this.epochFirstDatagram = this.datagramNo;
    this.ctl.setEpoch(next);
    this.data.setEpoch(next);
    this.counters.epochRollovers++;
    this.counters.hellosSent++;
    this.out({ kind: 'hello', seq: this.sender.nextSeq });
    this.log.info('epoch rollover: a new epoch long before sequence numbers could wrap', {
      epoch: next,
      previousEpoch: previous,
      seqsUsed: used,
      datagramsSent: datagrams,
    });
  }

  private wantBulk(peer: string, reason: BulkReason): void {
    if (!this.tx.wantBulk(peer, reason)) return;
    this.counters.bulksWanted[reason]++;
    this.bulkWantedNow = true;
  }

  /**
   * Queues one bulk for the peers that want one and may have it now (at
   * most one per BULK_MIN_INTERVAL_MS each; the others wait for a later
   * tick), once our own table is complete.
   */
  private serveWantedBulks(now: number): void {
    this.bulkWantedNow = false;
    if (!(this.deps.localReady?.() ?? true)) return;
    const wanted = this.tx.wantedPeers(now);
    if (wanted.length > 0) this.queueBulk(wanted.length === 1 ? wanted[0]! : '', 'wanted');
  }

  private apply(rx: Receiver, m: DataMessage): void {
    const x = this.deps.external;
    this.counters.applied++;
    switch (m.kind) {
      case 'ct-new':
        x.applyRemote(rx.node, rx.epoch, m.seq, 'new', m.entry);
        return;
      case 'ct-update':
        x.applyRemote(rx.node, rx.epoch, m.seq, 'update', m.entry);
        return;
      case 'ct-delete':
        x.applyRemote(rx.node, rx.epoch, m.seq, 'delete', m.entry);
        return;
      case 'exp-new':
        x.applyRemoteExpect(rx.node, rx.epoch, m.seq, 'new', m.entry);
        return;
      case 'exp-delete':
        x.applyRemoteExpect(rx.node, rx.epoch, m.seq, 'delete', m.entry);
        return;
    }
  }

  private beginBulk(rx: Receiver, m: BulkStart): void {
    this.counters.bulksStarted++;
    this.deps.external.beginBulk(rx.node, { epoch: rx.epoch, seq: m.seq });
    this.log.debug('bulk from peer started', { peer: rx.node, bulkId: m.bulkId });
  }

  private endBulk(
    rx: Receiver,
    m: BulkEnd,
    lossy: { removeBefore: number | undefined; missing: number } | undefined,
  ): void {
    const x = this.deps.external;
    let removed = 0;
    if (lossy === undefined) removed = x.endBulk(rx.node);
    else if (lossy.removeBefore !== undefined) {
      x.beginBulk(rx.node, { epoch: rx.epoch, seq: lossy.removeBefore });
      removed = x.endBulk(rx.node);
    }
    this.counters.bulksReceived++;
    this.bulkEverReceived = true;
    this.counters.bulkStaleRemoved += removed;
    // notrack refreshes arrive every refreshIntervalMs from every peer: that is chatter, not news.
    const level = lossy === undefined || removed > 0 ? 'info' : 'debug';
    this.log[level]('bulk received', {
      peer: rx.node,
      entries: m.count,
      staleRemoved: removed,
      ...(lossy ? { missing: lossy.missing, removeBefore: lossy.removeBefore ?? null } : {}),
    });
    this.markFirstSyncDone(`bulk from ${rx.node}`);
    this.deps.onBulkReceived?.(rx.node, removed);
  }

  private markFirstSyncDone(how: string): void {
    if (this.firstSync) return;
    this.firstSync = true;
    this.log.info('first peer sync finished', { how });
  }

  private maybeRequestResync(rx: Receiver, now: number): void {
    if (this.peers.get(rx.node)?.state !== 'up' || !rx.resyncDue(now)) return;
    this.sendResyncRequest(rx);
  }

  /** Queues a bulk of every local key for peer ('' = all), framed by bulk-start/bulk-end. */
  private queueBulk(peer: string, why: string): number {
    const id = this.nextBulkId;
    this.nextBulkId = (this.nextBulkId + 1) >>> 0 || 1;
    // Before the markers can go out (a synchronous schedule sends at once): the transmitter notes their seqs.
    this.tx.bulkQueued(peer, id, this.now());
    this.sender.enqueueControl((seq) => ({ kind: 'bulk-start', seq, bulkId: id, peer }), true);
    const n = this.sender.enqueueBulk(this.deps.localKeys(), this.deps.localExpectKeys?.() ?? []);
    this.sender.enqueueControl((seq) => ({ kind: 'bulk-end', seq, bulkId: id, peer, count: n }), true);
    this.counters.bulksSent++;
    this.counters.bulkEntriesSent += n;
    this.log[why === 'refresh' ? 'debug' : 'info']('bulk send', { peer: peer || '*', entries: n, bulkId: id, why });
    return n;
  }

  private onPeerUp(id: string): void {
    const epoch = this.peers.get(id)?.epoch ?? 0;
    this.tx.setUp(id, epoch, true);
    // Tell it at once how far our stream is (it NACKs what it lacks), and retry our own NACKs and requests now.
    if (this.started && !this.closed) {
      this.counters.alivesSent++;
      this.out({ kind: 'alive', seq: this.sender.nextSeq });
    }
    const rx = this.rx.get(id);
    if (rx !== undefined && rx.epoch === epoch) rx.kick(this.now());
    this.deps.onPeerUp?.(id, epoch);
  }

  private onPeerDown(id: string): void {
    const epoch = this.peers.get(id)?.epoch ?? 0;
    this.tx.setUp(id, epoch, false);
    this.deps.onPeerDown?.(id);
  }

  private onPeerRestart(id: string, epoch: number, previous: number): void {
    this.rx.delete(id);
    this.tx.restart(id, epoch);
    this.wantBulk(id, 'restart');
    this.deps.onPeerRestart?.(id, epoch, previous);
  }

  private out(msg: WireMessage): void {
    if (!this.ctl.add(msg)) {
      this.flushOut();
      this.ctl.add(msg);
    }
  }

  private flushOut(): void {
    const buf = this.ctl.flush();
    if (buf) this.emit(buf);
  }

  private emit(buf: Buffer): void {
    if (this.closed) return;
    this.counters.datagramsSent++;
    this.lastSentAt = this.now();
    this.deps.send(buf);
  }

  private resumeSender(): void {
    if (this.tx.room() > 0) this.sender.resume();
  }
}

const NOT_OK = { ok: false, live: false } as const;
const OK_NOT_LIVE = { ok: true, live: false } as const;
const LIVE = { ok: true, live: true } as const;

/** A uniformly random u32 from the platform's CSPRNG (Web Crypto: no module to load). */
function randomU32(): number {
  return globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
}
