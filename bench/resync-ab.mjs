#!/usr/bin/env node
// bench/resync-ab: the restarted side of a resync, A/B in one topology, for a
// shared machine where bench/run.mjs's wall times are noise. One pair of
// namespaces with ctsyncd on both (FTFW over UDP, bench/run.mjs's settings);
// fw1 gets N entries from the batched injector, then fw2 is stopped, its
// kernel flushed and restarted empty T times per variant, the variants
// alternating. A variant is a bin/ctsyncd (this checkout's, or another's)
// and extra V8 options. Per restart: the wall time to a full external cache,
// fw1's CPU over it, the restarted fw2's whole CPU (start-up included), and
// fw1's retransmissions and NACKs received (a slow receiver shows there).
// The first restart of each variant fills its validated-config cache entry
// (a cold start); it is left out of the medians.
// fw1 always runs this checkout. Root; after `npm ci` in both checkouts.
//   node bench/resync-ab.mjs [N=100000] [T=5] [other-checkout | same]
//   FLAGS_A='...' FLAGS_B='--maglev' node bench/resync-ab.mjs 100000 5 same
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ctsyncd as d, SHEBANG_FLAGS, settingsFor, startProcess } from './lib/daemons.mjs';
import { conntrackFlush, createTopology, destroyTopology } from './lib/topology.mjs';
import { load1, median, now, procSample, sleep, until } from './lib/util.mjs';
import { inject } from './lib/workload.mjs';

const n = Number(process.argv[2] ?? 100_000);
const trials = Number(process.argv[3] ?? 5);
const other = process.argv[4];
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'ctsyncd');
const flags = (v) => (v ? v.split(' ').filter(Boolean) : []);
const variants = [{ label: 'A', bin: BIN, flags: flags(process.env.FLAGS_A) }];
if (other) variants.push({ label: 'B', bin: other === 'same' ? BIN : join(other, 'bin', 'ctsyncd'), flags: flags(process.env.FLAGS_B) });
/** Bound of one wait: far above a healthy resync of 1M entries. */
const BOUND_MS = 120_000;

const txCounters = async (node) => (await d.stats(node)).sync?.counters ?? {};

const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-resync-ab-'));
const topo = await createTopology();
topo.transport = 'udp';
const [fw1, fw2] = topo.nodes;
const rows = [];
try {
  const s = settingsFor(n);
  d.configure(fw1, fw2, topo, dir, s);
  d.configure(fw2, fw1, topo, dir, s);
  // A config file per variant: the validated-config cache keeps one entry
  // per file, stamped with the build that stored it, so two builds
  // restarting on one file would each miss it, and validate in full.
  for (const v of variants) {
    v.conf = join(dir, `fw2-${v.label}.yaml`);
    copyFileSync(fw2.conf, v.conf);
  }
  for (const node of [fw1, fw2]) d.start(node);
  for (const node of [fw1, fw2]) await d.waitReady(node, 30_000);
  await inject(fw1.netnsPath, n);
  await until(async () => (await d.counts(fw2)).external >= n, 'replication', BOUND_MS, { intervalMs: 50 });
  // Acks and the last flushes, as bench/run.mjs waits.
  await sleep(1000);
  for (let i = 0; i < (trials + 1) * variants.length; i++) {
    const v = variants[i % variants.length];
    await d.stop(fw2);
    await conntrackFlush(fw2);
    const load = load1();
    const cpu1 = procSample(fw1.proc.child.pid).cpu;
    const c0 = await txCounters(fw1);
    const t0 = now();
    fw2.proc = startProcess(fw2, ['node', ...SHEBANG_FLAGS, ...v.flags, v.bin, '--config', v.conf], fw2.log, `ctsyncd fw2 (${v.label})`);
    await until(async () => ((await d.counts(fw2).catch(() => undefined))?.external ?? 0) >= n, 'resync', BOUND_MS, { intervalMs: 5 });
    const wall = (now() - t0) / 1000;
    const r = {
      variant: v.label,
      load,
      wallS: wall,
      cpuFw1S: procSample(fw1.proc.child.pid).cpu - cpu1,
      cpuFw2S: procSample(fw2.proc.child.pid).cpu,
    };
    const c1 = await txCounters(fw1);
    r.retransmits = (c1.retransmits ?? 0) - (c0.retransmits ?? 0);
    r.nacks = (c1.nacksReceived ?? 0) - (c0.nacksReceived ?? 0);
    r.cold = i < variants.length;
    rows.push(r);
    console.log(JSON.stringify(r));
  }
} finally {
  for (const node of topo.nodes) if (node.proc) await d.stop(node).catch(() => undefined);
  destroyTopology(topo);
  rmSync(dir, { recursive: true, force: true });
}
const f3 = (x) => x.toFixed(3);
for (const v of variants) {
  const rs = rows.filter((r) => r.variant === v.label && !r.cold);
  const m = (k) => median(rs.map((r) => r[k]));
  console.log(
    `${v.label} (${v.bin}${v.flags.length ? ` ${v.flags.join(' ')}` : ''}), medians of ${rs.length} (loads ${rs.map((r) => r.load.toFixed(1)).join(' ')}): ` +
      `wall ${f3(m('wallS'))} s, CPU fw1 ${f3(m('cpuFw1S'))} s, fw2 ${f3(m('cpuFw2S'))} s, both ${f3(median(rs.map((r) => r.cpuFw1S + r.cpuFw2S)))} s`,
  );
}
