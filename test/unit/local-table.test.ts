// LocalTable on the FakeKernel: the real ConntrackEvents and ConntrackLink
// over fake sockets, so events, dumps, overruns (ENOBUFS) and per-entry
// errnos take the same paths as on a kernel.
import { describe, expect, it } from 'vitest';
import { compileFilter, type ExpectationPolicy, type FilterRules } from '../../src/cache/filter.js';
import { InternalCache } from '../../src/cache/internal-cache.js';
import {
  type LocalChangeKind,
  LocalTable,
  type LocalTableLink,
  MAX_EVENT_BUFFER,
} from '../../src/cache/local-table.js';
import { ConntrackEvents } from '../../src/kernel/conntrack-events.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import { type ConntrackEntry, type ExpectEntry, entryKey, expectKey } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { decodeError } from '../../src/kernel/netlink-codec.js';
import { type LoggedLine as Line, recordingLog } from './doubles.js';
import { ftpExpectation } from './expectations.js';

const ENOENT = 2;
const EPERM = 1;
const EBUSY = 16;
const NO_RULES: FilterRules = { protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } };

/** A confirmed TCP flow src:port -> dst:443. */
function tcp(n: number, over: { src?: string; dst?: string; timeout?: number; mark?: number } = {}): ConntrackEntry {
  const src = over.src ?? `10.20.${(n >> 8) & 255}.${n & 255}`;
  const dst = over.dst ?? '192.0.2.1';
  const sport = 10000 + n;
  return {
    family: AF_INET,
    orig: { src, dst, proto: IPPROTO.TCP, sport, dport: 443 },
    reply: { src: dst, dst: src, proto: IPPROTO.TCP, sport: 443, dport: sport },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED,
    timeout: over.timeout ?? 300,
    mark: over.mark ?? 0,
    protoinfo: { tcp: { state: 3 } },
  };
}

function expectation(master: ConntrackEntry, port: number, helper = 'ftp'): ExpectEntry {
  return ftpExpectation(master, port, { helper });
}

/** An entry the kernel held before we subscribed: no event will ever tell us about it. */
function preexisting(kernel: FakeKernel, e: ConntrackEntry): void {
  kernel.table.set(entryKey(e), { ...e, id: kernel.table.size + 1, use: 1 });
}

interface Change {
  key: string;
  kind: LocalChangeKind;
  entry: ConntrackEntry | undefined;
}

interface Setup {
  receiveBufferBytes?: number;
  rules?: FilterRules;
  /** Sync-link addresses the filter ignores. */
  syncLink?: string[];
  own?: string[];
  /** Wraps the real link (to act in the middle of a dump). */
  wrapLink?: (link: ConntrackLink) => LocalTableLink;
  expectations?: ExpectationPolicy;
  maxEventBufferBytes?: number;
  /** The settle wait after an overrun: 0 here unless a test is about it (it runs on the fake clock). */
  overrunSettleMs?: number;
}

function setup(o: Setup = {}) {
  const kernel = new FakeKernel();
  const events = new ConntrackEvents({
    transportFactory: kernel.openSocket,
    receiveBufferBytes: o.receiveBufferBytes ?? 4 * 1024 * 1024,
    expectations: true,
  });
  const link = new ConntrackLink({ transportFactory: kernel.openSocket });
  events.addOwnPortid(link.portid);
  const filter = compileFilter(o.rules ?? NO_RULES, o.syncLink ?? []);
  let clock = 1_000_000;
  const now = () => clock;
  const internal = new InternalCache({ limit: 100_000, filter, now });
  const changes: Change[] = [];
  const expectChanges: Array<{ key: string; kind: 'new' | 'delete'; entry: ExpectEntry | undefined }> = [];
  const lines: Line[] = [];
  const own = { list: o.own ?? [] };
  /** Settle timers armed, run by the test: [fn, ms]. */
  const timers: Array<{ fn: () => void; ms: number; cancelled: boolean }> = [];
  const table = new LocalTable({
    internal,
    filter,
    events,
    link: o.wrapLink ? o.wrapLink(link) : link,
    listener: {
      // Keys are the cache's slots; the entry they name gives the key these tests compare.
      localChange: (slot, kind, entry) => changes.push({ key: entryKey(entry ?? internal.entryAt(slot)!), kind, entry }),
      localExpectChange: (key, kind, entry) => expectChanges.push({ key, kind, entry }),
    },
    now,
    log: recordingLog(lines),
    purgeTimeoutSeconds: 30,
    ownAddresses: () => own.list,
    ...(o.expectations === undefined ? {} : { expectations: o.expectations }),
    ...(o.maxEventBufferBytes === undefined ? {} : { maxEventBufferBytes: o.maxEventBufferBytes }),
    overrunSettleMs: o.overrunSettleMs ?? 0,
    setTimer: (fn, ms) => {
      const t = { fn, ms, cancelled: false };
      timers.push(t);
      return { cancel: () => (t.cancelled = true) };
    },
  });
  const tick = (ms: number) => {
    clock += ms;
  };
  return { kernel, events, link, filter, internal, changes, expectChanges, lines, own, table, tick, timers };
}

/** Lets every scheduled socket drain (and what they start) run. */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const kindsByKey = (changes: Change[]) => {
  const m = new Map<string, LocalChangeKind[]>();
  for (const c of changes) m.set(c.key, [...(m.get(c.key) ?? []), c.kind]);
  return m;
};

const messages = (lines: Line[], msg: string) => lines.filter((l) => l.msg === msg);

describe('LocalTable: the initial dump', () => {
  it('fills the internal cache from the kernel and reports every entry and expectation as new', async () => {
    const s = setup();
    for (let i = 1; i <= 5; i++) preexisting(s.kernel, tcp(i));
    // Ours, so its event is filtered: only the dump can tell.
    expect(await s.link.createExpectation(expectation(tcp(1), 2121))).toBe(0);
    s.table.start();
    expect(s.table.initialDumpDone).toBe(false);
    const r = await s.table.initialDump();
    expect(r).toEqual({ created: 5, updated: 0, deleted: 0, expectations: { created: 1, updated: 0, deleted: 0 } });
    expect(s.table.initialDumpDone).toBe(true);
    expect(s.internal.size).toBe(5);
    expect(s.changes.map((c) => c.kind)).toEqual(['new', 'new', 'new', 'new', 'new']);
    expect(new Set(s.changes.map((c) => c.key))).toEqual(new Set([1, 2, 3, 4, 5].map((i) => entryKey(tcp(i)))));
    expect(s.expectChanges).toEqual([{ key: expectKey(expectation(tcp(1), 2121)), kind: 'new', entry: undefined }]);
    expect(s.internal.expectSize).toBe(1);
  });

  it('lets events that arrive during the dump win over it: no resurrection, no stale copy, no lost new key', async () => {
    let raced = false;
    const s = setup({
      wrapLink: (link) => ({
        dump: (onEntry, opts) => link.dump(onEntry, opts),
        dumpRecords: (onRecord, onEntry, opts) => {
          const race = () => {
            if (raced) return;
            raced = true;
            // The kernel moves on while our dump is half read: these events reach us before the rest of the dump.
            s.kernel.packetUpdate(tcp(2, { mark: 99 }));
            s.kernel.expire(tcp(3));
            s.kernel.packetNew(tcp(4));
            s.events.transport.drain();
          };
          return link.dumpRecords(
            (r, at) => {
              onRecord(r, at);
              race();
            },
            (e) => {
              onEntry(e);
              race();
            },
            opts,
          );
        },
        dumpExpectations: (onEntry, opts) => link.dumpExpectations(onEntry, opts),
        batch: (items, opts) => link.batch(items, opts),
        flushExpectations: (family) => link.flushExpectations(family),
      }),
    });
    for (let i = 1; i <= 3; i++) preexisting(s.kernel, tcp(i));
    s.table.start();
    const r = await s.table.initialDump();
    expect(raced).toBe(true);
    expect(s.internal.has(tcp(1))).toBe(true);
    // The dump still carried mark 0 and entry 3: the events are newer.
    expect(s.internal.get(tcp(2))?.mark).toBe(99);
    expect(s.internal.has(tcp(3))).toBe(false);
    expect(s.internal.has(tcp(4))).toBe(true);
    expect(s.internal.size).toBe(3);
    const kinds = kindsByKey(s.changes);
    expect(kinds.get(entryKey(tcp(3)))).toBeUndefined();
    expect(kinds.get(entryKey(tcp(4)))).toEqual(['new']);
    expect(s.changes.some((c) => c.kind === 'delete')).toBe(false);
    expect(r.deleted).toBe(0);
  });

  it('deletes and reports what the cache held and the kernel no longer has (a resync after missed events)', async () => {
    const s = setup();
    for (let i = 1; i <= 3; i++) s.kernel.packetNew(tcp(i));
    s.table.start();
    await s.table.initialDump();
    // Gone without an event reaching us (as after an overrun).
    s.kernel.table.delete(entryKey(tcp(2)));
    s.changes.length = 0;
    const r = await s.table.resyncKernel('command');
    expect(r).toEqual({ created: 0, updated: 0, deleted: 1, expectations: { created: 0, updated: 0, deleted: 0 } });
    expect(s.changes).toEqual([{ key: entryKey(tcp(2)), kind: 'delete', entry: expect.objectContaining({ orig: tcp(2).orig }) }]);
    expect(messages(s.lines, 'kernel resync done')).toEqual([
      { level: 'info', msg: 'kernel resync done', ctx: { reason: 'command', table: 'all', created: 0, updated: 0, deleted: 1, expectations: { created: 0, updated: 0, deleted: 0 } } },
    ]);
  });
});

describe('LocalTable: kernel events', () => {
  it('replicates new, changed and destroyed entries and expectations', async () => {
    const s = setup();
    s.table.start();
    await s.table.initialDump();
    s.kernel.packetNew(tcp(1));
    await settle();
    s.kernel.packetUpdate(tcp(1, { mark: 5 }));
    await settle();
    s.kernel.expire(tcp(1));
    await settle();
    expect(s.changes.map((c) => [c.key, c.kind, c.entry?.orig.src])).toEqual([
      [entryKey(tcp(1)), 'new', undefined],
      [entryKey(tcp(1)), 'update', undefined],
      [entryKey(tcp(1)), 'delete', tcp(1).orig.src],
    ]);
    expect(s.table.counters.ownKernelEvents).toBe(0);
  });

  it('ignores and counts events its own requests caused when the kernel filter is missing', async () => {
    const s = setup();
    // As if the kernel had refused the BPF filter: our own events reach the socket, marked own.
    s.events.transport.setFilter(Buffer.alloc(0));
    s.table.start();
    await s.table.initialDump();
    const batch = await s.link.batch([{ op: 'create', entry: tcp(7) }]);
    expect(batch.ok).toBe(1);
    expect(await s.link.createExpectation(expectation(tcp(7), 2121))).toBe(0);
    await settle();
    expect(s.table.counters.ownKernelEvents).toBe(2);
    expect(s.events.counters.own).toBe(2);
    expect(s.changes).toEqual([]);
    expect(s.expectChanges).toEqual([]);
    expect(s.internal.size).toBe(0);
    // A packet's event for the same flow is not ours.
    s.kernel.packetUpdate(tcp(7, { mark: 1 }));
    await settle();
    expect(s.changes.map((c) => c.kind)).toEqual(['new']);
    expect(s.table.counters.ownKernelEvents).toBe(2);
  });

  it('logs an undecodable event with its code', () => {
    const s = setup();
    s.table.onDecodeError(decodeError('EATTR_LEN', 4, 'short attribute'));
    expect(messages(s.lines, 'undecodable kernel event')).toEqual([
      { level: 'warn', msg: 'undecodable kernel event', ctx: { code: 'EATTR_LEN', reason: 'short attribute' } },
    ]);
  });
});

describe('LocalTable: overrun recovery', () => {
  it('doubles the buffer and resyncs once the queue has been read empty, recovering the dropped events', async () => {
    // Room for a few hundred queued events: the drop comes with part of the queue still unread.
    const s = setup({ receiveBufferBytes: 300_000 });
    // How many events had been read when the drop was reported, and when the reconciling dump began.
    let readAtOverrun = -1;
    let readAtDump = -1;
    const dump = s.link.dumpRecords.bind(s.link);
    s.link.dumpRecords = (onRecord, onEntry, opts) => {
      if (readAtDump < 0) readAtDump = s.events.counters.new;
      return dump(onRecord, onEntry, opts);
    };
    s.table.start();
    await s.table.initialDump();
    readAtDump = -1;
    const before = s.events.receiveBuffer;
    const resize = s.events.resizeReceiveBuffer.bind(s.events);
    s.events.resizeReceiveBuffer = (bytes: number) => {
      readAtOverrun = s.events.counters.new;
      return resize(bytes);
    };
    for (let i = 1; i <= 1000; i++) s.kernel.packetNew(tcp(i));
    await until(() => messages(s.lines, 'kernel resync done').length === 1, 'resync');
    await settle();
    expect(s.table.counters.overruns).toBe(1);
    expect(s.table.counters.overrunResyncs).toBe(1);
    expect(s.events.receiveBuffer).toBe(before * 2);
    expect(messages(s.lines, 'kernel event overrun: will resync with the kernel table')).toEqual([
      { level: 'warn', msg: 'kernel event overrun: will resync with the kernel table', ctx: { receiveBufferBytes: before * 2 } },
    ]);
    // Some events were dropped; those still queued behind the drop were read before the dump began.
    const delivered = s.events.counters.new;
    expect(delivered).toBeLessThan(1000);
    expect(readAtOverrun).toBeGreaterThan(0);
    expect(readAtOverrun).toBeLessThan(delivered);
    expect(readAtDump).toBe(delivered);
    // Everything the kernel has is cached and was replicated once.
    expect(s.internal.size).toBe(1000);
    const kinds = kindsByKey(s.changes);
    expect(kinds.size).toBe(1000);
    for (const k of kinds.values()) expect(k).toEqual(['new']);
    const done = messages(s.lines, 'kernel resync done')[0]!;
    expect(done.ctx).toMatchObject({ reason: 'overrun', updated: 0, deleted: 0 });
    expect((done.ctx as { created: number }).created).toBeGreaterThan(0);
  });

  it('does not dump on the overrun itself, only on the next empty queue', async () => {
    const s = setup();
    s.table.start();
    await s.table.initialDump();
    const dumps = s.link.counters.dumps;
    s.table.onOverrun();
    await settle();
    expect(s.link.counters.dumps).toBe(dumps);
    expect(s.table.counters.overrunResyncs).toBe(0);
    s.table.onEmpty();
    await until(() => s.table.counters.overrunResyncs === 1, 'resync');
    expect(s.link.counters.dumps).toBeGreaterThan(dumps);
    // Once recovered, an empty queue is just an empty queue.
    const after = s.link.counters.dumps;
    s.table.onEmpty();
    await settle();
    expect(s.link.counters.dumps).toBe(after);
  });

  it('waits until overruns have stopped for the settle time, then dumps once for all of them', async () => {
    const s = setup({ overrunSettleMs: 250 });
    s.table.start();
    await s.table.initialDump();
    const dumps = s.link.counters.dumps;
    // A burst: overruns with empty reads between them.
    s.table.onOverrun();
    s.tick(100);
    s.table.onEmpty();
    expect(s.timers.map((t) => t.ms)).toEqual([150]);
    s.table.onOverrun();
    s.tick(200);
    // One timer at a time: an empty read while one is armed arms no other.
    s.table.onEmpty();
    expect(s.timers).toHaveLength(1);
    await settle();
    expect(s.link.counters.dumps).toBe(dumps);
    // The first timer fires 50 ms early for the second overrun: it reads the queue, which arms the rest.
    s.timers[0]!.fn();
    await settle();
    expect(s.link.counters.dumps).toBe(dumps);
    expect(s.timers.map((t) => t.ms)).toEqual([150, 50]);
    s.tick(50);
    s.timers[1]!.fn();
    await until(() => s.table.counters.overrunResyncs === 1, 'resync');
    expect(s.table.counters.overruns).toBe(2);
    expect(s.link.counters.dumps).toBeGreaterThan(dumps);
    // Exactly the settle time after the last overrun is enough.
    const after = s.link.counters.dumps;
    s.table.onOverrun();
    s.tick(250);
    s.table.onEmpty();
    await until(() => s.table.counters.overrunResyncs === 2, 'second resync');
    expect(s.timers).toHaveLength(2);
    expect(s.link.counters.dumps).toBeGreaterThan(after);
  });

  it('a settle timer armed when the table closes is cancelled, and never reads the queue', async () => {
    const s = setup({ overrunSettleMs: 250 });
    s.table.onOverrun();
    s.table.onEmpty();
    // Before the initial dump an empty read waits for resumeOverrunRecovery(): no timer.
    expect(s.timers).toHaveLength(0);
    s.table.start();
    await s.table.initialDump();
    s.table.onEmpty();
    expect(s.timers.map((t) => t.ms)).toEqual([250]);
    s.table.close();
    expect(s.timers[0]!.cancelled).toBe(true);
    let drained = 0;
    s.events.transport.drain = () => {
      drained++;
    };
    s.timers[0]!.fn();
    expect(drained).toBe(0);
  });

  it('grows the buffer up to MAX_EVENT_BUFFER and no further', () => {
    const s = setup({ receiveBufferBytes: (MAX_EVENT_BUFFER / 4) * 3 });
    s.table.onOverrun();
    expect(s.events.receiveBuffer).toBe(MAX_EVENT_BUFFER);
    let resized = 0;
    const resize = s.events.resizeReceiveBuffer.bind(s.events);
    s.events.resizeReceiveBuffer = (b: number) => {
      resized++;
      return resize(b);
    };
    s.table.onOverrun();
    expect(resized).toBe(0);
    expect(s.events.receiveBuffer).toBe(MAX_EVENT_BUFFER);
    expect(s.table.counters.overruns).toBe(2);
  });

  it('an overrun during the initial dump waits for the dump, then for resumeOverrunRecovery()', async () => {
    const s = setup();
    s.kernel.packetNew(tcp(1));
    s.table.start();
    const dumping = s.table.initialDump();
    s.table.onOverrun();
    s.table.onEmpty();
    await dumping;
    await settle();
    expect(s.table.counters.overrunResyncs).toBe(0);
    const dumps = s.link.counters.dumps;
    s.table.resumeOverrunRecovery();
    await until(() => s.table.counters.overrunResyncs === 1, 'resync after the initial dump');
    expect(s.link.counters.dumps).toBe(dumps + 2);
  });

  it('an overrun during a resync triggers another pass once the queue is empty', async () => {
    const s = setup();
    s.table.start();
    await s.table.initialDump();
    s.table.onOverrun();
    s.table.onEmpty();
    // The first pass is running: a new drop must wait for it and for the next empty queue.
    s.table.onOverrun();
    s.table.onEmpty();
    await until(() => s.table.counters.overrunResyncs === 2, 'two resyncs');
    await settle();
    expect(s.table.counters.overrunResyncs).toBe(2);
    expect(messages(s.lines, 'kernel resync done')).toHaveLength(2);
  });

  it('logs a failed overrun resync and keeps taking events', async () => {
    let fail = false;
    const s = setup({
      wrapLink: (link) => ({
        dump: (onEntry, opts) => (fail ? Promise.reject(new Error('dump broke')) : link.dump(onEntry, opts)),
        dumpRecords: (onRecord, onEntry, opts) =>
          fail ? Promise.reject(new Error('dump broke')) : link.dumpRecords(onRecord, onEntry, opts),
        dumpExpectations: (onEntry, opts) => link.dumpExpectations(onEntry, opts),
        batch: (items, opts) => link.batch(items, opts),
        flushExpectations: (family) => link.flushExpectations(family),
      }),
    });
    s.table.start();
    await s.table.initialDump();
    fail = true;
    s.table.onOverrun();
    s.table.onEmpty();
    await until(() => messages(s.lines, 'kernel resync failed').length === 1, 'the failure logged');
    expect(messages(s.lines, 'kernel resync failed')[0]).toEqual({
      level: 'error',
      msg: 'kernel resync failed',
      ctx: { error: 'dump broke' },
    });
    s.kernel.packetNew(tcp(1));
    await settle();
    expect(s.internal.size).toBe(1);
  });
});

describe('LocalTable: resync', () => {
  it('a request while a resync runs makes it run once more, and the caller waits for nothing', async () => {
    const s = setup();
    s.table.start();
    await s.table.initialDump();
    // Entries the kernel has without telling us (lost events).
    s.kernel.table.set(entryKey(tcp(1)), tcp(1));
    const dumps = s.link.counters.dumps;
    const first = s.table.resyncKernel('command');
    // The first pass's dump request is out; this one it cannot see.
    s.kernel.table.set(entryKey(tcp(2)), tcp(2));
    const second = await s.table.resyncKernel('command');
    expect(second).toEqual({ created: 0, updated: 0, deleted: 0 });
    expect(await first).toEqual({ created: 2, updated: 0, deleted: 0, expectations: { created: 0, updated: 0, deleted: 0 } });
    // Two passes, each a conntrack and an expectation dump.
    expect(s.link.counters.dumps).toBe(dumps + 4);
    expect(s.internal.size).toBe(2);
    expect(messages(s.lines, 'kernel resync done')).toHaveLength(1);
    expect(s.table.counters.overrunResyncs).toBe(0);
  });

  it('an overrun during the last pass before close starts no other pass', async () => {
    const s = setup();
    s.table.start();
    await s.table.initialDump();
    const dumps = s.link.counters.dumps;
    const first = s.table.resyncKernel('command');
    s.table.onOverrun();
    s.table.close();
    await first;
    await settle();
    // One pass: a conntrack and an expectation dump.
    expect(s.link.counters.dumps).toBe(dumps + 2);
    expect(s.table.counters.overrunResyncs).toBe(0);
  });

  it('counts each overrun pass and stops repeating once closed', async () => {
    const s = setup();
    s.table.start();
    await s.table.initialDump();
    const dumps = s.link.counters.dumps;
    const first = s.table.resyncKernel('overrun');
    void s.table.resyncKernel('overrun');
    s.table.close();
    await first;
    expect(s.link.counters.dumps).toBe(dumps + 2);
    expect(s.table.counters.overrunResyncs).toBe(1);
  });

  it('a failed dump still replicates what it applied, deletes nothing, and frees the next resync', async () => {
    let fail = true;
    const s = setup({
      wrapLink: (link) => ({
        dump: (onEntry, opts) =>
          fail
            ? link.dump(onEntry, opts).then(() => Promise.reject(new Error('ENOBUFS on the dump')))
            : link.dump(onEntry, opts),
        dumpRecords: (onRecord, onEntry, opts) =>
          fail
            ? link.dumpRecords(onRecord, onEntry, opts).then(() => Promise.reject(new Error('ENOBUFS on the dump')))
            : link.dumpRecords(onRecord, onEntry, opts),
        dumpExpectations: (onEntry, opts) => link.dumpExpectations(onEntry, opts),
        batch: (items, opts) => link.batch(items, opts),
        flushExpectations: (family) => link.flushExpectations(family),
      }),
    });
    s.kernel.packetNew(tcp(1));
    s.table.start();
    await expect(s.table.resyncKernel('command')).rejects.toThrow('ENOBUFS on the dump');
    expect(s.changes.map((c) => c.kind)).toEqual(['new']);
    fail = false;
    expect(await s.table.resyncKernel('command')).toEqual({ created: 0, updated: 0, deleted: 0, expectations: { created: 0, updated: 0, deleted: 0 } });
  });
});

describe('LocalTable: flush-kernel', () => {
  it('deletes what the filter accepts, counts ENOENT as deleted, keeps the rest, and replicates nothing', async () => {
    const s = setup({ syncLink: ['10.250.0.1'], rules: { ...NO_RULES, protocols: { ignore: ['udp'] } } });
    for (let i = 1; i <= 6; i++) s.kernel.packetNew(tcp(i));
    const syncLink = tcp(50, { src: '10.250.0.1', dst: '10.250.0.2' });
    const loopback = tcp(51, { src: '127.0.0.1', dst: '127.0.0.1' });
    const udp: ConntrackEntry = { ...tcp(52), orig: { ...tcp(52).orig, proto: IPPROTO.UDP }, reply: { ...tcp(52).reply, proto: IPPROTO.UDP }, protoinfo: undefined };
    for (const e of [syncLink, loopback, udp]) s.kernel.packetNew(e);
    expect(await s.link.createExpectation(expectation(tcp(1), 2121))).toBe(0);
    s.table.start();
    await s.table.initialDump();
    expect(s.internal.size).toBe(6);
    s.changes.length = 0;
    s.expectChanges.length = 0;
    // The first victim vanished meanwhile (ENOENT), the second is refused.
    s.kernel.injectError('delete', ENOENT, 1);
    s.kernel.injectError('delete', EBUSY, 1);
    const flushing = s.table.flushKernel();
    s.tick(7);
    const r = await flushing;
    expect(r).toEqual({ deleted: 5, failed: 1, failures: { EBUSY: 1 }, expectations: { deleted: 1 }, durationMs: 7 });
    // Both failed deletes left their entry in the fake kernel; the refused one stays cached too.
    expect([...s.kernel.table.keys()].sort()).toEqual([tcp(1), tcp(2), syncLink, loopback, udp].map(entryKey).sort());
    expect([...s.internal.values()].map(entryKey)).toEqual([entryKey(tcp(2))]);
    expect(s.kernel.expectations.size).toBe(0);
    await settle();
    expect(s.changes).toEqual([]);
    expect(messages(s.lines, 'kernel table flushed')).toEqual([
      { level: 'info', msg: 'kernel table flushed', ctx: { table: 'all', ...r } },
    ]);
  });
});

describe('LocalTable: purge-timeout', () => {
  it('shortens only filtered entries of other nodes, drops them from the cache and tells the peers', async () => {
    const s = setup({ syncLink: ['10.250.0.1'], own: ['10.9.9.9'] });
    const foreign = tcp(1);
    const alreadyShort = tcp(2, { timeout: 10 });
    const fromUs = tcp(3, { src: '10.9.9.9' });
    const toUs = tcp(4, { dst: '10.9.9.9' });
    const syncLink = tcp(5, { src: '10.250.0.1', dst: '10.250.0.2' });
    for (const e of [foreign, alreadyShort, fromUs, toUs, syncLink]) s.kernel.packetNew(e);
    s.table.start();
    await s.table.initialDump();
    expect(s.internal.size).toBe(4);
    s.changes.length = 0;
    const r = await s.table.purgeTimeout();
    expect(r).toEqual({ examined: 5, shortened: 1, local: 2, failed: 0, failures: {}, timeoutSeconds: 30 });
    const timeout = (e: ConntrackEntry) => s.kernel.table.get(entryKey(e))?.timeout;
    expect(timeout(foreign)).toBe(30);
    expect(timeout(alreadyShort)).toBe(10);
    expect(timeout(fromUs)).toBe(300);
    expect(timeout(toUs)).toBe(300);
    expect(timeout(syncLink)).toBe(300);
    expect(new Set([...s.internal.values()].map(entryKey))).toEqual(new Set([fromUs, toUs].map(entryKey)));
    await settle();
    expect(kindsByKey(s.changes)).toEqual(
      new Map([
        [entryKey(foreign), ['delete']],
        [entryKey(alreadyShort), ['delete']],
      ]),
    );
    expect(messages(s.lines, 'purge timeout applied')).toEqual([{ level: 'info', msg: 'purge timeout applied', ctx: r }]);
  });

  it('reads the own addresses at each call and reports failures other than ENOENT', async () => {
    const s = setup();
    for (let i = 1; i <= 3; i++) s.kernel.packetNew(tcp(i));
    s.table.start();
    await s.table.initialDump();
    s.own.list = [tcp(3).orig.src];
    s.kernel.injectError('update', ENOENT, 1);
    s.kernel.injectError('update', EPERM, 1);
    const r = await s.table.purgeTimeout();
    expect(r).toMatchObject({ examined: 3, shortened: 0, local: 1, failed: 1, failures: { EPERM: 1 } });
    s.own.list = [];
    const again = await s.table.purgeTimeout();
    expect(again).toMatchObject({ examined: 3, local: 0, shortened: 3, failed: 0 });
  });
});

// Every destructive command touches exactly what it names (conntrackd's
// -F ct|expect, -R ct|expect) and nothing else: a flag that deletes more
// than asked loses state for good.
describe('LocalTable: the scope of flush-kernel and resync', () => {
  /** Three filtered flows, one the filter ignores, an ftp and a sip expectation, all cached. */
  async function populated(o: Setup = {}) {
    const s = setup({ syncLink: ['10.250.0.1'], ...o });
    for (let i = 1; i <= 3; i++) s.kernel.packetNew(tcp(i));
    const syncLink = tcp(50, { src: '10.250.0.1', dst: '10.250.0.2' });
    s.kernel.packetNew(syncLink);
    const ftp = expectation(tcp(1), 2121, 'ftp');
    const sip = expectation(tcp(2), 5061, 'sip');
    expect(await s.link.createExpectation(ftp)).toBe(0);
    expect(await s.link.createExpectation(sip)).toBe(0);
    s.table.start();
    await s.table.initialDump();
    s.changes.length = 0;
    s.expectChanges.length = 0;
    return { ...s, syncLink, ftp, sip };
  }
  const kernelKeys = (k: FakeKernel) => [...k.table.keys()].sort();
  const kernelExpect = (k: FakeKernel) => [...k.expectations.keys()].sort();
  const cachedExpect = (c: InternalCache) => [...c.expectEntries()].map(([key]) => key).sort();

  it('ct: deletes the filtered conntrack entries and not one expectation, in the kernel or the cache', async () => {
    const s = await populated();
    expect(s.internal.expectSize).toBe(2);
    const r = await s.table.flushKernel('ct');
    expect(r).toEqual({ deleted: 3, failed: 0, failures: {}, durationMs: 0 });
    expect(kernelKeys(s.kernel)).toEqual([entryKey(s.syncLink)]);
    expect(kernelExpect(s.kernel)).toEqual([expectKey(s.ftp), expectKey(s.sip)].sort());
    expect(s.internal.size).toBe(0);
    expect(cachedExpect(s.internal)).toEqual([expectKey(s.ftp), expectKey(s.sip)].sort());
  });

  it('expect: deletes the expectations and not one conntrack entry, in the kernel or the cache', async () => {
    const s = await populated();
    const before = kernelKeys(s.kernel);
    const r = await s.table.flushKernel('expect');
    expect(r).toEqual({ deleted: 0, failed: 0, failures: {}, expectations: { deleted: 2 }, durationMs: 0 });
    expect(kernelKeys(s.kernel)).toEqual(before);
    expect(before).toHaveLength(4);
    expect(s.internal.size).toBe(3);
    expect(s.kernel.expectations.size).toBe(0);
    expect(s.internal.expectSize).toBe(0);
    await settle();
    expect(s.changes).toEqual([]);
    expect(s.expectChanges).toEqual([]);
  });

  it('no kind: both, and still nothing the filter ignores', async () => {
    const s = await populated();
    const r = await s.table.flushKernel();
    expect(r).toEqual({ deleted: 3, failed: 0, failures: {}, expectations: { deleted: 2 }, durationMs: 0 });
    expect(kernelKeys(s.kernel)).toEqual([entryKey(s.syncLink)]);
    expect(s.kernel.expectations.size).toBe(0);
  });

  it('expect with filter.expectations { helpers }: only those helpers\' expectations go', async () => {
    // A leading part in any case matches, as in conntrackd.
    const s = await populated({ expectations: { helpers: ['SI'] } });
    // The ftp expectation was never cached: its helper is not synced.
    expect(cachedExpect(s.internal)).toEqual([expectKey(s.sip)]);
    const r = await s.table.flushKernel('expect');
    expect(r.expectations).toEqual({ deleted: 1 });
    expect(kernelExpect(s.kernel)).toEqual([expectKey(s.ftp)]);
    expect(s.kernel.table.size).toBe(4);
    expect(s.internal.expectSize).toBe(0);
  });

  it('with filter.expectations none no expectation is touched, as conntrackd without ExpectationSync', async () => {
    const s = await populated({ expectations: 'none' });
    expect(s.internal.expectSize).toBe(0);
    const dumps = s.link.counters.dumps;
    expect(await s.table.flushKernel('expect')).toEqual({ deleted: 0, failed: 0, failures: {}, durationMs: 0 });
    // Not even read.
    expect(s.link.counters.dumps).toBe(dumps);
    expect(s.kernel.expectations.size).toBe(2);
    expect(s.kernel.table.size).toBe(4);
    const all = await s.table.flushKernel();
    expect(all).toEqual({ deleted: 3, failed: 0, failures: {}, durationMs: 0 });
    expect(s.kernel.expectations.size).toBe(2);
  });

  it('resync ct reads only the conntrack table, resync expect only the expectations', async () => {
    const s = await populated();
    // Lost events: the kernel has a flow and no longer the sip expectation, and we were not told.
    preexisting(s.kernel, tcp(9));
    s.kernel.expectations.delete(expectKey(s.sip));
    const dumps = s.link.counters.dumps;
    expect(await s.table.resyncKernel('command', 'ct')).toEqual({ created: 1, updated: 0, deleted: 0 });
    expect(s.link.counters.dumps).toBe(dumps + 1);
    expect(s.internal.expectSize).toBe(2);
    expect(s.expectChanges).toEqual([]);
    expect(await s.table.resyncKernel('command', 'expect')).toEqual({
      created: 0,
      updated: 0,
      deleted: 0,
      expectations: { created: 0, updated: 0, deleted: 1 },
    });
    expect(s.link.counters.dumps).toBe(dumps + 2);
    expect(s.internal.expectSize).toBe(1);
    expect(s.expectChanges.map((c) => c.kind)).toEqual(['delete']);
    expect(s.changes.map((c) => c.kind)).toEqual(['new']);
  });
});

describe('LocalTable: filter.expectations on events', () => {
  it('keeps the expectation events of the listed helpers only; a destroy of a cached one still applies', async () => {
    const s = setup({ expectations: { helpers: ['ftp'] } });
    s.kernel.packetNew(tcp(1));
    s.kernel.packetNew(tcp(2));
    s.table.start();
    await s.table.initialDump();
    // From another process: events reach us.
    const other = new ConntrackLink({ transportFactory: s.kernel.openSocket });
    expect(await other.createExpectation(expectation(tcp(1), 2121, 'ftp'))).toBe(0);
    expect(await other.createExpectation(expectation(tcp(2), 5061, 'sip'))).toBe(0);
    await until(() => s.expectChanges.length >= 1, 'the ftp expectation');
    await settle();
    expect(s.expectChanges.map((c) => [c.key, c.kind])).toEqual([[expectKey(expectation(tcp(1), 2121)), 'new']]);
    await other.flushExpectations();
    await until(() => s.internal.expectSize === 0, 'the destroy');
    expect(s.expectChanges.map((c) => c.kind)).toEqual(['new', 'delete']);
    other.close();
  });
});

describe('LocalTable: kernel.netlinkBufferMaxBytes', () => {
  it('caps the event buffer growth and says so once', () => {
    const s = setup({ receiveBufferBytes: 1 << 20, maxEventBufferBytes: 3 << 20 });
    s.table.onOverrun();
    expect(s.events.receiveBuffer).toBe(2 << 20);
    s.table.onOverrun();
    expect(s.events.receiveBuffer).toBe(3 << 20);
    s.table.onOverrun();
    s.table.onOverrun();
    expect(s.events.receiveBuffer).toBe(3 << 20);
    expect(s.lines.filter((l) => l.msg.startsWith('kernel event buffer at its cap'))).toHaveLength(1);
    expect(s.table.counters.overruns).toBe(4);
  });
});

// Direct calls and exact totals for what the tests above reach only in
// passing (issue 18, the survivors of footnote 15 in TESTING.md).
describe('LocalTable: handlers called directly', () => {
  const ev = (type: 'new' | 'update' | 'destroy', entry: ConntrackEntry, own = false) => ({ type, entry, pid: own ? 7 : 0, own });

  it('onEvent (entry objects): new, update, unchanged, destroy, and own events counted and dropped', () => {
    const s = setup();
    s.table.onEvent(ev('new', tcp(1)));
    s.table.onEvent(ev('update', tcp(1, { mark: 4 })));
    s.table.onEvent(ev('update', tcp(1, { mark: 4 })));
    s.table.onEvent(ev('new', tcp(2), true));
    s.table.onEvent(ev('destroy', tcp(1)));
    s.table.onEvent(ev('destroy', tcp(3)));
    expect(s.changes.map((c) => [c.key, c.kind, c.entry?.mark])).toEqual([
      [entryKey(tcp(1)), 'new', undefined],
      [entryKey(tcp(1)), 'update', undefined],
      [entryKey(tcp(1)), 'delete', 4],
    ]);
    expect(s.table.counters.ownKernelEvents).toBe(1);
    expect(s.internal.size).toBe(0);
  });

  it('onExpectEvent: the policy judges creates and updates; a destroy always passes, even one without its helper', () => {
    const s = setup({ expectations: { helpers: ['ftp'] } });
    s.table.onEvent(ev('new', tcp(1)));
    s.table.onEvent(ev('new', tcp(2)));
    const ftp = expectation(tcp(1), 2121, 'ftp');
    const sip = expectation(tcp(2), 5060, 'sip');
    const xev = (type: 'new' | 'update' | 'destroy', entry: ExpectEntry, own = false) => ({ type, entry, pid: 0, own });
    s.table.onExpectEvent(xev('new', ftp));
    s.table.onExpectEvent(xev('new', sip));
    s.table.onExpectEvent(xev('update', { ...ftp, mask: { ...ftp.mask, dport: 0xff00 } }));
    s.table.onExpectEvent(xev('update', { ...ftp, mask: { ...ftp.mask, dport: 0xff00 } }));
    s.table.onExpectEvent(xev('destroy', ftp, true));
    expect(s.internal.expectSize).toBe(1);
    // The kernel's destroy for a key we hold, carrying no helper name: it still goes.
    const { helper: _h, ...bare } = ftp;
    s.table.onExpectEvent(xev('destroy', bare));
    s.table.onExpectEvent(xev('destroy', sip));
    expect(s.expectChanges.map((c) => [c.key, c.kind, c.entry?.tuple.dport])).toEqual([
      [expectKey(ftp), 'new', undefined],
      [expectKey(ftp), 'new', undefined],
      [expectKey(ftp), 'delete', 2121],
    ]);
    expect(s.internal.expectSize).toBe(0);
    expect(s.table.counters.ownKernelEvents).toBe(1);
  });

  it('the buffer at its cap is said once, with its size', () => {
    const s = setup({ receiveBufferBytes: 1 << 20, maxEventBufferBytes: 1 << 20 });
    s.table.onOverrun();
    s.table.onOverrun();
    expect(s.lines.filter((l) => l.level === 'warn')).toEqual([
      {
        level: 'warn',
        msg: 'kernel event buffer at its cap (kernel.netlinkBufferMaxBytes): it grows no further',
        ctx: { receiveBufferBytes: 1 << 20 },
      },
      { level: 'warn', msg: 'kernel event overrun: will resync with the kernel table', ctx: { receiveBufferBytes: 1 << 20 } },
      { level: 'warn', msg: 'kernel event overrun: will resync with the kernel table', ctx: { receiveBufferBytes: 1 << 20 } },
    ]);
  });
});

describe('LocalTable: resync totals', () => {
  it('adds up every pass: created, updated and deleted entries and expectations', async () => {
    let passes = 0;
    let onPassDone: () => void = () => undefined;
    const s = setup({
      wrapLink: (link) => ({
        dump: (onEntry, opts) => link.dump(onEntry, opts),
        dumpRecords: (onRecord, onEntry, opts) => link.dumpRecords(onRecord, onEntry, opts),
        dumpExpectations: async (onEntry, opts) => {
          const n = await link.dumpExpectations(onEntry, opts);
          passes++;
          onPassDone();
          return n;
        },
        batch: (items, opts) => link.batch(items, opts),
        flushExpectations: (family) => link.flushExpectations(family),
      }),
    });
    for (let i = 1; i <= 4; i++) preexisting(s.kernel, tcp(i));
    const x = (n: number, port: number) => expectation(tcp(n), port);
    for (const e of [x(1, 2121), x(2, 2122), x(1, 2123), x(2, 2124)]) s.kernel.expectations.set(expectKey(e), e);
    s.table.start();
    await s.table.initialDump();
    expect(s.internal.expectSize).toBe(4);
    s.changes.length = 0;
    s.expectChanges.length = 0;
    const k = s.kernel;
    const changed = (e: ExpectEntry) => k.expectations.set(expectKey(e), { ...e, flags: 1 });
    // Pass 1 finds one of each; pass 2, asked for while pass 1 runs, one more of each.
    k.table.set(entryKey(tcp(5)), tcp(5));
    k.table.set(entryKey(tcp(1)), tcp(1, { mark: 1 }));
    k.table.delete(entryKey(tcp(3)));
    k.expectations.set(expectKey(x(1, 3000)), x(1, 3000));
    changed(x(1, 2121));
    k.expectations.delete(expectKey(x(2, 2122)));
    onPassDone = () => {
      if (passes !== 2) return;
      k.table.set(entryKey(tcp(6)), tcp(6));
      k.table.set(entryKey(tcp(2)), tcp(2, { mark: 2 }));
      k.table.delete(entryKey(tcp(4)));
      k.expectations.set(expectKey(x(2, 3001)), x(2, 3001));
      changed(x(2, 2124));
      k.expectations.delete(expectKey(x(1, 2123)));
      void s.table.resyncKernel('command');
    };
    const r = await s.table.resyncKernel('command');
    expect(passes).toBe(3);
    expect(r).toEqual({ created: 2, updated: 2, deleted: 2, expectations: { created: 2, updated: 2, deleted: 2 } });
    // Each difference went to the peers as what it is.
    expect(kindsByKey(s.changes)).toEqual(
      new Map([
        [entryKey(tcp(5)), ['new']],
        [entryKey(tcp(1)), ['update']],
        [entryKey(tcp(3)), ['delete']],
        [entryKey(tcp(6)), ['new']],
        [entryKey(tcp(2)), ['update']],
        [entryKey(tcp(4)), ['delete']],
      ]),
    );
    expect(s.expectChanges.map((c) => [c.key, c.kind])).toEqual([
      [expectKey(x(1, 3000)), 'new'],
      [expectKey(x(1, 2121)), 'new'],
      [expectKey(x(2, 2122)), 'delete'],
      [expectKey(x(2, 3001)), 'new'],
      [expectKey(x(2, 2124)), 'new'],
      [expectKey(x(1, 2123)), 'delete'],
    ]);
  });

  it('with filter.expectations none: the conntrack table only, and no expectation totals', async () => {
    const s = setup({ expectations: 'none' });
    preexisting(s.kernel, tcp(1));
    s.table.start();
    const dumps = s.link.counters.dumps;
    expect(await s.table.resyncKernel('command')).toEqual({ created: 1, updated: 0, deleted: 0 });
    expect(await s.table.resyncKernel('command', 'expect')).toEqual({ created: 0, updated: 0, deleted: 0 });
    expect(s.link.counters.dumps).toBe(dumps + 1);
  });
});

describe('LocalTable: whole-table operations, exactly', () => {
  it('flush-kernel with every expectation replicated flushes them in one request, with helpers one per helper', async () => {
    const calls: Array<[number | undefined, string | undefined]> = [];
    const make = (expectations: ExpectationPolicy) =>
      setup({
        expectations,
        wrapLink: (link) => ({
          dump: (onEntry, opts) => link.dump(onEntry, opts),
          dumpRecords: (onRecord, onEntry, opts) => link.dumpRecords(onRecord, onEntry, opts),
          dumpExpectations: (onEntry, opts) => link.dumpExpectations(onEntry, opts),
          batch: (items, opts) => link.batch(items, opts),
          flushExpectations: (family, helper) => {
            calls.push([family, helper]);
            return link.flushExpectations(family, helper);
          },
        }),
      });
    const fill = async (s: ReturnType<typeof setup>) => {
      for (let i = 1; i <= 3; i++) preexisting(s.kernel, tcp(i));
      for (const e of [expectation(tcp(1), 2121, 'ftp'), expectation(tcp(2), 5060, 'sip'), expectation(tcp(3), 2122, 'ftp')]) {
        s.kernel.expectations.set(expectKey(e), e);
      }
    };
    const all = make('all');
    await fill(all);
    expect((await all.table.flushKernel('expect')).expectations).toEqual({ deleted: 3 });
    // flush-kernel ct names no expectations at all, not even as undefined.
    expect(Object.keys(await all.table.flushKernel('ct')).sort()).toEqual(['deleted', 'durationMs', 'failed', 'failures']);
    expect(calls).toEqual([[undefined, undefined]]);
    calls.length = 0;
    const some = make({ helpers: ['ftp', 'sip'] });
    await fill(some);
    expect((await some.table.flushKernel('expect')).expectations).toEqual({ deleted: 3 });
    expect(calls).toEqual([
      [0, 'ftp'],
      [0, 'sip'],
    ]);
    expect(some.kernel.expectations.size).toBe(0);
  });

  it('purge-timeout leaves an entry whose timeout is already at the purge timeout, shortens one without any', async () => {
    const s = setup();
    const { timeout: _t, ...bare } = tcp(4);
    for (const e of [tcp(1, { timeout: 30 }), tcp(2, { timeout: 31 }), tcp(3, { timeout: 29 }), bare]) s.kernel.packetNew(e);
    s.table.start();
    await s.table.initialDump();
    let sent: number[] = [];
    const batch = s.link.batch.bind(s.link);
    s.link.batch = (items, opts) => {
      sent = items.map((i) => i.entry.orig.sport! - 10000);
      return batch(items, opts);
    };
    const r = await s.table.purgeTimeout();
    expect(sent).toEqual([2, 4]);
    expect(r).toMatchObject({ examined: 4, shortened: 2, local: 0, failed: 0 });
  });

  it('flush-kernel and purge-timeout read the event queue between chunks of their batch', async () => {
    const drained: number[] = [];
    let extra = 5000;
    const s = setup({
      wrapLink: (link) => ({
        dump: (onEntry, opts) => link.dump(onEntry, opts),
        dumpRecords: (onRecord, onEntry, opts) => link.dumpRecords(onRecord, onEntry, opts),
        dumpExpectations: (onEntry, opts) => link.dumpExpectations(onEntry, opts),
        flushExpectations: (family) => link.flushExpectations(family),
        batch: (items, opts) =>
          link.batch(items, {
            ...opts,
            betweenChunks: () => {
              // A packet's event is queued: reading the queue now applies it before the next chunk.
              s.kernel.packetNew(tcp(extra++, { src: '10.30.0.1' }));
              const before = s.internal.size;
              opts?.betweenChunks?.();
              drained.push(s.internal.size - before);
            },
          }),
      }),
    });
    // More than one chunk (1024 requests) of each.
    for (let i = 1; i <= 1100; i++) preexisting(s.kernel, tcp(i));
    s.table.start();
    await s.table.initialDump();
    await s.table.purgeTimeout();
    expect(drained).toEqual([1]);
    for (let i = 1; i <= 1100; i++) preexisting(s.kernel, tcp(i));
    await s.table.flushKernel('ct');
    expect(drained).toEqual([1, 1]);
  });
});
