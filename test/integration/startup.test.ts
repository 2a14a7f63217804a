// A restarted daemon: its first start validates the config in full and keeps
// it in the validated-config cache; the restart takes it from there (no YAML
// parser, no schema), answers ping and comes to hold its peer's entries
// again through the resync it asks for at start. A changed file is a miss
// and validated in full again. No timings are asserted: bench/startup.mjs
// measures them.
import { appendFileSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { tcpEntry } from './helpers/entries.js';
import { Cluster, configCacheEntry, waitFor } from './helpers/cluster.js';

let cluster: Cluster | undefined;
const links: ConntrackLink[] = [];

afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  await cluster?.destroy();
  cluster = undefined;
});

async function externalCount(c: Cluster, id: string): Promise<number> {
  const s = (await c.request(id, 'stats')) as { external: { entries: number } };
  return s.external.entries;
}

/** The `configuration loaded` log line of the node's latest start (text log format). */
function configLine(c: Cluster, id: string): string {
  const lines = c
    .node(id)
    .stderr.join('')
    .split('\n')
    .filter((l) => l.includes('configuration loaded'));
  return lines[lines.length - 1] ?? '';
}

describe('restart with a warm validated-config cache', () => {
  it('answers ping, takes the config from the cache and holds the peer entries again', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp' });
    const c = cluster;
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    const fw2 = c.node('fw2');
    const entry = configCacheEntry(fw2.configPath);
    // A cache left by an earlier run with this very path would make the first start a hit.
    expect(configLine(c, 'fw2')).toMatch(/validatedCache=(absent|stale) cacheStored=ok/);
    const st = statSync(entry);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.getuid?.());

    const link = new ConntrackLink({ netns: c.node('fw1').ns.path });
    links.push(link);
    const N = 500;
    const items: BatchItem[] = [];
    for (let i = 0; i < N; i++) items.push({ op: 'create', entry: tcpEntry(i) });
    expect((await link.batch(items)).ok).toBe(N);
    const log2 = () => fw2.stderr.join('').slice(-3000);
    await waitFor(async () => (await externalCount(c, 'fw2')) === N, `fw2 external = ${N}`, 30_000, log2);

    // Restart fw2: empty, it must get fw1's entries back by itself.
    expect(await c.stop('fw2')).toBe(0);
    fw2.stderr.length = 0;
    c.start('fw2');
    await waitFor(
      () => c.request('fw2', 'ping').then(
        () => true,
        () => false,
      ),
      'fw2 answers ping after the restart',
      20_000,
      log2,
    );
    expect(configLine(c, 'fw2')).toContain('validatedCache=hit');
    await waitFor(async () => (await externalCount(c, 'fw2')) === N, `fw2 external = ${N} again`, 30_000, log2);
    await c.waitReady('fw2');
    const ext = await c.dump('fw2', 'external');
    expect(new Set(ext.map((e) => e.sport))).toEqual(new Set(items.map((i) => i.entry.orig.sport)));

    // A changed file is validated in full again and replaces the entry.
    expect(await c.stop('fw2')).toBe(0);
    appendFileSync(fw2.configPath, '\n# edited\n');
    fw2.stderr.length = 0;
    c.start('fw2');
    await c.waitReady('fw2');
    expect(configLine(c, 'fw2')).toMatch(/validatedCache=stale cacheStored=ok/);
    await waitFor(async () => (await externalCount(c, 'fw2')) === N, `fw2 external = ${N} after the edit`, 30_000, log2);
  });
});
