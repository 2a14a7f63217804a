// The daemon: config → kernel → internal cache → sync → peers → external
// cache, plus the control socket. Every collaborator that touches the
// outside world (kernel sockets, sync channels, clock, log) is injectable.
import { networkInterfaces } from 'node:os';
import { type CommitReport, type CommitStats, commitExternal } from './cache/commit.js';
import { ExternalCache } from './cache/external-cache.js';
import { compileFilter, type EntryFilter, stripAttributes } from './cache/filter.js';
import { Injector } from './cache/inject.js';
import { InternalCache, type ReconcileResult } from './cache/internal-cache.js';
import type { Config } from './config/index.js';
import { dispatchTable } from './control/commands.js';
import { ControlServer } from './control/server.js';
import { type ConntrackEvent, ConntrackEvents, type ExpectEvent } from './kernel/conntrack-events.js';
import { ConntrackLink } from './kernel/conntrack-link.js';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey } from './kernel/entry.js';
import { entryToJson, expectToJson } from './kernel/entry-json.js';
import type { TransportFactory } from './kernel/transport.js';
import { type Logger, silentLogger } from './log.js';
import { SyncNode } from './sync/engine/sync-node.js';
import type { SyncChannel } from './sync/transport/channel.js';
import { createChannels } from './sync/transport/channel-factory.js';
import { ChannelSet } from './sync/transport/channel-set.js';
import type { SystemdNotifier } from './systemd/notify.js';
import {
  FailoverSequencer,
  type FailoverStep,
  type FailoverTarget,
  type NotifyFifoHandle,
  runNotifyFifo,
  TrackFile,
} from './keepalived/index.js';
import { type AuthKeys, loadAuthKeys } from './sync/wire/auth.js';
import { parseHostPort } from './common/address.js';
import { type MetricsSource, MetricsService } from './stats/index.js';

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

export interface DaemonCounters {
  ownKernelEvents: number;
  overruns: number;
  overrunResyncs: number;
}

/** A control command that cannot run now or failed as a whole; the CLI exits non-zero with its message. */
export class OperationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** How often the sync engine evaluates its ack, NACK, retransmit and liveness deadlines. */
const SYNC_TICK_MS = 20;
/** Entries converted per slice of a control dump (about 5 ms of work). */
const DUMP_SLICE = 5000;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Overruns double the event buffer up to this; SO_RCVBUFFORCE lets root go past rmem_max. */
const MAX_EVENT_BUFFER = 256 * 1024 * 1024;

export class Daemon {
  readonly counters: DaemonCounters = { ownKernelEvents: 0, overruns: 0, overrunResyncs: 0 };
  readonly commitStats: CommitStats = {
    commits: 0,
    running: false,
    committed: 0,
    updated: 0,
    unchanged: 0,
    failed: 0,
    lastDurationMs: null,
    last: null,
  };
  readonly internal: InternalCache;
  readonly external: ExternalCache;
  private readonly filter: EntryFilter;
  private readonly injector: Injector | undefined;
  readonly epoch: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private events: ConntrackEvents | undefined;
  private link: ConntrackLink | undefined;
  private channels: ChannelSet | undefined;
  private sync: SyncNode | undefined;
  private control: ControlServer | undefined;
  private metrics: MetricsService | undefined;
  private auth: AuthKeys | undefined;
  private timers: NodeJS.Timeout[] = [];
  private track: TrackFile | undefined;
  private fifo: NotifyFifoHandle | undefined;
  private sequencer: FailoverSequencer | undefined;
  private dumpDone = false;
  private stopped = false;
  private resyncRunning = false;
  private resyncAgain = false;
  private overrunPending = false;
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
  }

  private kernelLink(): ConntrackLink {
    if (!this.link) throw new OperationError('ENOTREADY', 'the kernel link is not open yet');
    return this.link;
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

    this.events.start({
      onEvent: (ev) => this.onKernelEvent(ev),
      onExpectEvent: (ev) => this.onExpectEvent(ev),
      onOverrun: () => this.onOverrun(),
      onEmpty: () => {
        if (!this.overrunPending || !this.dumpDone || this.resyncRunning) return;
        this.overrunPending = false;
        void this.resyncKernel('overrun').catch((e: Error) =>
          this.log.error('kernel resync failed', { error: e.message }),
        );
      },
      onDecodeError: (e) => this.log.warn('undecodable kernel event', { code: e.code, reason: e.reason }),
    });

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
    const initial = await this.reconcileWithKernel();
    this.dumpDone = true;
    this.log.info('initial kernel dump done', { cached: this.internal.size, ...initial });
    if (notifier) this.notifySystemd(notifier);
    // An overrun during the dump waits for an empty queue; read it now so that happens.
    if (this.overrunPending) this.events.transport.drain();

    if (cfg.failover.notifyFifo) this.startNotifyFifo(cfg.failover.notifyFifo);

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
    this.deps.notifier?.stopping();
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.fifo?.close();
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
    const kernel = this.events?.counters;
    const sync = this.sync?.stats();
    return {
      ready: this.ready,
      node: this.config.node.id,
      epoch: this.epoch,
      uptimeSeconds: Math.round((this.now() - this.startedAt) / 1000),
      pid: process.pid,
      internal: {
        entries: this.internal.size,
        limit: this.config.cache.internalLimit,
        ...this.internal.counters,
        expectations: { entries: this.internal.expectSize, ...this.internal.expectCounters },
      },
      external: {
        entries: this.external.size,
        limit: this.config.cache.externalLimit,
        ...this.external.counters,
        origins: Object.fromEntries(this.external.origins()),
        expectations: { entries: this.external.expectSize, ...this.external.expectCounters },
      },
      peers: sync ? sync.peers : [],
      commit: { ...this.commitStats, last: this.commitStats.last },
      failover: {
        inSync: this.sync?.inSync ?? false,
        inject: this.config.failover.inject,
        purgeTimeoutSeconds: this.config.failover.purgeTimeoutSeconds,
        trackFile: this.config.failover.trackFile ?? null,
        trackValue: this.track?.value ?? null,
        notifyFifo: this.config.failover.notifyFifo ?? null,
        keepalivedState: this.sequencer?.state ?? null,
        sequencer: this.sequencer ? { ...this.sequencer.counters } : null,
      },
      inject: this.injector ? { enabled: true, queued: this.injector.queued, ...this.injector.counters } : { enabled: false },
      kernel: {
        ownEventsFiltered: this.events?.ownEventsFiltered ?? false,
        events: kernel ? { ...kernel } : {},
        link: this.link ? { ...this.link.counters } : {},
        receiveBufferBytes: this.events?.receiveBuffer ?? 0,
        ...this.counters,
      },
      sync: {
        ...(sync ?? {}),
        peers: undefined,
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

  /**
   * Commits the external cache (or one peer's part) into the kernel; see
   * cache/commit.ts. One at a time, like conntrackd: a second request while
   * one runs is refused.
   */
  async commit(peer?: string): Promise<CommitReport> {
    const link = this.kernelLink();
    if (this.commitStats.running) throw new OperationError('EINPROGRESS', 'a commit is already in progress');
    if (peer !== undefined && !this.knownPeer(peer)) {
      throw new OperationError('ENOPEER', `unknown peer '${peer}': no entries from it and never heard from`);
    }
    const st = this.commitStats;
    st.running = true;
    this.log.info('commit started', { peer: peer ?? 'all', entries: this.external.size });
    try {
      const report = await commitExternal(this.external, link, {
        origin: peer,
        now: this.now,
        // Our own events are filtered in the kernel; this only matters if that filter was refused.
        betweenChunks: () => this.events?.transport.drain(),
      });
      st.commits++;
      st.committed += report.committed;
      st.updated += report.updated;
      st.unchanged += report.unchanged;
      st.failed += report.failed + report.expectations.failed;
      st.lastDurationMs = report.durationMs;
      this.metrics?.observeCommit(report.durationMs);
      st.last = report;
      const level = report.failed + report.expectations.failed > 0 ? 'error' : 'info';
      this.log[level]('commit done', {
        entries: report.entries,
        committed: report.committed,
        updated: report.updated,
        unchanged: report.unchanged,
        failed: report.failed,
        expectations: report.expectations.committed,
        durationMs: report.durationMs,
      });
      return report;
    } finally {
      st.running = false;
    }
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

  /** The failover step keepalived's state changes call for, run in this process. */
  async runFailoverStep(step: FailoverStep): Promise<unknown> {
    switch (step) {
      case 'commit':
        return this.commit();
      case 'flush':
        return this.flush();
      case 'resync':
        return this.resyncKernel('keepalived');
      case 'bulk-send':
        return this.sync?.bulkSend('') ?? 0;
      case 'purge-timeout':
        return this.purgeTimeout();
      case 'request-resync':
        return this.sync?.requestResync('');
    }
  }

  /** The one sequencer of this daemon: the notify FIFO and the failover command share it, so their states are applied in arrival order. */
  private failoverSequencer(): FailoverSequencer {
    this.sequencer ??= new FailoverSequencer({
      log: this.log,
      name: this.config.failover.vrrpName,
      now: this.now,
      run: (step) => withTimeout(this.runFailoverStep(step), FAILOVER_STEP_TIMEOUT_MS, step).then(() => undefined),
    });
    return this.sequencer;
  }

  /** failover.notifyFifo: keepalived's ordered notifications drive the failover steps here. */
  private startNotifyFifo(path: string): void {
    this.fifo = runNotifyFifo(path, this.failoverSequencer(), this.log);
    this.log.info('following keepalived notify FIFO', { path });
  }

  /**
   * `ctsyncd failover primary|backup|fault`: the whole step sequence in one
   * request (a notify script then starts one client, not four). States from
   * concurrent notify scripts queue up in arrival order in the same sequencer
   * the FIFO feeds; the reply comes once the sequencer is idle.
   */
  async failover(target: FailoverTarget): Promise<{ state: FailoverTarget; steps: number; failed: number }> {
    const seq = this.failoverSequencer();
    const before = { ...seq.counters };
    seq.handle({
      kind: 'vrrp',
      scope: 'group',
      name: this.config.failover.vrrpName ?? 'ctsyncd',
      state: target === 'primary' ? 'MASTER' : target === 'backup' ? 'BACKUP' : 'FAULT',
      target,
      priority: 0,
    });
    await seq.idle();
    return {
      state: target,
      steps: seq.counters.stepsRun - before.stepsRun,
      failed: seq.counters.stepFailures - before.stepFailures,
    };
  }

  private knownPeer(id: string): boolean {
    if (this.external.origins().has(id)) return true;
    return (this.sync?.stats().peers ?? []).some((p) => p.id === id);
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

  /**
   * Deletes every kernel entry the filter accepts, and all expectations (like
   * conntrackd -F). Entries the filter ignores (the sync link, loopback) stay.
   * The deletions are ours, so they are not replicated: peers keep their copy.
   */
  async flushKernel(): Promise<{ deleted: number; failed: number; failures: Record<string, number>; durationMs: number }> {
    const link = this.kernelLink();
    const started = this.now();
    const victims: ConntrackEntry[] = [];
    await link.dump((e) => {
      if (this.filter.check(e).pass) victims.push(e);
    });
    const r = await link.batch(
      victims.map((entry) => ({ op: 'delete' as const, entry })),
      { betweenChunks: () => this.events?.transport.drain() },
    );
    const failures: Record<string, number> = {};
    let deleted = 0;
    for (let i = 0; i < victims.length; i++) {
      const errno = r.errnos[i]!;
      // ENOENT: it expired on its own meanwhile.
      if (errno === 0 || errno === 2) {
        deleted++;
        this.internal.apply('destroy', victims[i]!);
      }
    }
    for (const [name, n] of Object.entries(r.failures)) if (name !== 'ENOENT') failures[name] = n;
    await link.flushExpectations();
    const failed = victims.length - deleted;
    const out = { deleted, failed, failures, durationMs: this.now() - started };
    this.log.info('kernel table flushed', out);
    return out;
  }

  /**
   * Shortens to failover.purgeTimeoutSeconds the kernel timeouts of the
   * connections this node does not own: every entry the filter accepts whose
   * endpoints are not this node's own addresses. Zombies from this node's
   * time as primary then expire soon, unless traffic still flows through
   * here and keeps them alive (conntrackd's -t deletes them outright after
   * the delay). They also leave the internal cache, unreplicated: the peer
   * that now forwards them owns them.
   */
  async purgeTimeout(): Promise<{
    examined: number;
    shortened: number;
    local: number;
    failed: number;
    failures: Record<string, number>;
    timeoutSeconds: number;
  }> {
    const link = this.kernelLink();
    const seconds = this.config.failover.purgeTimeoutSeconds;
    const own = new Set<string>();
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) own.add(a.address.split('%')[0]!);
    }
    let examined = 0;
    let local = 0;
    const targets: ConntrackEntry[] = [];
    await link.dump((e) => {
      examined++;
      if (!this.filter.check(e).pass) return;
      if (own.has(e.orig.src) || own.has(e.orig.dst)) {
        local++;
        return;
      }
      targets.push(e);
    });
    const items = targets
      .filter((e) => e.timeout === undefined || e.timeout > seconds)
      .map((e) => ({ op: 'timeout' as const, entry: { ...e, timeout: seconds } }));
    const r = await link.batch(items, { betweenChunks: () => this.events?.transport.drain() });
    for (const e of targets) this.internal.apply('destroy', e);
    const failures: Record<string, number> = {};
    for (const [name, n] of Object.entries(r.failures)) if (name !== 'ENOENT') failures[name] = n;
    const failed = Object.values(failures).reduce((a, b) => a + b, 0);
    const out = { examined, shortened: r.ok, local, failed, failures, timeoutSeconds: seconds };
    this.log.info('purge timeout applied', out);
    return out;
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

  private onKernelEvent(ev: ConntrackEvent): void {
    if (ev.own) {
      // Our own commits and injections are never replicated back.
      this.counters.ownKernelEvents++;
      return;
    }
    const key = entryKey(ev.entry);
    this.noteChange(key, this.internal.apply(ev.type, ev.entry, key), ev.entry);
  }

  private onExpectEvent(ev: ExpectEvent): void {
    if (ev.own) {
      this.counters.ownKernelEvents++;
      return;
    }
    const r = this.internal.applyExpect(ev.type, ev.entry);
    const key = expectKey(ev.entry);
    if (r === 'created' || r === 'updated') this.sync?.localExpectChange(key, 'new');
    else if (r === 'deleted') this.sync?.localExpectChange(key, 'delete', ev.entry);
  }

  private noteChange(key: string, kind: string, entry: ConntrackEntry | undefined): void {
    const sync = this.sync;
    if (!sync) return;
    if (kind === 'created') sync.localChange(key, 'new');
    else if (kind === 'updated') sync.localChange(key, 'update');
    else if (kind === 'deleted') sync.localChange(key, 'delete', entry);
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
    // Even during a resync: the next pass must also wait for an empty queue.
    this.overrunPending = true;
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
      // An overrun during this pass needs another once the queue is empty; reading it tells.
      if (this.overrunPending && !this.stopped) this.events?.transport.drain();
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
    // Expectations after the conntrack table, so their masters are current.
    const expectations: ExpectEntry[] = [];
    await this.link!.dumpExpectations((x) => expectations.push(x));
    const xdiff = this.internal.reconcileExpect(expectations);
    for (const key of [...xdiff.created, ...xdiff.updated]) this.sync?.localExpectChange(key, 'new');
    for (const x of xdiff.deleted) this.sync?.localExpectChange(expectKey(x), 'delete', x);
    return { created: diff.created.length, updated: diff.updated.length, deleted: diff.deleted.length };
  }

  private replicate(diff: ReconcileResult<ConntrackEntry>): void {
    for (const key of diff.created) this.noteChange(key, 'created', undefined);
    for (const key of diff.updated) this.noteChange(key, 'updated', undefined);
    for (const e of diff.deleted) this.noteChange(entryKey(e), 'deleted', e);
  }
}

/** How often the systemd STATUS= line is refreshed (only sent when it changed). */
const SYSTEMD_STATUS_MS = 1000;

/** A failover step that takes longer is reported failed, so later notifications are not held up forever. */
const FAILOVER_STEP_TIMEOUT_MS = 300_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OperationError('ETIMEDOUT', `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** The addresses this node uses on its sync links: its own replication traffic is never replicated. */
export function syncLinkAddresses(cfg: Config): string[] {
  const out: string[] = [];
  if (cfg.sync.udp) out.push(cfg.sync.udp.bind);
  const ifname = cfg.sync.multicast?.interface;
  if (ifname) for (const a of networkInterfaces()[ifname] ?? []) out.push(a.address.split('%')[0]!);
  return out;
}
