// The rolling migration from conntrackd to ctsyncd as README.md's
// "Migrating from conntrackd" describes it, step for step, with real
// keepalived and 50 long-lived TCP streams SNATed through the pair
// (helpers/failover-topology.ts): a conntrackd 1.4.7 pair → the backup's
// conntrackd replaced by ctsyncd speaking conntrackd's protocol → failover
// to it → the old primary replaced the same way (and handed the streams
// back when keepalived preempts) → both switched to ctsyncd's protocol with
// a key, the primary first → a last failover under ctsyncd's protocol.
// No stream may break at any step, and at every moment the node that would
// take over holds every stream: in its external cache, or, while its daemon
// restarts, in its kernel (the backup commits before its daemon is
// replaced), so a failover at any point would have lost none of them.
import { afterEach, describe, expect, it } from 'vitest';
import { requireConntrackd } from './helpers/conntrackd.js';
import { waitFor } from './helpers/cluster.js';
import {
  crashAndElect,
  ELECTION_MS,
  electFw1AndStream,
  expectCarriedOn,
  expectTakenOver,
  forClient,
  summarize,
  waitConntrackdLearned,
  waitCtsyncdLearned,
} from './helpers/failover-checks.js';
import { type ConntrackRow, FailoverTopology, type FirewallId, type Traffic } from './helpers/failover-topology.js';

let topo: FailoverTopology | undefined;
let traffic: Traffic | undefined;

afterEach(async () => {
  traffic?.stop();
  traffic = undefined;
  await topo?.destroy();
  topo = undefined;
});

const log = (msg: string) => console.log(`[conntrackd-migration] ${msg}`);

/** `ctsyncd -C CONFIG ARGS` on a firewall, as the operator types it; it must succeed. */
async function ctl(t: FailoverTopology, id: FirewallId, args: string[]): Promise<string> {
  const r = await t.ctl(id, args);
  expect(r.code, `ctsyncd ${args.join(' ')} on ${id}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

interface SyncView {
  sync: { protocol: string; auth: string };
  peers: Array<{ id: string; state: string }>;
}

describe('the rolling migration from a conntrackd pair to ctsyncd', () => {
  it('keeps all 50 NAT’d streams at every step', async () => {
    requireConntrackd();
    const t = (topo = await FailoverTopology.create({ tag: 'cm', trackFile: false }));

    // --- 0. a conntrackd pair: fw1 primary, fw2 backup ---
    await t.startConntrackd('fw1');
    await t.startConntrackd('fw2');
    const up = await electFw1AndStream(t, log);
    traffic = up.traffic;
    const ports = up.ports;
    await waitConntrackdLearned(t, 'fw2', ports);
    const reference: Map<number, ConntrackRow> = forClient(t, await t.conntrack('fw1'), ports);
    const start = (await traffic.clientStatus()).conns;
    const startAt = Date.now();

    // --- 1. the backup's conntrackd replaced by ctsyncd, conntrackd's protocol ---
    // Its external cache dies with it: commit it first, so fw2's kernel holds
    // the streams until ctsyncd has them.
    await t.fw.fw2.conntrackd!.client(['-c']);
    await expectTakenOver(t, 'fw2', ports, reference);
    await t.stopConntrackd('fw2');
    t.configureCtsyncd('fw2', { protocol: 'conntrackd' });
    t.useDaemon('fw2', 'ctsyncd');
    t.startCtsyncd('fw2');
    await t.waitCtsyncdReady('fw2');
    // Its RESYNC at start is answered by conntrackd.
    await waitCtsyncdLearned(t, 'fw2', ports);
    // The committed copies go within failover.purgeTimeoutSeconds; the external cache has them now.
    await ctl(t, 'fw2', ['-t']);
    expect(((await t.stats('fw2')) as unknown as SyncView).peers.map((p) => p.id)).toEqual([t.fw.fw1.syncAddress]);
    await expectCarriedOn(t, traffic, start, 'the backup’s daemon replaced', startAt, log);

    // --- 2. failover to the ctsyncd node ---
    let before = (await traffic.clientStatus()).conns;
    let at = Date.now();
    const p2 = await crashAndElect(t, 'fw1', 'fw2', log);
    expect(p2.status, t.notifyLog('fw2')).toBe(0);
    await expectTakenOver(t, 'fw2', ports, reference);
    await expectCarriedOn(t, traffic, before, 'the failover from conntrackd to ctsyncd', at, log);

    // --- 3. the old primary's conntrackd replaced by ctsyncd, conntrackd's protocol ---
    await t.revive('fw1');
    t.configureCtsyncd('fw1', { protocol: 'conntrackd' });
    t.useDaemon('fw1', 'ctsyncd');
    t.startCtsyncd('fw1');
    await t.waitCtsyncdReady('fw1');
    await waitCtsyncdLearned(t, 'fw1', ports);
    // keepalived back on fw1: it preempts (150 > 100) and takes the streams back.
    before = (await traffic.clientStatus()).conns;
    at = Date.now();
    t.startKeepalived('fw1');
    await t.waitKeepalivedStarted('fw1');
    await waitFor(() => t.isMaster('fw1'), 'fw1 master again', ELECTION_MS + 10_000, () => t.diagnostics());
    const p3 = await t.waitNotify('fw1', 'primary', at, 20_000);
    expect(p3.status, t.notifyLog('fw1')).toBe(0);
    await expectTakenOver(t, 'fw1', ports, reference);
    await expectCarriedOn(t, traffic, before, 'the failback between two ctsyncd nodes on conntrackd’s protocol', at, log);
    expect((await t.waitNotify('fw2', 'backup', at, 20_000)).status, t.notifyLog('fw2')).toBe(0);
    await waitCtsyncdLearned(t, 'fw2', ports);

    // --- 4. both to ctsyncd's protocol with a key, the primary first ---
    before = (await traffic.clientStatus()).conns;
    at = Date.now();
    t.configureCtsyncd('fw1', { protocol: 'ctsyncd', key: true });
    await t.killCtsyncd('fw1', 'SIGTERM');
    t.startCtsyncd('fw1');
    await t.waitCtsyncdReady('fw1');
    // The two protocols do not talk: the backup keeps what it had, every stream.
    await waitCtsyncdLearned(t, 'fw2', ports);
    // Then the backup: commit first, as in step 1, then restart it on ctsyncd's protocol.
    await ctl(t, 'fw2', ['-c']);
    await expectTakenOver(t, 'fw2', ports, reference);
    t.configureCtsyncd('fw2', { protocol: 'ctsyncd', key: true });
    await t.killCtsyncd('fw2', 'SIGTERM');
    t.startCtsyncd('fw2');
    await t.waitCtsyncdReady('fw2');
    await waitCtsyncdLearned(t, 'fw2', ports);
    await ctl(t, 'fw2', ['-t']);
    for (const id of ['fw1', 'fw2'] as const) {
      const s = (await t.stats(id)) as unknown as SyncView;
      expect(s.sync.protocol).toBe('ctsyncd');
      expect(s.sync.auth).not.toBe('none');
      await waitFor(
        async () => ((await t.stats(id)) as unknown as SyncView).peers.some((p) => p.state === 'up'),
        `${id} sees its peer up on ctsyncd's protocol`,
        10_000,
      );
    }
    await expectCarriedOn(t, traffic, before, 'the switch to ctsyncd’s protocol', at, log);

    // --- 5. a failover on ctsyncd's protocol ---
    before = (await traffic.clientStatus()).conns;
    at = Date.now();
    const p5 = await crashAndElect(t, 'fw1', 'fw2', log);
    expect(p5.status, t.notifyLog('fw2')).toBe(0);
    await expectTakenOver(t, 'fw2', ports, reference);
    await expectCarriedOn(t, traffic, before, 'a failover on ctsyncd’s protocol', at, log);
    log(`end: ${summarize((await traffic.clientStatus()).conns)}`);
  }, 420_000);
});
