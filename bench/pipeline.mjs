#!/usr/bin/env node
// The replication pipeline in one process, without a kernel or a network:
// fw1 and fw2 are real Daemons on FakeKernels joined by an in-memory link.
// N NEW events for established TCP connections, encoded beforehand as the
// kernel sends them, are fed to fw1's event socket in batches of 1000 (as
// recvBatch hands them over), and the run ends when fw2's external cache
// holds all N. The CPU per entry is then ctsyncd's own event → cache → wire →
// peer cache path, both nodes together. A development instrument for
// `node --cpu-prof bench/pipeline.mjs`; the same-run comparison with
// conntrackd is bench/run.mjs. Needs no root.
//
//   node bench/pipeline.mjs [N=100000] [--rounds 3] [--resync]
import { parseConfig } from '../dist/config/load.js';
import { Daemon } from '../dist/daemon.js';
import { encodeConntrack } from '../dist/kernel/ct-codec.js';
import { FakeKernel } from '../dist/kernel/fake-kernel.js';
import { NlWriter } from '../dist/kernel/netlink-codec.js';

const args = process.argv.slice(2);
const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 100_000);
const roundsIdx = args.indexOf('--rounds');
const rounds = roundsIdx >= 0 ? Number(args[roundsIdx + 1]) : 3;
const resync = args.includes('--resync');
const CHUNK = 1000;

const quiet = { debug() {}, info() {}, warn() {}, error() {}, child() { return quiet; } };

class PairChannel {
  kind = 'udp';
  interfaceName = undefined;
  counters = { datagramsSent: 0, datagramsReceived: 0, bytesSent: 0, bytesReceived: 0, sendErrors: 0, receiveErrors: 0 };
  peer = undefined;
  listeners = [];
  queue = [];
  scheduled = false;
  constructor(name, address) {
    this.name = name;
    this.address = address;
  }
  async start() {}
  send(d) {
    this.counters.datagramsSent++;
    this.counters.bytesSent += d.length;
    const p = this.peer;
    if (!p) return;
    // A copy, as a socket would deliver, and asynchronously, in batches per loop turn.
    p.queue.push(Buffer.from(d));
    if (!p.scheduled) {
      p.scheduled = true;
      setImmediate(() => p.deliver());
    }
  }
  deliver() {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    for (const d of q) {
      this.counters.datagramsReceived++;
      this.counters.bytesReceived += d.length;
      for (const l of this.listeners) l(d, { address: this.peer.address, port: 3780 });
    }
  }
  onDatagram(cb) {
    this.listeners.push(cb);
  }
  isLinkUp() {
    return true;
  }
  async close() {}
}

function config(id) {
  return parseConfig(
    [
      `node: { id: ${id} }`,
      'cluster: { id: 7 }',
      'sync:',
      '  mode: ftfw',
      '  transport: udp',
      `  udp: { bind: 10.99.250.${id === 'fw1' ? 1 : 2}, peers: [10.99.250.${id === 'fw1' ? 2 : 1}] }`,
      '  auth: none',
      '  reliability: { startupSyncWaitMs: 50 }',
      `cache: { internalLimit: ${2 * n}, externalLimit: ${2 * n} }`,
      'metrics: { enabled: false }',
      '',
    ].join('\n'),
    `${id}.yaml`,
  );
}

function tcp(i) {
  const src = `10.99.${(i >> 16) & 127}.${(i >> 8) & 255}`;
  const sport = 1024 + (i & 255) * 200 + ((i >> 23) & 127);
  return {
    family: 2,
    orig: { src, dst: '10.99.200.1', proto: 6, sport, dport: 443 },
    reply: { src: '10.99.200.1', dst: src, proto: 6, sport: 443, dport: sport },
    status: 0x18e, // SEEN_REPLY | ASSURED | CONFIRMED | SRC_NAT_DONE | DST_NAT_DONE
    timeout: 432000,
    protoinfo: { tcp: { state: 3, wscaleOrig: 7, wscaleReply: 7, flagsOrig: { flags: 0x23, mask: 0x23 }, flagsReply: { flags: 0x23, mask: 0x23 } } },
  };
}

const entries = Array.from({ length: n }, (_, i) => tcp(i));
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const tick = () => new Promise((r) => setImmediate(r));

async function until(cond, what, ms = 120_000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** NEW events as the kernel multicasts them, CHUNK messages per buffer. */
function encodeEvents() {
  const chunks = [];
  for (let i = 0; i < n; i += CHUNK) {
    const w = new NlWriter(CHUNK * 256);
    for (let j = i; j < Math.min(n, i + CHUNK); j++) {
      w.begin((1 << 8) | 0, 0x400 | 0x200, 0, 2); // CT_NEW, NLM_F_CREATE | NLM_F_EXCL
      encodeConntrack(w, entries[j], { readOnly: true });
      w.end();
    }
    chunks.push(Buffer.from(w.finish()));
  }
  return chunks;
}

async function round() {
  const a = new PairChannel('sync0', '10.99.250.1');
  const b = new PairChannel('sync0', '10.99.250.2');
  a.peer = b;
  b.peer = a;
  const k1 = new FakeKernel();
  const k2 = new FakeKernel();
  const common = { noControl: true, noMetrics: true, log: quiet };
  let events;
  const open1 = (o) => {
    const sock = k1.openSocket(o);
    if (o?.groups?.length) events = sock;
    return sock;
  };
  const fw1 = new Daemon(config('fw1'), { ...common, kernelTransport: open1, channels: [a], localAddresses: ['10.99.250.1'] });
  let fw2 = new Daemon(config('fw2'), { ...common, kernelTransport: k2.openSocket, channels: [b], localAddresses: ['10.99.250.2'] });
  await fw1.start();
  await fw2.start();
  await until(() => fw1.statsSnapshot().sync.inSync && fw2.statsSnapshot().sync.inSync, 'both in sync', 10_000);
  const ext = () => fw2.statsSnapshot().external.entries;
  const c0 = cpu();
  const t0 = performance.now();
  for (const chunk of eventChunks) {
    events.receiver.onData(chunk, 0, chunk.length);
    await tick();
  }
  await until(() => ext() >= n, 'fw2 holds all');
  const replS = (performance.now() - t0) / 1000;
  const replCpu = cpu() - c0;
  let resyncS;
  let resyncCpu;
  if (resync) {
    await fw2.stop();
    const b2 = new PairChannel('sync0', '10.99.250.2');
    a.peer = b2;
    b2.peer = a;
    const c1 = cpu();
    const t1 = performance.now();
    fw2 = new Daemon(config('fw2'), { ...common, kernelTransport: new FakeKernel().openSocket, channels: [b2], localAddresses: ['10.99.250.2'] });
    await fw2.start();
    await until(() => fw2.statsSnapshot().external.entries >= n, 'resync');
    resyncS = (performance.now() - t1) / 1000;
    resyncCpu = cpu() - c1;
  }
  const heapMB = process.memoryUsage().heapUsed / 2 ** 20;
  await fw1.stop();
  await fw2.stop();
  return { replS, replCpu, resyncS, resyncCpu, heapMB };
}

const { threadCpu } = process.env.THREADS ? await import('/tmp/st/threads.mjs') : { threadCpu: () => ({}) };
const eventChunks = encodeEvents();
console.log(`N=${n}: ${eventChunks.length} event batches, ${eventChunks.reduce((a, c) => a + c.length, 0) / n} B/event`);
for (let r = 0; r < rounds; r++) {
  const th0 = threadCpu();
  const x = await round();
  const th1 = threadCpu();
  if (process.env.THREADS) console.log(Object.fromEntries(Object.entries(th1).map(([k, v]) => [k, +(v - (th0[k] ?? 0)).toFixed(2)])));
  let line = `round ${r + 1}: replication ${x.replS.toFixed(3)} s, CPU ${((x.replCpu / n) * 1e6).toFixed(2)} µs/entry (both nodes), heap ${x.heapMB.toFixed(0)} MB`;
  if (resync) line += `; resync ${x.resyncS.toFixed(3)} s, ${((x.resyncCpu / n) * 1e6).toFixed(2)} µs/entry`;
  console.log(line);
}
