// Two firewall namespaces fw1 and fw2 joined by a dedicated veth sync link
// (sync0 on both sides, 10.99.S.1/24 and 10.99.S.2/24, IPv6 off so nothing
// but our traffic crosses it). The same topology serves both daemons.
//
// Every name carries this process's pid and a random suffix; every
// namespace is registered for cleanup (also on SIGINT) before anything else
// is done with it. Traffic on the sync link and on lo is not tracked, so the
// kernel tables hold exactly the injected entries. Loss is an nftables rule in
// a netdev egress hook (numgen random; this kernel has no netem), as in
// test/integration/helpers/faults.ts.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { onCleanup, run, runCleanup, runSync } from './util.mjs';

export const SYNC_PORT = 3780;
let counter = 0;
const runTag = randomBytes(1)[0];

function suffix() {
  return `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
}

/** A multicast group of its own for every topology in this run: 225.99.x.y. */
function nextGroup() {
  counter++;
  return `225.99.${(runTag + (counter >> 8)) % 256}.${1 + (counter % 250)}`;
}

async function nsExec(ns, cmd, args, timeoutMs) {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);
}

async function nftApply(ns, text) {
  const { spawn } = await import('node:child_process');
  const child = spawn('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  child.stdin.end(text);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise((r) => child.on('close', r));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`nft in ${ns} failed (${code}): ${stderr}`);
}

/** Creates fw1 and fw2 and the sync link. */
export async function createTopology() {
  const sfx = suffix();
  // 10.99.201-250.0/24: apart from the workload's 10.99.0.0/17 (ctsyncd never
  // replicates entries of its own sync addresses).
  const subnet = 201 + (randomBytes(1)[0] % 50);
  const topo = { subnet, group: nextGroup(), port: SYNC_PORT, nodes: [], handles: [] };
  for (const [i, id] of ['fw1', 'fw2'].entries()) {
    const ns = `bf${i + 1}${sfx}`.slice(0, 15);
    await run('ip', ['netns', 'add', ns]);
    topo.handles.push(
      onCleanup(() => {
        try {
          runSync('ip', ['netns', 'del', ns], 20_000);
        } catch (e) {
          if (!/No such file/.test(String(e.stderr ?? e.message))) throw e;
        }
      }, `netns ${ns}`),
    );
    topo.nodes.push({ id, ns, addr: `10.99.${subnet}.${i + 1}`, netnsPath: `/var/run/netns/${ns}` });
  }
  const [fw1, fw2] = topo.nodes;
  const a = `bva${sfx}`.slice(0, 15);
  const b = `bvb${sfx}`.slice(0, 15);
  await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  // Moved into fw1/fw2 right away; deleting the namespaces deletes the pair.
  const vethHandle = onCleanup(() => {
    try {
      runSync('ip', ['link', 'del', a]);
    } catch {
      // gone with its namespace
    }
  }, `veth ${a}`);
  for (const [n, ifn] of [
    [fw1, a],
    [fw2, b],
  ]) {
    await run('ip', ['link', 'set', ifn, 'netns', n.ns]);
    await run('ip', ['-n', n.ns, 'link', 'set', ifn, 'name', 'sync0']);
    await nsExec(n.ns, 'sysctl', ['-qw', 'net.ipv6.conf.sync0.disable_ipv6=1']);
    await run('ip', ['-n', n.ns, 'addr', 'add', `${n.addr}/24`, 'dev', 'sync0']);
    await run('ip', ['-n', n.ns, 'link', 'set', 'sync0', 'up']);
    await run('ip', ['-n', n.ns, 'link', 'set', 'lo', 'up']);
    // Sync traffic, IGMP and the control path are not tracked: the kernel
    // tables hold exactly the injected entries.
    await nftApply(
      n.ns,
      [
        'table inet ctbench {',
        '  chain pre { type filter hook prerouting priority raw; policy accept; iifname { "sync0", "lo" } notrack; }',
        '  chain out { type filter hook output priority raw; policy accept; oifname { "sync0", "lo" } notrack; }',
        '}',
        '',
      ].join('\n'),
    );
  }
  runCleanup(vethHandle);
  return topo;
}

/** Deletes the namespaces (their veth ends go with them). */
export function destroyTopology(topo) {
  for (const h of topo.handles.splice(0).reverse()) runCleanup(h);
}

/** Drops `percent`% of the UDP datagrams to the sync port leaving sync0 (random, nftables numgen). */
export async function addEgressLoss(node, percent, port = SYNC_PORT) {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`bad loss percent ${percent}`);
  await nftApply(
    node.ns,
    [
      'table netdev ctloss {',
      '  counter seen {}',
      '  counter dropped {}',
      '  chain eg {',
      '    type filter hook egress device "sync0" priority 0; policy accept;',
      `    udp dport ${port} counter name "seen" numgen random mod 100 < ${percent} counter name "dropped" drop`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
}

export async function lossCounters(node) {
  const out = await nsExec(node.ns, 'nft', ['-j', 'list', 'counters', 'table', 'netdev', 'ctloss'], 15_000);
  const doc = JSON.parse(out);
  const c = { seen: 0, dropped: 0 };
  for (const item of doc.nftables) {
    if (item.counter?.name === 'seen') c.seen = item.counter.packets;
    if (item.counter?.name === 'dropped') c.dropped = item.counter.packets;
  }
  return c;
}

/** `conntrack -C` in a node's namespace. */
export async function conntrackCount(node) {
  return Number((await nsExec(node.ns, 'conntrack', ['-C'], 30_000)).trim());
}

/** `conntrack -F` in a node's namespace. */
export async function conntrackFlush(node) {
  await nsExec(node.ns, 'conntrack', ['-F'], 120_000).catch((e) => {
    // conntrack -F prints to stderr and exits 0; a failure is real.
    throw new Error(`conntrack -F in ${node.ns}: ${e.stderr || e.message}`);
  });
}

const MAX_PATH = '/proc/sys/net/netfilter/nf_conntrack_max';
const BUCKETS_PATH = '/proc/sys/net/netfilter/nf_conntrack_buckets';

function setSysctl(path, value, label) {
  const before = Number(readFileSync(path, 'utf8').trim());
  if (before >= value) return undefined;
  writeFileSync(path, `${value}\n`);
  console.log(`${label} ${before} -> ${value} (restored afterwards)`);
  return onCleanup(() => {
    writeFileSync(path, `${before}\n`);
    console.log(`${label} restored to ${before}`);
  }, label);
}

/**
 * Raises nf_conntrack_max in the initial namespace (it is read-only inside
 * the others) so that the namespaces can hold `need` entries, and the hash
 * table (nf_conntrack_buckets, global) to need/2 buckets, as a firewall with
 * that many connections would be tuned; both are restored afterwards (also
 * on SIGINT). Returns the cleanup handles; run them to restore.
 */
export function raiseConntrackLimits(need) {
  const buckets = 2 ** Math.ceil(Math.log2(need / 2));
  return [setSysctl(MAX_PATH, need, 'nf_conntrack_max'), setSysctl(BUCKETS_PATH, buckets, 'nf_conntrack_buckets')].filter(
    Boolean,
  );
}
