#!/usr/bin/env node
// bench/kernel-floor: how long the kernel alone takes to insert N of the
// benchmark's established TCP entries (bench/lib/workload.mjs, 1024 creates
// per sendmsg) into a fresh namespace with no daemon and no event listener:
// the floor under any commit of N entries. Raises nf_conntrack_max (and the
// buckets) for large N and restores them. Root; after `npm ci`.
//   node bench/kernel-floor.mjs [N=1000000] [runs=2]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { raiseConntrackLimits } from './lib/topology.mjs';
import { runCleanup } from './lib/util.mjs';
import { inject } from './lib/workload.mjs';

const n = Number(process.argv[2] ?? 1_000_000);
const runs = Number(process.argv[3] ?? 2);
const handles = raiseConntrackLimits(n + 1000);
const ns = `ctfl${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
execFileSync('ip', ['netns', 'add', ns]);
try {
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await inject(`/var/run/netns/${ns}`, n);
    const s = (performance.now() - t0) / 1000;
    const count = execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-C'], { encoding: 'utf8' }).trim();
    console.log(`run ${r + 1}: ${n} creates in ${s.toFixed(2)} s (${Math.round(n / s)}/s), conntrack -C = ${count}`);
    execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-F'], { stdio: 'ignore' });
  }
} finally {
  execFileSync('ip', ['netns', 'del', ns]);
  for (const h of handles) runCleanup(h);
}
