// The daemon: config → kernel → internal cache → sync → peers → external
// cache, plus the control socket. Every collaborator that touches the
// outside world (kernel sockets, sync channels, clock, log) is injectable.
// It only builds and connects the modules that do the work: LocalTable
// (this node's table and the kernel), CommitRunner, SyncNode, the
// operations commands and keepalived ask for (DaemonOperations, with
// Failover), and buildStatsSnapshot for the stats.
import { networkInterfaces } from 'node:os';
import type { CommitStats } from './cache/commit.js';
import { CommitRunner } from './cache/commit-runner.js';
import { ExternalCache } from './cache/external-cache.js';
import { compileFilter, type EntryFilter, kernelEventRules, stripAttributes } from './cache/filter.js';
import { Injector } from './cache/inject.js';
import { InternalCache } from './cache/internal-cache.js';
import { type LocalChangeListener, LocalTable, type LocalTableCounters } from './cache/local-table.js';
import { PeerEntryCheck } from './cache/peer-validate.js';
import type { ClusterConfig, Config, FlowlogConfig, SyncConfig } from './config/index.js';
import { LIMITS, SYSLOG_FACILITIES } from './config/defaults.js';
import type { DatagramSender } from './flowlog/ipfix-exporter.js';
import type { UnixDatagramPort } from './flowlog/syslog-sink.js';
import { FlowLogThread } from './flowlog/thread.js';
import { type FlowLogHandle, type FlowWriterConfig, InlineFlowLog } from './flowlog/writer.js';
import { dispatchTable, RESERVED_COMMANDS } from './control/commands.js';
import { ControlServer } from './control/server.js';
import { OperationError } from './common/errors.js';
import { ConntrackEvents } from './kernel/conntrack-events.js';
import { ConntrackLink } from './kernel/conntrack-link.js';
import { loadNative } from './kernel/native.js';
import type { TransportFactory } from './kernel/transport.js';
import { type Logger, silentLogger } from './log.js';
import { ConntrackdNode } from './sync/engine/conntrackd-node.js';
import type { SyncEngine } from './sync/engine/sync-engine.js';
import { SyncNode, type SyncNodeDeps } from './sync/engine/sync-node.js';
import type { SyncChannel } from './sync/transport/channel.js';
import { createChannels } from './sync/transport/channel-factory.js';
import { ChannelSet } from './sync/transport/channel-set.js';
import type { SystemdNotifier } from './systemd/notify.js';
import { DaemonOperations } from './daemon/operations.js';
import { applyScheduler, linuxScheduler, type SchedulerSetting, type SchedulerSystem } from './daemon/scheduler.js';
import { TrackFile } from './keepalived/index.js';
import { type AuthKeys, loadAuthKeys } from './sync/wire/auth.js';
import { parseHostPort } from './common/address.js';
// Not stats/index.js: that loads prom-client, which MetricsService defers until after the dump.
import { MetricsService } from './stats/service.js';
import type { MetricsSource } from './stats/source.js';
import { buildStatsSnapshot } from './stats/snapshot.js';
import type { EpochSource } from './sync/engine/epoch.js';
import { FileEpochStore } from './daemon/epoch-store.js';

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
  /** Where process.scheduler is applied; this process's threads through the addon by default. */
  scheduler?: SchedulerSystem;
  /** Where this node's epochs come from; a FileEpochStore under stateDir when absent. */
  epochs?: EpochSource;
  /** Directory of the epoch file; config node.stateDir when absent. */
  stateDir?: string;
  /** The flow log's IPFIX socket; a UDP socket connected to flowlog.ipfix.collector when absent. */
  ipfixSender?: DatagramSender;
  /** The flow log's syslog socket; the addon's non-blocking Unix datagram socket when absent. */
  syslogPort?: UnixDatagramPort;
  /**
   * The flow log's writer on a thread of its own (flowlog/thread.ts), as
   * the CLI runs it; on the daemon's thread when false or absent (unit
   * tests run the TypeScript sources, which a worker cannot load; the
   * ipfixSender and syslogPort above are used only then).
   */
  flowlogThread?: boolean;
}

export type DaemonCounters = LocalTableCounters;

export { OperationError };

/** How often the sync engine evaluates its ack, NACK, retransmit and liveness deadlines. */
const SYNC_TICK_MS = 20;

export class Daemon {
  readonly commitStats: CommitStats;
  readonly internal: InternalCache;
  readonly external: ExternalCache;
  private readonly filter: EntryFilter;
  /** The sync links' addresses, which the filter ignores. */
  private readonly localAddresses: readonly string[];
  private readonly injector: Injector | undefined;
  /** The epoch this daemon started with (a rollover takes a new one: SyncNode.epoch). */
  readonly epoch: number;
  private readonly epochs: EpochSource;
  private readonly log: Logger;
  private readonly now: () => number;
  /** What control commands and keepalived's steps ask of this daemon. */
  readonly ops: DaemonOperations;
  private events: ConntrackEvents | undefined;
  private link: ConntrackLink | undefined;
  private table: LocalTable | undefined;
  private channels: ChannelSet | undefined;
  private sync: SyncEngine | undefined;
  private control: ControlServer | undefined;
  private metrics: MetricsService | undefined;
  private auth: AuthKeys | undefined;
  private timers: NodeJS.Timeout[] = [];
  private track: TrackFile | undefined;
  private flowLog: FlowLogHandle | undefined;
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
    this.epochs =
      deps.epochs ?? new FileEpochStore({ dir: deps.stateDir ?? config.node.stateDir, nodeId: config.node.id, log: this.log });
    this.epoch = this.epochs.take();
    const local = deps.localAddresses ?? syncLinkAddresses(config);
    this.localAddresses = local;
    this.filter = compileFilter(config.filter, local);
    this.internal = new InternalCache({ limit: config.cache.internalLimit, filter: this.filter, now: this.now });
    this.external = new ExternalCache({
      limit: config.cache.externalLimit,
      now: this.now,
      // Peers' entries pass the same filter as this node's own (peer-validate.ts).
      peerCheck: new PeerEntryCheck(this.filter, config.filter.expectations),
      // Each admitted peer's share of the limit (see Admission.shareDivisor).
      shareDivisor: () => this.sync?.shareDivisor ?? 1,
      onChange: config.failover.inject ? (...a) => this.injector?.onChange(...a) : undefined,
    });
    if (config.failover.inject) {
      this.injector = new Injector(this.external, { batch: (items, o) => this.kernelLink().batch(items, o) });
    }
    const commits = new CommitRunner({
      external: this.external,
      link: () => this.kernelLink(),
      heardFrom: (id) => (this.sync?.stats().peers ?? []).some((p) => p.id === id),
      now: this.now,
      log: this.log,
      // Our own events are filtered in the kernel; this only matters if that filter was refused.
      betweenChunks: () => this.events?.transport.drain(),
      onCommitted: (durationMs) => this.metrics?.observeCommit(durationMs),
    });
    this.commitStats = commits.stats;
    this.ops = new DaemonOperations({
      internal: this.internal,
      external: this.external,
      commits,
      table: () => this.table,
      sync: () => this.sync,
      stats: () => this.statsSnapshot(),
      stop: () => this.stop(),
      log: this.log,
      now: this.now,
      vrrpName: config.failover.vrrpName,
    });
  }

  /** process.scheduler on every thread; a refusal is a warning, as in conntrackd, and the daemon goes on. */
  private setScheduler(setting: SchedulerSetting): void {
    const sys = this.deps.scheduler ?? linuxScheduler((tid, p, prio) => loadNative().setScheduler(tid, p, prio));
    const r = applyScheduler(setting, sys);
    if (r.failed.length === 0) this.log.info('scheduling policy set', { ...r });
    else {
      this.log.warn('scheduling policy not set on every thread (CAP_SYS_NICE?); going on', {
        ...r,
        fix: 'run as root, or grant CAP_SYS_NICE (AmbientCapabilities= in the unit), or use CPUSchedulingPolicy= there',
      });
    }
  }

  private kernelLink(): ConntrackLink {
    if (!this.link) throw new OperationError('ENOTREADY', 'the kernel link is not open yet');
    return this.link;
  }

  /** Overrun and own-event counts of the local table; zeros before start(). */
  get counters(): DaemonCounters {
    return this.table?.counters ?? { ownKernelEvents: 0, overruns: 0, overrunResyncs: 0 };
  }

  private get dumpDone(): boolean {
    return this.table?.initialDumpDone ?? false;
  }

  /** The initial kernel dump is done and the first peer sync attempt has finished (no sync: the dump alone). */
  get ready(): boolean {
    return this.dumpDone && (this.config.sync === undefined || (this.sync?.firstSyncDone ?? false));
  }

  /** In sync with the peers; a node without sync has none to be out of sync with. */
  private get inSync(): boolean {
    return this.config.sync === undefined ? this.dumpDone : (this.sync?.inSync ?? false);
  }

  /** Resolves once the daemon stops (SIGTERM, shutdown command, stop()). */
  waitForStop(): Promise<void> {
    this.stopPromise ??= new Promise<void>((resolve) => {
      this.onStop = resolve;
    });
    return this.stopPromise;
  }

  async start(): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      // Stopped while starting (SIGTERM during the initial dump, which now
      // runs with the control socket already answering): the dump fails on
      // its closed socket, and that is the stop, not a start failure.
      if (this.stopped) return;
      throw e;
    }
  }

  private async open(): Promise<void> {
    const cfg = this.config;
    // First, as conntrackd does: everything after runs under the policy asked for.
    if (cfg.process.scheduler) this.setScheduler(cfg.process.scheduler);
    const keyFiles = cfg.sync?.auth?.keyFiles ?? [];
    this.auth = keyFiles.length > 0 ? loadAuthKeys(keyFiles) : undefined;
    if (cfg.sync?.protocol === 'conntrackd') {
      this.log.warn('sync.protocol is conntrackd: its messages carry no authentication (counted as sync.auth: none)', {
        risk: 'anything that reaches the sync port can write entries into this node’s state table',
        fix: 'once every node runs ctsyncd, sync.protocol: ctsyncd with sync.auth keys, one node at a time',
      });
    } else if (cfg.sync && !this.auth) {
      this.log.warn('sync.auth is none: sync datagrams are neither signed nor checked', {
        risk: 'anything that reaches the sync port can write entries into this node’s state table',
        fix: 'sync.auth: { keyFile: FILE } with the same key on every node',
      });
    }

    // The control socket comes first so stats answer while the dump runs.
    if (!this.deps.noControl) {
      this.control = new ControlServer({
        path: cfg.control.socket,
        mode: Number.parseInt(cfg.control.mode, 8),
        // The commands, their args' validation and their replies: src/control/commands.ts.
        handlers: dispatchTable(this.ops),
        reservedCommands: RESERVED_COMMANDS,
        log: (level, msg, ctx) => this.log[level](msg, ctx),
      });
      await this.control.start();
      if (this.stopped) return;
    }

    // Metrics (src/stats) before the dump too: /readyz answers 503 until ready.
    if (cfg.metrics.enabled && !this.deps.noMetrics) {
      const at = parseHostPort(cfg.metrics.listen);
      if (!at) throw new OperationError('ECONFIG', `metrics.listen is not host:port: ${cfg.metrics.listen}`);
      const source: MetricsSource = { snapshot: () => this.statsSnapshot(), ready: () => this.ready };
      this.metrics = new MetricsService(source, { ...at, log: this.log });
      await this.metrics.start();
      if (this.stopped) return;
    }

    // The flow log's file first: a daemon asked to log flows does not start without it.
    if (cfg.flowlog) await this.openFlowLog(cfg.flowlog);
    if (this.stopped) return;

    const kernelOpts = { transportFactory: this.deps.kernelTransport };
    // Subscribe before the dump: whatever changes during it arrives as events.
    this.events = new ConntrackEvents({
      ...kernelOpts,
      receiveBufferBytes: cfg.kernel.netlinkBufferBytes,
      // Four times as many bytes in our own memory, where an event takes about
      // a quarter of the room it takes in the kernel queue. A quarter of the
      // buffer was tried (2026-12-07): a fresh daemon then overran on a 20k
      // burst every time. As many bytes (2026-12-08): a fresh daemon fed 80k
      // events/s filled it in its first second in 1 of 2 trials, and 4x held
      // 3 of 3 at 80k and 100k/s, 7 MiB at most used (BENCHMARKS.md). The
      // pages are touched only as events wait there. At most the largest
      // buffer allowed (1 GiB), the ring's size before it grew to 4x.
      readAheadBytes: Math.min(4 * cfg.kernel.netlinkBufferBytes, LIMITS.bufferBytes.max),
      coalesceMs: cfg.kernel.eventCoalesceMs,
      expectations: cfg.filter.expectations !== 'none',
      reliable: cfg.kernel.eventsReliable,
      // The same rules again, for the kernel to drop what the filter would ignore (an optimisation only).
      filterRules: cfg.kernel.filterEvents ? kernelEventRules(cfg.filter, this.localAddresses) : undefined,
    });
    if (this.flowLog) this.events.setTap(this.flowLog);
    this.link = new ConntrackLink(kernelOpts);
    this.events.addOwnPortid(this.link.portid);
    const kf = this.events.kernelFilter;
    if (kf.userspaceOnly.length > 0 || !kf.attached)
      this.log.warn('kernel event filter: some rules are applied in userspace only', { ...kf });
    else this.log.info('kernel event filter attached', { ...kf });

    // Without sync (conntrackd's Stats mode) the table is kept for the flow log and stats alone.
    const sync = cfg.sync && cfg.cluster ? await this.openSync(cfg.sync, cfg.cluster) : undefined;
    // Nothing below may run after stop(): its timers would outlive it.
    if (this.stopped) return;

    const table = new LocalTable({
      internal: this.internal,
      filter: this.filter,
      events: this.events,
      link: this.link,
      // SyncNode is the listener itself: no hop between a kernel event and its send queue.
      listener: sync ?? NO_PEERS,
      now: this.now,
      log: this.log,
      purgeTimeoutSeconds: cfg.failover.purgeTimeoutSeconds,
      ownAddresses: hostAddresses,
      maxEventBufferBytes: cfg.kernel.netlinkBufferMaxBytes,
      expectations: cfg.filter.expectations,
    });
    this.table = table;

    table.start();

    // Hello and a resync request go out before the dump: peers' state flows in while we read ours.
    sync?.start();
    if (cfg.failover.trackFile) {
      // "Not in sync" until proven otherwise: keepalived lowers our priority meanwhile.
      this.track = new TrackFile(cfg.failover.trackFile, this.log);
      this.track.start();
    }
    this.timers.push(
      setInterval(() => {
        this.sync?.tick();
        if (this.track) this.track.set(this.inSync);
        const n = this.deps.notifier;
        if (n && !n.ready && this.ready) this.notifySystemd(n);
      }, SYNC_TICK_MS),
    );
    await this.dumpAndRun(table);
  }

  private async openFlowLog(fl: FlowlogConfig): Promise<void> {
    const file = fl.file;
    const log = this.log;
    // The section as it is, but the syslog facility by its number.
    const config: FlowWriterConfig = { ...fl, syslog: fl.syslog && { ...fl.syslog, facility: SYSLOG_FACILITIES[fl.syslog.facility] } };
    this.flowLog = this.deps.flowlogThread
      ? await FlowLogThread.start({ config, filter: this.config.filter, localAddresses: this.localAddresses, log })
      : await InlineFlowLog.open(config, {
          ipfixSender: this.deps.ipfixSender,
          syslogPort: this.deps.syslogPort,
          // The cache's filter decides what is logged too, as conntrackd's General Filter does in Stats mode.
          accept: (e) => this.filter.check(e).pass,
          acceptRecord: (r, at) => this.filter.checkRecord(r, at, undefined).pass,
          now: this.now,
          log,
        });
    this.log.info('flow log open', {
      events: fl.events,
      thread: this.deps.flowlogThread ? 'own' : 'daemon',
      ...(file ? { file: file.path, durability: file.durability } : {}),
      ...(fl.ipfix ? { ipfix: fl.ipfix.collector } : {}),
      ...(fl.syslog ? { syslog: fl.syslog.path, facility: fl.syslog.facility } : {}),
    });
  }

  /** SIGUSR1: the flow log file is reopened (logrotate moved it away); no line is lost meanwhile. */
  async reopenFlowLog(): Promise<void> {
    const file = this.config.flowlog?.file;
    if (!this.flowLog || !file) return;
    await this.flowLog.reopen();
    this.log.info('flow log reopened', { file: file.path });
  }

  /** The sync engine and its channels, started; undefined if stop() came meanwhile. */
  private async openSync(syncCfg: SyncConfig, cluster: ClusterConfig): Promise<SyncEngine | undefined> {
    const cfg = { ...this.config, sync: syncCfg, cluster };
    const channels = this.deps.channels ?? createChannels(cfg);
    this.channels = new ChannelSet(channels, {
      onActiveChange: (name, reason) => this.log.info('sync link active', { link: name, reason }),
    });
    const syncDeps: SyncNodeDeps = {
      nodeId: cfg.node.id,
      cluster: cfg.cluster.id,
      epoch: this.epoch,
      nextEpoch: () => this.epochs.take(),
      mtu: cfg.sync.mtu,
      auth: this.auth,
      mode: cfg.sync.mode,
      external: this.external,
      lookup: (key) => {
        if (typeof key !== 'number') return undefined;
        // Without attributes to strip, the record goes out as it is: a view
        // into the cache, encoded at once, no object or copy made.
        if (cfg.filter.stripAttributes.length === 0) return this.internal.viewAt(key);
        const e = this.internal.entryAt(key);
        return e && stripAttributes(e, cfg.filter.stripAttributes);
      },
      localKeys: () => this.internal.slots(),
      lookupExpect: (key) => this.internal.getExpect(key),
      localExpectKeys: () => [...this.internal.expectEntries()].map(([k]) => k),
      send: (buf) => this.channels?.send(buf),
      now: this.now,
      log: this.log,
      timers: cfg.sync.reliability,
      maxSeqsPerEpoch: cfg.sync.reliability.seqsPerEpoch,
      admission: cfg.cluster,
      // Peers asking for our state get it once our table is complete.
      localReady: () => this.dumpDone,
    };
    // One engine per protocol, the same interface to everything else (sync-engine.ts).
    this.sync = cfg.sync.protocol === 'conntrackd' ? new ConntrackdNode(syncDeps) : new SyncNode(syncDeps);
    const sync = this.sync;
    this.channels.onDatagram((buf, from, channel) => {
      // Only a sign of the peer's life keeps a link up: a replayed datagram is valid too.
      if (sync.receive(buf, from).live) this.channels?.noteValidReceive(channel);
    });
    await this.channels.start();
    return this.stopped ? undefined : sync;
  }

  /** The initial dump and what follows it, once the table is subscribed to events. */
  private async dumpAndRun(table: LocalTable): Promise<void> {
    const cfg = this.config;
    const notifier = this.deps.notifier;
    notifier?.status('reading the kernel conntrack table');
    const watchdogMs = notifier?.watchdogIntervalMs;
    if (notifier && watchdogMs !== undefined) this.timers.push(setInterval(() => notifier.watchdog(), watchdogMs));
    if (notifier) this.timers.push(setInterval(() => this.notifySystemd(notifier), SYSTEMD_STATUS_MS));

    // Events interleave with the dump; a key an event touched belongs to the events.
    const initial = await table.initialDump();
    if (this.stopped) return;
    this.log.info('initial kernel dump done', { cached: this.internal.size, ...initial });
    // The registry (prom-client) loads now rather than before the control
    // socket and the dump, which its ~65 ms of loading would have held back.
    this.metrics?.load().catch((e: unknown) => this.log.error('metrics registry not loaded', { error: String(e) }));
    if (notifier) this.notifySystemd(notifier);
    table.resumeOverrunRecovery();

    if (cfg.failover.notifyFifo) this.ops.failovers.startNotifyFifo(cfg.failover.notifyFifo);

    this.log.info('ctsyncd started', {
      node: cfg.node.id,
      epoch: this.epoch,
      ...(cfg.sync ? { transport: cfg.sync.transport, mode: cfg.sync.mode, protocol: cfg.sync.protocol } : { mode: 'stats' }),
      flowlog: cfg.flowlog ? (cfg.flowlog.file?.path ?? 'on') : 'off',
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.table?.close();
    this.deps.notifier?.stopping();
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.ops.failovers.close();
    this.sync?.close();
    this.injector?.close();
    this.events?.close();
    this.link?.close();
    await this.closeFlowLog();
    await this.channels?.close();
    await this.control?.close();
    await this.metrics?.close();
    this.log.info('ctsyncd stopped');
    this.onStop?.();
  }

  /** What the queue still holds goes out before the outputs close; nothing new arrives once events are closed. */
  private async closeFlowLog(): Promise<void> {
    await this.flowLog?.close().catch((e: unknown) => this.log.error('flow log not closed cleanly', { error: String(e) }));
  }

  /** The stats object `ctsyncd stats --json` prints and src/stats reads (StatsSnapshot) for /metrics. */
  statsSnapshot() {
    // stats() first: reading inSync may latch it, as it did when stats() read it.
    const sync = this.sync?.stats();
    const cfg = this.config;
    return buildStatsSnapshot({
      ready: this.ready,
      node: cfg.node.id,
      epoch: this.sync?.epoch ?? this.epoch,
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
        sequencer: this.ops.failovers.sequencer,
      },
      injector: this.injector,
      events: this.events,
      link: this.link,
      kernelCounters: this.counters,
      channels: this.channels,
      auth: cfg.sync?.auth && cfg.sync.protocol === 'ctsyncd' ? 'hmac' : 'none',
      control: this.control,
      flowlog: this.flowLog?.snapshot(),
    });
  }

  /** A one-line summary for systemctl status; READY=1 the first time the daemon is ready. */
  private notifySystemd(n: SystemdNotifier): void {
    const peers = this.sync?.stats().peers ?? [];
    n.report({
      dumpDone: this.dumpDone,
      ready: this.ready,
      localEntries: this.internal.size,
      peerEntries: this.external.size,
      peersUp: peers.filter((p) => p.state === 'up').length,
      peers: peers.length,
      inSync: this.sync?.inSync ?? false,
      committing: this.commitStats.running,
    });
  }
}


/** Where local changes go when there is no sync (conntrackd's Stats mode): nowhere. */
const NO_PEERS: LocalChangeListener = { localChange: () => undefined, localExpectChange: () => undefined };

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
  if (cfg.sync?.udp) out.push(cfg.sync.udp.bind);
  const ifname = cfg.sync?.multicast?.interface;
  if (ifname) for (const a of networkInterfaces()[ifname] ?? []) out.push(a.address.split('%')[0]!);
  return out;
}
