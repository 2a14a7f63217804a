#!/usr/bin/env node
// bench/flowlog: ctsyncd's flow log against ulogd2 (Debian ulogd2 2.0.8 +
// ulogd2-json: NFCT → IP2STR → JSON, the setup most operators run), in the
// same run, alternating (ctsyncd, ulogd2, ctsyncd, …), issue 16.
//
// Every trial builds a fresh namespace, starts one logger in it (ctsyncd in
// Stats mode: flowlog alone, no sync; or ulogd), creates N established TCP
// entries in its kernel with the batched injector (bench/lib/workload.mjs)
// and then flushes the table (`conntrack -F`): N new and N destroy events,
// both logged by each daemon. Measured per trial:
//
//   logged   lines in the daemon's JSON file once it stopped growing
//   lost     2N − logged (event overruns, a full queue: whatever was not logged)
//   cpu      CPU seconds of the daemon (/proc/PID/stat, helper threads
//            included) from before the first create until its file stopped
//            growing, ÷ logged: CPU per logged event
//
// Both read the events through the same event socket buffer
// (--event-buffer-mib, 8 MiB: ctsyncd kernel.netlinkBufferBytes, ulogd
// netlink_socket_buffer_size; ulogd may grow it to 256 MiB after an
// overrun, ctsyncd by doubling up to kernel.netlinkBufferMaxBytes' default).
// Each writes as shipped: ctsyncd buffered (a flush a second), ulogd's JSON
// output with Debian's sync=1 (a write per line, no fsync). ulogd logs each
// event as it comes (hash_enable=0, event_mask new|destroy), as ctsyncd does.
//
// Run as root after `npm ci` and `apt-get install ulogd2 ulogd2-json`:
//   node bench/flowlog.mjs --n 5000 --no-write      smoke check (1 pair)
//   node bench/flowlog.mjs                          N = 100k, 3 pairs
// Options: --n N  --pairs P  --event-buffer-mib M  --ulogd PATH
//   (/usr/sbin/ulogd)  --ulogd-plugins DIR (/usr/lib/x86_64-linux-gnu/ulogd)
//   --json FILE (every trial's record)  --keep (keep trial directories)
//   --cpu-prof DIR (ctsyncd's profiles, one directory per trial, a file per thread)
//   --event-coalesce-ms M (ctsyncd's kernel.eventCoalesceMs; its default, 1, when absent)
//   --write | --no-write (the section in BENCHMARKS.md; default: no write)
//   --rates R1,R2,…  --rate-seconds S (5): after the bursts, the highest
//   rate logged without loss: each logger in turn (alternating) takes R × S
//   creates paced at R per second, the rates in increasing order, until one
//   loses an event; `--pairs 0` runs the rates alone.
// Beside a running sync: `bench/run.mjs --ctsyncd-flowlog` (replication with
// the flow log on, conntrackd as the anchor) against the same run without.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { controlRequest } from '../dist/control/client.js';
import { alive, CTSYNCD_BIN, SHEBANG_FLAGS, startProcess, stopProcess, tail, verifyPid } from './lib/daemons.mjs';
import { raiseConntrackLimits } from './lib/topology.mjs';
import { inject } from './lib/workload.mjs';
import { configureUlogd, startUlogd, ulogdMissing, ulogdOverrunLines } from './lib/ulogd.mjs';
import { lineCount, loadString, median, onCleanup, procSample, run, runCleanup, runSync, sleep, threadCpu, until } from './lib/util.mjs';

const { values: opt } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    pairs: { type: 'string', default: '3' },
    'event-buffer-mib': { type: 'string', default: '8' },
    rates: { type: 'string' },
    'rate-seconds': { type: 'string', default: '5' },
    ulogd: { type: 'string', default: '/usr/sbin/ulogd' },
    'ulogd-plugins': { type: 'string', default: '/usr/lib/x86_64-linux-gnu/ulogd' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'event-coalesce-ms': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
});
const N = Number(opt.n);
const PAIRS = Number(opt.pairs);
const BUFFER = Number(opt['event-buffer-mib']) * 1024 * 1024;
const RATES = opt.rates ? opt.rates.split(',').map(Number) : [];
const RATE_SECONDS = Number(opt['rate-seconds']);
if (RATES.some((r) => !Number.isInteger(r) || r < 1) || !(RATE_SECONDS > 0)) throw new Error('--rates: a list of events per second; --rate-seconds: > 0');
if (!Number.isInteger(N) || N < 1 || N > 1 << 20) throw new Error('--n: 1..1048576');
if (!Number.isInteger(PAIRS) || PAIRS < 0) throw new Error('--pairs: 0 or more');
if (process.getuid?.() !== 0) throw new Error('run as root: the trials create network namespaces');
const missing = ulogdMissing(opt.ulogd, opt['ulogd-plugins']);
if (missing) throw new Error(`${missing} (or --ulogd, --ulogd-plugins)`);

let profiles = 0;

/** Longest a trial waits for its file to stop growing. */
const SETTLE_BOUND_MS = 120_000;
/** The file is taken as complete when it held 2N lines or did not grow for this long. */
const QUIET_MS = 3000;

const LOGGERS = {
  ctsyncd: {
    configure(t) {
      t.conf = join(t.dir, 'ctsyncd.yaml');
      t.socket = join(t.dir, 'ctsyncd.sock');
      t.out = join(t.dir, 'flows.jsonl');
      writeFileSync(
        t.conf,
        [
          `node: { id: bx1, stateDir: ${join(t.dir, 'state')} }`,
          `kernel: { netlinkBufferBytes: ${BUFFER}${opt['event-coalesce-ms'] !== undefined ? `, eventCoalesceMs: ${Number(opt['event-coalesce-ms'])}` : ''} }`,
          `control: { socket: ${t.socket} }`,
          'log: { level: info, format: text }',
          'metrics: { enabled: false }',
          `flowlog: { events: [new, destroy], file: { path: ${t.out} } }`,
          '',
        ].join('\n'),
      );
    },
    start(t) {
      // --cpu-prof DIR: one directory per trial, a profile per thread (the writer's thread has its own).
      const prof = opt['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', join(opt['cpu-prof'], `ctsyncd-${++profiles}`)] : [];
      t.proc = startProcess(t, ['node', ...SHEBANG_FLAGS, ...prof, CTSYNCD_BIN, '--config', t.conf], join(t.dir, 'ctsyncd.log'), 'ctsyncd');
    },
    async waitReady(t) {
      await until(
        async () => {
          if (!alive(t.proc)) throw new Error(`ctsyncd exited: ${tail(t.proc.logPath)}`);
          const st = await controlRequest(t.socket, 'stats', undefined, { timeoutMs: 2000 }).catch(() => undefined);
          return st?.ready === true;
        },
        'ctsyncd ready',
        30_000,
        { intervalMs: 20, diag: () => tail(t.proc.logPath) },
      );
      verifyPid(t.proc, 'bin/ctsyncd');
    },
    async extra(t) {
      const st = await controlRequest(t.socket, 'stats', undefined, { timeoutMs: 10_000 });
      return { overruns: st.kernel?.overruns, queueFull: st.flowlog?.queueFull, dropped: st.flowlog?.dropped };
    },
  },
  ulogd: {
    configure(t) {
      t.u = configureUlogd(t.dir, BUFFER, opt['ulogd-plugins']);
      t.out = t.u.out;
    },
    start() {},
    async waitReady(t) {
      t.proc = await startUlogd(t, t.u, opt.ulogd, join(t.dir, 'ulogd.stderr'));
    },
    async extra(t) {
      return { overrunLines: ulogdOverrunLines(t.u) };
    },
  },
};

/**
 * One trial of one logger. Burst (no rate): N creates at full speed, then
 * `conntrack -F`: 2N events. Rate R: R × --rate-seconds creates paced at R
 * per second, no flush: that many new events.
 */
async function trial(name, index, rate) {
  const logger = LOGGERS[name];
  const dir = mkdtempSync(join(tmpdir(), `ctsyncd-bfl-${name}-`));
  const ns = `bfl${process.pid.toString(36)}${index}`.slice(0, 15);
  const t = { dir, ns, netnsPath: `/var/run/netns/${ns}` };
  await run('ip', ['netns', 'add', ns]);
  const nsHandle = onCleanup(() => {
    try {
      runSync('ip', ['netns', 'del', ns], 20_000);
    } catch {
      // already gone
    }
  }, `netns ${ns}`);
  try {
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    logger.configure(t);
    logger.start(t);
    await logger.waitReady(t);
    const pid = t.proc.child.pid;
    const before = procSample(pid);
    const threadsBefore = threadCpu(pid);
    const t0 = performance.now();
    const events = rate ? rate * RATE_SECONDS : 2 * N;
    if (rate) {
      await inject(t.netnsPath, events, { rate });
    } else {
      await inject(t.netnsPath, N);
      await run('ip', ['netns', 'exec', ns, 'conntrack', '-F'], 120_000);
    }
    // Until every event's line, or no growth for QUIET_MS (what is missing then is lost).
    let last = -1;
    let lastChange = performance.now();
    await until(
      () => {
        const n = lineCount(t.out);
        if (n !== last) {
          last = n;
          lastChange = performance.now();
        }
        return n >= events || performance.now() - lastChange > QUIET_MS;
      },
      `${name}: the flow log complete or quiet`,
      SETTLE_BOUND_MS,
      { intervalMs: 100 },
    );
    // The quiet wait itself is idle time, not work: CPU is read now, as the file stopped growing.
    const after = procSample(pid);
    const threadsAfter = threadCpu(pid);
    // Per thread name: where the CPU went (main: events, cache; ctsyncd-flowlog: the writer; node: V8, libuv).
    const threads = Object.fromEntries(Object.entries(threadsAfter).map(([k, v]) => [k, Math.round((v - (threadsBefore[k] ?? 0)) * 1000) / 1000]));
    const seconds = (performance.now() - t0) / 1000;
    const logged = lineCount(t.out);
    const extra = await logger.extra(t);
    const cpu = after.cpu - before.cpu;
    return { daemon: name, n: N, rate, events, logged, lost: events - logged, cpu, cpuPerEventUs: logged > 0 ? (cpu / logged) * 1e6 : null, threads, seconds, extra, load: loadString() };
  } finally {
    await stopProcess(t.proc);
    runCleanup(nsHandle);
    if (!opt.keep) rmSync(dir, { recursive: true, force: true });
  }
}

// nf_conntrack_max is global (read-only in a namespace): room for the largest trial, restored at the end.
const limits = raiseConntrackLimits(Math.max(2 * N, ...RATES.map((r) => r * RATE_SECONDS)) + 65_536);
const records = [];
const started = new Date();
for (let p = 0; p < PAIRS; p++) {
  // Alternating, and which one goes first alternates too.
  const order = p % 2 === 0 ? ['ctsyncd', 'ulogd'] : ['ulogd', 'ctsyncd'];
  for (const [k, name] of order.entries()) {
    const r = await trial(name, p * 2 + k);
    records.push(r);
    console.log(
      `${name.padEnd(8)} n=${N} logged=${r.logged} lost=${r.lost} cpu=${r.cpu.toFixed(3)} s ` +
        `(${r.cpuPerEventUs?.toFixed(2) ?? '-'} µs/event) threads ${JSON.stringify(r.threads)} ${JSON.stringify(r.extra)} load ${r.load}`,
    );
    await sleep(500);
  }
}

// The rate ladder: each logger climbs until it loses an event.
const held = { ctsyncd: 0, ulogd: 0 };
const rateRecords = [];
if (RATES.length > 0) {
  const going = new Set(['ctsyncd', 'ulogd']);
  for (const [i, rate] of [...RATES].sort((a, b) => a - b).entries()) {
    for (const name of i % 2 === 0 ? ['ctsyncd', 'ulogd'] : ['ulogd', 'ctsyncd']) {
      if (!going.has(name)) continue;
      const r = await trial(name, 100 + i * 2 + (name === 'ulogd' ? 1 : 0), rate);
      rateRecords.push(r);
      console.log(
        `${name.padEnd(8)} rate=${rate}/s × ${RATE_SECONDS} s: logged=${r.logged} lost=${r.lost} cpu=${r.cpu.toFixed(3)} s ` +
          `(${r.cpuPerEventUs?.toFixed(2) ?? '-'} µs/event) threads ${JSON.stringify(r.threads)} ${JSON.stringify(r.extra)} load ${r.load}`,
      );
      if (r.lost === 0) held[name] = rate;
      else going.delete(name);
      await sleep(500);
    }
    if (going.size === 0) break;
  }
}

const of = (name) => records.filter((r) => r.daemon === name);
const med = (name, key) => median(of(name).map((r) => r[key]).filter((v) => v !== null));
const lines = [
  `flowlog bench, ${started.toISOString()}: N = ${N} (2N events per trial), ${PAIRS} pair(s), event buffer ${opt['event-buffer-mib']} MiB`,
];
if (records.length > 0) {
  const ours = med('ctsyncd', 'cpuPerEventUs');
  const theirs = med('ulogd', 'cpuPerEventUs');
  lines.push(
    '',
    '| | CPU per logged event (median) | lost (median of 2N) |',
    '|---|---|---|',
    `| ctsyncd | ${ours.toFixed(2)} µs | ${med('ctsyncd', 'lost')} |`,
    `| ulogd2 | ${theirs.toFixed(2)} µs | ${med('ulogd', 'lost')} |`,
    `| ctsyncd / ulogd2 | ${(ours / theirs).toFixed(2)}× | |`,
  );
}
if (rateRecords.length > 0) {
  const cpuAt = (name, rate) => rateRecords.find((r) => r.daemon === name && r.rate === rate)?.cpuPerEventUs;
  lines.push(
    '',
    `Highest rate logged without loss (${RATE_SECONDS} s at each of ${RATES.join(', ')} events/s): ` +
      `ctsyncd ${held.ctsyncd || 'none'}/s, ulogd2 ${held.ulogd || 'none'}/s` +
      (held.ctsyncd && held.ulogd ? ` (${(held.ctsyncd / held.ulogd).toFixed(2)}×)` : ''),
    '',
    '| rate (events/s) | ctsyncd lost | ctsyncd CPU/event | ulogd2 lost | ulogd2 CPU/event |',
    '|---|---|---|---|---|',
    ...[...new Set(rateRecords.map((r) => r.rate))].map((rate) => {
      const c = rateRecords.find((r) => r.daemon === 'ctsyncd' && r.rate === rate);
      const u = rateRecords.find((r) => r.daemon === 'ulogd' && r.rate === rate);
      const us = (v) => (v === undefined || v === null ? '-' : `${v.toFixed(2)} µs`);
      return `| ${rate} | ${c?.lost ?? '-'} | ${us(cpuAt('ctsyncd', rate))} | ${u?.lost ?? '-'} | ${us(cpuAt('ulogd', rate))} |`;
    }),
  );
}
console.log(`\n${lines.join('\n')}`);
for (const h of limits) runCleanup(h);
if (opt.json) writeFileSync(opt.json, JSON.stringify({ started, options: opt, records, rateRecords }, null, 2));
if (opt.write && !opt['no-write']) {
  const md = join(import.meta.dirname, '..', 'BENCHMARKS.md');
  const text = readFileSync(md, 'utf8');
  const begin = '<!-- flowlog-bench:begin -->';
  const end = '<!-- flowlog-bench:end -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`BENCHMARKS.md has no ${begin} … ${end} section`);
  writeFileSync(md, `${text.slice(0, a + begin.length)}\n${lines.join('\n')}\n${text.slice(b)}`);
  console.log('BENCHMARKS.md: flowlog section written');
}
