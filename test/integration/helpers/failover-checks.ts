// What the failover tests assert about the streams through a
// FailoverTopology, whichever daemons the firewalls run (failover.test.ts:
// ctsyncd on both; conntrackd-failover and conntrackd-migration: conntrackd
// beside or before ctsyncd): the election, the streams' NAT mapping in a
// kernel, and that every stream carries on unbroken after a transition.
import { expect } from 'vitest';
import { waitFor } from './cluster.js';
import {
  type ClientConn,
  type ConntrackRow,
  type FailoverTopology,
  type FirewallId,
  type NotifyEvent,
  SERVER_PORT,
  type Traffic,
} from './failover-topology.js';

export const CONNECTIONS = 50;
export const INTERVAL_MS = 50;
/** Echoes every connection must make beyond a reference point to count as carrying on (1 s of traffic). */
export const ADVANCE = 20;
/** keepalived notices a dead master after 3 adverts plus skew (~3.6 s); allow for a slow CI box. */
export const ELECTION_MS = 15_000;
/** TCP retransmission backs off to 1.6 s and 3.2 s gaps while the path is down. */
export const RECOVERY_MS = 25_000;
/** include/uapi/linux/netfilter/nf_conntrack_common.h */
const IPS_SRC_NAT = 0x10;

export type Log = (msg: string) => void;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function summarize(conns: ClientConn[]): string {
  const broken = conns.filter((c) => c.error !== null || c.closed || c.gaps > 0);
  const echoed = conns.map((c) => c.echoed);
  const pushed = conns.map((c) => c.pushed);
  return (
    `${conns.length} connections, client counters echoed ${Math.min(...echoed)}..${Math.max(...echoed)}, ` +
    `server counters received ${Math.min(...pushed)}..${Math.max(...pushed)}, ` +
    `${broken.length} broken${broken.length ? ` (${JSON.stringify(broken.slice(0, 3))})` : ''}`
  );
}

/** The client's connections in a conntrack table, by client port. */
export function forClient(t: FailoverTopology, rows: ConntrackRow[], ports: number[]): Map<number, ConntrackRow> {
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
export function expectOriginalMapping(t: FailoverTopology, r: ConntrackRow): void {
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
export function advanced(c: ClientConn, before: ClientConn): boolean {
  return c.echoed >= before.echoed + ADVANCE && c.pushed >= before.pushed + ADVANCE;
}

/**
 * The kernel of `id` really translates the connections: IPS_SRC_NAT is set.
 * `conntrack -L` shows the NATed reply tuple either way, but an entry created
 * with that tuple and no SRC_NAT bit forwards the packets untranslated.
 */
export async function expectSnatActive(t: FailoverTopology, id: FirewallId, ports: number[]): Promise<void> {
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
 * with the tuples the first primary had (`reference`), i.e. the reply
 * still going to the WAN virtual address, and the kernel translates them.
 */
export async function expectTakenOver(
  t: FailoverTopology,
  id: FirewallId,
  ports: number[],
  reference: Map<number, ConntrackRow>,
): Promise<void> {
  const rows = forClient(t, await t.conntrack(id), ports);
  expect(rows.size, `${id}'s conntrack -L holds the ${ports.length} connections`).toBe(ports.length);
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
export async function expectCarriedOn(
  t: FailoverTopology,
  tr: Traffic,
  before: ClientConn[],
  what: string,
  sinceMs: number,
  log: Log,
): Promise<void> {
  let last: ClientConn[] = before;
  await waitFor(
    async () => {
      last = (await tr.clientStatus()).conns;
      return last.every((c, i) => advanced(c, before[i]!) || c.error !== null || c.closed);
    },
    `${before.length} connections carrying on after ${what}`,
    RECOVERY_MS,
    () => `${summarize(last)}\n${t.diagnostics()}`,
  );
  expect(last.length).toBe(before.length);
  for (const [i, c] of last.entries()) {
    expect(c, `connection ${i} after ${what}`).toMatchObject({ connected: true, error: null, closed: false, gaps: 0 });
    expect(advanced(c, before[i]!), `connection ${i} advanced after ${what}`).toBe(true);
  }
  const server = (await tr.serverStatus()).conns;
  expect(server.length, 'the server saw no new connection').toBe(before.length);
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
export async function crashAndElect(t: FailoverTopology, from: FirewallId, to: FirewallId, log: Log): Promise<NotifyEvent> {
  const since = Date.now();
  await t.crash(from);
  await waitFor(() => t.isMaster(to), `${to} master`, ELECTION_MS, () => t.diagnostics(to));
  const electedMs = Date.now() - since;
  const primary = await t.waitNotify(to, 'primary', since, 20_000);
  log(`${from} crashed; ${to} master after ${electedMs} ms, its notify took ${primary.endMs - primary.startMs} ms`);
  return primary;
}

/**
 * keepalived on both firewalls (their daemons already running): fw1 is
 * elected, its notify succeeds, and CONNECTIONS streams flow through it,
 * SNATed to the WAN virtual address. Returns the traffic and the client's ports.
 */
export async function electFw1AndStream(t: FailoverTopology, log: Log): Promise<{ traffic: Traffic; ports: number[] }> {
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
  return { traffic: tr, ports };
}

/** Waits until `id`'s ctsyncd holds every one of the client's connections, ESTABLISHED, in its external cache. */
export async function waitCtsyncdLearned(t: FailoverTopology, id: FirewallId, ports: number[]): Promise<void> {
  await waitFor(
    async () => {
      const ext = await t.external(id);
      const have = new Set(
        ext.filter((e) => e.src === t.clientAddress && e.state === 'ESTABLISHED').map((e) => e.sport as number),
      );
      return ports.every((p) => have.has(p));
    },
    `${id}'s external cache holding the ${ports.length} connections`,
    15_000,
    () => t.diagnostics(id),
  );
}

/** Waits until `id`'s conntrackd holds every one of the client's connections, ESTABLISHED, in its external cache (-e). */
export async function waitConntrackdLearned(t: FailoverTopology, id: FirewallId, ports: number[]): Promise<void> {
  await waitFor(
    async () => {
      const have = new Set(
        (await t.conntrackdExternal(id))
          .filter((e) => e.orig.src === t.clientAddress && e.orig.dport === SERVER_PORT && e.state === 'ESTABLISHED')
          .map((e) => e.orig.sport),
      );
      return ports.every((p) => have.has(p));
    },
    `conntrackd on ${id} holding the ${ports.length} connections (-e)`,
    15_000,
    () => `${t.fw[id].conntrackd?.diagnostics() ?? ''}\n${t.diagnostics(id)}`,
  );
}
