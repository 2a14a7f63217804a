// sync.protocol: conntrackd with the real conntrackd 1.4.7 (ExpectationSync
// On) in fw1 and ctsyncd in fw2, FTFW over UDP: expectations of an FTP
// control connection (helper ftp) replicate both ways and commit into the
// other kernel after their master (ctsyncd's commit; conntrackd -c), and
// their deletion replicates; `-B` from either side refills the other's
// flushed external cache, entries and expectations both; and an
// expectation the kernel's own nf_conntrack_ftp sets up from a PORT command
// on fw1 reaches ctsyncd and commits into fw2.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { Conntrackd, ctTextKey, requireConntrackd } from './helpers/conntrackd.js';
import { tcpEntry } from './helpers/entries.js';
import { type Netns, requireNetns, uniqueName } from './helpers/netns.js';

/** conntrackd's node (fw1) makes its connections in 10.98/16, ctsyncd's (fw2) in 10.96/16. */
const NET_CD = 98;
const NET_CT = 96;
/** Plain entries per side, for the bulk sends. */
const COUNT = 500;
/** The data port the PORT command of the helper-created expectation announces. */
const HELPER_DATA_PORT = 50030;
const FTP_SCRIPT = resolve(import.meta.dirname, 'helpers/ftp-port.mjs');

/** An FTP control connection from 10.<net>.200.1 and the data connection its PORT command announces. */
function ftpFlow(net: number): [ConntrackEntry, ExpectEntry] {
  const client = `10.${net}.200.1`;
  const server = `10.${net}.200.2`;
  const master: ConntrackEntry = {
    family: AF_INET,
    orig: { src: client, dst: server, proto: IPPROTO.TCP, sport: 40021, dport: 21 },
    reply: { src: server, dst: client, proto: IPPROTO.TCP, sport: 21, dport: 40021 },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 3600,
    protoinfo: { tcp: { state: 3 } },
    helper: 'ftp',
  };
  const expectation: ExpectEntry = {
    family: AF_INET,
    master: master.orig,
    tuple: { src: server, dst: client, proto: IPPROTO.TCP, sport: 0, dport: 50020 },
    mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: IPPROTO.TCP, sport: 0, dport: 0xffff },
    timeout: 600,
  };
  return [master, expectation];
}

/** The expectation's tuple and master as `conntrack -L expect` prints them. */
function expectLine(x: ExpectEntry): RegExp {
  const t = x.tuple;
  const m = x.master;
  const q = (s: string) => s.replace(/\./g, '\\.');
  return new RegExp(
    `src=${q(t.src)} dst=${q(t.dst)} sport=0 dport=${t.dport}.*` +
      `master-src=${q(m.src)} master-dst=${q(m.dst)} sport=${m.sport} dport=${m.dport}`,
  );
}

async function makeFlow(ns: Netns, net: number): Promise<void> {
  const [master, x] = ftpFlow(net);
  const link = new ConntrackLink({ netns: ns.path });
  try {
    const r = await link.batch([{ op: 'create', entry: master }]);
    expect(r.failures).toEqual({});
    expect(await link.createExpectation(x)).toBe(0);
  } finally {
    link.close();
  }
}

async function makeEntries(ns: Netns, net: number, n: number): Promise<void> {
  const link = new ConntrackLink({ netns: ns.path });
  try {
    const r = await link.batch(Array.from({ length: n }, (_, i) => ({ op: 'create' as const, entry: tcpEntry(i, { net }) })));
    expect(r.failures).toEqual({});
  } finally {
    link.close();
  }
}

/** Starts helpers/ftp-port.mjs in `ns` and returns it with the client's port once the server acknowledged the PORT command. */
async function ftpSession(ns: Netns, server: string, client: string): Promise<{ child: ChildProcess; sport: number }> {
  const cfg = { server, client, port: 21, dataPort: HELPER_DATA_PORT };
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, FTP_SCRIPT, JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr += d));
  const sport = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`no FTP session within 10 s: ${stderr}`)), 10_000);
    child.once('exit', (code) => reject(new Error(`ftp-port.mjs exited ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const ev = JSON.parse(line) as { ev: string; sport: number };
      if (ev.ev === 'ready') {
        clearTimeout(timer);
        resolvePort(ev.sport);
      }
    });
  });
  return { child, sport };
}

async function kernelExpectations(ns: Netns): Promise<string> {
  return (await ns.exec('conntrack', ['-L', 'expect'], { timeoutMs: 10_000 })).stdout;
}

describe('sync.protocol conntrackd: expectations and -B with conntrackd 1.4.7', () => {
  let c: Cluster;
  let cd: Conntrackd;

  beforeAll(async () => {
    requireNetns();
    requireConntrackd();
    c = await Cluster.create({ nodes: 2, transport: 'udp', tag: 'cm' });
    const fw1 = c.node('fw1');
    const fw2 = c.node('fw2');
    // fw2 is ctsyncd speaking conntrackd's protocol (filter.expectations: all, the default).
    writeFileSync(fw2.configPath, c.configFor(fw2, 1).replace('sync:\n', 'sync:\n  protocol: conntrackd\n'));
    cd = await Conntrackd.start({
      ns: fw1.ns,
      dir: c.dir,
      name: uniqueName('cm'),
      sync: { transport: 'udp', local: fw1.syncAddress, peer: fw2.syncAddress, port: 3780, interface: 'sync0' },
      extraSync: ['Options {', '\tExpectationSync On', '}'],
    });
    c.start('fw2');
    await c.waitReady('fw2');
  }, 60_000);

  afterAll(async () => {
    await cd?.stop();
    await c?.destroy();
  });

  const externalCounts = async (): Promise<{ entries: number; expectations: number }> => {
    const s = (await c.request('fw2', 'stats')) as { external: { entries: number; expectations: { entries: number } } };
    return { entries: s.external.entries, expectations: s.external.expectations.entries };
  };
  const cdExternalExpect = (): Promise<string> => cd.client(['-e', 'expect']);

  it('conntrackd → ctsyncd: the expectation lands in the external cache, commits after its master, and its deletion follows', async () => {
    const fw1 = c.node('fw1').ns;
    const fw2 = c.node('fw2').ns;
    const [master, x] = ftpFlow(NET_CD);
    await makeFlow(fw1, NET_CD);
    await waitFor(
      async () => (await externalCounts()).expectations === 1,
      'the expectation in ctsyncd’s external cache',
      20_000,
      () => cd.diagnostics(),
    );
    const r = (await c.request('fw2', 'commit')) as { failed: number; expectations: { committed: number; failed: number } };
    expect(r.failed).toBe(0);
    expect(r.expectations).toMatchObject({ committed: 1, failed: 0 });
    expect(await kernelExpectations(fw2)).toMatch(expectLine(x));
    const masters = (await fw2.exec('conntrack', ['-L', '-p', 'tcp', '--orig-port-dst', '21'])).stdout;
    expect(masters).toContain(`src=${master.orig.src} dst=${master.orig.dst} sport=40021 dport=21`);
    expect(masters).toContain('helper=ftp');
    // conntrackd replicates the expectation's end too.
    await fw1.exec('conntrack', ['-F', 'expect']);
    await waitFor(async () => (await externalCounts()).expectations === 0, 'the expectation gone from ctsyncd', 20_000);
  }, 90_000);

  it('ctsyncd → conntrackd: conntrackd -e expect shows the expectation', async () => {
    const [, x] = ftpFlow(NET_CT);
    await makeFlow(c.node('fw2').ns, NET_CT);
    await waitFor(async () => expectLine(x).test(await cdExternalExpect()), 'conntrackd -e expect shows it', 20_000, () =>
      cd.diagnostics(),
    );
  }, 90_000);

  it('ctsyncd -B refills conntrackd’s flushed external cache; conntrackd -B refills ctsyncd’s', async () => {
    await makeEntries(c.node('fw1').ns, NET_CD, COUNT);
    await makeEntries(c.node('fw2').ns, NET_CT, COUNT);
    // A new expectation on fw1's FTP connection (the first test's is gone).
    const fw1Link = new ConntrackLink({ netns: c.node('fw1').ns.path });
    try {
      expect(await fw1Link.createExpectation(ftpFlow(NET_CD)[1])).toBe(0);
    } finally {
      fw1Link.close();
    }
    // conntrackd's internal cache: fw1's table (its COUNT connections and its FTP connection).
    const cdInternal = async (): Promise<Set<string>> => new Set((await cd.internal()).map(ctTextKey));
    // ctsyncd's internal cache: its COUNT connections and the FTP flow of the test before.
    let ctInternal = { internal: { entries: 0, expectations: { entries: 0 } } };
    await waitFor(
      async () => {
        ctInternal = (await c.request('fw2', 'stats')) as typeof ctInternal;
        return ctInternal.internal.entries === COUNT + 1 && ctInternal.internal.expectations.entries === 1;
      },
      'ctsyncd’s internal cache holds its table',
      30_000,
    );
    await waitFor(async () => (await cd.external()).length === COUNT + 1, 'conntrackd holds ctsyncd’s table', 30_000);

    // ctsyncd -B → conntrackd.
    // A bare -f: conntrackd's `-f external` empties only the conntrack part of the cache.
    await cd.flush();
    expect(await cd.external()).toEqual([]);
    expect(await cdExternalExpect()).toBe('');
    const B = await c.request('fw2', 'bulk-send');
    expect(B).toEqual({ entries: COUNT + 2 });
    await waitFor(
      async () => (await cd.external()).length === COUNT + 1,
      `conntrackd -e holds ctsyncd’s ${COUNT + 1} entries again`,
      30_000,
    );
    const [, x] = ftpFlow(NET_CT);
    await waitFor(async () => expectLine(x).test(await cdExternalExpect()), 'and its expectation', 20_000);

    // conntrackd -B → ctsyncd.
    await c.request('fw2', 'flush', { cache: 'external' });
    expect(await externalCounts()).toEqual({ entries: 0, expectations: 0 });
    // Its internal cache went with the bare -f: read back from the kernel first, as after a commit.
    await cd.resyncWithKernel();
    const want = await cdInternal();
    expect(want.size).toBe(COUNT + 1);
    await cd.bulkSend();
    await waitFor(async () => (await externalCounts()).entries === want.size, `ctsyncd holds conntrackd’s ${want.size} entries`, 30_000);
    const got = new Set(
      (await c.dump('fw2', 'external')).map((e) => `tcp|${String(e.src)}|${String(e.dst)}|${String(e.sport)}|${String(e.dport)}|0`),
    );
    expect([...want].filter((k) => k.startsWith('tcp|') && !got.has(k))).toEqual([]);
    await waitFor(async () => (await externalCounts()).expectations === 1, 'and fw1’s expectation', 20_000);
  }, 120_000);

  // Last: after `-c expect`, conntrackd 1.4.7 takes itself to be committing
  // for good and ignores every later `-f` ("ignoring flush command, commit
  // still in progress").
  it('conntrackd -c commits ctsyncd’s expectation after its master', async () => {
    const fw1 = c.node('fw1').ns;
    const [master, x] = ftpFlow(NET_CT);
    await cd.client(['-c', 'ct']);
    await cd.client(['-c', 'expect']);
    await waitFor(async () => expectLine(x).test(await kernelExpectations(fw1)), 'conntrackd committed the expectation', 10_000, () =>
      cd.diagnostics(),
    );
    const masters = (await fw1.exec('conntrack', ['-L', '-p', 'tcp', '--orig-port-dst', '21'])).stdout;
    expect(masters).toContain(`src=${master.orig.src} dst=${master.orig.dst} sport=40021 dport=21`);
  }, 60_000);

  it('an expectation nf_conntrack_ftp sets up from a PORT command in fw1 reaches ctsyncd and commits into fw2', async () => {
    const fw1 = c.node('fw1').ns;
    const fw2 = c.node('fw2').ns;
    // Two addresses of fw1's own, off the sync link's /24, on a veth whose
    // both ends stay in fw1: the FTP client and server (loopback would do
    // for the helper, but ctsyncd never replicates loopback connections).
    const net = `10.99.${(c.subnet % 250) + 1}`;
    const [server, client] = [`${net}.1`, `${net}.2`];
    const [dev, peerDev] = [uniqueName('cmfa'), uniqueName('cmfb')];
    await fw1.exec('ip', ['link', 'add', dev, 'type', 'veth', 'peer', 'name', peerDev]);
    for (const a of [server, client]) await fw1.exec('ip', ['addr', 'add', `${a}/24`, 'dev', dev]);
    for (const d of [dev, peerDev]) await fw1.exec('ip', ['link', 'set', d, 'up']);
    // The ftp helper on fw1's connections to port 21.
    const rules = join(c.dir, `${uniqueName('cmftp')}.nft`);
    writeFileSync(
      rules,
      [
        'table inet cmftp {',
        '  ct helper ftp-std {',
        '    type "ftp" protocol tcp;',
        '  }',
        '  chain out {',
        '    type filter hook output priority 0; policy accept;',
        '    tcp dport 21 ct helper set "ftp-std"',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    await fw1.exec('nft', ['-f', rules]);
    const session = await ftpSession(fw1, server, client);
    try {
      const q = (a: string) => a.replace(/\./g, '\\.');
      const line = new RegExp(
        `src=${q(server)} dst=${q(client)} sport=0 dport=${HELPER_DATA_PORT}.*` +
          `master-src=${q(client)} master-dst=${q(server)} sport=${session.sport} dport=21`,
      );
      // The kernel's helper made it, not us.
      await waitFor(async () => line.test(await kernelExpectations(fw1)), 'nf_conntrack_ftp set up the expectation', 10_000);
      const mine = (e: Record<string, unknown>) => e.dport === HELPER_DATA_PORT;
      let got: Record<string, unknown> | undefined;
      await waitFor(
        async () => {
          got = (await c.request('fw2', 'dump', { cache: 'external', kind: 'expect' }) as Array<Record<string, unknown>>).find(mine);
          return got !== undefined;
        },
        'the helper’s expectation in ctsyncd’s external cache',
        20_000,
        () => cd.diagnostics(),
      );
      expect(got).toMatchObject({
        proto: 'tcp',
        src: server,
        dst: client,
        sport: 0,
        dport: HELPER_DATA_PORT,
        master: { proto: 'tcp', src: client, dst: server, sport: session.sport, dport: 21 },
        helper: 'ftp',
      });
      const r = (await c.request('fw2', 'commit')) as { failed: number; expectations: { failed: number } };
      expect([r.failed, r.expectations.failed], JSON.stringify(r)).toEqual([0, 0]);
      expect(await kernelExpectations(fw2)).toMatch(line);
    } finally {
      session.child.stdin?.end();
      session.child.kill('SIGKILL');
    }
  }, 60_000);
});
