// systemd's notify protocol against a real receiver (socat on a Unix datagram
// socket standing in for systemd): READY=1 only once the daemon is ready,
// STATUS= lines, watchdog pings, STOPPING=1 on SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SystemdNotifier } from '../../src/systemd/notify.js';
import { Cluster, waitFor } from './helpers/cluster.js';

const BIN = resolve(import.meta.dirname, '../../bin/ctsyncd');

describe('SystemdNotifier', () => {
  it('does nothing without NOTIFY_SOCKET and sends the sd_notify lines with it', () => {
    const sent: string[] = [];
    const off = new SystemdNotifier({ env: {}, send: () => 0 });
    off.notifyReady('x');
    expect(off.enabled).toBe(false);
    const n = new SystemdNotifier({
      env: { NOTIFY_SOCKET: '@sd', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' },
      pid: 42,
      send: (path, d) => {
        sent.push(`${path} ${d.toString()}`);
        return 0;
      },
    });
    expect(n.watchdogIntervalMs).toBe(15_000);
    n.status('reading');
    n.status('reading');
    n.notifyReady('ready now');
    n.notifyReady('again');
    n.watchdog();
    n.stopping();
    expect(sent).toEqual([
      '@sd STATUS=reading',
      '@sd READY=1\nSTATUS=ready now\nMAINPID=42',
      '@sd WATCHDOG=1',
      '@sd STOPPING=1\nSTATUS=stopping',
    ]);
    // Another process's watchdog is not ours to ping.
    expect(new SystemdNotifier({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1000', WATCHDOG_PID: '1' }, pid: 2 }).watchdogIntervalMs).toBeUndefined();
  });
});

describe('Type=notify on a real daemon', () => {
  let c: Cluster | undefined;
  let receiver: ChildProcess | undefined;
  let daemon: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-sd-'));

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    if (receiver && receiver.exitCode === null) receiver.kill('SIGKILL');
    await c?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('READY=1 after the dump and the first peer sync attempt; watchdog; STOPPING=1', async () => {
    c = await Cluster.create({ nodes: 2, transport: 'udp' });
    const sock = join(dir, 'notify.sock');
    const got: string[] = [];
    receiver = spawn('socat', ['-u', `UNIX-RECV:${sock}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
    receiver.stdout?.on('data', (d: Buffer) => got.push(d.toString()));
    await waitFor(() => {
      try {
        return statSync(sock).isSocket();
      } catch {
        return false;
      }
    }, 'socat listening', 5000);
    const n = c.node('fw1');
    daemon = spawn('ip', ['netns', 'exec', n.ns.name, 'node', BIN, '--config', n.configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' },
    });
    const text = () => got.join('');
    await waitFor(() => text().includes('READY=1'), 'READY=1', 20_000);
    // Ready means ready: the control socket already answers with ready=true.
    const s = (await c.request('fw1', 'stats')) as { ready: boolean };
    expect(s.ready).toBe(true);
    expect(text().indexOf('STATUS=reading the kernel conntrack table')).toBeLessThan(text().indexOf('READY=1'));
    expect(text()).toMatch(/READY=1\nSTATUS=0 local and 0 peer connections; 0\/0 peers up; not in sync/);
    await waitFor(() => text().includes('WATCHDOG=1'), 'watchdog ping', 5000);
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
    await waitFor(() => text().includes('STOPPING=1'), 'STOPPING=1', 5000);
  }, 60_000);
});
