// Wire interop with the real conntrackd 1.4.7 (sync.protocol: conntrackd):
// conntrackd in fw1, ctsyncd in fw2, talking FTFW over UDP on the veth sync
// link. Entries made in either kernel must land in the other node's
// external cache, and, once committed (ctsyncd's commit; conntrackd -c),
// give a kernel entry equal to the original as conntrack(8) prints it:
// original and reply tuples (NAT included), TCP state, mark, flags. Then the
// same with 20% loss on the sync link both ways (nftables numgen drops; this
// kernel has no netem), resyncs asked from either side, IPv6 entries, and a
// restarted conntrackd, which ctsyncd refills unasked.
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AF_INET6, IPPROTO, IPS } from '../../src/kernel/constants.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { Conntrackd, type ConntrackdOptions, type CtTextEntry, ctTextKey, parseConntrackText, requireConntrackd } from './helpers/conntrackd.js';
import { tcpEntry } from './helpers/entries.js';
import { addEgressLoss, removeEgressLoss } from './helpers/faults.js';
import { type Netns, requireNetns, uniqueName } from './helpers/netns.js';

/** Entries made in fw1 (conntrackd's node) come from 10.98/16, those made in fw2 (ctsyncd's) from 10.96/16. */
const NET_CD = 98;
const NET_CT = 96;
/**
 * Entries per direction and phase: 20,000 with FTFW (issue 15). NOTRACK
 * repairs nothing, so a burst the receiving socket cannot hold is lost for
 * good by design; it gets 2,000, which fits the buffers.
 */
const COUNT_ENV = process.env.CTSYNCD_CDP_COUNT;
const NAT_COUNT = 20;
const V6_COUNT = 50;
/** What each node makes besides the IPv4 batches: NAT'd entries and IPv6 entries. */
const EXTRA = NAT_COUNT + V6_COUNT;

/** Whether an original source address is in a node's range (IPv4 10.<net>/16, IPv6 2001:db8:<net>::/48). */
function mine(src: string, net: number): boolean {
  return src.startsWith(`10.${net}.`) || src.startsWith(`2001:db8:${net}:`);
}

interface View {
  key: string;
  reply: string;
  state: string;
  mark: number;
  flags: string;
}

function view(e: CtTextEntry): View {
  const r = e.reply;
  return {
    key: ctTextKey(e),
    reply: r ? `${r.src}|${r.dst}|${r.sport ?? ''}|${r.dport ?? ''}` : '',
    state: e.state ?? '',
    mark: e.mark ?? 0,
    flags: e.flags.filter((f) => f === 'ASSURED' || f === 'UNREPLIED').sort().join(','),
  };
}

async function kernel(ns: Netns, net: number): Promise<Map<string, View>> {
  const { stdout } = await ns.exec('conntrack', ['-L'], { timeoutMs: 60_000 });
  return new Map(
    parseConntrackText(stdout)
      .filter((e) => mine(e.orig.src, net))
      .map((e) => [ctTextKey(e), view(e)]),
  );
}

/** Established IPv6 TCP entries from 2001:db8:<net>::/48, with marks. */
async function v6Entries(ns: Netns, net: number, n: number): Promise<void> {
  const link = new ConntrackLink({ netns: ns.path });
  try {
    const items = [];
    for (let i = 1; i <= n; i++) {
      const src = `2001:db8:${net}::${i.toString(16)}`;
      const entry: ConntrackEntry = {
        family: AF_INET6,
        orig: { src, dst: '2001:db8:97::1', proto: IPPROTO.TCP, sport: 20000 + i, dport: 443 },
        reply: { src: '2001:db8:97::1', dst: src, proto: IPPROTO.TCP, sport: 443, dport: 20000 + i },
        status: IPS.SEEN_REPLY | IPS.ASSURED,
        timeout: 3600,
        mark: 1000 + i,
        protoinfo: { tcp: { state: 3 } },
      };
      items.push({ op: 'create' as const, entry });
    }
    const r = await link.batch(items);
    if (r.failed > 0) throw new Error(`creating IPv6 entries failed: ${JSON.stringify(r.failures)}`);
  } finally {
    link.close();
  }
}

/** NAT'd TCP entries (SNAT of address and port) made with conntrack -I, which sends CTA_NAT_*. */
async function natEntries(ns: Netns, net: number, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    await ns.exec('conntrack', [
      ...['-I', '-p', 'tcp', '-s', `10.${net}.250.${i}`, '-d', '10.97.0.2', '--sport', String(30000 + i)],
      ...['--dport', '80', '--src-nat', `10.${net}.251.1:${40000 + i}`, '--state', 'ESTABLISHED'],
      ...['-t', '3600', '-u', 'ASSURED,SEEN_REPLY', '-m', String(i)],
    ]);
  }
}

async function makeEntries(ns: Netns, net: number, from: number, n: number): Promise<void> {
  const link = new ConntrackLink({ netns: ns.path });
  try {
    const items = [];
    for (let i = from; i < from + n; i++) items.push({ op: 'create' as const, entry: tcpEntry(i, { net, mark: i }) });
    const r = await link.batch(items);
    if (r.failed > 0) throw new Error(`creating entries failed: ${JSON.stringify(r.failures)}`);
  } finally {
    link.close();
  }
}

async function deleteEntries(ns: Netns, net: number, from: number, n: number): Promise<void> {
  const link = new ConntrackLink({ netns: ns.path });
  try {
    const items = [];
    for (let i = from; i < from + n; i++) items.push({ op: 'delete' as const, entry: tcpEntry(i, { net, mark: i }) });
    await link.batch(items);
  } finally {
    link.close();
  }
}

/** Removes a range from a kernel before a commit into it: what an earlier commit left there is no longer in the peer's table. */
async function clearKernel(ns: Netns, net: number): Promise<void> {
  // Exit status 1 when nothing matched: not a failure here.
  await ns.exec('conntrack', ['-D', '-s', `10.${net}.0.0/16`], { timeoutMs: 60_000 }).catch(() => undefined);
}

function diff(want: Map<string, View>, got: Map<string, View>): string[] {
  const out: string[] = [];
  for (const [k, v] of want) {
    const g = got.get(k);
    if (!g) out.push(`missing ${k}`);
    else if (JSON.stringify(g) !== JSON.stringify(v)) out.push(`differs ${JSON.stringify(v)} vs ${JSON.stringify(g)}`);
  }
  for (const k of got.keys()) if (!want.has(k)) out.push(`extra ${k}`);
  return out.slice(0, 10);
}

interface Variant {
  transport: 'udp' | 'multicast';
  mode: 'ftfw' | 'notrack';
}

// NOTRACK repairs nothing (conntrackd's own design): its loss phase runs without loss.
const VARIANTS: Variant[] = [
  { transport: 'udp', mode: 'ftfw' },
  { transport: 'multicast', mode: 'ftfw' },
  { transport: 'udp', mode: 'notrack' },
];

describe.each(VARIANTS)('sync.protocol conntrackd: ctsyncd and conntrackd 1.4.7 replicate to each other ($mode over $transport)', ({ transport, mode }) => {
  const loss = mode === 'ftfw' ? 20 : 0;
  const COUNT = COUNT_ENV !== undefined ? Number(COUNT_ENV) : mode === 'ftfw' ? 20_000 : 2000;
  let c: Cluster;
  let cd: Conntrackd;
  let cdOpts: ConntrackdOptions;

  beforeAll(async () => {
    requireNetns();
    requireConntrackd();
    c = await Cluster.create({ nodes: 2, transport, tag: 'cd' });
    const fw1 = c.node('fw1');
    const fw2 = c.node('fw2');
    // fw2 is ctsyncd speaking conntrackd's protocol; fw1's ctsyncd is never started.
    writeFileSync(
      fw2.configPath,
      c.configFor(fw2, 1).replace('sync:\n', `sync:\n  protocol: conntrackd\n  mode: ${mode}\n`),
    );
    cdOpts = {
      ns: fw1.ns,
      dir: c.dir,
      name: uniqueName('cd'),
      mode,
      sync: { transport, local: fw1.syncAddress, peer: fw2.syncAddress, group: c.group, port: 3780, interface: 'sync0' },
      hashLimit: 1_000_000,
      hashSize: 65536,
      // conntrackd overruns its own event socket while committing 20k entries
      // (../shared/docs/conntrackd.md §9) and then misses the next burst's events.
      netlinkBufferBytes: 64 * 1024 * 1024,
    };
    cd = await Conntrackd.start(cdOpts);
    c.start('fw2');
    await c.waitReady('fw2');
  }, 60_000);

  afterAll(async () => {
    await cd?.stop();
    await c?.destroy();
  });

  const external = async (): Promise<number> => {
    const s = (await c.request('fw2', 'stats')) as { external: { entries: number } };
    return s.external.entries;
  };
  const cdExternal = async (net: number): Promise<CtTextEntry[]> =>
    (await cd.external()).filter((e) => mine(e.orig.src, net));

  it('conntrackd → ctsyncd: entries land in the external cache and commit to the same kernel entries, NAT included', async () => {
    const fw1 = c.node('fw1').ns;
    await makeEntries(fw1, NET_CD, 0, COUNT);
    await natEntries(fw1, NET_CD, 1, NAT_COUNT);
    await v6Entries(fw1, NET_CD, V6_COUNT);
    const total = COUNT + EXTRA;
    await waitFor(async () => (await external()) === total, `ctsyncd holds ${total}`, 60_000, () => cd.diagnostics());
    const r = (await c.request('fw2', 'commit')) as { failed: number; committed: number };
    expect(r.failed).toBe(0);
    expect(diff(await kernel(fw1, NET_CD), await kernel(c.node('fw2').ns, NET_CD))).toEqual([]);
  }, 180_000);

  it('ctsyncd → conntrackd: conntrackd -e shows ctsyncd’s entries, and its -c commits them exactly', async () => {
    const fw2 = c.node('fw2').ns;
    await makeEntries(fw2, NET_CT, 0, COUNT);
    await natEntries(fw2, NET_CT, 1, NAT_COUNT);
    await v6Entries(fw2, NET_CT, V6_COUNT);
    const total = COUNT + EXTRA;
    await waitFor(async () => (await cdExternal(NET_CT)).length === total, `conntrackd -e holds ${total}`, 60_000);
    // -e has no reply tuple: the original, state and mark must already be right.
    const shown = new Map((await cdExternal(NET_CT)).map((e) => [ctTextKey(e), e]));
    const want = await kernel(fw2, NET_CT);
    for (const [k, v] of want) {
      const e = shown.get(k);
      expect(e, k).toBeDefined();
      expect([e!.state, e!.mark ?? 0]).toEqual([v.state, v.mark]);
    }
    await cd.commit();
    expect(diff(want, await kernel(c.node('fw1').ns, NET_CT))).toEqual([]);
  }, 180_000);

  it('deletes replicate both ways', async () => {
    await deleteEntries(c.node('fw1').ns, NET_CD, 0, 100);
    await deleteEntries(c.node('fw2').ns, NET_CT, 0, 100);
    const total = COUNT + EXTRA - 100;
    await waitFor(async () => (await external()) === total, `ctsyncd holds ${total}`, 60_000);
    await waitFor(async () => (await cdExternal(NET_CT)).length === total, `conntrackd -e holds ${total}`, 60_000);
  }, 120_000);

  it(`with ${loss}% loss on the sync link both ways, what is lost is repaired with conntrackd's own acks and nacks`, async () => {
    const fw1 = c.node('fw1').ns;
    const fw2 = c.node('fw2').ns;
    await addEgressLoss(fw1, { percent: loss });
    await addEgressLoss(fw2, { percent: loss });
    try {
      await makeEntries(fw1, NET_CD, COUNT, COUNT);
      await makeEntries(fw2, NET_CT, COUNT, COUNT);
      const total = 2 * COUNT + EXTRA - 100;
      let seen = 0;
      await waitFor(
        async () => (seen = await external()) === total,
        `ctsyncd holds ${total}`,
        120_000,
        () => `ctsyncd holds ${seen}\n${cd.diagnostics()}`,
      );
      await waitFor(async () => (await cdExternal(NET_CT)).length === total, `conntrackd -e holds ${total}`, 120_000);
    } finally {
      await removeEgressLoss(fw1);
      await removeEgressLoss(fw2);
    }
    const stats = (await c.request('fw2', 'stats')) as { sync: { counters: { nacksSent: number; nacksReceived: number } } };
    if (loss > 0) expect(stats.sync.counters.nacksSent + stats.sync.counters.nacksReceived).toBeGreaterThan(0);
    await clearKernel(fw2, NET_CD);
    await c.request('fw2', 'commit');
    expect(diff(await kernel(fw1, NET_CD), await kernel(fw2, NET_CD))).toEqual([]);
    await clearKernel(fw1, NET_CT);
    await cd.commit();
    expect(diff(await kernel(fw2, NET_CT), await kernel(fw1, NET_CT))).toEqual([]);
  }, 300_000);

  it('-n from conntrackd refills its flushed external cache from ctsyncd; a resync request from ctsyncd is answered by conntrackd', async () => {
    await cd.flush('external');
    expect(await cdExternal(NET_CT)).toEqual([]);
    await cd.requestResync();
    const total = 2 * COUNT + EXTRA - 100;
    await waitFor(async () => (await cdExternal(NET_CT)).length === total, `conntrackd -e holds ${total} again`, 60_000);
    await c.request('fw2', 'flush', { cache: 'external' });
    expect(await external()).toBe(0);
    await c.request('fw2', 'request-resync');
    // conntrackd answers with its whole internal cache, which (conntrackd's
    // own doing) also holds what its -c put into fw1's kernel: ctsyncd must
    // end up with exactly what `conntrackd -i` lists.
    const internal = async (): Promise<Set<string>> => new Set((await cd.internal()).map(ctTextKey));
    let want = await internal();
    await waitFor(
      async () => {
        want = await internal();
        return (await external()) === want.size;
      },
      'ctsyncd holds what conntrackd -i lists',
      60_000,
    );
    const dumped = await c.dump('fw2', 'external');
    expect(dumped.length).toBe(want.size);
  }, 180_000);

  // FTFW only: a restarted NOTRACK conntrackd says nothing that marks it as new.
  if (mode === 'ftfw') {
    it('a restarted conntrackd gets ctsyncd’s table without asking (its HELLO)', async () => {
      const total = 2 * COUNT + EXTRA - 100;
      await cd.stop();
      cd = await Conntrackd.start(cdOpts);
      await waitFor(
        async () => (await cdExternal(NET_CT)).length === total,
        `the new conntrackd holds ${total}`,
        60_000,
        () => cd.diagnostics(),
      );
      const s = (await c.request('fw2', 'stats')) as { sync: { counters: { bulksWanted: { hello: number } } } };
      expect(s.sync.counters.bulksWanted.hello).toBeGreaterThanOrEqual(2);
    }, 120_000);
  }
});
