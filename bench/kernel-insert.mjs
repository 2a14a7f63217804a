#!/usr/bin/env node
// bench/kernel-insert: batched ctnetlink inserts of N entries into a fresh
// network namespace, repeated; prints entries/s per run and the median.
// Run as root after `npm ci`:  node bench/kernel-insert.mjs [N] [runs] [chunk]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ConntrackLink } from '../dist/kernel/conntrack-link.js';

const N = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 5);
const CHUNK = Number(process.argv[4] ?? 1024);
const ns = `ctbi${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const sh = (...args) => execFileSync(args[0], args.slice(1), { encoding: 'utf8' });

function entries(n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const src = `10.99.${(i >> 8) & 255}.${i & 255}`;
    const sport = 1024 + ((i >> 16) * 4096 + (i & 4095));
    out[i] = {
      op: 'create',
      entry: {
        family: 2,
        orig: { src, dst: '10.98.0.1', proto: 17, sport, dport: 53 },
        reply: { src: '10.98.0.1', dst: src, proto: 17, sport: 53, dport: sport },
        status: 0x6,
        timeout: 600,
      },
    };
  }
  return out;
}

sh('ip', 'netns', 'add', ns);
const cleanup = () => {
  try {
    sh('ip', 'netns', 'del', ns);
  } catch {}
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
try {
  const link = new ConntrackLink({ netns: `/var/run/netns/${ns}` });
  const items = entries(N);
  const rates = [];
  for (let r = 0; r < RUNS; r++) {
    await link.flush();
    const t0 = process.hrtime.bigint();
    const res = await link.batch(items, { chunkSize: CHUNK });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const inKernel = Number(sh('ip', 'netns', 'exec', ns, 'conntrack', '-C').trim());
    if (res.failed !== 0 || inKernel !== N) {
      console.error(`run ${r + 1}: ${res.failed} failed ${JSON.stringify(res.failures)}, kernel holds ${inKernel}`);
      process.exitCode = 1;
    }
    rates.push(N / secs);
    console.log(
      `run ${r + 1}: ${N} entries in ${secs.toFixed(3)} s = ${Math.round(N / secs)} entries/s (kernel count ${inKernel})`,
    );
  }
  link.close();
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)];
  console.log(`kernel-insert N=${N} chunk=${CHUNK} runs=${RUNS}: median ${Math.round(median)} entries/s`);
} finally {
  cleanup();
}
