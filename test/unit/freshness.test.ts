// The freshness state machine (src/sync/engine/freshness.ts), the epoch
// choice (epoch.ts) and the warning limiter (log-limiter.ts), table-driven.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileEpochStore } from '../../src/daemon/epoch-store.js';
import { type LogContext, type Logger, silentLogger } from '../../src/log.js';
import { chooseEpoch } from '../../src/sync/engine/epoch.js';
import {
  ANSWER_INTERVAL_MS,
  CHALLENGE_INTERVAL_MS,
  Freshness,
  newFreshnessCounters,
  type Nonce,
} from '../../src/sync/engine/freshness.js';
import { LogLimiter, WARN_INTERVAL_MS } from '../../src/sync/engine/log-limiter.js';

function make(): { f: Freshness; c: ReturnType<typeof newFreshnessCounters> } {
  let x = 1;
  const c = newFreshnessCounters();
  return { f: new Freshness({ random: () => (x = (x * 1103515245 + 12345) >>> 0), counters: c }), c };
}

/** f believes `node` in `epoch` after one challenge–response round at time t. */
function verify(f: Freshness, node: string, epoch: number, t: number): void {
  const n = f.challenge(node, t);
  expect(n).toBeDefined();
  expect(f.onResponse(node, epoch, n!, 0)).not.toBe(false);
}

describe('Freshness: epoch verdicts', () => {
  // [what, verified epoch (undefined: none), datagram epoch, verdict]
  const table: Array<[string, number | undefined, number, 'current' | 'stale' | 'unverified']> = [
    ['first contact', undefined, 500, 'unverified'],
    ['the believed epoch', 500, 500, 'current'],
    ['an older epoch (a recording, or late)', 500, 499, 'stale'],
    ['a much older epoch', 500, 1, 'stale'],
    ['a newer epoch (a restart, or a forgery)', 500, 501, 'unverified'],
  ];
  for (const [what, verified, epoch, verdict] of table) {
    it(`${what}: ${verdict}`, () => {
      const { f } = make();
      if (verified !== undefined) verify(f, 'b', verified, 0);
      expect(f.verdict('b', epoch)).toBe(verdict);
      // Other nodes are judged apart.
      expect(f.verdict('c', epoch)).toBe('unverified');
    });
  }
});

describe('Freshness: challenge and response', () => {
  it('believes an epoch only with the nonce of the outstanding challenge', () => {
    const { f, c } = make();
    const n1 = f.challenge('b', 0)!;
    // A response to some other challenge (a recording) verifies nothing.
    expect(f.onResponse('b', 7, { nonceHi: n1.nonceHi ^ 1, nonceLo: n1.nonceLo }, 0)).toBe(false);
    expect(f.onResponse('b', 7, { nonceHi: n1.nonceHi, nonceLo: n1.nonceLo ^ 1 }, 0)).toBe(false);
    expect(f.verified('b')).toBeUndefined();
    expect(f.onResponse('b', 7, n1, 0)).toEqual({ previous: undefined, continued: false });
    expect(f.verified('b')).toBe(7);
    // The same response again (replayed): the nonce is spent.
    expect(f.onResponse('b', 7, n1, 0)).toBe(false);
    expect(c.responsesAccepted).toBe(1);
    expect(c.responsesIgnored).toBe(3);
  });

  it('a newer challenge replaces the older one: a late answer to the first verifies nothing', () => {
    const { f } = make();
    const n1 = f.challenge('b', 0)!;
    const n2 = f.challenge('b', CHALLENGE_INTERVAL_MS)!;
    expect(n2).not.toEqual(n1);
    expect(f.onResponse('b', 9, n1, 0)).toBe(false);
    expect(f.onResponse('b', 9, n2, 0)).toEqual({ previous: undefined, continued: false });
  });

  it('reports the epoch believed before: a restart, or a confirmation of the same one', () => {
    const { f } = make();
    verify(f, 'b', 10, 0);
    const n = f.challenge('b', 1000)!;
    expect(f.onResponse('b', 12, n, 0)).toEqual({ previous: 10, continued: false });
    const m = f.challenge('b', 2000)!;
    expect(f.onResponse('b', 12, m, 0)).toEqual({ previous: 12, continued: false });
    // A live answer from a lower epoch is believed too (its epoch file was lost and its clock is behind).
    const k = f.challenge('b', 3000)!;
    expect(f.onResponse('b', 11, k, 0)).toEqual({ previous: 12, continued: false });
    expect(f.verdict('b', 12)).toBe('unverified');
    expect(f.verdict('b', 11)).toBe('current');
  });

  it('carries on across rollovers of the incarnation believed, and keeps request numbers then', () => {
    const { f } = make();
    verify(f, 'b', 10, 0);
    expect(f.acceptRequest('b', 5)).toBe(true);
    // Started in 8, now in 11: 10 was one of its epochs, the stream goes on and request 5 stays honoured.
    expect(f.onResponse('b', 11, f.challenge('b', 1000)!, 8)).toEqual({ previous: 10, continued: true });
    expect(f.acceptRequest('b', 5)).toBe(false);
    expect(f.acceptRequest('b', 6)).toBe(true);
    // Several rollovers unheard: still the same incarnation.
    expect(f.onResponse('b', 15, f.challenge('b', 2000)!, 8)).toEqual({ previous: 11, continued: true });
    // Started after the epoch we believed: a restart, and its request numbers start again.
    expect(f.onResponse('b', 17, f.challenge('b', 3000)!, 16)).toEqual({ previous: 15, continued: false });
    expect(f.acceptRequest('b', 1)).toBe(true);
    // A lower epoch (epoch file lost, clock behind) or a sender that does not say (0): a restart.
    expect(f.onResponse('b', 9, f.challenge('b', 4000)!, 8)).toEqual({ previous: 17, continued: false });
    expect(f.onResponse('b', 12, f.challenge('b', 5000)!, 0)).toEqual({ previous: 9, continued: false });
    // First contact is never a continuation.
    expect(f.onResponse('c', 5, f.challenge('c', 0)!, 4)).toEqual({ previous: undefined, continued: false });
  });

  it('sends at most one challenge per node per CHALLENGE_INTERVAL_MS', () => {
    const { f, c } = make();
    const sent: number[] = [];
    for (let t = 0; t < 10 * CHALLENGE_INTERVAL_MS; t += 10) if (f.challenge('b', t)) sent.push(t);
    expect(sent).toEqual(Array.from({ length: 10 }, (_, i) => i * CHALLENGE_INTERVAL_MS));
    expect(f.challenge('c', 5)).toBeDefined();
    expect(c.challengesSent).toBe(11);
  });

  it('answers each nonce once, at most one answer per ANSWER_INTERVAL_MS', () => {
    const { f, c } = make();
    const n = (i: number): Nonce => ({ nonceHi: i, nonceLo: i * 3 });
    // [time, nonce, answered]
    const steps: Array<[number, number, boolean]> = [
      [0, 1, true],
      [1, 1, false], // the same challenge replayed
      [ANSWER_INTERVAL_MS - 1, 2, false], // too soon
      [ANSWER_INTERVAL_MS, 2, true],
      [5 * ANSWER_INTERVAL_MS, 1, false], // still remembered
      [6 * ANSWER_INTERVAL_MS, 3, true],
    ];
    for (const [t, k, answered] of steps) expect(f.shouldAnswer('b', n(k), t), `t=${t} nonce ${k}`).toBe(answered);
    expect(c.challengesReceived).toBe(6);
    expect(c.challengesAnswered).toBe(3);
    expect(c.challengesIgnored).toBe(3);
  });
});

describe('Freshness: resync request numbers', () => {
  it('honours each number once, only from a believed epoch, counting again for a new epoch', () => {
    const { f, c } = make();
    expect(f.acceptRequest('b', 1)).toBe(false); // not believed yet
    verify(f, 'b', 10, 0);
    // [request number, honoured]
    const steps: Array<[number, boolean]> = [
      [1, true],
      [1, false], // replayed
      [3, true],
      [2, false], // older than the last honoured
      [4, true],
    ];
    for (const [n, ok] of steps) expect(f.acceptRequest('b', n), `request ${n}`).toBe(ok);
    verify(f, 'b', 11, 1000);
    expect(f.acceptRequest('b', 1)).toBe(true);
    expect(c.staleRequests).toBe(3);
  });

  it('numbers our own requests from 1 upwards', () => {
    const { f } = make();
    expect([f.nextRequest(), f.nextRequest(), f.nextRequest()]).toEqual([1, 2, 3]);
  });
});

describe('epochs only increase', () => {
  // [last used, wall clock ms, epoch]
  const table: Array<[number | undefined, number, number]> = [
    [undefined, 1_700_000_000_500, 1_700_000_000],
    [1_600_000_000, 1_700_000_000_000, 1_700_000_000],
    [1_700_000_000, 1_700_000_000_900, 1_700_000_001], // two starts within a second
    [1_800_000_000, 1_700_000_000_000, 1_800_000_001], // clock stepped back
    [undefined, 0, 1],
    [0xffff_ffff, 0, 1],
  ];
  for (const [last, now, epoch] of table) {
    it(`after ${last} at ${now} ms: ${epoch}`, () => expect(chooseEpoch(last, now)).toBe(epoch));
  }

  it('the epoch file keeps them increasing across restarts, whatever the clock does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-fr-epoch-'));
    try {
      let clock = 1_700_000_000_000;
      const store = () => new FileEpochStore({ dir, nodeId: 'fw-a', log: silentLogger, wallClock: () => clock });
      const seen: number[] = [];
      for (let i = 0; i < 5; i++) seen.push(store().take());
      clock -= 3_600_000; // stepped back an hour
      seen.push(store().take());
      const s = store();
      seen.push(s.take(), s.take()); // rollovers
      for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]!);
      expect(readFileSync(join(dir, 'epoch-fw-a'), 'utf8')).toBe(`${seen.at(-1)}\n`);
      writeFileSync(join(dir, 'epoch-fw-a'), 'garbage');
      expect(store().take()).toBe(Math.floor(clock / 1000));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LogLimiter', () => {
  it('logs one line per kind per interval, with the number suppressed since the last', () => {
    const lines: Array<{ msg: string; ctx: LogContext | undefined }> = [];
    const log: Logger = { ...silentLogger, warn: (msg, ctx) => lines.push({ msg, ctx }) };
    const l = new LogLimiter(log, 1000);
    for (let t = 0; t < 3000; t += 10) l.warn('drop-EAUTH', t, 'dropped', { code: 'EAUTH' });
    l.warn('stale-epoch', 5, 'stale');
    expect(lines.map((x) => [x.msg, x.ctx?.suppressed])).toEqual([
      ['dropped', undefined],
      ['dropped', 99],
      ['dropped', 99],
      ['stale', undefined],
    ]);
    expect(l.suppressedTotal).toBe(300 - 3);
  });
});

describe('Freshness: edges', () => {
  // [challenged at, answered at (undefined: never), now, expiry ms, expired]
  const expiries: Array<[number | undefined, number | undefined, number, number, boolean]> = [
    [100, undefined, 1100, 1000, false], // exactly ms ago: kept
    [100, undefined, 1101, 1000, true],
    [100, 900, 1101, 1000, false], // the later of the two counts
    [900, 100, 1101, 1000, false],
    [undefined, 100, 1101, 1000, true],
    [100, 200, 1201, 1000, true],
  ];
  for (const [challengedAt, answeredAt, now, ms, expired] of expiries) {
    it(`expires an unverified id challenged at ${challengedAt}, answered at ${answeredAt}, at ${now}: ${expired}`, () => {
      const { f } = make();
      if (challengedAt !== undefined) f.challenge('b', challengedAt);
      if (answeredAt !== undefined) f.shouldAnswer('b', { nonceHi: 1, nonceLo: 2 }, answeredAt);
      f.challenge('c', now); // fresh: never expired here
      expect(f.expireUnverified(now, ms)).toBe(expired ? 1 : 0);
      expect(f.has('b')).toBe(!expired);
      expect(f.has('c')).toBe(true);
      expect(f.size).toBe(expired ? 1 : 2);
    });
  }

  it('expires only unverified ids and counts each one', () => {
    const { f } = make();
    verify(f, 'v', 5, 0);
    f.challenge('x', 0);
    f.challenge('y', 0);
    expect(f.expireUnverified(10_000, 1000)).toBe(2);
    expect([f.has('v'), f.has('x'), f.has('y')]).toEqual([true, false, false]);
    expect(f.forget('v')).toBe(true);
    expect(f.forget('v')).toBe(false);
    expect(f.verified('v')).toBeUndefined();
  });

  it('a response from a node never challenged is ignored and counted', () => {
    const { f, c } = make();
    expect(f.onResponse('nobody', 5, { nonceHi: 0, nonceLo: 0 }, 0)).toBe(false);
    expect(c.responsesIgnored).toBe(1);
    // A node that only challenged us has state but no challenge of ours pending.
    f.shouldAnswer('b', { nonceHi: 1, nonceLo: 1 }, 0);
    expect(f.onResponse('b', 5, { nonceHi: 0, nonceLo: 0 }, 0)).toBe(false);
    expect(c.responsesIgnored).toBe(2);
  });

  // [believed, response epoch, first epoch, continued]
  const continuations: Array<[number, number, number, boolean]> = [
    [10, 12, 10, true], // first epoch equal to the believed one
    [10, 12, 9, true],
    [10, 12, 11, false], // started after what we believed: a restart
    [10, 11, 10, true],
    [10, 10, 10, false], // the same epoch confirmed: not a rollover
    [10, 12, 0, false], // no first epoch given
  ];
  for (const [believed, epoch, first, continued] of continuations) {
    it(`believed ${believed}, response in ${epoch} from first epoch ${first}: continued ${continued}`, () => {
      const { f } = make();
      verify(f, 'b', believed, 0);
      const n = f.challenge('b', 1000)!;
      expect(f.onResponse('b', epoch, n, first)).toEqual({ previous: believed, continued });
    });
  }

  it('remembers the last 8 nonces answered: a ninth pushes the first out', () => {
    const { f, c } = make();
    for (let i = 0; i < 9; i++) expect(f.shouldAnswer('b', { nonceHi: 0, nonceLo: i }, i * ANSWER_INTERVAL_MS)).toBe(true);
    const t = 100 * ANSWER_INTERVAL_MS;
    // Nonce 1 is still remembered, nonce 0 is not.
    expect(f.shouldAnswer('b', { nonceHi: 0, nonceLo: 1 }, t)).toBe(false);
    expect(f.shouldAnswer('b', { nonceHi: 0, nonceLo: 0 }, t)).toBe(true);
    // Now 0 is in and 1 was pushed out by it.
    expect(f.shouldAnswer('b', { nonceHi: 0, nonceLo: 1 }, 2 * t)).toBe(true);
    expect(c.challengesIgnored).toBe(1);
  });

  it('a first answer comes whatever the time, even at 0', () => {
    const { f } = make();
    expect(f.shouldAnswer('b', { nonceHi: 0, nonceLo: 0 }, 0)).toBe(true);
  });

  it('a request from a node known but not verified is stale', () => {
    const { f, c } = make();
    f.challenge('b', 0);
    expect(f.acceptRequest('b', 1)).toBe(false);
    expect(f.acceptRequest('nobody', 1)).toBe(false);
    expect(c.staleRequests).toBe(2);
  });

  it('a verdict on a node never seen is unverified, and an epoch just below the believed one stale', () => {
    const { f } = make();
    expect(f.verified('nobody')).toBeUndefined();
    expect(f.verdict('nobody', 0)).toBe('unverified');
    verify(f, 'b', 0, 0);
    expect(f.verdict('b', 0)).toBe('current');
    expect(f.verdict('b', 1)).toBe('unverified');
  });
});

describe('epoch and log limiter edges', () => {
  it('the highest u32 epoch is still used; only past it does the epoch wrap to 1', () => {
    expect(chooseEpoch(0xffff_fffe, 0)).toBe(0xffff_ffff);
    expect(chooseEpoch(undefined, 0xffff_ffff * 1000)).toBe(0xffff_ffff);
    expect(chooseEpoch(undefined, 0x1_0000_0000 * 1000)).toBe(1);
  });

  it('logs each kind with its context, the default interval being WARN_INTERVAL_MS', () => {
    const lines: Array<{ msg: string; ctx: LogContext | undefined }> = [];
    const log: Logger = { ...silentLogger, warn: (msg, ctx) => lines.push({ msg, ctx }) };
    const l = new LogLimiter(log);
    l.warn('a', 0, 'first');
    l.warn('a', WARN_INTERVAL_MS - 1, 'dropped');
    l.warn('b', 1, 'other kind', { peer: 'x' });
    l.warn('a', WARN_INTERVAL_MS, 'again', { code: 'E' });
    l.warn('a', 2 * WARN_INTERVAL_MS, 'third');
    expect(lines).toEqual([
      { msg: 'first', ctx: { kind: 'a' } },
      { msg: 'other kind', ctx: { kind: 'b', peer: 'x' } },
      { msg: 'again', ctx: { kind: 'a', code: 'E', suppressed: 1 } },
      { msg: 'third', ctx: { kind: 'a' } },
    ]);
    expect(l.suppressedTotal).toBe(1);
  });
});

describe('Freshness: request numbers across responses', () => {
  it('a second response in the epoch already believed keeps the request numbers honoured', () => {
    const { f } = make();
    verify(f, 'b', 5, 0);
    expect(f.acceptRequest('b', 3)).toBe(true);
    verify(f, 'b', 5, 1000);
    // A replay of request 3 is still stale.
    expect(f.acceptRequest('b', 3)).toBe(false);
    expect(f.acceptRequest('b', 4)).toBe(true);
    // A restart (a new epoch, no continuation) counts from 1 again.
    verify(f, 'b', 6, 2000);
    expect(f.acceptRequest('b', 1)).toBe(true);
  });
});
