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
  type ClientConn,
  type ConntrackRow,
  FailoverTopology,
  type FirewallId,
  PURGE_TIMEOUT_SECONDS,
  SERVER_PORT,
  type Traffic,
} from './helpers/failover-topology.js';

const CONNECTIONS = 50;
const INTERVAL_MS = 50;
/** Echoes every connection must make beyond a reference point to count as carrying on (1 s of traffic). */
const ADVANCE = 20;
/** keepalived notices a dead master after 3 adverts plus skew (~3.6 s); allow for a slow CI box. */
const ELECTION_MS = 15_000;
/** TCP retransmission backs off to 1.6 s and 3.2 s gaps while the path is down. */
const RECOVERY_MS = 25_000;
/** How long a connection must stay stalled in the negative run: several times what recovery takes. */
const NEGATIVE_OBSERVE_MS = 10_000;
/** include/uapi/linux/netfilter/nf_conntrack_common.h */
const IPS_SRC_NAT = 0x10;
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const log = (msg: string) => console.log(`[failover] ${msg}`);

function summarize(conns: ClientConn[]): string {
  const broken = conns.filter((c) => c.error !== null || c.closed || c.gaps > 0);
  const echoed = conns.map((c) => c.echoed);
  const pushed = conns.map((c) => c.pushed);
  return (
    `${conns.length} connections, client counters echoed ${Math.min(...echoed)}..${Math.max(...echoed)}, ` +
    `server counters received ${Math.min(...pushed)}..${Math.max(...pushed)}, ` +
    `${broken.length} broken${broken.length ? ` (${JSON.stringify(broken.slice(0, 3))})` : ''}`
  );
}

/** ctsyncd and keepalived on both firewalls, fw1 master, 50 connections streaming, fw2 holding their state. */
async function bringUp(t: FailoverTopology): Promise<{ traffic: Traffic; ports: number[] }> {
  t.startCtsyncd('fw1');
  t.startCtsyncd('fw2');
  await t.waitCtsyncdReady('fw1');
  await t.waitCtsyncdReady('fw2');
  const since = Date.now();
  t.startKeepalived('fw1');
  t.startKeepalived('fw2');
  await t.waitKeepalivedStarted('fw1');
  await t.waitKeepalivedStarted('fw2');
  // Both start as BACKUP; fw1's master-down timer runs out first (150 > 100).
  await waitFor(
    async () => (await t.isMaster('fw1')) && !(await t.vips('fw2')).lan && !(await t.vips('fw2')).wan,
    'fw1 master, fw2 backup',
    ELECTION_MS,
    () => t.diagnostics(),
  );
  const primary = await t.waitNotify('fw1', 'primary', since, 20_000);
  expect(primary.status, t.notifyLog('fw1')).toBe(0);
  log(`fw1 master after ${Date.now() - since} ms`);

  const tr = await t.startTraffic(CONNECTIONS, INTERVAL_MS);
  await waitFor(
    async () =>
      (await tr.clientStatus()).conns.filter((c) => c.echoed >= ADVANCE && c.pushed >= ADVANCE).length === CONNECTIONS,
    `${CONNECTIONS} connections streaming`,
    20_000,
    () => t.diagnostics('fw1'),
  );
  const { conns } = await tr.clientStatus();
  const ports = conns.map((c) => c.localPort).sort((a, b) => a - b);
  expect(new Set(ports).size).toBe(CONNECTIONS);
  // fw1 forwards them SNATed to the WAN virtual address.
  const rows = forClient(t, await t.conntrack('fw1'), ports);
  expect(rows.size).toBe(CONNECTIONS);
  for (const r of rows.values()) expectOriginalMapping(t, r);
  await expectSnatActive(t, 'fw1', ports);
  // fw2's ctsyncd learned all of them.
  await waitFor(
    async () => {
      const ext = await t.external('fw2');
      const have = new Set(
        ext.filter((e) => e.src === t.clientAddress && e.state === 'ESTABLISHED').map((e) => e.sport as number),
      );
      return ports.every((p) => have.has(p));
    },
    `fw2's external cache holding the ${CONNECTIONS} connections`,
    15_000,
    () => t.diagnostics('fw2'),
  );
  return { traffic: tr, ports };
}

/** The client's connections in a conntrack table, by client port. */
function forClient(t: FailoverTopology, rows: ConntrackRow[], ports: number[]): Map<number, ConntrackRow> {
  const wanted = new Set(ports);
  const out = new Map<number, ConntrackRow>();
  for (const r of rows) {
    if (r.orig.src === t.clientAddress && r.orig.dport === SERVER_PORT && wanted.has(r.orig.sport)) {
      out.set(r.orig.sport, r);
    }
  }
  return out;
}

/** client → server as sent; the reply goes to the WAN virtual address, the client's port kept. */
function expectOriginalMapping(t: FailoverTopology, r: ConntrackRow): void {
  expect(r.state, r.line).toBe('ESTABLISHED');
  expect(r.orig, r.line).toEqual({
    src: t.clientAddress,
    dst: t.serverAddress,
    sport: r.orig.sport,
    dport: SERVER_PORT,
  });
  expect(r.reply, r.line).toEqual({
    src: t.serverAddress,
    dst: t.wanVip,
    sport: SERVER_PORT,
    dport: r.orig.sport,
  });
}

/** True once a connection's counters moved on by ADVANCE in both directions since `before`. */
function advanced(c: ClientConn, before: ClientConn): boolean {
  return c.echoed >= before.echoed + ADVANCE && c.pushed >= before.pushed + ADVANCE;
}

/**
 * The kernel of `id` really translates the connections: IPS_SRC_NAT is set.
 * `conntrack -L` shows the NATed reply tuple either way, but an entry created
 * with that tuple and no SRC_NAT bit forwards the packets untranslated.
 */
async function expectSnatActive(t: FailoverTopology, id: FirewallId, ports: number[]): Promise<void> {
  const byPort = new Map(
    (await t.kernelDump(id))
      .filter((e) => e.proto === 'tcp' && e.src === t.clientAddress && e.dport === SERVER_PORT)
      .map((e) => [e.sport as number, e]),
  );
  for (const p of ports) {
    const e = byPort.get(p);
    expect(e, `${id}'s kernel has the connection from port ${p}`).toBeDefined();
    expect(
      ((e!.status as number) & IPS_SRC_NAT) !== 0,
      `${id}: the kernel entry of the connection from port ${p} lacks IPS_SRC_NAT (status ${e!.status as number}), ` +
        'so its packets are forwarded untranslated although conntrack -L shows the NATed reply tuple',
    ).toBe(true);
  }
}

/**
 * `id`'s kernel table (`conntrack -L`) holds every connection, ESTABLISHED,
 * with the tuples fw1 had before the failover (`reference`), i.e. the reply
 * still going to the WAN virtual address, and the kernel translates them.
 */
async function expectTakenOver(
  t: FailoverTopology,
  id: FirewallId,
  ports: number[],
  reference: Map<number, ConntrackRow>,
): Promise<void> {
  const rows = forClient(t, await t.conntrack(id), ports);
  expect(rows.size, `${id}'s conntrack -L holds the ${CONNECTIONS} connections`).toBe(CONNECTIONS);
  for (const [port, r] of rows) {
    expectOriginalMapping(t, r);
    expect(r.orig).toEqual(reference.get(port)!.orig);
    expect(r.reply).toEqual(reference.get(port)!.reply);
  }
  await expectSnatActive(t, id, ports);
}

/**
 * Waits until every connection's counters moved on by ADVANCE in both
 * directions since `before`, then checks that none broke on either end: no
 * error, no close, no gap in the counters, nothing reconnected.
 */
async function expectCarriedOn(
  t: FailoverTopology,
  tr: Traffic,
  before: ClientConn[],
  what: string,
  sinceMs: number,
): Promise<void> {
  let last: ClientConn[] = before;
  await waitFor(
    async () => {
      last = (await tr.clientStatus()).conns;
      return last.every((c, i) => advanced(c, before[i]!) || c.error !== null || c.closed);
    },
    `${CONNECTIONS} connections carrying on after ${what}`,
    RECOVERY_MS,
    () => `${summarize(last)}\n${t.diagnostics()}`,
  );
  expect(last.length).toBe(CONNECTIONS);
  for (const [i, c] of last.entries()) {
    expect(c, `connection ${i} after ${what}`).toMatchObject({ connected: true, error: null, closed: false, gaps: 0 });
    expect(advanced(c, before[i]!), `connection ${i} advanced after ${what}`).toBe(true);
  }
  const server = (await tr.serverStatus()).conns;
  expect(server.length, 'the server saw no new connection').toBe(CONNECTIONS);
  for (const s of server) {
    expect(s, `server side of ${s.peer} after ${what}`).toMatchObject({ error: null, closed: false, gaps: 0 });
    expect(s.peer.startsWith(`${t.wanVip}:`), `${s.peer} arrives from the WAN virtual address`).toBe(true);
  }
  // The interruption each connection saw: its longest pause between two echoes since `sinceMs`.
  const pauses = last.map((c) => Math.max(0, ...c.stalls.filter((s) => s.endedAt >= sinceMs).map((s) => s.ms)));
  log(
    `${what}: ${summarize(last)}, all advanced by >= ${ADVANCE}; ` +
      `longest pause per connection ${Math.min(...pauses)}..${Math.max(...pauses)} ms`,
  );
}

/** Kills `from` and waits for `to` to hold both virtual addresses; returns the notify run it made. */
async function crashAndElect(t: FailoverTopology, from: FirewallId, to: FirewallId) {
  const since = Date.now();
  await t.crash(from);
  await waitFor(() => t.isMaster(to), `${to} master`, ELECTION_MS, () => t.diagnostics(to));
  const electedMs = Date.now() - since;
  const primary = await t.waitNotify(to, 'primary', since, 20_000);
  log(`${from} crashed; ${to} master after ${electedMs} ms, its notify took ${primary.endMs - primary.startMs} ms`);
  return primary;
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
