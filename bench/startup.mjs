#!/usr/bin/env node
// bench/startup: how soon a (re)started ctsyncd answers. For each trial a
// fresh namespace with a sync interface (one end of a veth pair) (10.99.S.1/24) and K
// established entries already in its kernel; `bin/ctsyncd --config FILE` is
// exec'ed there (the V8 options of its #! line, as the binary itself would
// run) and this process polls the control socket every 2 ms:
// It is started twice: once cold (its first start with this config file:
// full validation, which fills the validated-config cache) and once
// restarted, the case this bench is about (the cache is warm):
//   answers   exec → the first `ping` answered (the control socket is up),
//             and the CPU the process had used by then (user + system, all
//             its threads, /proc/PID/stat: 10 ms ticks; on a shared machine
//             steadier than the wall time)
//   ready     exec → `stats` says ready (kernel dump done, first peer sync
//             attempt over: no peer exists here, so that is
//             sync.reliability.startupSyncWaitMs, set to 1 ms for this)
// and, as the floor under both, exec → exit of `node -e 0` with the same
// options (a Node process doing nothing). In the same trial, in alternating
// order, conntrackd 1.4.7 on the same namespace and table (FTFW over UDP on
// the same interface): exec → its UNIX socket answers a stats request. It
// reads the kernel table before it serves its socket, so for conntrackd
// "answers" is also "ready". The 1-minute load average is printed before
// each trial; measure on a quiet machine. Root; after `npm ci`.
// With a third argument, another checkout's bin/ctsyncd (e.g. a build of
// main in a second worktree) is measured the same way in each trial, in
// alternating order with this one: a before/after on one noisy machine.
//   node bench/startup.mjs [trials=10] [entries=10000] [other-checkout]
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigCache, CONFIG_CACHE_DIR } from '../dist/config/cache.js';
import { controlRequest } from '../dist/control/client.js';
import { DAEMON_NODE_FLAGS } from '../dist/daemon/node-flags.js';
import { CONNTRACKD_BIN, CT_STATS_RUNTIME, conntrackdRequest } from './lib/daemons.mjs';
import { procSample } from './lib/util.mjs';
import { inject } from './lib/workload.mjs';

const trials = Number(process.argv[2] ?? 10);
const entries = Number(process.argv[3] ?? 10_000);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');
const OTHER_BIN = process.argv[4] ? join(process.argv[4], 'bin', 'ctsyncd') : undefined;
const load1 = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function execIn(ns, argv) {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function nodeFloor(ns) {
  const t0 = performance.now();
  const child = execIn(ns, [process.execPath, ...DAEMON_NODE_FLAGS, '-e', '0']);
  await new Promise((r) => child.once('exit', r));
  return performance.now() - t0;
}

/** Polls until `probe` resolves truthy, every 2 ms, for at most `ms`. */
async function until(probe, ms) {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await probe().catch(() => false)) return performance.now();
    await sleep(2);
  }
  throw new Error('timed out');
}

function conntrackdConf(dir, subnet) {
  const conf = join(dir, 'conntrackd.conf');
  writeFileSync(
    conf,
    [
      'Sync {',
      '\tMode FTFW {',
      '\t}',
      '\tUDP {',
      `\t\tIPv4_address 10.99.${subnet}.1`,
      `\t\tIPv4_Destination_Address 10.99.${subnet}.2`,
      '\t\tPort 3791',
      '\t\tInterface sync0',
      '\t}',
      '}',
      'General {',
      `\tLogFile ${join(dir, 'conntrackd.log')}`,
      '\tSyslog off',
      '\tSystemd off',
      `\tLockFile ${join(dir, 'conntrackd.lock')}`,
      '\tUNIX {',
      `\t\tPath ${join(dir, 'conntrackd.sock')}`,
      '\t}',
      '}',
      '',
    ].join('\n'),
  );
  return { conf, socket: join(dir, 'conntrackd.sock') };
}

/** exec → the process answers `probe`; the process is stopped (SIGTERM) afterwards. */
async function timeToAnswer(ns, argv, probe) {
  const t0 = performance.now();
  const child = execIn(ns, argv);
  const exited = new Promise((r) => child.once('exit', (code) => r(code)));
  try {
    const at = await Promise.race([
      until(probe, 10_000),
      exited.then((code) => {
        throw new Error(`${argv[0]} exited (${code})`);
      }),
    ]);
    // Read at once: the process keeps running (its dump, its peer sync).
    const cpu = procSample(child.pid).cpu * 1000;
    return { child, answers: at - t0, cpu, t0 };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

async function trial(i) {
  const suffix = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const ns = `ctsu${suffix}`;
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-startup-'));
  const socket = join(dir, 'ctl.sock');
  const conf = join(dir, 'ctsyncd.yaml');
  const subnet = 100 + (i % 100);
  writeFileSync(
    conf,
    [
      `node: { id: su1, stateDir: ${join(dir, 'state')} }`,
      'cluster: { id: 9 }',
      'sync:',
      '  transport: udp',
      `  udp: { bind: 10.99.${subnet}.1, port: 3790, peers: [10.99.${subnet}.2] }`,
      '  auth: none',
      '  reliability: { startupSyncWaitMs: 1 }',
      `control: { socket: ${socket} }`,
      'metrics: { enabled: false }',
      'log: { level: warn }',
      '',
    ].join('\n'),
  );
  // This config's entry in the daemon's validated-config cache, removed with the rest.
  const cacheEntry = new ConfigCache({ dir: CONFIG_CACHE_DIR, fingerprint: '' }).entryPath(conf);
  execFileSync('ip', ['netns', 'add', ns]);
  let child;
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // A veth pair inside the namespace (this kernel has no dummy interfaces).
    execFileSync('ip', ['-n', ns, 'link', 'add', 'sync0', 'type', 'veth', 'peer', 'name', 'sync1']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'sync1', 'up']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', `10.99.${subnet}.1/24`, 'dev', 'sync0']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'sync0', 'up']);
    if (entries > 0) await inject(`/var/run/netns/${ns}`, entries);
    const floor = await nodeFloor(ns);
    const load = load1();
    const ctd = conntrackdConf(dir, subnet);
    const runCtsyncd = async (bin) => {
      // The cold start: the restart measured below finds the cache it fills.
      rmSync(cacheEntry, { force: true });
      const cold = await timeToAnswer(ns, [process.execPath, ...DAEMON_NODE_FLAGS, bin, '--config', conf], () =>
        controlRequest(socket, 'ping', {}, { timeoutMs: 200 }).then(() => true),
      );
      child = cold.child;
      await stop(cold.child);
      const r = await timeToAnswer(ns, [process.execPath, ...DAEMON_NODE_FLAGS, bin, '--config', conf], () =>
        controlRequest(socket, 'ping', {}, { timeoutMs: 200 }).then(() => true),
      );
      child = r.child;
      const ready = await until(
        () => controlRequest(socket, 'stats', {}, { timeoutMs: 1000 }).then((st) => st.ready === true),
        10_000,
      );
      const cached = (await controlRequest(socket, 'stats', {}, { timeoutMs: 1000 })).internal.entries;
      await stop(r.child);
      return { cold: cold.answers, answers: r.answers, cpu: r.cpu, ready: ready - r.t0, cached };
    };
    const runConntrackd = async () => {
      const r = await timeToAnswer(ns, [CONNTRACKD_BIN, '-C', ctd.conf], () =>
        conntrackdRequest(ctd.socket, CT_STATS_RUNTIME, 1000).then((text) => text.length > 0),
      );
      child = r.child;
      await stop(r.child);
      return { answers: r.answers, cpu: r.cpu };
    };
    // Alternate which goes first, so neither always finds the page cache warm.
    let ours;
    let theirs;
    let other;
    if (i % 2 === 0) {
      ours = await runCtsyncd(BIN);
      if (OTHER_BIN) other = await runCtsyncd(OTHER_BIN);
      theirs = await runConntrackd();
    } else {
      theirs = await runConntrackd();
      if (OTHER_BIN) other = await runCtsyncd(OTHER_BIN);
      ours = await runCtsyncd(BIN);
    }
    return { load, floor, ...ours, other, conntrackd: theirs.answers, conntrackdCpu: theirs.cpu };
  } finally {
    if (child) await stop(child);
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(cacheEntry, { force: true });
  }
}

const rows = [];
const fmt = (x) => x.toFixed(0);
for (let i = 0; i < trials; i++) {
  const r = await trial(i);
  rows.push(r);
  console.log(
    `trial ${i + 1} (load ${r.load}): node -e 0 ${fmt(r.floor)} ms; cold start answers ${fmt(r.cold)} ms; ` +
      `restarted: answers ${fmt(r.answers)} ms (CPU ${fmt(r.cpu)} ms), ready ${fmt(r.ready)} ms with ${r.cached} entries; ` +
      (r.other
        ? `other checkout: cold ${fmt(r.other.cold)} ms, restarted answers ${fmt(r.other.answers)} ms (CPU ${fmt(r.other.cpu)} ms), ready ${fmt(r.other.ready)} ms; `
        : '') +
      `conntrackd answers ${fmt(r.conntrackd)} ms (CPU ${fmt(r.conntrackdCpu)} ms)`,
  );
}
const med = (f) => fmt(median(rows.map(f)));
console.log(
  `median of ${rows.length} (loads ${rows.map((r) => r.load).join(' ')}): node -e 0 ${med((r) => r.floor)} ms, ` +
    `cold answers ${med((r) => r.cold)} ms; restarted: answers ${med((r) => r.answers)} ms (CPU ${med((r) => r.cpu)} ms), ready ${med((r) => r.ready)} ms; ` +
    (OTHER_BIN
      ? `other checkout: cold ${med((r) => r.other.cold)} ms, restarted answers ${med((r) => r.other.answers)} ms (CPU ${med((r) => r.other.cpu)} ms), ready ${med((r) => r.other.ready)} ms; `
      : '') +
    `conntrackd answers ${med((r) => r.conntrackd)} ms (CPU ${med((r) => r.conntrackdCpu)} ms) (${entries} entries in the kernel)`,
);
