// `ctsyncd flows find`: the complaint "who was 203.0.113.7:40005 at 14:03"
// answered from a flow log spread over a gzipped rotated file and the
// current one, and nothing for another time or port.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { findNat, flowLine, parseNatTarget, parseTime } from '../../src/flowlog/index.js';
import type { EventType } from '../../src/kernel/conntrack-events.js';
import { AF_INET, IPPROTO } from '../../src/kernel/constants.js';
import type { ConntrackEntry } from '../../src/kernel/entry.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 11, 7, 14, 0, 0);
const MIN = 60_000;

/** Inside host 10.99.1.n, masqueraded to `pub`:port. */
function flow(n: number, port: number, id: number, pub = '203.0.113.7'): ConntrackEntry {
  return {
    family: AF_INET,
    orig: { src: `10.99.1.${n}`, dst: '198.51.100.9', proto: IPPROTO.TCP, sport: 50000 + n, dport: 443 },
    reply: { src: '198.51.100.9', dst: pub, proto: IPPROTO.TCP, sport: 443, dport: port },
    protoinfo: { tcp: { state: 3 } },
    id,
  };
}

/**
 * A day's log in two files: the port 40005 is held by host .1 from 14:00 to
 * 14:02, then by host .2 from 14:04 to 14:10; host .3 has 40006 all along;
 * many unrelated flows in between.
 */
function writeLog(destroyOnly = false): { current: string; rotated: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-fl-find-'));
  dirs.push(dir);
  const events: Array<[number, EventType, ConntrackEntry]> = [
    [T0, 'new', flow(1, 40005, 11)],
    [T0 + 30_000, 'new', flow(3, 40006, 13)],
    [T0 + 2 * MIN, 'destroy', flow(1, 40005, 11)],
    [T0 + 4 * MIN, 'new', flow(2, 40005, 12)],
    [T0 + 10 * MIN, 'destroy', flow(2, 40005, 12)],
    [T0 + 20 * MIN, 'destroy', flow(3, 40006, 13)],
  ];
  // Short flows of other hosts on a neighbouring address, and on ours with other ports.
  for (let i = 0; i < 1000; i++) {
    const other = flow(100 + (i % 50), 30000 + i, 1000 + i, i % 2 ? '203.0.113.8' : '203.0.113.7');
    events.push([T0 + i * 1200, 'new', other], [T0 + i * 1200 + 300, 'destroy', other]);
  }
  events.sort((a, b) => a[0] - b[0]);
  const lines = events.filter(([, k]) => !destroyOnly || k === 'destroy').map(([t, k, e]) => flowLine(k, e, t));
  const cut = lines.findIndex((l) => l.includes('"time":"2026-12-07T14:03'));
  const rotated = join(dir, 'flows.jsonl.1.gz');
  const current = join(dir, 'flows.jsonl');
  writeFileSync(rotated, gzipSync(`${lines.slice(0, cut).join('\n')}\n`));
  writeFileSync(current, `${lines.slice(cut).join('\n')}\n`);
  return { current, rotated };
}

describe('flows find', () => {
  it('names the inside host that held the address and port at that moment, across a gzipped rotated file', async () => {
    const { current, rotated } = writeLog();
    const at = (m: number) => ({ addr: '203.0.113.7', port: 40005, at: T0 + m * MIN });
    const inside = async (m: number) => (await findNat([current, rotated], at(m))).matches.map((x) => x.inside.addr);
    expect(await inside(1)).toEqual(['10.99.1.1']);
    expect(await inside(5)).toEqual(['10.99.1.2']);
    // Between the two flows, and after both: nobody.
    expect(await inside(3)).toEqual([]);
    expect(await inside(30)).toEqual([]);
    const r = await findNat([rotated, current], at(5));
    expect(r.matches[0]).toMatchObject({
      proto: 'tcp',
      inside: { addr: '10.99.1.2', port: 50002 },
      public: { addr: '203.0.113.7', port: 40005 },
      remote: { addr: '198.51.100.9', port: 443 },
      nat: 'snat',
      start: new Date(T0 + 4 * MIN).toISOString(),
      stop: new Date(T0 + 10 * MIN).toISOString(),
      id: 12,
    });
    // The address alone: every flow on it then (a short one of host .100 began that very millisecond).
    const any = await findNat([current, rotated], { addr: '203.0.113.7', at: T0 + 5 * MIN });
    expect(any.matches.map((x) => `${x.inside.addr}/${x.public.port}`).sort()).toEqual(['10.99.1.100/30250', '10.99.1.2/40005', '10.99.1.3/40006']);
  });

  it('stops reading once the answer is complete', async () => {
    const { current, rotated } = writeLog();
    const total = 2006;
    const early = await findNat([current, rotated], { addr: '203.0.113.7', port: 40005, at: T0 + MIN });
    expect(early.matches).toHaveLength(1);
    expect(early.linesRead).toBeLessThan(total / 2);
  });

  it('a log of destroy events only is read to its end and still answers', async () => {
    const { current, rotated } = writeLog(true);
    const r = await findNat([current, rotated], { addr: '203.0.113.7', port: 40005, at: T0 + 5 * MIN });
    // Without kernel timestamps a destroy alone does not say when the flow began: reported with start null.
    expect(r.matches.map((m) => [m.inside.addr, m.start])).toEqual([['10.99.1.2', null]]);
  });

  it('parses ADDR[:PORT] and TIME as documented', () => {
    expect(parseNatTarget('203.0.113.7:40005')).toEqual({ addr: '203.0.113.7', port: 40005 });
    expect(parseNatTarget('203.0.113.7')).toEqual({ addr: '203.0.113.7' });
    expect(parseNatTarget('[2001:DB8::1]:80')).toEqual({ addr: '2001:db8::1', port: 80 });
    expect(parseNatTarget('2001:db8::1')).toEqual({ addr: '2001:db8::1' });
    expect(parseNatTarget('203.0.113.7:0')).toBeUndefined();
    expect(parseNatTarget('example.com:80')).toBeUndefined();
    expect(parseTime('2026-12-07T14:03:00Z')).toBe(T0 + 3 * MIN);
    expect(parseTime(String((T0 + 3 * MIN) / 1000))).toBe(T0 + 3 * MIN);
    expect(parseTime('yesterday')).toBeUndefined();
  });

  it('the command: text, --json, and its exit codes', async () => {
    const { current, rotated } = writeLog();
    const run = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['flows', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const text = await run('find', '--nat', '203.0.113.7:40005', '--at', '2026-12-07T14:05:00Z', current, rotated);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/10\.99\.1\.2:50002 -> 198\.51\.100\.9:443 {2}as 203\.0\.113\.7:40005 \(snat, id 12\)/);
    const json = await run('find', '--json', '--nat=203.0.113.7:40005', '--at=2026-12-07T14:01:00Z', current, rotated);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.out) as { query: unknown; matches: Array<{ inside: { addr: string } }> };
    expect(parsed.query).toEqual({ addr: '203.0.113.7', port: 40005, at: '2026-12-07T14:01:00.000Z' });
    expect(parsed.matches.map((m) => m.inside.addr)).toEqual(['10.99.1.1']);
    const none = await run('find', '--nat', '203.0.113.7:40005', '--at', '2026-12-07T14:03:00Z', current);
    expect(none).toMatchObject({ code: 1, out: expect.stringMatching(/^no flow held/) });
    expect((await run('find', '--at', 'x')).code).toBe(2);
    expect((await run('lookup')).code).toBe(2);
  });
});
