// The flow log's syslog output on the real kernel and a real Unix datagram
// socket (issue 16): the daemon runs in a namespace of its own (Stats mode)
// and sends one RFC 5424 message per record to a socket socat binds in a
// temporary directory (never the host's /dev/log). Then the receiver is
// stopped (SIGSTOP): its queue fills, the daemon's sends fail with EAGAIN,
// are counted, and the daemon keeps answering: it never blocks on syslog.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlowRecord } from '../../src/flowlog/index.js';
import type { FlowlogSnapshot } from '../../src/stats/source.js';
import { waitFor } from './helpers/cluster.js';
import { createNetns, type Netns } from './helpers/netns.js';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');

const namespaces: Netns[] = [];
const children: ChildProcess[] = [];
let dir: string | undefined;

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) continue;
    const exited = new Promise((r) => c.once('exit', r));
    // A stopped receiver would not act on SIGTERM.
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  for (const n of namespaces.splice(0)) await n.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The messages socat wrote, one after the other (a datagram carries no separator): split at each header. */
function messages(path: string): string[] {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  return text.split(/(?=<\d{1,3}>1 )/).filter((m) => m !== '');
}

const HEADER = /^<166>1 (\S+) (\S+) ctsyncd (\d+) (new|destroy) - /;

describe('flow log to syslog', () => {
  it('one RFC 5424 message per record to the configured socket; a receiver that stops reading costs counted drops, never a blocked daemon', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctsyncd-ixl-'));
    const sock = join(dir, 'log');
    const out = join(dir, 'received');
    const receiver = spawn('socat', ['-u', `UNIX-RECV:${sock}`, `OPEN:${out},creat,append`], { stdio: 'ignore' });
    children.push(receiver);
    await waitFor(() => existsSync(sock), 'the receiving socket', 10_000);

    const ns = await createNetns('ixl');
    namespaces.push(ns);
    const config = join(dir, 'fw.yaml');
    const control = join(dir, 'ixl.sock');
    writeFileSync(
      config,
      [
        `node: { id: fw1, stateDir: ${join(dir, 'state')} }`,
        `control: { socket: ${control} }`,
        'metrics: { enabled: false }',
        'log: { level: debug, format: text }',
        `flowlog: { events: [new, destroy], syslog: { facility: local4, path: ${sock} } }`,
        '',
      ].join('\n'),
    );
    const stderr: string[] = [];
    const daemon = spawn('ip', ['netns', 'exec', ns.name, 'node', BIN, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(daemon);
    daemon.stderr?.setEncoding('utf8');
    daemon.stderr?.on('data', (d: string) => {
      stderr.push(d);
      if (stderr.length > 500) stderr.splice(0, 250);
    });
    const diag = () => stderr.join('').slice(-3000);
    await waitFor(() => stderr.join('').includes('ctsyncd started'), 'the daemon started', 30_000, diag);
    const stats = async (): Promise<FlowlogSnapshot> =>
      (JSON.parse((await ns.exec('node', [BIN, '--config', config, 'stats', '--json'])).stdout) as { flowlog: FlowlogSnapshot }).flowlog;

    const udp = (i: number) => ['-p', 'udp', '-s', '10.99.7.2', '-d', '10.99.8.2', '--sport', String(30000 + i), '--dport', '53'];
    for (let i = 0; i < 5; i++) await ns.exec('conntrack', ['-I', ...udp(i), '-t', '60']);
    for (let i = 0; i < 5; i++) await ns.exec('conntrack', ['-D', ...udp(i)]);
    await waitFor(() => messages(out).length >= 10, 'ten messages received', 20_000, diag);
    const got = messages(out);
    expect(got).toHaveLength(10);
    const parsed = got.map((m) => {
      const h = HEADER.exec(m);
      expect(h, m).not.toBeNull();
      return { time: h![1]!, pid: Number(h![3]), kind: h![4]!, rec: JSON.parse(m.slice(h![0].length)) as FlowRecord };
    });
    for (const p of parsed) {
      expect(p.kind).toBe(p.rec.event);
      expect(p.time).toBe(p.rec.time);
      expect(p.rec.orig).toMatchObject({ src: '10.99.7.2', dst: '10.99.8.2', dport: 53 });
    }
    expect(parsed.filter((p) => p.kind === 'new').map((p) => p.rec.orig.sport).sort()).toEqual([30000, 30001, 30002, 30003, 30004]);
    expect(parsed.filter((p) => p.kind === 'destroy')).toHaveLength(5);
    expect(await stats()).toMatchObject({ logged: 10, dropped: 0, syslog: { path: sock, sent: 10, unsent: 0, busy: 0 } });

    // The receiver stops reading: its queue (net.unix.max_dgram_qlen) fills within a few messages.
    process.kill(receiver.pid!, 'SIGSTOP');
    const N = 200;
    const batch = join(dir, 'batch');
    // One conntrack process for all of them: -I from a file of rules is not available, so a shell loop in the namespace.
    writeFileSync(batch, Array.from({ length: N }, (_, i) => `conntrack -I ${udp(100 + i).join(' ')} -t 60 2>/dev/null`).join('\n'));
    await ns.exec('sh', [batch], { timeoutMs: 60_000 });
    await waitFor(async () => (await stats()).logged === 10 + N, `${N} more records logged`, 30_000, diag);
    // The daemon answered all along; every record is either sent or counted.
    const s = await stats();
    expect(s.syslog!.busy).toBeGreaterThan(0);
    expect(s.syslog!.sent + s.syslog!.unsent).toBe(10 + N);
    expect(s.dropped).toBe(s.syslog!.unsent);
    expect(stderr.join('')).toMatch(/syslog socket refused a flow record/);
    process.kill(receiver.pid!, 'SIGCONT');
    await waitFor(() => messages(out).length >= s.syslog!.sent, 'the queued messages read', 20_000, diag);
    expect(messages(out)).toHaveLength(s.syslog!.sent);
  }, 120_000);
});
