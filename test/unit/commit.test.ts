// Commit and inject against the fake kernel (real ctnetlink bytes), the BPF
// own-event filter, and the CLI's argument parsing.
import { EntryRecord } from '../../src/kernel/ct-record.js';
import { describe, expect, it } from 'vitest';
import { commitExternal, commitForm } from '../../src/cache/commit.js';
import { ExternalCache, KERNEL_CURRENT, KERNEL_STALE } from '../../src/cache/external-cache.js';
import { Injector } from '../../src/cache/inject.js';
import { DEFAULT_SOCKET } from '../../src/cli.js';
import { parseArgs, UsageError } from '../../src/cli/parse.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { dropPortidsFilter, runPortidsFilter } from '../../src/kernel/bpf.js';
import { type BatchOptions, type BatchSource, ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import { type ConntrackEntry, entryKey, type ExpectEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { natCreateForm } from '../../src/kernel/ct-codec.js';
import { ftpExpectation } from './expectations.js';

function tcp(i: number, extra: Partial<ConntrackEntry> = {}): ConntrackEntry {
  const src = `10.99.${(i >> 8) & 255}.${i & 255}`;
  return {
    family: AF_INET,
    orig: { src, dst: '10.99.250.1', proto: IPPROTO.TCP, sport: 1000, dport: 21 },
    reply: { src: '10.99.250.1', dst: src, proto: IPPROTO.TCP, sport: 21, dport: 1000 },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    protoinfo: { tcp: { state: 3 } },
    ...extra,
  };
}

function setup() {
  const kernel = new FakeKernel();
  const link = new ConntrackLink({ transportFactory: kernel.openSocket });
  const cache = new ExternalCache({ limit: 1000 });
  return { kernel, link, cache };
}

describe('commitExternal', () => {
  it('writes each timeout less the time since the cache received it', async () => {
    let t = 5_000_000;
    const kernel = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: kernel.openSocket });
    const cache = new ExternalCache({ limit: 10, now: () => t });
    cache.applyRemote('fw2', 1, 1, 'new', tcp(1));
    t += 100_000;
    cache.applyRemote('fw2', 1, 2, 'new', tcp(2));
    t += 20_500;
    // Ages 120.5 s and 20.5 s: whole seconds off (commitTimeout).
    const r = await commitExternal(cache, link, { now: () => t });
    expect(r.committed).toBe(2);
    expect([kernel.table.get(entryKey(tcp(1)))!.timeout, kernel.table.get(entryKey(tcp(2)))!.timeout]).toEqual([180, 280]);
  });

  it('creates every entry, masters before related ones, and reports counts', async () => {
    const { kernel, link, cache } = setup();
    const master = tcp(1);
    const related: ConntrackEntry = {
      ...tcp(2, {}),
      orig: { ...tcp(2).orig, dport: 20 },
      reply: { ...tcp(2).reply, sport: 20 },
      master: master.orig,
    };
    // The related entry arrives first: commit must still put the master in first.
    cache.applyRemote('fw1', 1, 1, 'new', related);
    cache.applyRemote('fw1', 1, 2, 'new', master);
    cache.applyRemote('fw3', 1, 1, 'new', tcp(3));
    const sent: string[] = [];
    const spy = { batchOf: link.batchOf.bind(link), createExpectation: link.createExpectation.bind(link) };
    spy.batchOf = async (items, o) => {
      for (let i = 0; i < items.length; i++) {
        const item = items.entry(i);
        const e = item instanceof EntryRecord ? item.entry() : item;
        if (e === null) continue;
        sent.push(`${items.op(i)}:${e.orig.src}:${e.orig.dport}`);
      }
      return link.batchOf(items, o);
    };
    const r = await commitExternal(cache, spy);
    expect(r).toMatchObject({ entries: 3, committed: 3, updated: 0, unchanged: 0, failed: 0, peers: ['fw1', 'fw3'] });
    expect(sent.indexOf('create:10.99.0.1:21')).toBeLessThan(sent.indexOf('create:10.99.0.2:20'));
    expect(kernel.table.size).toBe(3);
    expect(cache.get(master)!.kernelCopy).toBe(KERNEL_CURRENT);
  });

  it('is idempotent, updates what it wrote before, replaces what the kernel had of its own', async () => {
    const { kernel, link, cache } = setup();
    for (let i = 0; i < 10; i++) cache.applyRemote('fw1', 1, i + 1, 'new', tcp(i));
    // The kernel's own, stale version of entry 0.
    kernel.packetNew({ ...tcp(0, { mark: 99 }), status: IPS.CONFIRMED });
    const first = await commitExternal(cache, link);
    expect(first).toMatchObject({ committed: 9, updated: 1, unchanged: 0, failed: 0 });
    expect(kernel.table.get(entryKey(tcp(0)))!.mark).toBeUndefined();
    const again = await commitExternal(cache, link);
    expect(again).toMatchObject({ committed: 0, updated: 0, unchanged: 10, failed: 0 });
    // A newer version from the peer: the kernel's copy is stale and gets updated in place.
    cache.applyRemote('fw1', 1, 20, 'update', tcp(5, { mark: 5 }));
    expect(cache.get(tcp(5))!.kernelCopy).toBe(KERNEL_STALE);
    const third = await commitExternal(cache, link);
    expect(third).toMatchObject({ committed: 0, updated: 1, unchanged: 9 });
    expect(kernel.table.get(entryKey(tcp(5)))!.mark).toBe(5);
  });

  it('writes each record as it is when its chunk is sent: updated meanwhile in its new version, deleted meanwhile not at all', async () => {
    const kernel = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: kernel.openSocket });
    const cache = new ExternalCache({ limit: 5000 });
    const n = 3000; // three chunks of 1024
    for (let i = 0; i < n; i++) cache.applyRemote('fw1', 1, i + 1, 'new', tcp(i));
    let calls = 0;
    const betweenChunks = () => {
      if (calls++ > 0) return;
      // After the first chunk: one later record changes, one goes, and one
      // already sent goes too (its kernel copy stays, as the kernel wrote it).
      cache.applyRemote('fw1', 1, n + 1, 'update', tcp(2500, { mark: 7 }));
      cache.applyRemote('fw1', 1, n + 2, 'delete', tcp(2600));
      cache.applyRemote('fw1', 1, n + 3, 'delete', tcp(10));
    };
    const r = await commitExternal(cache, link, { betweenChunks });
    expect(calls).toBeGreaterThan(0);
    expect(r).toMatchObject({ entries: n - 1, committed: n - 1, updated: 0, unchanged: 0, failed: 0 });
    expect(kernel.table.has(entryKey(tcp(2600)))).toBe(false);
    expect(kernel.table.has(entryKey(tcp(10)))).toBe(true);
    expect(kernel.table.get(entryKey(tcp(2500)))!.mark).toBe(7);
    // The version written is the one noted: a repeat commit changes nothing.
    expect(cache.get(tcp(2500))!.kernelCopy).toBe(KERNEL_CURRENT);
    const again = await commitExternal(cache, link);
    expect(again).toMatchObject({ entries: n - 2, committed: 0, updated: 0, unchanged: n - 2 });
  });

  it('commits one peer with origin, and reports failures by errno', async () => {
    const { kernel, link, cache } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw2', 1, 1, 'new', tcp(2));
    kernel.injectError('create', 12); // ENOMEM for the next create
    const r = await commitExternal(cache, link, { origin: 'fw2' });
    expect(r).toMatchObject({ entries: 1, committed: 0, failed: 1, failures: { ENOMEM: 1 }, peers: ['fw2'] });
  });

  it('marks TCP entries liberal and never sends EXPECTED', () => {
    const f = commitForm({ ...tcp(1), status: IPS.EXPECTED | IPS.SEEN_REPLY });
    expect(f.status).toBe(IPS.SEEN_REPLY);
    expect(f.protoinfo!.tcp).toMatchObject({ flagsOrig: { flags: 8, mask: 8 }, flagsReply: { flags: 8, mask: 8 } });
  });
});

describe('natCreateForm', () => {
  it('sends a NATed entry un-translated, so the kernel’s NAT setup translates it', () => {
    const snat: ConntrackEntry = {
      ...tcp(1),
      reply: { src: '10.99.250.1', dst: '10.95.0.1', proto: IPPROTO.TCP, sport: 21, dport: 30000 },
    };
    const f = natCreateForm(snat);
    expect(f.nat).toBe(true);
    expect(f.entry.reply).toMatchObject({ src: '10.99.250.1', dst: '10.99.0.1', sport: 21, dport: 1000 });
    expect(natCreateForm(tcp(2))).toEqual({ entry: tcp(2), nat: false });
    const dnat: ConntrackEntry = {
      ...tcp(3),
      reply: { src: '10.99.200.7', dst: '10.99.0.3', proto: IPPROTO.TCP, sport: 8080, dport: 1000 },
    };
    expect(natCreateForm(dnat).entry.reply).toMatchObject({ src: '10.99.250.1', sport: 21 });
  });
});

describe('commit of NATed entries (FakeKernel sets NAT up as the kernel does)', () => {
  const snat = (i: number, port = 30000 + i): ConntrackEntry => ({
    ...tcp(i),
    reply: { src: '10.99.250.1', dst: '192.0.2.1', proto: IPPROTO.TCP, sport: 21, dport: port },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
  });
  const dnat = (i: number): ConntrackEntry => ({
    ...tcp(i),
    reply: { src: '10.98.0.7', dst: tcp(i).orig.src, proto: IPPROTO.TCP, sport: 8021, dport: 1000 },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.DST_NAT | IPS.DST_NAT_DONE | IPS.SRC_NAT_DONE,
  });
  const both = (i: number): ConntrackEntry => ({
    ...tcp(i),
    reply: { src: '10.98.0.7', dst: '192.0.2.1', proto: IPPROTO.TCP, sport: 8021, dport: 40000 },
    status: IPS.SEEN_REPLY | IPS.ASSURED | IPS.SRC_NAT | IPS.DST_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE,
  });
  const NAT = IPS.SRC_NAT | IPS.DST_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE;

  it.each([
    { name: 'SNAT (address and port)', entry: snat(1), bits: IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE },
    { name: 'SNAT (address only)', entry: snat(2, 1000), bits: IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE },
    { name: 'DNAT', entry: dnat(3), bits: IPS.DST_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE },
    { name: 'SNAT and DNAT', entry: both(4), bits: NAT },
    { name: 'no NAT', entry: tcp(5), bits: 0 },
  ])('$name: the kernel ends up with the replicated reply tuple and NAT status', async ({ entry, bits }) => {
    const { kernel, link, cache } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', entry);
    const r = await commitExternal(cache, link);
    expect(r).toMatchObject({ committed: 1, failed: 0 });
    const k = kernel.table.get(entryKey(entry))!;
    expect(k.reply).toEqual(entry.reply);
    expect(k.status! & NAT).toBe(bits);
  });

  it('a reply tuple sent already translated, without NAT setup, gets no NAT status (it would translate no packet)', async () => {
    const { kernel, link } = setup();
    const e = snat(6);
    // An upsert of an absent entry creates it the way an update is sent: without CTA_NAT_*.
    const r = await link.batchOf({ length: 1, op: () => 'upsert', entry: () => e });
    expect(r.failed).toBe(0);
    const k = kernel.table.get(entryKey(e))!;
    expect(k.reply).toEqual(e.reply);
    expect(k.status! & NAT).toBe(0);
  });

  it('replaces a stale NATed kernel entry with the replicated mapping', async () => {
    const { kernel, link, cache } = setup();
    kernel.packetNew({ ...snat(7, 31000), status: IPS.CONFIRMED | IPS.SRC_NAT | IPS.SRC_NAT_DONE });
    cache.applyRemote('fw1', 1, 1, 'new', snat(7));
    const r = await commitExternal(cache, link);
    expect(r).toMatchObject({ failed: 0 });
    const k = kernel.table.get(entryKey(snat(7)))!;
    expect(k.reply.dport).toBe(30007);
    expect(k.status! & NAT).toBe(IPS.SRC_NAT | IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE);
  });
});

describe('Injector', () => {
  it('writes peers’ changes straight into the kernel, and a later commit finds nothing to do', async () => {
    const kernel = new FakeKernel();
    const link = new ConntrackLink({ transportFactory: kernel.openSocket });
    const cache = new ExternalCache({ limit: 100, onChange: (...a) => injector.onChange(...a) });
    const ticks: (() => void)[] = [];
    const injector = new Injector(cache, link, (fn) => ticks.push(fn));
    // Until the injector has written everything (bounded): its writes wait for the kernel on other turns of the loop.
    const run = async () => {
      for (let i = 0; i < 2000 && (ticks.length > 0 || injector.busy); i++) {
        ticks.shift()?.();
        await new Promise((r) => setTimeout(r, 1));
      }
      expect(injector.busy).toBe(false);
    };
    kernel.packetNew({ ...tcp(9, { mark: 1 }), status: IPS.CONFIRMED });
    for (let i = 0; i < 10; i++) cache.applyRemote('fw1', 1, i + 1, 'new', tcp(i));
    await run();
    expect(kernel.table.size).toBe(10);
    expect(injector.counters).toMatchObject({ created: 9, replaced: 1, failed: 0 });
    cache.applyRemote('fw1', 1, 11, 'update', tcp(3, { mark: 3 }));
    cache.applyRemote('fw1', 1, 12, 'delete', tcp(4));
    await run();
    expect(kernel.table.get(entryKey(tcp(3)))!.mark).toBe(3);
    expect(kernel.table.get(entryKey(tcp(4)))).toBeUndefined();
    expect(injector.counters).toMatchObject({ updated: 1, deleted: 1 });
    const c = await commitExternal(cache, link);
    expect(c).toMatchObject({ committed: 0, updated: 0, unchanged: 9 });
  });
});

describe('own-event socket filter', () => {
  it('drops messages from the listed port ids and keeps the rest', () => {
    const prog = dropPortidsFilter([0x1234, 77]);
    const msg = (pid: number) => {
      const b = Buffer.alloc(20);
      b.writeUInt32LE(20, 0);
      b.writeUInt32LE(pid, 12);
      return b;
    };
    expect(runPortidsFilter(prog, msg(0x1234))).toBe(false);
    expect(runPortidsFilter(prog, msg(77))).toBe(false);
    expect(runPortidsFilter(prog, msg(0))).toBe(true);
    expect(runPortidsFilter(prog, msg(78))).toBe(true);
    expect(runPortidsFilter(dropPortidsFilter([]), msg(77))).toBe(true);
  });
});

describe('CLI arguments', () => {
  it('maps conntrackd flags onto commands', () => {
    expect(parseArgs(['-C', '/etc/x.yaml', '-c'])).toMatchObject({ command: 'commit', config: '/etc/x.yaml' });
    expect(parseArgs(['-f', 'internal'])).toMatchObject({ command: 'flush', args: ['internal'] });
    expect(parseArgs(['-f'])).toMatchObject({ command: 'flush', args: [] });
    expect(parseArgs(['-i', 'expect', '-x'])).toMatchObject({ command: 'dump', args: ['internal', 'expect'], xml: true });
    expect(parseArgs(['-e'])).toMatchObject({ command: 'dump', args: ['external'] });
    expect(parseArgs(['-s', 'network'])).toMatchObject({ command: 'stats', args: ['network'] });
    expect(parseArgs(['-d'])).toMatchObject({ command: 'daemon', detach: true });
    for (const [flag, command] of [
      ['-F', 'flush-kernel'],
      ['-k', 'shutdown'],
      ['-R', 'resync'],
      ['-n', 'request-resync'],
      ['-B', 'bulk-send'],
      ['-t', 'purge-timeout'],
    ] as const) {
      expect(parseArgs([flag]).command).toBe(command);
    }
  });

  it('client commands find the default control socket without loading the schema', () => {
    expect(DEFAULT_SOCKET).toBe(DEFAULTS.control.socket);
  });

  it('keeps ctsyncd’s own forms and refuses ambiguity', () => {
    expect(parseArgs(['--config', 'f', 'commit', '--peer', 'fw2'])).toMatchObject({ command: 'commit', peer: 'fw2' });
    expect(parseArgs(['--config', 'f'])).toMatchObject({ command: 'daemon', detach: false });
    expect(parseArgs([]).command).toBe('help');
    expect(() => parseArgs(['-c', '-f'])).toThrow(UsageError);
    expect(() => parseArgs(['frob'])).toThrow(/unknown command 'frob'/);
    expect(() => parseArgs(['-Q'])).toThrow(/unknown option -Q/);
    expect(() => parseArgs(['--peer'])).toThrow(/--peer needs a node id/);
  });
});

/** A CommitLink over `link` that records every batch's operations and can act before or after one. */
function recording(link: ConntrackLink) {
  const batches: string[][] = [];
  const hooks: { before?: (n: number) => void; after?: (n: number) => void } = {};
  const spy = {
    batchOf: async (items: BatchSource, o?: BatchOptions) => {
      const n = batches.length + 1;
      hooks.before?.(n);
      const ops: string[] = [];
      const source: BatchSource = {
        length: items.length,
        op: items.op,
        entry: (i) => {
          const item = items.entry(i);
          const e = item instanceof EntryRecord ? item.entry() : item;
          ops.push(e === null ? `${items.op(i)}:skipped` : `${items.op(i)}:${e.orig.src}`);
          return item;
        },
      };
      batches.push(ops);
      const r = await link.batchOf(source, o);
      hooks.after?.(n);
      return r;
    },
    createExpectation: link.createExpectation.bind(link),
  };
  return { spy, batches, hooks };
}

describe('commitExternal, batch by batch', () => {
  it('creates all in one batch when nothing is in the kernel: no update or replace batch', async () => {
    const { link, cache } = setup();
    for (let i = 1; i <= 3; i++) cache.applyRemote('fw1', 1, i, 'new', tcp(i));
    const { spy, batches } = recording(link);
    const r = await commitExternal(cache, spy);
    expect(batches).toEqual([['create:10.99.0.1', 'create:10.99.0.2', 'create:10.99.0.3']]);
    expect(r).toMatchObject({ entries: 3, committed: 3, updated: 0, unchanged: 0, failed: 0, failures: {} });
  });

  it('sends the entries without a master in one batch, then exactly the related ones', async () => {
    const { link, cache } = setup();
    const master = tcp(1);
    cache.applyRemote('fw1', 1, 1, 'new', { ...tcp(2), master: master.orig });
    cache.applyRemote('fw1', 1, 2, 'new', master);
    cache.applyRemote('fw1', 1, 3, 'new', tcp(3));
    const { spy, batches } = recording(link);
    const r = await commitExternal(cache, spy);
    // Everything not related first, then what names a master.
    expect(batches.map((b) => b.length)).toEqual([2, 1]);
    expect([...batches[0]!].sort()).toEqual(['create:10.99.0.1', 'create:10.99.0.3']);
    expect(batches[1]).toEqual(['create:10.99.0.2']);
    expect(r).toMatchObject({ entries: 3, committed: 3, failed: 0 });
  });

  it('updates in place what it wrote before, replaces each of the kernel’s own by a delete and create pair', async () => {
    const { kernel, link, cache } = setup();
    for (let i = 1; i <= 4; i++) cache.applyRemote('fw1', 1, i, 'new', tcp(i));
    await commitExternal(cache, link);
    kernel.packetNew({ ...tcp(5, { mark: 55 }), status: IPS.CONFIRMED });
    kernel.packetNew({ ...tcp(6, { mark: 66 }), status: IPS.CONFIRMED });
    cache.applyRemote('fw1', 1, 5, 'new', tcp(5));
    cache.applyRemote('fw1', 1, 6, 'new', tcp(6));
    cache.applyRemote('fw1', 1, 7, 'update', tcp(2, { mark: 2 }));
    cache.applyRemote('fw1', 1, 8, 'update', tcp(3, { mark: 3 }));
    const { spy, batches } = recording(link);
    const r = await commitExternal(cache, spy);
    expect(batches).toEqual([
      ['create:10.99.0.1', 'create:10.99.0.2', 'create:10.99.0.3', 'create:10.99.0.4', 'create:10.99.0.5', 'create:10.99.0.6'],
      ['update:10.99.0.2', 'update:10.99.0.3'],
      ['delete:10.99.0.5', 'create:10.99.0.5', 'delete:10.99.0.6', 'create:10.99.0.6'],
    ]);
    expect(r).toMatchObject({ entries: 6, committed: 0, updated: 4, unchanged: 2, failed: 0, failures: {} });
    expect(kernel.table.get(entryKey(tcp(3)))!.mark).toBe(3);
    expect(kernel.table.get(entryKey(tcp(6)))!.mark).toBeUndefined();
    for (const i of [2, 3, 5, 6]) expect(cache.get(tcp(i))!.kernelCopy).toBe(KERNEL_CURRENT);
  });

  it('counts a failed update or replace as failed, and leaves the kernel’s copy as it was', async () => {
    const { kernel, link, cache } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    await commitExternal(cache, link);
    kernel.packetNew({ ...tcp(2, { mark: 9 }), status: IPS.CONFIRMED });
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    cache.applyRemote('fw1', 1, 3, 'update', tcp(1, { mark: 1 }));
    kernel.injectError('update', 12);
    const { spy, hooks } = recording(link);
    // The replace pair's create (the third batch's second message) fails too.
    hooks.before = (n) => {
      if (n === 3) kernel.injectError('create', 1);
    };
    const r = await commitExternal(cache, spy);
    expect(r).toMatchObject({ entries: 2, committed: 0, updated: 0, unchanged: 0, failed: 2, failures: { ENOMEM: 1, EPERM: 1 } });
    expect(cache.get(tcp(1))!.kernelCopy).toBe(KERNEL_STALE);
  });

  it('skips a record deleted before its update is sent, and one deleted before its create’s EEXIST is read', async () => {
    const { kernel, link, cache } = setup();
    for (let i = 1; i <= 2; i++) cache.applyRemote('fw1', 1, i, 'new', tcp(i));
    await commitExternal(cache, link);
    kernel.packetNew({ ...tcp(3, { mark: 9 }), status: IPS.CONFIRMED });
    cache.applyRemote('fw1', 1, 3, 'new', tcp(3));
    cache.applyRemote('fw1', 1, 4, 'update', tcp(1, { mark: 1 }));
    cache.applyRemote('fw1', 1, 5, 'update', tcp(2, { mark: 2 }));
    const { spy, batches, hooks } = recording(link);
    hooks.after = (n) => {
      // Answers read after the peer deleted entry 3: not ours to replace any more.
      if (n === 1) cache.applyRemote('fw1', 1, 6, 'delete', tcp(3));
    };
    hooks.before = (n) => {
      if (n === 2) cache.applyRemote('fw1', 1, 7, 'delete', tcp(2));
    };
    const r = await commitExternal(cache, spy);
    expect(batches).toEqual([
      ['create:10.99.0.1', 'create:10.99.0.2', 'create:10.99.0.3'],
      ['update:10.99.0.1', 'update:skipped'],
    ]);
    expect(r).toMatchObject({ entries: 2, committed: 0, updated: 1, unchanged: 0, failed: 0, failures: {} });
    expect(kernel.table.get(entryKey(tcp(3)))!.mark).toBe(9);
  });

  it('writes again a record refreshed after its create was encoded, even if the refresh carried nothing new', async () => {
    const { link, cache } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    await commitExternal(cache, link);
    const { spy, batches, hooks } = recording(link);
    hooks.after = (n) => {
      if (n === 1) cache.applyRemote('fw1', 1, 2, 'update', tcp(1));
    };
    expect(cache.get(tcp(1))!.kernelCopy).toBe(KERNEL_CURRENT);
    const r = await commitExternal(cache, spy);
    expect(batches).toEqual([['create:10.99.0.1'], ['update:10.99.0.1']]);
    expect(r).toMatchObject({ entries: 1, updated: 1, unchanged: 0 });
    expect(cache.get(tcp(1))!.seq).toBe(2);
  });

  it('lists the peers sorted and measures its duration with the clock it is given', async () => {
    const { link, cache } = setup();
    cache.applyRemote('fw3', 1, 1, 'new', tcp(3));
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    const times = [1000, 1042];
    const r = await commitExternal(cache, link, { now: () => times.shift() ?? 1042 });
    expect(r.peers).toEqual(['fw1', 'fw3']);
    expect(r.durationMs).toBe(42);
  });
});

describe('commitExternal: expectations', () => {
  const expectation = (master: ConntrackEntry, port: number): ExpectEntry => ftpExpectation(master, port);

  it('creates them after the connections, counts one already there as unchanged, and one without its master as failed', async () => {
    const { kernel, link, cache } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw2', 1, 1, 'new', tcp(2));
    cache.applyRemoteExpect('fw1', 1, 2, 'new', expectation(tcp(1), 5001));
    cache.applyRemoteExpect('fw2', 1, 2, 'new', expectation(tcp(2), 5002));
    // A master the kernel never gets: ENOENT.
    cache.applyRemoteExpect('fw2', 1, 3, 'new', expectation(tcp(9), 5009));
    const r = await commitExternal(cache, link);
    expect(r.expectations).toEqual({ entries: 3, committed: 2, updated: 0, unchanged: 0, failed: 1, failures: { ENOENT: 1 } });
    expect(kernel.expectations.size).toBe(2);
    const again = await commitExternal(cache, link, { kind: 'expect' });
    expect(again).toMatchObject({ entries: 0, committed: 0, peers: ['fw1', 'fw2'] });
    expect(again.expectations).toEqual({ entries: 3, committed: 0, updated: 0, unchanged: 2, failed: 1, failures: { ENOENT: 1 } });
  });

  it('lists a peer with only expectations among the peers, in order', async () => {
    const { link, cache } = setup();
    cache.applyRemote('fw2', 1, 1, 'new', tcp(2));
    cache.applyRemoteExpect('fw1', 1, 1, 'new', expectation(tcp(9), 5009));
    const r = await commitExternal(cache, link);
    expect(r.peers).toEqual(['fw1', 'fw2']);
  });

  it('commits only the given peer’s expectations with origin, and none with kind ct', async () => {
    const { kernel, link, cache } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw2', 1, 1, 'new', tcp(2));
    cache.applyRemoteExpect('fw1', 1, 2, 'new', expectation(tcp(1), 5001));
    cache.applyRemoteExpect('fw2', 1, 2, 'new', expectation(tcp(2), 5002));
    const ct = await commitExternal(cache, link, { kind: 'ct' });
    expect(ct.expectations.entries).toBe(0);
    expect(kernel.expectations.size).toBe(0);
    const r = await commitExternal(cache, link, { origin: 'fw2' });
    expect(r.peers).toEqual(['fw2']);
    expect(r.expectations).toMatchObject({ entries: 1, committed: 1 });
    expect([...kernel.expectations.values()].map((e) => e.tuple.dport)).toEqual([5002]);
  });
});

describe('commitForm', () => {
  it.each([
    { name: 'UDP: status only', e: { ...tcp(1), orig: { ...tcp(1).orig, proto: IPPROTO.UDP }, reply: { ...tcp(1).reply, proto: IPPROTO.UDP }, protoinfo: undefined }, flags: undefined },
    { name: 'TCP without TCP protoinfo', e: { ...tcp(1), protoinfo: {} }, flags: undefined },
    // No decoder makes one, but the form says TCP entries: encodeRequest leaves its flags alone too.
    { name: 'UDP carrying TCP protoinfo: left as it is', e: { ...tcp(1), orig: { ...tcp(1).orig, proto: IPPROTO.UDP }, reply: { ...tcp(1).reply, proto: IPPROTO.UDP }, protoinfo: { tcp: { state: 1, flagsOrig: { flags: 2, mask: 2 } } } }, flags: undefined },
    { name: 'TCP, flags kept and liberal added', e: { ...tcp(1), protoinfo: { tcp: { state: 3, flagsOrig: { flags: 2, mask: 3 }, flagsReply: { flags: 0x10, mask: 0x30 } } } }, flags: [{ flags: 10, mask: 11 }, { flags: 0x18, mask: 0x38 }] },
  ])('$name', ({ e, flags }) => {
    const f = commitForm({ ...e, status: IPS.EXPECTED | IPS.ASSURED } as ConntrackEntry);
    expect(f.status).toBe(IPS.ASSURED);
    expect(f.orig).toEqual(e.orig);
    if (flags === undefined) expect(f.protoinfo).toEqual(e.protoinfo);
    else expect([f.protoinfo!.tcp!.flagsOrig, f.protoinfo!.tcp!.flagsReply]).toEqual(flags);
  });
});
