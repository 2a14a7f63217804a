// Inject mode (conntrackd's DisableExternalCache): a backup writes its
// peers' connections straight into its kernel, so a failover needs no commit.
import { afterAll, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { tcpEntry } from './helpers/entries.js';

const N = 2000;

describe('inject mode', () => {
  let c: Cluster | undefined;
  let link: ConntrackLink | undefined;

  afterAll(async () => {
    link?.close();
    await c?.destroy();
  });

  it('peers’ entries reach the kernel as they arrive; a later commit has nothing to do', async () => {
    c = await Cluster.create({
      nodes: 2,
      transport: 'multicast',
      extraYaml: (id) => (id === 'fw2' ? 'failover: { inject: true }' : ''),
    });
    const cl = c;
    cl.start('fw1');
    cl.start('fw2');
    await cl.waitReady('fw1');
    await cl.waitReady('fw2');
    const count = async () => Number.parseInt((await cl.node('fw2').ns.exec('conntrack', ['-C'])).stdout, 10);
    link = new ConntrackLink({ netns: cl.node('fw1').ns.path });
    const items: BatchItem[] = [];
    for (let i = 0; i < N; i++) items.push({ op: 'create', entry: tcpEntry(i, { mark: 3 }) });
    expect((await link.batch(items)).failures).toEqual({});
    await waitFor(async () => (await count()) === N, `${N} entries in fw2's kernel`, 30_000);
    const mark = (await cl.node('fw2').ns.exec('conntrack', ['-L', '--orig-src', '10.98.0.9'])).stdout;
    expect(mark).toContain('mark=3');

    // Updates and deletes follow.
    const upd: BatchItem[] = [];
    for (let i = 0; i < 10; i++) upd.push({ op: 'update', entry: tcpEntry(i, { mark: 9 }) });
    for (let i = 10; i < 110; i++) upd.push({ op: 'delete', entry: tcpEntry(i) });
    expect((await link.batch(upd)).failures).toEqual({});
    await waitFor(async () => (await count()) === N - 100, 'deletes injected', 20_000);
    await waitFor(
      async () => (await cl.node('fw2').ns.exec('conntrack', ['-L', '--orig-src', '10.98.0.5'])).stdout.includes('mark=9'),
      'update injected',
      20_000,
    );

    const s = (await cl.request('fw2', 'stats')) as {
      inject: { enabled: boolean; created: number; failed: number; deleted: number };
      kernel: { overruns: number };
      internal: { entries: number };
    };
    expect(s.inject).toMatchObject({ enabled: true, created: N, deleted: 100, failed: 0 });
    // Injected entries are ours: not cached as local connections, not replicated back.
    expect(s.internal.entries).toBe(0);
    expect(s.kernel.overruns).toBe(0);
    const r = (await cl.request('fw2', 'commit')) as { committed: number; updated: number; unchanged: number };
    expect(r).toMatchObject({ committed: 0, updated: 0, unchanged: N - 100 });
  }, 90_000);
});
