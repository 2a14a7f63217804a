// Admission and peer-entry checks on real kernels and daemons (issue 14,
// points 3 and 4), over UDP with `sync.auth: none`, the case in which any
// datagram that reaches the port decodes:
//  - a well-formed datagram from an address that is not a configured peer
//    changes nothing (the same bytes from a peer's address are taken);
//  - a flood of forged node ids from a peer's address leaves fw2's RSS and
//    peer table bounded, and fw1 still replicates;
//  - an entry fw2's own filter rejects never lands in its external cache.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { DatagramEncoder } from '../../src/sync/wire/datagram-encoder.js';
import type { WireMessage } from '../../src/sync/wire/types.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { tcpEntry } from './helpers/entries.js';
import type { Netns } from './helpers/netns.js';

const CLUSTER_ID = 7;
const PORT = 3780;

let cluster: Cluster | undefined;
const links: ConntrackLink[] = [];

afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  await cluster?.destroy();
  cluster = undefined;
});

interface Stats {
  pid: number;
  external: { entries: number; peerEntries: { filtered: { address: number } } };
  peers: Array<{ id: string; epoch: number }>;
  sync: {
    counters: { datagramsReceived: number; unverifiedDatagrams: number; challengesSent: number };
    admission: { tracked: number; receivers: number; counters: { unknownNode: number; nodeLimit: number } };
    channels: Array<{ counters: { datagramsReceived: number; droppedNotPeer: number } }>;
  };
}

const stats = async (c: Cluster, id: string) => (await c.request(id, 'stats')) as Stats;

function datagram(node: string, messages: WireMessage[]): Buffer {
  const enc = new DatagramEncoder({ cluster: CLUSTER_ID, node, epoch: randomBytes(4).readUInt32BE(0) || 1, mtu: 1472 });
  for (const m of messages) if (!enc.add(m)) throw new Error('does not fit one datagram');
  return enc.flush()!;
}

// Sends the length-prefixed datagrams of FILE from BIND (any port) to TO:PORT, 200 at a time with a pause, then prints the count.
const SENDER = `
const dgram = require('node:dgram'), fs = require('node:fs');
const [file, bind, to, port] = process.argv.slice(1);
const buf = fs.readFileSync(file);
const s = dgram.createSocket('udp4');
s.bind(0, bind, async () => {
  let o = 0, n = 0;
  while (o < buf.length) {
    const l = buf.readUInt16BE(o);
    const d = buf.subarray(o + 2, o + 2 + l);
    o += 2 + l;
    await new Promise((r) => s.send(d, Number(port), to, r));
    if (++n % 200 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  s.close();
  process.stdout.write(String(n));
});`;

/** Sends `datagrams` from `ns`, source address `bind`, to `to`; resolves with how many went out. */
async function sendFrom(c: Cluster, ns: Netns, bind: string, to: string, datagrams: Buffer[]): Promise<number> {
  const file = join(c.dir, `ad-datagrams-${randomBytes(3).toString('hex')}`);
  const parts: Buffer[] = [];
  for (const d of datagrams) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(d.length);
    parts.push(len, d);
  }
  writeFileSync(file, Buffer.concat(parts));
  const { stdout } = await ns.exec('node', ['-e', SENDER, file, bind, to, String(PORT)], { timeoutMs: 120_000 });
  return Number(stdout);
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

describe('admission over UDP (sync.auth: none)', () => {
  it('a datagram from an address that is no configured peer changes nothing', async () => {
    cluster = await Cluster.create({ nodes: 2, transport: 'udp', topology: 'bridge', tag: 'ad' });
    const c = cluster;
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    const fw2 = c.node('fw2');
    const attacker = await c.addHost('adx', [c.address(66)]);
    // Well formed, cluster 7, unsigned: before admission this entry went straight into fw2's external cache.
    const forged = datagram('fw3', [
      { kind: 'hello', seq: 1 },
      { kind: 'ct-new', seq: 1, entry: { ...tcpEntry(7, { net: 95 }), timeout: 8_589_934, mark: 0x666 } },
    ]);
    const before = await stats(c, 'fw2');
    expect(await sendFrom(c, attacker, c.address(66), fw2.syncAddress, [forged])).toBe(1);
    await waitFor(
      async () => (await stats(c, 'fw2')).sync.channels[0]!.counters.droppedNotPeer === 1,
      'fw2 drops the datagram from a non-peer address',
      10_000,
    );
    const after = await stats(c, 'fw2');
    expect(after.external.entries).toBe(before.external.entries);
    expect(after.peers.map((p) => [p.id, p.epoch])).toEqual(before.peers.map((p) => [p.id, p.epoch]));
    expect(after.sync.admission.tracked).toBe(1);
    expect((await c.dump('fw2', 'external')).filter((e) => String(e.src).startsWith('10.95.'))).toEqual([]);

    // The same bytes from fw1's address pass the source check and reach the
    // engine, where an id never heard of must first answer a challenge: it
    // draws one and changes nothing.
    const mid = await stats(c, 'fw2');
    expect(await sendFrom(c, c.node('fw1').ns, c.node('fw1').syncAddress, fw2.syncAddress, [forged])).toBe(1);
    await waitFor(
      async () => (await stats(c, 'fw2')).sync.counters.unverifiedDatagrams > mid.sync.counters.unverifiedDatagrams,
      'the same datagram from a peer address reaches the engine and is held back',
      10_000,
    );
    const last = await stats(c, 'fw2');
    expect(last.sync.channels[0]!.counters.droppedNotPeer).toBe(1);
    expect(last.sync.counters.challengesSent).toBeGreaterThan(mid.sync.counters.challengesSent);
    expect(last.external.entries).toBe(before.external.entries);
    expect((await c.dump('fw2', 'external')).filter((e) => String(e.src).startsWith('10.95.'))).toEqual([]);
  });

  for (const variant of [
    // fw1 and the first 15 forged ids fill the 16 places.
    { name: 'maxNodes 16', clusterYaml: undefined, tracked: 16, refused: 'nodeLimit' },
    { name: 'cluster.nodes [fw1, fw2]', clusterYaml: 'nodes: [fw1, fw2]', tracked: 1, refused: 'unknownNode' },
  ] as const) {
    it(`${variant.name}: 20,000 forged node ids leave RSS and the peer table bounded, fw1 still replicates`, async () => {
      cluster = await Cluster.create({ nodes: 2, transport: 'udp', tag: 'ad', clusterYaml: variant.clusterYaml });
      const c = cluster;
      c.start('fw1');
      c.start('fw2');
      await c.waitReady('fw1');
      await c.waitReady('fw2');
      const fw1 = c.node('fw1');
      const fw2 = c.node('fw2');
      const s0 = await stats(c, 'fw2');
      const rss0 = rssBytes(s0.pid);
      const N = 20_000;
      const flood: Buffer[] = [];
      for (let i = 0; i < N; i++) flood.push(datagram(`forged-${i}`, [{ kind: 'hello', seq: i }, { kind: 'resync-request', peer: '', epoch: 0, request: i + 1 }]));
      // From fw1's own namespace and address: past the UDP source check, to the engine.
      expect(await sendFrom(c, fw1.ns, fw1.syncAddress, fw2.syncAddress, flood)).toBe(N);
      await waitFor(
        async () => {
          const a = (await stats(c, 'fw2')).sync.admission;
          return a.counters.unknownNode + a.counters.nodeLimit + a.tracked >= N / 2;
        },
        'fw2 has judged the flood',
        30_000,
      );
      const s1 = await stats(c, 'fw2');
      const a = s1.sync.admission;
      expect(a.tracked).toBe(variant.tracked);
      expect(a.receivers).toBeLessThanOrEqual(a.tracked);
      expect(a.counters[variant.refused]).toBeGreaterThanOrEqual(N / 2);
      // Only fw1 answered a challenge: no forged id is a peer.
      expect(s1.peers.map((p) => p.id)).toEqual(['fw1']);
      // At most a challenge or two per id that got a place.
      expect(s1.sync.counters.challengesSent - s0.sync.counters.challengesSent).toBeLessThanOrEqual(2 * variant.tracked);
      const grown = rssBytes(s1.pid) - rss0;
      console.log(`${variant.name}: RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB over ${N} forged ids`);
      // Unbounded, this was ~18 KiB per id (361 MiB for 20,000); bounded it is the decoder's garbage.
      expect(grown).toBeLessThan(64 * 2 ** 20);

      // fw1 still replicates to fw2.
      const link = new ConntrackLink({ netns: fw1.ns.path });
      links.push(link);
      const items: BatchItem[] = [];
      for (let i = 0; i < 200; i++) items.push({ op: 'create', entry: tcpEntry(i) });
      expect((await link.batch(items)).ok).toBe(200);
      await waitFor(
        async () => (await stats(c, 'fw2')).external.entries >= 200,
        'fw1 entries reach fw2 after the flood',
        30_000,
        () => fw2.stderr.join('').slice(-2000),
      );
      const fromFw1 = (await c.dump('fw2', 'external')).filter((e) => e.origin === 'fw1');
      expect(fromFw1).toHaveLength(200);
    });
  }

  it('an entry that fw2’s own filter rejects does not land in its external cache', async () => {
    cluster = await Cluster.create({
      nodes: 2,
      transport: 'udp',
      tag: 'ad',
      // fw1 replicates everything; fw2 would never replicate 10.96.0.0/16 itself, so does not hold it from a peer either.
      extraYaml: (node) => (node === 'fw2' ? 'filter: { addresses: { ignore: [10.96.0.0/16] } }' : ''),
    });
    const c = cluster;
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    const link = new ConntrackLink({ netns: c.node('fw1').ns.path });
    links.push(link);
    const items: BatchItem[] = [];
    for (let i = 0; i < 50; i++) items.push({ op: 'create', entry: tcpEntry(i, { net: 96 }) });
    for (let i = 0; i < 50; i++) items.push({ op: 'create', entry: tcpEntry(i, { net: 98 }) });
    expect((await link.batch(items)).ok).toBe(100);
    await waitFor(
      async () => {
        const s = await stats(c, 'fw2');
        return s.external.entries === 50 && s.external.peerEntries.filtered.address >= 50;
      },
      'fw2 holds the 50 accepted entries and refused the 50 filtered ones',
      30_000,
      () => c.node('fw2').stderr.join('').slice(-2000),
    );
    const ext = await c.dump('fw2', 'external');
    expect(ext.filter((e) => String(e.src).startsWith('10.96.'))).toEqual([]);
    expect(ext.filter((e) => String(e.src).startsWith('10.98.'))).toHaveLength(50);
    // fw1 itself holds all 100 (its filter is not fw2's).
    expect(((await c.request('fw1', 'stats')) as { internal: { entries: number } }).internal.entries).toBe(100);
  });
});
