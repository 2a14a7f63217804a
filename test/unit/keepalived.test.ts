// keepalived integration: the notification parser, the failover sequencer's
// ordering rules, the FIFO line splitter and the track_file writer.
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FailoverSequencer,
  type FailoverStep,
  LineSplitter,
  parseNotifyArgs,
  parseNotifyLine,
  TrackFile,
} from '../../src/keepalived/index.js';
import type { LogContext, Logger, LogLevel } from '../../src/log.js';

interface Logged {
  level: LogLevel;
  msg: string;
  ctx: LogContext | undefined;
}

function captureLogger(): { log: Logger; lines: Logged[] } {
  const lines: Logged[] = [];
  const log: Logger = {
    debug: (msg, ctx) => lines.push({ level: 'debug', msg, ctx }),
    info: (msg, ctx) => lines.push({ level: 'info', msg, ctx }),
    warn: (msg, ctx) => lines.push({ level: 'warn', msg, ctx }),
    error: (msg, ctx) => lines.push({ level: 'error', msg, ctx }),
    child: () => log,
  };
  return { log, lines };
}

describe('parseNotifyLine', () => {
  it.each([
    ['INSTANCE "VI_LAN" MASTER 150', 'instance', 'VI_LAN', 'MASTER', 'primary', 150],
    ['GROUP "G1" BACKUP 0', 'group', 'G1', 'BACKUP', 'backup', 0],
    ['INSTANCE "VI_1" FAULT 100\n', 'instance', 'VI_1', 'FAULT', 'fault', 100],
    ['INSTANCE "VI_1" STOP 100', 'instance', 'VI_1', 'STOP', 'stop', 100],
    ['INSTANCE "VI_1" DELETED 100', 'instance', 'VI_1', 'DELETED', 'stop', 100],
    ['INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100', 'instance', 'VI_1', 'MASTER_RX_LOWER_PRI', undefined, 100],
    ['INSTANCE "VI_1" MASTER_PRIORITY 90', 'instance', 'VI_1', 'MASTER_PRIORITY', undefined, 90],
    ['INSTANCE "VI_1" BACKUP_PRIORITY 255', 'instance', 'VI_1', 'BACKUP_PRIORITY', undefined, 255],
    ['GROUP "a \\"quoted\\" name" MASTER 0', 'group', 'a \\"quoted\\" name', 'MASTER', 'primary', 0],
    ['GROUP "with space" FAULT 0\r\n', 'group', 'with space', 'FAULT', 'fault', 0],
  ])('%j', (line, scope, name, state, target, priority) => {
    expect(parseNotifyLine(line)).toEqual({ kind: 'vrrp', scope, name, state, target, priority });
  });

  it.each([
    ['VS [192.168.201.15]:tcp:80 UP', 'VS'],
    ['RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN', 'RS'],
    ['CHECKER something UP', 'CHECKER'],
  ])('recognises the checker line %j and leaves it alone', (line, type) => {
    expect(parseNotifyLine(line)).toEqual({ kind: 'checker', type, line });
  });

  it.each([
    '',
    '   ',
    'INSTANCE',
    'INSTANCE VI_1 MASTER 100',
    'INSTANCE "VI_1" MASTER',
    'INSTANCE "VI_1" MASTER 256',
    'INSTANCE "VI_1" MASTER -1',
    'INSTANCE "VI_1" MASTER 1000',
    'INSTANCE "VI_1" MASTER 1x',
    'INSTANCE "" MASTER 100',
    'INSTANCE "VI_1" master 100',
    'INSTANCE "VI_1" {UNKNOWN} 100',
    'INSTANCE "VI_1" CONSTRUCTOR 100',
    'INSTANCE "VI_1" __proto__ 100',
    'instance "VI_1" MASTER 100',
    'ROUTER "VI_1" MASTER 100',
    'INSTANCE "VI_1" MASTER 100 extra',
    'INSTANCE  "VI_1" MASTER 100',
    'VS',
    '\u0000\u0001\u0002',
    'GROUP "G1\u0000" MASTER 0',
    `INSTANCE "${'x'.repeat(10_000)}`,
  ])('returns undefined for garbage %j', (line) => {
    expect(parseNotifyLine(line)).toBeUndefined();
  });

  it('does not throw on values a caller should never pass', () => {
    expect(parseNotifyLine(undefined as unknown as string)).toBeUndefined();
    expect(parseNotifyLine(42 as unknown as string)).toBeUndefined();
  });
});

describe('parseNotifyArgs', () => {
  it('takes the last four arguments, after any configured ones', () => {
    expect(parseNotifyArgs(['GROUP', 'G1', 'MASTER', '0'])).toEqual({
      kind: 'vrrp',
      scope: 'group',
      name: 'G1',
      state: 'MASTER',
      target: 'primary',
      priority: 0,
    });
    expect(parseNotifyArgs(['--config', '/etc/x.yaml', 'INSTANCE', 'VI 1', 'BACKUP', '100'])).toMatchObject({
      scope: 'instance',
      name: 'VI 1',
      target: 'backup',
      priority: 100,
    });
    expect(parseNotifyArgs(['INSTANCE', 'VI_1', 'DELETED', '100'])?.target).toBe('stop');
  });

  it.each([
    [[]],
    [['GROUP', 'G1', 'MASTER']],
    [['GROUP', '', 'MASTER', '0']],
    [['GROUP', 'G1', 'MASTER', 'x']],
    [['GROUP', 'G1', 'MASTER', '300']],
    [['GROUP', 'G1', 'SLAVE', '0']],
    // FIFO-only events never reach scripts.
    [['INSTANCE', 'VI_1', 'MASTER_RX_LOWER_PRI', '100']],
    [['VS', 'G1', 'MASTER', '0']],
    [[1, 2, 3, 4]],
  ])('returns undefined for %j', (argv) => {
    expect(parseNotifyArgs(argv as unknown as string[])).toBeUndefined();
  });
});

/** A run() whose steps complete only when the test says so. */
function manualRun() {
  const calls: FailoverStep[] = [];
  const waiting: { step: FailoverStep; resolve: () => void; reject: (err: Error) => void }[] = [];
  const run = (step: FailoverStep) =>
    new Promise<void>((resolve, reject) => {
      calls.push(step);
      waiting.push({ step, resolve, reject });
    });
  /** Completes the running step and lets the sequencer start the next. */
  const finish = async (fail?: string) => {
    const w = waiting.shift();
    if (!w) throw new Error('no step is running');
    if (fail) w.reject(new Error(fail));
    else w.resolve();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { calls, waiting, run, finish };
}

describe('FailoverSequencer', () => {
  it('runs the primary-backup.sh sequences in order', async () => {
    const calls: FailoverStep[] = [];
    const { log } = captureLogger();
    const seq = new FailoverSequencer({ run: async (step) => void calls.push(step), log });
    seq.handleLine('INSTANCE "VI_1" MASTER 100');
    await seq.idle();
    expect(calls).toEqual(['commit', 'flush', 'resync', 'bulk-send']);
    seq.handleLine('INSTANCE "VI_1" BACKUP 100');
    await seq.idle();
    seq.handleLine('INSTANCE "VI_1" FAULT 100');
    await seq.idle();
    expect(calls.slice(4)).toEqual(['purge-timeout', 'request-resync', 'purge-timeout']);
    expect(seq.state).toBe('fault');
    expect(seq.counters).toMatchObject({ events: 3, transitions: 3, stepsRun: 7, stepFailures: 0, superseded: 0 });
  });

  it('lets a running step finish, drops the rest of its sequence and runs the new target', async () => {
    const m = manualRun();
    const { log, lines } = captureLogger();
    const seq = new FailoverSequencer({ run: m.run, log });
    seq.handleLine('GROUP "G1" MASTER 0');
    expect(m.calls).toEqual(['commit']);
    seq.handleLine('GROUP "G1" BACKUP 0');
    // Never concurrent: the backup sequence waits for commit.
    expect(m.calls).toEqual(['commit']);
    expect(seq.state).toBe('backup');
    await m.finish();
    expect(m.calls).toEqual(['commit', 'purge-timeout']);
    await m.finish();
    await m.finish();
    await seq.idle();
    expect(m.calls).toEqual(['commit', 'purge-timeout', 'request-resync']);
    expect(seq.counters).toMatchObject({ transitions: 2, superseded: 1, stepsRun: 3 });
    const transitions = lines.filter((l) => l.msg === 'keepalived transition').map((l) => l.ctx);
    expect(transitions).toEqual([
      { from: 'none', to: 'primary', scope: 'group', name: 'G1', priority: 0 },
      { from: 'primary', to: 'backup', scope: 'group', name: 'G1', priority: 0 },
    ]);
    expect(lines.find((l) => l.msg === 'failover sequence superseded')?.ctx).toEqual({
      target: 'primary',
      by: 'backup',
      dropped: ['flush', 'resync', 'bulk-send'],
    });
  });

  it('runs only the latest of several targets that arrive during one step', async () => {
    const m = manualRun();
    const seq = new FailoverSequencer({ run: m.run, log: captureLogger().log });
    seq.handleLine('GROUP "G1" BACKUP 0');
    seq.handleLine('GROUP "G1" MASTER 0');
    seq.handleLine('GROUP "G1" FAULT 0');
    seq.handleLine('GROUP "G1" MASTER 0');
    await m.finish();
    while (m.waiting.length > 0) await m.finish();
    await seq.idle();
    expect(m.calls).toEqual(['purge-timeout', 'commit', 'flush', 'resync', 'bulk-send']);
    expect(seq.counters.transitions).toBe(4);
  });

  it('ignores a repeated state, even while its sequence runs', async () => {
    const m = manualRun();
    const seq = new FailoverSequencer({ run: m.run, log: captureLogger().log });
    seq.handleLine('GROUP "G1" MASTER 0');
    seq.handleLine('GROUP "G1" MASTER 0');
    while (m.waiting.length > 0) await m.finish();
    seq.handleLine('GROUP "G1" MASTER 0');
    await seq.idle();
    expect(m.calls).toEqual(['commit', 'flush', 'resync', 'bulk-send']);
    expect(seq.counters).toMatchObject({ events: 3, ignored: 2, transitions: 1 });
  });

  it('records stop without running anything, and acts on the next state after it', async () => {
    const calls: FailoverStep[] = [];
    const seq = new FailoverSequencer({ run: async (s) => void calls.push(s), log: captureLogger().log });
    seq.handleLine('INSTANCE "VI_1" BACKUP 100');
    await seq.idle();
    seq.handleLine('INSTANCE "VI_1" STOP 100');
    expect(seq.busy).toBe(false);
    expect(seq.state).toBe('stop');
    seq.handleLine('INSTANCE "VI_1" BACKUP 100');
    await seq.idle();
    expect(calls).toEqual(['purge-timeout', 'request-resync', 'purge-timeout', 'request-resync']);
    expect(seq.counters.transitions).toBe(3);
  });

  it('follows GROUP events, and INSTANCE events only until the first GROUP event', async () => {
    const calls: FailoverStep[] = [];
    const seq = new FailoverSequencer({ run: async (s) => void calls.push(s), log: captureLogger().log });
    seq.handleLine('INSTANCE "VI_1" BACKUP 100');
    await seq.idle();
    expect(seq.state).toBe('backup');
    seq.handleLine('INSTANCE "VI_1" MASTER 100');
    await seq.idle();
    expect(seq.state).toBe('primary');
    seq.handleLine('GROUP "G1" MASTER 0');
    seq.handleLine('INSTANCE "VI_2" FAULT 100');
    await seq.idle();
    expect(seq.state).toBe('primary');
    seq.handleLine('GROUP "G1" BACKUP 0');
    await seq.idle();
    expect(seq.state).toBe('backup');
    expect(seq.counters).toMatchObject({ events: 5, transitions: 3, ignored: 2 });
  });

  it('with a name, follows only that group or instance', async () => {
    const calls: FailoverStep[] = [];
    const seq = new FailoverSequencer({ name: 'VI_WAN', run: async (s) => void calls.push(s), log: captureLogger().log });
    seq.handleLine('GROUP "G1" MASTER 0');
    seq.handleLine('INSTANCE "VI_LAN" MASTER 100');
    await seq.idle();
    expect(seq.state).toBeUndefined();
    seq.handleLine('INSTANCE "VI_WAN" FAULT 100');
    await seq.idle();
    expect(seq.state).toBe('fault');
    expect(calls).toEqual(['purge-timeout']);
    expect(seq.counters).toMatchObject({ events: 3, ignored: 2, transitions: 1 });
  });

  it('counts garbage, checker lines and non-state events without acting', async () => {
    const calls: FailoverStep[] = [];
    const { log, lines } = captureLogger();
    const seq = new FailoverSequencer({ run: async (s) => void calls.push(s), log });
    seq.handleLine('hello');
    seq.handleLine('VS [10.0.0.1]:tcp:80 UP');
    seq.handleLine('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100');
    seq.handle(undefined);
    await seq.idle();
    expect(calls).toEqual([]);
    expect(seq.state).toBeUndefined();
    expect(seq.counters).toMatchObject({ events: 4, unparsable: 2, ignored: 2, transitions: 0 });
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.ctx)).toEqual([{ line: 'hello' }]);
  });

  it('carries on after a failed step, logging at error level and counting', async () => {
    const m = manualRun();
    const { log, lines } = captureLogger();
    const seq = new FailoverSequencer({ run: m.run, log });
    seq.handleLine('GROUP "G1" MASTER 0');
    await m.finish('commit: kernel said EPERM');
    await m.finish();
    await m.finish('resync: dump failed');
    await m.finish();
    await seq.idle();
    expect(m.calls).toEqual(['commit', 'flush', 'resync', 'bulk-send']);
    expect(seq.counters).toMatchObject({ stepsRun: 4, stepFailures: 2 });
    expect(lines.filter((l) => l.level === 'error').map((l) => l.ctx)).toEqual([
      { target: 'primary', step: 'commit', error: 'commit: kernel said EPERM' },
      { target: 'primary', step: 'resync', error: 'resync: dump failed' },
    ]);
    expect(lines.find((l) => l.msg === 'failover sequence finished with failures')?.ctx).toMatchObject({
      target: 'primary',
      failures: 2,
    });
  });

  it('treats a run() that throws synchronously as a failed step', async () => {
    const seq = new FailoverSequencer({
      run: (step) => {
        if (step === 'purge-timeout') throw new Error('sync throw');
        return Promise.resolve();
      },
      log: captureLogger().log,
    });
    seq.handleLine('GROUP "G1" BACKUP 0');
    await seq.idle();
    expect(seq.counters).toMatchObject({ stepsRun: 2, stepFailures: 1 });
  });

  it('idle() resolves at once when nothing runs', async () => {
    const seq = new FailoverSequencer({ run: async () => {}, log: captureLogger().log });
    await seq.idle();
    expect(seq.busy).toBe(false);
  });
});

describe('LineSplitter', () => {
  it('splits across chunks, keeps multi-byte characters and skips blank lines', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), 64);
    const bytes = Buffer.from('GROUP "grüppe" MASTER 0\n\nINSTANCE "VI_1" ', 'utf8');
    const cut = bytes.indexOf(0xbc); // inside ü
    s.push(bytes.subarray(0, cut));
    s.push(bytes.subarray(cut));
    s.push(Buffer.from('BACKUP 100\n'));
    expect(lines).toEqual(['GROUP "grüppe" MASTER 0', 'INSTANCE "VI_1" BACKUP 100']);
    expect(s.counters.lines).toBe(2);
  });

  it('drops an over-long line whole, however it is chunked, and counts it', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), 16);
    s.push(Buffer.from('x'.repeat(10)));
    s.push(Buffer.from('y'.repeat(10)));
    s.push(Buffer.from('z'.repeat(10)));
    s.push(Buffer.from('\nok\n'));
    s.push(Buffer.from(`${'a'.repeat(17)}\n${'b'.repeat(16)}\n`));
    expect(lines).toEqual(['ok', 'b'.repeat(16)]);
    expect(s.counters.overlong).toBe(2);
  });

  it('reset() drops an unfinished line', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push(Buffer.from('INSTANCE "VI'));
    expect(s.reset()).toBe(true);
    expect(s.reset()).toBe(false);
    s.push(Buffer.from('_1" MASTER 1\nGROUP "G" FAULT 0\n'));
    expect(lines).toEqual(['_1" MASTER 1', 'GROUP "G" FAULT 0']);
  });
});

describe('TrackFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ctsyncd-track-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts at 1, writes 0/1 only on change, creating the directory', () => {
    const path = join(dir, 'sub', 'dir', 'ctsyncd-sync');
    const { log, lines } = captureLogger();
    const t = new TrackFile(path, log);
    t.start();
    expect(fs.readFileSync(path, 'utf8')).toBe('1\n');
    expect(t.value).toBe(1);
    t.set(false);
    expect(t.counters.writes).toBe(1);
    t.set(true);
    expect(fs.readFileSync(path, 'utf8')).toBe('0\n');
    t.set(true);
    t.set(true);
    expect(t.counters.writes).toBe(2);
    t.set(false);
    expect(fs.readFileSync(path, 'utf8')).toBe('1\n');
    expect(t.counters).toEqual({ writes: 3, writeErrors: 0 });
    expect(fs.existsSync(`${path}.tmp`)).toBe(false);
    expect(lines.filter((l) => l.msg === 'keepalived track file written').map((l) => l.ctx?.value)).toEqual([1, 0, 1]);
  });

  it('start() rewrites 1 even when 1 was written last', () => {
    const path = join(dir, 'f');
    const t = new TrackFile(path);
    t.start();
    fs.writeFileSync(path, '0\n');
    t.start();
    expect(fs.readFileSync(path, 'utf8')).toBe('1\n');
    expect(t.counters.writes).toBe(2);
  });

  it('replaces the file by rename, so a reader never sees it empty or half written', () => {
    const path = join(dir, 'f');
    const t = new TrackFile(path);
    t.start();
    const before = fs.statSync(path).ino;
    // An open fd keeps the old inode: a rename leaves it untouched, an in-place write would not.
    const fd = fs.openSync(path, 'r');
    try {
      t.set(true);
      expect(fs.statSync(path).ino).not.toBe(before);
      expect(fs.readFileSync(path, 'utf8')).toBe('0\n');
      const old = Buffer.alloc(8);
      expect(old.toString('utf8', 0, fs.readSync(fd, old, 0, 8, 0))).toBe('1\n');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('logs and counts a failed write, never throws, and retries the same value next time', () => {
    // A directory where the file should be: rename onto it fails.
    const path = join(dir, 'blocked');
    fs.mkdirSync(path);
    const { log, lines } = captureLogger();
    const t = new TrackFile(path, log);
    expect(() => t.start()).not.toThrow();
    expect(() => t.set(false)).not.toThrow();
    expect(t.counters).toEqual({ writes: 0, writeErrors: 2 });
    expect(t.value).toBeUndefined();
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(2);
    fs.rmdirSync(path);
    t.set(false);
    expect(fs.readFileSync(path, 'utf8')).toBe('1\n');
    expect(t.counters.writes).toBe(1);
  });
});
