// The flow log (issue 16): its record, its bounded queue, its file, and the
// daemon running it with and without sync, on the FakeKernel.
import { mkdtempSync, readFileSync, renameSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon.js';
import { FileSink, FlowLog, type FlowOutput, type FlowRecord, EventQueue, flowLine, lineTime, type FlowSink } from '../../src/flowlog/index.js';
import type { EventType } from '../../src/kernel/conntrack-events.js';
import { AF_INET, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, IPPROTO, IPS, NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE } from '../../src/kernel/constants.js';
import { decodeConntrack, encodeConntrack } from '../../src/kernel/ct-codec.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { NlWriter, parseNetlink } from '../../src/kernel/netlink-codec.js';
import { silentLogger } from '../../src/log.js';
import { LoopChannel } from './doubles.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ctsyncd-fl-'));
  dirs.push(d);
  return d;
}

/** An inside host's TCP flow masqueraded to 203.0.113.7:40000+n on its way to 198.51.100.9:443. */
function natted(n: number, extra: Partial<ConntrackEntry> = {}): ConntrackEntry {
  const inside = `10.99.1.${n}`;
  return {
    family: AF_INET,
    orig: { src: inside, dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 50000 + n, dport: 443 },
    reply: { src: '198.51.100.9', dst: '203.0.113.7', proto: IPPROTO.TCP, sport: 443, dport: 40000 + n },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED | IPS.SRC_NAT | IPS.SRC_NAT_DONE,
    timeout: 120,
    mark: 0,
    protoinfo: { tcp: { state: 3 } },
    ...extra,
  };
}

/** The entry as a ctnetlink event message: its bytes and where the message is. */
function eventBytes(e: ConntrackEntry, destroy = false): Buffer {
  const w = new NlWriter(1024);
  w.begin((NFNL_SUBSYS_CTNETLINK << 8) | (destroy ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW), destroy ? 0 : NLM_F_CREATE, 0, AF_INET);
  encodeConntrack(w, e, { readOnly: true });
  w.end();
  return Buffer.from(w.finish());
}

/** What flowLine writes for `e` as the kernel would send it (encoded, then decoded). */
function lineFor(kind: EventType, e: ConntrackEntry, now: number): FlowRecord {
  const m = parseNetlink(eventBytes(e, kind === 'destroy')).messages[0]!;
  const r = decodeConntrack(m);
  if (!r.ok) throw new Error(r.error.reason);
  return JSON.parse(flowLine(kind, r.value, now)) as FlowRecord;
}

describe('the flow record', () => {
  const T = Date.UTC(2026, 11, 7, 2, 0, 0, 123);

  it('spells out the source NAT: the public address and port an abuse report names', () => {
    const r = lineFor('new', natted(5, { id: 77, zone: 3, mark: 9 }), T);
    expect(r).toEqual({
      time: '2026-12-07T02:00:00.123Z',
      event: 'new',
      family: 'ipv4',
      proto: 'tcp',
      orig: { src: '10.99.1.5', dst: '198.51.100.9', sport: 50005, dport: 443 },
      reply: { src: '198.51.100.9', dst: '203.0.113.7', sport: 443, dport: 40005 },
      nat: { src: '203.0.113.7', sport: 40005 },
      state: 'ESTABLISHED',
      mark: 9,
      zone: 3,
      id: 77,
    });
    expect(Object.keys(r)[0]).toBe('time');
    expect(lineTime(flowLine('new', natted(5), T))).toBe(T);
  });

  it('a port forward is a destination NAT; an untranslated flow has no nat key', () => {
    const dnat: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '198.51.100.20', dst: '203.0.113.7', proto: IPPROTO.UDP, sport: 5000, dport: 53 },
      reply: { src: '10.99.1.53', dst: '198.51.100.20', proto: IPPROTO.UDP, sport: 5353, dport: 5000 },
      status: IPS.CONFIRMED | IPS.DST_NAT,
    };
    expect(lineFor('new', dnat, T).nat).toEqual({ dst: '10.99.1.53', dport: 5353 });
    const plain = natted(1, { reply: { src: '198.51.100.9', dst: '10.99.1.1', proto: IPPROTO.TCP, sport: 443, dport: 50001 } });
    expect(lineFor('new', plain, T)).not.toHaveProperty('nat');
  });

  it('kernel timestamps and counters when the sysctls give them; labels as bit numbers', () => {
    const start = BigInt(T - 5000) * 1_000_000n + 456n;
    const stop = BigInt(T) * 1_000_000n;
    const labels = Buffer.alloc(16);
    labels[0] = 0b101;
    labels[2] = 0x80;
    const r = lineFor(
      'destroy',
      natted(2, {
        timestamp: { start, stop },
        countersOrig: { packets: 10n, bytes: 1500n },
        countersReply: { packets: 8n, bytes: 9000n },
        labels,
      }),
      T,
    );
    expect(r.start).toBe(new Date(T - 5000).toISOString());
    expect(r.stop).toBe(new Date(T).toISOString());
    expect(r.counters).toEqual({ orig: { packets: 10, bytes: 1500 }, reply: { packets: 8, bytes: 9000 } });
    expect(r.labels).toEqual([0, 2, 23]);
    // Without the sysctls: no start, stop or counters keys at all (a live flow's stop of 0 is not a time).
    const bare = lineFor('new', natted(2, { timestamp: { start, stop: 0n } }), T);
    expect(bare.start).toBeDefined();
    expect(bare).not.toHaveProperty('stop');
    expect(lineFor('new', natted(2), T)).not.toHaveProperty('counters');
  });

  it('is valid JSON for any entry the codec carries (IPv6, ICMP, no ports)', () => {
    const v6: ConntrackEntry = {
      family: 10,
      orig: { src: 'fd99::1', dst: '2001:db8::9', proto: IPPROTO.ICMPV6, icmpType: 128, icmpCode: 0, icmpId: 7 },
      reply: { src: '2001:db8::9', dst: 'fd99::1', proto: IPPROTO.ICMPV6, icmpType: 129, icmpCode: 0, icmpId: 7 },
    };
    const r = JSON.parse(flowLine('destroy', v6, T)) as FlowRecord;
    expect(r).toMatchObject({ family: 'ipv6', proto: 'icmpv6', orig: { src: 'fd99::1', sport: 7, dport: 128, code: 0 } });
  });
});

describe('EventQueue', () => {
  it('refuses what does not fit and gives back every message it took, in order, across wraps', () => {
    let refusedAll = 0;
    fc.assert(
      // Three pushes to a shift: the ring fills, wraps and refuses often.
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 700 })), { maxLength: 300 }), (ops) => {
        const q = new EventQueue(2048);
        const model: Buffer[] = [];
        let seq = 0;
        let refused = 0;
        for (const [push, size] of ops) {
          if (push > 0) {
            const b = Buffer.alloc(size, seq++ & 0xff);
            if (q.push('new', b, 0, size)) model.push(b);
            else refused++;
          } else {
            const want = model.shift();
            const got = q.shift((kind, buf, start, len) => {
              expect(kind).toBe('new');
              expect(Buffer.compare(buf.subarray(start, start + len), want!)).toBe(0);
            });
            expect(got).toBe(want !== undefined);
          }
          expect(q.length).toBe(model.length);
          expect(q.bytes).toBeLessThanOrEqual(2048);
        }
        refusedAll += refused;
      }),
    );
    // The full-queue branch was exercised, not only the easy one.
    expect(refusedAll).toBeGreaterThan(0);
  });

  it('keeps the kind of each message', () => {
    const q = new EventQueue(4096);
    const b = Buffer.from('abc');
    for (const k of ['new', 'update', 'destroy'] as const) q.push(k, b, 0, 3);
    const kinds: string[] = [];
    while (q.shift((k) => kinds.push(k)));
    expect(kinds).toEqual(['new', 'update', 'destroy']);
  });
});

/** A sink that keeps lines in memory; `hold` keeps them pending (a stuck disk). */
class MemorySink implements FlowSink {
  lines: string[] = [];
  pending: string[] = [];
  hold = false;
  get pendingBytes(): number {
    return this.pending.reduce((n, l) => n + l.length + 1, 0);
  }
  write(line: string): void {
    (this.hold ? this.pending : this.lines).push(line);
  }
  writeBytes(b: Buffer, len: number): void {
    this.write(b.toString('utf8', 0, len));
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

describe('FlowLog', () => {
  const manual = () => {
    const runs: Array<() => void> = [];
    return { runs, schedule: (f: () => void) => runs.push(f), run: () => runs.splice(0).forEach((f) => f()) };
  };

  it('logs the events asked for, of the connections the filter passes', () => {
    const sink = new MemorySink();
    const m = manual();
    const fl = new FlowLog({
      events: ['destroy'],
      queueBytes: 65536,
      sink,
      flushEachBatch: false,
      accept: (e) => e.orig.src !== '10.99.1.3',
      now: () => 0,
      schedule: m.schedule,
      log: silentLogger,
    });
    for (const n of [1, 2, 3]) {
      const nb = eventBytes(natted(n));
      fl.onConntrackMessage('new', nb, 0, nb.length);
      const db = eventBytes(natted(n), true);
      fl.onConntrackMessage('destroy', db, 0, db.length);
    }
    expect(sink.lines).toEqual([]);
    m.run();
    expect(sink.lines.map((l) => (JSON.parse(l) as FlowRecord).orig.src)).toEqual(['10.99.1.1', '10.99.1.2']);
    expect(fl.counters).toMatchObject({ queued: 3, logged: 2, filtered: 1, queueFull: 0, decodeErrors: 0 });
  });

  it('hands each record to the file and to every other output, the line formatted once; endBatch once per drain', () => {
    const sink = new MemorySink();
    const m = manual();
    const seen: string[] = [];
    let batches = 0;
    const output = (name: string): FlowOutput => ({
      write: (kind, e, line) => void seen.push(`${name} ${kind} ${e.orig.src} ${line() === sink.lines.at(-1)}`),
      endBatch: () => void batches++,
    });
    const fl = new FlowLog({
      events: ['new'],
      queueBytes: 65536,
      sink,
      outputs: [output('a'), output('b')],
      flushEachBatch: false,
      now: () => 0,
      schedule: m.schedule,
      log: silentLogger,
    });
    for (const n of [1, 2]) {
      const nb = eventBytes(natted(n));
      fl.onConntrackMessage('new', nb, 0, nb.length);
    }
    m.run();
    expect(seen).toEqual(['a new 10.99.1.1 true', 'b new 10.99.1.1 true', 'a new 10.99.1.2 true', 'b new 10.99.1.2 true']);
    expect(batches).toBe(2);
    expect(fl.counters.logged).toBe(2);
  });

  it('without a file, the outputs alone: nothing holds the writer back; a turn lasts one time slice', () => {
    const m = manual();
    const lines: string[] = [];
    // A clock that moves 1 ms per read: the slice (4 ms) ends at the 4th read, one read per 64 records.
    let t = 0;
    const fl = new FlowLog({
      events: ['new'],
      queueBytes: 262144,
      outputs: [{ write: (_k, _e, line) => void lines.push(line()), endBatch: () => undefined }],
      flushEachBatch: false,
      now: () => 0,
      clock: () => t++,
      schedule: m.schedule,
      log: silentLogger,
    });
    for (let n = 1; n <= 600; n++) {
      const nb = eventBytes(natted(n % 250));
      fl.onConntrackMessage('new', nb, 0, nb.length);
    }
    // 4 × 64 a turn, the rest in the turns the first one scheduled.
    m.run();
    expect(lines).toHaveLength(256);
    m.run();
    expect(lines).toHaveLength(512);
    m.run();
    expect(lines).toHaveLength(600);
    expect(fl.queueLength).toBe(0);
    expect(fl.counters.queueFull).toBe(0);
  });

  it('a stuck writer fills the queue: further events are counted, never waited for', () => {
    const sink = new MemorySink();
    sink.hold = true;
    const m = manual();
    const fl = new FlowLog({ events: ['new'], queueBytes: 65536, sink, flushEachBatch: false, now: () => 0, schedule: m.schedule, log: silentLogger });
    const b = eventBytes(natted(1));
    let offered = 0;
    // Until the queue and the sink's allowance are both full: bounded by the queue's size.
    for (let i = 0; i < 10_000 && fl.counters.queueFull === 0; i++) {
      fl.onConntrackMessage('new', b, 0, b.length);
      offered++;
      m.run();
    }
    expect(fl.counters.queueFull).toBe(1);
    expect(fl.counters.queued + fl.counters.queueFull).toBe(offered);
    expect(fl.queueLength).toBeGreaterThan(0);
    // The disk comes back: what was queued is logged, nothing else lost.
    sink.hold = false;
    sink.lines.push(...sink.pending.splice(0));
    for (let i = 0; i < 1000 && fl.queueLength > 0; i++) {
      fl.resume();
      m.run();
    }
    expect(fl.queueLength).toBe(0);
    expect(sink.lines).toHaveLength(fl.counters.queued);
  });

  it('a message that does not decode is counted and skipped', () => {
    const sink = new MemorySink();
    const m = manual();
    const fl = new FlowLog({ events: ['new'], queueBytes: 65536, sink, flushEachBatch: false, now: () => 0, schedule: m.schedule, log: silentLogger });
    const b = eventBytes(natted(1));
    b.writeUInt16LE(400, 20); // the first attribute's length, past the end
    fl.onConntrackMessage('new', b, 0, b.length);
    m.run();
    expect(fl.counters).toMatchObject({ queued: 1, decodeErrors: 1, logged: 0 });
  });
});

describe('FileSink', () => {
  it('appends, and after SIGUSR1 (reopen) writes to the new file: no line lost around a logrotate', async () => {
    const d = tmp();
    const path = join(d, 'flows.jsonl');
    const sink = new FileSink({ path, durability: 'fsync', log: silentLogger });
    await sink.open();
    for (let i = 0; i < 100; i++) sink.write(`{"n":${i}}`);
    await sink.flush();
    renameSync(path, `${path}.1`); // what logrotate does first
    for (let i = 100; i < 150; i++) sink.write(`{"n":${i}}`); // still into the moved file
    await sink.flush();
    for (let i = 150; i < 160; i++) sink.write(`{"n":${i}}`); // waiting when the signal comes
    await sink.reopen();
    for (let i = 160; i < 200; i++) sink.write(`{"n":${i}}`);
    await sink.close();
    const read = (p: string) => readFileSync(p, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { n: number }).n);
    const all = [...read(`${path}.1`), ...read(path)];
    expect(all).toEqual([...Array(200).keys()]);
    expect(sink.counters).toMatchObject({ written: 200, lost: 0, reopens: 1 });
  });

  it('rotates by size into gzip files, the newest .1.gz, keeping `keep` of them', async () => {
    const d = tmp();
    const path = join(d, 'flows.jsonl');
    const sink = new FileSink({ path, durability: 'buffered', rotate: { maxBytes: 1000, keep: 2 }, log: silentLogger });
    await sink.open();
    const line = (i: number) => `{"n":${i},"pad":"${'x'.repeat(90)}"}`;
    // Five batches of ~1 KB: each write ends past maxBytes, so each rotates.
    for (let b = 0; b < 5; b++) {
      for (let i = 0; i < 10; i++) sink.write(line(b * 10 + i));
      await sink.flush();
    }
    await sink.close();
    const gz = (k: number) => gunzipSync(readFileSync(`${path}.${k}.gz`)).toString().trim().split('\n').map((l) => (JSON.parse(l) as { n: number }).n);
    expect(sink.counters.rotations).toBe(5);
    expect(gz(1)).toEqual([...Array(10).keys()].map((i) => 40 + i));
    expect(gz(2)).toEqual([...Array(10).keys()].map((i) => 30 + i));
    expect(existsSync(`${path}.3.gz`)).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('');
  });

  it('a full disk (/dev/full: ENOSPC) loses lines, counted, and the next batch tries again', async () => {
    const lines: Array<{ msg: string; ctx?: Record<string, unknown> }> = [];
    const log = { ...silentLogger, warn: (msg: string, ctx?: Record<string, unknown>) => lines.push({ msg, ctx }) };
    const sink = new FileSink({ path: '/dev/full', durability: 'buffered', log });
    await sink.open();
    for (let i = 0; i < 10; i++) sink.write(`{"n":${i}}`);
    await sink.flush();
    sink.write('{"n":10}');
    await sink.flush();
    expect(sink.counters).toMatchObject({ written: 0, lost: 11, writeErrors: 2 });
    // Said once per kind of failure, not once per batch.
    expect(lines.map((l) => l.ctx?.code)).toEqual(['ENOSPC']);
    await sink.close();
  });

  it('a file that cannot be opened stops the start with EFLOWLOG_OPEN', async () => {
    const sink = new FileSink({ path: join(tmp(), 'no', 'such', 'dir', 'f'), durability: 'buffered', log: silentLogger });
    await expect(sink.open()).rejects.toMatchObject({ code: 'EFLOWLOG_OPEN' });
  });
});

describe('config flowlog', () => {
  const node = 'node: { id: fw1 }';
  it('a node with flowlog and no sync is valid (Stats mode); the defaults', () => {
    const cfg = parseConfig([node, 'flowlog: { file: { path: /var/log/ctsyncd/flows.jsonl } }', ''].join('\n'), 'fl.yaml');
    expect(cfg.sync).toBeUndefined();
    expect(cfg.flowlog).toEqual({
      events: ['new', 'destroy'],
      queueBytes: 64 * 1024 * 1024,
      file: { path: '/var/log/ctsyncd/flows.jsonl', durability: 'buffered', flushIntervalMs: 1000 },
    });
  });
  it('neither sync nor flowlog, or sync without cluster, is an error naming the key', () => {
    expect(() => parseConfig(`${node}\n`, 'fl.yaml')).toThrow(/sync.*expected sync, flowlog or both/);
    expect(() => parseConfig(`${node}\nsync: { multicast: { interface: sync0 }, auth: none }\n`, 'fl.yaml')).toThrow(/cluster.*required with sync/);
    expect(() => parseConfig(`${node}\nflowlog: { events: [], file: { path: /x } }\n`, 'fl.yaml')).toThrow(/empty list would log nothing/);
    expect(() => parseConfig(`${node}\nflowlog: { file: { path: x.log } }\n`, 'fl.yaml')).toThrow(/absolute path/);
  });
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('Daemon with flowlog', () => {
  const run = async (withSync: boolean) => {
    const path = join(tmp(), 'flows.jsonl');
    const yaml = [
      'node: { id: fw1 }',
      ...(withSync ? ['cluster: { id: 1 }', 'sync: { multicast: { interface: sync0 }, auth: none }'] : []),
      `flowlog: { events: [new, destroy], file: { path: ${path}, durability: fsync } }`,
      "filter: { addresses: { ignore: ['10.99.1.66'] } }",
      '',
    ].join('\n');
    const kernel = new FakeKernel();
    const d = new Daemon(parseConfig(yaml, 'fl.yaml'), {
      kernelTransport: kernel.openSocket,
      channels: [new LoopChannel('l0')],
      noControl: true,
      noMetrics: true,
      localAddresses: [],
      stateDir: tmp(),
    });
    await d.start();
    await until(() => d.ready, 'ready');
    kernel.packetNew(natted(4));
    kernel.packetNew(natted(66));
    kernel.expire(natted(4));
    await until(() => (d.statsSnapshot().flowlog.logged ?? 0) >= 2, 'two records');
    const stats = d.statsSnapshot();
    await d.stop();
    const recs = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FlowRecord);
    return { recs, stats, d };
  };

  it('alone (Stats mode): the flows the filter passes, new and destroy, with their NAT', async () => {
    const { recs, stats, d } = await run(false);
    expect(recs.map((r) => [r.event, r.orig.src, r.nat?.src, r.nat?.sport])).toEqual([
      ['new', '10.99.1.4', '203.0.113.7', 40004],
      ['destroy', '10.99.1.4', '203.0.113.7', 40004],
    ]);
    // 10.99.1.66 is ignored by the filter: in the kernel's event filter or in the flow log's (filtered).
    expect(stats.flowlog).toMatchObject({ enabled: true, logged: 2, dropped: 0, queueFull: 0, lost: 0 });
    expect(stats.sync.channels).toEqual([]);
    expect(d.internal.size).toBe(0);
  });

  it('next to sync: the same records', async () => {
    const { recs, stats } = await run(true);
    expect(recs.map((r) => r.event)).toEqual(['new', 'destroy']);
    expect(stats.sync.channels.map((c) => c.name)).toEqual(['l0']);
    expect(stats.flowlog).toMatchObject({ enabled: true, logged: 2 });
  });
});
