// Injector (inject mode) against the fake kernel, batch by batch: which
// operations each batch carries, what the kernel's answers lead to (retries,
// counters, the cache's note of the kernel's copy), and when batches run.
import { describe, expect, it } from 'vitest';
import { COMMIT_FORM } from '../../src/cache/commit.js';
import { ExternalCache, KERNEL_CURRENT, KERNEL_NONE } from '../../src/cache/external-cache.js';
import { Injector, type InjectLink } from '../../src/cache/inject.js';
import type { BatchItem, BatchOptions } from '../../src/kernel/conntrack-link.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import { type ConntrackEntry, entryKey } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';

const ENOENT = 2;
const EEXIST = 17;
const ENOMEM = 12;
const EPERM = 1;

function tcp(i: number, extra: Partial<ConntrackEntry> = {}): ConntrackEntry {
  const src = `10.99.7.${i}`;
  return {
    family: AF_INET,
    orig: { src, dst: '10.99.250.1', proto: IPPROTO.TCP, sport: 1000, dport: 22 },
    reply: { src: '10.99.250.1', dst: src, proto: IPPROTO.TCP, sport: 22, dport: 1000 },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    protoinfo: { tcp: { state: 3 } },
    ...extra,
  };
}

interface Batch {
  ops: string[];
  opts: BatchOptions | undefined;
}

/** An Injector on a real ConntrackLink over FakeKernel; every batch is recorded, and `before` runs ahead of one. */
function setup() {
  const kernel = new FakeKernel();
  const real = new ConntrackLink({ transportFactory: kernel.openSocket });
  const batches: Batch[] = [];
  const before: ((n: number) => void)[] = [];
  const link: InjectLink = {
    batch: (items: readonly BatchItem[], opts?: BatchOptions) => {
      batches.push({ ops: items.map((it) => `${it.op}:${it.entry.orig.src}`), opts });
      for (const f of before) f(batches.length);
      return real.batch(items, opts);
    },
  };
  const ticks: (() => void)[] = [];
  const cache = new ExternalCache({ limit: 100, onChange: (...a) => injector.onChange(...a) });
  const injector = new Injector(cache, link, (fn) => ticks.push(fn));
  let settled = 0;
  const wrapped = link.batch;
  link.batch = async (items, opts) => {
    try {
      return await wrapped(items, opts);
    } finally {
      settled++;
    }
  };
  /** Runs the scheduled flushes until none is left and every batch is answered (bounded in turns). */
  const run = async () => {
    for (let turn = 0; turn < 50 && ticks.length > 0; turn++) {
      ticks.shift()!();
      // A macrotask lets an answered batch's retry go out before the count is compared.
      for (let i = 0; i < 500; i++) {
        await new Promise((r) => setTimeout(r, 1));
        if (settled === batches.length) break;
      }
    }
    expect(ticks).toEqual([]);
    expect(settled).toBe(batches.length);
  };
  return { kernel, cache, injector, batches, before, ticks, run };
}

describe('Injector: batches and the kernel’s answers', () => {
  it('creates new keys in one batch, in their commit form, and notes the kernel’s copy current', async () => {
    const { kernel, cache, injector, batches, ticks, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    // One flush scheduled for the turn, however many changes.
    expect(ticks.length).toBe(1);
    expect(injector.queued).toBe(2);
    await run();
    expect(batches).toEqual([{ ops: ['create:10.99.7.1', 'create:10.99.7.2'], opts: { form: COMMIT_FORM } }]);
    expect(injector.counters).toEqual({ created: 2, updated: 0, replaced: 0, deleted: 0, failed: 0, failures: {}, batches: 1 });
    expect(injector.queued).toBe(0);
    expect(cache.get(tcp(1))!.kernelCopy).toBe(KERNEL_CURRENT);
    expect(kernel.table.get(entryKey(tcp(2)))!.protoinfo!.tcp!.flagsOrig).toEqual({ flags: 8, mask: 8 });
  });

  it('sends only a key’s latest change, as an update once the kernel holds our copy', async () => {
    const { kernel, cache, injector, batches, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    await run();
    cache.applyRemote('fw1', 1, 2, 'update', tcp(1, { mark: 5 }));
    cache.applyRemote('fw1', 1, 3, 'update', tcp(1, { mark: 6 }));
    expect(injector.queued).toBe(1);
    await run();
    expect(batches.map((b) => b.ops)).toEqual([['create:10.99.7.1'], ['update:10.99.7.1']]);
    expect(kernel.table.get(entryKey(tcp(1)))!.mark).toBe(6);
    expect(injector.counters).toMatchObject({ created: 1, updated: 1, batches: 2 });
    expect(cache.get(tcp(1))!.kernelCopy).toBe(KERNEL_CURRENT);
  });

  it('skips a refresh that carries nothing new while the kernel’s copy is current, not one that is stale', async () => {
    const { cache, injector, batches, ticks, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    await run();
    cache.applyRemote('fw1', 1, 2, 'update', tcp(1));
    expect(injector.queued).toBe(0);
    expect(ticks).toEqual([]);
    // Created but not yet written: a refresh of it is not skipped.
    cache.applyRemote('fw1', 1, 1, 'new', tcp(2));
    cache.applyRemote('fw1', 1, 2, 'update', tcp(2));
    expect(cache.get(tcp(2))!.kernelCopy).toBe(KERNEL_NONE);
    expect(injector.queued).toBe(1);
    await run();
    expect(batches.map((b) => b.ops)).toEqual([['create:10.99.7.1'], ['create:10.99.7.2']]);
  });

  it('deletes, and counts a delete of what the kernel no longer has as done, not failed', async () => {
    const { kernel, cache, injector, batches, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    await run();
    kernel.expire(tcp(2));
    cache.applyRemote('fw1', 1, 3, 'delete', tcp(1));
    cache.applyRemote('fw1', 1, 4, 'delete', tcp(2));
    await run();
    expect(batches.map((b) => b.ops)[1]).toEqual(['delete:10.99.7.1', 'delete:10.99.7.2']);
    expect(kernel.table.size).toBe(0);
    expect(injector.counters).toEqual({ created: 2, updated: 0, replaced: 0, deleted: 2, failed: 0, failures: {}, batches: 2 });
  });

  it('creates again an entry the kernel lost before its update (ENOENT), in a second batch', async () => {
    const { kernel, cache, injector, batches, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    await run();
    kernel.expire(tcp(2));
    cache.applyRemote('fw1', 1, 3, 'update', tcp(1, { mark: 1 }));
    cache.applyRemote('fw1', 1, 4, 'update', tcp(2, { mark: 2 }));
    await run();
    expect(batches.map((b) => b.ops)).toEqual([
      ['create:10.99.7.1', 'create:10.99.7.2'],
      ['update:10.99.7.1', 'update:10.99.7.2'],
      ['create:10.99.7.2'],
    ]);
    expect(batches[2]!.opts).toEqual({ form: COMMIT_FORM });
    expect(kernel.table.get(entryKey(tcp(2)))!.mark).toBe(2);
    expect(injector.counters).toEqual({ created: 3, updated: 1, replaced: 0, deleted: 0, failed: 0, failures: {}, batches: 3 });
    expect(cache.get(tcp(2))!.kernelCopy).toBe(KERNEL_CURRENT);
  });

  it('replaces the kernel’s own entry (EEXIST) by delete and create, and reads each pair’s create answer', async () => {
    const { kernel, cache, injector, batches, before, run } = setup();
    kernel.packetNew({ ...tcp(1, { mark: 99 }), status: IPS.CONFIRMED });
    kernel.packetNew({ ...tcp(3, { mark: 99 }), status: IPS.CONFIRMED });
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    cache.applyRemote('fw1', 1, 3, 'new', tcp(3));
    // The first pair's create fails (the kernel's own entry is gone then): one
    // failure, and the second pair, whose answer comes two places later, counts as replaced.
    before.push((n) => {
      if (n === 2) kernel.injectError('create', ENOMEM, 1);
    });
    await run();
    expect(batches.map((b) => b.ops)).toEqual([
      ['create:10.99.7.1', 'create:10.99.7.2', 'create:10.99.7.3'],
      ['delete:10.99.7.1', 'create:10.99.7.1', 'delete:10.99.7.3', 'create:10.99.7.3'],
    ]);
    expect(injector.counters).toEqual({ created: 1, updated: 0, replaced: 1, deleted: 0, failed: 1, failures: { ENOMEM: 1 }, batches: 2 });
    expect(kernel.table.has(entryKey(tcp(1)))).toBe(false);
    expect(kernel.table.get(entryKey(tcp(3)))!.mark).toBeUndefined();
    expect(cache.get(tcp(1))!.kernelCopy).toBe(KERNEL_NONE);
    expect(cache.get(tcp(3))!.kernelCopy).toBe(KERNEL_CURRENT);
  });

  it('counts any other error by its name, and retries nothing', async () => {
    const { kernel, cache, injector, batches, run } = setup();
    kernel.injectError('create', EPERM, 1);
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    await run();
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    kernel.injectError('create', ENOENT, 1);
    await run();
    expect(batches.length).toBe(2);
    expect(injector.counters).toEqual({
      created: 0,
      updated: 0,
      replaced: 0,
      deleted: 0,
      failed: 2,
      failures: { EPERM: 1, ENOENT: 1 },
      batches: 2,
    });
    expect(cache.get(tcp(1))!.kernelCopy).toBe(KERNEL_NONE);
  });

  it('counts a delete or an update refused for another reason as failed, and retries neither', async () => {
    const { kernel, cache, injector, batches, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    await run();
    kernel.injectError('delete', EPERM, 1);
    kernel.injectError('update', ENOMEM, 1);
    cache.applyRemote('fw1', 1, 3, 'delete', tcp(1));
    cache.applyRemote('fw1', 1, 4, 'update', tcp(2, { mark: 2 }));
    await run();
    expect(batches.map((b) => b.ops)).toEqual([
      ['create:10.99.7.1', 'create:10.99.7.2'],
      ['delete:10.99.7.1', 'update:10.99.7.2'],
    ]);
    expect(injector.counters).toEqual({
      created: 2,
      updated: 0,
      replaced: 0,
      deleted: 0,
      failed: 2,
      failures: { EPERM: 1, ENOMEM: 1 },
      batches: 2,
    });
  });

  it('replaces only for a create’s EEXIST: an update or a delete answered EEXIST is failed, not retried', async () => {
    const { kernel, cache, injector, batches, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    await run();
    kernel.injectError('update', EEXIST, 1);
    kernel.injectError('delete', EEXIST, 1);
    cache.applyRemote('fw1', 1, 3, 'update', tcp(1, { mark: 2 }));
    cache.applyRemote('fw1', 1, 4, 'delete', tcp(2));
    await run();
    expect(batches.map((b) => b.ops)).toEqual([
      ['create:10.99.7.1', 'create:10.99.7.2'],
      ['update:10.99.7.1', 'delete:10.99.7.2'],
    ]);
    expect(injector.counters).toEqual({
      created: 2,
      updated: 0,
      replaced: 0,
      deleted: 0,
      failed: 2,
      failures: { EEXIST: 2 },
      batches: 2,
    });
    expect(kernel.table.get(entryKey(tcp(1)))!.mark).toBeUndefined();
  });

  it('writes changes that arrive while a batch is in flight in the next one', async () => {
    const { cache, injector, batches, before, ticks, run } = setup();
    before.push((n) => {
      if (n !== 1) return;
      cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
      // Not scheduled while the first batch runs: the flush's end schedules it.
      expect(ticks).toEqual([]);
      expect(injector.queued).toBe(1);
    });
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    await run();
    expect(batches.map((b) => b.ops)).toEqual([['create:10.99.7.1'], ['create:10.99.7.2']]);
    expect(injector.counters.created).toBe(2);
  });

  it('is busy from a change until its batch is answered, and idle after it with no turn scheduled', async () => {
    const { cache, injector, batches, ticks } = setup();
    expect(injector.busy).toBe(false);
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    expect([injector.busy, ticks.length]).toEqual([true, 1]);
    ticks.shift()!();
    expect([injector.busy, injector.queued, batches.length]).toEqual([true, 0, 1]);
    for (let i = 0; i < 500 && injector.counters.created === 0; i++) await new Promise((r) => setTimeout(r, 1));
    // One more macrotask: the flush's finally has run.
    await new Promise((r) => setTimeout(r, 1));
    expect(injector.counters.created).toBe(1);
    expect(ticks).toEqual([]);
    expect(injector.busy).toBe(false);
  });

  it('after close, drops what was queued and takes no more changes', async () => {
    const { kernel, cache, injector, batches, ticks, run } = setup();
    cache.applyRemote('fw1', 1, 1, 'new', tcp(1));
    expect(injector.queued).toBe(1);
    injector.close();
    expect(injector.queued).toBe(0);
    cache.applyRemote('fw1', 1, 2, 'new', tcp(2));
    expect(injector.queued).toBe(0);
    expect(ticks.length).toBe(1);
    await run();
    expect(batches).toEqual([]);
    expect(kernel.table.size).toBe(0);
    expect(injector.counters.batches).toBe(0);
  });
});
