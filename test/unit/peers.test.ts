// PeerTable on its own, on a hand-set clock: the unknown → up → down → up
// machine, restarts and rollovers of a peer's epoch, replays of a numbered
// datagram, and what each transition counts, logs and calls back.
import { describe, expect, it } from 'vitest';
import { PeerTable } from '../../src/sync/engine/peers.js';
import { captureLogger } from './doubles.js';

function table(deadAfterMs = 1000) {
  let now = 0;
  const { log, lines } = captureLogger();
  const calls: string[] = [];
  const peers = new PeerTable({
    now: () => now,
    deadAfterMs,
    log,
    onRestart: (id, epoch, previous) => calls.push(`restart ${id} ${epoch} ${previous}`),
    onUp: (id) => calls.push(`up ${id}`),
    onDown: (id) => calls.push(`down ${id}`),
  });
  return {
    peers,
    lines,
    calls,
    at: (ms: number) => {
      now = ms;
    },
  };
}

describe('PeerTable', () => {
  it('a first datagram tracks the peer and brings it up once', () => {
    const t = table();
    t.at(5);
    expect(t.peers.seen('b', 7)).toBe(true);
    expect(t.peers.get('b')).toEqual({
      id: 'b',
      state: 'up',
      epoch: 7,
      lastSeenMs: 5,
      lastNumber: undefined,
      restarts: 0,
      ups: 1,
      downs: 0,
    });
    t.at(9);
    expect(t.peers.seen('b', 7)).toBe(true);
    expect(t.peers.get('b')).toMatchObject({ state: 'up', lastSeenMs: 9, ups: 1 });
    expect(t.peers.counters).toEqual({ ups: 1, downs: 0, restarts: 0 });
    expect(t.calls).toEqual(['up b']);
    expect(t.lines).toEqual([{ level: 'info', msg: 'peer up', ctx: { peer: 'b', epoch: 7 } }]);
  });

  // [numbers seen in order, whether each was a sign of life, lastNumber after]
  const numbered: Array<[string, number[], boolean[], number]> = [
    ['increasing', [1, 2, 5], [true, true, true], 5],
    ['a repeat is a replay', [3, 3], [true, false], 3],
    ['an older number is a replay', [10, 9, 11], [true, false, true], 11],
    ['numbers wrap modulo 2^32', [0xffff_fffe, 0xffff_ffff, 0, 1], [true, true, true, true], 1],
    ['half the ring behind is a replay', [0x8000_0000, 1], [true, false], 0x8000_0000],
  ];
  for (const [what, numbers, live, last] of numbered) {
    it(`numbered datagrams: ${what}`, () => {
      const t = table();
      const got: boolean[] = [];
      for (const [i, n] of numbers.entries()) {
        t.at(100 + i);
        got.push(t.peers.seen('b', 7, n));
      }
      expect(got).toEqual(live);
      expect(t.peers.get('b')?.lastNumber).toBe(last);
      // A replay does not refresh lastSeen.
      const lastLive = live.lastIndexOf(true);
      expect(t.peers.get('b')?.lastSeenMs).toBe(100 + lastLive);
    });
  }

  it('an unnumbered datagram after numbered ones is a sign of life and keeps the number', () => {
    const t = table();
    t.peers.seen('b', 7, 4);
    t.at(50);
    expect(t.peers.seen('b', 7)).toBe(true);
    expect(t.peers.get('b')).toMatchObject({ lastNumber: 4, lastSeenMs: 50 });
  });

  it('a replay does not bring a down peer up', () => {
    const t = table(1000);
    t.peers.seen('b', 7, 10);
    t.at(1001);
    t.peers.sweep();
    expect(t.peers.get('b')?.state).toBe('down');
    t.at(1002);
    expect(t.peers.seen('b', 7, 10)).toBe(false);
    expect(t.peers.get('b')).toMatchObject({ state: 'down', lastSeenMs: 0, ups: 1 });
    expect(t.peers.seen('b', 7, 11)).toBe(true);
    expect(t.peers.get('b')).toMatchObject({ state: 'up', lastSeenMs: 1002, ups: 2, downs: 1 });
    expect(t.calls).toEqual(['up b', 'down b', 'up b']);
  });

  it('a new epoch is a restart: counted, logged, called back, numbers start again', () => {
    const t = table();
    t.peers.seen('b', 7, 100);
    t.at(20);
    expect(t.peers.seen('b', 9, 1)).toBe(true);
    expect(t.peers.get('b')).toMatchObject({ epoch: 9, lastNumber: 1, restarts: 1, ups: 1, state: 'up' });
    expect(t.peers.counters).toEqual({ ups: 1, downs: 0, restarts: 1 });
    expect(t.calls).toEqual(['up b', 'restart b 9 7']);
    expect(t.lines[1]).toEqual({ level: 'info', msg: 'peer restarted', ctx: { peer: 'b', epoch: 9, previousEpoch: 7 } });
    // A lower epoch is a restart too (the table takes what freshness let through).
    t.peers.seen('b', 8);
    expect(t.peers.get('b')).toMatchObject({ epoch: 8, lastNumber: undefined, restarts: 2 });
    expect(t.peers.counters.restarts).toBe(2);
  });

  it('a restart with an unnumbered datagram forgets the last number', () => {
    const t = table();
    t.peers.seen('b', 7, 100);
    t.peers.seen('b', 8);
    expect(t.peers.get('b')?.lastNumber).toBeUndefined();
    expect(t.peers.seen('b', 8, 5)).toBe(true);
  });

  it('a rollover changes the epoch and forgets the number without a restart', () => {
    const t = table();
    t.peers.seen('b', 7, 100);
    t.peers.rolled('b', 8);
    expect(t.peers.get('b')).toMatchObject({ epoch: 8, lastNumber: undefined, restarts: 0 });
    expect(t.peers.counters.restarts).toBe(0);
    expect(t.lines.at(-1)).toEqual({
      level: 'info',
      msg: 'peer epoch rolled over',
      ctx: { peer: 'b', epoch: 8, previousEpoch: 7 },
    });
    // Numbers of the new epoch start low again and are signs of life.
    expect(t.peers.seen('b', 8, 1)).toBe(true);
    expect(t.calls).toEqual(['up b']);
  });

  it('a rollover to the same epoch, or of an unknown peer, changes nothing', () => {
    const t = table();
    t.peers.seen('b', 7, 100);
    const lines = t.lines.length;
    t.peers.rolled('b', 7);
    expect(t.peers.get('b')).toMatchObject({ epoch: 7, lastNumber: 100 });
    t.peers.rolled('c', 3);
    expect(t.peers.has('c')).toBe(false);
    expect(t.lines.length).toBe(lines);
  });

  // [silence in ms at the sweep, state after] with deadAfterMs 1000
  const sweeps: Array<[number, string]> = [
    [999, 'up'],
    [1000, 'up'],
    [1001, 'down'],
  ];
  for (const [silent, state] of sweeps) {
    it(`sweep after ${silent} ms of silence: ${state}`, () => {
      const t = table(1000);
      t.at(10);
      t.peers.seen('b', 7);
      t.at(10 + silent);
      t.peers.sweep();
      expect(t.peers.get('b')?.state).toBe(state);
      expect(t.peers.counters.downs).toBe(state === 'down' ? 1 : 0);
    });
  }

  it('a sweep marks only silent up peers down, once, and logs how long they were silent', () => {
    const t = table(1000);
    t.peers.seen('b', 7);
    t.at(600);
    t.peers.seen('c', 7);
    t.at(1500);
    t.peers.sweep();
    t.at(3000);
    t.peers.sweep();
    expect(t.peers.get('b')).toMatchObject({ state: 'down', downs: 1 });
    expect(t.peers.get('c')).toMatchObject({ state: 'down', downs: 1 });
    expect(t.peers.counters).toEqual({ ups: 2, downs: 2, restarts: 0 });
    expect(t.calls).toEqual(['up b', 'up c', 'down b', 'down c']);
    expect(t.lines.filter((l) => l.level === 'warn')).toEqual([
      { level: 'warn', msg: 'peer down', ctx: { peer: 'b', silentMs: 1500 } },
      { level: 'warn', msg: 'peer down', ctx: { peer: 'c', silentMs: 2400 } },
    ]);
  });

  it('lists every peer with its age in tenths of a second', () => {
    const t = table(10_000);
    t.peers.seen('b', 7);
    t.at(1249);
    t.peers.seen('c', 3);
    t.peers.seen('c', 4);
    t.at(2300);
    expect(t.peers.list()).toEqual([
      { id: 'b', state: 'up', epoch: 7, lastSeenAgeSeconds: 2.3, restarts: 0 },
      { id: 'c', state: 'up', epoch: 4, lastSeenAgeSeconds: 1.1, restarts: 1 },
    ]);
    t.at(1299);
    expect(t.peers.list().map((p) => p.lastSeenAgeSeconds)).toEqual([1.3, 0.1]);
  });

  it('tracks, iterates and forgets peers', () => {
    const t = table();
    expect(t.peers.size).toBe(0);
    expect(t.peers.has('b')).toBe(false);
    expect(t.peers.get('b')).toBeUndefined();
    t.peers.seen('b', 7);
    t.peers.seen('c', 7);
    expect(t.peers.size).toBe(2);
    expect([...t.peers.infos()].map((p) => p.id)).toEqual(['b', 'c']);
    expect(t.peers.forget('b')).toBe(true);
    expect(t.peers.forget('b')).toBe(false);
    expect(t.peers.has('b')).toBe(false);
    expect(t.peers.size).toBe(1);
    // Seen again after being forgotten: a first contact, not a restart.
    t.peers.seen('b', 9);
    expect(t.peers.get('b')).toMatchObject({ epoch: 9, restarts: 0, ups: 1 });
  });

  it('works without callbacks', () => {
    const { log } = captureLogger();
    let now = 0;
    const peers = new PeerTable({ now: () => now, deadAfterMs: 10, log });
    peers.seen('b', 1);
    peers.seen('b', 2);
    now = 100;
    peers.sweep();
    expect(peers.counters).toEqual({ ups: 1, downs: 1, restarts: 1 });
  });
});
