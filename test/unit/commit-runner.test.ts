// CommitRunner: commits one at a time, for all peers or a known one, with the
// running totals stats and metrics read; on the FakeKernel.
import { describe, expect, it } from 'vitest';
import { CommitRunner, type CommitRunnerOptions } from '../../src/cache/commit-runner.js';
import { ExternalCache } from '../../src/cache/external-cache.js';
import { OperationError } from '../../src/common/errors.js';
import { ConntrackLink } from '../../src/kernel/conntrack-link.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';
import { FakeKernel } from '../../src/kernel/fake-kernel.js';
import { captureLogger } from './doubles.js';

const ENOMEM = 12;

function tcp(i: number): ConntrackEntry {
  const src = `10.40.0.${i}`;
  return {
    family: AF_INET,
    orig: { src, dst: '192.0.2.7', proto: IPPROTO.TCP, sport: 30000 + i, dport: 443 },
    reply: { src: '192.0.2.7', dst: src, proto: IPPROTO.TCP, sport: 443, dport: 30000 + i },
    status: IPS.SEEN_REPLY | IPS.ASSURED,
    timeout: 300,
    protoinfo: { tcp: { state: 3 } },
  };
}

function setup(over: Partial<CommitRunnerOptions> = {}) {
  const kernel = new FakeKernel();
  const link = new ConntrackLink({ transportFactory: kernel.openSocket });
  const external = new ExternalCache({ limit: 1000 });
  const { log, lines } = captureLogger();
  const observed: number[] = [];
  let drains = 0;
  const runner = new CommitRunner({
    external,
    link: () => link,
    heardFrom: () => false,
    now: Date.now,
    log,
    betweenChunks: () => drains++,
    onCommitted: (ms) => observed.push(ms),
    ...over,
  });
  return { kernel, link, external, lines, observed, runner, drains: () => drains };
}

describe('CommitRunner', () => {
  it('commits every peer\'s entries, keeps the totals and the last report, and observes the duration', async () => {
    const s = setup();
    for (let i = 1; i <= 3; i++) s.external.applyRemote('fw2', 5, i, 'new', tcp(i));
    s.external.applyRemote('fw3', 6, 1, 'new', tcp(9));
    const report = await s.runner.commit();
    expect(report).toMatchObject({ entries: 4, committed: 4, failed: 0 });
    expect(s.kernel.table.size).toBe(4);
    expect(s.runner.stats).toMatchObject({ commits: 1, running: false, committed: 4, updated: 0, unchanged: 0, failed: 0 });
    expect(s.runner.stats.last).toBe(report);
    expect(s.runner.stats.lastDurationMs).toBe(report.durationMs);
    expect(s.observed).toEqual([report.durationMs]);
    expect(s.lines.map((l) => [l.level, l.msg])).toEqual([
      ['info', 'commit started'],
      ['info', 'commit done'],
    ]);
    expect(s.lines[0]!.ctx).toEqual({ peer: 'all', table: 'all', entries: 4 });
    expect(s.lines[1]!.ctx).toEqual({
      entries: 4,
      committed: 4,
      updated: 0,
      unchanged: 0,
      failed: 0,
      expectations: 0,
      durationMs: report.durationMs,
    });
    // Idempotent: the second commit finds its own copies current.
    const again = await s.runner.commit();
    expect(again).toMatchObject({ committed: 0, unchanged: 4 });
    expect(s.runner.stats).toMatchObject({ commits: 2, committed: 4, unchanged: 4 });
  });

  it('one peer: its entries only; a peer heard from without entries is known, a stranger is refused (ENOPEER)', async () => {
    const s = setup({ heardFrom: (id) => id === 'fw4' });
    s.external.applyRemote('fw2', 5, 1, 'new', tcp(1));
    s.external.applyRemote('fw3', 6, 1, 'new', tcp(2));
    expect(await s.runner.commit('fw3')).toMatchObject({ entries: 1, committed: 1, peers: ['fw3'] });
    expect(s.lines[0]!.ctx).toEqual({ peer: 'fw3', table: 'all', entries: 2 });
    expect(await s.runner.commit('fw4')).toMatchObject({ entries: 0 });
    const err = await s.runner.commit('fw9').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationError);
    expect(err).toMatchObject({ code: 'ENOPEER', message: "unknown peer 'fw9': no entries from it and never heard from" });
    expect(s.runner.stats.commits).toBe(2);
  });

  it('refuses a second commit while one runs (EINPROGRESS), and frees the slot after', async () => {
    const s = setup();
    s.external.applyRemote('fw2', 5, 1, 'new', tcp(1));
    const first = s.runner.commit();
    expect(s.runner.stats.running).toBe(true);
    await expect(s.runner.commit()).rejects.toMatchObject({ code: 'EINPROGRESS', message: 'a commit is already in progress' });
    await first;
    expect(s.runner.stats.running).toBe(false);
    await expect(s.runner.commit()).resolves.toMatchObject({ unchanged: 1 });
  });

  it('a closed kernel link fails first, whatever else is wrong', async () => {
    const s = setup({
      link: () => {
        throw new OperationError('ENOTREADY', 'the kernel link is not open yet');
      },
    });
    await expect(s.runner.commit('nobody')).rejects.toMatchObject({ code: 'ENOTREADY' });
    expect(s.lines).toEqual([]);
  });

  it('logs a commit with failures at error level and counts entry and expectation failures', async () => {
    const s = setup();
    for (let i = 1; i <= 2; i++) s.external.applyRemote('fw2', 5, i, 'new', tcp(i));
    s.kernel.injectError('create', ENOMEM, 1);
    const report = await s.runner.commit();
    expect(report.failed).toBe(1);
    expect(s.runner.stats).toMatchObject({ committed: 1, failed: 1, running: false });
    expect(s.lines.at(-1)).toMatchObject({ level: 'error', msg: 'commit done', ctx: { failed: 1, committed: 1 } });
  });

  it('a commit that throws leaves running false and the totals untouched', async () => {
    const s = setup({
      link: () => ({
        batchOf: () => Promise.reject(new Error('socket closed')),
        createExpectation: () => Promise.resolve(0),
      }),
    });
    s.external.applyRemote('fw2', 5, 1, 'new', tcp(1));
    await expect(s.runner.commit()).rejects.toThrow('socket closed');
    expect(s.runner.stats).toMatchObject({ commits: 0, running: false, committed: 0 });
    expect(s.observed).toEqual([]);
  });

  it('ct commits the conntrack entries and no expectation; expect the expectations and no entry (conntrackd -c ct, -c expect)', async () => {
    const master = tcp(1);
    const exp: ExpectEntry = {
      family: AF_INET,
      master: master.orig,
      tuple: { src: master.reply.src, dst: master.orig.src, proto: IPPROTO.TCP, sport: 0, dport: 2121 },
      mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 255, sport: 0, dport: 0xffff },
      timeout: 300,
      helper: 'ftp',
    };
    const s = setup();
    s.external.applyRemote('fw2', 5, 1, 'new', master);
    s.external.applyRemote('fw2', 5, 2, 'new', tcp(2));
    s.external.applyRemoteExpect('fw2', 5, 3, 'new', exp);
    const ct = await s.runner.commit(undefined, 'ct');
    expect(ct).toMatchObject({ entries: 2, committed: 2, peers: ['fw2'], expectations: { entries: 0, committed: 0 } });
    expect(s.kernel.table.size).toBe(2);
    expect(s.kernel.expectations.size).toBe(0);
    const x = await s.runner.commit(undefined, 'expect');
    expect(x).toMatchObject({ entries: 0, committed: 0, peers: ['fw2'], expectations: { entries: 1, committed: 1 } });
    expect(s.kernel.table.size).toBe(2);
    expect(s.kernel.expectations.size).toBe(1);
    expect(s.lines.filter((l) => l.msg === 'commit started').map((l) => l.ctx?.table)).toEqual(['ct', 'expect']);
  });

  it('adds updates and expectation failures to the totals, and an expectation failure alone logs at error level', async () => {
    const s = setup({ onCommitted: undefined });
    s.external.applyRemote('fw2', 5, 1, 'new', tcp(1));
    s.external.applyRemote('fw2', 5, 2, 'new', tcp(2));
    await s.runner.commit();
    s.external.applyRemote('fw2', 5, 3, 'update', { ...tcp(1), mark: 1 });
    s.external.applyRemote('fw2', 5, 4, 'update', { ...tcp(2), mark: 2 });
    // An expectation whose master the kernel does not have: ENOENT.
    const orphan: ExpectEntry = {
      family: AF_INET,
      master: tcp(9).orig,
      tuple: { src: '192.0.2.7', dst: '10.40.0.9', proto: IPPROTO.TCP, sport: 0, dport: 2121 },
      mask: { src: '255.255.255.255', dst: '255.255.255.255', proto: 255, sport: 0, dport: 0xffff },
      timeout: 300,
    };
    s.external.applyRemoteExpect('fw2', 5, 5, 'new', orphan);
    const r = await s.runner.commit();
    expect(r).toMatchObject({ updated: 2, failed: 0, expectations: { failed: 1 } });
    expect(s.runner.stats).toMatchObject({ commits: 2, committed: 2, updated: 2, unchanged: 0, failed: 1 });
    expect(s.lines.at(-1)).toMatchObject({ level: 'error', msg: 'commit done', ctx: { failed: 0, updated: 2 } });
    s.kernel.injectError('update', ENOMEM, 1);
    s.external.applyRemote('fw2', 5, 6, 'update', { ...tcp(1), mark: 3 });
    await s.runner.commit();
    // One entry failure and the expectation's again.
    expect(s.runner.stats).toMatchObject({ commits: 3, updated: 2, unchanged: 1, failed: 3 });
  });
});
