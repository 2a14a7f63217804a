#!/usr/bin/env node
// bench/commit: ExternalCache → kernel through the daemon's real commit path
// (commitExternal over ConntrackLink) in a fresh network namespace: a first
// commit into an empty table, a repeated commit (nothing to do), and a commit
// over stale kernel copies of every entry (replace). The result is checked
// with conntrack -C. Run as root after `npm ci`:
//   node bench/commit.mjs [N] [runs]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { commitExternal } from '../dist/cache/commit.js';
import { ExternalCache } from '../dist/cache/external-cache.js';
import { ConntrackLink } from '../dist/kernel/conntrack-link.js';

const N = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 3);
const ns = `ctbc${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const sh = (...args) => execFileSync(args[0], args.slice(1), { encoding: 'utf8' });

/** Established, masqueraded TCP: 10.99.x.y:port → 10.98.0.1:443, leaving as 10.97.0.1. */
function entry(i, mark = 0) {
  const src = `10.99.${(i >> 8) & 255}.${i & 255}`;
  const sport = 1024 + (i >> 16);
  const nport = 1024 + ((i >> 1) % 60000);
  return {
    family: 2,
    orig: { src, dst: '10.98.0.1', proto: 6, sport, dport: 443 },
    reply: { src: '10.98.0.1', dst: i % 2 ? '10.97.0.1' : '10.97.0.2', proto: 6, sport: 443, dport: nport },
    status: 0x6 | 0x10 | 0x80 | 0x100,
    timeout: 7200,
    mark,
    protoinfo: { tcp: { state: 3 } },
  };
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
const count = () => Number(sh('ip', 'netns', 'exec', ns, 'conntrack', '-C').trim());
try {
  // A NAT table, as on a firewall: the kernel then sets up NAT for created entries.
  sh('ip', 'netns', 'exec', ns, 'nft', 'add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }');
  const link = new ConntrackLink({ netns: `/var/run/netns/${ns}` });
  const rows = [];
  for (let r = 0; r < RUNS; r++) {
    await link.flush();
    const cache = new ExternalCache({ limit: N + 1 });
    for (let i = 0; i < N; i++) cache.applyRemote('fw1', 1, i + 1, 'new', entry(i));
    const t = async (what) => {
      const t0 = process.hrtime.bigint();
      const rep = await commitExternal(cache, link);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const k = count();
      if (rep.failed !== 0 || k !== N) {
        console.error(`${what}: ${rep.failed} failed ${JSON.stringify(rep.failures)}, kernel holds ${k}`);
        process.exitCode = 1;
      }
      return { s, rep };
    };
    const fresh = await t('fresh');
    const again = await t('repeat');
    // Stale kernel copies of every entry (another mark), not written by us: all replaced.
    await link.flush();
    const stale = [];
    for (let i = 0; i < N; i++) stale.push({ op: 'create', entry: entry(i, 1) });
    await link.batch(stale);
    const fresh2 = new ExternalCache({ limit: N + 1 });
    for (let i = 0; i < N; i++) fresh2.applyRemote('fw1', 1, i + 1, 'new', entry(i));
    const t0 = process.hrtime.bigint();
    const rep = await commitExternal(fresh2, link);
    const replaceS = Number(process.hrtime.bigint() - t0) / 1e9;
    if (rep.updated !== N) {
      console.error(`replace: expected ${N} replaced, got ${JSON.stringify(rep)}`);
      process.exitCode = 1;
    }
    rows.push([fresh.s, again.s, replaceS]);
    console.log(
      `run ${r + 1}: fresh ${fresh.s.toFixed(3)} s (${Math.round(N / fresh.s)}/s), repeat ${again.s.toFixed(3)} s (unchanged ${again.rep.unchanged}), replace ${replaceS.toFixed(3)} s (${Math.round(N / replaceS)}/s)`,
    );
  }
  const med = (k) => rows.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
  console.log(`median of ${RUNS}: fresh ${med(0).toFixed(3)} s, repeat ${med(1).toFixed(3)} s, replace ${med(2).toFixed(3)} s for ${N} entries`);
  link.close();
} finally {
  cleanup();
}
