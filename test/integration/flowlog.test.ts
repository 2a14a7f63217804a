// The flow log on the real kernel (issue 16): a client namespace behind a
// firewall namespace that source-NATs it to 10.99.x.1 on the way to a
// server namespace. The daemon runs in the firewall without sync
// (conntrackd's Stats mode) with accounting and timestamps on. Real TCP and
// UDP flows must give records whose tuples and NAT match `conntrack -L`,
// destroy records must carry the counters, a SIGUSR1 after the file was
// moved must lose no line, and `flows find` must name the client for the
// public address and port at that time, and nothing an hour before.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { conntrackList, records, tcpFlow } from './helpers/flows.js';
import { createNetns, type Netns, uniqueName } from './helpers/netns.js';
import { waitFor } from './helpers/cluster.js';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');

const namespaces: Netns[] = [];
const children: ChildProcess[] = [];
let dir: string | undefined;

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.pid !== undefined) {
      c.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(r, 5000);
        c.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
      });
      if (c.exitCode === null) c.kill('SIGKILL');
    }
  }
  for (const n of namespaces.splice(0)) await n.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The third octet of this run's two subnets: 10.99.A.0/24 inside, 10.99.A+1.0/24 outside. */
const A = 160 + (process.pid % 40) * 2;
const INSIDE = `10.99.${A}.2`;
const FW_IN = `10.99.${A}.1`;
const FW_OUT = `10.99.${A + 1}.1`;
const SERVER = `10.99.${A + 1}.2`;

async function topology(): Promise<{ cl: Netns; fw: Netns; sv: Netns }> {
  const cl = await createNetns('flc');
  namespaces.push(cl);
  const fw = await createNetns('flf');
  namespaces.push(fw);
  const sv = await createNetns('fls');
  namespaces.push(sv);
  const va = uniqueName('fla');
  const vb = uniqueName('flb');
  await run('ip', ['link', 'add', va, 'netns', cl.name, 'type', 'veth', 'peer', 'name', 'in0', 'netns', fw.name]);
  await run('ip', ['link', 'add', vb, 'netns', sv.name, 'type', 'veth', 'peer', 'name', 'out0', 'netns', fw.name]);
  const ip = (ns: Netns, ...args: string[]) => run('ip', ['-n', ns.name, ...args]);
  await ip(cl, 'addr', 'add', `${INSIDE}/24`, 'dev', va);
  await ip(cl, 'link', 'set', va, 'up');
  await ip(cl, 'route', 'add', 'default', 'via', FW_IN);
  await ip(fw, 'addr', 'add', `${FW_IN}/24`, 'dev', 'in0');
  await ip(fw, 'addr', 'add', `${FW_OUT}/24`, 'dev', 'out0');
  await ip(fw, 'link', 'set', 'in0', 'up');
  await ip(fw, 'link', 'set', 'out0', 'up');
  await ip(sv, 'addr', 'add', `${SERVER}/24`, 'dev', vb);
  await ip(sv, 'link', 'set', vb, 'up');
  // The server knows no route back to the inside: only the NAT makes its replies arrive.
  await fw.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.netfilter.nf_conntrack_acct=1', 'net.netfilter.nf_conntrack_timestamp=1']);
  const rules = [
    'table ip flnat {',
    '  chain post { type nat hook postrouting priority srcnat; oifname "out0" meta l4proto { tcp, udp } snat to ' + FW_OUT + ':41000-41999; }',
    '}',
  ].join('\n');
  const file = join(dir!, 'nat.nft');
  writeFileSync(file, rules);
  await fw.exec('nft', ['-f', file]);
  return { cl, fw, sv };
}

function startDaemon(fw: Netns, config: string): { child: ChildProcess; stderr: string[] } {
  const stderr: string[] = [];
  const child = spawn('ip', ['netns', 'exec', fw.name, 'node', BIN, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr.push(d);
    if (stderr.length > 500) stderr.splice(0, 250);
  });
  children.push(child);
  return { child, stderr };
}

describe('flow log on the real kernel (Stats mode)', () => {
  it('logs real NAT flows as conntrack sees them, survives a SIGUSR1 reopen, and flows find names the inside host', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctsyncd-fl-'));
    const { cl, fw, sv } = await topology();
    const log = join(dir, 'flows.jsonl');
    const config = join(dir, 'fw.yaml');
    writeFileSync(
      config,
      [
        `node: { id: fw1, stateDir: ${join(dir, 'state')} }`,
        `control: { socket: ${join(dir, 'fl.sock')} }`,
        'metrics: { enabled: false }',
        'log: { level: debug, format: text }',
        `flowlog: { events: [new, destroy], file: { path: ${log}, durability: fsync } }`,
        '',
      ].join('\n'),
    );
    expect((await run('node', [BIN, 'check-config', config])).stdout).toContain('no sync, flow log');
    const d = startDaemon(fw, config);
    const diag = () => d.stderr.join('').slice(-3000);
    await waitFor(() => d.stderr.join('').includes('ctsyncd started'), 'the daemon started', 30_000, diag);

    const port = 18000 + (process.pid % 1000);
    const before = Date.now();
    await tcpFlow(cl, sv, SERVER, 35001, port, children);
    // Nobody listens: the server's port unreachable ends socat, the flow stays in the table.
    await cl.exec('sh', ['-c', `printf 'ping\\n' | socat -T 1 - UDP:${SERVER}:${port + 1},sourceport=35002; true`], { timeoutMs: 10_000 });
    const tcp = (await conntrackList(fw, 'tcp')).find((c) => c.orig.src === INSIDE && c.orig.sport === 35001);
    const udp = (await conntrackList(fw, 'udp')).find((c) => c.orig.src === INSIDE && c.orig.sport === 35002);
    expect(tcp, 'conntrack -L shows the TCP flow').toBeDefined();
    expect(udp, 'conntrack -L shows the UDP flow').toBeDefined();
    // The NAT as the kernel did it: to the firewall's outside address, in the configured port range.
    expect(tcp!.reply.dst).toBe(FW_OUT);
    // End both flows now rather than after their timeouts: destroy events with the final counters.
    await fw.exec('conntrack', ['-D', '-p', 'tcp', '--orig-src', INSIDE]);
    await fw.exec('conntrack', ['-D', '-p', 'udp', '--orig-src', INSIDE]);
    await waitFor(() => records(log).filter((r) => r.event === 'destroy').length >= 2, 'two destroy records', 20_000, diag);
    const after = Date.now();

    const recs = records(log);
    for (const ct of [tcp!, udp!]) {
      const mine = recs.filter((r) => r.proto === ct.proto && r.orig.src === INSIDE && r.orig.sport === ct.orig.sport);
      expect(mine.map((r) => r.event)).toEqual(['new', 'destroy']);
      for (const r of mine) {
        expect(r.orig).toEqual(ct.orig);
        expect(r.reply).toEqual(ct.reply);
        expect(r.nat).toEqual({ src: ct.reply.dst, sport: ct.reply.dport });
        expect(r.family).toBe('ipv4');
        expect(typeof r.id).toBe('number');
      }
      // ctnetlink sends the timestamps and counters with destroy events only.
      expect(mine[0]).not.toHaveProperty('start');
      expect(Date.parse(mine[0]!.time)).toBeGreaterThanOrEqual(before - 1000);
      const destroy = mine[1]!;
      expect(Date.parse(destroy.start!)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(destroy.stop!)).toBeLessThanOrEqual(after + 1000);
      expect(destroy.counters!.orig.packets).toBeGreaterThan(0);
      expect(destroy.counters!.orig.bytes).toBeGreaterThan(0);
    }
    const tcpDestroy = recs.find((r) => r.event === 'destroy' && r.proto === 'tcp' && r.orig.sport === 35001)!;
    // The TCP exchange went both ways: the server echoed the line back.
    expect(tcpDestroy.counters!.reply.packets).toBeGreaterThan(0);

    // logrotate: move the file, SIGUSR1, more flows; every line lands in one of the two files.
    const moved = `${log}.1`;
    renameSync(log, moved);
    process.kill(d.child.pid!, 'SIGUSR1');
    await waitFor(() => d.stderr.join('').includes('flow log reopened'), 'the reopen', 10_000, diag);
    await tcpFlow(cl, sv, SERVER, 35003, port + 2, children);
    await waitFor(() => records(log).some((r) => r.orig.sport === 35003), 'a record in the reopened file', 20_000, diag);

    const stats = JSON.parse((await run('node', [BIN, '--config', config, 'stats', '--json'])).stdout) as {
      flowlog: { logged: number; written: number; dropped: number; reopens: number };
    };
    expect(stats.flowlog).toMatchObject({ dropped: 0, reopens: 1 });
    expect(records(moved).length + records(log).length).toBe(stats.flowlog.written);

    // The complaint: who was FW_OUT:port at that moment?
    const publicPort = tcp!.reply.dport;
    const at = new Date((Date.parse(tcpDestroy.start!) + Date.parse(tcpDestroy.stop!)) / 2).toISOString();
    const found = await run('node', [BIN, 'flows', 'find', '--json', '--nat', `${FW_OUT}:${publicPort}`, '--at', at, log, moved]);
    const answer = JSON.parse(found.stdout) as { matches: Array<{ inside: { addr: string; port: number }; proto: string }> };
    expect(answer.matches.map((m) => [m.proto, m.inside.addr, m.inside.port])).toEqual([['tcp', INSIDE, 35001]]);
    // And nothing an hour earlier: exit 1.
    const earlier = new Date(Date.parse(at) - 3600_000).toISOString();
    await expect(run('node', [BIN, 'flows', 'find', '--nat', `${FW_OUT}:${publicPort}`, '--at', earlier, log, moved])).rejects.toMatchObject({ code: 1 });
  }, 120_000);
});
