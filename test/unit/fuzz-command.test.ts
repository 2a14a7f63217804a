// `npm run fuzz` in CI (issue 14 point 7): 100,000 datagrams through a
// running SyncNode and 100,000 netlink messages through the decoders, run
// as the command itself against the dist/ that test/global-setup.ts just
// built. The script checks its invariants and exits 1 on any failure; this
// test also checks that the run reached what it is meant to reach (accepted
// forged datagrams, each reason a datagram is refused, the record decoder's
// fast path), so a fuzzer that stopped exercising anything fails too.
// A fixed seed, so CI is repeatable; FUZZ_SEED=random draws a new one (printed), FUZZ_SEED=N repeats one.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const COUNT = 100_000;
const SEED =
  process.env.FUZZ_SEED === 'random'
    ? (Math.random() * 0x1_0000_0000) >>> 0
    : Number(process.env.FUZZ_SEED ?? 20_261_207);

interface SceneSummary {
  name: string;
  datagrams: number;
  byCategory: Record<string, number>;
  outcomes: Record<string, Record<string, number>>;
}
interface Summary {
  seed: number;
  datagrams: { datagrams: number; unencodable: number; scenes: SceneSummary[] };
  netlink: { inputs: number; messages: number; fixtures: number; record: { ok: number; punt: number }; events: Record<string, number> };
  failures: number;
  listed: unknown[];
  reproduce: string;
}

describe('npm run fuzz', () => {
  it(`100,000 datagrams and 100,000 netlink messages find nothing (FUZZ_SEED=${SEED})`, { timeout: 600_000 }, () => {
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', 'scripts/fuzz.mjs', '--seed', String(SEED), '--datagrams', String(COUNT), '--netlink', String(COUNT), '--json'],
      { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    let summary: Summary | undefined;
    try {
      summary = JSON.parse(r.stdout) as Summary;
    } catch {
      // No summary: the script itself broke; its output says how.
    }
    // The listed failures (with their inputs and seed) are the message when this fails.
    expect({ status: r.status, failures: summary?.listed, stderr: r.status === 0 ? '' : r.stderr }).toEqual({
      status: 0,
      failures: [],
      stderr: '',
    });
    if (summary === undefined) throw new Error('unreachable: exit 0 without a summary');
    expect(summary.seed).toBe(SEED);

    const d = summary.datagrams;
    expect(d.datagrams).toBeGreaterThanOrEqual(COUNT);
    expect(d.scenes.map((s) => s.name)).toHaveLength(3);
    for (const s of d.scenes) {
      const all: Record<string, number> = {};
      for (const o of Object.values(s.outcomes)) for (const [k, v] of Object.entries(o)) all[k] = (all[k] ?? 0) + v;
      // Forged and re-signed datagrams get through to the engine, mutated ones reach the parser.
      expect(s.outcomes['forged-resigned']?.accepted ?? 0, s.name).toBeGreaterThan(100);
      expect(s.outcomes['mutated-resigned']?.accepted ?? 0, s.name).toBeGreaterThan(10);
      for (const reason of ['EMAGIC', 'EDECODE', 'ECLUSTER', 'ownDatagrams', 'unverifiedDatagrams', 'staleEpochDatagrams']) {
        expect(all[reason] ?? 0, `${s.name}: ${reason}`).toBeGreaterThan(0);
      }
      expect(all.uncounted ?? 0, s.name).toBe(0);
    }
    const byName = new Map(d.scenes.map((s) => [s.name, s]));
    const keyed = byName.get('ftfw, keys, cluster.nodes')!;
    expect(keyed.outcomes['forged-resigned']?.EAUTH ?? 0).toBeGreaterThan(0);
    expect(keyed.outcomes['forged-resigned']?.unknownNode ?? 0).toBeGreaterThan(0);
    expect(byName.get('ftfw, auth none, maxNodes 4')!.outcomes['forged-resigned']?.nodeLimit ?? 0).toBeGreaterThan(0);

    const n = summary.netlink;
    expect(n.inputs).toBe(COUNT);
    expect(n.fixtures).toBeGreaterThan(0);
    expect(n.record.ok).toBeGreaterThan(1000);
    expect(n.record.punt).toBeGreaterThan(1000);
    expect(n.events.conntrack).toBeGreaterThan(1000);
    expect(n.events.expect).toBeGreaterThan(100);
    expect(n.events.decodeErrors).toBeGreaterThan(1000);
  });
});
