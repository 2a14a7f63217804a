// The small pieces of the reliability protocol on their own: the receive
// window, the resend queue, notrack's removal depth, and the config block.
import { describe, expect, it } from 'vitest';
import { isConfigError, parseConfig } from '../../src/config/index.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';
import { notrackRemovalDepth } from '../../src/sync/engine/reliability-rx.js';
import { ResendQueue } from '../../src/sync/engine/resend-queue.js';
import { seqAdd } from '../../src/sync/engine/seq.js';
import { SeqWindow } from '../../src/sync/engine/seq-window.js';
import type { WireMessage } from '../../src/sync/wire/types.js';

const NEAR_WRAP = 0xffff_fff0;

describe('SeqWindow', () => {
  it('moves expected over contiguous seqs and reports gaps as runs, across the 2^32 wrap', () => {
    const w = new SeqWindow(NEAR_WRAP, 1024);
    expect(w.record(NEAR_WRAP)).toBe('new');
    expect(w.advance()).toBe(1);
    // 0xfffffff1..0xfffffff4 arrive, then a hole, then 0xfffffffa..0x2 (past the wrap), then 0x5.
    for (let k = 1; k <= 4; k++) w.record(seqAdd(NEAR_WRAP, k));
    for (let k = 10; k <= 18; k++) w.record(seqAdd(NEAR_WRAP, k));
    expect(w.record(5)).toBe('new');
    expect(w.advance()).toBe(4);
    expect(w.expected).toBe(seqAdd(NEAR_WRAP, 5));
    expect(w.known).toBe(6);
    expect(w.missing).toBe(true);
    expect(w.missingRuns(10)).toEqual([
      [seqAdd(NEAR_WRAP, 5), seqAdd(NEAR_WRAP, 9)],
      [3, 4],
    ]);
    expect(w.missingRuns(1)).toEqual([[seqAdd(NEAR_WRAP, 5), seqAdd(NEAR_WRAP, 9)]]);
    for (let k = 5; k <= 9; k++) w.record(seqAdd(NEAR_WRAP, k));
    w.record(3);
    w.record(4);
    expect(w.advance()).toBe(17);
    expect(w.expected).toBe(6);
    expect(w.missing).toBe(false);
  });

  it('classifies duplicates, old and out-of-window seqs', () => {
    const w = new SeqWindow(100, 64);
    expect(w.record(101)).toBe('new');
    expect(w.record(101)).toBe('dup');
    expect(w.record(99)).toBe('old');
    expect(w.has(99)).toBe(true);
    expect(w.has(100)).toBe(false);
    expect(w.record(100 + 64)).toBe('beyond');
    expect(w.known).toBe(165);
    // Beyond the tracked window the missing run extends to known.
    expect(w.missingRuns(10)).toEqual([
      [100, 100],
      [102, 164],
    ]);
  });

  it('skipTo supersedes everything before a bulk, and announce reveals a lost tail', () => {
    const w = new SeqWindow(10, 64);
    w.record(12);
    w.record(40);
    w.skipTo(30);
    expect(w.expected).toBe(30);
    expect(w.has(12)).toBe(true);
    expect(w.missingRuns(10)).toEqual([[30, 39]]);
    expect(w.announce(45)).toBe(true);
    expect(w.announce(44)).toBe(false);
    expect(w.missingRuns(10)).toEqual([
      [30, 39],
      [41, 44],
    ]);
    w.skipTo(1000);
    expect(w.expected).toBe(1000);
    expect(w.missing).toBe(false);
    expect(w.record(1001)).toBe('new');
    expect(w.has(1000 + 64 + 1)).toBe(false);
  });

  it('skips whole words of arrived seqs when listing runs', () => {
    const w = new SeqWindow(0, 1 << 12);
    for (let s = 1; s < 4000; s++) if (s !== 2000) w.record(s);
    expect(w.missingRuns(10)).toEqual([
      [0, 0],
      [2000, 2000],
    ]);
  });
});

function msg(seq: number): WireMessage {
  const e = { family: 2, orig: { src: '10.0.0.1', dst: '10.0.0.2', proto: 17 } } as ConntrackEntry;
  return { kind: 'ct-update', seq, entry: e };
}

describe('ResendQueue', () => {
  it('keeps consecutive seqs in a ring, across the wrap, and releases from the front', () => {
    const q = new ResendQueue(4, NEAR_WRAP);
    expect(q.front).toBe(NEAR_WRAP);
    for (let k = 0; k < 4; k++) q.push(seqAdd(0xffff_fffe, k), msg(seqAdd(0xffff_fffe, k)), k);
    expect(q.full).toBe(true);
    expect(q.front).toBe(0xffff_fffe);
    expect(q.end).toBe(2);
    expect(q.get(0)).toMatchObject({ seq: 0 });
    expect(q.has(2)).toBe(false);
    expect(q.lastSent(1)).toBe(3);
    q.touch(1, 9);
    expect(q.lastSent(1)).toBe(9);
    expect(q.releaseBefore(0)).toBe(2);
    expect(q.front).toBe(0);
    expect(q.length).toBe(2);
    q.push(2, msg(2), 10);
    q.push(3, msg(3), 11);
    expect(() => q.push(4, msg(4), 12)).toThrow(RangeError);
    q.shift();
    expect(q.get(1)).toMatchObject({ seq: 1 });
    expect(q.get(0)).toBeUndefined();
    expect(q.lastSent(0)).toBeNaN();
  });

  it('starts over when a seq does not follow the newest one', () => {
    const q = new ResendQueue(8, 10);
    q.push(10, msg(10), 0);
    expect(q.push(12, msg(12), 0)).toBe(false);
    expect(q.front).toBe(12);
    expect(q.length).toBe(1);
    q.clear(50);
    expect(q.length).toBe(0);
    expect(q.front).toBe(50);
  });
});

describe('notrackRemovalDepth', () => {
  it('combines more bulks the lossier they are', () => {
    expect(notrackRemovalDepth(10_000, 0)).toBe(1);
    expect(notrackRemovalDepth(10_000, 1)).toBe(2);
    expect(notrackRemovalDepth(10_000, 100)).toBe(3);
    expect(notrackRemovalDepth(10_000, 1000)).toBe(6);
    expect(notrackRemovalDepth(10_000, 9000)).toBe(8);
    expect(notrackRemovalDepth(0, 5)).toBe(8);
  });
});

describe('sync.reliability config', () => {
  const base = ['node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  multicast: { interface: sync0 }', '  auth: none'];

  it('takes overrides and keeps the other defaults', () => {
    const yaml = `${[...base, '  reliability: { ackWindow: 128, retransmitMs: 100 }'].join('\n')}\n`;
    const c = parseConfig(yaml, 't.yaml');
    expect(c.sync!.reliability).toMatchObject({ ackWindow: 128, retransmitMs: 100, retransmitMaxMs: 2000 });
  });

  it('rejects timers that contradict each other, and unknown keys', () => {
    const bad = (line: string): string[] => {
      try {
        parseConfig(`${[...base, line].join('\n')}\n`, 't.yaml');
      } catch (e) {
        if (isConfigError(e)) return e.issues.map((i) => `${i.path} ${i.message}`);
        throw e;
      }
      return [];
    };
    expect(bad('  reliability: { aliveIntervalMs: 4000 }')).toEqual([
      expect.stringMatching(/^sync\.reliability\.peerTimeoutMs must be longer than aliveIntervalMs/),
    ]);
    expect(bad('  reliability: { nackRetryMs: 2000 }')).toEqual([
      expect.stringMatching(/^sync\.reliability\.nackRetryMaxMs must be at least nackRetryMs/),
    ]);
    expect(bad('  reliability: { retransmitMaxMs: 100 }')).toEqual([
      expect.stringMatching(/^sync\.reliability\.retransmitMaxMs must be at least retransmitMs/),
    ]);
    expect(bad('  reliability: { resendQueueSize: 10 }')).toHaveLength(1);
    expect(bad('  reliability: { ackWindw: 10 }')).toHaveLength(1);
  });
});

describe('ResendQueue bounds', () => {
  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new ResendQueue(0, 0)).toThrow(/resend queue capacity 0/);
    expect(() => new ResendQueue(1.5, 0)).toThrow(RangeError);
    expect(new ResendQueue(1, 0).capacity).toBe(1);
  });

  it('answers nothing for seqs just outside [front, end), also after the ring wrapped', () => {
    const q = new ResendQueue(4, 10);
    for (let s = 10; s < 16; s++) {
      if (q.full) q.shift();
      expect(q.push(s, msg(s), s)).toBe(true);
    }
    // 12..15 kept, stored from ring slot 2 on: slots before and after the range hold other seqs' leftovers.
    expect(q.front).toBe(12);
    expect(q.end).toBe(16);
    for (const outside of [11, 16, 17, 8]) {
      expect(q.get(outside)).toBeUndefined();
      expect(q.lastSent(outside)).toBeNaN();
      expect(q.has(outside)).toBe(false);
    }
    q.touch(11, 99);
    q.touch(16, 99);
    expect([12, 13, 14, 15].map((s) => q.lastSent(s))).toEqual([12, 13, 14, 15]);
    q.shift();
    expect(q.get(12)).toBeUndefined();
    expect(q.lastSent(16)).toBeNaN();
  });

  it('starts an empty queue at whatever seq comes first, and shifting an empty queue does nothing', () => {
    const q = new ResendQueue(4, 10);
    q.shift();
    expect(q.length).toBe(0);
    expect(q.push(500, msg(500), 0)).toBe(true);
    expect(q.front).toBe(500);
    expect(q.push(501, msg(501), 0)).toBe(true);
    expect(() => {
      q.push(502, msg(502), 0);
      q.push(503, msg(503), 0);
      q.push(504, msg(504), 0);
    }).toThrow('resend queue full');
  });

  it('releases nothing before its front', () => {
    const q = new ResendQueue(4, 10);
    q.push(10, msg(10), 0);
    q.push(11, msg(11), 0);
    expect(q.releaseBefore(5)).toBe(0);
    expect(q.releaseBefore(10)).toBe(0);
    expect(q.length).toBe(2);
    expect(q.releaseBefore(100)).toBe(2);
    expect(q.length).toBe(0);
  });
});

describe('SeqWindow bounds', () => {
  it('wants a power of two of at least 32', () => {
    expect(() => new SeqWindow(0, 16)).toThrow(/window size 16/);
    expect(() => new SeqWindow(0, 48)).toThrow(RangeError);
    expect(new SeqWindow(0, 32).size).toBe(32);
  });

  it('has() sees what was recorded inside the window', () => {
    const w = new SeqWindow(100, 64);
    w.record(101);
    expect(w.has(101)).toBe(true);
    expect(w.has(102)).toBe(false);
  });

  it('known never moves back when an older seq arrives', () => {
    const w = new SeqWindow(100, 64);
    w.record(110);
    w.record(105);
    expect(w.known).toBe(111);
  });

  it('skipTo never moves back, keeps the bit of its target, and clears every bit it passes', () => {
    const w = new SeqWindow(10, 64);
    w.skipTo(5);
    expect(w.expected).toBe(10);
    w.record(12);
    w.record(40);
    w.skipTo(40);
    // 40 had arrived: advance moves over it.
    expect(w.advance()).toBe(1);
    expect(w.expected).toBe(41);
    // 12's bit was cleared: 12 + 64 (same ring slot) has not arrived.
    expect(w.has(76)).toBe(false);
    expect(w.record(76)).toBe('new');
    w.skipTo(1000);
    expect(w.known).toBe(1000);
    expect(w.missingRuns(10)).toEqual([]);
  });

  it('lists a run that starts at expected and reaches known', () => {
    const w = new SeqWindow(0, 64);
    w.announce(10);
    expect(w.missingRuns(10)).toEqual([[0, 9]]);
  });

  it('lists what lies beyond a window whose tracked part all arrived, within max runs', () => {
    const w = new SeqWindow(0, 32);
    for (let s = 1; s < 32; s++) w.record(s);
    w.record(40);
    expect(w.missingRuns(1)).toEqual([[0, 0]]);
    expect(w.missingRuns(2)).toEqual([
      [0, 0],
      [32, 40],
    ]);
    w.record(0);
    expect(w.missingRuns(2)).toEqual([[32, 40]]);
  });
});
