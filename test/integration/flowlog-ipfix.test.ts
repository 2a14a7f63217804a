// IPFIX export on the real kernel, checked by a real collector (issue 16):
// a client namespace behind a firewall namespace that source-NATs it on the
// way to a server namespace; the firewall's daemon (Stats mode, accounting
// and timestamps on) exports to nfdump's nfcapd in a collector namespace of
// its own. nfdump must read back the same flows, their post-NAT addresses
// and ports as `conntrack -L` shows them, the NAT events and the counters
// the JSON flow log wrote. Then the outputs failing under sync: two synced
// firewalls, the logging one's collector has no listener, or its file is on
// a full disk (/dev/full: every write ENOSPC); sync loses nothing and the
// records refused are counted.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { type BatchItem, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import type { FlowlogSnapshot } from '../../src/stats/source.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { conntrackList, records, tcpFlow } from './helpers/flows.js';
import { createNetns, type Netns, uniqueName } from './helpers/netns.js';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');

const namespaces: Netns[] = [];
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
let dir: string | undefined;

/** SIGTERM to a child we started, SIGKILL after 5 s; resolves once it exited. */
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

afterEach(async () => {
  for (const c of children.splice(0)) await stopChild(c);
  for (const f of cleanups.splice(0).reverse()) await f();
  for (const n of namespaces.splice(0)) await n.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The third octet of this run's subnets: inside A, outside A+1, collector A+2. */
const A = 40 + (process.pid % 30) * 3;
const INSIDE = `10.99.${A}.2`;
const FW_IN = `10.99.${A}.1`;
const FW_OUT = `10.99.${A + 1}.1`;
const SERVER = `10.99.${A + 1}.2`;
const FW_COL = `10.99.${A + 2}.1`;
const COLLECTOR = `10.99.${A + 2}.2`;

interface Topology {
  cl: Netns;
  fw: Netns;
  sv: Netns;
  col: Netns;
}

async function topology(): Promise<Topology> {
  const ns = async (tag: string): Promise<Netns> => {
    const n = await createNetns(tag);
    namespaces.push(n);
    return n;
  };
  const cl = await ns('ixc');
  const fw = await ns('ixf');
  const sv = await ns('ixs');
  const col = await ns('ixk');
  const va = uniqueName('ixa');
  const vb = uniqueName('ixb');
  const vc = uniqueName('ixd');
  await run('ip', ['link', 'add', va, 'netns', cl.name, 'type', 'veth', 'peer', 'name', 'in0', 'netns', fw.name]);
  await run('ip', ['link', 'add', vb, 'netns', sv.name, 'type', 'veth', 'peer', 'name', 'out0', 'netns', fw.name]);
  await run('ip', ['link', 'add', vc, 'netns', col.name, 'type', 'veth', 'peer', 'name', 'col0', 'netns', fw.name]);
  const ip = (n: Netns, ...args: string[]) => run('ip', ['-n', n.name, ...args]);
  await ip(cl, 'addr', 'add', `${INSIDE}/24`, 'dev', va);
  await ip(cl, 'link', 'set', va, 'up');
  await ip(cl, 'route', 'add', 'default', 'via', FW_IN);
  for (const [dev, addr] of [
    ['in0', FW_IN],
    ['out0', FW_OUT],
    ['col0', FW_COL],
  ] as const) {
    await ip(fw, 'addr', 'add', `${addr}/24`, 'dev', dev);
    await ip(fw, 'link', 'set', dev, 'up');
  }
  await ip(sv, 'addr', 'add', `${SERVER}/24`, 'dev', vb);
  await ip(sv, 'link', 'set', vb, 'up');
  await ip(col, 'addr', 'add', `${COLLECTOR}/24`, 'dev', vc);
  await ip(col, 'link', 'set', vc, 'up');
  await fw.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.netfilter.nf_conntrack_acct=1', 'net.netfilter.nf_conntrack_timestamp=1']);
  const rules = [
    'table ip ixnat {',
    `  chain post { type nat hook postrouting priority srcnat; oifname "out0" meta l4proto { tcp, udp } snat to ${FW_OUT}:42000-42999; }`,
    '}',
  ].join('\n');
  const file = join(dir!, 'nat.nft');
  writeFileSync(file, rules);
  await fw.exec('nft', ['-f', file]);
  return { cl, fw, sv, col };
}

function spawnIn(n: Netns, cmd: string, args: string[]): { child: ChildProcess; output: string[] } {
  const output: string[] = [];
  const child = spawn('ip', ['netns', 'exec', n.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout, child.stderr]) {
    s?.setEncoding('utf8');
    s?.on('data', (d: string) => {
      output.push(d);
      if (output.length > 500) output.splice(0, 250);
    });
  }
  children.push(child);
  return { child, output };
}

interface NfdumpFlow {
  proto: number;
  src4_addr: string;
  dst4_addr: string;
  src_port: number;
  dst_port: number;
  in_packets: number;
  in_bytes: number;
  out_packets?: number;
  out_bytes?: number;
  first: string;
  last: string;
  src4_xlt_ip?: string;
  dst4_xlt_ip?: string;
  src_xlt_port?: string;
  dst_xlt_port?: string;
  nat_event_id?: string;
}

async function flowlogStats(config: string, ns?: Netns): Promise<FlowlogSnapshot> {
  const args = [BIN, '--config', config, 'stats', '--json'];
  const out = ns ? await ns.exec('node', args) : await run('node', args);
  return (JSON.parse(out.stdout) as { flowlog: FlowlogSnapshot }).flowlog;
}

const PROTO = { tcp: IPPROTO.TCP, udp: IPPROTO.UDP } as const;

describe('IPFIX export read back by nfdump', () => {
  it('nfcapd receives the NAT sessions and finished flows of real TCP and UDP traffic as conntrack shows them', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctsyncd-ix-'));
    const { cl, fw, sv, col } = await topology();
    const flows = join(dir, 'nfcapd');
    mkdirSync(flows);
    const nfPort = 20000 + (process.pid % 10000);
    // -t 60: no rotation during the test; the SIGTERM at the end writes the file.
    const nfcapd = spawnIn(col, 'nfcapd', ['-w', flows, '-b', COLLECTOR, '-p', String(nfPort), '-t', '60']);
    await waitFor(
      async () => (await col.exec('ss', ['-Hlun', `sport = :${nfPort}`])).stdout.includes(`:${nfPort}`),
      'nfcapd listening',
      10_000,
      () => nfcapd.output.join(''),
    );

    const log = join(dir, 'flows.jsonl');
    const config = join(dir, 'fw.yaml');
    writeFileSync(
      config,
      [
        `node: { id: fw1, stateDir: ${join(dir, 'state')} }`,
        `control: { socket: ${join(dir, 'ix.sock')} }`,
        'metrics: { enabled: false }',
        'log: { level: debug, format: text }',
        'flowlog:',
        '  events: [new, destroy]',
        `  file: { path: ${log}, durability: fsync }`,
        `  ipfix: { collector: "${COLLECTOR}:${nfPort}", observationDomainId: 42 }`,
        '',
      ].join('\n'),
    );
    expect((await run('node', [BIN, 'check-config', config])).stdout).toContain(`flow log ${log} + ipfix ${COLLECTOR}:${nfPort}`);
    const d = spawnIn(fw, 'node', [BIN, '--config', config]);
    const diag = () => `${d.output.join('').slice(-3000)}\nnfcapd: ${nfcapd.output.join('').slice(-1000)}`;
    await waitFor(() => d.output.join('').includes('ctsyncd started'), 'the daemon started', 30_000, diag);

    const port = 19000 + (process.pid % 1000);
    await tcpFlow(cl, sv, SERVER, 36001, port, children);
    await cl.exec('sh', ['-c', `printf 'ping\\n' | socat -T 1 - UDP:${SERVER}:${port + 1},sourceport=36002; true`], { timeoutMs: 10_000 });
    const tcp = (await conntrackList(fw, 'tcp')).find((c) => c.orig.src === INSIDE && c.orig.sport === 36001);
    const udp = (await conntrackList(fw, 'udp')).find((c) => c.orig.src === INSIDE && c.orig.sport === 36002);
    expect(tcp, 'conntrack -L shows the TCP flow').toBeDefined();
    expect(udp, 'conntrack -L shows the UDP flow').toBeDefined();
    expect(tcp!.reply.dst).toBe(FW_OUT);
    await fw.exec('conntrack', ['-D', '-p', 'tcp', '--orig-src', INSIDE]);
    await fw.exec('conntrack', ['-D', '-p', 'udp', '--orig-src', INSIDE]);
    await waitFor(() => records(log).filter((r) => r.event === 'destroy').length >= 2, 'two destroy records', 20_000, diag);
    // Two NAT session creates and two finished flows, taken by the kernel.
    await waitFor(async () => ((await flowlogStats(config)).ipfix?.records ?? 0) >= 4, 'four IPFIX records sent', 20_000, diag);
    const stats = await flowlogStats(config);
    expect(stats.ipfix).toMatchObject({ collector: `${COLLECTOR}:${nfPort}`, unsent: 0, sendErrors: 0, invalid: 0 });
    expect(stats.ipfix!.templates).toBeGreaterThanOrEqual(1);

    await stopChild(nfcapd.child);
    // nfcapd's own count on exit: every message arrived in sequence.
    expect(nfcapd.output.join('')).toMatch(/Sequence Errors: 0/);
    const dumped = await run('nfdump', ['-R', flows, '-o', 'json'], { env: { ...process.env, TZ: 'UTC' }, maxBuffer: 64 * 1024 * 1024 });
    const got = JSON.parse(dumped.stdout) as NfdumpFlow[];
    const recs = records(log);

    for (const ct of [tcp!, udp!]) {
      const mine = got.filter((f) => f.proto === PROTO[ct.proto] && f.src4_addr === INSIDE && f.src_port === ct.orig.sport);
      // NAT44 session create (4) when the flow began, delete (5) when it ended.
      expect(mine.map((f) => f.nat_event_id)).toEqual(['4', '5']);
      for (const f of mine) {
        expect([f.src4_addr, f.dst4_addr, f.src_port, f.dst_port]).toEqual([ct.orig.src, ct.orig.dst, ct.orig.sport, ct.orig.dport]);
        // The post-NAT side is the reply tuple turned round.
        expect([f.src4_xlt_ip, f.dst4_xlt_ip, f.src_xlt_port, f.dst_xlt_port]).toEqual([
          ct.reply.dst,
          ct.reply.src,
          String(ct.reply.dport),
          String(ct.reply.sport),
        ]);
      }
      // The finished flow: the kernel's timestamps and counters, the same the JSON record carries.
      const destroy = recs.find((r) => r.event === 'destroy' && r.proto === ct.proto && r.orig.sport === ct.orig.sport)!;
      const end = mine[1]!;
      expect([end.in_packets, end.in_bytes, end.out_packets ?? 0, end.out_bytes ?? 0]).toEqual([
        destroy.counters!.orig.packets,
        destroy.counters!.orig.bytes,
        destroy.counters!.reply.packets,
        destroy.counters!.reply.bytes,
      ]);
      expect(end.in_packets).toBeGreaterThan(0);
      // nfdump prints milliseconds without a zone (TZ=UTC above); the record's are ISO 8601 in UTC.
      expect(`${end.first}Z`).toBe(destroy.start);
      expect(`${end.last}Z`).toBe(destroy.stop);
    }
    const tcpEnd = got.find((f) => f.proto === IPPROTO.TCP && f.src_port === 36001 && f.nat_event_id === '5')!;
    expect(tcpEnd.out_packets).toBeGreaterThan(0);
  }, 120_000);
});

describe('a full disk', () => {
  it('costs sync nothing; the lines it could not write are counted', async () => {
    const N = 200;
    const c = await Cluster.create({
      nodes: 2,
      transport: 'udp',
      tag: 'fd',
      extraYaml: (id) => (id === 'fw1' ? 'flowlog: { events: [new, destroy], file: { path: /dev/full, durability: fsync } }' : ''),
    });
    cleanups.push(() => c.destroy());
    const fw1 = c.node('fw1');
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    const link = new ConntrackLink({ netns: fw1.ns.path });
    cleanups.push(() => link.close());
    const external = async () => ((await c.request('fw2', 'stats')) as { external: { entries: number } }).external.entries;
    const diag = () => fw1.stderr.join('').slice(-3000);

    const items: BatchItem[] = [];
    for (let i = 0; i < N; i++) items.push({ op: 'create', entry: snatEntry(i) });
    expect((await link.batch(items)).failures).toEqual({});
    await waitFor(async () => (await external()) === N, `fw2 holds ${N} entries`, 30_000, diag);
    const del: BatchItem[] = [];
    for (let i = 0; i < N; i++) del.push({ op: 'delete', entry: snatEntry(i) });
    await link.batch(del);
    await waitFor(async () => (await external()) === 0, 'fw2 holds none', 30_000, diag);

    const flowlog = async () => ((await c.request('fw1', 'stats')) as { flowlog: FlowlogSnapshot }).flowlog;
    // A create and a delete per entry: every line either written or counted as lost (the disk takes none).
    await waitFor(async () => (await flowlog()).lost === 2 * N, 'every line counted as lost', 20_000, diag);
    const s = await flowlog();
    expect(s).toMatchObject({ file: '/dev/full', queued: 2 * N, logged: 2 * N, written: 0, lost: 2 * N, dropped: 2 * N, queueFull: 0 });
    expect(s.writeErrors).toBeGreaterThan(0);
    // Said once for the kind of failure, not once per batch.
    expect(fw1.stderr.join('').match(/flow log: write failed/g)).toHaveLength(1);
    expect(fw1.stderr.join('')).toMatch(/ENOSPC/);
  }, 120_000);
});

/** A masqueraded connection i: 10.96.x.y:40000 → 10.97.0.2:80, leaving as 10.95.0.1:<20000 + i>. */
function snatEntry(i: number): ConntrackEntry {
  const src = `10.96.${(i >> 8) & 255}.${i & 255}`;
  return {
    family: AF_INET,
    orig: { src, dst: '10.97.0.2', proto: IPPROTO.TCP, sport: 40000, dport: 80 },
    reply: { src: '10.97.0.2', dst: '10.95.0.1', proto: IPPROTO.TCP, sport: 80, dport: 20000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
    timeout: 7200,
    mark: 0,
    protoinfo: { tcp: { state: 3 } },
  };
}

describe('a collector that is down', () => {
  it('costs sync nothing; the records it refused are counted', async () => {
    const N = 200;
    // fw1 exports to fw2's sync address, where no collector listens: fw2's kernel answers port unreachable.
    const c = await Cluster.create({
      nodes: 2,
      transport: 'udp',
      tag: 'ix',
      extraYaml: (id) => (id === 'fw1' ? 'flowlog: { events: [new, destroy], ipfix: { collector: "COLLECTOR" } }' : ''),
    });
    cleanups.push(() => c.destroy());
    const fw1 = c.node('fw1');
    writeFileSync(fw1.configPath, readFileSync(fw1.configPath, 'utf8').replace('COLLECTOR', `${c.node('fw2').syncAddress}:4739`));
    for (const n of c.nodes) await n.ns.exec('nft', ['add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }']);
    c.start('fw1');
    c.start('fw2');
    await c.waitReady('fw1');
    await c.waitReady('fw2');
    const link = new ConntrackLink({ netns: fw1.ns.path });
    cleanups.push(() => link.close());
    const external = async () => ((await c.request('fw2', 'stats')) as { external: { entries: number } }).external.entries;
    const diag = () => fw1.stderr.join('').slice(-3000);

    // Two rounds: the port unreachable the first round's messages brought back fails the second round's sends.
    for (const [from, to] of [
      [0, N / 2],
      [N / 2, N],
    ] as const) {
      const items: BatchItem[] = [];
      for (let i = from; i < to; i++) items.push({ op: 'create', entry: snatEntry(i) });
      expect((await link.batch(items)).failures).toEqual({});
      await waitFor(async () => (await external()) === to, `fw2 holds ${to} entries`, 30_000, diag);
    }
    const del: BatchItem[] = [];
    for (let i = 0; i < N; i++) del.push({ op: 'delete', entry: snatEntry(i) });
    await link.batch(del);
    await waitFor(async () => (await external()) === 0, 'fw2 holds none', 30_000, diag);

    const flowlog = async () => ((await c.request('fw1', 'stats')) as { flowlog: FlowlogSnapshot }).flowlog;
    // Every exported record (a create and a delete per entry) is either taken by the kernel or counted as not sent.
    await waitFor(
      async () => {
        const ix = (await flowlog()).ipfix;
        return ix !== undefined && ix.inFlight === 0 && ix.records + ix.unsent === 2 * N;
      },
      'every record sent or counted',
      20_000,
      diag,
    );
    const s = await flowlog();
    const ix = s.ipfix!;
    expect(s.queueFull).toBe(0);
    expect(ix.sendErrors).toBeGreaterThan(0);
    expect(ix.unsent).toBeGreaterThan(0);
    expect(s.dropped).toBe(ix.unsent);
    expect(fw1.stderr.join('')).toMatch(/IPFIX message not sent/);
  }, 120_000);
});
