// Deterministic simulation of a ctsyncd cluster: real SyncNodes, real wire
// encoding and real external caches, on a fake clock and a simulated
// multicast network (seeded PRNG; per-receiver latency, loss, duplication,
// partitions). Each node has a "kernel table" Map that feeds localChange()
// and backs lookup()/localKeys(). Every scenario ends only when every node's
// external cache holds, for each origin, exactly that origin's table.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { type ConntrackEntry, entryKey } from '../../src/kernel/entry.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { ANSWER_INTERVAL_MS, CHALLENGE_INTERVAL_MS } from '../../src/sync/engine/freshness.js';
import type { ReliabilityConfig } from '../../src/sync/engine/reliability.js';
import { seqDiff } from '../../src/sync/engine/seq.js';
import type { SyncModeName } from '../../src/sync/engine/sync-mode.js';
import { syncModes } from '../../src/sync/engine/sync-modes.js';
import { type SyncCounters, type SyncMode, SyncNode } from '../../src/sync/engine/sync-node.js';
import { mulberry32 } from './prng.js';

const CLUSTER = 7;
const TICK_MS = 20;
/** Simulated CPU time of one transmit flush slice. */
const FLUSH_DELAY_MS = 0.02;

// ---------------------------------------------------------------------------
// Deterministic plumbing: the event queue (the PRNG is in prng.ts).

interface SimEvent {
  t: number;
  n: number;
  fn: () => void;
}

/** Binary min-heap on (time, insertion order): same-time events run first-in first-out. */
class EventQueue {
  private readonly h: SimEvent[] = [];
  private n = 0;

  get size(): number {
    return this.h.length;
  }

  push(t: number, fn: () => void): void {
    const h = this.h;
    h.push({ t, n: this.n++, fn });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): SimEvent | undefined {
    const h = this.h;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  private less(a: SimEvent, b: SimEvent): boolean {
    return a.t < b.t || (a.t === b.t && a.n < b.n);
  }
}

function debugLogger(id: string, sim: { now: number }): Logger {
  const emit = (level: string) => (msg: string, ctx?: Record<string, unknown>) =>
    console.log(`${sim.now.toFixed(2)} ${id} ${level} ${msg} ${JSON.stringify(ctx ?? {})}`);
  const l: Logger = {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: () => l,
  };
  return l;
}

// ---------------------------------------------------------------------------
// The simulated cluster.

interface NetConfig {
  /** One-way latency, uniform in [min, max] ms, drawn per datagram and receiver (so max > min reorders). */
  latencyMs: [number, number];
  /** Probability that a datagram is lost on its way to one receiver. */
  loss: number;
  /** Probability that a delivered datagram is delivered a second time (with its own latency). */
  dup: number;
}

interface NodeOptions {
  mode: SyncMode;
  cfg: ReliabilityConfig;
  firstSeq?: number;
  maxSeqsPerEpoch?: number;
}

class SimNode {
  readonly kernel = new Map<string, ConntrackEntry>();
  readonly versions = new Map<string, number>();
  external!: ExternalCache;
  sync!: SyncNode;
  /** Datagrams this node has put on the wire (all incarnations). */
  sent = 0;
  /** The daemon is stopped: nothing is delivered to it and kernel changes are not announced. */
  down = false;
  private dumping = false;
  /** Counters of previous incarnations, so totals survive a restart. */
  readonly previous: SyncCounters[] = [];
  /** Epoch of every incarnation, oldest first. */
  readonly epochs: number[] = [];

  constructor(
    readonly sim: Sim,
    readonly id: string,
    readonly idx: number,
    readonly opts: NodeOptions,
  ) {}

  boot(): void {
    const sim = this.sim;
    this.external = new ExternalCache({ limit: 1_000_000, now: () => sim.now });
    // Epochs only increase, as the daemon's epoch store makes them (src/sync/engine/epoch.ts).
    const epoch = sim.takeEpoch();
    this.epochs.push(epoch);
    const firstSeq = this.opts.firstSeq ?? Math.floor(sim.rng() * 0x1_0000_0000);
    const sync = new SyncNode({
      nodeId: this.id,
      cluster: CLUSTER,
      epoch,
      mtu: 1472,
      mode: this.opts.mode,
      external: this.external,
      lookup: (key) => this.kernel.get(String(key)),
      localKeys: () => this.kernel.keys(),
      send: (buf) => {
        this.sent++;
        sim.broadcast(this, buf);
      },
      now: () => sim.now,
      schedule: (fn) => sim.at(sim.now + FLUSH_DELAY_MS, fn),
      log: process.env.SIM_DEBUG === this.id ? debugLogger(this.id, sim) : silentLogger,
      timers: this.opts.cfg,
      localReady: () => !this.dumping,
      firstSeq,
      nextEpoch: () => sim.takeEpoch(),
      maxSeqsPerEpoch: this.opts.maxSeqsPerEpoch,
      random: () => Math.floor(sim.rng() * 0x1_0000_0000),
    });
    this.sync = sync;
    this.down = false;
    sync.start();
    const loop = (): void => {
      if (this.sync !== sync || this.down) return;
      sync.tick();
      sim.at(sim.now + TICK_MS, loop);
    };
    sim.at(sim.now + TICK_MS / 2 + this.idx * 7, loop);
  }

  /** The daemon stops: in-flight datagrams to it are lost, its kernel keeps changing unannounced. */
  crash(): void {
    this.previous.push(this.sync.stats().counters);
    this.sync.close();
    this.down = true;
  }

  /** A new daemon (new epoch, empty external cache) dumps the kernel table and announces it, 2000 entries per ms. */
  restart(): void {
    this.boot();
    this.dumping = true;
    const keys = [...this.kernel.keys()];
    const sync = this.sync;
    let i = 0;
    const step = (): void => {
      if (this.sync !== sync) return;
      for (let k = 0; k < 2000 && i < keys.length; k++, i++) {
        if (this.kernel.has(keys[i]!)) sync.localChange(keys[i]!, 'new');
      }
      if (i < keys.length) this.sim.at(this.sim.now + 1, step);
      else this.dumping = false;
    };
    step();
  }

  create(i: number): void {
    const e = makeEntry(this.idx, i, 0);
    const key = entryKey(e);
    const existed = this.kernel.has(key);
    const v = (this.versions.get(key) ?? -1) + 1;
    this.versions.set(key, v);
    const entry = makeEntry(this.idx, i, v);
    this.kernel.set(key, entry);
    if (!this.down) this.sync.localChange(key, existed ? 'update' : 'new');
  }

  update(key: string): void {
    const cur = this.kernel.get(key);
    if (cur === undefined) return;
    const v = (this.versions.get(key) ?? 0) + 1;
    this.versions.set(key, v);
    // Never mutate a table entry in place: the sender keeps references to what it sent.
    this.kernel.set(key, withVersion(cur, v));
    if (!this.down) this.sync.localChange(key, 'update');
  }

  remove(key: string): void {
    const cur = this.kernel.get(key);
    if (cur === undefined) return;
    this.kernel.delete(key);
    if (!this.down) this.sync.localChange(key, 'delete', cur);
  }

  /** Counters summed over every incarnation of this node. */
  totals(): SyncCounters {
    const now = this.sync.stats().counters;
    const out = { ...now };
    for (const p of this.previous) {
      for (const k of Object.keys(out) as (keyof SyncCounters)[]) {
        const v = p[k];
        if (typeof v === 'number') (out as unknown as Record<string, number>)[k] = (out[k] as number) + v;
      }
    }
    return out;
  }
}

class Sim {
  now = 0;
  readonly rng: () => number;
  readonly events = new EventQueue();
  readonly nodes: SimNode[] = [];
  net: NetConfig;
  /** Directed links that drop everything: "from>to". */
  readonly cut = new Set<string>();
  /** Return true to drop the n-th datagram (0-based, per sender) from a node to a receiver. */
  dropHook: ((from: SimNode, to: SimNode, n: number) => boolean) | undefined;
  datagrams = 0;
  eventsRun = 0;
  /** The last epoch any node took: every node's clock and epoch store in one. */
  private epochClock: number;

  constructor(seed: number, net: NetConfig) {
    this.rng = mulberry32(seed);
    this.net = net;
    this.epochClock = 1_700_000_000 + Math.floor(this.rng() * 1_000_000);
  }

  takeEpoch(): number {
    this.epochClock += 1 + Math.floor(this.rng() * 3);
    return this.epochClock;
  }

  at(t: number, fn: () => void): void {
    this.events.push(t, fn);
  }

  broadcast(from: SimNode, buf: Buffer): void {
    const n = from.sent - 1;
    this.datagrams++;
    const { latencyMs, loss, dup } = this.net;
    for (const to of this.nodes) {
      if (to === from) continue;
      if (this.cut.has(`${from.id}>${to.id}`)) continue;
      if (this.dropHook?.(from, to, n)) continue;
      if (this.rng() < loss) continue;
      const copies = this.rng() < dup ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        const lat = latencyMs[0] + this.rng() * (latencyMs[1] - latencyMs[0]);
        this.at(this.now + lat, () => {
          if (!to.down) to.sync.receive(buf);
        });
      }
    }
  }

  /** Cuts (or heals) every link between node and the others, both ways. */
  isolate(node: SimNode, on: boolean): void {
    for (const other of this.nodes) {
      if (other === node) continue;
      for (const k of [`${node.id}>${other.id}`, `${other.id}>${node.id}`]) {
        if (on) this.cut.add(k);
        else this.cut.delete(k);
      }
    }
  }

  /** Runs events up to time `until` (or until stop() returns true, checked after every event). */
  run(until: number, stop?: () => boolean, maxEvents = 4_000_000): void {
    for (;;) {
      const e = this.events.pop();
      if (e === undefined) return;
      if (e.t > until) {
        this.events.push(e.t, e.fn);
        this.now = until;
        return;
      }
      this.now = e.t;
      e.fn();
      if (++this.eventsRun > maxEvents) throw new Error(`simulation exceeded ${maxEvents} events at t=${this.now}`);
      if (stop?.()) return;
    }
  }
}

// ---------------------------------------------------------------------------
// Entries and the convergence check.

function makeEntry(nodeIdx: number, i: number, version: number): ConntrackEntry {
  const src = `10.${nodeIdx + 1}.${(i >>> 8) & 0xff}.${i & 0xff}`;
  const sport = 20000 + (i % 40000);
  return {
    family: 2,
    orig: { src, dst: '198.51.100.20', proto: 6, sport, dport: 443 },
    reply: { src: '198.51.100.20', dst: src, proto: 6, sport: 443, dport: sport },
    status: 0x19e,
    timeout: 432000 - version,
    mark: version % 4,
    protoinfo: { tcp: { state: version % 2 === 0 ? 3 : 4 } },
  };
}

function withVersion(e: ConntrackEntry, version: number): ConntrackEntry {
  return {
    ...e,
    timeout: 432000 - version,
    mark: version % 4,
    protoinfo: { tcp: { state: version % 2 === 0 ? 3 : 4 } },
  };
}

/** Deep equality where an undefined field equals an absent one, so field order and compaction do not matter. */
function deepSame(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  const oa = a as Record<string, unknown>;
  const ob = b as Record<string, unknown>;
  let na = 0;
  for (const k in oa) {
    if (oa[k] === undefined) continue;
    na++;
    if (!deepSame(oa[k], ob[k])) return false;
  }
  let nb = 0;
  for (const k in ob) if (ob[k] !== undefined) nb++;
  return na === nb;
}

function cheapSame(a: ConntrackEntry, b: ConntrackEntry): boolean {
  return (
    a.timeout === b.timeout &&
    a.mark === b.mark &&
    a.status === b.status &&
    a.protoinfo?.tcp?.state === b.protoinfo?.tcp?.state
  );
}

/** Whether every live node's external cache mirrors every other node's table (cheap field comparison). */
function converged(sim: Sim): boolean {
  for (const n of sim.nodes) {
    if (n.down) return false;
    let expected = 0;
    const origins = n.external.origins();
    for (const o of sim.nodes) {
      if (o === n) continue;
      expected += o.kernel.size;
      if ((origins.get(o.id) ?? 0) !== o.kernel.size) return false;
    }
    if (n.external.size !== expected) return false;
  }
  const byId = new Map(sim.nodes.map((n) => [n.id, n]));
  for (const n of sim.nodes) {
    for (const [key, rec] of n.external.entries()) {
      const k = byId.get(rec.origin)?.kernel.get(key);
      if (k === undefined || !cheapSame(k, rec.entry)) return false;
    }
  }
  return true;
}

/** Every difference, compared field by field on the whole entry: empty when exactly equal. */
function exactDiff(sim: Sim): string[] {
  const problems: string[] = [];
  const byId = new Map(sim.nodes.map((n) => [n.id, n]));
  for (const n of sim.nodes) {
    for (const [key, rec] of n.external.entries()) {
      const origin = byId.get(rec.origin);
      if (origin === undefined || origin === n) problems.push(`${n.id}: record of unknown origin ${rec.origin}`);
      else {
        const k = origin.kernel.get(key);
        if (k === undefined) problems.push(`${n.id}: stale ${rec.origin} ${key}`);
        else if (!deepSame(k, rec.entry)) problems.push(`${n.id}: outdated ${rec.origin} ${key}`);
      }
    }
    for (const o of sim.nodes) {
      if (o === n) continue;
      for (const key of o.kernel.keys()) {
        const rec = n.external.get(o.kernel.get(key)!);
        if (rec === undefined || rec.origin !== o.id) problems.push(`${n.id}: missing ${o.id} ${key}`);
      }
    }
  }
  return problems.slice(0, 20);
}

// ---------------------------------------------------------------------------
// Workload and scenario runner.

const ENTRIES = 10_000;
/** Entries created per ms per node during the burst: 100k/s. */
const BURST_PER_MS = 100;

interface Workload {
  /** Creates ENTRIES entries per node from `start`, BURST_PER_MS per ms, then churn. */
  start: number;
  /** Updates per node after the burst. */
  updates: number;
  /** Deletes per node after the burst (some re-created later). */
  deletes: number;
}

/** Schedules the burst and the churn; returns the time of the last kernel change. */
function scheduleWorkload(sim: Sim, w: Workload): number {
  let last = w.start;
  for (const node of sim.nodes) {
    for (let i = 0; i < ENTRIES; i += BURST_PER_MS) {
      const t = w.start + i / BURST_PER_MS;
      sim.at(t, () => {
        for (let k = i; k < Math.min(i + BURST_PER_MS, ENTRIES); k++) node.create(k);
      });
      last = Math.max(last, t);
    }
    const churnStart = w.start + ENTRIES / BURST_PER_MS;
    const ops: Array<() => void> = [];
    for (let u = 0; u < w.updates; u++) {
      const i = Math.floor(sim.rng() * ENTRIES);
      ops.push(() => node.update(entryKey(makeEntry(node.idx, i, 0))));
    }
    for (let d = 0; d < w.deletes; d++) {
      const i = Math.floor(sim.rng() * ENTRIES);
      ops.push(() => node.remove(entryKey(makeEntry(node.idx, i, 0))));
      // A third of them come back as a new connection with the same tuple.
      if (d % 3 === 0) ops.push(() => node.create(i));
    }
    ops.forEach((op, k) => {
      const t = churnStart + k / 20;
      sim.at(t, op);
      last = Math.max(last, t);
    });
  }
  return last;
}

interface Scenario {
  name: string;
  seed: number;
  net?: Partial<NetConfig>;
  cfg?: Partial<ReliabilityConfig>;
  mode?: SyncMode;
  firstSeq?: number;
  maxSeqsPerEpoch?: number;
  workload?: Partial<Workload>;
  /** Extra events (partitions, restarts, drops); returns the time of its own last kernel change, if any. */
  setup?: (sim: Sim) => number | undefined;
  /** Simulated time to keep running after convergence before the final checks (ftfw). */
  settleMs?: number;
  maxTimeMs?: number;
}

interface Result {
  sim: Sim;
  /** Simulated time at convergence. */
  convergedAt: number;
  /** Time of the last kernel change. */
  lastChange: number;
  /** Datagrams on the wire up to convergence. */
  datagrams: number;
  totals: SyncCounters;
}

function runScenario(s: Scenario): Result {
  const net: NetConfig = { latencyMs: [0.2, 1.5], loss: 0, dup: 0, ...s.net };
  const sim = new Sim(s.seed, net);
  const cfg: ReliabilityConfig = { ...DEFAULTS.sync.reliability, ...s.cfg };
  const mode = s.mode ?? 'ftfw';
  for (const [idx, id] of ['fw-a', 'fw-b', 'fw-c'].entries()) {
    sim.nodes.push(new SimNode(sim, id, idx, { mode, cfg, firstSeq: s.firstSeq, maxSeqsPerEpoch: s.maxSeqsPerEpoch }));
  }
  const setupLast = s.setup?.(sim) ?? 0;
  // Every daemon starts at t=0 and the burst starts right away: no settle time.
  for (const n of sim.nodes) n.boot();
  const workEnd = scheduleWorkload(sim, { start: 0, updates: 2000, deletes: 1500, ...s.workload });
  const lastChange = Math.max(setupLast, workEnd);
  const maxTime = s.maxTimeMs ?? 60_000;
  let convergedAt = -1;
  let checkAt = lastChange;
  sim.run(maxTime, () => {
    if (sim.now < checkAt) return false;
    checkAt = sim.now + 10;
    if (!converged(sim)) return false;
    convergedAt = sim.now;
    return true;
  });
  const datagrams = sim.datagrams;
  if (convergedAt < 0) {
    if (process.env.SIM_DUMP) for (const n of sim.nodes) console.log(n.id, JSON.stringify(n.sync.stats(), null, 1));
    const diff = exactDiff(sim);
    throw new Error(`${s.name}: no convergence within ${maxTime} ms simulated; e.g. ${diff.join('; ')}`);
  }
  expect(exactDiff(sim)).toEqual([]);
  const totals = sim.nodes.map((n) => n.totals());
  const agg = totals.reduce((a, c) => {
    const out = { ...a };
    for (const k of Object.keys(c) as (keyof SyncCounters)[]) {
      if (typeof c[k] === 'number') (out as unknown as Record<string, number>)[k] = (a[k] as number) + (c[k] as number);
    }
    return out;
  });
  console.log(
    `[sim] ${s.name}: converged ${(convergedAt - lastChange).toFixed(1)} ms after the last change ` +
      `(t=${convergedAt.toFixed(1)} ms), ${datagrams} datagrams, ${agg.retransmits} retransmitted messages, ` +
      `${agg.nacksSent} NACKs, ${agg.acksSent} acks, ${agg.bulksSent} bulks, ${agg.resendOverflows} overflows, ` +
      `${agg.resyncsForGap} gap resyncs, ${sim.eventsRun} events`,
  );
  return { sim, convergedAt, lastChange, datagrams, totals: agg };
}

/**
 * ftfw: after convergence the cluster settles: still equal, every message
 * acked, every node in sync. Long enough for a retransmission timer at its
 * 2 s cap to fire twice, since a lost final ack is only repaired that way.
 */
function settle(r: Result, ms = 5000): void {
  const { sim } = r;
  sim.run(sim.now + ms);
  expect(exactDiff(sim)).toEqual([]);
  for (const n of sim.nodes) {
    const st = n.sync.stats();
    expect(st.resendQueue.length, `${n.id} resend queue`).toBe(0);
    expect(n.sync.inSync, `${n.id} inSync`).toBe(true);
    expect(n.sync.firstSyncDone, `${n.id} firstSyncDone`).toBe(true);
    for (const p of st.peers) {
      expect(p.state, `${n.id} sees ${p.id}`).toBe('up');
      expect(p.rx?.missing, `${n.id} misses messages of ${p.id}`).toBe(false);
    }
  }
}

describe('sync simulation: 3 nodes, 10,000 entries each, burst from t=0', () => {
  it('converges under 30% datagram loss', () => {
    const r = runScenario({ name: '30% loss', seed: 1, net: { loss: 0.3 } });
    expect(r.totals.nacksSent).toBeGreaterThan(100);
    expect(r.totals.retransmits).toBeGreaterThan(1000);
    expect(r.totals.gapsDetected).toBeGreaterThan(100);
    settle(r);
  });

  it('converges with heavy reordering', () => {
    const r = runScenario({ name: 'reordering', seed: 2, net: { latencyMs: [0.1, 25] } });
    // Out-of-order arrival is applied on arrival; only real gaps cost retransmissions.
    expect(r.totals.gapsDetected).toBeGreaterThan(100);
    settle(r);
  });

  it('converges with duplicated datagrams', () => {
    const r = runScenario({ name: 'duplication', seed: 3, net: { dup: 0.3, loss: 0.02 } });
    expect(r.totals.duplicates).toBeGreaterThan(1000);
    settle(r);
  });

  it('converges after a partition heals (peers go down and come back)', () => {
    let partitionEnd = 0;
    const r = runScenario({
      name: 'partition + heal',
      seed: 4,
      net: { loss: 0.01 },
      setup: (sim) => {
        const c = sim.nodes[2]!;
        sim.at(40, () => sim.isolate(c, true));
        partitionEnd = 40 + 6000;
        sim.at(partitionEnd, () => sim.isolate(c, false));
        return undefined;
      },
    });
    expect(r.convergedAt).toBeGreaterThan(partitionEnd);
    const a = r.sim.nodes[0]!.sync.stats();
    expect(a.peerCounters.downs).toBeGreaterThanOrEqual(1);
    expect(a.peers.find((p) => p.id === 'fw-c')?.state).toBe('up');
    settle(r);
  });

  it('converges when a peer restarts in the middle of the burst', () => {
    let restartAt = 0;
    const r = runScenario({
      name: 'peer restart mid-burst, 5% loss',
      seed: 5,
      net: { loss: 0.05, latencyMs: [0.2, 3] },
      setup: (sim) => {
        const b = sim.nodes[1]!;
        sim.at(55, () => b.crash());
        restartAt = 55 + 400;
        sim.at(restartAt, () => b.restart());
        return undefined;
      },
    });
    expect(r.convergedAt).toBeGreaterThan(restartAt);
    const [a, b, c] = r.sim.nodes.map((n) => n.sync.stats());
    expect(a!.peerCounters.restarts).toBe(1);
    expect(c!.peerCounters.restarts).toBe(1);
    expect(a!.counters.bulksWanted.restart + a!.counters.bulksWanted.hello).toBeGreaterThan(0);
    // fw-a and fw-c follow the new incarnation and dropped the old one's late datagrams, if any.
    const epochs = r.sim.nodes[1]!.epochs;
    expect(epochs.length).toBe(2);
    expect(epochs[1]).toBe(b!.epoch);
    expect(a!.peers.find((p) => p.id === 'fw-b')?.epoch).toBe(b!.epoch);
    settle(r);
    // The new incarnation got both peers' whole state in bulks.
    expect(r.sim.nodes[1]!.sync.stats().counters.bulksReceived).toBeGreaterThanOrEqual(2);
  });

  it('schedules bulks, never silent drops, when a tiny resend queue overflows during a partition', () => {
    const r = runScenario({
      name: 'resend-queue overflow',
      seed: 6,
      cfg: { resendQueueSize: 256 },
      setup: (sim) => {
        // Shorter than peerTimeoutMs: the peer stays up and holds the queue until it stalls.
        const c = sim.nodes[2]!;
        sim.at(20, () => sim.isolate(c, true));
        sim.at(2020, () => sim.isolate(c, false));
        return undefined;
      },
    });
    expect(r.totals.resendOverflows).toBeGreaterThan(0);
    expect(r.totals.resyncsForGap).toBeGreaterThan(0);
    for (const n of r.sim.nodes) expect(n.sync.stats().resendQueue.capacity).toBe(256);
    settle(r);
  });
});

describe('sync simulation: edge cases', () => {
  it('survives the sequence number wrapping past 2^32 during the run', () => {
    const firstSeq = 0xffff_ffff - 3000;
    const r = runScenario({ name: 'seq wrap', seed: 7, firstSeq, net: { loss: 0.05 } });
    for (const n of r.sim.nodes) {
      // Every node sent well past 2^32 - 1 and continued from 0.
      expect(n.sync.nextSeq).toBeLessThan(firstSeq);
      expect(seqDiff(firstSeq, n.sync.nextSeq)).toBeGreaterThan(10_000);
    }
    expect(r.totals.retransmits).toBeGreaterThan(0);
    settle(r);
  });

  // A rollover is not a restart: the stream goes on in the new epoch, gaps
  // of the old one are NACKed and resent in the new, and no bulk goes
  // either way. Epochs of 1000 seqs: several rollovers inside the first
  // bulks, under loss and reordering. (What a rollover costs: the new
  // epoch's datagrams are dropped until it is verified, one round trip,
  // and then NACKed; here 10x the retransmissions of the same run without
  // rollovers, every 1000 seqs. A real node rolls over every 2^30.)
  it('carries on across epoch rollovers under loss and reordering: no restart, no bulk for them', () => {
    const r = runScenario({
      name: 'rollovers',
      seed: 12,
      maxSeqsPerEpoch: 1000,
      net: { loss: 0.05, latencyMs: [0.2, 4] },
    });
    for (const n of r.sim.nodes) {
      const t = n.totals();
      expect(t.epochRollovers, n.id).toBeGreaterThan(5);
      expect(t.bulksWanted.restart, n.id).toBe(0);
      expect(n.sync.stats().peerCounters.restarts, n.id).toBe(0);
    }
    expect(r.totals.retransmits).toBeGreaterThan(0);
    settle(r);
  });

  // The CI run of 2026-12-08 00:13 found a node still not ready 20 s into
  // the reliability test's 20% loss. Its first requests came while its epoch
  // was unverified at the peer and were dropped there, and the retries had
  // backed off to 8 s apart. On this pair of empty nodes, 5,000 seeds:
  // before, 29 nodes were not synced after 20 s (p99 15.2 s); with the
  // request held until the epoch is verified and retries at most 2 s apart,
  // none (p99 6.0 s, max 14.0 s, every miss a run of lost requests).
  it('every node of a pair started together under 20% loss finishes its first sync within 20 s (1,000 seeds)', () => {
    const late: string[] = [];
    const cfg: ReliabilityConfig = { ...DEFAULTS.sync.reliability };
    for (let seed = 1; seed <= 1000; seed++) {
      const sim = new Sim(seed, { latencyMs: [0.2, 1.5], loss: 0.2, dup: 0 });
      for (const [idx, id] of ['fw-a', 'fw-b'].entries()) sim.nodes.push(new SimNode(sim, id, idx, { mode: 'ftfw', cfg }));
      for (const n of sim.nodes) n.boot();
      sim.run(20_000, () => sim.nodes.every((n) => n.sync.firstSyncDone));
      for (const n of sim.nodes) if (!n.sync.firstSyncDone) late.push(`seed ${seed}: ${n.id}`);
    }
    expect(late).toEqual([]);
  });

  it('recovers a lost first datagram after start (hello and the first data)', () => {
    const dropped: number[] = [];
    const r = runScenario({
      name: 'lost first datagrams',
      seed: 8,
      setup: (sim) => {
        sim.dropHook = (from, _to, n) => {
          if (from.idx !== 0 || n > 1) return false;
          dropped.push(n);
          return true;
        };
        return undefined;
      },
    });
    expect(dropped).toEqual([0, 0, 1, 1]);
    settle(r);
    const [, b, c] = r.sim.nodes.map((n) => n.sync.stats());
    // Without fw-a's hello the others started counting where fw-a answered their challenge and asked it for its state.
    for (const s of [b!, c!]) {
      const rx = s.peers.find((p) => p.id === 'fw-a')?.rx;
      expect(rx?.helloSeen).toBe(false);
      expect(rx?.synced).toBe(true);
      expect(s.counters.responsesAccepted).toBe(2);
    }
    expect(r.sim.nodes[0]!.sync.stats().counters.resyncRequestsReceived).toBeGreaterThan(0);
  });

  it('deletes made during a partition are gone after it heals', () => {
    const deleted: Array<{ node: SimNode; entry: ConntrackEntry }> = [];
    const r = runScenario({
      name: 'deletes during partition',
      seed: 9,
      workload: { updates: 0, deletes: 0 },
      setup: (sim) => {
        const c = sim.nodes[2]!;
        sim.at(1000, () => sim.isolate(c, true));
        // Every node deletes 3000 of its entries while fw-c is cut off (longer than peerTimeoutMs).
        for (const node of sim.nodes) {
          for (let k = 0; k < 3000; k++) {
            sim.at(1500 + k / 10, () => {
              const entry = makeEntry(node.idx, k * 3, 0);
              node.remove(entryKey(entry));
              deleted.push({ node, entry });
            });
          }
        }
        sim.at(6000, () => sim.isolate(c, false));
        return 1500 + 300;
      },
    });
    expect(r.convergedAt).toBeGreaterThan(6000);
    expect(deleted.length).toBe(9000);
    for (const n of r.sim.nodes) {
      for (const { node, entry } of deleted) if (node !== n) expect(n.external.has(entry)).toBe(false);
      expect(n.external.size).toBe(2 * (ENTRIES - 3000));
    }
    settle(r);
  });

  it('notrack converges through periodic refresh under 10% loss', () => {
    const r = runScenario({
      name: 'notrack 10% loss',
      seed: 10,
      mode: 'notrack',
      net: { loss: 0.1 },
      cfg: { refreshIntervalMs: 1000 },
      maxTimeMs: 60_000,
    });
    expect(r.totals.acksSent).toBe(0);
    expect(r.totals.nacksSent).toBe(0);
    expect(r.totals.retransmits).toBe(0);
    expect(r.totals.refreshes).toBeGreaterThan(3);
    expect(r.totals.incompleteBulks).toBeGreaterThan(0);
    for (const n of r.sim.nodes) expect(n.sync.stats().resendQueue.capacity).toBe(0);
  });
});

describe('sync simulation: every registered sync mode, picked by name', () => {
  const names = Object.keys(syncModes) as SyncModeName[];

  it('registers ftfw and notrack, each under its own name', () => {
    expect([...names].sort()).toEqual(['ftfw', 'notrack']);
    for (const name of names) expect(syncModes[name].name).toBe(name);
  });

  it.each(names)('%s converges with 5 percent datagram loss', (mode) => {
    const strategy = syncModes[mode];
    const r = runScenario({
      name: `${mode} by name, 5% loss`,
      seed: 11,
      mode,
      net: { loss: 0.05 },
      cfg: { refreshIntervalMs: 1000 },
    });
    for (const n of r.sim.nodes) {
      const st = n.sync.stats();
      expect(st.mode).toBe(mode);
      expect(st.resendQueue.capacity > 0).toBe(strategy.acknowledged);
    }
    if (strategy.acknowledged) {
      expect(r.totals.acksSent).toBeGreaterThan(0);
      settle(r);
    } else {
      expect(r.totals.acksSent).toBe(0);
      expect(r.totals.nacksSent).toBe(0);
      expect(r.totals.retransmits).toBe(0);
    }
    if (strategy.periodicRefresh) expect(r.totals.refreshes).toBeGreaterThan(0);
    else expect(r.totals.refreshes).toBe(0);
  });
});

describe('sync simulation: protocol details', () => {
  /** A quiet, converged 3-node cluster with no loss and 100 entries per node. */
  function quietCluster(seed: number): { sim: Sim; cfg: ReliabilityConfig } {
    const sim = new Sim(seed, { latencyMs: [0.2, 0.5], loss: 0, dup: 0 });
    const cfg: ReliabilityConfig = { ...DEFAULTS.sync.reliability };
    for (const [idx, id] of ['fw-a', 'fw-b', 'fw-c'].entries()) {
      sim.nodes.push(new SimNode(sim, id, idx, { mode: 'ftfw', cfg }));
    }
    for (const n of sim.nodes) n.boot();
    sim.at(1, () => {
      for (const n of sim.nodes) for (let i = 0; i < 100; i++) n.create(i);
    });
    sim.run(1500);
    expect(converged(sim)).toBe(true);
    return { sim, cfg };
  }

  it('repairs a lost tail with the retransmission timer, long before the next alive', () => {
    const { sim, cfg } = quietCluster(11);
    const [a, b] = sim.nodes as [SimNode, SimNode];
    const t0 = sim.now;
    // The whole burst (and nothing after it) is lost on its way to fw-b.
    sim.dropHook = (from, to) => from === a && to === b && sim.now < t0 + 1;
    for (let i = 100; i < 140; i++) a.create(i);
    const timeoutsBefore = a.sync.stats().counters.retransmitTimeouts;
    sim.run(t0 + 5000, () => converged(sim));
    const repairedAfter = sim.now - t0;
    console.log(
      `[sim] tail loss repaired after ${repairedAfter.toFixed(1)} ms (alive interval ${cfg.aliveIntervalMs} ms)`,
    );
    expect(converged(sim)).toBe(true);
    expect(repairedAfter).toBeLessThan(cfg.retransmitMs + 3 * TICK_MS);
    expect(a.sync.stats().counters.retransmitTimeouts).toBeGreaterThan(timeoutsBefore);
  });

  it('inSync (the keepalived track_file) gates only the first sync: a restarting peer is the one without state', () => {
    const { sim } = quietCluster(13);
    const [a, b] = sim.nodes as [SimNode, SimNode, SimNode];
    expect(a.sync.inSync).toBe(true);
    const t0 = sim.now;
    sim.at(t0 + 1, () => {
      b.crash();
      b.restart();
    });
    // Right after the restart, b's new epoch has not sent its bulk yet: a stays in sync, b does not.
    sim.run(t0 + 1);
    expect(a.sync.inSync).toBe(true);
    expect(b.sync.inSync).toBe(false);
    sim.run(t0 + 3000, () => b.sync.inSync);
    expect(b.sync.inSync).toBe(true);
    expect(a.sync.inSync).toBe(true);
  });

  it("a restarting peer's hello never empties the resend queue: other peers' NACKs are still served", () => {
    const { sim } = quietCluster(12);
    const [a, b, c] = sim.nodes as [SimNode, SimNode, SimNode];
    const t0 = sim.now;
    const hellos = a.sync.stats().counters.hellosReceived;
    // fw-c misses 200 of fw-a's changes while fw-b restarts.
    sim.dropHook = (from, to) => from === a && to === c && sim.now < t0 + 5;
    for (let i = 100; i < 300; i++) a.create(i);
    sim.at(t0 + 1, () => {
      b.crash();
      b.restart();
    });
    // Long enough for fw-a to hear the new epoch's hello, challenge it and believe the answer.
    sim.run(t0 + 4);
    const before = a.sync.stats();
    expect(before.counters.hellosReceived).toBe(hellos);
    expect(before.counters.responsesAccepted).toBe(3);
    expect(before.peerCounters.restarts).toBe(1);
    // Still holding what fw-c has not acked.
    expect(before.resendQueue.length).toBeGreaterThanOrEqual(200);
    const cGap = (): boolean => c.sync.stats().peers.find((p) => p.id === 'fw-a')?.rx?.missing ?? true;
    sim.run(t0 + 5000, () => converged(sim) && !cGap() && a.sync.stats().resendQueue.length === 0);
    expect(converged(sim)).toBe(true);
    expect(cGap()).toBe(false);
    const after = a.sync.stats().counters;
    // fw-c's gap was filled from the resend queue, not by a bulk.
    expect(after.retransmits).toBeGreaterThanOrEqual(200);
    expect(after.resyncsForGap).toBe(0);
    expect(after.bulksWanted.gap).toBe(0);
  });

  it('drops late datagrams of a retired epoch instead of taking them for another restart', () => {
    const { sim } = quietCluster(13);
    const [a, b] = sim.nodes as [SimNode, SimNode];
    // Keep one datagram of fw-b's first incarnation for later.
    let old: Buffer | undefined;
    const realBroadcast = sim.broadcast.bind(sim);
    sim.broadcast = (from, buf) => {
      if (from === b && old === undefined) old = buf;
      realBroadcast(from, buf);
    };
    b.update(entryKey(makeEntry(1, 5, 0)));
    sim.run(sim.now + 100);
    expect(old).toBeDefined();
    b.crash();
    b.restart();
    sim.run(sim.now + 2000, () => converged(sim));
    expect(converged(sim)).toBe(true);
    const before = a.sync.stats();
    expect(a.sync.receive(old!)).toEqual({ ok: false, live: false });
    const after = a.sync.stats();
    expect(after.counters.staleEpochDatagrams).toBe(before.counters.staleEpochDatagrams + 1);
    expect(after.peerCounters.restarts).toBe(1);
    expect(after.peers.find((p) => p.id === 'fw-b')?.epoch).toBe(b.epochs[1]);
    expect(exactDiff(sim)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Replay: recorded traffic played back later changes nothing (issue 14).

/** Every record of every node's external cache, exactly, in a comparable form. */
function cacheImage(sim: Sim): string[] {
  const out: string[] = [];
  for (const n of sim.nodes) {
    for (const [key, rec] of n.external.entries()) out.push(`${n.id} ${rec.origin} ${key} ${JSON.stringify(rec.entry)}`);
  }
  return out.sort();
}

interface ReplayCase {
  seed: number;
  /** Who restarts after the recording, before the replay. */
  restart: 'none' | 'fw-a' | 'fw-b' | 'both';
  /** Indices into the recording (modulo its length) and how often each is played. */
  picks: Array<{ i: number; times: number; at: number }>;
}

/**
 * Two nodes replicate (one restart and, with tiny epochs, several rollovers
 * on the way) while every datagram is recorded; then either or both restart;
 * then a random subset of the recording is played back, each datagram from
 * the side that sent it, at random moments, any number of times.
 */
function replayScenario(c: ReplayCase, maxSeqsPerEpoch?: number): void {
  const sim = new Sim(c.seed, { latencyMs: [0.2, 0.8], loss: 0, dup: 0 });
  const cfg: ReliabilityConfig = { ...DEFAULTS.sync.reliability };
  for (const [idx, id] of ['fw-a', 'fw-b'].entries()) {
    sim.nodes.push(new SimNode(sim, id, idx, { mode: 'ftfw', cfg, maxSeqsPerEpoch, firstSeq: 0xffff_ffff - 700 }));
  }
  const [a, b] = sim.nodes as [SimNode, SimNode];
  const recording: Array<{ from: SimNode; buf: Buffer }> = [];
  const realBroadcast = sim.broadcast.bind(sim);
  sim.broadcast = (from, buf) => {
    recording.push({ from, buf });
    realBroadcast(from, buf);
  };
  for (const n of sim.nodes) n.boot();
  sim.at(1, () => {
    for (const n of sim.nodes) for (let i = 0; i < 300; i++) n.create(i);
  });
  sim.at(300, () => {
    for (let i = 0; i < 100; i++) a.update(entryKey(makeEntry(0, i, 0)));
    for (let i = 0; i < 50; i++) b.remove(entryKey(makeEntry(1, i, 0)));
  });
  sim.at(700, () => {
    b.crash();
    b.restart();
  });
  sim.at(1500, () => {
    for (let i = 300; i < 400; i++) b.create(i);
    for (let i = 100; i < 140; i++) a.remove(entryKey(makeEntry(0, i, 0)));
  });
  sim.run(4000);
  sim.broadcast = realBroadcast;
  expect(exactDiff(sim)).toEqual([]);
  // With tiny epochs the recording spans several of each node's epochs, and
  // a rollover is no restart: fw-a saw fw-b restart once (at 700), fw-b's
  // present incarnation saw none, whatever the rollovers on both sides.
  if (maxSeqsPerEpoch !== undefined) {
    for (const n of sim.nodes) expect(n.totals().epochRollovers).toBeGreaterThan(0);
    expect(a.sync.stats().peerCounters.restarts).toBe(1);
    expect(b.sync.stats().peerCounters.restarts).toBe(0);
  }
  // The restarts after the recording: every epoch in it is now an old one.
  if (c.restart === 'fw-a' || c.restart === 'both') sim.at(sim.now + 1, () => (a.crash(), a.restart()));
  if (c.restart === 'fw-b' || c.restart === 'both') sim.at(sim.now + 1, () => (b.crash(), b.restart()));
  // Until both are in sync again (bounded).
  const quiet = () =>
    sim.nodes.every(
      (n) => n.sync.inSync && n.sync.stats().peers.every((p) => p.tx?.bulkWanted !== true && p.rx?.wantBulk !== true),
    ) && exactDiff(sim).length === 0;
  // Quiet, and still quiet 2 s later with no bulk meanwhile. When a
  // rollover counted as a restart (one bulk each way), with epochs this
  // small each bulk brought the next rollover and the pair never settled
  // (seed 296044, found by CI): now it settles the first time.
  const bulks = () => sim.nodes.map((n) => n.sync.stats().counters.bulksSent).join();
  sim.run(sim.now + 60_000, quiet);
  const mark = bulks();
  sim.run(sim.now + 2000);
  expect(bulks()).toBe(mark);
  expect(quiet()).toBe(true);
  expect(exactDiff(sim)).toEqual([]);
  for (const n of sim.nodes) expect(n.sync.inSync).toBe(true);

  const image = cacheImage(sim);
  const before = sim.nodes.map((n) => ({ st: n.sync.stats(), sent: n.sent }));
  const big: number[] = [];
  const watch = sim.broadcast.bind(sim);
  sim.broadcast = (from, buf) => {
    if (buf.length > 200) big.push(buf.length);
    watch(from, buf);
  };
  const t0 = sim.now;
  const windowMs = 3000;
  let played = 0;
  for (const p of c.picks) {
    const rec = recording[p.i % recording.length]!;
    for (let k = 0; k < p.times; k++) {
      sim.at(t0 + ((p.at + k * 37) % windowMs), () => {
        for (const to of sim.nodes) {
          if (to.id !== rec.from.id && !to.down) {
            to.sync.receive(rec.buf);
            played++;
          }
        }
      });
    }
  }
  sim.run(t0 + windowMs + 500);
  expect(played).toBeGreaterThan(0);
  // Every replayed datagram was looked at and set aside: an older epoch, not verified, our own, or a duplicate.
  const setAside = (st: ReturnType<SyncNode['stats']>): number =>
    st.counters.staleEpochDatagrams + st.counters.unverifiedDatagrams + st.counters.ownDatagrams + st.counters.datagramsReceived;
  expect(sim.nodes.reduce((x, n) => x + setAside(n.sync.stats()), 0)).toBeGreaterThan(
    before.reduce((x, w) => x + setAside(w.st), 0),
  );

  // No cache entry changed, no peer went down or restarted, nothing was re-sent.
  expect(cacheImage(sim)).toEqual(image);
  expect(big).toEqual([]);
  for (const [k, n] of sim.nodes.entries()) {
    const was = before[k]!;
    const st = n.sync.stats();
    expect(st.epoch).toBe(was.st.epoch);
    expect(st.peerCounters).toEqual(was.st.peerCounters);
    for (const p of st.peers) {
      expect(p.state, `${n.id} sees ${p.id}`).toBe('up');
      expect(p.epoch).toBe(was.st.peers.find((q) => q.id === p.id)?.epoch);
    }
    const c0 = was.st.counters;
    const c1 = st.counters;
    expect(c1.bulksSent, `${n.id} bulks`).toBe(c0.bulksSent);
    expect(c1.bulksStarted, `${n.id} bulks started`).toBe(c0.bulksStarted);
    expect(c1.retransmits, `${n.id} retransmits`).toBe(c0.retransmits);
    expect(c1.applied, `${n.id} applied`).toBe(c0.applied);
    // A few small datagrams: alives, and at most a challenge per CHALLENGE_INTERVAL_MS, an answer per
    // ANSWER_INTERVAL_MS and a repeated ack (for a replayed duplicate) per ackDelayMs.
    const span = windowMs + 500;
    const quiet = Math.ceil(span / cfg.aliveIntervalMs) + 1;
    const challenges = c1.challengesSent - c0.challengesSent;
    const answers = c1.challengesAnswered - c0.challengesAnswered;
    const acks = c1.acksSent - c0.acksSent;
    expect(n.sent - was.sent, `${n.id} datagrams sent`).toBeLessThanOrEqual(quiet + challenges + answers + acks + 2);
    expect(challenges).toBeLessThanOrEqual(Math.ceil(span / CHALLENGE_INTERVAL_MS) + 1);
    expect(answers).toBeLessThanOrEqual(Math.ceil(span / ANSWER_INTERVAL_MS) + 1);
    expect(acks).toBeLessThanOrEqual(Math.ceil(span / cfg.ackDelayMs) + 1);
    expect(c1.nacksSent, `${n.id} NACKs`).toBe(c0.nacksSent);
  }
  expect(exactDiff(sim)).toEqual([]);
}

describe('sync simulation: replayed recordings change nothing', () => {
  const caseArb = fc.record({
    seed: fc.integer({ min: 1, max: 1_000_000 }),
    restart: fc.constantFrom('none' as const, 'fw-a' as const, 'fw-b' as const, 'both' as const),
    picks: fc.array(
      fc.record({ i: fc.nat(), times: fc.integer({ min: 1, max: 5 }), at: fc.integer({ min: 0, max: 2999 }) }),
      { minLength: 1, maxLength: 300 },
    ),
  });

  it('after either or both nodes restarted: caches, peers and the amount sent stay as they were', () => {
    fc.assert(fc.property(caseArb, (c) => replayScenario(c)), { numRuns: 6 });
  });

  // Epochs shorter than a bulk: rollovers land inside bulks, retransmissions and NACKed gaps.
  it('after epoch rollovers (a new epoch every 128 seqs, the seqs wrapping past 2^32 on the way)', () => {
    fc.assert(fc.property(caseArb, (c) => replayScenario(c, 128)), { numRuns: 4 });
  });

  // Found by CI (2026-12-07): a rollover then counted as a restart and cost a bulk each way,
  // and with 512-seq epochs and ~400 entries a node each bulk brought the next rollover.
  it('seed 296044: both restarted, 512-seq epochs, the pair settles and a replay changes nothing', () => {
    replayScenario({ seed: 296044, restart: 'both', picks: [{ i: 0, times: 1, at: 0 }] }, 512);
  });

  // A replay of the current epoch is a valid datagram: before datagrams were
  // numbered, replaying a dead peer's recent traffic kept it shown as up
  // (and could move the active link) for as long as the replay went on.
  it("replaying a dead peer's datagrams of its current epoch does not keep it up", () => {
    const sim = new Sim(77, { latencyMs: [0.2, 0.8], loss: 0, dup: 0 });
    const cfg: ReliabilityConfig = { ...DEFAULTS.sync.reliability };
    for (const [idx, id] of ['fw-a', 'fw-b'].entries()) sim.nodes.push(new SimNode(sim, id, idx, { mode: 'ftfw', cfg }));
    const [a, b] = sim.nodes as [SimNode, SimNode];
    const fromB: Buffer[] = [];
    const realBroadcast = sim.broadcast.bind(sim);
    sim.broadcast = (from, buf) => {
      if (from === b) fromB.push(buf);
      realBroadcast(from, buf);
    };
    for (const n of sim.nodes) n.boot();
    sim.at(1, () => {
      for (let i = 0; i < 200; i++) b.create(i);
    });
    sim.run(3000);
    expect(a.sync.stats().peers.find((p) => p.id === 'fw-b')?.state).toBe('up');
    // b dies (no restart: its epoch stays the one a believes); its last few seconds are replayed to a.
    const recent = fromB.slice(-20);
    b.crash();
    const t0 = sim.now;
    const span = 3 * cfg.peerTimeoutMs;
    for (let t = 0, k = 0; t < span; t += 100, k++) sim.at(t0 + t, () => a.sync.receive(recent[k % recent.length]!));
    sim.run(t0 + span);
    const st = a.sync.stats();
    expect(st.peers.find((p) => p.id === 'fw-b')?.state).toBe('down');
    expect(st.counters.datagramsNotLive).toBeGreaterThanOrEqual(span / 100 - 1);
    expect(exactDiff(sim)).toEqual([]);
  });

  it('4000 datagrams of the recording (all of it when shorter), each three times', () => {
    replayScenario({
      seed: 4242,
      restart: 'both',
      picks: Array.from({ length: 4000 }, (_, i) => ({ i, times: 3, at: (i * 7) % 3000 })),
    });
  });
});
