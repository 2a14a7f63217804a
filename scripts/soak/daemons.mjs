// The daemons the soak can run, behind one interface: how each is
// configured, started, asked for its caches and told to commit, flush,
// resync, send or ask for a bulk. ctsyncd answers over its control socket
// (the JSON of `--json`); conntrackd 1.4.7 through its own client flags,
// whose cache dumps (-i, -e) are conntrack(8)-style lines parsed here.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { conntrackdRequest, CT_STATS_RUNTIME } from '../../bench/lib/daemons.mjs';
import { onCleanup } from '../../bench/lib/util.mjs';
import { CONFIG_CACHE_DIR, ConfigCache } from '../../dist/config/cache.js';
import { controlRequest } from '../../dist/control/client.js';

const execFileP = promisify(execFile);
const CONNTRACKD_BIN = '/usr/sbin/conntrackd';
/** conntrackd's STATS request over its socket (bench/lib/daemons.mjs uses the same). */
const CT_STATS = 21;

/**
 * Every node has two sync links, main (sync0) and backup (sync1); on each
 * its peers are the addresses of that link's relay (addr.relay, addr.backupRelay).
 */
export function ctsyncdDaemon({ root, dir, n, port, netlinkBufferBytes, addr }) {
  const bin = join(root, 'bin', 'ctsyncd');
  const shebangFlags = readFileSync(bin, 'utf8').split('\n')[0].split(/\s+/).slice(3);
  const request = (node, cmd, args, timeoutMs = 30_000) => controlRequest(node.socket, cmd, args, { timeoutMs });
  return {
    name: 'ctsyncd',
    /** Kinds of fault this daemon can be put through. */
    supports: () => true,
    exe: 'bin/ctsyncd',
    configure(node) {
      const ids = Array.from({ length: n }, (_, k) => `fw${k + 1}`);
      const peers = ids.map((_, k) => k + 1).filter((k) => k !== node.i);
      node.conf = join(dir, `${node.id}.yaml`);
      node.socket = join(dir, `${node.id}.sock`);
      node.log = join(dir, `${node.id}.log`);
      writeFileSync(
        node.conf,
        [
          `node: { id: ${node.id}, stateDir: ${join(dir, 'state')} }`,
          `cluster: { id: 17, nodes: [${ids.join(', ')}] }`,
          'sync:',
          '  mode: ftfw',
          '  transport: udp',
          `  udp: { bind: ${addr.main(node.i)}, port: ${port}, peers: [${peers.map(addr.relay).join(', ')}] }`,
          '  backupLinks:',
          `    - udp: { bind: ${addr.backup(node.i)}, port: ${port}, peers: [${peers.map(addr.backupRelay).join(', ')}] }`,
          `  auth: { keyFile: ${join(dir, 'sync.key')} }`,
          `kernel: { netlinkBufferBytes: ${netlinkBufferBytes}, netlinkBufferMaxBytes: ${netlinkBufferBytes} }`,
          `control: { socket: ${node.socket} }`,
          'log: { level: info, format: text }',
          'metrics: { enabled: false }',
          '',
        ].join('\n'),
      );
      // The daemon keeps its validated config under /var/cache/ctsyncd; ours goes with the run.
      onCleanup(() => rmSync(new ConfigCache({ dir: CONFIG_CACHE_DIR, fingerprint: '' }).entryPath(node.conf), { force: true }));
    },
    argv: (node) => ['node', ...shebangFlags, bin, '--config', node.conf],
    beforeStart() {},
    async ready(node) {
      const st = await request(node, 'stats', undefined, 2000).catch(() => undefined);
      return st?.ready === true;
    },
    /** The node's cache as `dump --json` prints it (external entries carry their origin). */
    dump: (node, cache) => request(node, 'dump', { cache }, 60_000),
    async commit(node) {
      const rep = await request(node, 'commit', {}, 120_000);
      return rep.failed > 0 ? [`commit on ${node.id}: ${rep.failed} entries failed ${JSON.stringify(rep.failures)}`] : [];
    },
    async failoverPrimary(node) {
      const rep = await request(node, 'failover', { state: 'primary' }, 120_000);
      if (rep.steps !== 4) return [`failover primary on ${node.id} ran ${rep.steps} steps, not commit, flush, resync, bulk-send`];
      return rep.failed > 0 ? [`failover primary on ${node.id}: ${rep.failed} of ${rep.steps} steps failed`] : [];
    },
    flush: (node, cache) => request(node, 'flush', cache ? { cache } : {}),
    async resync(node) {
      const rep = await request(node, 'resync', {}, 120_000);
      return `${rep.created} new, ${rep.updated} updated, ${rep.deleted} gone`;
    },
    bulkSend: (node) => request(node, 'bulk-send', {}),
    requestResync: (node) => request(node, 'request-resync', {}),
    /** A restarted ctsyncd asks its peers by itself. */
    async afterRestart() {},
    async overruns(node) {
      const st = await request(node, 'stats', undefined, 5000);
      return st?.kernel?.overruns ?? 0;
    },
    async activeChannel(node) {
      const st = await request(node, 'stats', undefined, 5000).catch(() => undefined);
      return st?.sync?.activeChannel ?? '?';
    },
    /** What the daemon says of its peers and queues: problems (empty when quiet) and the queue lengths. */
    async health(node, others) {
      const st = await request(node, 'stats', undefined, 10_000);
      const problems = [];
      const notUp = others.filter((y) => !st.peers.some((p) => p.id === y.id && p.state === 'up'));
      if (notUp.length > 0) problems.push(`${node.id} does not see ${notUp.map((y) => y.id).join(',')} up`);
      if (st.failover?.inSync !== true) problems.push(`${node.id} is not in sync`);
      if (st.sync.sender.queueLength !== 0) problems.push(`${node.id} send queue ${st.sync.sender.queueLength}`);
      if (st.sync.resendQueue.length !== 0) problems.push(`${node.id} resend queue ${st.sync.resendQueue.length}`);
      return { problems, sendQueue: st.sync.sender.queueLength, resendQueue: st.sync.resendQueue.length };
    },
    /** Fields compared between copies: all of the dump. */
    project: (e) => e,
  };
}

/** One conntrackd -i / -e line: the original tuple, state, mark and zone (its external cache keeps no reply tuple). */
export function parseConntrackdLine(line) {
  const t = line.trim().split(/\s+/);
  const proto = t[0];
  const field = (k) => t.find((x) => x.startsWith(`${k}=`))?.slice(k.length + 1);
  const state = t.slice(2).find((x) => /^[A-Z][A-Z0-9_]*$/.test(x));
  const e = {
    proto,
    src: field('src'),
    dst: field('dst'),
    sport: Number(field('sport') ?? 0),
    dport: Number(field('dport') ?? 0),
    zone: Number(field('zone') ?? 0),
    mark: Number(field('mark') ?? 0),
  };
  if (state !== undefined) e.state = state;
  if (e.src === undefined || e.dst === undefined) throw new Error(`not a conntrackd cache line: ${line}`);
  return e;
}

/**
 * conntrackd 1.4.7, FTFW over UDP through the relay (two nodes: one peer,
 * IPv4_Destination_Address is the relay's address for it). No backup link
 * and no multi-node cluster, so no link flaps and no pair partitions.
 */
export function conntrackdDaemon({ dir, n, port, netlinkBufferBytes, addr }) {
  if (n !== 2) throw new Error('conntrackd syncs two nodes: --nodes 2');
  if (!existsSync(CONNTRACKD_BIN)) throw new Error(`${CONNTRACKD_BIN} is missing (scripts/install-system-deps.sh installs it)`);
  const client = async (node, flags, timeoutMs = 60_000) =>
    (await execFileP(CONNTRACKD_BIN, ['-C', node.conf, ...flags], { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }))
      .stdout;
  const other = (node) => `fw${3 - node.i}`;
  return {
    name: 'conntrackd',
    supports: (kind) => kind !== 'linkFlap' && kind !== 'partitionPair',
    exe: 'conntrackd',
    configure(node) {
      node.conf = join(dir, `${node.id}.conf`);
      node.socket = join(dir, `${node.id}.ctd.sock`);
      node.lock = join(dir, `${node.id}.lock`);
      node.log = join(dir, `${node.id}.log`);
      writeFileSync(
        node.conf,
        [
          'Sync {',
          '\tMode FTFW {',
          '\t}',
          '\tUDP {',
          `\t\tIPv4_address ${addr.main(node.i)}`,
          `\t\tIPv4_Destination_Address ${addr.relay(3 - node.i)}`,
          `\t\tPort ${port}`,
          '\t\tInterface sync0',
          '\t\tSndSocketBuffer 4194304',
          '\t\tRcvSocketBuffer 4194304',
          '\t\tChecksum on',
          '\t}',
          '}',
          'General {',
          '\tHashSize 65536',
          '\tHashLimit 262144',
          `\tLogFile ${node.log}`,
          '\tSyslog off',
          '\tSystemd off',
          `\tLockFile ${node.lock}`,
          '\tUNIX {',
          `\t\tPath ${node.socket}`,
          '\t}',
          `\tNetlinkBufferSize ${netlinkBufferBytes}`,
          `\tNetlinkBufferSizeMaxGrowth ${netlinkBufferBytes}`,
          // SCHED_OTHER on a shared machine, as ctsyncd (priority 0 is refused with a warning).
          '\tScheduler {',
          '\t\tType RR',
          '\t\tPriority 0',
          '\t}',
          '}',
          '',
        ].join('\n'),
      );
    },
    argv: (node) => [CONNTRACKD_BIN, '-C', node.conf],
    /** A killed conntrackd leaves its lock and socket behind; a stale lock blocks the next start. */
    beforeStart(node) {
      for (const p of [node.lock, node.socket]) rmSync(p, { force: true });
    },
    async ready(node) {
      if (!existsSync(node.socket)) return false;
      return conntrackdRequest(node.socket, CT_STATS, 2000).then(
        (t) => t.includes('cache internal'),
        () => false,
      );
    },
    async dump(node, cache) {
      const text = await client(node, [cache === 'internal' ? '-i' : '-e']);
      const out = [];
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        const e = parseConntrackdLine(line);
        out.push(cache === 'internal' ? e : { ...e, origin: other(node) });
      }
      return out;
    },
    /** -c: conntrackd answers before the (forked) commit is done, so a failure does not show here. */
    async commit(node) {
      await client(node, ['-c'], 120_000);
      return [];
    },
    /** What Debian's primary-backup.sh runs on `primary`. */
    async failoverPrimary(node) {
      for (const f of [['-c'], ['-f'], ['-R'], ['-B']]) await client(node, f, 120_000);
      return [];
    },
    flush: (node, cache) => client(node, cache ? ['-f', cache] : ['-f']),
    async resync(node) {
      await client(node, ['-R'], 120_000);
      return 'done';
    },
    bulkSend: (node) => client(node, ['-B']),
    requestResync: (node) => client(node, ['-n']),
    /** A restarted conntrackd must be told to ask its peer (-n), as its scripts do. */
    async afterRestart(node) {
      await client(node, ['-n']);
    },
    async overruns(node) {
      const text = await conntrackdRequest(node.socket, CT_STATS_RUNTIME, 5000);
      return Number(/netlink overrun:\s+(\d+)/.exec(text)?.[1] ?? 0);
    },
    async activeChannel() {
      return 'udp';
    },
    /** conntrackd reports no peer state and no queue lengths over its socket: nothing to say. */
    async health() {
      return { problems: [], sendQueue: undefined, resendQueue: undefined };
    },
    /** What conntrackd's dumps show of an entry: its identity, state and mark (no reply tuple, no status in -e). */
    project: (e) => ({
      proto: e.proto,
      src: e.src,
      dst: e.dst,
      sport: e.sport,
      dport: e.dport,
      zone: e.zone ?? 0,
      mark: e.mark ?? 0,
      ...(e.state !== undefined ? { state: e.state } : {}),
    }),
  };
}
