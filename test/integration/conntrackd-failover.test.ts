// Failover with real keepalived between conntrackd 1.4.7 and ctsyncd
// speaking conntrackd's protocol (sync.protocol: conntrackd): fw1 runs
// conntrackd as primary, fw2 ctsyncd as backup, 50 long-lived TCP streams
// SNATed to the WAN virtual address through fw1 (the network, nftables and
// keepalived setup of failover.test.ts, helpers/failover-topology.ts). fw1
// dies; fw2's notify (contrib/keepalived/primary-backup.sh driving ctsyncd)
// commits what conntrackd sent it, and every stream carries on unbroken
// with fw1's NAT binding. Then fw1 comes back with conntrackd, which learns
// the streams from ctsyncd (ctsyncd pushes its table to a peer that says
// HELLO), and keepalived hands them back (the same script, driving
// conntrackd): conntrackd's -c commits them and they carry on again.
//
// The keepalived setup has no track_file here: conntrackd writes none. fw1's
// keepalived starts only once conntrackd holds the streams, which is what
// the track file would wait for.
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/cluster.js';
import { requireConntrackd } from './helpers/conntrackd.js';
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
import { FailoverTopology, type Traffic } from './helpers/failover-topology.js';

let topo: FailoverTopology | undefined;
let traffic: Traffic | undefined;

afterEach(async () => {
  traffic?.stop();
  traffic = undefined;
  await topo?.destroy();
  topo = undefined;
});

const log = (msg: string) => console.log(`[conntrackd-failover] ${msg}`);

describe('failover between conntrackd 1.4.7 and ctsyncd (sync.protocol: conntrackd)', () => {
  it('50 NAT’d streams survive the failover from a conntrackd primary to a ctsyncd backup, and the failback', async () => {
    requireConntrackd();
    const t = (topo = await FailoverTopology.create({ tag: 'cm', trackFile: false }));
    t.configureCtsyncd('fw2', { protocol: 'conntrackd' });
    await t.startConntrackd('fw1');
    t.startCtsyncd('fw2');
    await t.waitCtsyncdReady('fw2');
    const up = await electFw1AndStream(t, log);
    traffic = up.traffic;
    // conntrackd (fw1) replicated them to ctsyncd (fw2).
    await waitCtsyncdLearned(t, 'fw2', up.ports);
    const fw1Rows = forClient(t, await t.conntrack('fw1'), up.ports);

    // --- failover: fw1 (conntrackd) dies, fw2 (ctsyncd) takes over and commits ---
    const before = (await up.traffic.clientStatus()).conns;
    const crashAt = Date.now();
    const primary = await crashAndElect(t, 'fw1', 'fw2', log);
    expect(primary.status, t.notifyLog('fw2')).toBe(0);
    await expectTakenOver(t, 'fw2', up.ports, fw1Rows);
    await expectCarriedOn(t, up.traffic, before, 'the failover from conntrackd to ctsyncd', crashAt, log);

    // --- fw1 comes back with conntrackd; it learns the streams from ctsyncd ---
    await t.revive('fw1');
    await t.startConntrackd('fw1');
    await waitConntrackdLearned(t, 'fw1', up.ports);

    // --- failback: keepalived on fw1 preempts (150 > 100), conntrackd -c commits ---
    const restartAt = Date.now();
    t.startKeepalived('fw1');
    await t.waitKeepalivedStarted('fw1');
    await waitFor(() => t.isMaster('fw1'), 'fw1 master again', ELECTION_MS + 10_000, () => t.diagnostics());
    const failback = await t.waitNotify('fw1', 'primary', restartAt, 20_000);
    expect(failback.status, t.notifyLog('fw1')).toBe(0);
    const afterCommit = (await up.traffic.clientStatus()).conns;
    await expectTakenOver(t, 'fw1', up.ports, fw1Rows);
    await expectCarriedOn(t, up.traffic, afterCommit, 'the failback from ctsyncd to conntrackd', restartAt, log);
    const fw2Backup = await t.waitNotify('fw2', 'backup', restartAt, 20_000);
    expect(fw2Backup.status, t.notifyLog('fw2')).toBe(0);
    log(`end: ${summarize((await up.traffic.clientStatus()).conns)}`);
  }, 240_000);
});
