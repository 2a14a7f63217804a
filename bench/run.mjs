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
// Two more metrics run only when named in --metrics (their own trials, both
// daemons with the same event socket buffer, --event-buffer-mib, 8 MiB:
// ctsyncd kernel.netlinkBufferBytes, conntrackd NetlinkBufferSize; both may
// grow it after an overrun up to 256 MiB, conntrackd by
// NetlinkBufferSizeMaxGrowth, ctsyncd by doubling):
//
//   burst        a burst of B established TCP entries (--burst-n, 20k) from the
//                batched injector at full speed into fw1's kernel. Variant
//                fresh: right after both daemons are ready; variant warm: after
//                a warm-up burst of another B entries has fully replicated
//                (the buffer the measured burst met is recorded). Per trial:
//                overran (fw1's event socket reported ENOBUFS during the burst:
//                ctsyncd's stats kernel.overruns, conntrackd's `-s runtime`
//                "netlink overrun:" line, before and after), CPU of both
//                daemons ÷ B (as cpu above) and replication time (as above).
//                --burst-trials T (10) trials of each variant, alternating.
//                Reported: overran in how many of T, medians, ratios.
//   rate         a sustained stream of new entries only (no updates, no
//                deletes) from the paced injector at R creates/s for S s
//                (--rate-seconds, 60; R × S entries, at most 8,388,608), for
//                each R of --rates (5k,10k,20k,40k,60k) in increasing order
//                (--rate-trials K per rate, 1; both daemons alternating). Every
//                ~100 ms the harness reads I, the creates the injector has
//                done (acknowledged by the kernel), and E, fw2's external
//                cache count (over the daemon's socket; I taken when E's
//                answer arrived). Lag at that sample = (I − E) ÷ R seconds;
//                the trial's lag = the largest over all samples from the first
//                create until E = R × S (the tail after the last create
//                included). A rate is held when, in every trial: no overrun on
//                fw1 (as burst), lag < 1 s, nothing lost, and the injector
//                reached ≥ 95% of R (else the rate was not offered). A daemon
//                is not run at higher rates once it failed one. Reported: the
//                highest rate held by each daemon and the ratio (a bound, ≤ or
//                ≥, when a daemon held every rate tried), each step's lag and
//                overruns. Also in --json: the samples [ms, I, E], CPU of both
//                daemons ÷ R × S (start to a second after E = R × S; the
//                100 ms polls of fw2 included), tail (last create → E = R × S).
// Both record the overrun counter line as the daemon printed it (overrunLine).
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
//   primary` instead of contrib/keepalived/primary-backup.sh); fifo (the
//   daemon reads keepalived's notify_fifo, failover.notifyFifo: the harness
//   writes keepalived's MASTER line into it, no process starts)
//   --ctsyncd-inject (ctsyncd with failover.inject: fw2 writes peers'
//   entries into its kernel as they arrive, so a failover's commit finds
//   them there; the report says so)
//   --flowlog-queue-mib M (with --ctsyncd-flowlog: flowlog.queueBytes; the default 64 MiB when absent)
//   --event-coalesce-ms M (ctsyncd's kernel.eventCoalesceMs; its default, 1, when absent)
//   --ctsyncd-v8 'FLAGS' (V8 options added to ctsyncd's, after bin/ctsyncd's #!
//   line's: an A/B of compilers or heap settings)
//   --ctsyncd-flowlog (ctsyncd with a flow log beside sync: new and
//   destroy events to a JSON-lines file in the trial directory, as an
//   operator running it instead of ulogd2 would; the report says so. Run
//   with and without it to see what the flow log costs replication,
//   conntrackd measured beside both as the anchor)
//   --report FILE.json (no run: the table of a run saved with --json; --write
//   appends it under that run's command and date)
//   --metrics burst: --burst-n B (20000)  --burst-trials T (10 fresh and 10
//   warm per daemon)  --event-buffer-mib M (8, also for rate)
//   --metrics rate: --rates LIST (5000,10000,20000,40000,60000)
//   --rate-seconds S (60)  --rate-trials K (1)
//   --with-flowlog (rate: every new event also logged, by ctsyncd's flow log
//   beside its sync, and by ulogd2 (NFCT → JSON, bench/lib/ulogd.mjs) in
//   fw1's namespace beside conntrackd; a rate is held only if the log lost
//   nothing either, and the CPU per entry includes ulogd2's)
//   --daemons ctsyncd (or conntrackd): run one daemon only, for a diagnosis
//   (e.g. with --cpu-prof, which burst and rate trials also honour); no
//   ratios then, so never for a figure in BENCHMARKS.md
//   e.g. node bench/run.mjs --metrics burst --burst-n 5000 --burst-trials 2 --transport udp --no-write
//        node bench/run.mjs --metrics rate --rate-seconds 10 --rates 2000,4000 --transport udp --no-write
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMONS, settingsFor, stopProcess } from './lib/daemons.mjs';
import { formatBurst, formatRate, formatReport, K, summarize } from './lib/report.mjs';
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
  lineCount,
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
import { configureUlogd, startUlogd, ulogdMissing, ulogdOverrunLines } from './lib/ulogd.mjs';
import { inject, MAX_ENTRIES, STREAM_MAX_ENTRIES } from './lib/workload.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The default set; burst and rate run only when named. */
const ALL_METRICS = ['replication', 'commit', 'resync', 'failover', 'loss'];
const KNOWN_METRICS = [...ALL_METRICS, 'burst', 'rate'];
const MiB = 2 ** 20;

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
    ctsyncdFlowlog: false,
    burstN: 20_000,
    burstTrials: 10,
    eventBufferMiB: 8,
    rates: [5000, 10_000, 20_000, 40_000, 60_000],
    rateSeconds: 60,
    rateTrials: 1,
    daemons: ['ctsyncd', 'conntrackd'],
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
      case '--ctsyncd-flowlog':
        o.ctsyncdFlowlog = true;
        break;
      case '--ctsyncd-v8':
        // Added after the #! line's options, e.g. --ctsyncd-v8 '--maglev' for an A/B of V8's compilers.
        o.ctsyncdV8 = val().split(/\s+/).filter(Boolean);
        break;
      case '--flowlog-queue-mib':
        o.flowlogQueueMib = num(val());
        break;
      case '--with-flowlog':
        o.withFlowlog = true;
        break;
      case '--event-coalesce-ms': {
        // 0 turns the pause off.
        const v = val();
        o.eventCoalesceMs = v === '0' ? 0 : num(v);
        break;
      }
      case '--ctsyncd-notify':
        o.ctsyncdNotify = val();
        if (!['script', 'command', 'fifo'].includes(o.ctsyncdNotify)) throw new Error('--ctsyncd-notify script|command|fifo');
        break;
      case '--report':
        o.report = resolve(val());
        break;
      case '--burst-n':
        o.burstN = num(val());
        break;
      case '--burst-trials':
        o.burstTrials = num(val());
        break;
      case '--event-buffer-mib':
        o.eventBufferMiB = num(val());
        break;
      case '--rates':
        o.rates = list(val()).map(num);
        break;
      case '--rate-seconds':
        o.rateSeconds = num(val());
        break;
      case '--rate-trials':
        o.rateTrials = num(val());
        break;
      case '--daemons':
        o.daemons = val().split(',');
        for (const d of o.daemons) if (d !== 'ctsyncd' && d !== 'conntrackd') throw new Error(`--daemons: unknown daemon ${d}`);
        break;
      case '-h':
      case '--help':
        console.log(
          'usage: node bench/run.mjs [--quick] [--n 10000,100000,1000000] [--pairs 3] [--transport multicast,udp]\n' +
            '         [--metrics replication,commit,resync,failover,loss] [--loss-n 100000] [--loss-pct 5]\n' +
            '         [--write|--no-write] [--json FILE] [--cpu-prof DIR] [--heap-snapshot DIR] [--rate ENTRIES_PER_S]\n' +
            '         [--bound SECONDS] [--keep] [--report FILE.json] [--ctsyncd-notify script|command|fifo] [--ctsyncd-inject] [--ctsyncd-flowlog] [--ctsyncd-v8 "FLAGS"]\n' +
            '         [--metrics burst,rate] [--burst-n 20000] [--burst-trials 10] [--event-buffer-mib 8]\n' +
            '         [--rates 5000,10000,20000,40000,60000] [--rate-seconds 60] [--rate-trials 1]\n' +
            '         [--daemons ctsyncd,conntrackd] (one alone: a diagnosis run, no ratios)',
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
  for (const m of o.metrics) if (!KNOWN_METRICS.includes(m)) throw new Error(`unknown metric ${m}`);
  for (const n of [...o.n, o.lossN, 2 * o.burstN]) if (n > MAX_ENTRIES) throw new Error(`N (and 2 × burst) at most ${MAX_ENTRIES}`);
  o.rates.sort((a, b) => a - b);
  for (const rate of o.rates) {
    if (rate * o.rateSeconds > STREAM_MAX_ENTRIES) throw new Error(`rate × seconds at most ${STREAM_MAX_ENTRIES} entries`);
  }
  if (o.eventBufferMiB > 1024) throw new Error('--event-buffer-mib at most 1024');
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

/** hhmmss (UTC) for the names of a trial's profile directories. */
const timeTag = () => new Date().toISOString().slice(11, 19).replace(/:/g, '');

async function startPair(d, topo, dir, n, opts, overrides = {}) {
  const [fw1, fw2] = topo.nodes;
  const s = {
    ...settingsFor(n),
    ...overrides,
    inject: opts.inject === true,
    notifyFifo: opts.notify === 'fifo',
    flowlog: opts.flowlog === true,
    flowlogQueueBytes: opts.flowlogQueueBytes,
    eventCoalesceMs: opts.eventCoalesceMs,
  };
  d.configure(fw1, fw2, topo, dir, s);
  d.configure(fw2, fw1, topo, dir, s);
  for (const node of [fw1, fw2]) d.start(node, opts);
  for (const node of [fw1, fw2]) await d.waitReady(node, START_BOUND);
  // What both daemons spent from exec to ready, outside every other CPU figure.
  const startCpuS = [fw1, fw2].reduce((t, node) => t + procSample(node.proc.child.pid).cpu, 0);
  // Let the start-up exchange (hello, empty resyncs) finish before measuring.
  await sleep(1000);
  return { startCpuS };
}

async function stopPair(d, topo) {
  for (const node of topo.nodes) if (node.proc) await d.stop(node).catch((e) => console.error(e.message));
}

/**
 * Injects n entries (first..first+n-1; fullSpeed: unpaced whatever --rate)
 * into fw1 and waits until fw2's external cache holds them all, and the
 * first ones too.
 */
async function replicate(d, topo, n, r, o, { first = 0, fullSpeed = false } = {}) {
  const target = first + n;
  const [fw1, fw2] = topo.nodes;
  const pids = [fw1.proc.child.pid, fw2.proc.child.pid];
  const before = pids.map(procSample);
  const tx0 = netDev(pids[0], 'sync0');
  const diag0 = await d.diagnostics(fw1);
  r.eventBufferBeforeBytes = diag0.bufferBytes;
  let t0;
  let injectError;
  const injecting = inject(fw1.netnsPath, n, { rate: fullSpeed ? undefined : o.rate, first, onStart: () => (t0 = now()) }).then(
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
      if (last !== undefined && last >= target) break;
      const el = now() - t0;
      if (el > bound) throw new TimeoutError(`replication: fw2 external ${last} of ${target} after ${Math.round(el)} ms`);
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
  r.lost = target - Math.min(target, c2.external);
  r.extra = c2.external > target ? c2.external - target : 0;
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
  r.overrunLine = diag1.overrunLine;
  r.kernelResyncs = diag1.kernelResyncs - diag0.kernelResyncs;
  r.eventBufferBytes = diag1.bufferBytes;
  if (r.flowlog) await flowlogCaughtUp(d, fw1, n, r);
  return r.replicationS !== undefined && r.lost === 0;
}

/**
 * With --ctsyncd-flowlog: whether fw1's flow log logged every new event
 * of the trial or dropped some (its queue full while its writer waited for
 * CPU), and how long after the replication it caught up (flowlogLagS).
 * Bounded: 30 s.
 */
async function flowlogCaughtUp(d, node, n, r) {
  const t0 = performance.now();
  const first = (await d.stats(node)).flowlog ?? {};
  let fl = first;
  for (let i = 0; i < 300 && (fl.queueLength ?? 0) > 0; i++) {
    await sleep(100);
    fl = (await d.stats(node)).flowlog ?? {};
  }
  r.flowlogQueuedAtDone = first.queueLength ?? 0;
  r.flowlogLagS = (fl.queueLength ?? 0) > 0 ? undefined : (performance.now() - t0) / 1000;
  r.flowlogLogged = fl.logged;
  r.flowlogDropped = fl.dropped;
  r.flowlogQueueFull = fl.queueFull;
  if ((fl.logged ?? 0) + (fl.dropped ?? 0) < n) r.errors.push(`flow log: ${fl.logged} logged + ${fl.dropped} dropped of ${n} new events`);
}

async function commitPhase(d, topo, n, r) {
  const fw2 = topo.nodes[1];
  const bound = phaseBound(n);
  const cpu2 = procSample(fw2.proc.child.pid).cpu;
  const t0 = now();
  const client = runIn(fw2.ns, d.clientArgv(fw2, ['-c']), {}, bound);
  const inKernel = waitCount('fw2 kernel after commit', bound, async () => kernelCountOf(fw2.proc.child.pid), n, t0);
  const [c, k] = await Promise.all([client, inKernel]);
  r.commitS = Math.max(c.ms, k.ms) / 1000;
  r.commitKernelS = k.ms / 1000;
  // The daemon's own CPU (its commit, the kernel's inserts done in its sendmsg calls), not the client's.
  r.commitCpuS = procSample(fw2.proc.child.pid).cpu - cpu2;
  r.commitChecked = await conntrackCount(fw2);
  if (r.commitChecked !== n) r.errors.push(`commit: conntrack -C ${r.commitChecked} ≠ ${n}`);
  if (d.name === 'ctsyncd') r.commitDaemonS = ((await d.counts(fw2)).raw.commit?.lastDurationMs ?? NaN) / 1000;
}

async function resyncPhase(d, topo, n, r, opts) {
  const fw2 = topo.nodes[1];
  const fw1 = topo.nodes[0];
  const bound = phaseBound(n);
  await d.stop(fw2);
  await conntrackFlush(fw2);
  const left = await conntrackCount(fw2);
  if (left !== 0) throw new Error(`fw2 kernel holds ${left} after conntrack -F`);
  const cpu1 = procSample(fw1.proc.child.pid).cpu;
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
  // Both daemons' CPU from the restart to the full cache: fw1's since then, the restarted fw2's whole life (start-up included).
  r.resyncCpuS = procSample(fw1.proc.child.pid).cpu - cpu1 + procSample(fw2.proc.child.pid).cpu;
  // Start-up share: restart → the daemon answers on its socket (conntrackd: and `-n` returned).
  r.resyncUpS = up / 1000;
  await d.waitReady(fw2, START_BOUND);
  // fw2's kernel is empty again, its external cache full: ready for failover.
}

/** One line into a FIFO the daemon holds open for reading, as keepalived writes its notify_fifo; resolves like runIn. */
async function writeFifoLine(path, line) {
  const t0 = now();
  const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    writeSync(fd, line);
  } finally {
    closeSync(fd);
  }
  return { ms: now() - t0 };
}

async function failoverPhase(d, topo, n, r, o) {
  const fw2 = topo.nodes[1];
  const bound = phaseBound(n);
  const f = d.failover(fw2, o.ctsyncdNotify);
  if (d.name === 'ctsyncd') r.notify = o.ctsyncdNotify;
  const t0 = now();
  // keepalived writes its notify_fifo line and goes on: the time to N starts at that write.
  const script = f.fifo ? writeFifoLine(f.fifo, f.line) : runIn(fw2.ns, f.argv, f.env, bound * 2);
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
  const tag = `${transport}-${K(n)}${lossPct ? `-loss${lossPct}` : ''}-${timeTag()}`;
  const prof = {};
  if (o.cpuProf && daemonName === 'ctsyncd') prof.cpuProfDir = join(o.cpuProf, tag);
  if (o.heapSnapshot && daemonName === 'ctsyncd') prof.heapDir = join(o.heapSnapshot, tag);
  for (const p of Object.values(prof)) mkdirSync(p, { recursive: true });
  if (o.ctsyncdV8 && daemonName === 'ctsyncd') r.v8Flags = o.ctsyncdV8;
  let topo;
  try {
    topo = await createTopology();
    topo.transport = transport;
    r.group = topo.group;
    if (lossPct) for (const node of topo.nodes) await addEgressLoss(node, lossPct, topo.port);
    if (o.ctsyncdInject && daemonName === 'ctsyncd') r.inject = true;
    if (o.ctsyncdFlowlog && daemonName === 'ctsyncd') r.flowlog = true;
    if (r.flowlog && o.flowlogQueueMib !== undefined) r.flowlogQueueBytes = o.flowlogQueueMib * 2 ** 20;
    if (o.eventCoalesceMs !== undefined && daemonName === 'ctsyncd') r.eventCoalesceMs = o.eventCoalesceMs;
    const started = await startPair(d, topo, dir, n, {
      ...prof,
      v8Flags: r.v8Flags,
      inject: r.inject,
      notify: daemonName === 'ctsyncd' ? o.ctsyncdNotify : undefined,
      flowlog: r.flowlog,
      flowlogQueueBytes: r.flowlogQueueBytes,
      eventCoalesceMs: r.eventCoalesceMs,
    });
    r.startCpuS = started.startCpuS;
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
      if (topo.ulogd) {
        r.ulogdOverrunLines = ulogdOverrunLines(topo.ulogd.u);
        await stopProcess(topo.ulogd.proc);
      }
      await stopPair(d, topo);
      destroyTopology(topo);
    }
    runCleanup(dirHandle);
  }
  r.load1After = load1();
  return r;
}

// ---------------------------------------------------------------------------
// burst and rate: their own trials, both daemons with the same event buffer.

/**
 * One daemon on fresh fw1/fw2 started for n entries with the event buffer of
 * --event-buffer-mib; body(d, topo) measures into r. Cleans up as trial().
 */
async function bufferTrial(r, n, o, body) {
  const d = DAEMONS[r.daemon];
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-bench-'));
  const dirHandle = onCleanup(() => o.keep || rmSync(dir, { recursive: true, force: true }), `dir ${dir}`);
  let topo;
  try {
    topo = await createTopology();
    topo.transport = r.transport;
    r.group = topo.group;
    if (o.eventCoalesceMs !== undefined && r.daemon === 'ctsyncd') r.eventCoalesceMs = o.eventCoalesceMs;
    const flowlog = r.flowlog === true && r.daemon === 'ctsyncd';
    if (o.ctsyncdV8 && r.daemon === 'ctsyncd') r.v8Flags = o.ctsyncdV8;
    // --cpu-prof: a profile per ctsyncd process, as in the main trials.
    const cpuProfDir = o.cpuProf && r.daemon === 'ctsyncd' ? join(o.cpuProf, `${r.metric}-${r.transport}-${timeTag()}`) : undefined;
    if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
    await startPair(
      d,
      topo,
      dir,
      n,
      {
        eventCoalesceMs: r.eventCoalesceMs,
        flowlog,
        ...(cpuProfDir ? { cpuProfDir } : {}),
        ...(o.ctsyncdV8 && r.daemon === 'ctsyncd' ? { v8Flags: o.ctsyncdV8 } : {}),
      },
      { netlinkBufferBytes: r.eventBufferConfiguredBytes },
    );
    if (flowlog) topo.flowFile = join(dir, `${topo.nodes[0].id}.flows.jsonl`);
    if (r.flowlog === true && r.daemon === 'conntrackd') {
      // ulogd2 in fw1's namespace, the one whose kernel sees the events, with the same event buffer.
      const u = configureUlogd(dir, r.eventBufferConfiguredBytes);
      topo.ulogd = { u, proc: await startUlogd(topo.nodes[0], u) };
      topo.flowFile = u.out;
    }
    await body(d, topo);
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

function baseRecord(metric, daemon, transport, n, o, extra) {
  return {
    metric,
    daemon,
    transport,
    n,
    ...extra,
    eventBufferConfiguredBytes: o.eventBufferMiB * MiB,
    load1: load1(),
    errors: [],
    logs: [],
    timeouts: {},
    date: new Date().toISOString(),
  };
}

const WARMUP_KEYS = ['replicationS', 'lost', 'overruns', 'kernelResyncs', 'cpuPerEntryUs', 'eventBufferBytes', 'injectorS'];

/**
 * burst: B entries at full speed; warm: after B others fully replicated.
 * overran: fw1's event socket overran between just before the burst and a
 * second after fw2 held it all.
 */
async function burstTrial(daemon, { transport, variant, trial: k }, o) {
  const b = o.burstN;
  const r = baseRecord('burst', daemon, transport, b, o, { variant, trial: k });
  return bufferTrial(r, 2 * b, o, async (d, topo) => {
    if (variant === 'warm') {
      const w = { errors: [], timeouts: {} };
      const ok = await replicate(d, topo, b, w, o, { fullSpeed: true });
      r.warmup = Object.fromEntries(WARMUP_KEYS.map((key) => [key, w[key]]));
      if (!ok) throw new Error(`warm-up burst not replicated (lost ${w.lost}): ${w.errors.join('; ')}`);
    }
    await replicate(d, topo, b, r, o, { first: variant === 'warm' ? b : 0, fullSpeed: true });
    r.overran = r.overruns > 0;
  });
}

/** A rate is held: no overrun, lag < 1 s, nothing lost, injector ≥ 95% of the rate. */
const MAX_LAG_S = 1;
const MIN_OFFERED = 0.95;
const SAMPLE_MS = 100;

async function rateTrial(daemon, { transport, rate, trial: k }, o) {
  const n = rate * o.rateSeconds;
  const r = baseRecord('rate', daemon, transport, n, o, { rate, seconds: o.rateSeconds, trial: k, ...(o.withFlowlog ? { flowlog: true } : {}) });
  return bufferTrial(r, n, o, (d, topo) => stream(d, topo, n, rate, r));
}

/**
 * The paced stream and its lag samples (see the header): every ~100 ms, E =
 * fw2's external count, then I = creates done; lag = (I − E) ÷ rate.
 * Bounded: the injector to 2 × its nominal time + 30 s (then stopped), the
 * tail after it to --bound (60 s).
 */
async function stream(d, topo, n, rate, r) {
  const [fw1, fw2] = topo.nodes;
  // ulogd2 beside conntrackd (--with-flowlog): its CPU is the logging's, counted with fw1's.
  const pids = [fw1.proc.child.pid, fw2.proc.child.pid, ...(topo.ulogd ? [topo.ulogd.proc.child.pid] : [])];
  const before = pids.map(procSample);
  const diag0 = await d.diagnostics(fw1);
  r.eventBufferBeforeBytes = diag0.bufferBytes;
  const progress = { sent: 0, stop: false };
  let t0;
  let injectedAt;
  let injectError;
  const injecting = inject(fw1.netnsPath, n, { rate, progress, onStart: () => (t0 = now()) }).then(
    (x) => {
      injectedAt = now();
      r.injectorS = x.seconds;
      r.injected = x.sent;
    },
    (e) => (injectError = e),
  );
  await until(() => t0 !== undefined || injectError, 'injector start', 30_000);
  const injectBound = 2 * (n / rate) * 1000 + 30_000;
  const tailBound = minBoundMs;
  const series = [];
  let maxLagEntries = 0;
  let maxGapMs = 0;
  let lastSample = now();
  let heldAllAt;
  try {
    for (;;) {
      if (injectError) throw injectError;
      const tReq = now();
      const e = (await d.counts(fw2).catch(() => undefined))?.external;
      const t = now();
      const i = progress.sent;
      if (e !== undefined) {
        maxGapMs = Math.max(maxGapMs, t - lastSample);
        lastSample = t;
        series.push([Math.round(t - t0), i, e]);
        maxLagEntries = Math.max(maxLagEntries, i - e);
        if (injectedAt !== undefined && e >= n) {
          heldAllAt = t;
          break;
        }
      }
      if (injectedAt === undefined && t - t0 > injectBound) {
        progress.stop = true;
        throw new TimeoutError(`rate: injector at ${progress.sent} of ${n} after ${Math.round(t - t0)} ms; stopped`);
      }
      if (injectedAt !== undefined && t - injectedAt > tailBound) {
        r.timeouts.rate = tailBound / 1000;
        throw new TimeoutError(`rate: fw2 external ${e} of ${n} ${Math.round(t - injectedAt)} ms after the last create`);
      }
      await sleep(Math.max(1, SAMPLE_MS - (now() - tReq)));
    }
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    // A rate not held, not an error of the run.
    r.stopped = e.message;
  } finally {
    progress.stop = true;
  }
  let done = false;
  await Promise.race([injecting.then(() => (done = true)), sleep(30_000)]);
  if (injectError) throw injectError;
  if (!done) throw new TimeoutError('rate: injector did not stop');
  // A further second, as replication: the last acks, overruns reported late.
  await sleep(1000);
  // The flow log: every new event a line, once the file stops growing (ctsyncd flushes
  // each second, and its idle writer may wait up to 3 s for CPU; ulogd writes each line).
  if (topo.flowFile) {
    let last = -1;
    let lastChange = now();
    await until(
      () => {
        const lines = lineCount(topo.flowFile);
        if (lines !== last) {
          last = lines;
          lastChange = now();
        }
        return lines >= n || now() - lastChange > 5000;
      },
      'the flow log complete or quiet',
      120_000,
      { intervalMs: 100 },
    );
    r.flowLines = lineCount(topo.flowFile);
    r.flowLost = n - Math.min(n, r.flowLines);
  }
  const after = pids.map(procSample);
  const diag1 = await d.diagnostics(fw1);
  const c2 = await d.counts(fw2);
  r.samples = series.length;
  r.series = series;
  r.maxSampleGapS = maxGapMs / 1000;
  r.maxLagEntries = maxLagEntries;
  r.maxLagS = maxLagEntries / rate;
  r.tailS = heldAllAt === undefined ? undefined : (heldAllAt - injectedAt) / 1000;
  r.offeredRate = (r.injected ?? progress.sent) / (r.injectorS ?? (now() - t0) / 1000);
  r.lost = n - Math.min(n, c2.external);
  r.overruns = diag1.overruns - diag0.overruns;
  r.overrunLine = diag1.overrunLine;
  r.kernelResyncs = diag1.kernelResyncs - diag0.kernelResyncs;
  r.eventBufferBytes = diag1.bufferBytes;
  if (diag1.ringBytes) Object.assign(r, { ringBytes: diag1.ringBytes, ringMaxHeldBytes: diag1.ringMaxHeldBytes, ringFull: diag1.ringFull });
  r.cpuFw1S = after[0].cpu - before[0].cpu;
  r.cpuFw2S = after[1].cpu - before[1].cpu;
  if (topo.ulogd) r.cpuUlogdS = after[2].cpu - before[2].cpu;
  r.cpuPerEntryUs = ((r.cpuFw1S + r.cpuFw2S + (r.cpuUlogdS ?? 0)) / n) * 1e6;
  r.held =
    heldAllAt !== undefined &&
    r.lost === 0 &&
    (r.flowLost ?? 0) === 0 &&
    r.overruns === 0 &&
    r.maxLagS < MAX_LAG_S &&
    r.offeredRate >= MIN_OFFERED * rate &&
    r.stopped === undefined &&
    r.errors.length === 0;
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
  if (r.flowlogLogged !== undefined)
    parts.push(`flowlog logged=${r.flowlogLogged} dropped=${r.flowlogDropped} queued-at-done=${r.flowlogQueuedAtDone} caught-up=${r.flowlogLagS === undefined ? 'no' : `${f3(r.flowlogLagS)}s`}`);
  if (r.lost) parts.push(`(fw1 kernel ${r.fw1Kernel}, fw1 internal ${r.fw1Internal}, fw2 external ${r.fw2External})`);
  parts.push(`load=${r.load1.toFixed(2)}`);
  console.log(parts.join(' '));
  for (const e of r.errors) console.log(`    ! ${e.split('\n').join('\n      ')}`);
  for (const l of r.logs) console.log(`    log ${l.split('\n').slice(-8).join('\n      ')}`);
}

function logExtra(r) {
  for (const e of r.errors) console.log(`    ! ${e.split('\n').join('\n      ')}`);
  for (const l of r.logs) console.log(`    log ${l.split('\n').slice(-8).join('\n      ')}`);
}

const MiBText = (b) => (b === undefined || Number.isNaN(b) ? '-' : `${(b / MiB).toFixed(0)}MiB`);

function logBurst(i, total, r) {
  const w = r.warmup;
  const parts = [
    `[${i}/${total}]`,
    r.daemon.padEnd(10),
    `${r.transport.padEnd(9)} burst B=${r.n} ${r.variant.padEnd(5)} #${r.trial + 1}`,
    `overran=${r.overran === undefined ? '-' : r.overran ? `yes (${r.overruns})` : 'no'}`,
    `cpu=${f1(r.cpuPerEntryUs)}µs/e repl=${f3(r.replicationS)}s lost=${r.lost ?? '-'}`,
    `buffer ${MiBText(r.eventBufferBeforeBytes)}→${MiBText(r.eventBufferBytes)}`,
  ];
  if (w) parts.push(`(warm-up: repl=${f3(w.replicationS)}s overruns=${w.overruns ?? '-'} cpu=${f1(w.cpuPerEntryUs)}µs/e)`);
  parts.push(`load=${r.load1.toFixed(2)}→${r.load1After.toFixed(2)}`);
  console.log(parts.join(' '));
  logExtra(r);
}

function logRate(i, r) {
  const parts = [
    `[rate ${i}]`,
    r.daemon.padEnd(10),
    `${r.transport.padEnd(9)} rate=${r.rate}/s × ${r.seconds}s #${r.trial + 1}`,
    r.held ? 'HELD' : 'not held',
    `lag=${f3(r.maxLagS)}s (${r.maxLagEntries ?? '-'} entries) tail=${f3(r.tailS)}s`,
    `overruns=${r.overruns ?? '-'} lost=${r.lost ?? '-'} offered=${r.offeredRate === undefined ? '-' : Math.round(r.offeredRate)}/s`,
    ...(r.flowlog ? [`flow lines=${r.flowLines ?? '-'} lost=${r.flowLost ?? '-'}${r.cpuUlogdS !== undefined ? ` ulogd cpu=${f3(r.cpuUlogdS)}s` : ''}`] : []),
    `cpu=${f1(r.cpuPerEntryUs)}µs/e samples=${r.samples ?? '-'} (max gap ${f3(r.maxSampleGapS)}s)`,
    ...(r.ringBytes ? [`ring held≤${MiBText(r.ringMaxHeldBytes)} of ${MiBText(r.ringBytes)} full=${r.ringFull}`] : []),
    `load=${r.load1.toFixed(2)}→${r.load1After.toFixed(2)}`,
  ];
  console.log(parts.join(' '));
  if (r.stopped) console.log(`    stopped: ${r.stopped}`);
  logExtra(r);
}

function output(o, { command, started, finished, records }) {
  const pairs = Math.max(1, ...records.filter((r) => r.metric === undefined).map((r) => (r.pair ?? 0) + 1));
  const notes = [];
  if (records.some((r) => r.notify === 'command')) {
    notes.push(
      'Failover: ctsyncd ran its one-request notify command, `ctsyncd --config FILE failover primary`, ' +
        "instead of primary-backup.sh; conntrackd ran Debian's primary-backup.sh.",
    );
  }
  const v8 = records.find((r) => r.v8Flags)?.v8Flags;
  if (v8) notes.push(`ctsyncd ran with the V8 options \`${v8.join(' ')}\` after those of bin/ctsyncd's #! line.`);
  if (records.some((r) => r.notify === 'script')) {
    notes.push("Failover: each daemon's keepalived notify script (ctsyncd's contrib primary-backup.sh, Debian's for conntrackd).");
  }
  if (records.some((r) => r.notify === 'fifo')) {
    notes.push(
      "Failover: ctsyncd read keepalived's notify_fifo itself (`failover.notifyFifo`), the harness writing the " +
        "MASTER line keepalived writes; conntrackd ran Debian's primary-backup.sh (keepalived's notify script).",
    );
  }
  if (records.some((r) => r.inject)) {
    notes.push(
      'ctsyncd ran with `failover: { inject: true }`: fw2 writes its peers\' entries into its own kernel as they ' +
        'arrive (replication and CPU include that), so the failover commit finds them there already.',
    );
  }
  if (records.some((r) => r.flowlog)) {
    notes.push(
      'ctsyncd ran with a flow log beside sync (`flowlog: { events: [new, destroy], file: ... }` on both nodes): ' +
        'replication and CPU include logging every new and destroy event to a JSON-lines file.',
    );
  }
  const main = records.filter((r) => r.metric === undefined);
  const sections = [];
  const bursts = records.filter((r) => r.metric === 'burst');
  const rates = records.filter((r) => r.metric === 'rate');
  if (bursts.length) sections.push(formatBurst(bursts));
  if (rates.length) sections.push(formatRate(rates));
  const report = formatReport(summarize(main), { command, started, finished, notes, sections, options: { ...o, pairs } });
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
  if (o.withFlowlog) {
    if (!o.metrics.includes('rate')) throw new Error('--with-flowlog: with --metrics rate (for replication beside a flow log: --ctsyncd-flowlog)');
    const missing = ulogdMissing();
    if (missing) throw new Error(`--with-flowlog: ${missing}`);
  }
  if (process.getuid?.() !== 0) throw new Error('bench/run needs root (network namespaces, ctnetlink)');
  const command = `node bench/run.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const started = new Date();
  console.log(`${command}\n${started.toISOString()}  load average ${loadString()}`);

  const plan = [];
  const mainMetrics = o.metrics.filter((m) => m !== 'loss' && m !== 'burst' && m !== 'rate');
  if (mainMetrics.length > 0) {
    for (const n of o.n)
      for (const transport of o.transports)
        for (let p = 0; p < o.pairs; p++)
          for (const daemon of o.daemons) plan.push({ daemon, n, transport, lossPct: 0, pair: p });
  }
  if (o.metrics.includes('loss')) {
    for (const transport of o.transports)
      for (let p = 0; p < o.pairs; p++)
        for (const daemon of o.daemons)
          plan.push({ daemon, n: o.lossN, transport, lossPct: o.lossPct, pair: p });
  }
  const bursts = [];
  if (o.metrics.includes('burst')) {
    for (const transport of o.transports)
      for (let k = 0; k < o.burstTrials; k++)
        for (const variant of ['fresh', 'warm'])
          for (const daemon of o.daemons) bursts.push({ daemon, transport, variant, trial: k });
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
    for (const [i, t] of bursts.entries()) {
      limits.push(...raiseConntrackLimits(4 * o.burstN + 65_536));
      const r = await burstTrial(t.daemon, t, o);
      records.push(r);
      logBurst(i + 1, bursts.length, r);
      if (o.json) writeFileSync(o.json, `${JSON.stringify({ command, started, records }, null, 1)}\n`);
    }
    if (o.metrics.includes('rate')) {
      // Increasing rates; a daemon that failed one is not run at the higher ones.
      let i = 0;
      for (const transport of o.transports) {
        const going = new Set(o.daemons);
        for (const rate of o.rates) {
          const failed = new Set();
          for (let k = 0; k < o.rateTrials; k++) {
            for (const daemon of o.daemons) {
              if (!going.has(daemon)) continue;
              limits.push(...raiseConntrackLimits(2 * rate * o.rateSeconds + 65_536));
              const r = await rateTrial(daemon, { transport, rate, trial: k }, o);
              records.push(r);
              logRate(++i, r);
              if (o.json) writeFileSync(o.json, `${JSON.stringify({ command, started, records }, null, 1)}\n`);
              if (r.held !== true) failed.add(daemon);
            }
          }
          for (const daemon of failed) going.delete(daemon);
          if (going.size === 0) break;
        }
      }
    }
  } finally {
    for (const h of limits.reverse()) runCleanup(h);
    cleanupAll();
  }

  const finished = new Date();
  if (o.json) writeFileSync(o.json, `${JSON.stringify({ command, started, finished, records }, null, 1)}\n`);
  output(o, { command, started, finished, records });
  // A rate that was not held is a result, not a failure of the run.
  if (records.some((r) => r.errors.length > 0 || (r.metric !== 'rate' && (r.lost ?? 0) > 0))) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  cleanupAll();
  process.exit(2);
});
