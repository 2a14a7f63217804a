// buildStatsSnapshot: the object `ctsyncd stats --json` prints and /metrics
// reads. Its keys and their order are what scripts see, so they are pinned
// here, from the parts alone and from a Daemon on the FakeKernel.
import { describe, expect, it } from 'vitest';
import { CommitRunner } from '../../src/cache/commit-runner.js';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { ACCEPT_ALL } from '../../src/cache/filter.js';
import { InternalCache } from '../../src/cache/internal-cache.js';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import type { FailoverSequencerCounters } from '../../src/keepalived/index.js';
import type { EventCounters } from '../../src/kernel/conntrack-events.js';
import type { LinkCounters } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { silentLogger } from '../../src/log.js';
import { buildStatsSnapshot, type StatsParts, type StatsSnapshot, type SyncStatsView } from '../../src/stats/index.js';
import { LoopChannel } from './doubles.js';

function tcp(i: number): ConntrackEntry {
  const src = `10.30.0.${i}`;
  return {
    family: AF_INET,
    orig: { src, dst: '192.0.2.9', proto: IPPROTO.TCP, sport: 20000 + i, dport: 22 },
    reply: { src: '192.0.2.9', dst: src, proto: IPPROTO.TCP, sport: 22, dport: 20000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    protoinfo: { tcp: { state: 3 } },
  };
}

const eventCounters = (): EventCounters => ({
  new: 1,
  update: 2,
  destroy: 3,
  expectNew: 4,
  expectUpdate: 5,
  expectDestroy: 6,
  own: 7,
  overruns: 8,
  decodeErrors: 9,
  unknown: 10,
  receiveErrors: 11,
});

const linkCounters = (): LinkCounters => ({
  batches: 1,
  batchMessages: 2,
  batchFailures: 3,
  dumps: 4,
  dumpEntries: 5,
  decodeErrors: 6,
  timeouts: 7,
});

const sequencerCounters = (): FailoverSequencerCounters => ({
  events: 1,
  ignored: 2,
  unparsable: 3,
  transitions: 4,
  superseded: 5,
  stepsRun: 6,
  stepFailures: 7,
});

interface FakeSync extends SyncStatsView {
  node: string;
  inSync: boolean;
}

function emptyParts(): StatsParts<FakeSync> {
  return {
    ready: false,
    node: 'fw1',
    epoch: 7,
    startedAt: 1_000,
    now: 1_000,
    pid: 4242,
    internal: new InternalCache({ limit: 100, filter: ACCEPT_ALL }),
    internalLimit: 100,
    external: new ExternalCache({ limit: 200 }),
    externalLimit: 200,
    sync: undefined,
    inSync: false,
    commit: new CommitRunner({
      external: new ExternalCache({ limit: 1 }),
      link: () => {
        throw new Error('unused');
      },
      heardFrom: () => false,
      now: () => 0,
      log: silentLogger,
    }).stats,
    failover: {
      inject: false,
      purgeTimeoutSeconds: 30,
      trackFile: undefined,
      trackValue: undefined,
      notifyFifo: undefined,
      sequencer: undefined,
    },
    injector: undefined,
    events: undefined,
    link: undefined,
    kernelCounters: { ownKernelEvents: 0, overruns: 0, overrunResyncs: 0 },
    channels: undefined,
    auth: 'none',
    control: undefined,
  };
}

describe('buildStatsSnapshot', () => {
  it('before anything started: placeholders in place of the missing parts', () => {
    const p = emptyParts();
    const s = buildStatsSnapshot(p);
    const ic = new InternalCache({ limit: 1, filter: ACCEPT_ALL });
    const ec = new ExternalCache({ limit: 1 });
    expect(JSON.stringify(s)).toBe(
      JSON.stringify({
        ready: false,
        node: 'fw1',
        epoch: 7,
        uptimeSeconds: 0,
        pid: 4242,
        internal: { entries: 0, limit: 100, ...ic.counters, expectations: { entries: 0, ...ic.expectCounters } },
        external: {
          entries: 0,
          limit: 200,
          ...ec.counters,
          origins: {},
          expectations: { entries: 0, ...ec.expectCounters },
          peerEntries: {
            filtered: { protocol: 0, address: 0, 'tcp-state': 0 },
            statusStripped: 0,
            timeoutCapped: 0,
            overShare: 0,
            expectFiltered: 0,
          },
        },
        peers: [],
        commit: {
          commits: 0,
          running: false,
          committed: 0,
          updated: 0,
          unchanged: 0,
          failed: 0,
          lastDurationMs: null,
          last: null,
        },
        failover: {
          inSync: false,
          inject: false,
          purgeTimeoutSeconds: 30,
          trackFile: null,
          trackValue: null,
          notifyFifo: null,
          keepalivedState: null,
          sequencer: null,
        },
        inject: { enabled: false },
        kernel: {
          ownEventsFiltered: false,
          eventFilter: { attached: false, rules: [], userspaceOnly: [], instructions: 0, refused: null },
          events: {},
          link: {},
          receiveBufferBytes: 0,
          readAhead: { limitBytes: 0, heldBytes: 0, maxHeldBytes: 0, limitReached: 0 },
          ownKernelEvents: 0,
          overruns: 0,
          overrunResyncs: 0,
        },
        sync: { channels: [], activeChannel: null, auth: 'none' },
        control: {},
        flowlog: { enabled: false },
      }),
    );
    expect(Object.keys(s.sync)).toEqual(['peers', 'channels', 'activeChannel', 'auth']);
    expect(s.sync.peers).toBeUndefined();
  });

  it('running: every part in its place and order, counters copied at the time of asking', () => {
    const p = emptyParts();
    const external = new ExternalCache({ limit: 200 });
    external.applyRemote('fw2', 9, 1, 'new', tcp(1));
    const sync: FakeSync = { node: 'fw1', inSync: true, peers: [] };
    const kernelFilter = { attached: true, rules: ['protocol' as const], userspaceOnly: ['address-accept' as const], instructions: 99, refused: 'ENOMEM' };
    const events = {
      counters: eventCounters(),
      ownEventsFiltered: true,
      receiveBuffer: 8192,
      readAhead: { limitBytes: 8192, heldBytes: 0, maxHeldBytes: 4096, limitReached: 1 },
      kernelFilter,
    };
    const link = { counters: linkCounters() };
    const sequencer = { state: 'backup' as const, counters: sequencerCounters() };
    const injectCounters = { created: 1, updated: 2, replaced: 3, deleted: 4, failed: 5, failures: { EPERM: 5 }, batches: 6 };
    const controlCounters = {
      connections: 9,
      requests: 8,
      failedRequests: 1,
      badRequests: 2,
      deadlineClosed: 3,
      outputStalled: 1,
      outputDropped: 6,
      reserveServed: 4,
      refused: 5,
    };
    const channelCounters = { datagramsSent: 1, datagramsReceived: 2, bytesSent: 3, bytesReceived: 4, sendErrors: 0, receiveErrors: 0 };
    const channel = { name: 'l0', kind: 'udp' as const, interfaceName: undefined, link: 'up' as const, active: true, counters: channelCounters };
    const parts: StatsParts<FakeSync> = {
      ...p,
      ready: true,
      now: 3_600,
      external,
      sync,
      inSync: true,
      failover: {
        inject: true,
        purgeTimeoutSeconds: 60,
        trackFile: '/run/ctsyncd.track',
        trackValue: 0,
        notifyFifo: '/run/keepalived.fifo',
        sequencer,
      },
      injector: { queued: 2, counters: injectCounters },
      events,
      link,
      kernelCounters: { ownKernelEvents: 1, overruns: 2, overrunResyncs: 3 },
      channels: { stats: () => [channel], active: 'l0' },
      auth: 'hmac',
      control: { activeConnections: 2, counters: controlCounters },
    };
    const s = buildStatsSnapshot(parts);
    const ic = new InternalCache({ limit: 1, filter: ACCEPT_ALL });
    expect(JSON.stringify(s)).toBe(
      JSON.stringify({
        ready: true,
        node: 'fw1',
        epoch: 7,
        // 2.6 s, rounded.
        uptimeSeconds: 3,
        pid: 4242,
        internal: { entries: 0, limit: 100, ...ic.counters, expectations: { entries: 0, ...ic.expectCounters } },
        external: {
          entries: 1,
          limit: 200,
          ...external.counters,
          origins: { fw2: 1 },
          expectations: { entries: 0, ...external.expectCounters },
          peerEntries: {
            filtered: { protocol: 0, address: 0, 'tcp-state': 0 },
            statusStripped: 0,
            timeoutCapped: 0,
            overShare: 0,
            expectFiltered: 0,
          },
        },
        peers: [],
        commit: {
          commits: 0,
          running: false,
          committed: 0,
          updated: 0,
          unchanged: 0,
          failed: 0,
          lastDurationMs: null,
          last: null,
        },
        failover: {
          inSync: true,
          inject: true,
          purgeTimeoutSeconds: 60,
          trackFile: '/run/ctsyncd.track',
          trackValue: 0,
          notifyFifo: '/run/keepalived.fifo',
          keepalivedState: 'backup',
          sequencer: sequencerCounters(),
        },
        inject: { enabled: true, queued: 2, ...injectCounters },
        kernel: {
          ownEventsFiltered: true,
          eventFilter: { attached: true, rules: ['protocol'], userspaceOnly: ['address-accept'], instructions: 99, refused: 'ENOMEM' },
          events: eventCounters(),
          link: linkCounters(),
          receiveBufferBytes: 8192,
          readAhead: { limitBytes: 8192, heldBytes: 0, maxHeldBytes: 4096, limitReached: 1 },
          ownKernelEvents: 1,
          overruns: 2,
          overrunResyncs: 3,
        },
        sync: { node: 'fw1', inSync: true, channels: [channel], activeChannel: 'l0', auth: 'hmac' },
        control: { open: 2, ...controlCounters },
        flowlog: { enabled: false },
      }),
    );
    // The sync engine's peer list moves to the top; its key stays in place, blanked.
    expect(s.peers).toBe(sync.peers);
    expect(Object.keys(s.sync)).toEqual(['node', 'inSync', 'peers', 'channels', 'activeChannel', 'auth']);
    expect(s.sync.peers).toBeUndefined();
    // Later counts do not move a snapshot already taken.
    events.counters.new = 1000;
    link.counters.dumps = 1000;
    sequencer.counters.stepsRun = 1000;
    // What /metrics reads, typed as it reads it.
    const typed: StatsSnapshot = s;
    expect(typed.kernel.events.new).toBe(1);
    expect(typed.kernel.link.dumps).toBe(4);
    expect(typed.failover.sequencer?.stepsRun).toBe(6);
    expect(typed.kernel.overrunResyncs).toBe(3);
  });
});

describe('Daemon.stats()', () => {
  it('keeps the keys of `ctsyncd stats --json`, before and after start', async () => {
    const cfg = parseConfig(
      ['node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  multicast: { interface: sync0 }', '  auth: none', 'failover: { inject: true }', ''].join('\n'),
      'stats-test.yaml',
    );
    const kernel = new FakeKernel();
    const daemon = new Daemon(cfg, { kernelTransport: kernel.openSocket, channels: [new LoopChannel('l0')], noControl: true, localAddresses: [] });
    const top = ['ready', 'node', 'epoch', 'uptimeSeconds', 'pid', 'internal', 'external', 'peers', 'commit', 'failover', 'inject', 'kernel', 'sync', 'control', 'flowlog'];
    const failover = ['inSync', 'inject', 'purgeTimeoutSeconds', 'trackFile', 'trackValue', 'notifyFifo', 'keepalivedState', 'sequencer'];
    const kernelKeys = ['ownEventsFiltered', 'eventFilter', 'events', 'link', 'receiveBufferBytes', 'readAhead', 'ownKernelEvents', 'overruns', 'overrunResyncs'];
    const json = () => JSON.parse(JSON.stringify(daemon.ops.stats())) as Record<string, Record<string, unknown>>;
    const before = json();
    expect(Object.keys(before)).toEqual(top);
    expect(Object.keys(before.failover!)).toEqual(failover);
    expect(Object.keys(before.kernel!)).toEqual(kernelKeys);
    expect(before.kernel!.events).toEqual({});
    expect(before.sync).toEqual({ channels: [], activeChannel: null, auth: 'none' });
    try {
      await daemon.start();
      kernel.packetNew(tcp(1));
      await daemon.ops.failover('fault');
      const after = json();
      expect(Object.keys(after)).toEqual(top);
      expect(Object.keys(after.failover!)).toEqual(failover);
      expect(Object.keys(after.kernel!)).toEqual(kernelKeys);
      expect(after.failover!.keepalivedState).toBe('fault');
      // The filter's rules ride on the event socket's kernel program (loopback at least).
      expect(after.kernel!.eventFilter).toMatchObject({ attached: true, rules: ['address-ignore'], userspaceOnly: [], refused: null });
      expect(after.inject).toMatchObject({ enabled: true, queued: 0 });
      expect(Object.keys(after.sync!).slice(-3)).toEqual(['channels', 'activeChannel', 'auth']);
      expect(after.sync!.peers).toBeUndefined();
      expect(after.sync!.node).toBe('fw1');
      expect(Object.keys(after.kernel!.events as object)).toContain('new');
    } finally {
      await daemon.stop();
    }
  });

  it('kernel.filterEvents: false leaves every rule to userspace; our own events are still dropped in the kernel', async () => {
    const cfg = parseConfig(
      ['node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  multicast: { interface: sync0 }', '  auth: none', 'kernel: { filterEvents: false }', ''].join('\n'),
      'stats-test.yaml',
    );
    const daemon = new Daemon(cfg, { kernelTransport: new FakeKernel().openSocket, channels: [new LoopChannel('l0')], noControl: true, localAddresses: [] });
    try {
      await daemon.start();
      const k = JSON.parse(JSON.stringify(daemon.ops.stats())).kernel as Record<string, unknown>;
      expect(k.ownEventsFiltered).toBe(true);
      expect(k.eventFilter).toEqual({ attached: true, rules: [], userspaceOnly: [], instructions: 6, refused: null });
    } finally {
      await daemon.stop();
    }
  });
});
