#!/usr/bin/env node
// bench/run: ctsyncd against the Debian conntrackd 1.4.7 on identical
// workloads, in the same run, alternating (ctsyncd, conntrackd, ctsyncd, …).
// Each run gets fresh namespaces fw1 and fw2 joined by a veth sync link
// (10.99.x.y, UDP unicast for both daemons, FTFW/ftfw), N established TCP
// entries are created in fw1's kernel by a batched ctnetlink injector, and:
//   replication  first insert → fw2's external cache holds all N
//   cpu          CPU seconds of both daemons ÷ N (from /proc/PID/stat)
//   rss          RSS growth ÷ N: fw1 (internal cache) and fw2 (external cache)
//   datagrams    entries per datagram sent on fw1's sync link
//   commit       `-c` on fw2 (each daemon's own client, as a notify script
//                runs it) → all N in fw2's kernel (conntrack -C)
// Run as root after `npm ci`:
//   node bench/run.mjs [--n 100000] [--pairs 3] [--write]
// --write appends the table, the command and the date to BENCHMARKS.md.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { controlRequest } from '../dist/control/client.js';
import { ConntrackLink } from '../dist/kernel/conntrack-link.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');
const CONNTRACKD = '/usr/sbin/conntrackd';
const NOTIFY = join(ROOT, 'contrib', 'keepalived', 'primary-backup.sh');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const N = Number(arg('n', 100_000));
const PAIRS = Number(arg('pairs', 3));
const WRITE = process.argv.includes('--write');
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const WAIT_MS = Math.max(60_000, N / 1000 * 1000);

const cleanups = [];
const cleanupAll = () => {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      f();
    } catch {
      // best effort
    }
  }
};
process.on('SIGINT', () => {
  cleanupAll();
  process.exit(130);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Established TCP entry i: unique source per entry, up to 16 × 65536. */
function entry(i) {
  const src = `10.${80 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  return {
    family: 2,
    orig: { src, dst: '10.79.0.1', proto: 6, sport: 40000, dport: 443 },
    reply: { src: '10.79.0.1', dst: src, proto: 6, sport: 443, dport: 40000 },
    status: 0x6,
    timeout: 3600,
    protoinfo: { tcp: { state: 3 } },
  };
}

function procStat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const cpu = (Number(f[11]) + Number(f[12])) / TICK;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  return { cpu, rss };
}

async function txPackets(ns) {
  const j = JSON.parse((await run('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'sync0'])).stdout);
  return Number(j[0].stats64.tx.packets);
}

async function kernelCount(ns) {
  return Number((await run('ip', ['netns', 'exec', ns, 'conntrack', '-C'])).stdout.trim());
}

async function topology(dir) {
  const sfx = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const subnet = 1 + (randomBytes(1)[0] % 250);
  const nodes = [];
  for (const id of ['fw1', 'fw2']) {
    const ns = `bn${id}${sfx}`.slice(0, 15);
    await run('ip', ['netns', 'add', ns]);
    cleanups.push(() => execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }));
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    nodes.push({ id, ns, addr: `10.99.${subnet}.${nodes.length + 1}`, dir });
  }
  const a = `vb${randomBytes(4).toString('hex')}`;
  const b = `vb${randomBytes(4).toString('hex')}`;
  await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  for (const [i, ifn] of [a, b].entries()) {
    const n = nodes[i];
    await run('ip', ['link', 'set', ifn, 'netns', n.ns]);
    await run('ip', ['-n', n.ns, 'link', 'set', ifn, 'name', 'sync0']);
    await run('ip', ['-n', n.ns, 'addr', 'add', `${n.addr}/24`, 'dev', 'sync0']);
    await run('ip', ['-n', n.ns, 'link', 'set', 'sync0', 'up']);
  }
  return nodes;
}

const daemons = {
  ctsyncd: {
    config(n, peer) {
      const path = join(n.dir, `${n.id}.yaml`);
      n.socket = join(n.dir, `${n.id}.sock`);
      writeFileSync(
        path,
        [
          `node: { id: ${n.id} }`,
          'cluster: { id: 1 }',
          `sync: { transport: udp, udp: { bind: ${n.addr}, port: 3790, peers: [${peer.addr}] } }`,
          'kernel: { netlinkBufferBytes: 67108864 }',
          `cache: { internalLimit: ${N + 1000}, externalLimit: ${N + 1000} }`,
          `control: { socket: ${n.socket} }`,
          'log: { level: warn }',
          'metrics: { enabled: false }',
        ].join('\n'),
      );
      return path;
    },
    argv: (conf) => ['node', BIN, '--config', conf],
    async ready(n) {
      const s = await controlRequest(n.socket, 'stats', {}, { timeoutMs: 2000 }).catch(() => undefined);
      return s?.ready === true;
    },
    async external(n) {
      const s = await controlRequest(n.socket, 'stats', {}, { timeoutMs: 10_000 });
      return s.external.entries;
    },
    commit: (n) => run('ip', ['netns', 'exec', n.ns, 'node', BIN, '-C', n.conf, '-c'], { timeout: WAIT_MS }),
    bin: BIN,
  },
  conntrackd: {
    config(n, peer) {
      const path = join(n.dir, `${n.id}.conf`);
      const hash = Math.max(8192, 2 ** Math.ceil(Math.log2(N / 4)));
      writeFileSync(
        path,
        [
          'Sync {',
          '\tMode FTFW {',
          '\t}',
          '\tUDP {',
          `\t\tIPv4_address ${n.addr}`,
          `\t\tIPv4_Destination_Address ${peer.addr}`,
          '\t\tPort 3791',
          '\t\tInterface sync0',
          '\t\tSndSocketBuffer 4194304',
          '\t\tRcvSocketBuffer 4194304',
          '\t\tChecksum on',
          '\t}',
          '}',
          'General {',
          `\tHashSize ${hash}`,
          `\tHashLimit ${2 * (N + 1000)}`,
          `\tLogFile ${join(n.dir, `${n.id}.log`)}`,
          '\tSyslog off',
          '\tSystemd off',
          `\tLockFile ${join(n.dir, `${n.id}.lock`)}`,
          '\tUNIX {',
          `\t\tPath ${join(n.dir, `${n.id}.ctd.sock`)}`,
          '\t}',
          '\tNetlinkBufferSize 67108864',
          '\tNetlinkBufferSizeMaxGrowth 134217728',
          // Not SCHED_RR 99 on a shared machine: priority 0 is refused and it keeps SCHED_OTHER.
          '\tScheduler {',
          '\t\tType RR',
          '\t\tPriority 0',
          '\t}',
          '\tFilter From Userspace {',
          '\t\tAddress Ignore {',
          '\t\t\tIPv4_address 127.0.0.1',
          `\t\t\tIPv4_address ${n.addr}`,
          `\t\t\tIPv4_address ${peer.addr}`,
          '\t\t}',
          '\t}',
          '}',
          '',
        ].join('\n'),
      );
      return path;
    },
    argv: (conf) => [CONNTRACKD, '-C', conf],
    async ready(n) {
      return run('ip', ['netns', 'exec', n.ns, CONNTRACKD, '-C', n.conf, '-s']).then(
        () => true,
        () => false,
      );
    },
    async external(n) {
      const out = (await run('ip', ['netns', 'exec', n.ns, CONNTRACKD, '-C', n.conf, '-s'])).stdout;
      const block = out.slice(out.indexOf('cache external:'));
      return Number(/current active connections:\s+(\d+)/.exec(block)?.[1] ?? 0);
    },
    commit: (n) => run('ip', ['netns', 'exec', n.ns, CONNTRACKD, '-C', n.conf, '-c'], { timeout: WAIT_MS }),
    bin: CONNTRACKD,
  },
};

function startDaemon(name, n) {
  // BENCH_PROFILE_DIR=DIR: ctsyncd writes a CPU profile per daemon there (node --cpu-prof).
  const prof = process.env.BENCH_PROFILE_DIR;
  const argv = daemons[name].argv(n.conf);
  if (prof && name === 'ctsyncd') argv.splice(1, 0, '--cpu-prof', `--cpu-prof-dir=${prof}`);
  const child = spawn('ip', ['netns', 'exec', n.ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  n.stderr = [];
  child.stderr.on('data', (x) => n.stderr.push(String(x)));
  n.child = child;
  cleanups.push(() => child.kill('SIGKILL'));
}

/** SIGTERM and wait (a profiling daemon writes its profile then), SIGKILL after 5 s. */
async function stopDaemon(n) {
  if (n.child.exitCode !== null || n.child.signalCode !== null) return;
  const exited = new Promise((r) => n.child.once('exit', r));
  n.child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
  n.child.kill('SIGKILL');
}

async function once(name) {
  const d = daemons[name];
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-bench-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const mark = cleanups.length;
  try {
    const [fw1, fw2] = await topology(dir);
    for (const [n, peer] of [
      [fw1, fw2],
      [fw2, fw1],
    ]) {
      n.conf = d.config(n, peer);
      startDaemon(name, n);
    }
    for (const n of [fw1, fw2]) await until(() => d.ready(n), `${name} ${n.id} ready`, 30_000);
    await sleep(500);
    const before = [procStat(fw1.child.pid), procStat(fw2.child.pid)];
    const tx0 = await txPackets(fw1.ns);
    const link = new ConntrackLink({ netns: `/var/run/netns/${fw1.ns}` });
    const items = [];
    for (let i = 0; i < N; i++) items.push({ op: 'create', entry: entry(i) });
    const t0 = performance.now();
    const res = await link.batch(items);
    link.close();
    if (res.failed) throw new Error(`injector: ${res.failed} failed ${JSON.stringify(res.failures)}`);
    await until(async () => (await d.external(fw2)) >= N, `${name}: fw2 external = ${N}`);
    const replication = (performance.now() - t0) / 1000;
    // Let acks and the last flushes settle before reading CPU and RSS.
    await sleep(1000);
    const after = [procStat(fw1.child.pid), procStat(fw2.child.pid)];
    const tx = (await txPackets(fw1.ns)) - tx0;
    const lost = N - (await d.external(fw2));

    // Resync: fw2's daemon restarts empty and must get everything back.
    // conntrackd asks only when told (-n); ctsyncd asks by itself.
    await stopDaemon(fw2);
    if (name === 'conntrackd') rmSync(join(fw2.dir, 'fw2.lock'), { force: true });
    const tr = performance.now();
    startDaemon(name, fw2);
    await until(() => d.ready(fw2), `${name} fw2 ready again`, 30_000);
    if (name === 'conntrackd') await run('ip', ['netns', 'exec', fw2.ns, CONNTRACKD, '-C', fw2.conf, '-n']);
    await until(async () => (await d.external(fw2)) >= N, `${name}: fw2 external = ${N} after restart`);
    const resync = (performance.now() - tr) / 1000;

    const t1 = performance.now();
    await d.commit(fw2).catch((e) => {
      throw new Error(`${name} commit: ${e.stderr || e.message}`);
    });
    await until(async () => (await kernelCount(fw2.ns)) >= N, `${name}: fw2 kernel = ${N}`);
    const commit = (performance.now() - t1) / 1000;

    // Failover: the kernel forgets, and each daemon's own notify script
    // (contrib/keepalived/primary-backup.sh primary: commit, flush, resync,
    // bulk-send) must put everything back.
    await run('ip', ['netns', 'exec', fw2.ns, 'conntrack', '-F']).catch(() => undefined);
    await until(async () => (await kernelCount(fw2.ns)) === 0, `${name}: fw2 kernel flushed`, 30_000);
    const tf = performance.now();
    await run('ip', ['netns', 'exec', fw2.ns, 'sh', NOTIFY, 'primary'], {
      timeout: WAIT_MS,
      env: { ...process.env, CONNTRACKD_BIN: d.bin, CONNTRACKD_CONFIG: fw2.conf },
    }).catch((e) => {
      throw new Error(`${name} notify primary: ${e.stderr || e.message}`);
    });
    await until(async () => (await kernelCount(fw2.ns)) >= N, `${name}: fw2 kernel = ${N} after failover`);
    const failover = (performance.now() - tf) / 1000;

    for (const n of [fw1, fw2]) await stopDaemon(n);
    return {
      replication,
      lost,
      cpuPerEntryUs: ((after[0].cpu - before[0].cpu + after[1].cpu - before[1].cpu) / N) * 1e6,
      rssInternalB: (after[0].rss - before[0].rss) / N,
      rssExternalB: (after[1].rss - before[1].rss) / N,
      entriesPerDatagram: N / Math.max(1, tx),
      resync,
      commit,
      failover,
      load: loadavg()[0],
    };
  } finally {
    for (const f of cleanups.splice(mark).reverse()) {
      try {
        f();
      } catch {
        // best effort
      }
    }
  }
}

const METRICS = [
  ['replication', 's', 'time ≤ 1.0'],
  ['cpuPerEntryUs', 'µs CPU/entry', '≤ 1.0'],
  ['rssInternalB', 'B/entry fw1', '≤ 1.0'],
  ['rssExternalB', 'B/entry fw2', '≤ 1.0'],
  ['entriesPerDatagram', 'entries/datagram', 'ours ≥ 10'],
  ['resync', 's', '≤ 1.0'],
  ['commit', 's', '≤ 0.5'],
  ['failover', 's', '≤ 0.5'],
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function main() {
  const results = { ctsyncd: [], conntrackd: [] };
  try {
    for (let p = 0; p < PAIRS; p++) {
      for (const name of ['ctsyncd', 'conntrackd']) {
        const r = await once(name);
        results[name].push(r);
        console.log(
          `pair ${p + 1} ${name.padEnd(10)} ${METRICS.map(([k]) => `${k}=${r[k].toFixed(3)}`).join(' ')} lost=${r.lost} load=${r.load.toFixed(1)}`,
        );
      }
    }
  } finally {
    cleanupAll();
  }
  const rows = [
    `| metric (N=${N}, median of ${PAIRS} pairs) | ctsyncd | conntrackd | ratio | target |`,
    '|---|---|---|---|---|',
  ];
  for (const [k, unit, target] of METRICS) {
    const a = median(results.ctsyncd.map((r) => r[k]));
    const b = median(results.conntrackd.map((r) => r[k]));
    rows.push(`| ${k} (${unit}) | ${a.toFixed(3)} | ${b.toFixed(3)} | ${(a / b).toFixed(2)} | ${target} |`);
  }
  const lost = [...results.ctsyncd, ...results.conntrackd].map((r) => r.lost);
  rows.push(`| lost entries (all runs) | ${results.ctsyncd.map((r) => r.lost).join(', ')} | ${results.conntrackd.map((r) => r.lost).join(', ')} | | 0 |`);
  const table = rows.join('\n');
  console.log(`\n${table}`);
  if (WRITE) {
    const cmd = `sudo node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
    const loads = [...results.ctsyncd, ...results.conntrackd].map((r) => r.load.toFixed(1)).join(', ');
    appendFileSync(
      join(ROOT, 'BENCHMARKS.md'),
      `\n### ${new Date().toISOString().slice(0, 10)}: \`${cmd}\`\n\nLoad averages during the runs: ${loads}.\n\n${table}\n`,
    );
  }
  if (lost.some((x) => x !== 0)) process.exitCode = 1;
}

await main();
