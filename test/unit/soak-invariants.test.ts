// The soak's checker (scripts/soak/invariants.mjs), checked itself: a soak
// whose comparisons could not fail would prove nothing. Small dump tables,
// each with the verdict it must give.
import { describe, expect, it } from 'vitest';
import {
  compareKernel,
  compareReplicas,
  contentOf,
  draw,
  type DumpEntry,
  findResurrected,
  keyOf,
  mulberry32,
  slope,
} from '../../scripts/soak/invariants.mjs';

const SEEN_REPLY_ASSURED_CONFIRMED = 0xe;
/** A peer may set these (PEER_STATUS_BITS' share used here): not 0x100, DST_NAT_DONE. */
const MASK = 0xff;

function e(n: number, over: Partial<DumpEntry> = {}): DumpEntry {
  return {
    proto: 'tcp',
    src: `10.99.16.${n}`,
    dst: '10.99.200.1',
    sport: 20000,
    dport: 443,
    reply: { src: '10.99.200.1', dst: `10.99.16.${n}`, sport: 443, dport: 20000 },
    state: 'ESTABLISHED',
    timeout: 86400,
    zone: 0,
    mark: 0,
    status: SEEN_REPLY_ASSURED_CONFIRMED,
    ...over,
  };
}
const from = (origin: string, xs: DumpEntry[]) => xs.map((x) => ({ ...x, origin }));

describe('soak invariants: replicas', () => {
  const internals = new Map([
    ['fw1', [e(1), e(2)]],
    ['fw2', [e(3)]],
  ]);

  it('exact copies pass, whatever their timeouts and order', () => {
    const externals = new Map([
      ['fw1', from('fw2', [e(3, { timeout: 5 })])],
      ['fw2', from('fw1', [e(2, { timeout: 7 }), e(1)])],
    ]);
    for (const r of compareReplicas(internals, externals, MASK)) {
      expect(r, r.samples.join('; ')).toMatchObject({ lost: 0, different: 0, extra: 0, duplicates: 0 });
    }
  });

  it('a missing, a changed and an unclaimed entry are each counted', () => {
    const externals = new Map([
      ['fw1', from('fw2', [e(3, { mark: 9 })])],
      ['fw2', [...from('fw1', [e(1)]), ...from('fw1', [e(4)])]],
    ]);
    const [v1, v2] = compareReplicas(internals, externals, MASK);
    expect(v1).toMatchObject({ viewer: 'fw1', lost: 0, different: 1, extra: 0 });
    expect(v2).toMatchObject({ viewer: 'fw2', lost: 1, different: 0, extra: 1 });
    expect(v2!.samples.join(' ')).toContain(keyOf(e(2)));
  });

  it('the right key under the wrong origin is extra, and the key is lost', () => {
    const externals = new Map([['fw2', from('fw3', [e(1)]).concat(from('fw1', [e(2)]))]]);
    const [v] = compareReplicas(internals, externals, MASK);
    expect(v).toMatchObject({ lost: 1, extra: 1 });
  });

  it('status bits a peer may not set are not compared; the others are', () => {
    const ok = compareReplicas(internals, new Map([['fw1', from('fw2', [e(3, { status: 0x10e })])]]), MASK);
    expect(ok[0]).toMatchObject({ different: 0 });
    const bad = compareReplicas(internals, new Map([['fw1', from('fw2', [e(3, { status: 0x6 })])]]), MASK);
    expect(bad[0]).toMatchObject({ different: 1 });
  });

  it('a key two origins claim (after a failover) may be held under either, with that one’s content', () => {
    const both = new Map([
      ['fw1', [e(1)]],
      ['fw2', [e(1, { mark: 5 })]],
    ]);
    expect(compareReplicas(both, new Map([['fw3', from('fw2', [e(1, { mark: 5 })])]]), MASK)[0]).toMatchObject({ lost: 0, different: 0 });
    expect(compareReplicas(both, new Map([['fw3', from('fw1', [e(1)])]]), MASK)[0]).toMatchObject({ lost: 0, different: 0 });
    expect(compareReplicas(both, new Map([['fw3', from('fw1', [e(1, { mark: 5 })])]]), MASK)[0]).toMatchObject({ different: 1 });
    expect(compareReplicas(both, new Map([['fw3', []]]), MASK)[0]).toMatchObject({ lost: 1 });
  });

  it('a viewer is not expected to hold what only it claims, nor may it hold its own entries as a peer’s', () => {
    expect(compareReplicas(internals, new Map([['fw1', from('fw2', [e(3)])]]), MASK)[0]).toMatchObject({ lost: 0, extra: 0 });
    expect(compareReplicas(internals, new Map([['fw1', [...from('fw2', [e(3)]), ...from('fw1', [e(1)])]]]), MASK)[0]).toMatchObject({
      extra: 1,
    });
  });
});

describe('soak invariants: kernel, resurrections', () => {
  it('the internal cache against the kernel: missing, different and extra', () => {
    expect(compareKernel([e(1), e(2)], [e(2, { timeout: 3 }), e(1)])).toMatchObject({ missing: 0, different: 0, extra: 0 });
    expect(compareKernel([e(1), e(2)], [e(2, { mark: 1 }), e(5)])).toMatchObject({ missing: 1, different: 1, extra: 1 });
  });

  it('a deleted key anywhere under its origin is resurrected; under another origin it is not', () => {
    const deleted = new Map([['fw1', new Set([keyOf(e(9))])]]);
    const none = new Map<string, DumpEntry[]>();
    expect(findResurrected(deleted, none, none, new Map([['fw2', from('fw3', [e(9)])]]))).toEqual([]);
    expect(findResurrected(deleted, none, none, new Map([['fw2', from('fw1', [e(9)])]]))).toHaveLength(1);
    expect(findResurrected(deleted, none, new Map([['fw1', [e(9)]]]), none)).toHaveLength(1);
    expect(findResurrected(deleted, new Map([['fw1', [e(9)]]]), none, none)).toHaveLength(1);
  });

  it('content ignores the holder’s own fields', () => {
    expect(contentOf(e(1, { timeout: 1, origin: 'x', id: 4, use: 2 } as Partial<DumpEntry>))).toBe(contentOf(e(1)));
  });
});

describe('soak invariants: the seeded draw and the slope', () => {
  it('the same seed gives the same schedule, another seed another', () => {
    const a = draw(mulberry32(7));
    const b = draw(mulberry32(7));
    const c = draw(mulberry32(8));
    const kinds = ['loss', 'kill', 'pause', 'commit', 'flush', 'resync'];
    const xs = [a.shuffle(kinds), a.int(1, 100), a.pick(kinds)];
    expect([b.shuffle(kinds), b.int(1, 100), b.pick(kinds)]).toEqual(xs);
    expect([c.shuffle(kinds), c.int(1, 100), c.pick(kinds)]).not.toEqual(xs);
    expect([...xs[0] as string[]].sort()).toEqual([...kinds].sort());
  });

  it('slope: least squares, undefined with too few points', () => {
    expect(slope([0, 1, 2, 3], [10, 12, 14, 16])).toBeCloseTo(2);
    expect(slope([0, 1, 2, 3], [5, 5, 5, 5])).toBe(0);
    expect(slope([0, 1], [0, 1])).toBeUndefined();
  });
});
