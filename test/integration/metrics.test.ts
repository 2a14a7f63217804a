// /metrics on real daemons: two nodes in their own namespaces (each with its
// own loopback, so both serve metrics.listen on it), entries replicated and
// committed, then every ctsyncd metric compared with `ctsyncd stats --json`
// read just before and just after the scrape; /healthz and /readyz; the
// Grafana dashboard's queries checked against the real scrape; and a taken
// metrics.listen refusing to start with the address in the error.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { COMMIT_DURATION, METRIC_DEFS, type StatsSnapshot } from '../../src/stats/index.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { tcpEntry } from './helpers/entries.js';
import { loadDashboard, missingDashboardMetrics, parseExposition, sampleValue, type Exposition } from '../unit/metrics-helpers.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');
const N = 500;
/** fw1 on IPv4, fw2 on IPv6: both forms of metrics.listen. */
const LISTEN: Record<string, { yaml: string; url: string }> = {
  fw1: { yaml: '127.0.0.1:9469', url: 'http://127.0.0.1:9469' },
  fw2: { yaml: '"[::1]:9469"', url: 'http://[::1]:9469' },
};

/** Runs in the node's namespace: its 127.0.0.1 / ::1 are not ours. */
const FETCH = `
const [url, method] = process.argv.slice(1);
const r = await fetch(url, { method, signal: AbortSignal.timeout(10000) });
process.stdout.write(JSON.stringify({ status: r.status, type: r.headers.get('content-type'), body: await r.text() }));
`;

interface HttpResult {
  status: number;
  type: string | null;
  body: string;
}

async function http(c: Cluster, id: string, path: string, method = 'GET'): Promise<HttpResult> {
  const r = await c.node(id).ns.exec('node', ['--input-type=module', '-e', FETCH, `${LISTEN[id]!.url}${path}`, method], {
    timeoutMs: 30_000,
  });
  return JSON.parse(r.stdout) as HttpResult;
}

/** `ctsyncd stats --json`, as an operator runs it. */
async function statsJson(c: Cluster, id: string): Promise<StatsSnapshot> {
  const n = c.node(id);
  const r = await run('ip', ['netns', 'exec', n.ns.name, 'node', BIN, '--config', n.configPath, 'stats', '--json'], {
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(r.stdout) as StatsSnapshot;
}

/** Gauges that move on their own between two reads (timers, in-flight messages): only checked for presence. */
const VOLATILE = new Set([
  'ctsyncd_peer_last_seen_age_seconds',
  'ctsyncd_sync_resend_queue_length',
  'ctsyncd_sync_send_queue_length',
  'ctsyncd_peer_unacked_messages',
  // The stats requests around the scrape are control connections themselves: open while they ask, not during the scrape.
  'ctsyncd_control_connections',
]);

/**
 * Every ctsyncd metric against two stats reads around the scrape: a counter
 * lies between them (they only grow), a gauge equals one of them or lies
 * between. Returns mismatches as readable lines.
 */
function compare(e: Exposition, before: StatsSnapshot, after: StatsSnapshot): string[] {
  const bad: string[] = [];
  for (const def of METRIC_DEFS) {
    const samples = (s: StatsSnapshot) => {
      const r = def.read(s);
      return typeof r === 'number' ? [[{}, r] as const] : r;
    };
    const a = samples(before);
    const b = samples(after);
    const got = e.samples.filter((x) => x.name === def.name);
    if (got.length !== a.length && got.length !== b.length) {
      bad.push(`${def.name}: ${got.length} samples, stats give ${a.length} then ${b.length}`);
      continue;
    }
    for (const [labels, v1] of a) {
      const v = sampleValue(e, def.name, labels);
      const v2 = b.find(([l]) => JSON.stringify(l) === JSON.stringify(labels))?.[1] ?? v1;
      const where = `${def.name}${JSON.stringify(labels)} = ${String(v)}, stats ${v1} then ${v2}`;
      if (v === undefined) bad.push(`${where}: missing`);
      else if (VOLATILE.has(def.name)) {
        if (!(v >= 0)) bad.push(where);
      } else if (!(v >= Math.min(v1, v2) && v <= Math.max(v1, v2))) bad.push(where);
    }
  }
  return bad;
}

describe('metrics endpoint on real daemons', () => {
  let c: Cluster;
  let link: ConntrackLink;

  beforeAll(async () => {
    c = await Cluster.create({
      nodes: 2,
      transport: 'udp',
      extraYaml: (id) => `metrics: { enabled: true, listen: ${LISTEN[id]!.yaml} }`,
    });
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    link = new ConntrackLink({ netns: c.node('fw1').ns.path });
  }, 60_000);

  afterAll(async () => {
    link?.close();
    await c?.destroy();
  });

  it('serves /healthz and /readyz, and /metrics in the text format', async () => {
    for (const id of ['fw1', 'fw2']) {
      expect(await http(c, id, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
      expect(await http(c, id, '/readyz')).toMatchObject({ status: 200, body: 'ready\n' });
      const m = await http(c, id, '/metrics');
      expect(m.status).toBe(200);
      expect(m.type).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(parseExposition(m.body).types.get('ctsyncd_ready')).toBe('gauge');
      expect((await http(c, id, '/nope')).status).toBe(404);
      expect((await http(c, id, '/metrics', 'POST')).status).toBe(405);
    }
  });

  it('replicated, committed and dropped traffic: every metric equals `ctsyncd stats --json`', async () => {
    const items: BatchItem[] = [];
    for (let i = 0; i < N; i++) items.push({ op: 'create', entry: tcpEntry(i) });
    expect((await link.batch(items)).ok).toBe(N);
    await waitFor(
      async () => (await c.request('fw2', 'stats') as StatsSnapshot).external.entries === N,
      `fw2 external = ${N}`,
      60_000,
      () => c.node('fw2').stderr.join('').slice(-2000),
    );
    // fw2 commits the peer's state into its kernel: one commit-duration observation.
    const report = (await c.request('fw2', 'commit')) as { committed: number; failed: number };
    expect(report).toMatchObject({ committed: N, failed: 0 });
    // A datagram that is not ctsyncd traffic, from fw1's sync address: fw2 drops it (reason magic).
    const send = `
import { createSocket } from 'node:dgram';
const s = createSocket('udp4');
s.bind({ address: process.argv[1] }, () => s.send(Buffer.from('not ctsyncd'), 3780, process.argv[2], () => s.close()));`;
    await c.node('fw1').ns.exec('node', ['--input-type=module', '-e', send, c.node('fw1').syncAddress, c.node('fw2').syncAddress]);
    await waitFor(
      async () => ((await c.request('fw2', 'stats')) as StatsSnapshot).sync.counters?.datagramsDropped.EMAGIC === 1,
      'the garbage datagram dropped on fw2',
      30_000,
    );

    for (const id of ['fw1', 'fw2']) {
      const before = await statsJson(c, id);
      const page = await http(c, id, '/metrics');
      const after = await statsJson(c, id);
      const e = parseExposition(page.body);
      expect(compare(e, before, after), id).toEqual([]);
      // The comparison would notice a disagreement.
      const [b1, a1] = [structuredClone(before), structuredClone(after)];
      b1.internal.entries += 1;
      a1.internal.entries += 1;
      expect(compare(e, b1, a1)).toEqual([expect.stringMatching(/^ctsyncd_cache_entries\{"cache":"internal"\}/)]);
      // Quiet by now: these do not move, so they are equal, not just in range.
      const v = (name: string, labels: Record<string, string> = {}) => sampleValue(e, name, labels);
      expect(v('ctsyncd_ready')).toBe(1);
      expect(v('ctsyncd_cache_entries', { cache: 'internal' })).toBe(after.internal.entries);
      expect(v('ctsyncd_cache_entries', { cache: 'external' })).toBe(after.external.entries);
      expect(v('ctsyncd_kernel_events_total', { type: 'new' })).toBe(after.kernel.events.new);
      expect(v('ctsyncd_peer_up', { peer: id === 'fw1' ? 'fw2' : 'fw1' })).toBe(1);
      expect(v(`${COMMIT_DURATION}_count`)).toBe(after.commit.commits);
    }

    const e1 = parseExposition((await http(c, 'fw1', '/metrics')).body);
    expect(sampleValue(e1, 'ctsyncd_cache_entries', { cache: 'internal' })).toBe(N);
    expect(sampleValue(e1, 'ctsyncd_kernel_events_total', { type: 'new' })).toBe(N);
    expect(sampleValue(e1, 'ctsyncd_sync_messages_total', { direction: 'sent' })).toBeGreaterThanOrEqual(N);
    const e2 = parseExposition((await http(c, 'fw2', '/metrics')).body);
    expect(sampleValue(e2, 'ctsyncd_cache_entries', { cache: 'external' })).toBe(N);
    expect(sampleValue(e2, 'ctsyncd_commit_entries_total', { result: 'committed' })).toBe(N);
    expect(sampleValue(e2, `${COMMIT_DURATION}_count`)).toBe(1);
    expect(sampleValue(e2, 'ctsyncd_sync_dropped_datagrams_total', { reason: 'magic' })).toBe(1);
    expect(sampleValue(e2, 'ctsyncd_sync_dropped_datagrams_total', { reason: 'auth' })).toBe(0);
    expect(sampleValue(e2, 'ctsyncd_sync_bytes_total', { link: `udp:${c.node('fw2').syncAddress}`, direction: 'received' })).toBeGreaterThan(0);
    expect(sampleValue(e2, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(e2.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
  });

  it('the Grafana dashboard uses only metrics the daemon serves', async () => {
    const dash = loadDashboard();
    for (const id of ['fw1', 'fw2']) {
      const e = parseExposition((await http(c, id, '/metrics')).body);
      expect(missingDashboardMetrics(dash, e), id).toEqual([]);
    }
  });

  it('a taken metrics.listen stops the daemon from starting, naming the address', async () => {
    const n = c.node('fw1');
    // Same namespace, same metrics.listen as the running fw1; its own control socket.
    const cfg = join(c.dir, 'fw1-second.yaml');
    writeFileSync(cfg, c.configFor(n, 0).replace(n.socket, join(c.dir, 'fw1-second.sock')));
    const r = await run('ip', ['netns', 'exec', n.ns.name, 'node', BIN, '--config', cfg], { timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code, stderr: e.stderr ?? '' }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'ctsyncd: cannot start: cannot serve metrics on 127.0.0.1:9469 (metrics.listen): address already in use (EADDRINUSE)',
    );
    // The running daemon kept its endpoint.
    expect((await http(c, 'fw1', '/healthz')).status).toBe(200);
  });
});
