// Failover: the step sequences run in-process against a fake of the
// operations a daemon offers, with the step timeout and the notify FIFO.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FAILOVER_STEP_TIMEOUT_MS,
  Failover,
  type FailoverOperations,
  withTimeout,
} from '../../src/keepalived/index.js';
import { type LoggedLine as Line, recordingLog } from './doubles.js';

/** Records every operation in call order; a test may replace any of them. */
function fakeOps(calls: string[], over: Partial<FailoverOperations> = {}): FailoverOperations {
  return {
    commit: async () => {
      calls.push('commit');
      return { committed: 3 };
    },
    flush: () => {
      calls.push('flush');
      return { internal: 1, external: 2 };
    },
    resyncKernel: async (reason) => {
      calls.push(`resync:${reason}`);
      return { created: 0, updated: 0, deleted: 0 };
    },
    bulkSend: () => {
      calls.push('bulk-send');
      return 42;
    },
    purgeTimeout: async () => {
      calls.push('purge-timeout');
      return { shortened: 1 };
    },
    requestResync: () => {
      calls.push('request-resync');
    },
    ...over,
  };
}

describe('Failover', () => {
  it('runs the primary, backup and fault sequences in order and reports steps', async () => {
    const calls: string[] = [];
    const f = new Failover(fakeOps(calls), { log: recordingLog([]) });
    expect(f.sequencer).toBeUndefined();
    expect(await f.failover('primary')).toEqual({ state: 'primary', steps: 4, failed: 0 });
    expect(calls).toEqual(['commit', 'flush', 'resync:keepalived', 'bulk-send']);
    expect(f.sequencer?.state).toBe('primary');
    calls.length = 0;
    expect(await f.failover('backup')).toEqual({ state: 'backup', steps: 2, failed: 0 });
    expect(calls).toEqual(['purge-timeout', 'request-resync']);
    calls.length = 0;
    expect(await f.failover('fault')).toEqual({ state: 'fault', steps: 1, failed: 0 });
    expect(calls).toEqual(['purge-timeout']);
    // The same state again is no transition: nothing runs.
    expect(await f.failover('fault')).toEqual({ state: 'fault', steps: 0, failed: 0 });
    expect(f.sequencer?.counters).toMatchObject({ transitions: 3, ignored: 1, stepsRun: 7, stepFailures: 0 });
  });

  it('counts a failed step (rejected or thrown) and carries on with the sequence', async () => {
    const calls: string[] = [];
    const lines: Line[] = [];
    const ops = fakeOps(calls, {
      commit: () => Promise.reject(Object.assign(new Error('a commit is already in progress'), { code: 'EINPROGRESS' })),
      flush: () => {
        throw new Error('flush broke');
      },
    });
    const f = new Failover(ops, { log: recordingLog(lines) });
    expect(await f.failover('primary')).toEqual({ state: 'primary', steps: 4, failed: 2 });
    expect(calls).toEqual(['resync:keepalived', 'bulk-send']);
    expect(lines.filter((l) => l.msg === 'failover step failed').map((l) => l.ctx)).toEqual([
      { target: 'primary', step: 'commit', error: 'a commit is already in progress' },
      { target: 'primary', step: 'flush', error: 'flush broke' },
    ]);
  });

  it('gives up on a step that outlasts the step timeout, with ETIMEDOUT, and runs the next one', async () => {
    const calls: string[] = [];
    const lines: Line[] = [];
    const ops = fakeOps(calls, { purgeTimeout: () => new Promise<never>(() => {}) });
    const f = new Failover(ops, { log: recordingLog(lines), stepTimeoutMs: 20 });
    expect(await f.failover('backup')).toEqual({ state: 'backup', steps: 2, failed: 1 });
    expect(calls).toEqual(['request-resync']);
    expect(lines.find((l) => l.msg === 'failover step failed')?.ctx).toEqual({
      target: 'backup',
      step: 'purge-timeout',
      error: 'purge-timeout took longer than 20 ms',
    });
    expect(FAILOVER_STEP_TIMEOUT_MS).toBe(300_000);
  });

  it('runStep passes each operation\'s result through', async () => {
    const calls: string[] = [];
    const f = new Failover(fakeOps(calls), { log: recordingLog([]) });
    expect(await f.runStep('bulk-send')).toBe(42);
    expect(await f.runStep('commit')).toEqual({ committed: 3 });
    expect(await f.runStep('flush')).toEqual({ internal: 1, external: 2 });
    expect(await f.runStep('purge-timeout')).toEqual({ shortened: 1 });
    expect(await f.runStep('request-resync')).toBeUndefined();
    expect(await f.runStep('resync')).toEqual({ created: 0, updated: 0, deleted: 0 });
    expect(calls).toEqual(['bulk-send', 'commit', 'flush', 'purge-timeout', 'request-resync', 'resync:keepalived']);
    // Direct steps leave the sequencer alone.
    expect(f.sequencer).toBeUndefined();
  });

  it('follows only its vrrpName: the failover command speaks as that group', async () => {
    const calls: string[] = [];
    const f = new Failover(fakeOps(calls), { log: recordingLog([]), name: 'G1' });
    expect(await f.failover('fault')).toEqual({ state: 'fault', steps: 1, failed: 0 });
    expect(f.sequencer?.counters.ignored).toBe(0);
  });

  it('queues concurrent states in arrival order; a newer one supersedes the rest of the older sequence', async () => {
    const calls: string[] = [];
    let releaseCommit: () => void = () => {};
    const ops = fakeOps(calls, {
      commit: () =>
        new Promise((resolve) => {
          calls.push('commit');
          releaseCommit = () => resolve({ committed: 0 });
        }),
    });
    const f = new Failover(ops, { log: recordingLog([]) });
    const primary = f.failover('primary');
    const backup = f.failover('backup');
    releaseCommit();
    const [p, b] = await Promise.all([primary, backup]);
    expect(calls).toEqual(['commit', 'purge-timeout', 'request-resync']);
    expect(p).toEqual({ state: 'primary', steps: 3, failed: 0 });
    // Counted from its arrival, when the commit was already running.
    expect(b).toEqual({ state: 'backup', steps: 2, failed: 0 });
    expect(f.sequencer?.counters.superseded).toBe(1);
  });
});

describe('Failover.startNotifyFifo', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('feeds keepalived\'s lines to the same sequencer as the failover command, until closed', async () => {
    dir = fs.mkdtempSync(join(tmpdir(), 'ctsyncd-failover-'));
    const path = join(dir, 'notify');
    execFileSync('mkfifo', [path]);
    const calls: string[] = [];
    const lines: Line[] = [];
    const f = new Failover(fakeOps(calls), { log: recordingLog(lines) });
    f.startNotifyFifo(path);
    expect(lines.filter((l) => l.msg === 'following keepalived notify FIFO').map((l) => l.ctx)).toContainEqual({ path });
    const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fs.writeSync(fd, 'GROUP "G1" BACKUP 100\n');
    fs.closeSync(fd);
    for (let i = 0; i < 500 && calls.length < 2; i++) await new Promise((r) => setTimeout(r, 2));
    await f.sequencer?.idle();
    expect(calls).toEqual(['purge-timeout', 'request-resync']);
    expect(f.sequencer?.state).toBe('backup');
    // The command's state joins the FIFO's in the one sequencer.
    expect(await f.failover('backup')).toEqual({ state: 'backup', steps: 0, failed: 0 });
    f.close();
  });
});

describe('withTimeout', () => {
  it('passes a settled result through and clears its timer', async () => {
    expect(await withTimeout(Promise.resolve(7), 10_000, 'x')).toBe(7);
    await expect(withTimeout(Promise.reject(new Error('no')), 10_000, 'x')).rejects.toThrow('no');
  });

  it('rejects with a coded error once the time is up', async () => {
    const err = await withTimeout(new Promise<never>(() => {}), 5, 'commit').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ETIMEDOUT', message: 'commit took longer than 5 ms' });
  });
});
