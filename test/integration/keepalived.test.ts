// keepalived integration on real daemons: the track_file says whether the
// node holds its peers' state, and keepalived's notify FIFO (read by the
// daemon itself, or by the keepalived-fifo client) runs the failover steps.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { tcpEntry } from './helpers/entries.js';

const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');
const run = promisify(execFile);
const N = 500;

interface Stats {
  internal: { entries: number };
  external: { entries: number };
  commit: { commits: number };
  failover: { inSync: boolean; trackValue: number | null; keepalivedState: string | null };
}

function notify(fifo: string, line: string): void {
  // O_NONBLOCK: fails at once (ENXIO) instead of hanging when nobody reads.
  const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    writeSync(fd, `${line}\n`);
  } finally {
    closeSync(fd);
  }
}

describe('keepalived: track_file and notify FIFO', () => {
  let c: Cluster;
  let link: ConntrackLink | undefined;
  let client: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-ka-'));
  const stats = async (id: string) => (await c.request(id, 'stats')) as Stats;
  const track = () => readFileSync(join(dir, 'fw2.track'), 'utf8').trim();

  beforeAll(async () => {
    c = await Cluster.create({
      nodes: 2,
      transport: 'udp',
      extraYaml: (id) =>
        id === 'fw2'
          ? `failover: { trackFile: ${join(dir, 'fw2.track')}, notifyFifo: ${join(dir, 'fw2.fifo')} }`
          : '',
    });
  }, 30_000);

  afterAll(async () => {
    if (client && client.exitCode === null) client.kill('SIGKILL');
    link?.close();
    await c?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a node without its peer’s state says so in the track_file until the bulk is in', async () => {
    c.start('fw2');
    await c.waitReady('fw2');
    // Alone: no peer heard, no state. keepalived lowers this node's priority.
    expect(track()).toBe('1');
    expect((await stats('fw2')).failover).toMatchObject({ inSync: false, trackValue: 1 });

    c.start('fw1');
    await c.waitReady('fw1');
    link = new ConntrackLink({ netns: c.node('fw1').ns.path });
    const items: BatchItem[] = [];
    for (let i = 0; i < N; i++) items.push({ op: 'create', entry: tcpEntry(i) });
    expect((await link.batch(items)).failures).toEqual({});
    await waitFor(async () => (await stats('fw2')).external.entries === N, 'fw2 external', 20_000);
    await waitFor(() => track() === '0', 'track_file 0 once in sync', 10_000);
    expect((await stats('fw2')).failover).toMatchObject({ inSync: true, trackValue: 0 });
  }, 60_000);

  it('the daemon runs keepalived’s MASTER and BACKUP sequences from its FIFO, in order', async () => {
    const fifo = join(dir, 'fw2.fifo');
    expect(existsSync(fifo)).toBe(true);
    notify(fifo, 'GROUP "G1" MASTER 0');
    // commit, flush, resync, bulk-send: the commit reached the kernel and the
    // connections are fw2's own now, which fw1 learns from the bulk.
    await waitFor(async () => (await stats('fw2')).internal.entries === N, 'fw2 resynced from its kernel', 20_000);
    const s = await stats('fw2');
    expect(s.commit.commits).toBe(1);
    expect(s.external.entries).toBe(0);
    expect(s.failover.keepalivedState).toBe('primary');
    await waitFor(async () => (await stats('fw1')).external.entries === N, 'fw1 learns them from the bulk', 20_000);
    const k = await c.node('fw2').ns.exec('conntrack', ['-C']);
    expect(Number.parseInt(k.stdout, 10)).toBe(N);

    notify(fifo, 'GROUP "G1" BACKUP 0');
    await waitFor(async () => (await stats('fw2')).failover.keepalivedState === 'backup', 'backup', 10_000);
    // purge-timeout: this node's copies now expire within a minute.
    await waitFor(
      async () => {
        const out = (await c.node('fw2').ns.exec('conntrack', ['-L', '-p', 'tcp'])).stdout.trim().split('\n');
        return out.every((l) => Number.parseInt(l.split(/\s+/)[2]!, 10) <= 60);
      },
      'purged timeouts',
      10_000,
    );
  }, 60_000);

  it('failover STATE: one command runs the whole sequence in the daemon, and a repeat does nothing', async () => {
    const n = c.node('fw2');
    const cli = (args: string[]) =>
      run('ip', ['netns', 'exec', n.ns.name, 'node', BIN, '--config', n.configPath, ...args]).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    // fw2 is backup now (previous test); primary runs commit, flush, resync, bulk-send.
    const p = await cli(['failover', 'primary']);
    expect(p.stderr).toBe('');
    expect(p.stdout.trim()).toBe('failover primary: 4 steps run, 0 failed');
    expect((await stats('fw2')).failover.keepalivedState).toBe('primary');
    const again = await cli(['failover', 'primary']);
    expect(again.stdout.trim()).toBe('failover primary: 0 steps run, 0 failed');
    const b = await cli(['failover', 'backup', '--json']);
    expect(JSON.parse(b.stdout)).toEqual({ state: 'backup', steps: 2, failed: 0 });
    const bad = await cli(['failover', 'sideways']);
    expect(bad.code).toBe(2);
  }, 60_000);

  it('keepalived-fifo: the client form drives a running daemon the same way', async () => {
    const fifo = join(dir, 'fw1.fifo');
    const n = c.node('fw1');
    client = spawn('ip', ['netns', 'exec', n.ns.name, 'node', BIN, '--config', n.configPath, 'keepalived-fifo', fifo], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const err: string[] = [];
    client.stderr?.on('data', (d: Buffer) => err.push(d.toString()));
    // The FIFO appears before the client has it open; until then a writer gets ENXIO.
    await waitFor(
      () => {
        try {
          notify(fifo, 'INSTANCE "VI_LAN" MASTER 150');
          return true;
        } catch {
          return false;
        }
      },
      'the client reading its FIFO',
      10_000,
      () => err.join(''),
    );
    await waitFor(async () => (await stats('fw1')).commit.commits === 1, 'fw1 committed', 20_000, () => err.join(''));
    const k = await n.ns.exec('conntrack', ['-C']);
    expect(Number.parseInt(k.stdout, 10)).toBe(N);
    const exited = new Promise((r) => client!.once('exit', r));
    client.kill('SIGTERM');
    await exited;
  }, 60_000);
});
