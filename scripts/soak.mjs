#!/usr/bin/env node
// The chaos soak (issue 17): real ctsyncd daemons in network namespaces on a
// shared sync segment and a backup link, a paced workload on every node, and
// a fault schedule drawn from a seed; after each fault it waits for quiet and
// checks that nothing was lost, nothing came back and every peer is in sync.
//
//   npm run soak -- --nodes 4 --minutes M --seed S [--rate R]     (root)
//
// Runs against the built dist/ (`npm run build` after changing src/).
// RELIABILITY.md says what it checks and how to read its output. Progress
// lines go to stdout while it runs; the last line is one JSON object. Exit 0
// when every check held, 1 when one did not (the seed and the fault log are
// printed so the run can be repeated), 2 on a usage error.
//
// Topology (names carry `sk`, this process's pid and a random suffix):
//   skn<i>…   node i: sync0 10.99.210.i (main link), sync1 10.99.211.i
//             (backup link); the sync links and lo are not tracked, so the
//             kernel tables hold the workload's entries and the TCP flows.
//   skbr…     both segments: bridges br0 (main, ports m<i>) and br1 (backup,
//             ports b<i>), with a bridge-family nftables table whose forward
//             chain the loss bursts and partitions fill.
//   skrl…     two relays (test/integration/helpers/udp-relay.mjs), one on
//             each segment at 10.99.21x.(100+i): the nodes' sync.udp.peers
//             are the relay's addresses, so whichever link carries the
//             traffic, the relay can duplicate and reorder it.
//   skcl…/sksv…  a client and a server whose TCP flows cross node 1, which
//             masquerades them (real NATed entries in node 1's table).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onCleanup, procSample, run, runCleanup, runSync, sleep } from '../bench/lib/util.mjs';
import { PEER_STATUS_BITS } from '../dist/cache/peer-validate.js';
import { ConntrackLink } from '../dist/kernel/conntrack-link.js';
import { entryToJson } from '../dist/kernel/entry-json.js';
import { conntrackdDaemon, ctsyncdDaemon } from './soak/daemons.mjs';
import { compareKernel, compareReplicas, draw, findResurrected, keyOf, mulberry32, slope } from './soak/invariants.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RELAY_SCRIPT = join(ROOT, 'test', 'integration', 'helpers', 'udp-relay.mjs');
const SYNC_PORT = 3780;
const FLOW_PORT = 5017;
const MiB = 1024 * 1024;

// Every wait is bounded: these are the bounds.
/** A daemon must answer ready this soon after it was started. */
const READY_MS = 30_000;
/** Quiet (all peers up, queues empty, caches equal) must come this soon after a fault healed. */
const QUIET_MS = 60_000;
/** Any single command (ip, nft, a control request). */
const CMD_MS = 30_000;
/** Between resource samples. */
const SAMPLE_EVERY_MS = 5_000;
/** The event socket's buffer, small on purpose: an overrun burst must overflow it. */
const NETLINK_BUFFER_BYTES = 128 * 1024;
/** Live workload entries per node: creates and deletes keep it around this. */
const LIVE_TARGET = 1500;
/** Entries created in one burst while the daemon is stopped (about 1 KiB of queue each). */
const OVERRUN_BURST = 2000;

const FAULT_KINDS = [
  'loss',
  'dupReorder',
  'partition',
  'partitionPair',
  'linkFlap',
  'kill',
  'pause',
  'overrun',
  'commit',
  'flush',
  'resync',
  'failover',
];

// ---------------------------------------------------------------------------
// Arguments

const USAGE =
  'usage: npm run soak -- [--nodes N (2..8, 4)] [--minutes M (10)] [--seed S (random)] [--rate R (100)] [--daemon ctsyncd|conntrackd]';

function parseArgs(argv) {
  const o = { nodes: 4, minutes: 10, seed: randomBytes(4).readUInt32BE(0), rate: 100, daemon: 'ctsyncd' };
  const num = (name, v, ok) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || !ok(n)) usage(`${name} expects ${ok.what}, got ${v}`);
    return n;
  };
  const int = (lo, hi) => Object.assign((n) => Number.isInteger(n) && n >= lo && n <= hi, { what: `an integer ${lo}..${hi}` });
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--nodes') o.nodes = num(a, argv[++i], int(2, 8));
    else if (a === '--minutes') o.minutes = num(a, argv[++i], Object.assign((n) => n > 0 && n <= 24 * 60, { what: 'minutes in (0, 1440]' }));
    else if (a === '--seed') o.seed = num(a, argv[++i], int(0, 2 ** 32 - 1));
    else if (a === '--rate') o.rate = num(a, argv[++i], int(1, 5000));
    else if (a === '--daemon') {
      o.daemon = argv[++i];
      if (o.daemon !== 'ctsyncd' && o.daemon !== 'conntrackd') usage(`--daemon expects ctsyncd or conntrackd, got ${o.daemon}`);
    }
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else usage(`unknown argument ${a}`);
  }
  if (o.daemon === 'conntrackd' && o.nodes !== 2) usage('conntrackd syncs two nodes: --nodes 2');
  return o;
}

function usage(msg) {
  console.error(`soak: ${msg}\n${USAGE}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Output

const t0 = Date.now();
function stamp() {
  const s = Math.floor((Date.now() - t0) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
function say(line) {
  console.log(`[${stamp()}] ${line}`);
}

// ---------------------------------------------------------------------------
// Namespaces, links and nftables

const SFX = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const nsName = (role) => `sk${role}${SFX}`.slice(0, 15);

async function ipns(ns, ...args) {
  return run('ip', ['netns', 'exec', ns, ...args], CMD_MS);
}

async function addNetns(role) {
  const ns = nsName(role);
  await run('ip', ['netns', 'add', ns], CMD_MS);
  onCleanup(() => {
    try {
      runSync('ip', ['netns', 'del', ns], CMD_MS);
    } catch {
      // already gone
    }
  }, `netns ${ns}`);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], CMD_MS);
  return ns;
}

/** A veth from `ns` (named ifname there, with addresses) to `peerNs` (named peerName, enslaved to bridge if given). */
async function veth(ns, ifname, addresses, peerNs, peerName, bridge) {
  const a = `sk${randomBytes(5).toString('hex')}`.slice(0, 15);
  const b = `sk${randomBytes(5).toString('hex')}`.slice(0, 15);
  await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b], CMD_MS);
  const h = onCleanup(() => {
    try {
      runSync('ip', ['link', 'del', a]);
    } catch {
      // moved into a namespace, and gone with it
    }
  }, `veth ${a}`);
  await run('ip', ['link', 'set', a, 'netns', ns], CMD_MS);
  await run('ip', ['link', 'set', b, 'netns', peerNs], CMD_MS);
  runCleanup(h);
  await run('ip', ['-n', ns, 'link', 'set', a, 'name', ifname], CMD_MS);
  await ipns(ns, 'sysctl', '-qw', `net.ipv6.conf.${ifname}.disable_ipv6=1`);
  for (const x of addresses) await run('ip', ['-n', ns, 'addr', 'add', x, 'dev', ifname], CMD_MS);
  await run('ip', ['-n', ns, 'link', 'set', ifname, 'up'], CMD_MS);
  await run('ip', ['-n', peerNs, 'link', 'set', b, 'name', peerName], CMD_MS);
  if (bridge) await run('ip', ['-n', peerNs, 'link', 'set', peerName, 'master', bridge], CMD_MS);
  await run('ip', ['-n', peerNs, 'link', 'set', peerName, 'up'], CMD_MS);
}

async function nft(ns, text) {
  const child = spawn('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  child.stdin.end(text);
  const timer = setTimeout(() => child.kill('SIGKILL'), CMD_MS);
  const code = await new Promise((r) => child.on('close', r));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`nft in ${ns} failed (${code}): ${stderr}\n${text}`);
}

// ---------------------------------------------------------------------------
// The workload's entries: node i owns 10.99.(16i..16i+15).x as sources.

const mainAddr = (i) => `10.99.210.${i}`;
const relayAddr = (i) => `10.99.210.${100 + i}`;
const backupAddr = (i) => `10.99.211.${i}`;
const backupRelayAddr = (i) => `10.99.211.${100 + i}`;
const CLIENT = '10.99.180.2';
const SERVER = '10.99.181.2';

function workloadEntry(i, j, mark) {
  const src = `10.99.${16 * i + ((j >> 8) & 15)}.${j & 255}`;
  const sport = 20_000 + (j >> 12);
  return {
    family: 2,
    orig: { src, dst: '10.99.200.1', proto: 6, sport, dport: 443 },
    reply: { src: '10.99.200.1', dst: src, proto: 6, sport: 443, dport: sport },
    // SEEN_REPLY | ASSURED | CONFIRMED
    status: 0x2 | 0x4 | 0x8,
    // Longer than any soak: only the workload ends these entries.
    timeout: 86_400,
    mark,
    protoinfo: { tcp: { state: 3 } },
  };
}

/** Whether node i's workload (or, for the NAT node, its TCP flows) made this kernel entry. */
function ownedBy(i, e) {
  const m = /^10\.99\.(\d+)\./.exec(e.orig.src);
  const third = m ? Number(m[1]) : -1;
  return (third >= 16 * i && third < 16 * i + 16) || (i === 1 && e.orig.src === CLIENT);
}

// ---------------------------------------------------------------------------
// The soak

class Soak {
  constructor(opts) {
    this.opts = opts;
    this.n = opts.nodes;
    this.faultRand = draw(mulberry32(opts.seed));
    this.loadRand = draw(mulberry32(opts.seed ^ 0x9e3779b9));
    this.dir = mkdtempSync(join(tmpdir(), 'ctsyncd-soak-'));
    this.nodes = [];
    this.faultLog = [];
    this.faults = {};
    this.checks = 0;
    this.failures = [];
    this.mismatches = 0;
    this.lostEntries = 0;
    this.resurrected = 0;
    this.samples = [];
    this.children = [];
    this.load = { paused: true, inFlight: Promise.resolve(), creates: 0, updates: 0, deletes: 0, errors: 0, errorSamples: [] };
    this.bag = [];
    this.notes = [];
    const spec = {
      root: ROOT,
      dir: this.dir,
      n: this.n,
      port: SYNC_PORT,
      netlinkBufferBytes: NETLINK_BUFFER_BYTES,
      addr: { main: mainAddr, relay: relayAddr, backup: backupAddr, backupRelay: backupRelayAddr },
    };
    this.d = opts.daemon === 'conntrackd' ? conntrackdDaemon(spec) : ctsyncdDaemon(spec);
  }

  // --- setup -----------------------------------------------------------------

  async setup() {
    this.bridgeNs = await addNetns('br');
    for (const br of ['br0', 'br1']) {
      await run('ip', ['-n', this.bridgeNs, 'link', 'add', br, 'type', 'bridge'], CMD_MS);
      await run('ip', ['-n', this.bridgeNs, 'link', 'set', br, 'up'], CMD_MS);
    }
    await this.setBridgeRules([]);
    writeFileSync(join(this.dir, 'sync.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    for (let i = 1; i <= this.n; i++) {
      const ns = await addNetns(`n${i}`);
      const node = { i, id: `fw${i}`, ns, netnsPath: `/var/run/netns/${ns}`, starts: 0, live: new Map(), nextJ: 0, deleted: new Set(), touched: new Map() };
      this.nodes.push(node);
      await veth(ns, 'sync0', [`${mainAddr(i)}/24`], this.bridgeNs, `m${i}`, 'br0');
      await veth(ns, 'sync1', [`${backupAddr(i)}/24`], this.bridgeNs, `b${i}`, 'br1');
      // The sync links and lo are not tracked: the table holds the workload and the flows.
      await nft(
        ns,
        [
          'table inet sk {',
          '  chain pre { type filter hook prerouting priority raw; policy accept; iifname { "sync0", "sync1", "lo" } notrack; }',
          '  chain out { type filter hook output priority raw; policy accept; oifname { "sync0", "sync1", "lo" } notrack; }',
          '}',
          '',
        ].join('\n'),
      );
      node.link = new ConntrackLink({ netns: node.netnsPath });
      onCleanup(() => node.link.close(), `link ${node.id}`);
      this.d.configure(node);
    }
    this.relayNs = await addNetns('rl');
    // One relay per link, so duplication and reordering reach whichever link carries the traffic.
    this.relays = [];
    for (const [ifname, port, listen, forwardTo] of [
      ['sync0', 'rl0', relayAddr, mainAddr],
      ['sync1', 'rl1', backupRelayAddr, backupAddr],
    ]) {
      await veth(this.relayNs, ifname, this.nodes.map((x) => `${listen(x.i)}/24`), this.bridgeNs, port, port === 'rl0' ? 'br0' : 'br1');
      const spec = { port: SYNC_PORT, routes: this.nodes.map((x) => ({ listen: listen(x.i), forwardTo: forwardTo(x.i) })) };
      const relay = this.spawnJsonl(this.relayNs, ['node', RELAY_SCRIPT, 'relay', JSON.stringify(spec)], `relay ${ifname}`);
      const ev = await relay.next((e) => e.ev === 'ready' || e.ev === 'error', 15_000);
      if (ev.ev === 'error') throw new Error(`relay on ${ifname}: ${ev.message}`);
      this.relays.push(relay);
    }
    await this.setupFlows();
  }

  /** A client and a server namespace whose TCP flows node 1 forwards and masquerades. */
  async setupFlows() {
    const fw = this.nodes[0];
    this.clientNs = await addNetns('cl');
    this.serverNs = await addNetns('sv');
    await veth(this.clientNs, 'eth0', [`${CLIENT}/24`], fw.ns, 'in0');
    await veth(this.serverNs, 'eth0', [`${SERVER}/24`], fw.ns, 'out0');
    await run('ip', ['-n', fw.ns, 'addr', 'add', '10.99.180.1/24', 'dev', 'in0'], CMD_MS);
    await run('ip', ['-n', fw.ns, 'addr', 'add', '10.99.181.1/24', 'dev', 'out0'], CMD_MS);
    await run('ip', ['-n', this.clientNs, 'route', 'add', 'default', 'via', '10.99.180.1'], CMD_MS);
    await ipns(fw.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await nft(fw.ns, 'table ip sknat {\n  chain post { type nat hook postrouting priority srcnat; oifname "out0" masquerade; }\n}\n');
    const maxMs = Math.ceil(this.opts.minutes * 60_000 + 600_000);
    this.server = this.spawnJsonl(
      this.serverNs,
      ['node', join(ROOT, 'test/integration/helpers/stream-server.mjs'), JSON.stringify({ host: SERVER, port: FLOW_PORT, intervalMs: 500, maxMs })],
      'stream-server',
    );
    await this.server.next((e) => e.ev === 'listening' || e.ev === 'ready' || e.ev === 'error', 15_000);
  }

  startFlows() {
    const maxMs = Math.ceil(this.opts.minutes * 60_000 + 600_000);
    this.client = this.spawnJsonl(
      this.clientNs,
      [
        'node',
        join(ROOT, 'test/integration/helpers/stream-client.mjs'),
        JSON.stringify({ host: SERVER, port: FLOW_PORT, count: 4, intervalMs: 500, connectTimeoutMs: 10_000, maxMs }),
      ],
      'stream-client',
    );
  }

  /** A child speaking JSON lines (relay, stream client and server); killed by its PID at exit. */
  spawnJsonl(ns, argv, label) {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => undefined);
    const events = [];
    const waiters = [];
    const stderr = [];
    child.stderr.setEncoding('utf8').on('data', (d) => stderr.push(d) > 50 && stderr.shift());
    createInterface({ input: child.stdout }).on('line', (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        return;
      }
      events.push(ev);
      if (events.length > 200) events.shift();
      for (const w of [...waiters]) {
        if (w.match(ev)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(ev);
        }
      }
    });
    const h = onCleanup(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), `${label} pid ${child.pid}`);
    const proc = {
      child,
      handle: h,
      stderr,
      send: (cmd) => child.stdin.write(`${JSON.stringify(cmd)}\n`),
      next(match, timeoutMs) {
        const earlier = events.find(match);
        if (earlier) {
          events.splice(events.indexOf(earlier), 1);
          return Promise.resolve(earlier);
        }
        return new Promise((resolve, reject) => {
          const w = { match, resolve: (e) => (clearTimeout(timer), resolve(e)) };
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`${label}: nothing after ${timeoutMs} ms; stderr: ${stderr.join('').slice(-1000)}`));
          }, timeoutMs);
          waiters.push(w);
        });
      },
    };
    this.children.push(proc);
    return proc;
  }

  // --- daemons ---------------------------------------------------------------

  start(node) {
    node.starts++;
    node.primary = false;
    this.d.beforeStart(node);
    const fd = openSync(`${node.log}.out`, 'a');
    const child = spawn('ip', ['netns', 'exec', node.ns, ...this.d.argv(node)], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    node.proc = child;
    node.exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
    node.startedAt = Date.now();
    node.handle = onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, `${this.d.name} ${node.id} pid ${child.pid}`);
  }

  alive(node) {
    return node.proc !== undefined && node.proc.exitCode === null && node.proc.signalCode === null;
  }

  async waitReady(node) {
    const deadline = Date.now() + READY_MS;
    while (Date.now() < deadline) {
      if (!this.alive(node)) throw new Error(`${this.d.name} ${node.id} exited: ${this.logTail(node)}`);
      if (await this.d.ready(node)) {
        // `ip netns exec` execs the daemon: the PID we hold is the daemon's own.
        const argv = readFileSync(`/proc/${node.proc.pid}/cmdline`, 'utf8').split('\0');
        if (!argv.some((a) => a.endsWith(this.d.exe))) throw new Error(`${node.id}: pid ${node.proc.pid} runs ${argv.join(' ')}`);
        return;
      }
      await sleep(100);
    }
    throw new Error(`${this.d.name} ${node.id} not ready after ${READY_MS} ms: ${this.logTail(node)}`);
  }

  async kill(node, signal = 'SIGKILL') {
    if (this.alive(node)) {
      node.proc.kill(signal);
      const t = setTimeout(() => this.alive(node) && node.proc.kill('SIGKILL'), 10_000);
      await node.exited;
      clearTimeout(t);
    }
    runCleanup(node.handle);
  }

  logTail(node, n = 3000) {
    try {
      const out = existsSync(`${node.log}.out`) ? readFileSync(`${node.log}.out`, 'utf8') : '';
      return (readFileSync(node.log, 'utf8') + out).slice(-n);
    } catch {
      return '';
    }
  }

  // --- workload --------------------------------------------------------------

  /** Runs until stopped: `rate` creates, updates and deletes per second over all nodes. */
  async workloadLoop(stopAt) {
    let due = 0;
    let last = Date.now();
    while (Date.now() < stopAt && !this.stopping) {
      await sleep(100);
      const now = Date.now();
      if (this.load.paused) {
        last = now;
        continue;
      }
      due += ((now - last) / 1000) * this.opts.rate;
      last = now;
      const count = Math.floor(due);
      due -= count;
      if (count === 0) continue;
      this.load.inFlight = this.workloadStep(count);
      await this.load.inFlight;
    }
  }

  /** `count` operations on random nodes, one batch per node. */
  async workloadStep(count) {
    const per = new Map();
    for (let k = 0; k < count; k++) {
      const node = this.loadRand.pick(this.nodes);
      const items = per.get(node) ?? [];
      per.set(node, items);
      const full = node.live.size / LIVE_TARGET;
      const x = this.loadRand.rand();
      // Below the target mostly creates, above it mostly deletes (creates and
      // deletes balance at 80% of it, and a burst drains in a few minutes), so
      // the tables reach a steady size and RSS growth is not the workload's.
      const pCreate = Math.min(0.7, Math.max(0.05, 0.7 - 0.45 * full));
      const pDelete = Math.min(0.8, Math.max(0.1, 0.1 + 0.3 * full));
      const op = node.live.size === 0 || x < pCreate ? 'create' : x < 1 - pDelete ? 'update' : 'delete';
      if (op === 'create') {
        const j = node.nextJ++;
        const mark = this.loadRand.int(0, 1000);
        items.push({ op, j, mark });
        continue;
      }
      const keys = [...node.live.keys()];
      const j = keys[this.loadRand.int(0, keys.length - 1)];
      if (items.some((it) => it.j === j)) continue;
      items.push({ op, j, mark: op === 'update' ? this.loadRand.int(0, 1000) : node.live.get(j) });
    }
    await Promise.all([...per].map(([node, items]) => this.apply(node, items)));
  }

  async apply(node, items) {
    if (items.length === 0) return;
    const res = await node.link.batch(items.map((it) => ({ op: it.op, entry: workloadEntry(node.i, it.j, it.mark) })));
    items.forEach((it, k) => {
      if (res.errnos[k] !== 0) {
        this.load.errors++;
        if (this.load.errorSamples.length < 10) this.load.errorSamples.push(`${node.id} ${it.op} ${it.j}: errno ${res.errnos[k]}`);
        return;
      }
      node.touched.set(keyOf(entryToJson(workloadEntry(node.i, it.j, 0))), Date.now());
      if (it.op === 'delete') {
        node.live.delete(it.j);
        node.deleted.add(keyOf(entryToJson(workloadEntry(node.i, it.j, 0))));
        this.load.deletes++;
      } else {
        node.live.set(it.j, it.mark);
        if (it.op === 'create') this.load.creates++;
        else this.load.updates++;
      }
    });
  }

  async pauseLoad() {
    this.load.paused = true;
    await this.load.inFlight;
  }

  resumeLoad() {
    this.load.paused = false;
  }

  // --- faults ----------------------------------------------------------------

  /** Both segments' forward chain: the given rules (loss, partitions), nothing else. */
  async setBridgeRules(rules) {
    await nft(
      this.bridgeNs,
      [
        'add table bridge sk',
        'add chain bridge sk forward_sk { type filter hook forward priority 0; policy accept; }',
        'flush chain bridge sk forward_sk',
        ...rules.map((r) => `add rule bridge sk forward_sk ${r}`),
        '',
      ].join('\n'),
    );
  }

  /** Every sync address of the nodes in `group` (main, relay, backup). */
  addressesOf(group) {
    return group.flatMap((x) => [mainAddr(x.i), relayAddr(x.i), backupAddr(x.i), backupRelayAddr(x.i)]);
  }

  /** Nothing crosses between `group` and the other nodes, on either link. */
  partitionRules(group) {
    const a = `{ ${this.addressesOf(group).join(', ')} }`;
    const b = `{ ${this.addressesOf(this.nodes.filter((x) => !group.includes(x))).join(', ')} }`;
    return [`ether type ip ip saddr ${a} ip daddr ${b} drop`, `ether type ip ip saddr ${b} ip daddr ${a} drop`];
  }

  nextKind() {
    if (this.bag.length === 0) {
      // Every kind once per round, in a drawn order: a short run still sees many kinds.
      this.bag = this.faultRand.shuffle(FAULT_KINDS.filter((k) => (k !== 'partitionPair' || this.n >= 4) && this.d.supports(k)));
    }
    return this.bag.shift();
  }

  logFault(kind, detail) {
    this.faultCount = (this.faultCount ?? 0) + 1;
    const line = `${stamp()} #${this.faultCount} ${kind} ${detail}`;
    this.faultLog.push(line);
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
    say(`fault ${line.slice(6)}`);
  }

  async runFault(kind) {
    const r = this.faultRand;
    let node = r.pick(this.nodes);
    switch (kind) {
      case 'loss': {
        const pct = r.int(5, 40);
        const ms = r.int(5, 15) * 1000;
        this.logFault(kind, `${pct}% of sync datagrams dropped on both segments for ${ms / 1000} s`);
        await this.setBridgeRules([`ether type ip udp dport ${SYNC_PORT} numgen random mod 100 < ${pct} drop`]);
        await sleep(ms);
        await this.setBridgeRules([]);
        return {};
      }
      case 'dupReorder': {
        const dup = r.int(5, 30);
        const reorder = r.int(5, 30);
        const ms = r.int(5, 15) * 1000;
        this.logFault(kind, `relay duplicates ${dup}% and reorders ${reorder}% for ${ms / 1000} s`);
        await this.relaySet(dup, reorder);
        await sleep(ms);
        await this.relaySet(0, 0);
        return {};
      }
      case 'partition':
      case 'partitionPair': {
        const group = kind === 'partition' ? [node] : r.shuffle(this.nodes).slice(0, 2);
        const ms = r.int(5, 20) * 1000;
        this.logFault(kind, `${group.map((x) => x.id).join('+')} cut off from the others for ${ms / 1000} s`);
        await this.setBridgeRules(this.partitionRules(group));
        await sleep(ms);
        await this.setBridgeRules([]);
        return {};
      }
      case 'linkFlap': {
        const ms = r.int(3, 10) * 1000;
        // The link most nodes send on goes down (a node stays on the link it failed over to).
        const before = await this.activeChannels();
        const onBackup = before.filter((c) => c.includes('10.99.211.')).length * 2 > before.length;
        const [ports, link] = onBackup ? ['b', 'backup'] : ['m', 'main'];
        this.logFault(kind, `${link} sync link down on every node for ${ms / 1000} s (the other takes over)`);
        for (const x of this.nodes) await run('ip', ['-n', this.bridgeNs, 'link', 'set', `${ports}${x.i}`, 'down'], CMD_MS);
        await sleep(ms);
        const during = await this.activeChannels();
        for (const x of this.nodes) await run('ip', ['-n', this.bridgeNs, 'link', 'set', `${ports}${x.i}`, 'up'], CMD_MS);
        say(`  active channel before ${before.join(',')}; while down ${during.join(',')}`);
        const dead = onBackup ? '10.99.211.' : '10.99.210.';
        // A node still sending on the link that went down never switched: that is a finding.
        return { backupNotTaken: this.nodes.filter((_, k) => String(during[k]).includes(dead)).map((x) => x.id) };
      }
      case 'kill': {
        const ms = r.int(1, 5) * 1000;
        this.logFault(kind, `${node.id} killed (SIGKILL), restarted after ${ms / 1000} s`);
        await this.kill(node, 'SIGKILL');
        await sleep(ms);
        this.start(node);
        await this.waitReady(node);
        await this.d.afterRestart(node);
        return {};
      }
      case 'pause': {
        const ms = r.int(2, 8) * 1000;
        this.logFault(kind, `${node.id} stopped (SIGSTOP) for ${ms / 1000} s`);
        node.proc.kill('SIGSTOP');
        await sleep(ms);
        node.proc.kill('SIGCONT');
        return {};
      }
      case 'overrun': {
        this.logFault(kind, `${node.id} stopped while ${OVERRUN_BURST} entries are created (event buffer ${NETLINK_BUFFER_BYTES / 1024} KiB)`);
        const before = await this.d.overruns(node);
        node.proc.kill('SIGSTOP');
        try {
          const first = node.nextJ;
          node.nextJ += OVERRUN_BURST;
          const items = Array.from({ length: OVERRUN_BURST }, (_, k) => ({ op: 'create', j: first + k, mark: k % 1000 }));
          await this.apply(node, items);
          await sleep(300);
        } finally {
          node.proc.kill('SIGCONT');
        }
        const overruns = (await this.waitOverruns(node)) - before;
        say(`  ${node.id}: ${overruns} overrun(s) reported`);
        return { noOverrun: overruns > 0 ? [] : [node.id] };
      }
      case 'commit':
        this.logFault(kind, `commit on ${node.id} mid-stream`);
        return this.commitAndCheck(node, () => this.d.commit(node));
      case 'failover': {
        // A node already primary ignores a repeated `failover primary` (keepalived
        // repeats states; nothing runs), and `failover backup` would hand its own
        // forwarded connections away: each daemon process becomes primary once.
        const candidates = this.nodes.filter((x) => !x.primary);
        if (candidates.length === 0) return this.runFault('commit');
        node = r.pick(candidates);
        node.primary = true;
        this.logFault(kind, `failover primary on ${node.id} mid-stream, then its peers' copies removed and the tables sent again`);
        return this.commitAndCheck(node, () => this.d.failoverPrimary(node));
      }
      case 'flush': {
        const cache = r.pick(['internal', 'external', undefined]);
        this.logFault(kind, `flush ${cache ?? 'both caches'} on ${node.id}, then the operator's recovery`);
        await this.d.flush(node, cache);
        // What the operator runs after a flush (as keepalived's scripts do):
        // an emptied internal cache is reloaded from the kernel and sent in
        // full; an emptied external cache is asked of the peers again.
        if (cache !== 'external') {
          await this.d.resync(node);
          await this.d.bulkSend(node);
        }
        if (cache !== 'internal') await this.d.requestResync(node);
        return {};
      }
      case 'resync': {
        this.logFault(kind, `resync with the kernel on ${node.id}`);
        say(`  ${node.id}: ${await this.d.resync(node)}`);
        return {};
      }
      default:
        throw new Error(`no fault ${kind}`);
    }
  }

  async relaySet(duplicatePct, reorderPct) {
    const id = Date.now();
    for (const relay of this.relays) {
      relay.send({ op: 'set', id, duplicatePct, reorderPct });
      await relay.next((e) => e.ev === 'set' && e.id === id, 10_000);
    }
  }

  async activeChannels() {
    return Promise.all(this.nodes.map((x) => this.d.activeChannel(x)));
  }

  /** The overrun count of a node just continued: it may need a moment to answer. */
  async waitOverruns(node) {
    for (let k = 0; k < 20; k++) {
      const n = await this.d.overruns(node).catch(() => undefined);
      if (n !== undefined) return n;
      await sleep(500);
    }
    return 0;
  }

  /**
   * A commit (or failover primary, whose first step is one) on a node while
   * the workload runs: afterwards the node's kernel must hold every peer
   * entry that its external cache held, unchanged, before and after. Then
   * the copies are removed from its kernel so that each connection has one
   * owner again; after a failover the peers send their tables again (what
   * an operator does when the old primary returns).
   */
  async commitAndCheck(node, act) {
    // Entries their origin changed from shortly before this dump on (the
    // change may still be on its way) until the kernel is read: the commit
    // may have written either version, so they are not judged.
    const since = Date.now() - 5000;
    const before = await this.d.dump(node, 'external');
    const problems = await act();
    const kernel = new Map((await node.link.list()).map((e) => [keyOf(entryToJson(e)), e]));
    const owners = new Map(this.nodes.map((x) => [x.id, x]));
    let checked = 0;
    let missing = 0;
    const samples = [];
    for (const e of before) {
      const k = keyOf(e);
      if ((owners.get(e.origin)?.touched.get(k) ?? 0) >= since) continue;
      checked++;
      const got = kernel.get(k);
      // conntrackd's -e shows no status: compared where the dump has it.
      const statusDiffers = e.status !== undefined && (got?.status & PEER_STATUS_BITS) !== (e.status & PEER_STATUS_BITS);
      if (!got || (got.mark ?? 0) !== e.mark || statusDiffers) {
        missing++;
        if (samples.length < 5) samples.push(`${k} (${got ? 'different' : 'absent'})`);
      }
    }
    say(`  ${node.id}: kernel holds ${checked - missing} of ${checked} committed entries`);
    // Each entry the kernel lacks counts; the line shows a few.
    if (missing > 0) problems.push(`${node.id}'s kernel lacks ${missing} of ${checked} committed entries: ${samples.join('; ')}`);
    await this.removeCopies(node, [...kernel.values()].filter((e) => !ownedBy(node.i, e)), problems);
    return { problems, commitMissing: missing, failoverNode: node };
  }

  /**
   * Deletes the committed copies from a node's kernel, a few at a time: each
   * delete is an event for the node's deliberately small event socket, and
   * an overrun there would have the node resync with a kernel that still
   * holds copies not deleted yet, adopt them as its own, replicate them and
   * then delete them, which takes the true owner's record away from the
   * other nodes (one record per key; RELIABILITY.md, finding 1). Should an
   * overrun happen anyway, the owners send their tables again, and it is said.
   */
  async removeCopies(node, copies, problems) {
    if (copies.length === 0) return;
    const before = await this.d.overruns(node);
    const failures = {};
    for (let k = 0; k < copies.length; k += 32) {
      const res = await node.link.batch(copies.slice(k, k + 32).map((entry) => ({ op: 'delete', entry })));
      for (const [name, n] of Object.entries(res.failures)) if (name !== 'ENOENT') failures[name] = (failures[name] ?? 0) + n;
      await sleep(30);
    }
    if (Object.keys(failures).length > 0) problems.push(`removing the copies from ${node.id}: ${JSON.stringify(failures)}`);
    const overruns = (await this.d.overruns(node)) - before;
    if (overruns > 0) {
      say(`  removing ${copies.length} copies overran ${node.id}'s event socket: the owners send their tables again`);
      this.notes.push(`${stamp()} removing copies overran ${node.id}`);
      for (const x of this.nodes) if (x !== node) await this.d.bulkSend(x);
    }
  }

  /**
   * After a failover primary and its copies removed: the node asks its peers
   * for their tables again (its external cache was flushed), and they send
   * them (records a message of the new primary had taken over were deleted
   * with the copies). Not `failover backup`: that hands every forwarded
   * connection to the new primary (purge-timeout shortens them to
   * purgeTimeoutSeconds and drops them from the internal cache), and here
   * every node forwards its own workload.
   */
  async afterFailover(node) {
    await this.waitFor(async () => {
      const internal = await this.d.dump(node, 'internal');
      return internal.every((e) => ownedBy(node.i, { orig: { src: e.src } }));
    }, `${node.id} forgot its peers' connections`);
    await this.d.requestResync(node);
    for (const x of this.nodes) if (x !== node) await this.d.bulkSend(x);
    return [];
  }

  async waitFor(cond, what, timeoutMs = QUIET_MS) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await cond().catch(() => false)) return true;
      await sleep(500);
    }
    say(`  timed out waiting: ${what}`);
    return false;
  }

  // --- invariants ------------------------------------------------------------

  /**
   * Waits (bounded) until the cluster is quiet and every invariant holds;
   * at the deadline, records what still does not.
   */
  async check(label) {
    this.checks++;
    const started = Date.now();
    const deadline = started + QUIET_MS;
    let last;
    let waitedFor;
    for (let round = 0; ; round++) {
      last = await this.evaluate();
      if (last.ok || Date.now() > deadline) break;
      waitedFor = [...last.problems, ...last.resurrected].slice(0, 3).map((x) => x.slice(0, 160));
      await sleep(round < 5 ? 500 : 1000);
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const sizes = last.sizes.map((s) => `${s.id} ${s.internal}/${s.external}`).join(', ');
    if (last.ok) {
      say(`check #${this.checks} (${label}) ok after ${secs} s: internal/external ${sizes}`);
      // What a slow quiet waited for, last: the log says why a check took long.
      if (Date.now() - started > 10_000 && waitedFor) say(`  waited for: ${waitedFor.join('; ')}`);
      return;
    }
    this.mismatches += last.mismatches;
    this.lostEntries += last.lost;
    this.resurrected += last.resurrected.length;
    const detail = [...last.problems, ...last.resurrected.slice(0, 10)];
    this.failures.push({ check: this.checks, label, detail });
    this.faultLog.push(`${stamp()} check #${this.checks} (${label}) FAILED: ${detail.join('; ')}`);
    say(`check #${this.checks} (${label}) FAILED after ${secs} s: ${sizes}`);
    for (const d of detail) say(`  ${d}`);
  }

  /** One look at every node: peers, queues, caches, kernels, the delete ledger. */
  async evaluate() {
    const problems = [];
    const internals = new Map();
    const externals = new Map();
    const kernels = new Map();
    const sizes = [];
    for (const x of this.nodes) {
      if (!this.alive(x)) {
        problems.push(`${x.id} is not running: ${this.logTail(x, 500)}`);
        continue;
      }
      const health = await this.d.health(x, this.nodes.filter((y) => y !== x)).catch((e) => ({ problems: [`${x.id} stats: ${e.message}`] }));
      problems.push(...health.problems);
      // Dumped one node at a time, each cache after the other: with the
      // workload paused and the queues empty nothing moves in between.
      const p = this.d.project;
      const dumps = await Promise.all([this.d.dump(x, 'internal'), this.d.dump(x, 'external'), x.link.list()]).catch((e) => e);
      if (dumps instanceof Error) {
        problems.push(`${x.id} dumps: ${dumps.message}`);
        continue;
      }
      internals.set(x.id, dumps[0].map(p));
      externals.set(x.id, dumps[1].map((e) => ({ ...p(e), origin: e.origin })));
      kernels.set(x.id, dumps[2].map((e) => p(entryToJson(e))));
      sizes.push({ id: x.id, internal: internals.get(x.id).length, external: externals.get(x.id).length });
    }
    let mismatches = 0;
    let lost = 0;
    for (const x of this.nodes) {
      if (!kernels.has(x.id)) continue;
      const k = compareKernel(kernels.get(x.id), internals.get(x.id));
      const bad = k.missing + k.different + k.extra;
      if (bad > 0) problems.push(`${x.id} internal vs kernel: ${k.missing} missing, ${k.different} different, ${k.extra} extra: ${k.samples.join('; ')}`);
      mismatches += k.different + k.extra;
      lost += k.missing;
      // The workload's own view: each entry it holds live is in its node's kernel.
      const inKernel = new Set(kernels.get(x.id).map(keyOf));
      const gone = [...x.live.keys()].filter((j) => !inKernel.has(keyOf(entryToJson(workloadEntry(x.i, j, 0)))));
      if (gone.length > 0) problems.push(`${x.id}'s kernel lost ${gone.length} workload entries`);
    }
    for (const r of compareReplicas(internals, externals, PEER_STATUS_BITS)) {
      if (r.lost + r.different + r.extra + r.duplicates === 0) continue;
      problems.push(`${r.viewer} external: ${r.lost} lost, ${r.different} different, ${r.extra} extra: ${r.samples.join('; ')}`);
      mismatches += r.different + r.extra + r.duplicates;
      lost += r.lost;
    }
    const deleted = new Map(this.nodes.map((x) => [x.id, x.deleted]));
    const resurrected = findResurrected(deleted, kernels, internals, externals);
    return { ok: problems.length === 0 && resurrected.length === 0, problems, mismatches, lost, resurrected, sizes };
  }

  // --- resources -------------------------------------------------------------

  async sample() {
    const at = Date.now();
    for (const x of this.nodes) {
      if (!this.alive(x)) continue;
      let rss;
      let fds;
      try {
        rss = procSample(x.proc.pid).rss / MiB;
        fds = readdirSync(`/proc/${x.proc.pid}/fd`).length;
      } catch {
        continue;
      }
      const st = await this.d.health(x, []).catch(() => undefined);
      this.samples.push({
        at,
        id: x.id,
        start: x.starts,
        startedAt: x.startedAt,
        rss,
        fds,
        sendQueue: st?.sendQueue,
        resendQueue: st?.resendQueue,
      });
    }
  }

  async sampleLoop(stopAt) {
    while (Date.now() < stopAt && !this.stopping) {
      await this.sample().catch((e) => say(`sample: ${e.message}`));
      const until = Math.min(stopAt, Date.now() + SAMPLE_EVERY_MS);
      while (Date.now() < until && !this.stopping) await sleep(250);
    }
  }

  /**
   * RSS, descriptors and queues over the run. A slope is fitted per daemon
   * process over its samples from its third minute on (V8's heap and the
   * caches fill before that), for processes with at least five minutes of
   * such samples, and the largest is reported; a shorter run has none
   * (null). Queue lengths are sampled with the faults running, so their
   * slope says little: their maximum does.
   */
  resources() {
    const byProc = new Map();
    for (const s of this.samples) {
      const k = `${s.id}#${s.start}`;
      if (!byProc.has(k)) byProc.set(k, []);
      byProc.get(k).push(s);
    }
    const fitted = (xs, field) => {
      const use = xs.filter((s) => s.at - s.startedAt >= 120_000 && typeof s[field] === 'number');
      if (use.length < 2 || use[use.length - 1].at - use[0].at < 300_000) return undefined;
      return slope(use.map((s) => s.at / 3_600_000), use.map((s) => s[field]));
    };
    const worst = (field) => {
      let max;
      for (const xs of byProc.values()) {
        const m = fitted(xs, field);
        if (m !== undefined && (max === undefined || m > max)) max = m;
      }
      return max;
    };
    // A process restarted late fits its slope over its warm-up; the one that
    // ran longest says more about a leak: its slope, and for how long.
    let longest;
    for (const xs of byProc.values()) {
      const span = xs[xs.length - 1].at - xs[0].at;
      if (longest === undefined || span > longest.span) longest = { span, xs };
    }
    const meanAt = (at) => {
      const xs = this.samples.filter((s) => s.at === at);
      return xs.reduce((a, s) => a + s.rss, 0) / Math.max(1, xs.length);
    };
    const first = this.samples[0]?.at;
    const last = this.samples[this.samples.length - 1]?.at;
    const round = (x, d = 1) => (x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);
    return {
      rssStartMiB: round(first === undefined ? undefined : meanAt(first)),
      rssEndMiB: round(last === undefined ? undefined : meanAt(last)),
      rssSlopeMiBPerHour: round(worst('rss')),
      rssSlopeLongestLived:
        longest === undefined
          ? null
          : {
              node: longest.xs[0].id,
              minutes: round(longest.span / 60_000),
              miBPerHour: round(fitted(longest.xs, 'rss')),
            },
      fdMax: this.samples.reduce((a, s) => Math.max(a, s.fds), 0),
      sendQueueMax: this.samples.reduce((a, s) => Math.max(a, s.sendQueue ?? 0), 0),
      resendQueueMax: this.samples.reduce((a, s) => Math.max(a, s.resendQueue ?? 0), 0),
      sendQueueSlopePerHour: round(worst('sendQueue')),
      resendQueueSlopePerHour: round(worst('resendQueue')),
      fdSlopePerHour: round(worst('fds')),
    };
  }

  // --- the run ---------------------------------------------------------------

  async run() {
    const { minutes, seed, nodes, rate } = this.opts;
    say(`soak: ${this.d.name}, ${nodes} nodes, ${minutes} min, seed ${seed}, ${rate} ops/s; files in ${this.dir}`);
    await this.setup();
    for (const x of this.nodes) this.start(x);
    for (const x of this.nodes) await this.waitReady(x);
    this.startFlows();
    const endAt = t0 + minutes * 60_000;
    const loops = [this.workloadLoop(endAt + QUIET_MS * 3), this.sampleLoop(endAt + QUIET_MS * 3)];
    this.resumeLoad();
    await sleep(3000);
    await this.pauseLoad();
    await this.check('start');
    this.findings = [];
    // A fault takes up to 20 s: none starts in the last 15 s, so the run ends near its time.
    while (Date.now() < endAt - 15_000) {
      this.resumeLoad();
      await sleep(this.faultRand.int(2, 6) * 1000);
      const kind = this.nextKind();
      let out;
      try {
        out = await this.runFault(kind);
      } catch (e) {
        out = { problems: [`${kind} could not be run: ${e.message}`] };
      }
      await this.pauseLoad();
      const problems = [...(out.problems ?? [])];
      if (kind === 'failover' && out.failoverNode) problems.push(...(await this.afterFailover(out.failoverNode)));
      // A commit's missing entries count one each (their line is one problem of them).
      this.mismatches += Math.max(0, (out.commitMissing ?? 0) - 1);
      for (const id of out.noOverrun ?? []) this.findings.push(`overrun burst on ${id} reported no overrun`);
      for (const id of out.backupNotTaken ?? []) problems.push(`${id} kept sending on the main link while it was down`);
      if (problems.length > 0) {
        this.mismatches += problems.length;
        this.failures.push({ check: this.checks + 1, label: kind, detail: problems });
        this.faultLog.push(`${stamp()} ${kind} FAILED: ${problems.join('; ')}`);
        for (const p of problems) say(`  ${p}`);
      }
      await this.check(`after ${kind}`);
    }
    // The TCP flows crossed the NAT node through everything: still alive?
    this.client.send({ op: 'status', id: 1 });
    const status = await this.client.next((e) => e.ev === 'status', 10_000).catch(() => undefined);
    const flows = status?.conns ?? [];
    const broken = flows.filter((c) => !c.connected || c.error || c.closed || c.gaps > 0);
    say(`TCP flows through ${this.nodes[0].id}: ${flows.length - broken.length} of ${flows.length} alive and gap-free`);
    if (flows.length === 0 || broken.length > 0) this.findings.push(`TCP flows through fw1: ${broken.length} of ${flows.length} broken`);
    this.stopping = true;
    await Promise.all(loops);
    const res = this.resources();
    say(
      `workload: ${this.load.creates} creates, ${this.load.updates} updates, ${this.load.deletes} deletes, ${this.load.errors} errors ${this.load.errorSamples.join('; ')}`,
    );
    say(
      `resources: send queue max ${res.sendQueueMax} (slope ${res.sendQueueSlopePerHour}/h), resend queue max ${res.resendQueueMax} (slope ${res.resendQueueSlopePerHour}/h), fds slope ${res.fdSlopePerHour}/h, RSS slope ${res.rssSlopeMiBPerHour} MiB/h at worst, ${res.rssSlopeLongestLived?.miBPerHour ?? null} MiB/h for the longest-lived process (${res.rssSlopeLongestLived?.node ?? '-'}, ${res.rssSlopeLongestLived?.minutes ?? 0} min)`,
    );
    for (const f of this.findings) say(`finding: ${f}`);
    for (const x of this.notes) say(`note: ${x}`);
    const ok =
      this.failures.length === 0 && this.mismatches === 0 && this.lostEntries === 0 && this.resurrected === 0 && this.load.errors === 0;
    const result = {
      ok,
      seed,
      nodes,
      minutes,
      faults: this.faults,
      checks: this.checks,
      mismatches: this.mismatches,
      lostEntries: this.lostEntries,
      resurrected: this.resurrected,
      rssStartMiB: res.rssStartMiB,
      rssEndMiB: res.rssEndMiB,
      rssSlopeMiBPerHour: res.rssSlopeMiBPerHour,
      rssSlopeLongestLived: res.rssSlopeLongestLived,
      fdMax: res.fdMax,
    };
    return result;
  }

  async shutdown() {
    this.stopping = true;
    for (const x of this.nodes) {
      if (this.alive(x)) x.proc.kill('SIGCONT');
      await this.kill(x, 'SIGTERM').catch(() => undefined);
    }
    for (const c of this.children) {
      c.child.stdin.end();
      runCleanup(c.handle);
    }
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) usage('needs root (network namespaces)');
  const soak = new Soak(opts);
  let result;
  let error;
  try {
    result = await soak.run();
  } catch (e) {
    error = e;
  }
  await soak.shutdown();
  if (error || !result?.ok) {
    console.log(`\nsoak FAILED, seed ${opts.seed}${error ? `: ${error.stack ?? error}` : ''}`);
    console.log('fault log:');
    for (const l of soak.faultLog) console.log(`  ${l}`);
    console.log(
      `repeat: npm run soak -- --nodes ${opts.nodes} --minutes ${opts.minutes} --seed ${opts.seed} --rate ${opts.rate} --daemon ${opts.daemon}`,
    );
    console.log(`daemon logs kept in ${soak.dir}`);
  } else {
    rmSync(soak.dir, { recursive: true, force: true });
  }
  const line = result ?? {
    ok: false,
    seed: opts.seed,
    nodes: opts.nodes,
    minutes: opts.minutes,
    faults: soak.faults,
    checks: soak.checks,
    mismatches: soak.mismatches,
    lostEntries: soak.lostEntries,
    resurrected: soak.resurrected,
    ...(({ rssStartMiB, rssEndMiB, rssSlopeMiBPerHour, rssSlopeLongestLived, fdMax }) => ({
      rssStartMiB,
      rssEndMiB,
      rssSlopeMiBPerHour,
      rssSlopeLongestLived,
      fdMax,
    }))(soak.resources()),
  };
  console.log(JSON.stringify(line));
  process.exitCode = line.ok ? 0 : 1;
}

await main();
