// The daemon: config → kernel → internal cache → sync → peers → external
// cache, plus the control socket. Every collaborator that touches the
// outside world (kernel sockets, sync channels, clock, log) is injectable.
import { networkInterfaces } from 'node:os';
import { ExternalCache } from './cache/external-cache.js';
import { compileFilter, stripAttributes } from './cache/filter.js';
import { InternalCache, type ReconcileResult } from './cache/internal-cache.js';
import type { Config } from './config/index.js';
import { ControlServer } from './control/server.js';
import { type ConntrackEvent, ConntrackEvents } from './kernel/conntrack-events.js';
import { ConntrackLink } from './kernel/conntrack-link.js';
import { type ConntrackEntry, entryKey } from './kernel/entry.js';
import { entryToJson } from './kernel/entry-json.js';
import type { TransportFactory } from './kernel/transport.js';
import { type Logger, silentLogger } from './log.js';
import { ChannelSet, type SyncChannel } from './sync/channel.js';
import { createChannels } from './sync/channel-factory.js';
import { PeerTable } from './sync/peers.js';
import { SyncSender } from './sync/sender.js';
import { type AuthKeys, DatagramEncoder, decodeDatagram, loadAuthKeys, type WireMessage } from './sync/wire.js';

export interface DaemonDeps {
  /** Kernel sockets (FakeKernel.openSocket in unit tests). */
  kernelTransport?: TransportFactory;
  /** Sync channels; built from the config when absent. */
  channels?: SyncChannel[];
  now?: () => number;
  log?: Logger;
  /** Addresses of this node's sync links, ignored by the filter; derived from the config when absent. */
  localAddresses?: string[];
  /** Skip the control socket (unit tests drive the daemon directly). */
  noControl?: boolean;
}

export interface DaemonCounters {
  datagramsReceived: number;
  datagramsDropped: Record<string, number>;
  ownDatagrams: number;
  messagesReceived: number;
  ownKernelEvents: number;
  overruns: number;
  overrunResyncs: number;
  bulksSent: number;
  bulksReceived: number;
  resyncRequestsReceived: number;
}

/** How long the startup resync waits for a peer's bulk before calling itself done. */
const STARTUP_SYNC_WAIT_MS = 2000;
const ALIVE_INTERVAL_MS = 1000;
const PEER_DEAD_MS = 3500;
/** Entries converted per slice of a control dump (about 5 ms of work). */
const DUMP_SLICE = 5000;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Overruns double the event buffer up to this; SO_RCVBUFFORCE lets root go past rmem_max. */
const MAX_EVENT_BUFFER = 256 * 1024 * 1024;

export class Daemon {
  readonly counters: DaemonCounters = {
    datagramsReceived: 0,
    datagramsDropped: {},
    ownDatagrams: 0,
    messagesReceived: 0,
    ownKernelEvents: 0,
    overruns: 0,
    overrunResyncs: 0,
    bulksSent: 0,
    bulksReceived: 0,
    resyncRequestsReceived: 0,
  };
  readonly internal: InternalCache;
  readonly external: ExternalCache;
  readonly peers: PeerTable;
  readonly epoch: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private events: ConntrackEvents | undefined;
  private link: ConntrackLink | undefined;
  private channels: ChannelSet | undefined;
  private sender: SyncSender | undefined;
  private control: ControlServer | undefined;
  private auth: AuthKeys | undefined;
  private timers: NodeJS.Timeout[] = [];
  private dumpDone = false;
  private firstSyncDone = false;
  private stopped = false;
  private resyncRunning = false;
  private resyncAgain = false;
  private overrunPending = false;
  private nextBulkId = 1;
  private readonly startedAt: number;
  private onStop: (() => void) | undefined;
  private stopPromise: Promise<void> | undefined;

  constructor(
    readonly config: Config,
    private readonly deps: DaemonDeps = {},
  ) {
    this.log = deps.log ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.epoch = (Math.random() * 0xfffffffe + 1) >>> 0;
    const local = deps.localAddresses ?? syncLinkAddresses(config);
    this.internal = new InternalCache({
      limit: config.cache.internalLimit,
      filter: compileFilter(config.filter, local),
      now: this.now,
    });
    this.external = new ExternalCache({ limit: config.cache.externalLimit, now: this.now });
    this.peers = new PeerTable({ now: this.now, deadAfterMs: PEER_DEAD_MS, log: this.log });
  }

  get ready(): boolean {
    return this.dumpDone && this.firstSyncDone;
  }

  /** Resolves once the daemon stops (SIGTERM, shutdown command, stop()). */
  waitForStop(): Promise<void> {
    this.stopPromise ??= new Promise<void>((resolve) => {
      this.onStop = resolve;
    });
    return this.stopPromise;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const keyFiles = cfg.sync.auth?.keyFiles ?? [];
    this.auth = keyFiles.length > 0 ? loadAuthKeys(keyFiles) : undefined;

    // The control socket comes first so stats answer while the dump runs.
    if (!this.deps.noControl) {
      this.control = new ControlServer({
        path: cfg.control.socket,
        mode: Number.parseInt(cfg.control.mode, 8),
        handlers: this.controlHandlers(),
      });
      await this.control.start();
    }

    const kernelOpts = { transportFactory: this.deps.kernelTransport };
    // Subscribe before the dump: whatever changes during it arrives as events.
    this.events = new ConntrackEvents({ ...kernelOpts, receiveBufferBytes: cfg.kernel.netlinkBufferBytes });
    this.link = new ConntrackLink(kernelOpts);
    this.events.addOwnPortid(this.link.portid);

    const encoder = new DatagramEncoder({
      cluster: cfg.cluster.id,
      node: cfg.node.id,
      epoch: this.epoch,
      mtu: cfg.sync.mtu,
      auth: this.auth,
    });
    const channels = this.deps.channels ?? createChannels(cfg);
    this.channels = new ChannelSet(channels, {
      onActiveChange: (name, reason) => this.log.info('sync link active', { link: name, reason }),
    });
    this.sender = new SyncSender({
      encoder,
      send: (buf) => this.channels?.send(buf),
      lookup: (key) => {
        const e = this.internal.get(key);
        return e && stripAttributes(e, cfg.filter.stripAttributes);
      },
    });
    this.channels.onDatagram((buf, _from, channel) => this.onDatagram(buf, channel));
    await this.channels.start();

    this.events.start({
      onEvent: (ev) => this.onKernelEvent(ev),
      onOverrun: () => this.onOverrun(),
      onEmpty: () => {
        if (!this.overrunPending || !this.dumpDone) return;
        this.overrunPending = false;
        void this.resyncKernel('overrun');
      },
      onDecodeError: (e) => this.log.warn('undecodable kernel event', { code: e.code, reason: e.reason }),
    });

    // Ask peers for their state right away; what we dump goes out as it comes.
    this.sender.enqueueControl((seq) => ({ kind: 'hello', seq }), false);
    this.sender.enqueueControl(() => ({ kind: 'resync-request', peer: '' }), false);
    const startupSync = setTimeout(() => this.markFirstSyncDone('timeout'), STARTUP_SYNC_WAIT_MS);
    this.timers.push(startupSync);

    // Events interleave with the dump; a key an event touched belongs to the events.
    const initial = await this.reconcileWithKernel();
    this.dumpDone = true;
    this.log.info('initial kernel dump done', { cached: this.internal.size, ...initial });
    // An overrun during the dump waits for an empty queue; read it now so that happens.
    if (this.overrunPending) this.events.transport.drain();

    this.timers.push(setInterval(() => this.tick(), ALIVE_INTERVAL_MS));
    this.log.info('ctsyncd started', {
      node: cfg.node.id,
      epoch: this.epoch,
      transport: cfg.sync.transport,
      mode: cfg.sync.mode,
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.events?.close();
    this.link?.close();
    await this.channels?.close();
    await this.control?.close();
    this.log.info('ctsyncd stopped');
    this.onStop?.();
  }

  stats(): Record<string, unknown> {
    const kernel = this.events?.counters;
    return {
      ready: this.ready,
      node: this.config.node.id,
      epoch: this.epoch,
      uptimeSeconds: Math.round((this.now() - this.startedAt) / 1000),
      internal: { entries: this.internal.size, limit: this.config.cache.internalLimit, ...this.internal.counters },
      external: { entries: this.external.size, limit: this.config.cache.externalLimit, ...this.external.counters },
      peers: this.peers.list(),
      kernel: {
        events: kernel ? { ...kernel } : {},
        link: this.link ? { ...this.link.counters } : {},
        receiveBufferBytes: this.events?.receiveBuffer ?? 0,
      },
      sync: {
        ...this.counters,
        sender: this.sender ? { ...this.sender.counters, queueLength: this.sender.length } : {},
        channels: this.channels?.stats() ?? [],
        activeChannel: this.channels?.active ?? null,
      },
    };
  }

  /** The entries of one cache as JSON objects, built in slices that yield to the loop. */
  async dump(which: 'internal' | 'external'): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let n = 0;
    if (which === 'internal') {
      for (const [, e] of this.internal.entries()) {
        out.push(entryToJson(e));
        if (++n % DUMP_SLICE === 0) await yieldToLoop();
      }
    } else {
      for (const [, r] of this.external.entries()) {
        out.push({ ...entryToJson(r.entry), origin: r.origin });
        if (++n % DUMP_SLICE === 0) await yieldToLoop();
      }
    }
    return out;
  }

  private controlHandlers(): Record<string, (args: Record<string, unknown>) => unknown> {
    return {
      ping: () => ({ pong: true }),
      stats: () => this.stats(),
      dump: (args) => {
        const which = args.cache;
        if (which !== 'internal' && which !== 'external') {
          throw Object.assign(new Error('dump needs cache: internal or external'), { code: 'EBAD_ARGS' });
        }
        return this.dump(which);
      },
      shutdown: () => {
        setImmediate(() => void this.stop());
        return { stopping: true };
      },
    };
  }

  private onKernelEvent(ev: ConntrackEvent): void {
    if (ev.own) {
      // Our own commits and injections are never replicated back.
      this.counters.ownKernelEvents++;
      return;
    }
    this.noteChange(entryKey(ev.entry), this.internal.apply(ev.type, ev.entry), ev.entry);
  }

  private noteChange(key: string, kind: string, entry: ConntrackEntry): void {
    if (!this.sender) return;
    if (kind === 'created') this.sender.enqueue(key, 'new');
    else if (kind === 'updated') this.sender.enqueue(key, 'update');
    else if (kind === 'deleted') this.sender.enqueue(key, 'delete', entry);
  }

  /**
   * The kernel dropped events. It reports no further drops until our queue
   * has been read empty, so the reconciling dump starts then (onEmpty), not
   * earlier: a dump that overlaps a still-congested queue could miss entries
   * silently. The buffer doubles each time, up to MAX_EVENT_BUFFER.
   */
  private onOverrun(): void {
    this.counters.overruns++;
    const events = this.events;
    const before = events?.receiveBuffer ?? 0;
    if (events && before < MAX_EVENT_BUFFER) events.resizeReceiveBuffer(Math.min(before * 2, MAX_EVENT_BUFFER));
    this.log.warn('kernel event overrun: will resync with the kernel table', {
      receiveBufferBytes: events?.receiveBuffer,
    });
    if (this.resyncRunning) this.resyncAgain = true;
    else this.overrunPending = true;
  }

  /**
   * Dumps the kernel table and replicates only the differences from the
   * internal cache. Events that arrive while the dump runs are newer than
   * what the dump may have seen, so they win over it (InternalCache's
   * reconcile session tracks them).
   */
  async resyncKernel(reason: string): Promise<{ created: number; updated: number; deleted: number }> {
    if (this.resyncRunning) {
      this.resyncAgain = true;
      return { created: 0, updated: 0, deleted: 0 };
    }
    this.resyncRunning = true;
    const total = { created: 0, updated: 0, deleted: 0 };
    try {
      do {
        this.resyncAgain = false;
        const diff = await this.reconcileWithKernel();
        total.created += diff.created;
        total.updated += diff.updated;
        total.deleted += diff.deleted;
        if (reason === 'overrun') this.counters.overrunResyncs++;
      } while (this.resyncAgain && !this.stopped);
      this.log.info('kernel resync done', { reason, ...total });
      return total;
    } finally {
      this.resyncRunning = false;
    }
  }

  private async reconcileWithKernel(): Promise<{ created: number; updated: number; deleted: number }> {
    const session = this.internal.beginReconcile();
    let diff: ReconcileResult<ConntrackEntry>;
    try {
      await this.link!.dump((e) => session.add(e));
      diff = session.finish();
    } catch (e) {
      // Whatever was applied before the failure still goes out; nothing is deleted.
      this.replicate(session.abort());
      throw e;
    }
    this.replicate(diff);
    return { created: diff.created.length, updated: diff.updated.length, deleted: diff.deleted.length };
  }

  private replicate(diff: ReconcileResult<ConntrackEntry>): void {
    for (const key of diff.created) this.sender?.enqueue(key, 'new');
    for (const key of diff.updated) this.sender?.enqueue(key, 'update');
    for (const e of diff.deleted) this.sender?.enqueue(entryKey(e), 'delete', e);
  }

  private onDatagram(buf: Buffer, channel: SyncChannel): void {
    this.counters.datagramsReceived++;
    const r = decodeDatagram(buf, { cluster: this.config.cluster.id, auth: this.auth });
    if (!r.ok) {
      const code = r.error.code;
      this.counters.datagramsDropped[code] = (this.counters.datagramsDropped[code] ?? 0) + 1;
      this.log.debug('sync datagram dropped', { code, reason: r.error.reason });
      return;
    }
    const { node, epoch } = r.header;
    if (node === this.config.node.id) {
      this.counters.ownDatagrams++;
      return;
    }
    this.channels?.noteValidReceive(channel);
    this.peers.seen(node, epoch);
    for (const m of r.messages) {
      this.counters.messagesReceived++;
      this.onMessage(node, epoch, m);
    }
  }

  private onMessage(node: string, epoch: number, m: WireMessage): void {
    const self = this.config.node.id;
    switch (m.kind) {
      case 'ct-new':
      case 'ct-update':
        this.external.applyRemote(node, epoch, m.seq, m.kind === 'ct-new' ? 'new' : 'update', m.entry);
        return;
      case 'ct-delete':
        this.external.applyRemote(node, epoch, m.seq, 'delete', m.entry);
        return;
      case 'resync-request':
        if (m.peer === '' || m.peer === self) {
          this.counters.resyncRequestsReceived++;
          this.bulkSend(node);
        }
        return;
      case 'bulk-start':
        if (m.peer === '' || m.peer === self) this.external.beginBulk(node, { epoch, seq: m.seq });
        return;
      case 'bulk-end':
        if (m.peer === '' || m.peer === self) {
          const removed = this.external.endBulk(node);
          this.counters.bulksReceived++;
          this.log.info('bulk received', { peer: node, entries: m.count, staleRemoved: removed });
          this.markFirstSyncDone(`bulk from ${node}`);
        }
        return;
      default:
        // exp-*, ack, nack, alive, hello, hello-ack: handled by the reliability layer.
        return;
    }
  }

  /** Pushes our whole internal cache to one peer ('' = all), framed so it can drop what we no longer have. */
  bulkSend(peer: string): number {
    const sender = this.sender;
    if (!sender) return 0;
    const bulkId = this.nextBulkId++;
    const keys = [...this.internal.entries()].map(([k]) => k);
    sender.enqueueControl((seq) => ({ kind: 'bulk-start', seq, bulkId, peer }), true);
    sender.enqueueBulk(keys);
    sender.enqueueControl((seq) => ({ kind: 'bulk-end', seq, bulkId, peer, count: keys.length }), true);
    this.counters.bulksSent++;
    this.log.info('bulk send', { peer: peer || '*', entries: keys.length });
    return keys.length;
  }

  private markFirstSyncDone(how: string): void {
    if (this.firstSyncDone) return;
    this.firstSyncDone = true;
    this.log.info('first peer sync attempt finished', { how });
  }

  private tick(): void {
    this.sender?.enqueueControl((seq) => ({ kind: 'alive', seq }), false);
    this.peers.sweep();
  }
}

/** The addresses this node uses on its sync links: its own replication traffic is never replicated. */
export function syncLinkAddresses(cfg: Config): string[] {
  const out: string[] = [];
  if (cfg.sync.udp) out.push(cfg.sync.udp.bind);
  const ifname = cfg.sync.multicast?.interface;
  if (ifname) for (const a of networkInterfaces()[ifname] ?? []) out.push(a.address.split('%')[0]!);
  return out;
}
