import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';
import { formatIPv4At } from '../../src/common/address.js';
import { AF_INET, AF_INET6, IPPROTO } from '../../src/kernel/constants.js';
import { type ConntrackEntry, entryKey, type ExpectEntry, expectKey, type Tuple } from '../../src/kernel/entry.js';

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const tuple4 = fc.record({
  src: v4,
  dst: v4,
  proto: fc.constantFrom(IPPROTO.TCP, IPPROTO.UDP, IPPROTO.ICMP, IPPROTO.GRE, 132, 41),
  sport: fc.option(fc.nat(65535), { nil: undefined }),
  dport: fc.option(fc.nat(65535), { nil: undefined }),
  icmpType: fc.option(fc.nat(255), { nil: undefined }),
  icmpCode: fc.option(fc.nat(255), { nil: undefined }),
  icmpId: fc.option(fc.nat(65535), { nil: undefined }),
});
const zone = fc.option(fc.nat(65535), { nil: undefined });

/** What a key must tell apart: the fields of the original tuple that its protocol uses, and the zone. */
function identity(family: number, t: Tuple, z: number | undefined): string {
  const ports = [IPPROTO.TCP, IPPROTO.UDP, IPPROTO.GRE, 132].includes(t.proto);
  const icmp = t.proto === IPPROTO.ICMP;
  const rest = ports ? [t.sport ?? 0, t.dport ?? 0] : icmp ? [t.icmpType ?? 0, t.icmpCode ?? 0, t.icmpId ?? 0] : [];
  return JSON.stringify([family, t.proto, t.src, t.dst, ...rest, z ?? 0]);
}

describe('entryKey / expectKey', () => {
  it('equal exactly when the identities are equal', () => {
    fc.assert(
      fc.property(tuple4, zone, tuple4, zone, (a, za, b, zb) => {
        const ka = entryKey({ family: AF_INET, orig: a, zone: za });
        const kb = entryKey({ family: AF_INET, orig: b, zone: zb });
        expect(ka === kb).toBe(identity(AF_INET, a, za) === identity(AF_INET, b, zb));
        // The same tuple with only the fields its protocol reads gives the same key.
        expect(entryKey({ family: AF_INET, orig: { ...a }, zone: za })).toBe(ka);
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps connections, expectations, families and text-keyed addresses apart', () => {
    const t: Tuple = { src: '10.0.0.1', dst: '10.0.0.2', proto: IPPROTO.TCP, sport: 1, dport: 2 };
    const t6: Tuple = { src: '::ffff:10.0.0.1', dst: '::ffff:10.0.0.2', proto: IPPROTO.TCP, sport: 1, dport: 2 };
    const x: ExpectEntry = { family: AF_INET, master: t, tuple: t, mask: t };
    const keys = [
      entryKey({ family: AF_INET, orig: t }),
      entryKey({ family: AF_INET6, orig: t6 }),
      entryKey({ family: AF_INET6, orig: t }),
      // Not canonical dotted quads: keyed by their text, never equal to the numeric form.
      entryKey({ family: AF_INET, orig: { ...t, src: '010.0.0.1' } }),
      expectKey(x),
      expectKey({ ...x, family: AF_INET6, tuple: t6 }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(entryKey({ family: AF_INET6, orig: t6 })).toBe(entryKey({ family: AF_INET6, orig: { ...t6 } }));
  });

  it('a stored entry and a decoded copy of it share one key', () => {
    const e: ConntrackEntry = {
      family: AF_INET,
      orig: { src: '192.168.1.10', dst: '8.8.8.8', proto: IPPROTO.UDP, sport: 5353, dport: 53 },
      reply: { src: '8.8.8.8', dst: '192.168.1.10', proto: IPPROTO.UDP, sport: 53, dport: 5353 },
      zone: 7,
    };
    const b = Buffer.from([192, 168, 1, 10, 8, 8, 8, 8]);
    const decoded = { ...e, orig: { ...e.orig, src: formatIPv4At(b, 0), dst: formatIPv4At(b, 4) } };
    expect(entryKey(decoded)).toBe(entryKey(e));
  });
});

describe('formatIPv4At', () => {
  it('spells every address right, also when its memo slot held another', () => {
    const b = Buffer.alloc(4);
    fc.assert(
      fc.property(fc.nat(0xffffffff), (v) => {
        b.writeUInt32BE(v, 0);
        expect(formatIPv4At(b, 0)).toBe(`${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`);
        expect(formatIPv4At(b, 0)).toBe(formatIPv4At(Buffer.from(b), 0));
      }),
      { numRuns: 20000 },
    );
  });
});

describe('bin/ctsyncd', () => {
  it('starts node with the daemon V8 options (DAEMON_NODE_FLAGS)', () => {
    const first = readFileSync(resolve(import.meta.dirname, '../../bin/ctsyncd'), 'utf8').split('\n')[0]!;
    expect(first).toBe(`#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`);
  });
});
