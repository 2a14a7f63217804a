// conntrackd's flags as a script runs them, on a real daemon and a real
// kernel in a namespace of our own: each destructive flag (-F, -F ct,
// -F expect) deletes exactly what it names and nothing else, -R ct|expect
// reads only its table, -C with a conntrackd.conf points to the importer,
// and process.scheduler really puts every thread of the daemon under the
// policy asked for (read back with chrt).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { ConntrackEvents } from '../../src/kernel/conntrack-events.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';
import { waitFor } from './helpers/cluster.js';
import { createNetns, type Netns, uniqueName } from './helpers/netns.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');
const N_PLAIN = 20;
/** Filter-ignored: the masters of the expectations live here, so `-F ct` leaves them (and their expectations) alone. */
const MASTER_NET = 171;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe('conntrackd flags on a real daemon: the scope of each destructive flag', () => {
  let ns: Netns;
  let dir: string;
  let config: string;
  let socket: string;
  let daemon: ChildProcess;
  let link: ConntrackLink;
  let net: number;
  const stderr: string[] = [];

  const cli = async (args: string[]): Promise<CliResult> => {
    try {
      const r = await run('ip', ['netns', 'exec', ns.name, 'node', BIN, '-C', config, ...args], { timeout: 60_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
    }
  };
  const count = async (table: 'conntrack' | 'expect'): Promise<number> => {
    const r = await ns.exec('conntrack', table === 'expect' ? ['-L', 'expect'] : ['-L']);
    return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
  };

  /** A plain, confirmed TCP flow (IPS_CONFIRMED is added by the batch, as `conntrack -I` does). */
  const plain = (i: number): ConntrackEntry => ({
    family: AF_INET,
    orig: { src: `10.99.${net}.${10 + i}`, dst: `10.99.${net}.250`, proto: IPPROTO.TCP, sport: 30000 + i, dport: 443 },
    reply: { src: `10.99.${net}.250`, dst: `10.99.${net}.${10 + i}`, proto: IPPROTO.TCP, sport: 443, dport: 30000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 600,
    protoinfo: { tcp: { state: 3 } },
  });
  /** A control connection with a helper, and the expectation it announces. */
  const helperFlow = (i: number, helper: string, proto: number, port: number): [ConntrackEntry, ExpectEntry] => {
    const master: ConntrackEntry = {
      family: AF_INET,
      orig: { src: `10.99.${MASTER_NET}.1`, dst: `10.99.${MASTER_NET}.2`, proto, sport: 40000 + i, dport: port },
      reply: { src: `10.99.${MASTER_NET}.2`, dst: `10.99.${MASTER_NET}.1`, proto, sport: port, dport: 40000 + i },
      status: IPS.SEEN_REPLY | IPS.ASSURED,
      timeout: 600,
      ...(proto === IPPROTO.TCP ? { protoinfo: { tcp: { state: 3 } } } : {}),
      helper,
    };
    const expectation: ExpectEntry = {
      family: AF_INET,
      master: master.orig,
      tuple: { src: master.reply.src, dst: master.orig.src, proto, sport: 0, dport: 50000 + i },
      mask: { src: '255.255.255.255', dst: '255.255.255.255', proto, sport: 0, dport: 65535 },
      timeout: 300,
    };
    return [master, expectation];
  };
  const flows = () => [helperFlow(1, 'ftp', IPPROTO.TCP, 21), helperFlow(2, 'tftp', IPPROTO.UDP, 69)];

  async function addPlain(): Promise<void> {
    const r = await link.batch(Array.from({ length: N_PLAIN }, (_, i) => ({ op: 'create' as const, entry: plain(i) })));
    expect(r.failures).toEqual({});
  }
  async function addExpectations(): Promise<void> {
    for (const [, x] of flows()) expect(await link.createExpectation(x)).toBe(0);
  }

  beforeAll(async () => {
    ns = await createNetns('clsc');
    net = 100 + Math.floor(Math.random() * 60);
    // A sync link for the UDP socket to bind to; no peer ever answers on it.
    const dev = uniqueName('cla');
    const peer = uniqueName('clb');
    await ns.exec('ip', ['link', 'add', dev, 'type', 'veth', 'peer', 'name', peer]);
    await ns.exec('ip', ['addr', 'add', `10.99.${net}.1/24`, 'dev', dev]);
    await ns.exec('ip', ['link', 'set', dev, 'up']);
    await ns.exec('ip', ['link', 'set', peer, 'up']);
    dir = mkdtempSync(join(tmpdir(), 'ctsyncd-cl-'));
    socket = join(dir, 'ctl.sock');
    config = join(dir, 'ctsyncd.yaml');
    writeFileSync(
      config,
      [
        `node: { id: cl1, stateDir: ${join(dir, 'state')} }`,
        'cluster: { id: 77 }',
        'sync:',
        '  transport: udp',
        `  udp: { bind: 10.99.${net}.1, peers: [10.99.${net}.2], port: 3799 }`,
        '  auth: none',
        `control: { socket: ${socket} }`,
        'metrics: { enabled: false }',
        `filter: { addresses: { ignore: [10.99.${MASTER_NET}.0/24] } }`,
        // Round robin at the lowest real-time priority: real, and gentle on a shared machine.
        'process: { scheduler: { policy: rr, priority: 1 } }',
        '',
      ].join('\n'),
    );
    daemon = spawn('ip', ['netns', 'exec', ns.name, 'node', BIN, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr?.setEncoding('utf8');
    daemon.stderr?.on('data', (d: string) => {
      stderr.push(d);
      if (stderr.length > 500) stderr.splice(0, 250);
    });
    await waitFor(
      async () => {
        const s = (await controlRequest(socket, 'stats', {}, { timeoutMs: 2000 }).catch(() => undefined)) as
          | { ready?: boolean }
          | undefined;
        return s?.ready === true;
      },
      'the daemon ready',
      30_000,
      () => stderr.join('').slice(-3000),
    );
    link = new ConntrackLink({ netns: ns.path });
    for (const [master] of flows()) expect((await link.batch([{ op: 'create', entry: master }])).failures).toEqual({});
  }, 60_000);

  afterAll(async () => {
    link?.close();
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('process.scheduler: every thread of the daemon runs SCHED_RR at priority 1', async () => {
    const pid = daemon.pid!;
    const { stdout } = await run('chrt', ['-a', '-p', String(pid)]);
    const policies = [...stdout.matchAll(/pid (\d+)'s current scheduling policy: (\S+)/g)];
    const priorities = [...stdout.matchAll(/pid (\d+)'s current scheduling priority: (\d+)/g)];
    // The event loop and Node's helper threads.
    expect(policies.length).toBeGreaterThan(1);
    expect(policies.map((m) => m[1])).toContain(String(pid));
    for (const m of policies) expect(m[2], stdout).toBe('SCHED_RR');
    for (const m of priorities) expect(m[2], stdout).toBe('1');
    expect(stderr.join('')).toContain('scheduling policy set');
  });

  it('-F expect deletes the expectations and not one conntrack entry', async () => {
    await addPlain();
    await addExpectations();
    expect(await count('conntrack')).toBe(N_PLAIN + 2);
    expect(await count('expect')).toBe(2);
    const r = await cli(['-F', 'expect']);
    expect(r, r.stderr).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^deleted 2 kernel expectations; \d+ ms\n$/);
    expect(await count('expect')).toBe(0);
    expect(await count('conntrack')).toBe(N_PLAIN + 2);
  }, 60_000);

  it('-F ct deletes the filtered conntrack entries and not one expectation', async () => {
    await addExpectations();
    const r = await cli(['-F', 'ct', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: N_PLAIN, failed: 0 });
    expect(JSON.parse(r.stdout)).not.toHaveProperty('expectations');
    // The masters are in the filter's ignore list: they, and so their expectations, stay.
    expect(await count('conntrack')).toBe(2);
    expect(await count('expect')).toBe(2);
  }, 60_000);

  it('-F (a leading part of a word works too: -F e, -F c) and plain -F deletes both', async () => {
    await addPlain();
    const e = await cli(['-F', 'e']);
    expect(e.code, e.stderr).toBe(0);
    expect(await count('expect')).toBe(0);
    expect(await count('conntrack')).toBe(N_PLAIN + 2);
    await addExpectations();
    const both = await cli(['-F', '--json']);
    expect(both.code, both.stderr).toBe(0);
    expect(JSON.parse(both.stdout)).toMatchObject({ deleted: N_PLAIN, failed: 0, expectations: { deleted: 2 } });
    expect(await count('conntrack')).toBe(2);
    expect(await count('expect')).toBe(0);
  }, 60_000);

  it('-R ct resyncs only the conntrack table, -R expect only the expectations', async () => {
    const ct = await cli(['-R', 'ct', '--json']);
    expect(ct.code, ct.stderr).toBe(0);
    expect(JSON.parse(ct.stdout)).not.toHaveProperty('expectations');
    const x = await cli(['-R', 'expect', '--json']);
    expect(x.code, x.stderr).toBe(0);
    expect(JSON.parse(x.stdout)).toMatchObject({ created: 0, updated: 0, deleted: 0, expectations: {} });
    const bad = await cli(['-R', 'internal']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("-R takes ct, expect or nothing, not 'internal'");
  }, 60_000);

  it('a helper-scoped expectation flush deletes only that helper\'s expectations (CTA_EXPECT_HELP_NAME)', async () => {
    await addExpectations();
    expect(await count('expect')).toBe(2);
    await link.flushExpectations(0, 'tftp');
    const left = (await ns.exec('conntrack', ['-L', 'expect'])).stdout;
    expect(left).toContain('helper=ftp');
    expect(left).not.toContain('helper=tftp');
    await link.flushExpectations();
    expect(await count('expect')).toBe(0);
  }, 60_000);

  it('-C with a conntrackd.conf exits 1 and points to import-conntrackd', async () => {
    const conf = join(dir, 'conntrackd.conf');
    writeFileSync(conf, 'General {\n  HashSize 8192\n}\nSync {\n  Mode FTFW {\n  }\n}\n');
    for (const flag of [['-s'], ['-c'], ['-F', 'expect']]) {
      const r = await run('ip', ['netns', 'exec', ns.name, 'node', BIN, '-C', conf, ...flag]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code?: number; stderr?: string }) => ({ code: e.code, stderr: e.stderr ?? '' }),
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`ctsyncd import-conntrackd ${conf}`);
      expect(r.stderr).toContain('(ECONNTRACKD_CONF)');
    }
    // Nothing was flushed by it.
    await addExpectations();
    expect(await count('expect')).toBe(2);
  }, 60_000);

  it('-v prints the version', async () => {
    const r = await cli(['-v']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});

describe('kernel.eventsReliable on the real kernel', () => {
  const udp = (i: number): ConntrackEntry => ({
    family: AF_INET,
    orig: { src: `10.99.${200 + ((i >> 8) & 15)}.${i & 255}`, dst: '10.98.7.1', proto: IPPROTO.UDP, sport: 2000 + i, dport: 53 },
    reply: { src: '10.98.7.1', dst: `10.99.${200 + ((i >> 8) & 15)}.${i & 255}`, proto: IPPROTO.UDP, sport: 53, dport: 2000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 600,
  });

  it('with NETLINK_BROADCAST_ERROR and NETLINK_NO_ENOBUFS no overrun is reported and every destroy event arrives, through a 4 KiB buffer', async () => {
    const ns = await createNetns('clrl');
    const events = new ConntrackEvents({ netns: ns.path, receiveBufferBytes: 4096, reliable: true });
    const link = new ConntrackLink({ netns: ns.path });
    try {
      let overruns = 0;
      const destroyed = new Set<string>();
      events.start({
        onEvent: (e) => {
          if (e.type === 'destroy') destroyed.add(e.entry.orig.src + ':' + String(e.entry.orig.sport));
        },
        onOverrun: () => overruns++,
      });
      const n = 2000;
      const r = await link.batch(Array.from({ length: n }, (_, i) => ({ op: 'create' as const, entry: udp(i) })));
      expect(r.ok).toBe(n);
      // One request deletes them all: far more destroy events than 4 KiB holds at once.
      await link.flush();
      await waitFor(() => destroyed.size === n, `${n} destroy events (have ${destroyed.size})`, 30_000);
      expect(overruns).toBe(0);
      expect(events.counters.overruns).toBe(0);
    } finally {
      events.close();
      link.close();
      await ns.destroy();
    }
  }, 60_000);
});
