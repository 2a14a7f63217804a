// Two real daemons in their own namespaces on a veth sync link: what fw1's
// kernel holds must appear in fw2's external cache, with multicast and UDP.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { tcpEntry } from './helpers/entries.js';
import { Cluster, waitFor } from './helpers/cluster.js';

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

for (const transport of ['multicast', 'udp'] as const) {
  describe(`replication over ${transport}`, () => {
    it('20,000 entries, then updates and deletes, reach the peer', async () => {
      cluster = await Cluster.create({ nodes: 2, transport });
      cluster.start('fw1');
      cluster.start('fw2');
      await cluster.waitReady('fw1');
      await cluster.waitReady('fw2');

      const link = new ConntrackLink({ netns: cluster.node('fw1').ns.path });
      links.push(link);
      const N = 20_000;
      const items: BatchItem[] = [];
      for (let i = 0; i < N; i++) items.push({ op: 'create', entry: tcpEntry(i) });
      const t0 = Date.now();
      const res = await link.batch(items);
      expect(res.ok).toBe(N);
      const c = cluster;
      await waitFor(
        async () => (await externalCount(c, 'fw2')) === N,
        `fw2 external = ${N}`,
        60_000,
        () => c.node('fw2').stderr.join('').slice(-2000),
      );
      console.log(`${transport}: ${N} entries replicated in ${Date.now() - t0} ms`);
      const ext = await cluster.dump('fw2', 'external');
      expect(ext.length).toBe(N);
      const byKey = new Map(ext.map((e) => [`${e.src}:${e.sport}`, e]));
      for (const i of [0, 1, 257, 12_345, N - 1]) {
        const e = tcpEntry(i);
        const got = byKey.get(`${e.orig.src}:${e.orig.sport}`);
        expect(got).toMatchObject({
          proto: 'tcp',
          src: e.orig.src,
          dst: '10.97.0.1',
          sport: e.orig.sport,
          dport: 443,
          reply: { src: '10.97.0.1', dst: e.orig.src, sport: 443, dport: e.orig.sport },
          state: 'ESTABLISHED',
          zone: 0,
          origin: 'fw1',
        });
        expect(got!.timeout as number).toBeGreaterThan(3000);
      }
      // fw1's own view: its internal cache holds them, its external cache nothing.
      const s1 = (await cluster.request('fw1', 'stats')) as {
        internal: { entries: number };
        external: { entries: number };
      };
      expect(s1.internal.entries).toBe(N);
      expect(s1.external.entries).toBe(0);

      // A mark change on 100 entries propagates.
      const upd = await link.batch(
        Array.from({ length: 100 }, (_, i) => ({ op: 'update' as const, entry: tcpEntry(i, { mark: 77 }) })),
      );
      expect(upd.ok).toBe(100);
      await waitFor(
        async () => (await c.dump('fw2', 'external')).filter((e) => e.mark === 77).length === 100,
        '100 marks updated on fw2',
        30_000,
      );
      // Deletes propagate.
      const del = await link.batch(
        Array.from({ length: 1000 }, (_, i) => ({ op: 'delete' as const, entry: tcpEntry(N - 1 - i) })),
      );
      expect(del.ok).toBe(1000);
      await waitFor(async () => (await externalCount(c, 'fw2')) === N - 1000, 'deletes on fw2', 30_000);
      const after = new Set((await cluster.dump('fw2', 'external')).map((e) => `${e.src}:${e.sport}`));
      expect(after.has(`${tcpEntry(N - 1).orig.src}:${tcpEntry(N - 1).orig.sport}`)).toBe(false);
      expect(after.has(`${tcpEntry(0).orig.src}:${tcpEntry(0).orig.sport}`)).toBe(true);
    });
  });
}

describe('forged and malformed input', () => {
  it('drops datagrams signed with the wrong key and counts them', async () => {
    cluster = await Cluster.create({
      nodes: 2,
      transport: 'multicast',
      keyFiles: (node, _i, dir) => [join(dir, `${node === 'fw1' ? 'a' : 'b'}.key`)],
    });
    // Two different keys, each as the daemon wants it: random, root's, 0600.
    writeFileSync(join(cluster.dir, 'a.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    writeFileSync(join(cluster.dir, 'b.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    cluster.start('fw1');
    cluster.start('fw2');
    await cluster.waitReady('fw1');
    await cluster.waitReady('fw2');
    const link = new ConntrackLink({ netns: cluster.node('fw1').ns.path });
    links.push(link);
    await link.batch(Array.from({ length: 50 }, (_, i) => ({ op: 'create' as const, entry: tcpEntry(i) })));
    const c = cluster;
    await waitFor(
      async () => {
        const s = (await c.request('fw2', 'stats')) as { sync: { counters: { datagramsDropped: Record<string, number> } } };
        return (s.sync.counters.datagramsDropped.EAUTH ?? 0) > 0;
      },
      'EAUTH drops counted on fw2',
      15_000,
    );
    const s2 = (await cluster.request('fw2', 'stats')) as { external: { entries: number }; peers: unknown[] };
    expect(s2.external.entries).toBe(0);
    expect(s2.peers).toEqual([]);
  });

  it('answers a malformed control request with an error and stays up', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp' });
    cluster.start('fw1');
    await cluster.waitReady('fw1');
    const sock = cluster.node('fw1').socket;
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const s = connect(sock);
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(chunks)));
      const body = Buffer.from('{this is not json');
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(body.length);
      s.write(Buffer.concat([hdr, body]));
      setTimeout(() => s.end(), 500);
    });
    expect(reply.length).toBeGreaterThan(4);
    const msg = JSON.parse(reply.subarray(4, 4 + reply.readUInt32BE(0)).toString()) as {
      ok: boolean;
      error: { code: string };
    };
    expect(msg.ok).toBe(false);
    expect(msg.error.code).toBe('EBAD_REQUEST');
    await expect(cluster.request('fw1', 'bogus-command')).rejects.toMatchObject({ code: 'EUNKNOWN_COMMAND' });
    const s = (await cluster.request('fw1', 'stats')) as { ready: boolean };
    expect(s.ready).toBe(true);
  });

  it('starts over a stale control socket after kill -9, and refuses to start beside a live daemon', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp' });
    const c = cluster;
    cluster.start('fw1');
    await cluster.waitReady('fw1');
    expect(await cluster.stop('fw1', 'SIGKILL')).toBeNull();
    expect(existsSync(cluster.node('fw1').socket)).toBe(true);
    cluster.start('fw1');
    await cluster.waitReady('fw1');
    // A second daemon with the same config must refuse: the first still answers.
    const second = spawnSync(
      'ip',
      ['netns', 'exec', cluster.node('fw1').ns.name, 'node', 'bin/ctsyncd', '--config', cluster.node('fw1').configPath],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/already running|EALREADY_RUNNING/i);
    const s = (await c.request('fw1', 'stats')) as { ready: boolean };
    expect(s.ready).toBe(true);
    // SIGTERM stops it cleanly and removes the socket.
    expect(await cluster.stop('fw1', 'SIGTERM')).toBe(0);
    expect(existsSync(cluster.node('fw1').socket)).toBe(false);
  });
});
