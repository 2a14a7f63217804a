// The operator interface on real daemons and real kernels: commit (NAT
// mapping, replace, idempotence, no self-overrun), flush, flush-kernel,
// resync, purge-timeout, and the CLI's conntrackd flags and exit codes.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { tcpEntry } from './helpers/entries.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');

/** A masqueraded connection: 10.96.x.y → 10.97.0.2:80, leaving as 10.95.0.1:<port>. */
function snatEntry(i: number): ConntrackEntry {
  const src = `10.96.${(i >> 8) & 255}.${i & 255}`;
  return {
    family: AF_INET,
    orig: { src, dst: '10.97.0.2', proto: IPPROTO.TCP, sport: 40000, dport: 80 },
    reply: { src: '10.97.0.2', dst: '10.95.0.1', proto: IPPROTO.TCP, sport: 80, dport: 20000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
    timeout: 7200,
    mark: 7,
    protoinfo: { tcp: { state: 3 } },
  };
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(c: Cluster, id: string, args: string[]): Promise<CliResult> {
  const n = c.node(id);
  try {
    const r = await run('ip', ['netns', 'exec', n.ns.name, 'node', BIN, '-C', n.configPath, ...args], {
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** The parts of the stats JSON these tests read. */
interface Stats {
  pid: number;
  internal: { entries: number };
  external: { entries: number };
  kernel: { overruns: number; ownEventsFiltered: boolean; ownKernelEvents: number };
  commit: Record<string, unknown>;
}

async function stats(c: Cluster, id: string): Promise<Stats> {
  return (await c.request(id, 'stats')) as Stats;
}

async function kernelCount(c: Cluster, id: string): Promise<number> {
  const r = await c.node(id).ns.exec('conntrack', ['-C']);
  return Number.parseInt(r.stdout.trim(), 10);
}

const N_PLAIN = 3000;
const N_NAT = 500;

describe('commit and the operator interface', () => {
  let c: Cluster;
  let fw1: ConntrackLink;
  let fw2: ConntrackLink;

  beforeAll(async () => {
    c = await Cluster.create({
      nodes: 2,
      transport: 'udp',
      // A small event buffer on fw2: its own commit must not overrun it.
      extraYaml: (id) => (id === 'fw2' ? 'kernel: { netlinkBufferBytes: 262144 }\nfailover: { purgeTimeoutSeconds: 42 }' : ''),
    });
    // A NAT table, as on a real firewall: the kernel then sets up NAT for created entries.
    for (const n of c.nodes) {
      await n.ns.exec('nft', [
        'add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }',
      ]);
    }
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    fw1 = new ConntrackLink({ netns: c.node('fw1').ns.path });
    fw2 = new ConntrackLink({ netns: c.node('fw2').ns.path });
  }, 60_000);

  afterAll(async () => {
    fw1?.close();
    fw2?.close();
    await c?.destroy();
  });

  it('commits masters with their NAT mapping, replaces stale kernel entries, and is idempotent', async () => {
    // fw2's kernel already holds a stale version of 100 NAT'd connections
    // (another mark, another NAT port): the commit must replace them.
    const stale: BatchItem[] = [];
    for (let i = 0; i < 100; i++) {
      const e = snatEntry(i);
      stale.push({ op: 'create', entry: { ...e, mark: 1, reply: { ...e.reply, dport: 30000 + i } } });
    }
    const s = await fw2.batch(stale);
    expect(s.failures).toEqual({});

    const items: BatchItem[] = [];
    for (let i = 0; i < N_PLAIN; i++) items.push({ op: 'create', entry: tcpEntry(i) });
    for (let i = 0; i < N_NAT; i++) items.push({ op: 'create', entry: snatEntry(i) });
    const r = await fw1.batch(items);
    expect(r.failures).toEqual({});
    await waitFor(
      async () => (await stats(c, 'fw2')).external.entries === N_PLAIN + N_NAT,
      'fw2 external complete',
      60_000,
    );

    const first = await cli(c, 'fw2', ['commit', '--json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const rep = JSON.parse(first.stdout);
    expect(rep).toMatchObject({
      entries: N_PLAIN + N_NAT,
      committed: N_PLAIN + N_NAT - 100,
      updated: 100,
      unchanged: 0,
      failed: 0,
      peers: ['fw1'],
    });
    expect(await kernelCount(c, 'fw2')).toBe(N_PLAIN + N_NAT);

    // The NAT mapping and mark are the replicated ones (conntrack(8) as the oracle).
    const list = (await c.node('fw2').ns.exec('conntrack', ['-L', '-p', 'tcp', '--orig-src', '10.96.0.5'])).stdout;
    expect(list).toContain('src=10.96.0.5 dst=10.97.0.2 sport=40000 dport=80');
    expect(list).toContain('src=10.97.0.2 dst=10.95.0.1 sport=80 dport=20005');
    expect(list).toContain('mark=7');
    expect(list).toContain('[ASSURED]');
    const natOnly = (await c.node('fw2').ns.exec('conntrack', ['-L', '--src-nat'])).stdout.trim().split('\n');
    expect(natOnly.length).toBe(N_NAT);
    // And the kernel really translates them: it marks an entry SRC_NAT only
    // when its own NAT setup produced the reply tuple (a reply tuple sent
    // already translated shows right in a dump and translates nothing).
    const natted = (await fw2.list()).filter((e) => e.orig.src.startsWith('10.96.'));
    expect(natted).toHaveLength(N_NAT);
    for (const e of natted) {
      expect(e.status! & (IPS.SRC_NAT | IPS.SRC_NAT_DONE)).toBe(IPS.SRC_NAT | IPS.SRC_NAT_DONE);
      expect(e.status! & IPS.DST_NAT).toBe(0);
    }
    const i5 = natted.find((e) => e.orig.src === '10.96.0.5')!;
    expect(i5.reply).toMatchObject({ src: '10.97.0.2', dst: '10.95.0.1', sport: 80, dport: 20005 });

    // Our own commit is neither replicated nor an overrun of our own event
    // socket. fw1 knows only the 100 connections fw2's kernel had of its own.
    const st = await stats(c, 'fw2');
    expect(st.kernel.overruns).toBe(0);
    expect(st.kernel.ownEventsFiltered).toBe(true);
    expect(st.kernel.ownKernelEvents).toBe(0);
    expect(st.commit).toMatchObject({ commits: 1, running: false, failed: 0 });
    expect(st.internal.entries).toBe(100);
    await new Promise((r) => setTimeout(r, 300));
    expect((await stats(c, 'fw1')).external.entries).toBe(100);

    // A second commit changes nothing.
    const second = await cli(c, 'fw2', ['-c']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/committed 0, updated 0, unchanged 3500, failed 0 of 3500 entries from fw1/);
    expect(await kernelCount(c, 'fw2')).toBe(N_PLAIN + N_NAT);
  }, 120_000);

  it('commit --peer limits to one peer; an unknown peer is an error', async () => {
    const one = await cli(c, 'fw2', ['commit', '--peer', 'fw1', '--json']);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ peers: ['fw1'], entries: N_PLAIN + N_NAT });
    const bad = await cli(c, 'fw2', ['commit', '--peer', 'nosuch']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/unknown peer 'nosuch'/);
  }, 60_000);

  it('flush, resync, bulk-send and request-resync', async () => {
    const f = await cli(c, 'fw2', ['-f', 'external']);
    expect(f.code).toBe(0);
    expect(f.stdout).toContain(`flushed ${N_PLAIN + N_NAT} entries from the external cache`);
    expect((await stats(c, 'fw2')).external.entries).toBe(0);

    // -n: fw1 sends everything again.
    const n = await cli(c, 'fw2', ['-n']);
    expect(n.code).toBe(0);
    await waitFor(
      async () => (await stats(c, 'fw2')).external.entries === N_PLAIN + N_NAT,
      'refilled by request-resync',
      30_000,
    );

    // -R: the committed entries (our own events, never cached) enter fw2's
    // internal cache; the 100 replaced ones change from the stale version.
    expect((await stats(c, 'fw2')).internal.entries).toBe(100);
    const R = await cli(c, 'fw2', ['-R', '--json']);
    expect(R.code).toBe(0);
    expect(JSON.parse(R.stdout)).toMatchObject({ created: N_PLAIN + N_NAT - 100, updated: 100, deleted: 0 });
    expect((await stats(c, 'fw2')).internal.entries).toBe(N_PLAIN + N_NAT);

    // -B: fw1 now learns them from fw2.
    const B = await cli(c, 'fw2', ['-B']);
    expect(B.code).toBe(0);
    expect(B.stdout).toContain(`queued ${N_PLAIN + N_NAT} entries`);
    await waitFor(
      async () => (await stats(c, 'fw1')).external.entries === N_PLAIN + N_NAT,
      'fw1 external from bulk-send',
      30_000,
    );
  }, 120_000);

  it('purge-timeout shortens the timeouts of connections this node does not own', async () => {
    const t = await cli(c, 'fw2', ['-t', '--json']);
    expect(t.code).toBe(0);
    const r = JSON.parse(t.stdout);
    expect(r).toMatchObject({ shortened: N_PLAIN + N_NAT, failed: 0, timeoutSeconds: 42 });
    const lines = (await c.node('fw2').ns.exec('conntrack', ['-L', '-p', 'tcp'])).stdout.trim().split('\n');
    const timeouts = lines.map((l) => Number.parseInt(l.split(/\s+/)[2]!, 10));
    expect(Math.max(...timeouts)).toBeLessThanOrEqual(42);
    expect((await stats(c, 'fw2')).internal.entries).toBe(0);
    // fw2 told its peer: fw1 no longer keeps fw2's copies of connections fw2 gave up.
    await waitFor(async () => (await stats(c, 'fw1')).external.entries === 0, "fw1 drops fw2's purged copies", 20_000);
  }, 60_000);

  it('flush-kernel deletes what the filter accepts and is not replicated', async () => {
    // fw2 takes its kernel's (purged) entries back into its table, and fw1 learns them again.
    expect((await cli(c, 'fw2', ['-R'])).code).toBe(0);
    await waitFor(async () => (await stats(c, 'fw1')).external.entries === N_PLAIN + N_NAT, 'fw1 external after the resync', 20_000);
    const F = await cli(c, 'fw2', ['-F']);
    expect(F.code).toBe(0);
    expect(F.stdout).toContain(`deleted ${N_PLAIN + N_NAT} kernel entries`);
    expect(await kernelCount(c, 'fw2')).toBe(0);
    // fw1 keeps what fw2 bulk-sent: deletions caused by us are not replicated.
    await new Promise((r) => setTimeout(r, 500));
    expect((await stats(c, 'fw1')).external.entries).toBe(N_PLAIN + N_NAT);
  }, 60_000);

  it('replicates an expectation and commits it after its master', async () => {
    const master: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '10.92.0.1', dst: '10.92.0.2', proto: IPPROTO.TCP, sport: 40000, dport: 21 },
      reply: { src: '10.92.0.2', dst: '10.92.0.1', proto: IPPROTO.TCP, sport: 21, dport: 40000 },
      status: IPS.SEEN_REPLY | IPS.ASSURED,
      timeout: 600,
      protoinfo: { tcp: { state: 3 } },
      helper: 'ftp',
    };
    expect((await fw1.batch([{ op: 'create', entry: master }])).failures).toEqual({});
    const errno = await fw1.createExpectation({
      family: AF_INET,
      master: master.orig,
      tuple: { src: '10.92.0.2', dst: '10.92.0.1', proto: IPPROTO.TCP, sport: 0, dport: 50000 },
      mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: IPPROTO.TCP, sport: 0, dport: 65535 },
      timeout: 300,
    });
    expect(errno).toBe(0);
    await waitFor(
      async () => ((await c.request('fw2', 'stats')) as { external: { expectations: { entries: number } } }).external.expectations.entries === 1,
      'expectation in fw2 external cache',
      20_000,
    );
    const i = await cli(c, 'fw1', ['-i', 'expect']);
    expect(i.stdout).toMatch(/tcp src=10\.92\.0\.2 dst=10\.92\.0\.1 sport=0 dport=50000 master=tcp,src=10\.92\.0\.1,dst=10\.92\.0\.2,sport=40000,dport=21 helper=ftp/);
    const r = await cli(c, 'fw2', ['commit', '--peer', 'fw1', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).expectations).toMatchObject({ entries: 1, committed: 1, failed: 0 });
    const list = (await c.node('fw2').ns.exec('conntrack', ['-L', 'expect'])).stdout;
    expect(list).toContain('src=10.92.0.2 dst=10.92.0.1 sport=0 dport=50000');
    // Gone on fw1 → gone from fw2's external cache.
    await fw1.flushExpectations();
    await waitFor(
      async () => ((await c.request('fw2', 'stats')) as { external: { expectations: { entries: number } } }).external.expectations.entries === 0,
      'expectation deleted on fw2',
      20_000,
    );
  }, 60_000);

  it('CLI: help, unknown commands, bad arguments, text stats and dumps', async () => {
    const help = await cli(c, 'fw2', ['commit', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: ctsyncd --config FILE commit [--peer ID]');
    const unknown = await cli(c, 'fw2', ['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^ctsyncd: unknown command 'frobnicate'/);
    const badFlag = await cli(c, 'fw2', ['-Z']);
    expect(badFlag.code).toBe(2);
    const badArg = await cli(c, 'fw2', ['flush', 'everything']);
    expect(badArg.code).toBe(2);
    const two = await cli(c, 'fw2', ['-c', '-f']);
    expect(two.code).toBe(2);
    const s = await cli(c, 'fw2', ['-s', 'cache']);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^internal\.entries\s+0$/m);
    const sj = await cli(c, 'fw1', ['stats', 'peers', '--json']);
    expect(JSON.parse(sj.stdout)).toMatchObject({ 'sync.inSync': true });
    const e = await cli(c, 'fw1', ['-e']);
    expect(e.code).toBe(0);
    expect(e.stdout.trim().split('\n')).toHaveLength(N_PLAIN + N_NAT);
    expect(e.stdout).toMatch(/^tcp 6 \d+ ESTABLISHED src=10\.96\.0\.5 dst=10\.97\.0\.2 sport=40000 dport=80 src=10\.97\.0\.2 dst=10\.95\.0\.1 sport=80 dport=20005 \[ASSURED\] mark=7 origin=fw2$/m);
    const x = await cli(c, 'fw1', ['-i', '-x']);
    expect(x.code).toBe(2);
    expect(x.stderr).toContain('use --json');
  }, 60_000);

  it('a daemon that is not running, or a socket we may not use, is an error with a reason', async () => {
    const gone = await run('node', [BIN, '--config', join(c.dir, 'nosuch.yaml'), 'stats']).catch((e) => e);
    expect(gone.code).toBe(1);
    const n = c.node('fw2');
    // Not root: the 0600 socket (in a 0700 directory) shuts the client out.
    const open = mkdtempSync(join(tmpdir(), 'ctsyncd-perm-'));
    try {
      chmodSync(open, 0o755);
      const cfg = join(open, 'fw2.yaml');
      copyFileSync(n.configPath, cfg);
      chmodSync(cfg, 0o644);
      const denied = await run('runuser', ['-u', 'nobody', '--', 'node', BIN, '-C', cfg, '-s']).catch((e) => e);
      expect(denied.code).toBe(1);
      expect(denied.stderr.trim()).toBe(`ctsyncd: stats: permission denied on control socket ${n.socket} (run as root?)`);
    } finally {
      rmSync(open, { recursive: true, force: true });
    }
    await c.stop('fw2');
    const r = await cli(c, 'fw2', ['-c']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`ctsyncd: commit: ctsyncd is not running (no daemon at ${n.socket})`);
    // -d starts it in the background and returns once it answers.
    const d = await cli(c, 'fw2', ['-d']);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    const pid = (await stats(c, 'fw2')).pid;
    expect(pid).toBeGreaterThan(0);
    const k = await cli(c, 'fw2', ['-k']);
    expect(k.code).toBe(0);
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      'detached daemon exits after -k',
      15_000,
    );
  }, 60_000);
});
