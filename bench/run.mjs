#!/usr/bin/env node
// bench/run: ctsyncd against the Debian conntrackd 1.4.7 on identical
// workloads, in the same run, alternating (ctsyncd, conntrackd, ctsyncd, …),
// and the ratios ctsyncd / conntrackd of the medians (issue 7).
//
// Every trial builds fresh namespaces fw1 and fw2 joined by a veth sync link
// (10.99.S.0/24, a multicast group of its own), starts one daemon on both
// (FTFW/ftfw over multicast or UDP), creates N established TCP entries in
// fw1's kernel with a batched ctnetlink injector, and measures in turn:
//
//   replication  first insert → fw2's external cache holds all N (and lost:
//                N minus what it holds after a further second)
//   cpu          CPU seconds of both daemons on both nodes ÷ N (/proc/PID/stat),
//                from before the first insert to a second after replication
//   memory       RSS growth ÷ N: fw1 (internal cache) and fw2 (external cache)
//   datagrams    entries per datagram: N ÷ packets sent on fw1's sync0 until
//                replication completed (ctsyncd's own counters alongside)
//   commit       `-c` on fw2 (each daemon's client) → all N in fw2's kernel
//                (conntrack -C checks)
//   resync       fw2 stopped, its kernel flushed, restarted empty → its
//                external cache holds all N again (conntrackd needs `-n`)
//   failover     each daemon's primary-backup.sh primary on fw2 → all N in
//                fw2's kernel (conntrack -C checks)
//   loss         replication of N with 5% random loss on both ends of the sync
//                link (nftables numgen in a netdev egress hook); separate trials
//
// Run as root after `npm ci` (npm run bench = node bench/run.mjs):
//   node bench/run.mjs                      full run: N = 10k, 100k, 1M; 3 pairs;
//                                           multicast and UDP; loss at 100k
//   node bench/run.mjs --quick              smoke check: N = 10k, 1 pair, loss at 10k
//   node bench/run.mjs --n 100000 --pairs 3 --metrics replication,commit --transport udp
// Options: --n LIST  --pairs P  --transport multicast,udp  --metrics LIST
//   (replication,commit,resync,failover,loss)  --loss-n N  --loss-pct P
//   --write | --no-write (BENCHMARKS.md; default: write unless --quick)
//   --json FILE (every trial's raw record)  --cpu-prof DIR (ctsyncd's node
//   --cpu-prof, one profile per daemon process; bench/profile-summary.mjs reads
//   them)  --heap-snapshot DIR (a heap snapshot of both ctsyncd daemons right
//   after replication; slows what follows; bench/heap-summary.mjs reads them)
//   --rate R (pace the injector at R entries/s instead of full speed)
//   --bound S (shortest bound of a phase, 60 s; 20 s with --quick)
//   --keep (keep trial directories: configs and daemon logs)
//   --ctsyncd-notify command (failover: ctsyncd's one-request `failover
//   primary` instead of contrib/keepalived/primary-backup.sh)
//   --ctsyncd-inject (ctsyncd with failover.inject: fw2 writes peers'
//   entries into its kernel as they arrive, so a failover's commit finds
//   them there; the report says so)
//   --report FILE.json (no run: the table of a run saved with --json; --write
//   appends it under that run's command and date)
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMONS, settingsFor } from './lib/daemons.mjs';
import { formatReport, K, summarize } from './lib/report.mjs';
import {
  addEgressLoss,
  conntrackCount,
  conntrackFlush,
  createTopology,
  destroyTopology,
  lossCounters,
  raiseConntrackLimits,
} from './lib/topology.mjs';
import {
  cleanupAll,
  kernelCountOf,
  load1,
  loadString,
  netDev,
  now,
  onCleanup,
  procSample,
  runCleanup,
  sleep,
  TimeoutError,
  until,
} from './lib/util.mjs';
import { inject, MAX_ENTRIES } from './lib/workload.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALL_METRICS = ['replication', 'commit', 'resync', 'failover', 'loss'];

// ---------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const o = {
    quick: false,
    n: [10_000, 100_000, 1_000_000],
    pairs: 3,
    transports: ['multicast', 'udp'],
    metrics: [...ALL_METRICS],
    lossN: 100_000,
    lossPct: 5,
    write: undefined,
    json: undefined,
    cpuProf: undefined,
    heapSnapshot: undefined,
    rate: undefined,
    keep: false,
    ctsyncdNotify: 'script',
    ctsyncdInject: false,
  };
  const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
  const num = (v) => {
    const x = Number(String(v).replace(/_/g, '').replace(/k$/i, '000').replace(/m$/i, '000000'));
    if (!Number.isInteger(x) || x <= 0) throw new Error(`not a positive integer: ${v}`);
    return x;
  };
  const set = new Set();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    set.add(a);
    switch (a) {
      case '--quick':
        o.quick = true;
        break;
      case '--n':
        o.n = list(val()).map(num);
        break;
      case '--pairs':
        o.pairs = num(val());
        break;
      case '--transport':
      case '--transports':
        o.transports = list(val());
        break;
      case '--metrics':
        o.metrics = list(val());
        break;
      case '--loss-n':
        o.lossN = num(val());
        break;
      case '--loss-pct':
        o.lossPct = num(val());
        break;
      case '--write':
        o.write = true;
        break;
      case '--no-write':
        o.write = false;
        break;
      case '--json':
        o.json = resolve(val());
        break;
      case '--cpu-prof':
        o.cpuProf = resolve(val());
        break;
      case '--heap-snapshot':
        o.heapSnapshot = resolve(val());
        break;
      case '--rate':
        o.rate = num(val());
        break;
      case '--bound':
        o.boundS = num(val());
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--ctsyncd-inject':
        o.ctsyncdInject = true;
        break;
      case '--ctsyncd-notify':
        o.ctsyncdNotify = val();
        if (o.ctsyncdNotify !== 'script' && o.ctsyncdNotify !== 'command') throw new Error('--ctsyncd-notify script|command');
        break;
      case '--report':
        o.report = resolve(val());
        break;
      case '-h':
      case '--help':
        console.log(
          'usage: node bench/run.mjs [--quick] [--n 10000,100000,1000000] [--pairs 3] [--transport multicast,udp]\n' +
            '         [--metrics replication,commit,resync,failover,loss] [--loss-n 100000] [--loss-pct 5]\n' +
            '         [--write|--no-write] [--json FILE] [--cpu-prof DIR] [--heap-snapshot DIR] [--rate ENTRIES_PER_S]\n' +
            '         [--bound SECONDS] [--keep] [--report FILE.json] [--ctsyncd-notify script|command] [--ctsyncd-inject]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a} (--help)`);
    }
  }
  if (o.quick) {
    if (!set.has('--n')) o.n = [10_000];
    if (!set.has('--pairs')) o.pairs = 1;
    if (!set.has('--loss-n')) o.lossN = 10_000;
    if (!set.has('--bound')) o.boundS = 20;
  }
  if (o.write === undefined) o.write = !o.quick;
  // The first harness's hook: BENCH_PROFILE_DIR=DIR is --cpu-prof DIR.
  if (!o.cpuProf && process.env.BENCH_PROFILE_DIR) o.cpuProf = resolve(process.env.BENCH_PROFILE_DIR);
  for (const t of o.transports) if (t !== 'multicast' && t !== 'udp') throw new Error(`unknown transport ${t}`);
  for (const m of o.metrics) if (!ALL_METRICS.includes(m)) throw new Error(`unknown metric ${m}`);
  for (const n of [...o.n, o.lossN]) if (n > MAX_ENTRIES) throw new Error(`N at most ${MAX_ENTRIES}`);
  return o;
}

// ---------------------------------------------------------------------------
// Bounds: every wait is bounded.

/**
 * Replication, commit, resync, failover of n entries: 60 s (more than
 * conntrackd's 30 s overrun resync; --bound S, 20 s with --quick), or 120 µs
 * per entry (120 s at 1M).
 */
let minBoundMs = 60_000;
const phaseBound = (n) => Math.max(minBoundMs, n * 0.12);
const START_BOUND = 30_000;

/** Poll quickly at first, then less often (the polls cost the daemons CPU too). */
const pollInterval = (elapsedMs) => Math.min(100, Math.max(10, elapsedMs / 50));

async function waitCount(what, bound, read, target, t0 = now()) {
  for (;;) {
    const v = await read().catch(() => undefined);
    if (v !== undefined && v >= target) return { ms: now() - t0, value: v };
    const el = now() - t0;
    if (el > bound) throw new TimeoutError(`timed out after ${Math.round(bound)} ms waiting for ${what} (at ${v})`);
    await sleep(pollInterval(el));
  }
}

/** Runs a command in a namespace; resolves with its duration and output. Bounded. */
function runIn(ns, argv, env, bound) {
  return new Promise((resolveP, reject) => {
    const t0 = now();
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    const h = onCleanup(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
    const timer = setTimeout(() => child.kill('SIGKILL'), bound);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      runCleanup(h);
      const ms = now() - t0;
      if (code === 0) resolveP({ ms, out });
      else reject(new Error(`${argv.join(' ')} in ${ns}: ${sig ? `killed (${sig}) after ${Math.round(ms)} ms` : `exit ${code}`}: ${out.slice(-1500)}`));
    });
  });
}

// ---------------------------------------------------------------------------
// One trial: one daemon, one N, one transport.

async function startPair(d, topo, dir, n, opts) {
  const [fw1, fw2] = topo.nodes;
  const s = { ...settingsFor(n), inject: opts.inject === true };
  d.configure(fw1, fw2, topo, dir, s);
  d.configure(fw2, fw1, topo, dir, s);
  for (const node of [fw1, fw2]) d.start(node, opts);
  for (const node of [fw1, fw2]) await d.waitReady(node, START_BOUND);
  // Let the start-up exchange (hello, empty resyncs) finish before measuring.
  await sleep(1000);
}

async function stopPair(d, topo) {
  for (const node of topo.nodes) if (node.proc) await d.stop(node).catch((e) => console.error(e.message));
}

/** Injects n entries into fw1 and waits until fw2's external cache holds them all. */
async function replicate(d, topo, n, r, o) {
  const [fw1, fw2] = topo.nodes;
  const pids = [fw1.proc.child.pid, fw2.proc.child.pid];
  const before = pids.map(procSample);
  const tx0 = netDev(pids[0], 'sync0');
  const diag0 = await d.diagnostics(fw1);
  let t0;
  let injectError;
  const injecting = inject(fw1.netnsPath, n, { rate: o.rate, onStart: () => (t0 = now()) }).then(
    (x) => (r.injectorS = x.seconds),
    (e) => (injectError = e),
  );
  const bound = phaseBound(n);
  await until(() => t0 !== undefined || injectError, 'injector start', 30_000);
  let last;
  try {
    for (;;) {
      if (injectError) throw injectError;
      last = (await d.counts(fw2).catch(() => undefined))?.external;
      if (last !== undefined && last >= n) break;
      const el = now() - t0;
      if (el > bound) throw new TimeoutError(`replication: fw2 external ${last} of ${n} after ${Math.round(el)} ms`);
      await sleep(pollInterval(el));
    }
    r.replicationS = (now() - t0) / 1000;
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    r.replicationS = undefined;
    r.timeouts.replication = bound / 1000;
    r.errors.push(e.message);
  }
  const tx1 = netDev(pids[0], 'sync0');
  const cpuAtDone = pids.map(procSample);
  // The injector is done long before a healthy replication; bounded all the same.
  let injected = false;
  await Promise.race([injecting.then(() => (injected = true)), sleep(bound)]);
  if (injectError) throw injectError;
  if (!injected) throw new TimeoutError(`injector: not done after ${Math.round(bound)} ms`);
  // A further second: acks, the last flushes, the receiver's bookkeeping.
  await sleep(1000);
  const after = pids.map(procSample);
  const c1 = await d.counts(fw1);
  const c2 = await d.counts(fw2);
  r.lost = n - Math.min(n, c2.external);
  r.extra = c2.external > n ? c2.external - n : 0;
  // Where entries went missing: fw1's kernel → its internal cache → fw2's external cache.
  r.fw1Kernel = kernelCountOf(pids[0]);
  r.fw1Internal = c1.internal;
  r.fw2External = c2.external;
  r.cpuFw1S = after[0].cpu - before[0].cpu;
  r.cpuFw2S = after[1].cpu - before[1].cpu;
  r.sysFw1S = after[0].sys - before[0].sys;
  r.sysFw2S = after[1].sys - before[1].sys;
  r.helperThreadsS = after[0].cpu - before[0].cpu - (after[0].mainCpu - before[0].mainCpu) + after[1].cpu - before[1].cpu - (after[1].mainCpu - before[1].mainCpu);
  r.cpuPerEntryUs = ((r.cpuFw1S + r.cpuFw2S) / n) * 1e6;
  r.cpuAtDonePerEntryUs = ((cpuAtDone[0].cpu - before[0].cpu + cpuAtDone[1].cpu - before[1].cpu) / n) * 1e6;
  r.rssInternalB = (after[0].rss - before[0].rss) / n;
  r.rssExternalB = (after[1].rss - before[1].rss) / n;
  r.rssFw1MB = after[0].rss / 2 ** 20;
  r.rssFw2MB = after[1].rss / 2 ** 20;
  r.datagrams = tx1.txPackets - tx0.txPackets;
  r.entriesPerDatagram = n / Math.max(1, r.datagrams);
  const diag1 = await d.diagnostics(fw1);
  r.ownDatagrams = diag1.datagramsSent - diag0.datagramsSent;
  if (diag1.messagesSent !== undefined) r.ownMessages = diag1.messagesSent - diag0.messagesSent;
  r.overruns = diag1.overruns - diag0.overruns;
  r.kernelResyncs = diag1.kernelResyncs - diag0.kernelResyncs;
  r.eventBufferBytes = diag1.bufferBytes;
  return r.replicationS !== undefined && r.lost === 0;
}

async function commitPhase(d, topo, n, r) {
  const fw2 = topo.nodes[1];
  const bound = phaseBound(n);
  const t0 = now();
  const client = runIn(fw2.ns, d.clientArgv(fw2, ['-c']), {}, bound);
  const inKernel = waitCount('fw2 kernel after commit', bound, async () => kernelCountOf(fw2.proc.child.pid), n, t0);
  const [c, k] = await Promise.all([client, inKernel]);
  r.commitS = Math.max(c.ms, k.ms) / 1000;
  r.commitKernelS = k.ms / 1000;
  r.commitChecked = await conntrackCount(fw2);
  if (r.commitChecked !== n) r.errors.push(`commit: conntrack -C ${r.commitChecked} ≠ ${n}`);
  if (d.name === 'ctsyncd') r.commitDaemonS = ((await d.counts(fw2)).raw.commit?.lastDurationMs ?? NaN) / 1000;
}

async function resyncPhase(d, topo, n, r, opts) {
  const fw2 = topo.nodes[1];
  const bound = phaseBound(n);
  await d.stop(fw2);
  await conntrackFlush(fw2);
  const left = await conntrackCount(fw2);
  if (left !== 0) throw new Error(`fw2 kernel holds ${left} after conntrack -F`);
  const t0 = now();
  d.start(fw2, opts);
  await d.afterRestart(fw2, START_BOUND);
  let up;
  let held;
  const done = await waitCount(
    'fw2 external after restart',
    bound,
    async () => {
      const c = await d.counts(fw2);
      up ??= now() - t0;
      held = c.external;
      return c.external;
    },
    n,
    t0,
  ).catch((e) => {
    r.resyncLost = held === undefined ? n : n - held;
    throw e;
  });
  r.resyncS = done.ms / 1000;
  // Start-up share: restart → the daemon answers on its socket (conntrackd: and `-n` returned).
  r.resyncUpS = up / 1000;
  await d.waitReady(fw2, START_BOUND);
  // fw2's kernel is empty again, its external cache full: ready for failover.
}

async function failoverPhase(d, topo, n, r, o) {
  const fw2 = topo.nodes[1];
  const bound = phaseBound(n);
  const f = d.failover(fw2, o.ctsyncdNotify);
  if (d.name === 'ctsyncd') r.notify = o.ctsyncdNotify;
  const t0 = now();
  const script = runIn(fw2.ns, f.argv, f.env, bound * 2);
  // Awaited below; if the kernel wait fails first, its failure must not go unhandled.
  script.catch(() => undefined);
  const inKernel = waitCount('fw2 kernel after failover', bound, async () => kernelCountOf(fw2.proc.child.pid), n, t0);
  const k = await inKernel;
  r.failoverS = k.ms / 1000;
  const s = await script;
  r.failoverScriptS = s.ms / 1000;
  r.failoverChecked = await conntrackCount(fw2);
  if (r.failoverChecked !== n) r.errors.push(`failover: conntrack -C ${r.failoverChecked} ≠ ${n}`);
}

/** SIGUSR2 to both ctsyncd daemons (--heapsnapshot-signal); waits until both snapshots are written. */
async function heapSnapshots(topo, dir) {
  for (const node of topo.nodes) {
    const before = new Set(readdirSync(dir));
    node.proc.child.kill('SIGUSR2');
    const file = await until(
      () => readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)),
      `heap snapshot of ${node.id}`,
      120_000,
      { intervalMs: 200 },
    );
    // Written synchronously by the daemon: its next stats answer means it is complete.
    await until(() => ctsyncdAnswers(node), `${node.id} after its heap snapshot`, 300_000, { intervalMs: 200 });
    const to = join(dir, `${node.id}-after-replication.heapsnapshot`);
    renameSync(join(dir, file), to);
    console.log(`    heap snapshot ${to}`);
  }
}

async function ctsyncdAnswers(node) {
  return DAEMONS.ctsyncd.stats(node, 5000).then(
    () => true,
    () => false,
  );
}

async function trial(daemonName, { n, transport, lossPct }, o) {
  const d = DAEMONS[daemonName];
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-bench-'));
  const dirHandle = onCleanup(() => o.keep || rmSync(dir, { recursive: true, force: true }), `dir ${dir}`);
  const r = {
    daemon: daemonName,
    n,
    transport,
    lossPct,
    load1: load1(),
    errors: [],
    logs: [],
    timeouts: {},
    date: new Date().toISOString(),
  };
  const tag = `${transport}-${K(n)}${lossPct ? `-loss${lossPct}` : ''}-${new Date().toISOString().slice(11, 19).replace(/:/g, '')}`;
  const prof = {};
  if (o.cpuProf && daemonName === 'ctsyncd') prof.cpuProfDir = join(o.cpuProf, tag);
  if (o.heapSnapshot && daemonName === 'ctsyncd') prof.heapDir = join(o.heapSnapshot, tag);
  for (const p of Object.values(prof)) mkdirSync(p, { recursive: true });
  let topo;
  try {
    topo = await createTopology();
    topo.transport = transport;
    r.group = topo.group;
    if (lossPct) for (const node of topo.nodes) await addEgressLoss(node, lossPct, topo.port);
    if (o.ctsyncdInject && daemonName === 'ctsyncd') r.inject = true;
    await startPair(d, topo, dir, n, { ...prof, inject: r.inject });
    const ok = await replicate(d, topo, n, r, o);
    if (o.heapSnapshot && daemonName === 'ctsyncd') await heapSnapshots(topo, prof.heapDir);
    if (lossPct) {
      const [a, b] = await Promise.all(topo.nodes.map(lossCounters));
      r.lossSeen = a.seen + b.seen;
      r.lossDropped = a.dropped + b.dropped;
    } else if (ok) {
      const m = o.metrics;
      // A phase that times out ends the trial: what follows needs its result.
      const phase = async (name, f) => {
        try {
          await f();
        } catch (e) {
          if (e instanceof TimeoutError) r.timeouts[name] = phaseBound(n) / 1000;
          throw e;
        }
      };
      if (m.includes('commit')) await phase('commit', () => commitPhase(d, topo, n, r));
      if (m.includes('resync') || m.includes('failover')) await phase('resync', () => resyncPhase(d, topo, n, r, prof));
      if (m.includes('failover')) await phase('failover', () => failoverPhase(d, topo, n, r, o));
    }
  } catch (e) {
    r.errors.push(e.message);
    for (const node of topo?.nodes ?? []) if (node.log) r.logs.push(`${node.id}: ${d.logTail(node).slice(-1200)}`);
  } finally {
    if (topo) {
      await stopPair(d, topo);
      destroyTopology(topo);
    }
    runCleanup(dirHandle);
  }
  r.load1After = load1();
  return r;
}

// ---------------------------------------------------------------------------

const f3 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(3));
const f1 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));

function logTrial(i, total, r) {
  const parts = [
    `[${i}/${total}]`,
    r.daemon.padEnd(10),
    `${r.transport.padEnd(9)} N=${r.n}${r.lossPct ? ` loss=${r.lossPct}%` : ''}`,
    `repl=${f3(r.replicationS)}s lost=${r.lost ?? '-'}`,
    `cpu=${f1(r.cpuPerEntryUs)}µs/e (fw1 ${f3(r.cpuFw1S)}s fw2 ${f3(r.cpuFw2S)}s)`,
    `rss=${f1(r.rssInternalB)}/${f1(r.rssExternalB)}B/e`,
    `e/dgram=${f1(r.entriesPerDatagram)}`,
  ];
  if (r.commitS !== undefined) parts.push(`commit=${f3(r.commitS)}s`);
  if (r.resyncS !== undefined) parts.push(`resync=${f3(r.resyncS)}s`);
  if (r.failoverS !== undefined) parts.push(`failover=${f3(r.failoverS)}s (script ${f3(r.failoverScriptS)}s)`);
  if (r.lossDropped !== undefined) parts.push(`dropped=${r.lossDropped}/${r.lossSeen}`);
  if (r.overruns) parts.push(`overruns=${r.overruns} resyncs=${r.kernelResyncs}`);
  if (r.lost) parts.push(`(fw1 kernel ${r.fw1Kernel}, fw1 internal ${r.fw1Internal}, fw2 external ${r.fw2External})`);
  parts.push(`load=${r.load1.toFixed(2)}`);
  console.log(parts.join(' '));
  for (const e of r.errors) console.log(`    ! ${e.split('\n').join('\n      ')}`);
  for (const l of r.logs) console.log(`    log ${l.split('\n').slice(-8).join('\n      ')}`);
}

function output(o, { command, started, finished, records }) {
  const pairs = Math.max(1, ...records.map((r) => (r.pair ?? 0) + 1));
  const notes = [];
  if (records.some((r) => r.notify === 'command')) {
    notes.push(
      'Failover: ctsyncd ran its one-request notify command, `ctsyncd --config FILE failover primary`, ' +
        "instead of primary-backup.sh; conntrackd ran Debian's primary-backup.sh.",
    );
  }
  if (records.some((r) => r.inject)) {
    notes.push(
      'ctsyncd ran with `failover: { inject: true }`: fw2 writes its peers\' entries into its own kernel as they ' +
        'arrive (replication and CPU include that), so the failover commit finds them there already.',
    );
  }
  const report = formatReport(summarize(records), { command, started, finished, notes, options: { ...o, pairs } });
  console.log(`\n${report.text}`);
  if (o.write) {
    appendFileSync(join(ROOT, 'BENCHMARKS.md'), `\n${report.markdown}`);
    console.log('appended to BENCHMARKS.md');
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.report) {
    const saved = JSON.parse(readFileSync(o.report, 'utf8'));
    const started = new Date(saved.started);
    const finished = new Date(saved.finished ?? saved.records.at(-1)?.date ?? saved.started);
    if (!process.argv.includes('--write')) o.write = false;
    output(o, { command: saved.command, started, finished, records: saved.records });
    return;
  }
  if (o.boundS) minBoundMs = o.boundS * 1000;
  if (process.getuid?.() !== 0) throw new Error('bench/run needs root (network namespaces, ctnetlink)');
  const command = `node bench/run.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const started = new Date();
  console.log(`${command}\n${started.toISOString()}  load average ${loadString()}`);

  const plan = [];
  const mainMetrics = o.metrics.filter((m) => m !== 'loss');
  if (mainMetrics.length > 0) {
    for (const n of o.n)
      for (const transport of o.transports)
        for (let p = 0; p < o.pairs; p++)
          for (const daemon of ['ctsyncd', 'conntrackd']) plan.push({ daemon, n, transport, lossPct: 0, pair: p });
  }
  if (o.metrics.includes('loss')) {
    for (const transport of o.transports)
      for (let p = 0; p < o.pairs; p++)
        for (const daemon of ['ctsyncd', 'conntrackd'])
          plan.push({ daemon, n: o.lossN, transport, lossPct: o.lossPct, pair: p });
  }

  const records = [];
  const limits = [];
  try {
    for (const [i, t] of plan.entries()) {
      // Room for N entries in each of fw1 and fw2 (nf_conntrack_max is global; the
      // count it limits is per namespace, so this leaves room for other users).
      limits.push(...raiseConntrackLimits(2 * t.n + 65_536));
      const r = await trial(t.daemon, t, o);
      r.pair = t.pair;
      records.push(r);
      logTrial(i + 1, plan.length, r);
      if (o.json) writeFileSync(o.json, `${JSON.stringify({ command, started, records }, null, 1)}\n`);
    }
  } finally {
    for (const h of limits.reverse()) runCleanup(h);
    cleanupAll();
  }

  const finished = new Date();
  if (o.json) writeFileSync(o.json, `${JSON.stringify({ command, started, finished, records }, null, 1)}\n`);
  output(o, { command, started, finished, records });
  if (records.some((r) => r.errors.length > 0 || (r.lost ?? 0) > 0)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  cleanupAll();
  process.exit(2);
});
