// End-to-end failover with real keepalived: 50 long-lived TCP connections
// from a client on the LAN to a server on the WAN, through the virtual
// addresses of a firewall pair that SNATs them to the WAN virtual address.
// fw1 dies (SIGKILL to keepalived and ctsyncd, interfaces down); keepalived
// moves the virtual addresses to fw2, whose notify path
// (contrib/keepalived/primary-backup.sh) commits ctsyncd's external cache
// into the kernel: every connection carries on with its counter unbroken, and
// fw2's kernel table holds it with fw1's NAT binding. The same run without
// ctsyncd on fw2 must lose the connections, or the test would prove nothing.
// Then fw1 comes back; its ctsyncd's track file keeps its VRRP priority
// below fw2's until it is in sync, and only then does it preempt, commit,
// and carry the connections again.
//
// The firewalls run with nf_conntrack_tcp_loose=0 and drop INVALID packets
// (see failover-topology.ts): with the kernel's default loose pickup, a mid
// stream packet would create a fresh entry that SNAT maps to the same virtual
// address and port, and the connections would survive a failover with no
// state sync at all.
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/cluster.js';
import {
  CONNECTIONS,
  crashAndElect as crashAndElectLogged,
  ELECTION_MS,
  electFw1AndStream,
  expectCarriedOn as expectCarriedOnLogged,
  expectTakenOver,
  forClient,
  sleep,
  summarize,
  waitCtsyncdLearned,
} from './helpers/failover-checks.js';
import { type ClientConn, FailoverTopology, type FirewallId, PURGE_TIMEOUT_SECONDS, type Traffic } from './helpers/failover-topology.js';

/** How long a connection must stay stalled in the negative run: several times what recovery takes. */
const NEGATIVE_OBSERVE_MS = 10_000;
/** How long fw1 must stay backup while it cannot sync: well beyond the ~3.6 s a preemption takes. */
const GATE_MS = 6_000;

let topo: FailoverTopology | undefined;
let traffic: Traffic | undefined;

afterEach(async () => {
  traffic?.stop();
  traffic = undefined;
  await topo?.destroy();
  topo = undefined;
});

const log = (msg: string) => console.log(`[failover] ${msg}`);

/** ctsyncd and keepalived on both firewalls, fw1 master, 50 connections streaming, fw2 holding their state. */
async function bringUp(t: FailoverTopology): Promise<{ traffic: Traffic; ports: number[] }> {
  t.startCtsyncd('fw1');
  t.startCtsyncd('fw2');
  await t.waitCtsyncdReady('fw1');
  await t.waitCtsyncdReady('fw2');
  const up = await electFw1AndStream(t, log);
  // fw2's ctsyncd learned all of them.
  await waitCtsyncdLearned(t, 'fw2', up.ports);
  return up;
}

function expectCarriedOn(t: FailoverTopology, tr: Traffic, before: ClientConn[], what: string, sinceMs: number) {
  return expectCarriedOnLogged(t, tr, before, what, sinceMs, log);
}

function crashAndElect(t: FailoverTopology, from: FirewallId, to: FirewallId) {
  return crashAndElectLogged(t, from, to, log);
}

describe('failover with keepalived and ctsyncd', () => {
  it(
    `without ctsyncd on fw2 the ${CONNECTIONS} connections do not survive the failover (negative control)`,
    async () => {
      const t = (topo = await FailoverTopology.create());
      const up = await bringUp(t);
      traffic = up.traffic;

      // fw2 held the state until here; now its daemon is gone, and with it the commit.
      await t.killCtsyncd('fw2');
      const primary = await crashAndElect(t, 'fw1', 'fw2');
      expect(primary.status, 'primary-backup.sh fails when the commit fails').toBe(1);
      expect(t.notifyLog('fw2')).toMatch(/commit of the external cache into the kernel failed/);
      expect(t.notifyLog('fw2')).toMatch(/not flushing the caches/);

      const atElection = (await up.traffic.clientStatus()).conns;
      await sleep(NEGATIVE_OBSERVE_MS);
      const after = (await up.traffic.clientStatus()).conns;
      // Not one counter made it through fw2 in either direction: every
      // connection is stalled (or reset).
      const moved = after.filter((c, i) => c.echoed > atElection[i]!.echoed || c.pushed > atElection[i]!.pushed);
      log(`negative: ${NEGATIVE_OBSERVE_MS} ms after fw2 became master: ${summarize(after)}; ${moved.length} moved on`);
      expect(moved.length).toBe(0);
      // And fw2's kernel has no entry for them: nothing was committed, nothing picked up.
      expect(forClient(t, await t.conntrack('fw2'), up.ports).size).toBe(0);
    },
    120_000,
  );

  it(
    `${CONNECTIONS} connections survive the failover to fw2, and the failback once fw1 is in sync again`,
    async () => {
      const t = (topo = await FailoverTopology.create());
      const up = await bringUp(t);
      traffic = up.traffic;
      const fw1Rows = forClient(t, await t.conntrack('fw1'), up.ports);

      // --- failover: fw1 dies, fw2 takes over and commits ---
      const before = (await up.traffic.clientStatus()).conns;
      const crashAt = Date.now();
      const primary = await crashAndElect(t, 'fw1', 'fw2');
      expect(primary.status, t.notifyLog('fw2')).toBe(0);
      // The commit put every connection into fw2's kernel with the NAT binding fw1 made...
      await expectTakenOver(t, 'fw2', up.ports, fw1Rows);
      // ...and they all carry on through fw2, still so translated.
      await expectCarriedOn(t, up.traffic, before, 'the failover to fw2', crashAt);
      await expectTakenOver(t, 'fw2', up.ports, fw1Rows);

      // --- fw1 comes back: interfaces up, ctsyncd and keepalived restarted ---
      // Its kernel still holds its own, now stale, entries of the 50
      // connections; its sync link stays blocked for a while.
      const stale = forClient(t, await t.conntrack('fw1'), up.ports);
      expect(stale.size, "fw1's stale entries survived the crash of its daemons").toBe(CONNECTIONS);
      await t.revive('fw1');
      await t.blockSync('fw1');
      t.startCtsyncd('fw1');
      await t.waitCtsyncdReady('fw1');
      const restartAt = Date.now();
      t.startKeepalived('fw1');
      await t.waitKeepalivedStarted('fw1');
      // Not in sync, so its priority is 150 - 60 = 90 < fw2's 100: it must
      // stay backup although it would preempt fw2 within ~3.6 s otherwise.
      const gateEnd = Date.now() + GATE_MS;
      while (Date.now() < gateEnd) {
        expect(await t.vips('fw1'), 'fw1 takes no virtual address before it is in sync').toEqual({
          lan: false,
          wan: false,
        });
        expect(await t.isMaster('fw2')).toBe(true);
        expect(t.readTrackFile('fw1'), "fw1's track file while it cannot sync").toBe('1');
        expect(t.readTrackFile('fw2'), "fw2's track file: it holds all the state there is").toBe('0');
        await sleep(200);
      }
      expect(t.fw.fw1.keepalivedLog.join('')).toMatch(/effective priority from 150 to 90/);
      expect(t.notifyEvents('fw1').filter((e) => e.state === 'primary' && e.startMs >= restartAt)).toEqual([]);
      const backupRun = await t.waitNotify('fw1', 'backup', restartAt, 10_000);
      expect(backupRun.status, t.notifyLog('fw1')).toBe(0);
      log(`fw1 stayed backup for ${GATE_MS} ms while it could not sync`);

      // --- the sync link comes back: in sync first, then master ---
      const unblockAt = Date.now();
      await t.unblockSync('fw1');
      let inSyncAt: number | undefined;
      let masterAt: number | undefined;
      let externalAtSync = -1;
      await waitFor(
        async () => {
          const now = Date.now();
          if (masterAt === undefined && (await t.vips('fw1')).lan) masterAt = now;
          if (inSyncAt === undefined && t.readTrackFile('fw1') === '0') {
            inSyncAt = now;
            const stats = (await t.stats('fw1')) as { failover?: { inSync?: boolean; trackValue?: number } };
            expect(stats.failover).toMatchObject({ inSync: true, trackValue: 0 });
            // What fw1 is about to commit: fw2's connections.
            const ext = await t.external('fw1');
            externalAtSync = ext.filter((e) => e.src === t.clientAddress && up.ports.includes(e.sport as number)).length;
          }
          return masterAt !== undefined && (await t.isMaster('fw1'));
        },
        'fw1 in sync, then master',
        ELECTION_MS + 10_000,
        () => t.diagnostics(),
      );
      log(`after the unblock: fw1 in sync at +${inSyncAt! - unblockAt} ms, master at +${masterAt! - unblockAt} ms`);
      expect(inSyncAt, 'fw1 was in sync before it took a virtual address').toBeDefined();
      expect(inSyncAt!).toBeLessThanOrEqual(masterAt!);
      expect(externalAtSync).toBe(CONNECTIONS);
      expect(await t.vips('fw2')).toEqual({ lan: false, wan: false });
      const failbackPrimary = await t.waitNotify('fw1', 'primary', unblockAt, 20_000);
      expect(failbackPrimary.status, t.notifyLog('fw1')).toBe(0);
      log(`fw1's notify took ${failbackPrimary.endMs - failbackPrimary.startMs} ms`);
      // fw1 committed what it learned from fw2, and forwards the connections from here on.
      const afterCommit = (await up.traffic.clientStatus()).conns;
      await expectTakenOver(t, 'fw1', up.ports, fw1Rows);
      await expectCarriedOn(t, up.traffic, afterCommit, 'the failback to fw1', unblockAt);
      await expectTakenOver(t, 'fw1', up.ports, fw1Rows);
      // fw2, backup again, purged its copies (-t) and forwards none of them:
      // a packet through fw2 would have set the timeout back to days.
      const fw2Backup = await t.waitNotify('fw2', 'backup', unblockAt, 20_000);
      expect(fw2Backup.status, t.notifyLog('fw2')).toBe(0);
      const fw2Rows = forClient(t, await t.conntrack('fw2'), up.ports);
      expect(fw2Rows.size).toBe(CONNECTIONS);
      for (const r of fw2Rows.values()) expect(r.timeout, r.line).toBeLessThanOrEqual(PURGE_TIMEOUT_SECONDS);
      const final = (await up.traffic.clientStatus()).conns;
      log(`end: ${summarize(final)}`);
    },
    180_000,
  );
});
