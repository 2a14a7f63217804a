// Prometheus metrics (src/stats): the exposition read from a fake stats
// source (names, types, labels, values equal to the source), the HTTP
// endpoint, a Daemon on the fake kernel scraped over HTTP against its own
// stats(), and the Grafana dashboard checked against a scrape.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import {
  COMMIT_DURATION,
  CtsyncdMetrics,
  DROP_REASONS,
  formatHostPort,
  METRIC_DEFS,
  MetricsListenError,
  MetricsServer,
  type StatsSnapshot,
} from '../../src/stats/index.js';
import {
  dashboardQueries,
  loadDashboard,
  missingDashboardMetrics,
  parseExposition,
  promqlMetricNames,
  sampleValue,
  seriesNames,
} from './metrics-helpers.js';
import { LoopChannel } from './doubles.js';

/** A snapshot in which every number differs, so a value read from the wrong field shows. */
function fakeSnapshot(): StatsSnapshot {
  let n = 100;
  const next = () => (n += 7);
  const expectInternal = () => ({
    entries: next(),
    created: next(),
    updated: next(),
    unchanged: next(),
    destroyed: next(),
    missing: next(),
    refused: next(),
    noMaster: next(),
    flushed: next(),
    reconciles: next(),
  });
  const externalCounters = () => ({
    created: next(),
    updated: next(),
    deleted: next(),
    missing: next(),
    stale: next(),
    refused: next(),
    bulkRemoved: next(),
    flushed: next(),
    released: next(),
    copyDeleted: next(),
    shadowsRefused: next(),
  });
  return {
    ready: true,
    internal: {
      entries: next(),
      limit: next(),
      created: next(),
      updated: next(),
      unchanged: next(),
      destroyed: next(),
      missing: next(),
      refused: next(),
      filtered: { protocol: next(), address: next(), 'tcp-state': next() },
      flushed: next(),
      reconciles: next(),
      expectations: expectInternal(),
    },
    external: {
      entries: next(),
      limit: next(),
      ...externalCounters(),
      expectations: { entries: next(), ...externalCounters() },
      peerEntries: {
        filtered: { protocol: next(), address: next(), 'tcp-state': next() },
        statusStripped: next(),
        timeoutCapped: next(),
        overShare: next(),
        expectFiltered: next(),
      },
    },
    peers: [
      {
        id: 'fw2',
        state: 'up',
        epoch: 1,
        lastSeenAgeSeconds: 0.3,
        restarts: next(),
        rx: { epoch: 1, expected: 5, known: 5, missing: false, helloSeen: true, synced: true, bulkInProgress: null, wantBulk: false },
        tx: { ackedThrough: 4, unacked: next(), rtoMs: 200, stalled: false, overflowing: false, bulkWanted: false, bulk: null },
      },
      { id: 'fw3', state: 'down', epoch: 9, lastSeenAgeSeconds: 12.5, restarts: next(), rx: null, tx: null },
    ],
    commit: {
      commits: 2,
      running: false,
      committed: next(),
      updated: next(),
      unchanged: next(),
      failed: next(),
      lastDurationMs: 1234,
    },
    failover: {
      inSync: true,
      keepalivedState: 'backup',
      sequencer: { events: next(), ignored: next(), unparsable: next(), transitions: next(), superseded: next(), stepsRun: next(), stepFailures: next() },
    },
    inject: { enabled: true, queued: next(), created: next(), updated: next(), replaced: next(), deleted: next(), failed: next(), failures: {}, batches: next() },
    kernel: {
      ownEventsFiltered: true,
      eventFilter: { attached: true, rules: ['address-ignore', 'tcp-state'], userspaceOnly: ['address-accept'], instructions: 120, refused: null },
      readAhead: { limitBytes: next(), heldBytes: next(), maxHeldBytes: next(), limitReached: next() },
      events: {
        new: next(),
        update: next(),
        destroy: next(),
        expectNew: next(),
        expectUpdate: next(),
        expectDestroy: next(),
        own: next(),
        overruns: next(),
        decodeErrors: next(),
        unknown: next(),
        receiveErrors: next(),
      },
      link: { batches: next(), batchMessages: next(), batchFailures: next(), dumps: next(), dumpEntries: next(), decodeErrors: next(), timeouts: next() },
      receiveBufferBytes: 8 * 1024 * 1024,
      overruns: next(),
      overrunResyncs: next(),
    },
    sync: {
      inSync: true,
      counters: {
        duplicates: next(),
        gapsDetected: next(),
        beyondWindow: next(),
        skippedByBulk: next(),
        orphanBulkEnds: next(),
        heldDropped: next(),
        missedBulks: next(),
        lostMessages: next(),
        incompleteBulks: next(),
        acksReceived: next(),
        nacksReceived: next(),
        badRanges: next(),
        staleNacks: next(),
        nacksCoveredByBulk: next(),
        retransmits: next(),
        retransmitTimeouts: next(),
        resendOverflows: next(),
        resyncsForGap: next(),
        bulksCoalesced: next(),
        datagramsReceived: next(),
        datagramsDropped: { EAUTH: next(), ECLUSTER: next(), EFUTURE: next() },
        ownDatagrams: next(),
        staleEpochDatagrams: next(),
        epochRollovers: next(),
        datagramsNotLive: next(),
        warningsSuppressed: next(),
        challengesSent: next(),
        challengesReceived: next(),
        challengesAnswered: next(),
        challengesIgnored: next(),
        responsesAccepted: next(),
        responsesIgnored: next(),
        unverifiedDatagrams: next(),
        staleRequests: next(),
        messagesReceived: next(),
        unknownMessages: next(),
        applied: next(),
        datagramsSent: next(),
        acksSent: next(),
        nacksSent: next(),
        nackedMessages: next(),
        alivesSent: next(),
        hellosSent: next(),
        hellosReceived: next(),
        helloAcksReceived: next(),
        resyncRequestsSent: next(),
        resyncRequestsReceived: next(),
        bulksSent: next(),
        bulkEntriesSent: next(),
        bulksWanted: { request: 1, hello: 2, restart: 3, gap: 4 },
        refreshes: next(),
        bulksStarted: next(),
        bulksReceived: next(),
        bulkStaleRemoved: next(),
      },
      sender: { queued: next(), merged: next(), messagesSent: next(), datagramsSent: next(), vanished: next(), unencodable: next(), queueLength: next() },
      resendQueue: { length: next(), capacity: 131072 },
      peerCounters: { ups: next(), downs: next(), restarts: next() },
      admission: { nodes: ['fw1', 'fw2', 'fw3'], maxNodes: 16, tracked: 2, receivers: 1, counters: { unknownNode: next(), nodeLimit: next(), pruned: next() } },
      channels: [
        {
          name: 'mcast0',
          kind: 'multicast',
          interfaceName: 'sync0',
          link: 'up',
          active: true,
          counters: {
            datagramsSent: next(),
            datagramsReceived: next(),
            bytesSent: next(),
            bytesReceived: next(),
            sendErrors: next(),
            receiveErrors: next(),
            droppedOwnSource: next(),
            droppedNotPeer: 0,
          },
        },
        {
          name: 'udp-backup',
          kind: 'udp',
          interfaceName: 'sync1',
          link: 'down',
          active: false,
          counters: {
            datagramsSent: next(),
            datagramsReceived: next(),
            bytesSent: next(),
            bytesReceived: next(),
            sendErrors: next(),
            receiveErrors: next(),
            droppedOwnSource: 0,
            droppedNotPeer: next(),
          },
        },
      ],
      auth: 'none',
    },
    // Explicit: ok and deadline are differences, which must stay positive.
    control: {
      open: 11,
      connections: 1013,
      requests: 1000,
      failedRequests: 17,
      badRequests: 19,
      deadlineClosed: 500,
      outputStalled: 23,
      outputDropped: 37,
      reserveServed: 29,
      refused: 31,
    },
  };
}

/** Label names a ctsyncd metric may carry: all bounded (no address, port or connection). */
const BOUNDED_LABELS = new Set(['mode', 'cache', 'op', 'reason', 'type', 'kind', 'result', 'direction', 'link', 'peer', 'to', 'state', 'version', 'node_version', 'le', 'rule', 'field']);

describe('CtsyncdMetrics exposition', () => {
  it('shows every metric with its type, bounded labels, and the value of its source field', async () => {
    const snap = fakeSnapshot();
    const m = new CtsyncdMetrics(() => snap, { version: '9.9.9' });
    const e = parseExposition(await m.scrape());

    for (const def of METRIC_DEFS) {
      expect(def.name, def.name).toMatch(/^ctsyncd_[a-z][a-z0-9_]*$/);
      expect(e.types.get(def.name), def.name).toBe(def.type);
      if (def.type === 'counter') expect(def.name).toMatch(/_total$/);
      else expect(def.name).not.toMatch(/_total$/);
      const read = def.read(snap);
      const want = typeof read === 'number' ? [[{}, read] as const] : read;
      const got = e.samples.filter((s) => s.name === def.name);
      expect(got.length, def.name).toBe(want.length);
      for (const [labels, value] of want) {
        expect(Object.keys(labels).sort(), def.name).toEqual([...def.labelNames].sort());
        expect(sampleValue(e, def.name, labels), `${def.name} ${JSON.stringify(labels)}`).toBe(value);
      }
    }
    for (const s of e.samples.filter((x) => x.name.startsWith('ctsyncd_'))) {
      for (const [k, v] of Object.entries(s.labels)) {
        expect(BOUNDED_LABELS.has(k), `${s.name} label ${k}`).toBe(true);
        // Nothing per connection: no address or port ever appears as a label value.
        expect(v).not.toMatch(/^\d+\.\d+\.\d+\.\d+$|:\d+$/);
      }
    }
    // _total only on counters (prom-client's own nodejs_active_*_total gauges are not ours to rename).
    for (const [name, type] of e.types) {
      if (name.endsWith('_total') && !name.startsWith('nodejs_active_')) expect(type, name).toBe('counter');
    }
    expect([...e.types.keys()].filter((n) => n.startsWith('ctsyncd_'))).toHaveLength(METRIC_DEFS.length + 2);
  });

  it('reads the fields independently of METRIC_DEFS (spot checks of the acceptance list)', async () => {
    const s = fakeSnapshot();
    const e = parseExposition(await new CtsyncdMetrics(() => s).scrape());
    const v = (name: string, labels: Record<string, string> = {}) => sampleValue(e, name, labels);
    expect(v('ctsyncd_cache_entries', { cache: 'internal' })).toBe(s.internal.entries);
    expect(v('ctsyncd_cache_entries', { cache: 'external' })).toBe(s.external.entries);
    expect(v('ctsyncd_cache_refused_total', { cache: 'internal' })).toBe(s.internal.refused);
    expect(v('ctsyncd_cache_refused_total', { cache: 'external' })).toBe(s.external.refused);
    expect(v('ctsyncd_kernel_events_total', { type: 'new' })).toBe(s.kernel.events.new);
    expect(v('ctsyncd_kernel_events_total', { type: 'destroy' })).toBe(s.kernel.events.destroy);
    expect(v('ctsyncd_kernel_overruns_total')).toBe(s.kernel.overruns);
    expect(v('ctsyncd_kernel_overrun_resyncs_total')).toBe(s.kernel.overrunResyncs);
    expect(v('ctsyncd_kernel_receive_buffer_bytes')).toBe(8 * 1024 * 1024);
    const mc = s.sync.channels[0]!.counters;
    const udp = s.sync.channels[1]!.counters;
    expect(v('ctsyncd_sync_datagrams_total', { link: 'mcast0', direction: 'sent' })).toBe(mc.datagramsSent);
    expect(v('ctsyncd_sync_datagrams_total', { link: 'udp-backup', direction: 'received' })).toBe(udp.datagramsReceived);
    expect(v('ctsyncd_sync_bytes_total', { link: 'mcast0', direction: 'received' })).toBe(mc.bytesReceived);
    expect(v('ctsyncd_sync_link_up', { link: 'udp-backup' })).toBe(0);
    expect(v('ctsyncd_sync_link_active', { link: 'mcast0' })).toBe(1);
    const c = s.sync.counters!;
    expect(v('ctsyncd_sync_messages_total', { direction: 'sent' })).toBe(s.sync.sender!.messagesSent);
    expect(v('ctsyncd_sync_messages_total', { direction: 'received' })).toBe(c.messagesReceived);
    expect(v('ctsyncd_sync_acks_total', { direction: 'sent' })).toBe(c.acksSent);
    expect(v('ctsyncd_sync_nacks_total', { direction: 'received' })).toBe(c.nacksReceived);
    expect(v('ctsyncd_sync_retransmits_total')).toBe(c.retransmits);
    expect(v('ctsyncd_sync_resend_queue_length')).toBe(s.sync.resendQueue!.length);
    expect(v('ctsyncd_sync_dropped_datagrams_total', { reason: 'auth' })).toBe(c.datagramsDropped.EAUTH);
    expect(v('ctsyncd_sync_dropped_datagrams_total', { reason: 'cluster' })).toBe(c.datagramsDropped.ECLUSTER);
    // Every known reason exists from the start; an unknown future code still gets a readable label.
    expect(v('ctsyncd_sync_dropped_datagrams_total', { reason: 'version' })).toBe(0);
    expect(v('ctsyncd_sync_dropped_datagrams_total', { reason: 'decode' })).toBe(0);
    expect(v('ctsyncd_sync_dropped_datagrams_total', { reason: 'future' })).toBe(c.datagramsDropped.EFUTURE);
    expect(Object.values(DROP_REASONS)).toEqual(expect.arrayContaining(['auth', 'version', 'decode', 'cluster']));
    expect(v('ctsyncd_peer_up', { peer: 'fw2' })).toBe(1);
    expect(v('ctsyncd_peer_up', { peer: 'fw3' })).toBe(0);
    expect(v('ctsyncd_peer_last_seen_age_seconds', { peer: 'fw3' })).toBe(12.5);
    expect(v('ctsyncd_peer_unacked_messages', { peer: 'fw2' })).toBe(s.peers[0]!.tx!.unacked);
    expect(v('ctsyncd_peer_unacked_messages', { peer: 'fw3' })).toBeUndefined();
    expect(v('ctsyncd_commit_entries_total', { result: 'committed' })).toBe(s.commit.committed);
    expect(v('ctsyncd_commit_entries_total', { result: 'failed' })).toBe(s.commit.failed);
    expect(v('ctsyncd_commit_last_duration_seconds')).toBe(1.234);
    expect(v('ctsyncd_failover_state', { state: 'backup' })).toBe(1);
    expect(v('ctsyncd_failover_state', { state: 'primary' })).toBe(0);
    expect(v('ctsyncd_inject_entries_total', { result: 'replaced' })).toBe(s.inject.replaced);
    expect(v('ctsyncd_ready')).toBe(1);
    const adm = s.sync.admission!.counters;
    expect(v('ctsyncd_sync_refused_datagrams_total', { reason: 'unknown_node' })).toBe(adm.unknownNode);
    expect(v('ctsyncd_sync_refused_datagrams_total', { reason: 'node_limit' })).toBe(adm.nodeLimit);
    expect(v('ctsyncd_sync_pruned_peers_total')).toBe(adm.pruned);
    expect(v('ctsyncd_sync_tracked_peers')).toBe(2);
    expect(v('ctsyncd_sync_channel_dropped_datagrams_total', { link: 'udp-backup', reason: 'not_peer' })).toBe(udp.droppedNotPeer);
    expect(v('ctsyncd_sync_channel_dropped_datagrams_total', { link: 'mcast0', reason: 'own' })).toBe(mc.droppedOwnSource);
    const pe = s.external.peerEntries;
    expect(v('ctsyncd_peer_entries_refused_total', { reason: 'address' })).toBe(pe.filtered.address);
    expect(v('ctsyncd_peer_entries_refused_total', { reason: 'share' })).toBe(pe.overShare);
    expect(v('ctsyncd_peer_entries_adjusted_total', { field: 'status' })).toBe(pe.statusStripped);
    expect(v('ctsyncd_peer_entries_adjusted_total', { field: 'timeout' })).toBe(pe.timeoutCapped);
    expect(v('ctsyncd_sync_auth', { mode: 'none' })).toBe(1);
    expect(v('ctsyncd_sync_auth', { mode: 'hmac' })).toBe(0);
    const ctl = s.control;
    expect(v('ctsyncd_control_connections')).toBe(ctl.open);
    expect(v('ctsyncd_control_requests_total', { result: 'ok' })).toBe(1000 - ctl.failedRequests!);
    expect(v('ctsyncd_control_requests_total', { result: 'bad' })).toBe(ctl.badRequests);
    expect(v('ctsyncd_control_reserve_requests_total')).toBe(ctl.reserveServed);
    expect(v('ctsyncd_control_dropped_connections_total', { reason: 'deadline' })).toBe(500 - ctl.outputStalled!);
    expect(v('ctsyncd_control_dropped_connections_total', { reason: 'unread_reply' })).toBe(ctl.outputStalled);
    expect(v('ctsyncd_control_dropped_connections_total', { reason: 'refused' })).toBe(ctl.refused);
    expect(v('ctsyncd_control_dropped_connections_total', { reason: 'unread_limit' })).toBe(ctl.outputDropped);
  });

  it('counters follow the source at each scrape (set, not accumulated), labels come and go with it', async () => {
    const s = fakeSnapshot();
    const m = new CtsyncdMetrics(() => s, { defaultMetrics: false });
    await m.scrape();
    await m.scrape();
    s.kernel.overruns = 5;
    s.sync.counters!.datagramsDropped = { EAUTH: 3 };
    s.peers = s.peers.slice(0, 1);
    const e = parseExposition(await m.scrape());
    expect(sampleValue(e, 'ctsyncd_kernel_overruns_total')).toBe(5);
    expect(sampleValue(e, 'ctsyncd_sync_dropped_datagrams_total', { reason: 'auth' })).toBe(3);
    expect(sampleValue(e, 'ctsyncd_sync_dropped_datagrams_total', { reason: 'future' })).toBeUndefined();
    expect(e.samples.filter((x) => x.name === 'ctsyncd_peer_up').map((x) => x.labels.peer)).toEqual(['fw2']);
  });

  it('one snapshot per scrape', async () => {
    let calls = 0;
    const m = new CtsyncdMetrics(
      () => {
        calls++;
        return fakeSnapshot();
      },
      { defaultMetrics: false },
    );
    await m.scrape();
    expect(calls).toBe(1);
  });

  it('a daemon not started yet (no sync engine, no kernel socket) scrapes as zeros', async () => {
    const s = fakeSnapshot();
    const bare: StatsSnapshot = {
      ...s,
      ready: false,
      peers: [],
      inject: { enabled: false },
      failover: { inSync: false, keepalivedState: null, sequencer: null },
      commit: { ...s.commit, lastDurationMs: null },
      kernel: { ...s.kernel, events: {}, link: {} },
      sync: { channels: [], auth: 'hmac' },
      control: {},
    };
    const e = parseExposition(await new CtsyncdMetrics(() => bare, { defaultMetrics: false }).scrape());
    expect(sampleValue(e, 'ctsyncd_ready')).toBe(0);
    expect(sampleValue(e, 'ctsyncd_kernel_events_total', { type: 'new' })).toBe(0);
    expect(sampleValue(e, 'ctsyncd_sync_acks_total', { direction: 'sent' })).toBe(0);
    expect(sampleValue(e, 'ctsyncd_commit_last_duration_seconds')).toBe(0);
    expect(sampleValue(e, 'ctsyncd_control_requests_total', { result: 'ok' })).toBe(0);
    expect(e.samples.some((x) => x.name === 'ctsyncd_inject_entries_total')).toBe(false);
    expect(e.samples.some((x) => x.name === 'ctsyncd_failover_state')).toBe(false);
    expect(e.types.get('ctsyncd_inject_entries_total')).toBe('counter');
  });

  it('commit duration histogram: one observation per commit, in seconds', async () => {
    const m = new CtsyncdMetrics(fakeSnapshot, { defaultMetrics: false });
    m.observeCommit(1500);
    m.observeCommit(20);
    const e = parseExposition(await m.scrape());
    expect(e.types.get(COMMIT_DURATION)).toBe('histogram');
    expect(sampleValue(e, `${COMMIT_DURATION}_count`)).toBe(2);
    expect(sampleValue(e, `${COMMIT_DURATION}_sum`)).toBeCloseTo(1.52, 9);
    expect(sampleValue(e, `${COMMIT_DURATION}_bucket`, { le: '0.025' })).toBe(1);
    expect(sampleValue(e, `${COMMIT_DURATION}_bucket`, { le: '1' })).toBe(1);
    expect(sampleValue(e, `${COMMIT_DURATION}_bucket`, { le: '2.5' })).toBe(2);
    expect(sampleValue(e, `${COMMIT_DURATION}_bucket`, { le: '+Inf' })).toBe(2);
  });

  it('process and Node.js metrics (event-loop lag, RSS, CPU) and build info', async () => {
    const e = parseExposition(await new CtsyncdMetrics(fakeSnapshot, { version: '1.2.3' }).scrape());
    for (const name of [
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'process_open_fds',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(e.types.has(name), name).toBe(true);
    }
    expect(sampleValue(e, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sampleValue(e, 'ctsyncd_build_info', { version: '1.2.3', node_version: process.version })).toBe(1);
    // The default version comes from package.json.
    const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    const d = parseExposition(await new CtsyncdMetrics(fakeSnapshot, { defaultMetrics: false }).scrape());
    expect(sampleValue(d, 'ctsyncd_build_info', { version: pkg.version, node_version: process.version })).toBe(1);
  });
});

describe('METRICS.md', () => {
  it('documents every ctsyncd metric the registry serves, and no other', async () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../METRICS.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `(ctsyncd_[a-z0-9_]+)`/gm)].map((m) => m[1]!);
    const e = parseExposition(await new CtsyncdMetrics(fakeSnapshot, { defaultMetrics: false }).scrape());
    const served = [...e.types.keys()].filter((n) => n.startsWith('ctsyncd_'));
    expect([...documented].sort()).toEqual(served.sort());
  });
});

// --- HTTP --------------------------------------------------------------------

const servers: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const s of servers.splice(0).reverse()) await s.close();
});

async function get(url: string, method = 'GET'): Promise<{ status: number; body: string; type: string | null; allow: string | null }> {
  const r = await fetch(url, { method, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type'), allow: r.headers.get('allow') };
}

describe('MetricsServer', () => {
  it('serves /metrics, /healthz and /readyz; 404 elsewhere, 405 for other methods', async () => {
    let ready = false;
    const metrics = new CtsyncdMetrics(fakeSnapshot, { defaultMetrics: false });
    const server = new MetricsServer({ host: '127.0.0.1', port: 0, metrics, ready: () => ready });
    await server.start();
    servers.push(server);
    const base = `http://127.0.0.1:${server.address()!.port}`;

    const m = await get(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(parseExposition(m.body).types.get('ctsyncd_cache_entries')).toBe('gauge');
    expect((await get(`${base}/metrics?x=1`)).status).toBe(200);

    const h = await get(`${base}/healthz`);
    expect([h.status, h.body]).toEqual([200, 'ok\n']);
    const notReady = await get(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatch(/^not ready: .*\n$/);
    expect(notReady.body.trim().split('\n')).toHaveLength(1);
    ready = true;
    expect(await get(`${base}/readyz`)).toMatchObject({ status: 200, body: 'ready\n' });

    expect((await get(`${base}/`)).status).toBe(404);
    expect((await get(`${base}/metricsx`)).status).toBe(404);
    const post = await get(`${base}/metrics`, 'POST');
    expect([post.status, post.allow]).toEqual([405, 'GET, HEAD']);
    expect((await get(`${base}/readyz`, 'DELETE')).status).toBe(405);
    const head = await get(`${base}/metrics`, 'HEAD');
    expect([head.status, head.body]).toEqual([200, '']);
  });

  it('a port in use is a startup error naming the address', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => blocker.close(() => r())) });
    const port = (blocker.address() as AddressInfo).port;
    const server = new MetricsServer({ host: '127.0.0.1', port, metrics: new CtsyncdMetrics(fakeSnapshot, { defaultMetrics: false }), ready: () => true });
    const err = await server.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MetricsListenError);
    expect((err as MetricsListenError).code).toBe('EMETRICS_LISTEN');
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).toContain('EADDRINUSE');
    await server.close();
  });

  it('formats IPv6 listen addresses in brackets', () => {
    expect(formatHostPort('::1', 9469)).toBe('[::1]:9469');
    expect(formatHostPort('127.0.0.1', 9469)).toBe('127.0.0.1:9469');
    expect(new MetricsListenError('[::1]:9469', Object.assign(new Error('x'), { code: 'EADDRNOTAVAIL' })).message).toBe(
      'cannot serve metrics on [::1]:9469 (metrics.listen): address not available on this host (EADDRNOTAVAIL)',
    );
  });
});

// --- a Daemon on the fake kernel ------------------------------------------------

function tcp(i: number): ConntrackEntry {
  const src = `10.98.${(i >> 8) & 255}.${i & 255}`;
  return {
    family: AF_INET,
    orig: { src, dst: '10.97.0.1', proto: IPPROTO.TCP, sport: 40000, dport: 443 },
    reply: { src: '10.97.0.1', dst: src, proto: IPPROTO.TCP, sport: 443, dport: 40000 },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    protoinfo: { tcp: { state: 3 } },
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function daemonConfig(listen: string, enabled = true) {
  return parseConfig(
    [
      'node: { id: fw1 }',
      'cluster: { id: 1 }',
      'sync:',
      '  multicast: { interface: sync0 }',
      '  auth: none',
      '  reliability: { startupSyncWaitMs: 50 }',
      `metrics: { enabled: ${enabled}, listen: "${listen}" }`,
      '',
    ].join('\n'),
    'metrics-test.yaml',
  );
}

describe('Daemon with metrics', () => {
  it('serves the numbers of its own stats(): caches, kernel events, links, commits', async () => {
    const port = await freePort();
    const kernel = new FakeKernel();
    const channel = new LoopChannel('loop0');
    const daemon = new Daemon(daemonConfig(`127.0.0.1:${port}`), {
      kernelTransport: kernel.openSocket,
      channels: [channel],
      noControl: true,
      localAddresses: [],
    });
    servers.push({ close: () => daemon.stop() });
    kernel.packetNew(tcp(1));
    await daemon.start();
    for (let i = 2; i <= 5; i++) kernel.packetNew(tcp(i));
    kernel.expire(tcp(5));
    await until(() => daemon.internal.size === 4 && daemon.ready, 'events applied and ready');
    expect((await get(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

    // Peer state in the external cache, committed into the fake kernel: one histogram observation.
    for (let i = 10; i < 13; i++) daemon.external.applyRemote('fw2', 7, i, 'new', tcp(i));
    const report = await daemon.ops.commit();
    expect(report.committed).toBe(3);

    const e = parseExposition((await get(`http://127.0.0.1:${port}/metrics`)).body);
    const s: StatsSnapshot = daemon.statsSnapshot();
    const v = (name: string, labels: Record<string, string> = {}) => sampleValue(e, name, labels);
    expect(v('ctsyncd_ready')).toBe(1);
    expect(v('ctsyncd_cache_entries', { cache: 'internal' })).toBe(4);
    expect(v('ctsyncd_cache_entries', { cache: 'external' })).toBe(s.external.entries);
    expect(v('ctsyncd_cache_limit_entries', { cache: 'internal' })).toBe(s.internal.limit);
    expect(v('ctsyncd_kernel_events_total', { type: 'new' })).toBe(s.kernel.events.new);
    expect(v('ctsyncd_kernel_events_total', { type: 'new' })).toBeGreaterThanOrEqual(4);
    expect(v('ctsyncd_kernel_events_total', { type: 'destroy' })).toBe(1);
    expect(v('ctsyncd_kernel_resyncs_total')).toBe(s.internal.reconciles);
    expect(v('ctsyncd_commit_entries_total', { result: 'committed' })).toBe(3);
    expect(v(`${COMMIT_DURATION}_count`)).toBe(s.commit.commits);
    expect(v(`${COMMIT_DURATION}_count`)).toBe(1);
    expect(v(`${COMMIT_DURATION}_sum`)).toBeCloseTo(report.durationMs / 1000, 9);
    // The channel keeps sending (hello, alive): the scrape lies between two reads of stats.
    const sent = v('ctsyncd_sync_datagrams_total', { link: 'loop0', direction: 'sent' })!;
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThanOrEqual(daemon.statsSnapshot().sync.channels[0]!.counters.datagramsSent);
    expect(sent).toBeGreaterThanOrEqual(s.sync.channels[0]!.counters.datagramsSent);
    expect(v('ctsyncd_sync_link_active', { link: 'loop0' })).toBe(1);

    await daemon.stop();
    await expect(fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
  });

  it('start() fails with the address when metrics.listen is taken; noMetrics and enabled: false open nothing', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => blocker.close(() => r())) });
    const port = (blocker.address() as AddressInfo).port;
    const daemon = new Daemon(daemonConfig(`127.0.0.1:${port}`), { kernelTransport: new FakeKernel().openSocket, channels: [new LoopChannel('l')], noControl: true });
    await expect(daemon.start()).rejects.toThrow(`cannot serve metrics on 127.0.0.1:${port} (metrics.listen): address already in use (EADDRINUSE)`);
    await daemon.stop();

    for (const [cfg, noMetrics] of [
      [daemonConfig(`127.0.0.1:${port}`), true],
      [daemonConfig(`127.0.0.1:${port}`, false), false],
    ] as const) {
      const kernel = new FakeKernel();
      const d = new Daemon(cfg, { kernelTransport: kernel.openSocket, channels: [new LoopChannel('l')], noControl: true, noMetrics });
      await d.start();
      await d.stop();
    }
  });
});

// --- the Grafana dashboard ----------------------------------------------------

describe('contrib/grafana/ctsyncd.json', () => {
  it('is a Grafana 10 dashboard on a Prometheus data source variable', () => {
    const d = loadDashboard();
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.uid).toBe('ctsyncd');
    const vars = (d.templating as { list: Array<Record<string, unknown>> }).list;
    expect(vars.find((v) => v.type === 'datasource')).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const panels = d.panels as Array<Record<string, unknown>>;
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource, String(p.title)).toEqual({ type: 'prometheus', uid: '${datasource}' });
      const targets = p.targets as Array<Record<string, unknown>>;
      expect(targets.length, String(p.title)).toBeGreaterThan(0);
      for (const t of targets) expect(t.expr, String(p.title)).toContain('instance=~"$instance"');
    }
    const titles = panels.map((p) => String(p.title));
    for (const t of ['Cache entries', 'Kernel events/s by type', 'Overruns and resyncs', 'Datagrams/s per link', 'Bytes/s per link', 'Acks, NACKs and retransmits', 'Resend queue', 'Dropped datagrams by reason', 'Peer up', 'Peer last seen age', 'Commit duration', 'Commit entries', 'Event loop lag', 'Memory']) {
      expect(titles).toContain(t);
    }
  });

  it('references only metrics that exist (checked against a scrape)', async () => {
    const e = parseExposition(await new CtsyncdMetrics(fakeSnapshot).scrape());
    const d = loadDashboard();
    const queries = dashboardQueries(d);
    expect(queries.length).toBeGreaterThan(20);
    expect(queries.flatMap((q) => q.names).length).toBeGreaterThan(20);
    expect(missingDashboardMetrics(d, e)).toEqual([]);
    // The checker itself: a typo is caught, functions, labels and variables are not names.
    expect(promqlMetricNames('histogram_quantile(0.9, sum by (instance, le) (rate(ctsyncd_commit_duration_secs_bucket{instance=~"$instance"}[$__rate_interval])))')).toEqual([
      'ctsyncd_commit_duration_secs_bucket',
    ]);
    expect(promqlMetricNames('rate(a_total{x="y"}[5m]) / on (instance) group_left b offset 5m > 0 and c')).toEqual(['a_total', 'b', 'c']);
    expect(seriesNames(e).has('ctsyncd_commit_duration_seconds_bucket')).toBe(true);
  });
});
