// The notify FIFO reader against real FIFOs (mkfifo in a temp dir), with a
// separate fd standing in for keepalived.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FailoverSequencer,
  type FailoverStep,
  isNotifyFifoError,
  NotifyFifoReader,
  runNotifyFifo,
} from '../../src/keepalived/index.js';
import { silentLogger } from '../../src/log.js';

/** Collects values and resolves waits on their count; no clocks involved. */
function collector<T>() {
  const items: T[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  const push = (item: T) => {
    items.push(item);
    if (waiter && items.length >= waiter.n) {
      waiter.resolve();
      waiter = undefined;
    }
  };
  const until = (n: number) =>
    items.length >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { n, resolve }));
  return { items, push, until };
}

/** keepalived's side: open for writing, write one line per write(), close. */
function writeLines(path: string, lines: string[]): void {
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  try {
    for (const line of lines) fs.writeSync(fd, `${line}\n`);
  } finally {
    fs.closeSync(fd);
  }
}

function fdsOpenOn(path: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {}
  }
  return n;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('NotifyFifoReader', () => {
  let dir: string;
  let path: string;
  const readers: { close(): void }[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'ctsyncd-fifo-'));
    path = join(dir, 'vrrp_notify_fifo');
  });
  afterEach(() => {
    for (const r of readers.splice(0)) r.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates a missing FIFO (0600) and feeds its lines through the sequencer in order', async () => {
    const steps = collector<FailoverStep>();
    const seq = new FailoverSequencer({ run: async (s) => steps.push(s), log: silentLogger });
    const handle = runNotifyFifo(path, seq, silentLogger, { recheckMs: 0 });
    readers.push(handle);
    const st = fs.lstatSync(path);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(handle.reader.counters.created).toBe(1);

    writeLines(path, ['INSTANCE "VI_1" BACKUP 100', 'GROUP "G1" MASTER 0', 'VS [10.0.0.1]:tcp:80 UP']);
    await steps.until(5);
    await seq.idle();
    // All three lines arrive in one read, so the MASTER line cuts the BACKUP
    // sequence after its first step.
    expect(steps.items).toEqual(['purge-timeout', 'commit', 'flush', 'resync', 'bulk-send']);
    expect(seq.state).toBe('primary');
  });

  it('keeps reading when the writer closes and reopens (no EOF)', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 0 });
    readers.push(reader);
    reader.open();
    writeLines(path, ['INSTANCE "VI_1" BACKUP 100']);
    await lines.until(1);
    writeLines(path, ['INSTANCE "VI_1" MASTER 100']);
    writeLines(path, ['INSTANCE "VI_1" FAULT 100', 'INSTANCE "VI_1" STOP 100']);
    await lines.until(4);
    expect(lines.items).toEqual([
      'INSTANCE "VI_1" BACKUP 100',
      'INSTANCE "VI_1" MASTER 100',
      'INSTANCE "VI_1" FAULT 100',
      'INSTANCE "VI_1" STOP 100',
    ]);
    expect(reader.counters.errors).toBe(0);
  });

  it('uses an existing FIFO as is', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 0 });
    readers.push(reader);
    makeFifo(path);
    const ino = fs.lstatSync(path).ino;
    reader.open();
    expect(reader.counters.created).toBe(0);
    expect(fs.lstatSync(path).ino).toBe(ino);
    writeLines(path, ['GROUP "G1" BACKUP 0']);
    await lines.until(1);
  });

  it('follows a FIFO keepalived replaced, reading what was left in the old one first', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 0 });
    readers.push(reader);
    reader.open();
    writeLines(path, ['GROUP "G1" BACKUP 0']);
    await lines.until(1);

    // keepalived stopping (unlink, then close) and starting again, all
    // before the reader gets a turn: the last old line is still in the pipe.
    const old = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fs.writeSync(old, 'GROUP "G1" FAULT 0\n');
    fs.unlinkSync(path);
    fs.closeSync(old);
    makeFifo(path);
    const keepalived = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      fs.writeSync(keepalived, 'GROUP "G1" MASTER 0\n');
      reader.check();
      expect(reader.counters.reopens).toBe(1);
      await lines.until(3);
      expect(lines.items).toEqual(['GROUP "G1" BACKUP 0', 'GROUP "G1" FAULT 0', 'GROUP "G1" MASTER 0']);
      // Same FIFO still: nothing to do.
      reader.check();
      expect(reader.counters.reopens).toBe(1);
    } finally {
      fs.closeSync(keepalived);
    }
  });

  it('recreates the FIFO when keepalived removed it, and keeps working', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 0 });
    readers.push(reader);
    reader.open();
    fs.unlinkSync(path);
    reader.check();
    expect(fs.lstatSync(path).isFIFO()).toBe(true);
    expect(reader.counters).toMatchObject({ created: 2, reopens: 1, errors: 0 });
    expect(fdsOpenOn(path)).toBe(1);
    writeLines(path, ['INSTANCE "VI_1" MASTER 100']);
    await lines.until(1);
  });

  it('finds a replaced FIFO by itself with a recheck interval', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 10 });
    readers.push(reader);
    reader.open();
    fs.unlinkSync(path);
    makeFifo(path);
    const keepalived = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      fs.writeSync(keepalived, 'GROUP "G1" MASTER 0\n');
      await lines.until(1);
      expect(reader.counters.reopens).toBe(1);
    } finally {
      fs.closeSync(keepalived);
    }
  });

  it('drops an over-long line and reads on', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 0, maxLineBytes: 100 });
    readers.push(reader);
    reader.open();
    writeLines(path, ['x'.repeat(5000), 'GROUP "G1" MASTER 0']);
    await lines.until(1);
    expect(lines.items).toEqual(['GROUP "G1" MASTER 0']);
    expect(reader.overlong).toBe(1);
  });

  it.each([
    ['a regular file', (p: string) => fs.writeFileSync(p, '')],
    ['a directory', (p: string) => fs.mkdirSync(p)],
    [
      'a symlink to a FIFO',
      (p: string) => {
        makeFifo(`${p}.real`);
        fs.symlinkSync(`${p}.real`, p);
      },
    ],
  ])('refuses %s with ENOTFIFO', (_what, make) => {
    make(path);
    const reader = new NotifyFifoReader({ path, onLine: () => {}, recheckMs: 0 });
    readers.push(reader);
    let caught: unknown;
    try {
      reader.open();
    } catch (err) {
      caught = err;
    }
    expect(isNotifyFifoError(caught)).toBe(true);
    expect((caught as { code: string }).code).toBe('ENOTFIFO');
  });

  it('passes on other open errors, such as a missing directory', () => {
    const reader = new NotifyFifoReader({ path: join(dir, 'nope', 'fifo'), onLine: () => {}, recheckMs: 0 });
    readers.push(reader);
    expect(() => reader.open()).toThrow();
  });

  it('check() logs and counts a path that became something else, keeping the FIFO it holds', async () => {
    const lines = collector<string>();
    const reader = new NotifyFifoReader({ path, onLine: lines.push, recheckMs: 0 });
    readers.push(reader);
    reader.open();
    const held = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    try {
      fs.unlinkSync(path);
      fs.writeFileSync(path, 'not a fifo');
      reader.check();
      reader.check();
      expect(reader.counters).toMatchObject({ errors: 2, reopens: 0 });
      fs.writeSync(held, 'GROUP "G1" BACKUP 0\n');
      await lines.until(1);
    } finally {
      fs.closeSync(held);
    }
  });

  it('close() releases the fd', async () => {
    const reader = new NotifyFifoReader({ path, onLine: () => {}, recheckMs: 10 });
    reader.open();
    expect(fdsOpenOn(path)).toBe(1);
    reader.close();
    reader.close();
    for (let i = 0; i < 100 && fdsOpenOn(path) > 0; i++) await nextTurn();
    expect(fdsOpenOn(path)).toBe(0);
    expect(() => reader.open()).toThrow(/closed/);
  });
});

/** keepalived creating its FIFO. */
function makeFifo(path: string): void {
  execFileSync('mkfifo', [path]);
}
