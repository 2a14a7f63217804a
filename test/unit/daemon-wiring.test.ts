// The Daemon only wires: these check the wires (kernel events reach the sync
// engine, the delegating methods reach their modules, and before start()
// the kernel operations refuse with ENOTREADY). The modules themselves are
// tested in local-table, commit-runner, keepalived-failover and
// stats-snapshot.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Daemon, OperationError } from '../../src/daemon.js';
import { OperationError as BaseOperationError } from '../../src/common/errors.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import type { StatsSnapshot } from '../../src/stats/index.js';
import { createLogger, type Logger } from '../../src/log.js';
import type { SchedulerSystem } from '../../src/daemon/scheduler.js';
import { LoopChannel } from './doubles.js';

function tcp(i: number, src = `10.50.0.${i}`): ConntrackEntry {
  return {
    family: AF_INET,
    orig: { src, dst: '192.0.2.5', proto: IPPROTO.TCP, sport: 40000 + i, dport: 443 },
    reply: { src: '192.0.2.5', dst: src, proto: IPPROTO.TCP, sport: 443, dport: 40000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    protoinfo: { tcp: { state: 3 } },
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const config = (auth = 'none', extra: string[] = []) =>
  parseConfig(
    [
      'node: { id: fw1 }',
      'cluster: { id: 1 }',
      'sync:',
      '  multicast: { interface: sync0 }',
      `  auth: ${auth}`,
      '  reliability: { startupSyncWaitMs: 20 }',
      'failover: { purgeTimeoutSeconds: 45 }',
      ...extra,
      '',
    ].join('\n'),
    'wiring-test.yaml',
  );

const running: Daemon[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.stop();
});

function daemon(
  kernel: FakeKernel,
  channel = new LoopChannel('l0'),
  opts: { auth?: string; log?: Logger; noMetrics?: boolean; extra?: string[]; scheduler?: SchedulerSystem } = {},
): Daemon {
  const d = new Daemon(config(opts.auth, opts.extra), {
    kernelTransport: kernel.openSocket,
    channels: [channel],
    noControl: true,
    localAddresses: [],
    log: opts.log,
    noMetrics: opts.noMetrics,
    scheduler: opts.scheduler,
  });
  running.push(d);
  return d;
}

/** A logger that keeps what it is told, at every level. */
function recordingLogger(): { log: Logger; lines: Array<{ level: string; msg: string }> } {
  const lines: Array<{ level: string; msg: string }> = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l) as { level: string; msg: string }) });
  return { log, lines };
}

describe('Daemon wiring', () => {
  it('before start(): the kernel operations refuse with ENOTREADY, the rest answers', async () => {
    const d = daemon(new FakeKernel());
    for (const op of [() => d.ops.flushKernel(), () => d.ops.purgeTimeout(), () => d.ops.resyncKernel('command'), () => d.ops.commit()]) {
      const err = await op().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OperationError);
      expect(err).toMatchObject({ code: 'ENOTREADY', message: 'the kernel link is not open yet' });
    }
    // One class, whichever module threw it.
    expect(OperationError).toBe(BaseOperationError);
    expect(d.counters).toEqual({ ownKernelEvents: 0, overruns: 0, overrunResyncs: 0 });
    expect(d.ready).toBe(false);
    expect(d.ops.flush()).toEqual({ internal: 0, external: 0 });
    expect(await d.ops.runFailoverStep('bulk-send')).toBe(0);
  });

  it('a stop while start() runs ends it quietly, at any point, and leaves nothing running', async () => {
    // Each of these lets start() run to a later await before stop() comes.
    // Left running, the metrics endpoint (default metrics.listen) would make
    // the next round's start() fail with EADDRINUSE.
    for (const turns of [0, 1, 2, 5, 20]) {
      const kernel = new FakeKernel();
      for (let i = 1; i <= 50; i++) kernel.packetNew(tcp(i));
      const d = daemon(kernel);
      const started = d.start();
      for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
      await d.stop();
      await expect(started).resolves.toBeUndefined();
    }
  });

  it('kernel events reach the internal cache and go out on the sync link; the operations reach the kernel', async () => {
    const kernel = new FakeKernel();
    const channel = new LoopChannel('l0');
    const d = daemon(kernel, channel);
    kernel.packetNew(tcp(1));
    await d.start();
    await until(() => d.ready, 'ready');
    expect(d.internal.size).toBe(1);
    const snap = (): StatsSnapshot => d.statsSnapshot();
    const queued = () => snap().sync.sender?.queued ?? 0;
    const before = queued();
    kernel.packetNew(tcp(2));
    await until(() => d.internal.size === 2, 'the event applied');
    // The change went to SyncNode's sender (LocalChangeListener → SyncNode.localChange).
    expect(queued()).toBe(before + 1);
    await until(() => (snap().sync.sender?.messagesSent ?? 0) >= before + 1, 'the change sent');
    expect(channel.counters.datagramsSent).toBeGreaterThan(0);

    expect(await d.ops.resyncKernel('command')).toEqual({
      created: 0,
      updated: 0,
      deleted: 0,
      expectations: { created: 0, updated: 0, deleted: 0 },
    });
    const purge = await d.ops.purgeTimeout();
    expect(purge).toMatchObject({ examined: 2, shortened: 2, timeoutSeconds: 45 });
    expect(d.internal.size).toBe(0);
    expect(await d.ops.failover('backup')).toEqual({ state: 'backup', steps: 2, failed: 0 });
    expect(d.statsSnapshot().failover.keepalivedState).toBe('backup');
    const flushed = await d.ops.flushKernel();
    expect(flushed).toMatchObject({ deleted: 2, failed: 0 });
    expect(kernel.table.size).toBe(0);
    expect(d.counters.overruns).toBe(0);
  });

  it('sync.auth: none warns at start and shows in stats; keys show as hmac; an exposed key file stops the start', async () => {
    const none = recordingLogger();
    const d = daemon(new FakeKernel(), new LoopChannel('l0'), { log: none.log, noMetrics: true });
    expect(d.statsSnapshot().sync.auth).toBe('none');
    await d.start();
    expect(none.lines.filter((l) => l.level === 'warn' && /sync\.auth is none/.test(l.msg))).toHaveLength(1);

    const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-wiring-'));
    try {
      const key = join(dir, 'sync.key');
      writeFileSync(key, randomBytes(32).toString('hex'));
      chmodSync(key, 0o600);
      const signed = recordingLogger();
      const k = daemon(new FakeKernel(), new LoopChannel('l1'), { auth: `{ keyFile: ${key} }`, log: signed.log, noMetrics: true });
      await k.start();
      expect(k.statsSnapshot().sync.auth).toBe('hmac');
      expect(signed.lines.some((l) => /sync\.auth/.test(l.msg))).toBe(false);

      chmodSync(key, 0o644);
      const exposed = daemon(new FakeKernel(), new LoopChannel('l2'), { auth: `{ keyFile: ${key} }`, noMetrics: true });
      await expect(exposed.start()).rejects.toMatchObject({ code: 'EAUTH_KEY_PERMS' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('process.scheduler is set on every thread, the main one first, before anything opens; a refusal only warns', async () => {
    const calls: Array<[number, number, number]> = [];
    const sys: SchedulerSystem = {
      threads: () => [7, 5, 6],
      self: () => 5,
      set: (tid, policy, prio) => {
        calls.push([tid, policy, prio]);
        if (tid === 7) throw Object.assign(new Error('sched_setscheduler: No such process'), { errno: 3 });
      },
    };
    const rec = recordingLogger();
    const kernel = new FakeKernel();
    const d = daemon(kernel, new LoopChannel('l0'), {
      log: rec.log,
      noMetrics: true,
      extra: ['process: { scheduler: { policy: fifo, priority: 40 } }'],
      scheduler: sys,
    });
    await d.start();
    expect(calls).toEqual([
      [5, 1, 40],
      [7, 1, 40],
      [6, 1, 40],
    ]);
    expect(rec.lines.filter((l) => l.msg.startsWith('scheduling policy not set'))).toHaveLength(1);
    // Before the first kernel socket: everything the daemon opens runs under it.
    const at = rec.lines.findIndex((l) => l.msg.startsWith('scheduling policy'));
    expect(at).toBeGreaterThanOrEqual(0);
    expect(rec.lines.slice(0, at).some((l) => l.msg.startsWith('kernel event filter'))).toBe(false);
  });

  it('without process.scheduler nothing is set', async () => {
    const calls: number[] = [];
    const sys: SchedulerSystem = { threads: () => [5], self: () => 5, set: (tid) => void calls.push(tid) };
    const d = daemon(new FakeKernel(), new LoopChannel('l0'), { noMetrics: true, scheduler: sys });
    await d.start();
    expect(calls).toEqual([]);
  });

  it('filter.expectations none: the expectation groups are not joined and no expectation is cached', async () => {
    const kernel = new FakeKernel();
    const d = daemon(kernel, new LoopChannel('l0'), { noMetrics: true, extra: ['filter: { expectations: none }'] });
    await d.start();
    const eventSockets = kernel.openSockets().filter((s) => s.groups.size > 0);
    expect(eventSockets).toHaveLength(1);
    expect([...eventSockets[0]!.groups].sort()).toEqual([1, 2, 3]);
    expect(d.internal.expectSize).toBe(0);
  });

  it('kernel.eventsReliable: an event that does not fit is redelivered, not reported as an overrun', async () => {
    const kernel = new FakeKernel();
    const d = daemon(kernel, new LoopChannel('l0'), {
      noMetrics: true,
      extra: ['kernel: { eventsReliable: true, netlinkBufferBytes: 4096 }'],
    });
    await d.start();
    for (let i = 1; i <= 200; i++) kernel.packetNew(tcp(i));
    await until(() => d.internal.size === 200, 'every event');
    expect(d.counters.overruns).toBe(0);
    const events = kernel.openSockets().find((s) => s.groups.size > 0)!;
    expect(events.stats.redelivered).toBeGreaterThan(0);
    expect(events.stats.dropped).toBe(0);
  });
});
