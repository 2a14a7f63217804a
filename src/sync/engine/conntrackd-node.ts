// The replication engine for sync.protocol: conntrackd — conntrackd 1.4.x's
// FTFW and NOTRACK modes over its own wire format (../wire/conntrackd-codec.ts),
// so a ctsyncd node can sit beside a conntrackd node during a migration.
// Behaviour follows ../shared/docs/conntrackd.md §1.1 and §3 (written from
// that description, not from conntrackd's code):
//
// - One sequence counter for everything this node sends, data and control,
//   starting at the clock's unix seconds as conntrackd's does.
// - The protocol knows two nodes and no ids: the peer is the first address
//   heard and is named by it; datagrams from any other address are dropped
//   (counted as EPEER).
// - FTFW receive: in order → process and count down the ack window (ACK
//   [from, seq] when it runs out, or after ackDelayMs, or at the alive tick);
//   a gap → process, ACK what was in order, NACK [expected, seq-1], new
//   window; before expected → drop. FTFW send: every sent entry, ACK, NACK
//   and RESYNC stays in the resend queue (oldest evicted past
//   resendQueueSize) until the peer's ACK names it; a NACK puts the entries
//   it names back on the transmit queue, rebuilt from the current state with
//   a new seq. No retransmission timer: loss shows as a gap at the peer.
// - HELLO: we set it on everything until a HELLO_BACK arrives; the first
//   HELLO of a peer's run re-bases our receive count on its seq (later ones
//   are counted, so loss among them is NACKed) and is answered with
//   HELLO_BACK on our next message. Where conntrackd empties its resend
//   queue on every HELLO (which loses entries for good when a restarted
//   peer's NACKs carry HELLO, §9), we do so once per peer start, and push
//   that new peer our whole table (it has nothing, and conntrackd does not
//   ask for it unless StartupResync is on).
// - NOTRACK: no acks, no resend queue, an ALIVE after each second of
//   transmit silence; a seq before the last one is taken as a restarted
//   peer (NOTRACK has no HELLO and no retransmission to explain it). As in
//   ctsyncd's own notrack, the whole table goes out again every
//   refreshIntervalMs: the only repair of loss, and what keeps a conntrackd
//   ALARM peer's entries from expiring (its CacheTimeout).
// - RESYNC from the peer (its `-n`) → our whole table as CT_UPD (an upsert
//   at the receiver); we send one at start (conntrackd's StartupResync) and
//   on requestResync().
//
// - Expectations (conntrackd's ExpectationSync): EXP_NEW / EXP_UPD / EXP_DEL,
//   sequenced, acked and resent like entries, sent after the entries of the
//   same flush (and of a bulk) so that a receiver meets the master first.
//   Which expectations are local at all is filter.expectations' business,
//   as for the ctsyncd protocol.
//
// Entries go to the external cache ordered by (peer, incarnation, seq): an
// incarnation is counted up at each peer start we notice, since conntrackd's
// seqs start again then.
import { entryKey, expectKey, type ConntrackEntry, type ExpectEntry } from '../../kernel/entry.js';
import { EntryRecord } from '../../kernel/ct-record.js';
import type { Logger } from '../../log.js';
import { CTD_F, CtdWriter, type CtdMessage, decodeCtdDatagram } from '../wire/conntrackd-codec.js';
import { Admission, DEFAULT_ADMISSION } from './admission.js';
import { LogLimiter } from './log-limiter.js';
import { PeerTable } from './peers.js';
import type { ReplicaOp } from './replica-sink.js';
import type { EntryHandle, QueueKind } from './sender.js';
import { seqAdd, seqAfter, seqBefore, seqDiff, seqInRange } from './seq.js';
import type { DatagramOrigin, SyncEngine } from './sync-engine.js';
import { newSyncCounters, type SyncCounters, type SyncNodeDeps, type SyncStats } from './sync-node.js';

/** What the engine needs: the deps of SyncNode less what conntrackd's protocol has no room for (ids, epochs, keys). */
export type ConntrackdNodeDeps = Omit<SyncNodeDeps, 'cluster' | 'nextEpoch' | 'maxSeqsPerEpoch' | 'random' | 'auth'>;

/** The peer's name before any datagram named its address (tests without a transport). */
const UNNAMED_PEER = 'conntrackd';
/** Messages per transmit slice before yielding to the event loop (the receive side must run too). */
const DEFAULT_SLICE = 1000;
/** How long the peer's data must be quiet after our resync request before the first sync counts as done, in alive intervals. */
const QUIET_ALIVES = 1.5;

type Resendable =
  | { t: 'entry'; key: EntryHandle; kind: 'new' | 'update' }
  | { t: 'del'; entry: ConntrackEntry }
  | { t: 'exp'; key: string; kind: 'new' | 'update' }
  | { t: 'expdel'; entry: ExpectEntry }
  | { t: 'ctl'; flags: number; from: number; to: number };

export class ConntrackdNode implements SyncEngine {
  readonly counters: SyncCounters = newSyncCounters();
  readonly peers: PeerTable;
  private readonly admission: Admission;
  private readonly ftfw: boolean;
  private readonly log: Logger;
  private readonly warnings: LogLimiter;
  private readonly now: () => number;
  private readonly schedule: (fn: () => void) => void;
  private readonly slice: number;
  /** Pending new/update of local entries, by handle, in the order first queued. */
  private readonly txq = new Map<EntryHandle, 'new' | 'update'>();
  /** Pending deletes by entry key: a handle may be reused by another entry before the delete goes out. */
  private readonly txDel = new Map<string, ConntrackEntry>();
  /** Pending new/update of local expectations, by key; sent after the entries. */
  private readonly txExp = new Map<string, 'new' | 'update'>();
  /** Pending expectation deletes, by key. */
  private readonly txExpDel = new Map<string, ExpectEntry>();
  /** Pending control messages (flags, from, to), sent before any entry. */
  private readonly ctlq: { flags: number; from: number; to: number }[] = [];
  /** FTFW: what was sent and not yet acked, by seq, in send order. */
  private readonly rsq = new Map<number, Resendable>();
  private seq: number | undefined;
  /** The seq of the last entry sent. */
  private lastSeq = 0;
  private readonly sender = { messagesSent: 0, vanished: 0, unencodable: 0 };
  private readonly msg = new CtdWriter();
  private readonly dgram: Buffer;
  private dgramLen = 0;
  private flushQueued = false;
  private started = false;
  private closed = false;
  private startedAt = 0;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  /** We set HELLO on what we send until the peer's HELLO_BACK. */
  private helloing: boolean;
  private helloBackOwed = false;
  // Receive side.
  private peer: string | undefined;
  /** Counted up at each start of the peer we notice; the external cache's epoch for its entries. */
  private incarnation = 1;
  private peerHelloing = false;
  private last: number | undefined;
  private ackFrom: number | undefined;
  private ackOpenedAt = 0;
  private window: number;
  private lastDataAt = Number.NEGATIVE_INFINITY;
  private resyncAskedAt = 0;
  private bulkOwed = false;
  private lastRefreshAt = 0;
  private firstSync = false;

  constructor(private readonly deps: ConntrackdNodeDeps) {
    this.ftfw = deps.mode === 'ftfw';
    this.helloing = this.ftfw;
    this.log = deps.log;
    this.now = deps.now;
    this.schedule = deps.schedule ?? ((fn) => setImmediate(fn));
    this.slice = deps.sliceMessages ?? DEFAULT_SLICE;
    this.window = deps.timers.ackWindow;
    this.dgram = Buffer.alloc(deps.mtu);
    this.warnings = new LogLimiter(deps.log);
    this.admission = new Admission(deps.admission ?? DEFAULT_ADMISSION, deps.nodeId, deps.log);
    this.peers = new PeerTable({ now: deps.now, deadAfterMs: deps.timers.peerTimeoutMs, log: deps.log });
  }

  get nodeId(): string {
    return this.deps.nodeId;
  }

  get epoch(): number {
    return this.deps.epoch;
  }

  get firstSyncDone(): boolean {
    return this.firstSync;
  }

  get inSync(): boolean {
    return this.firstSync;
  }

  /** conntrackd's protocol is for two nodes: the peer holds the whole external cache. */
  get shareDivisor(): number {
    return 1;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.startedAt = this.now();
    this.lastRefreshAt = this.startedAt;
    this.log.info('conntrackd protocol: no authentication, anything that reaches the sync port can write entries', {
      mode: this.deps.mode,
    });
    // As conntrackd's StartupResync: ask the peer for its table at once;
    // and push ours once the table is read (the peer's copy of it may be stale).
    this.requestResync();
    this.bulkOwed = true;
  }

  close(): void {
    this.closed = true;
  }

  localChange(key: EntryHandle, kind: QueueKind, gone?: ConntrackEntry): void {
    if (this.closed) return;
    if (kind === 'delete') {
      this.txq.delete(key);
      if (gone !== undefined) this.txDel.set(entryKey(gone), gone);
    } else {
      // A new that is still waiting stays a new; anything else goes out as its latest state.
      if (this.txq.get(key) !== 'new') this.txq.set(key, kind);
    }
    this.queueFlush();
  }

  localExpectChange(key: string, kind: QueueKind, gone?: ExpectEntry): void {
    if (this.closed) return;
    if (kind === 'delete') {
      this.txExp.delete(key);
      if (gone !== undefined) this.txExpDel.set(key, gone);
    } else {
      // As for entries: a waiting new stays a new, and what goes out is the state at send time.
      this.txExpDel.delete(key);
      if (this.txExp.get(key) !== 'new') this.txExp.set(key, kind);
    }
    this.queueFlush();
  }

  receive(datagram: Buffer, from?: DatagramOrigin): { ok: boolean; live: boolean } {
    if (this.closed) return NOT_OK;
    const c = this.counters;
    c.datagramsReceived++;
    const name = from?.address ?? UNNAMED_PEER;
    if (this.peer !== undefined && name !== this.peer) {
      this.drop('EPEER', `from ${name}: conntrackd's protocol has one peer, and it is ${this.peer}`);
      return NOT_OK;
    }
    const r = decodeCtdDatagram(datagram);
    for (const e of r.errors) this.drop(e.code, e.reason);
    if (r.messages.length === 0) return NOT_OK;
    if (this.peer === undefined) {
      this.peer = name;
      this.log.info('conntrackd peer', { peer: name });
    }
    const now = this.now();
    for (const m of r.messages) {
      c.messagesReceived++;
      this.onMessage(m, now);
    }
    this.peers.seen(this.peer, this.incarnation);
    this.queueFlush();
    // conntrackd's messages carry nothing that tells a replay from the live peer (no auth either): all are live.
    return LIVE;
  }

  tick(): void {
    if (!this.started || this.closed) return;
    const now = this.now();
    this.peers.sweep();
    if (this.ftfw && this.ackFrom !== undefined && now - this.ackOpenedAt >= this.deps.timers.ackDelayMs) {
      this.sendAck(this.ackFrom, this.last ?? this.ackFrom);
    }
    const ready = this.deps.localReady?.() ?? true;
    if (ready && !this.ftfw && now - this.lastRefreshAt >= this.deps.timers.refreshIntervalMs) {
      this.lastRefreshAt = now;
      this.counters.refreshes++;
      this.bulkOwed = true;
    }
    if (this.bulkOwed && ready) {
      this.bulkOwed = false;
      this.bulkSend();
    }
    if (this.ctlq.length === 0 && this.txq.size === 0 && now - this.lastSentAt >= this.deps.timers.aliveIntervalMs) {
      this.counters.alivesSent++;
      this.ctlq.push({ flags: CTD_F.ALIVE, from: 0, to: 0 });
    }
    if (!this.firstSync) {
      const quietMs = QUIET_ALIVES * this.deps.timers.aliveIntervalMs;
      if (this.peer === undefined && now - this.startedAt >= this.deps.timers.startupSyncWaitMs) {
        this.markSynced('no peer answered');
      } else if (this.peer !== undefined && now - Math.max(this.lastDataAt, this.resyncAskedAt) >= quietMs) {
        // conntrackd's bulk has no end marker: its data going quiet after our request is the end.
        this.markSynced('peer quiet after our resync request');
      }
    }
    this.flush();
  }

  requestResync(_peer = ''): void {
    if (this.closed) return;
    this.counters.resyncRequestsSent++;
    this.resyncAskedAt = this.now();
    this.log.info('resync requested', { peer: this.peer ?? '*' });
    this.ctlq.push({ flags: CTD_F.RESYNC, from: 0, to: 0 });
    this.queueFlush();
  }

  bulkSend(_peer = ''): number {
    if (this.closed) return 0;
    let n = 0;
    for (const key of this.deps.localKeys()) {
      if (!this.txq.has(key)) this.txq.set(key, 'update');
      n++;
    }
    // After the entries: a receiver that commits in arrival order meets each master first.
    for (const key of this.deps.localExpectKeys?.() ?? []) {
      if (!this.txExp.has(key)) this.txExp.set(key, 'update');
      n++;
    }
    this.counters.bulksSent++;
    this.counters.bulkEntriesSent += n;
    this.queueFlush();
    return n;
  }

  stats(): SyncStats {
    this.counters.warningsSuppressed = this.warnings.suppressedTotal;
    const peers = this.peers.list().map((p) => ({ ...p, rx: null, tx: null }));
    return {
      node: this.deps.nodeId,
      epoch: this.deps.epoch,
      protocol: 'conntrackd',
      mode: this.deps.mode,
      started: this.started,
      firstSyncDone: this.firstSync,
      inSync: this.firstSync,
      nextSeq: this.seq ?? 0,
      counters: {
        ...this.counters,
        datagramsDropped: { ...this.counters.datagramsDropped },
        bulksWanted: { ...this.counters.bulksWanted },
      },
      peerCounters: { ...this.peers.counters },
      sender: {
        queued: 0,
        merged: 0,
        messagesSent: this.sender.messagesSent,
        datagramsSent: this.counters.datagramsSent,
        vanished: this.sender.vanished,
        unencodable: this.sender.unencodable,
        queueLength: this.txq.size + this.txDel.size + this.txExp.size + this.txExpDel.size + this.ctlq.length,
      },
      resendQueue: {
        length: this.rsq.size,
        capacity: this.ftfw ? this.deps.timers.resendQueueSize : 0,
        front: this.rsq.keys().next().value ?? 0,
      },
      peers,
      admission: this.admission.stats(this.peers.size, this.peer === undefined ? 0 : 1),
    };
  }

  // ------------------------------------------------------------ receiving

  private onMessage(m: CtdMessage, now: number): void {
    const c = this.counters;
    if (this.ftfw && (m.flags & CTD_F.HELLO_BACK) !== 0 && this.helloing) {
      this.helloing = false;
      c.helloAcksReceived++;
    }
    if ((m.flags & CTD_F.HELLO) !== 0) {
      c.hellosReceived++;
      this.helloBackOwed = true;
      // The first HELLO of a run is a (re)started peer: the count re-bases on
      // its seqs. The rest of the run (everything it sends until our
      // HELLO_BACK gets through, under loss a whole burst) is counted like
      // any message, so a gap in it is NACKed; conntrackd re-bases on every
      // HELLO, and what is lost meanwhile is lost for good. A count that goes
      // back within the run is the peer starting again.
      const expected = this.last === undefined ? undefined : seqAdd(this.last, 1);
      const wentBack = expected !== undefined && seqBefore(m.seq, expected);
      if (!this.peerHelloing || wentBack) {
        this.peerStarted(this.peerHelloing ? 'hello, sequence went back' : 'hello');
        this.last = seqAdd(m.seq, -1);
      }
      this.peerHelloing = true;
    } else {
      this.peerHelloing = false;
    }
    if (!this.track(m.seq, now)) return;
    if (m.kind === 'ct') {
      const op: ReplicaOp = m.type === 0 ? 'new' : m.type === 1 ? 'update' : 'delete';
      this.deps.external.applyRemote(this.peer!, this.incarnation, m.seq, op, m.entry);
      c.applied++;
      this.lastDataAt = now;
    } else if (m.kind === 'exp') {
      const op: ReplicaOp = m.type === 3 ? 'new' : m.type === 4 ? 'update' : 'delete';
      this.deps.external.applyRemoteExpect(this.peer!, this.incarnation, m.seq, op, m.entry);
      c.applied++;
      this.lastDataAt = now;
    } else {
      this.onControl(m);
    }
  }

  /** Sequence tracking; false = drop the message (FTFW, before expected). */
  private track(seq: number, now: number): boolean {
    const c = this.counters;
    const expected = this.last === undefined ? undefined : seqAdd(this.last, 1);
    if (expected !== undefined && seqBefore(seq, expected)) {
      c.duplicates++;
      if (this.ftfw) return false;
      // NOTRACK: nothing is resent, so an earlier seq is a restarted peer counting again.
      this.peerStarted('sequence went back');
    } else if (expected !== undefined && seqAfter(seq, expected)) {
      c.gapsDetected++;
      c.lostMessages += seqDiff(expected, seq);
      if (this.ftfw) {
        if (this.ackFrom !== undefined) this.sendAck(this.ackFrom, seqAdd(expected, -1));
        this.counters.nacksSent++;
        this.counters.nackedMessages += seqDiff(expected, seq);
        this.sendControl(CTD_F.NACK, expected, seqAdd(seq, -1));
      }
    }
    this.last = seq;
    if (this.ftfw) {
      if (this.ackFrom === undefined) {
        this.ackFrom = seq;
        this.ackOpenedAt = now;
      }
      if (--this.window <= 0) this.sendAck(this.ackFrom, seq);
    }
    return true;
  }

  private onControl(m: Extract<CtdMessage, { kind: 'ctl' }>): void {
    const c = this.counters;
    if ((m.flags & CTD_F.RESYNC) !== 0) {
      c.resyncRequestsReceived++;
      c.bulksWanted.request++;
      this.bulkOwed = true;
    }
    if (!this.ftfw) return;
    const ack = (m.flags & CTD_F.ACK) !== 0;
    const nack = (m.flags & CTD_F.NACK) !== 0;
    if (!ack && !nack) return;
    if (seqBefore(m.to, m.from)) {
      c.badRanges++;
      return;
    }
    if (ack) c.acksReceived++;
    else c.nacksReceived++;
    for (const [seq, item] of this.rsq) {
      if (seqAfter(seq, m.to)) break;
      if (!seqInRange(seq, m.from, m.to)) continue;
      this.rsq.delete(seq);
      if (ack) continue;
      c.retransmits++;
      if (item.t === 'entry') {
        if (!this.txq.has(item.key)) this.txq.set(item.key, item.kind);
      } else if (item.t === 'del') {
        this.txDel.set(entryKey(item.entry), item.entry);
      } else if (item.t === 'exp') {
        if (!this.txExp.has(item.key)) this.txExp.set(item.key, item.kind);
      } else if (item.t === 'expdel') {
        this.txExpDel.set(expectKey(item.entry), item.entry);
      } else {
        this.ctlq.push({ flags: item.flags, from: item.from, to: item.to });
      }
    }
  }

  /** The peer (re)started: a new incarnation for the cache's ordering; FTFW forgets what it owed the old one. */
  private peerStarted(why: string): void {
    this.incarnation++;
    this.last = undefined;
    this.ackFrom = undefined;
    this.window = this.deps.timers.ackWindow;
    if (this.ftfw) this.rsq.clear();
    // It has nothing of ours (conntrackd asks only with StartupResync on).
    this.counters.bulksWanted.hello++;
    this.bulkOwed = true;
    this.log.info('conntrackd peer started', { peer: this.peer ?? UNNAMED_PEER, why, incarnation: this.incarnation });
  }

  private drop(code: string, reason: string): void {
    const d = this.counters.datagramsDropped;
    d[code] = (d[code] ?? 0) + 1;
    this.warnings.warn(`drop-${code}`, this.now(), 'sync datagram dropped', { code, reason });
  }

  private markSynced(why: string): void {
    this.firstSync = true;
    this.log.info('first sync done', { why });
  }

  // ------------------------------------------------------------ sending

  private sendAck(from: number, to: number): void {
    this.counters.acksSent++;
    this.ackFrom = undefined;
    this.window = this.deps.timers.ackWindow;
    this.sendControl(CTD_F.ACK, from, to);
  }

  private sendControl(flags: number, from: number, to: number): void {
    this.ctlq.push({ flags, from, to });
    this.queueFlush();
  }

  private queueFlush(): void {
    if (this.flushQueued || !this.started || this.closed) return;
    this.flushQueued = true;
    this.schedule(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private nextSeq(): number {
    // conntrackd starts its count at time(NULL); so do we, from the injected clock.
    const s = this.seq ?? Math.floor(this.now() / 1000) >>> 0;
    this.seq = seqAdd(s, 1);
    return s;
  }

  private flags(): number {
    let f = this.helloing ? CTD_F.HELLO : 0;
    if (this.helloBackOwed) {
      f |= CTD_F.HELLO_BACK;
      this.helloBackOwed = false;
    }
    return f;
  }

  /**
   * Sends control messages, then deletes, then entries, then expectation
   * deletes and expectations, at most `slice` messages before yielding.
   */
  private flush(): void {
    if (!this.started || this.closed) return;
    let budget = this.slice;
    while (this.ctlq.length > 0) {
      const q = this.ctlq.shift()!;
      const seq = this.nextSeq();
      this.msg.reset();
      this.msg.control(q.flags | this.flags(), seq, q.from, q.to);
      if (this.ftfw && (q.flags & CTD_F.ALIVE) === 0) this.keep(seq, { t: 'ctl', ...q });
      this.append();
      budget--;
    }
    for (const [key, entry] of this.txDel) {
      if (budget-- <= 0) break;
      this.txDel.delete(key);
      if (this.sendEntry(2, entry)) this.keepLast({ t: 'del', entry });
    }
    for (const [key, kind] of this.txq) {
      if (budget-- <= 0) break;
      this.txq.delete(key);
      const e = this.deps.lookup(key);
      if (e === undefined) {
        this.sender.vanished++;
        continue;
      }
      if (this.sendEntry(kind === 'new' ? 0 : 1, e instanceof EntryRecord ? e.entry() : e)) {
        this.keepLast({ t: 'entry', key, kind });
      }
    }
    // Only once no entry waits: an expectation's master goes out before it.
    if (this.txq.size === 0) this.flushExpectations(budget);
    this.sendDatagram();
    if (this.pending()) this.queueFlush();
  }

  private pending(): boolean {
    return this.txq.size + this.txDel.size + this.txExp.size + this.txExpDel.size + this.ctlq.length > 0;
  }

  private flushExpectations(budget: number): void {
    for (const [key, gone] of this.txExpDel) {
      if (budget-- <= 0) return;
      this.txExpDel.delete(key);
      if (this.sendExpect(5, gone)) this.keepLast({ t: 'expdel', entry: gone });
    }
    for (const [key, kind] of this.txExp) {
      if (budget-- <= 0) return;
      this.txExp.delete(key);
      const e = this.deps.lookupExpect?.(key);
      if (e === undefined) {
        this.sender.vanished++;
        continue;
      }
      if (this.sendExpect(kind === 'new' ? 3 : 4, e)) this.keepLast({ t: 'exp', key, kind });
    }
  }

  private sendExpect(type: 3 | 4 | 5, e: ExpectEntry): boolean {
    this.msg.reset();
    if (!this.msg.expect(type, 0, 0, e)) {
      this.sender.unencodable++;
      return false;
    }
    this.stamp();
    return true;
  }

  private sendEntry(type: 0 | 1 | 2, e: ConntrackEntry): boolean {
    this.msg.reset();
    // The seq is taken only once the entry encodes: a gap would be NACKed for nothing.
    if (!this.msg.entry(type, 0, 0, e)) {
      this.sender.unencodable++;
      return false;
    }
    this.stamp();
    return true;
  }

  /** Gives the message in `msg` its seq and flags (taken only now: see sendEntry) and appends it. */
  private stamp(): void {
    const s = this.nextSeq();
    const b = this.msg.bytes();
    b[1] = this.flags();
    b.writeUInt32BE(s, 4);
    this.lastSeq = s;
    this.append();
  }

  private keepLast(item: Resendable): void {
    if (this.ftfw) this.keep(this.lastSeq, item);
  }

  private keep(seq: number, item: Resendable): void {
    this.rsq.set(seq, item);
    if (this.rsq.size > this.deps.timers.resendQueueSize) {
      // As conntrackd: the oldest goes, silently but counted.
      const oldest = this.rsq.keys().next().value!;
      this.rsq.delete(oldest);
      this.counters.resendOverflows++;
    }
  }

  /** Adds the message in `msg` to the datagram being filled, sending that first when it would overflow. */
  private append(): void {
    const b = this.msg.bytes();
    this.sender.messagesSent++;
    if (this.dgramLen > 0 && this.dgramLen + b.length > this.dgram.length) this.sendDatagram();
    if (b.length > this.dgram.length) {
      // Larger than the MTU on its own (a helper name and labels on IPv6 never are): sent alone.
      this.deps.send(Buffer.from(b));
      this.sent();
      return;
    }
    b.copy(this.dgram, this.dgramLen);
    this.dgramLen += b.length;
  }

  private sendDatagram(): void {
    if (this.dgramLen === 0) return;
    this.deps.send(Buffer.from(this.dgram.subarray(0, this.dgramLen)));
    this.dgramLen = 0;
    this.sent();
  }

  private sent(): void {
    this.counters.datagramsSent++;
    this.lastSentAt = this.now();
  }
}

const NOT_OK = { ok: false, live: false } as const;
const LIVE = { ok: true, live: true } as const;
