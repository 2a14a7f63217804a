// The daemon: config → kernel → internal cache → sync → peers → external
// cache, plus the control socket. Every collaborator that touches the
// outside world (kernel sockets, sync channels, clock, log) is injectable.
// It only builds and connects the modules that do the work: LocalTable
// (this node's table and the kernel), CommitRunner, Failover (keepalived's
// steps), SyncNode, and buildStatsSnapshot for the stats.
import { networkInterfaces } from 'node:os';
import type { CommitReport, CommitStats } from './cache/commit.js';
import { CommitRunner } from './cache/commit-runner.js';
import { ExternalCache } from './cache/external-cache.js';
import { compileFilter, type EntryFilter, stripAttributes } from './cache/filter.js';
import { Injector } from './cache/inject.js';
import { InternalCache } from './cache/internal-cache.js';
import {
  type FlushKernelResult,
  LocalTable,
  type LocalTableCounters,
  type PurgeTimeoutResult,
  type ResyncResult,
} from './cache/local-table.js';
import type { Config } from './config/index.js';
import { dispatchTable } from './control/commands.js';
import { ControlServer } from './control/server.js';
import { OperationError } from './common/errors.js';
import { ConntrackEvents } from './kernel/conntrack-events.js';
import { ConntrackLink } from './kernel/conntrack-link.js';
import { entryToJson, expectToJson } from './kernel/entry-json.js';
import type { TransportFactory } from './kernel/transport.js';
import { type Logger, silentLogger } from './log.js';
import { SyncNode } from './sync/engine/sync-node.js';
import type { SyncChannel } from './sync/transport/channel.js';
import { createChannels } from './sync/transport/channel-factory.js';
import { ChannelSet } from './sync/transport/channel-set.js';
import type { SystemdNotifier } from './systemd/notify.js';
import {
  Failover,
  type FailoverResult,
  type FailoverStep,
  type FailoverTarget,
  TrackFile,
} from './keepalived/index.js';
import { type AuthKeys, loadAuthKeys } from './sync/wire/auth.js';
import { parseHostPort } from './common/address.js';
import { type MetricsSource, MetricsService } from './stats/index.js';
import { buildStatsSnapshot } from './stats/snapshot.js';

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
  /** systemd's notify socket (READY=1, STATUS=, WATCHDOG=1); none by default. */
  notifier?: SystemdNotifier;
  /** Skip the metrics HTTP server even when metrics.enabled (unit tests open no ports). */
  noMetrics?: boolean;
}

export type DaemonCounters = LocalTableCounters;

export { OperationError };

/** How often the sync engine evaluates its ack, NACK, retransmit and liveness deadlines. */
const SYNC_TICK_MS = 20;
/** Entries converted per slice of a control dump (about 5 ms of work). */
const DUMP_SLICE = 5000;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Daemon {
  readonly commitStats: CommitStats;
  readonly internal: InternalCache;
  readonly external: ExternalCache;
  private readonly filter: EntryFilter;
  private readonly injector: Injector | undefined;
  readonly epoch: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly commits: CommitRunner;
  private readonly failovers: Failover;
  private events: ConntrackEvents | undefined;
  private link: ConntrackLink | undefined;
  private table: LocalTable | undefined;
  private channels: ChannelSet | undefined;
  private sync: SyncNode | undefined;
  private control: ControlServer | undefined;
  private metrics: MetricsService | undefined;
  private auth: AuthKeys | undefined;
  private timers: NodeJS.Timeout[] = [];
  private track: TrackFile | undefined;
  private stopped = false;
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
    this.filter = compileFilter(config.filter, local);
    this.internal = new InternalCache({ limit: config.cache.internalLimit, filter: this.filter, now: this.now });
    this.external = new ExternalCache({
      limit: config.cache.externalLimit,
      now: this.now,
      onChange: config.failover.inject ? (...a) => this.injector?.onChange(...a) : undefined,
    });
    if (config.failover.inject) {
      this.injector = new Injector(this.external, { batch: (items, o) => this.kernelLink().batch(items, o) });
    }
    this.commits = new CommitRunner({
      external: this.external,
      link: () => this.kernelLink(),
      heardFrom: (id) => (this.sync?.stats().peers ?? []).some((p) => p.id === id),
      now: this.now,
      log: this.log,
      // Our own events are filtered in the kernel; this only matters if that filter was refused.
      betweenChunks: () => this.events?.transport.drain(),
      onCommitted: (durationMs) => this.metrics?.observeCommit(durationMs),
    });
    this.commitStats = this.commits.stats;
    this.failovers = new Failover(
      {
        commit: () => this.commit(),
        flush: () => this.flush(),
        resyncKernel: (reason) => this.resyncKernel(reason),
        bulkSend: () => this.sync?.bulkSend('') ?? 0,
        purgeTimeout: () => this.purgeTimeout(),
        requestResync: () => this.sync?.requestResync(''),
      },
      { log: this.log, name: config.failover.vrrpName, now: this.now },
    );
  }

  private kernelLink(): ConntrackLink {
    if (!this.link) throw new OperationError('ENOTREADY', 'the kernel link is not open yet');
    return this.link;
  }

  private localTable(): LocalTable {
    if (!this.table) throw new OperationError('ENOTREADY', 'the kernel link is not open yet');
    return this.table;
  }

  /** Overrun and own-event counts of the local table; zeros before start(). */
  get counters(): DaemonCounters {
    return this.table?.counters ?? { ownKernelEvents: 0, overruns: 0, overrunResyncs: 0 };
  }

  private get dumpDone(): boolean {
    return this.table?.initialDumpDone ?? false;
  }

  /** The initial kernel dump is done and the first peer sync attempt has finished. */
  get ready(): boolean {
    return this.dumpDone && (this.sync?.firstSyncDone ?? false);
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

    // Metrics (src/stats) before the dump too: /readyz answers 503 until ready.
    if (cfg.metrics.enabled && !this.deps.noMetrics) {
      const at = parseHostPort(cfg.metrics.listen);
      if (!at) throw new OperationError('ECONFIG', `metrics.listen is not host:port: ${cfg.metrics.listen}`);
      const source: MetricsSource = { snapshot: () => this.statsSnapshot(), ready: () => this.ready };
      this.metrics = new MetricsService(source, { ...at, log: this.log });
      await this.metrics.start();
    }

    const kernelOpts = { transportFactory: this.deps.kernelTransport };
    // Subscribe before the dump: whatever changes during it arrives as events.
    this.events = new ConntrackEvents({
      ...kernelOpts,
      receiveBufferBytes: cfg.kernel.netlinkBufferBytes,
      expectations: true,
    });
    this.link = new ConntrackLink(kernelOpts);
    this.events.addOwnPortid(this.link.portid);
    const table = new LocalTable({
      internal: this.internal,
      filter: this.filter,
      events: this.events,
      link: this.link,
      listener: {
        onLocalChange: (key, kind, entry) => this.sync?.localChange(key, kind, entry),
        onLocalExpectChange: (key, kind, entry) => this.sync?.localExpectChange(key, kind, entry),
      },
      now: this.now,
      log: this.log,
      purgeTimeoutSeconds: cfg.failover.purgeTimeoutSeconds,
      ownAddresses: hostAddresses,
    });
    this.table = table;

    const channels = this.deps.channels ?? createChannels(cfg);
    this.channels = new ChannelSet(channels, {
      onActiveChange: (name, reason) => this.log.info('sync link active', { link: name, reason }),
    });
    this.sync = new SyncNode({
      nodeId: cfg.node.id,
      cluster: cfg.cluster.id,
      epoch: this.epoch,
      mtu: cfg.sync.mtu,
      auth: this.auth,
      mode: cfg.sync.mode,
      external: this.external,
      lookup: (key) => {
        const e = this.internal.get(key);
        return e && stripAttributes(e, cfg.filter.stripAttributes);
      },
      localKeys: () => this.internal.keys(),
      lookupExpect: (key) => this.internal.getExpect(key),
      localExpectKeys: () => [...this.internal.expectEntries()].map(([k]) => k),
      send: (buf) => this.channels?.send(buf),
      now: this.now,
      log: this.log,
      timers: cfg.sync.reliability,
      // Peers asking for our state get it once our table is complete.
      localReady: () => this.dumpDone,
    });
    const sync = this.sync;
    this.channels.onDatagram((buf, _from, channel) => {
      if (sync.receive(buf).ok) this.channels?.noteValidReceive(channel);
    });
    await this.channels.start();

    table.start();

    // Hello and a resync request go out before the dump: peers' state flows in while we read ours.
    this.sync.start();
    if (cfg.failover.trackFile) {
      // "Not in sync" until proven otherwise: keepalived lowers our priority meanwhile.
      this.track = new TrackFile(cfg.failover.trackFile, this.log);
      this.track.start();
    }
    this.timers.push(
      setInterval(() => {
        this.sync?.tick();
        if (this.track && this.sync) this.track.set(this.sync.inSync);
        const n = this.deps.notifier;
        if (n && !n.ready && this.ready) this.notifySystemd(n);
      }, SYNC_TICK_MS),
    );

    const notifier = this.deps.notifier;
    notifier?.status('reading the kernel conntrack table');
    const watchdogMs = notifier?.watchdogIntervalMs;
    if (notifier && watchdogMs !== undefined) this.timers.push(setInterval(() => notifier.watchdog(), watchdogMs));
    if (notifier) this.timers.push(setInterval(() => this.notifySystemd(notifier), SYSTEMD_STATUS_MS));

    // Events interleave with the dump; a key an event touched belongs to the events.
    const initial = await table.initialDump();
    this.log.info('initial kernel dump done', { cached: this.internal.size, ...initial });
    if (notifier) this.notifySystemd(notifier);
    table.resumeOverrunRecovery();

    if (cfg.failover.notifyFifo) this.failovers.startNotifyFifo(cfg.failover.notifyFifo);

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
    this.table?.close();
    this.deps.notifier?.stopping();
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.failovers.close();
    this.sync?.close();
    this.injector?.close();
    this.events?.close();
    this.link?.close();
    await this.channels?.close();
    await this.control?.close();
    await this.metrics?.close();
    this.log.info('ctsyncd stopped');
    this.onStop?.();
  }

  stats(): Record<string, unknown> {
    return this.statsSnapshot();
  }

  /** stats() with its type, which src/stats reads (StatsSnapshot) for /metrics. */
  statsSnapshot() {
    // stats() first: reading inSync may latch it, as it did when stats() read it.
    const sync = this.sync?.stats();
    const cfg = this.config;
    return buildStatsSnapshot({
      ready: this.ready,
      node: cfg.node.id,
      epoch: this.epoch,
      startedAt: this.startedAt,
      now: this.now(),
      pid: process.pid,
      internal: this.internal,
      internalLimit: cfg.cache.internalLimit,
      external: this.external,
      externalLimit: cfg.cache.externalLimit,
      sync,
      inSync: this.sync?.inSync ?? false,
      commit: this.commitStats,
      failover: {
        inject: cfg.failover.inject,
        purgeTimeoutSeconds: cfg.failover.purgeTimeoutSeconds,
        trackFile: cfg.failover.trackFile,
        trackValue: this.track?.value,
        notifyFifo: cfg.failover.notifyFifo,
        sequencer: this.failovers.sequencer,
      },
      injector: this.injector,
      events: this.events,
      link: this.link,
      kernelCounters: this.counters,
      channels: this.channels,
    });
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

  /** See CommitRunner: one at a time, like conntrackd; a second request while one runs is refused. */
  commit(peer?: string): Promise<CommitReport> {
    return this.commits.commit(peer);
  }

  /** A one-line summary for systemctl status; READY=1 the first time the daemon is ready. */
  private notifySystemd(n: SystemdNotifier): void {
    const peers = this.sync?.stats().peers ?? [];
    const up = peers.filter((p) => p.state === 'up').length;
    const text = this.dumpDone
      ? `${this.internal.size} local and ${this.external.size} peer connections; ${up}/${peers.length} peers up; ${this.sync?.inSync ? 'in sync' : 'not in sync'}${this.commitStats.running ? '; committing' : ''}`
      : 'reading the kernel conntrack table';
    if (this.ready && !n.ready) n.notifyReady(text);
    else if (this.dumpDone && !this.ready) n.status(`kernel table read; waiting for peers (${text})`);
    else n.status(text);
  }

  /** One failover step, run in this process (see Failover). */
  runFailoverStep(step: FailoverStep): Promise<unknown> {
    return this.failovers.runStep(step);
  }

  /** `ctsyncd failover primary|backup|fault`; see Failover.failover. */
  failover(target: FailoverTarget): Promise<FailoverResult> {
    return this.failovers.failover(target);
  }

  /** Empties the internal and/or external cache (like conntrackd -f). Nothing is sent to peers. */
  flush(which?: 'internal' | 'external'): { internal?: number; external?: number } {
    const out: { internal?: number; external?: number } = {};
    if (which !== 'external') {
      out.internal = this.internal.size;
      this.internal.flush();
    }
    if (which !== 'internal') {
      out.external = this.external.size;
      this.external.flush();
    }
    this.log.info('caches flushed', out);
    return out;
  }

  /** Like conntrackd -F; see LocalTable.flushKernel. */
  async flushKernel(): Promise<FlushKernelResult> {
    return this.localTable().flushKernel();
  }

  /** Like conntrackd -t, but shortening timeouts; see LocalTable.purgeTimeout. */
  async purgeTimeout(): Promise<PurgeTimeoutResult> {
    return this.localTable().purgeTimeout();
  }

  /** Reconciles the internal cache with a kernel dump; see LocalTable.resyncKernel. */
  async resyncKernel(reason: string): Promise<ResyncResult> {
    return this.localTable().resyncKernel(reason);
  }

  private controlHandlers(): Record<string, (args: Record<string, unknown>) => unknown> {
    // The commands, their args' validation and their replies are declared in
    // src/control/commands.ts; this is what they operate on.
    return dispatchTable({
      stats: () => this.stats(),
      dump: (cache) => this.dump(cache),
      dumpExpect: (cache) => this.dumpExpect(cache),
      commit: (peer) => this.commit(peer),
      flush: (which) => this.flush(which),
      flushKernel: () => this.flushKernel(),
      resync: async () => {
        const started = this.now();
        const r = await this.resyncKernel('command');
        return { ...r, durationMs: this.now() - started };
      },
      purgeTimeout: () => this.purgeTimeout(),
      requestResync: () => {
        this.sync?.requestResync('');
        return (this.sync?.stats().peers ?? []).map((p) => p.id);
      },
      bulkSend: () => this.sync?.bulkSend('') ?? 0,
      failover: (state) => this.failover(state),
      shutdown: () => {
        setImmediate(() => void this.stop());
      },
    });
  }

  /** Expectations of one cache as JSON objects. */
  dumpExpect(which: 'internal' | 'external'): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    if (which === 'internal') for (const [, e] of this.internal.expectEntries()) out.push(expectToJson(e));
    else for (const [, r] of this.external.expectEntries()) out.push({ ...expectToJson(r.entry), origin: r.origin });
    return out;
  }
}

/** How often the systemd STATUS= line is refreshed (only sent when it changed). */
const SYSTEMD_STATUS_MS = 1000;

/** This host's addresses on every interface (without an IPv6 zone), for purge-timeout. */
function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.push(a.address.split('%')[0]!);
  }
  return out;
}

/** The addresses this node uses on its sync links: its own replication traffic is never replicated. */
export function syncLinkAddresses(cfg: Config): string[] {
  const out: string[] = [];
  if (cfg.sync.udp) out.push(cfg.sync.udp.bind);
  const ifname = cfg.sync.multicast?.interface;
  if (ifname) for (const a of networkInterfaces()[ifname] ?? []) out.push(a.address.split('%')[0]!);
  return out;
}
