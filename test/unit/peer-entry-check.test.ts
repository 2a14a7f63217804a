// PeerEntryCheck.check() and agedForCommit() on records built by hand: which
// verdict, which words of the copy change, which counters move, and what an
// entry kept whole becomes. The rules end to end (the external cache, the
// wire, commit) are in peer-validate.test.ts.
import { describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/cache/filter.js';
import {
  agedForCommit,
  PEER_FIXED,
  PEER_MAX_TIMEOUT,
  PEER_PASS,
  PEER_REJECT,
  PEER_STATUS_BITS,
  PeerEntryCheck,
} from '../../src/cache/peer-validate.js';
import { AF_INET, IPPROTO, IPS } from '../../src/kernel/constants.js';
import {
  EntryRecord,
  REC_WORDS,
  type RecordBuf,
  type RecordExtras,
  readEntryRecord,
  recordBuf,
  W_STATUS,
  W_TIMEOUT,
  writeEntryRecord,
} from '../../src/kernel/ct-record.js';
import type { ConntrackEntry, ExpectEntry } from '../../src/kernel/entry.js';

const OK_STATUS = IPS.SEEN_REPLY | IPS.ASSURED | IPS.CONFIRMED;
const BAD_BIT = IPS.OFFLOAD;

function flow(over: Partial<ConntrackEntry> = {}): ConntrackEntry {
  return {
    family: AF_INET,
    orig: { src: '10.98.0.1', dst: '10.98.9.9', proto: IPPROTO.TCP, sport: 1234, dport: 80 },
    reply: { src: '10.98.9.9', dst: '10.98.0.1', proto: IPPROTO.TCP, sport: 80, dport: 1234 },
    status: OK_STATUS,
    timeout: 300,
    mark: 0,
    protoinfo: { tcp: { state: 3 } },
    ...over,
  };
}

/** `e` written as the record at word `at` of a buffer of `records` records. */
function written(e: ConntrackEntry, at = 0, records = 1): { r: RecordBuf; x: RecordExtras | undefined } {
  const r = recordBuf(records);
  const x = writeEntryRecord(e, r, at);
  if (x === false) throw new Error('not keyable');
  return { r, x };
}

const check = () =>
  new PeerEntryCheck(compileFilter({ protocols: { ignore: ['udp'] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } }, []));

describe('PeerEntryCheck.check', () => {
  // Each row: the entry, the verdict, and what the fixed copy holds.
  const rows: [string, ConntrackEntry, number, { status: number; timeout: number } | undefined, [number, number]][] = [
    ['clean', flow(), PEER_PASS, undefined, [0, 0]],
    ['clean, the longest timeout allowed', flow({ timeout: PEER_MAX_TIMEOUT }), PEER_PASS, undefined, [0, 0]],
    ['clean, every allowed status bit', flow({ status: PEER_STATUS_BITS }), PEER_PASS, undefined, [0, 0]],
    ['a status bit not allowed', flow({ status: OK_STATUS | BAD_BIT }), PEER_FIXED, { status: OK_STATUS, timeout: 300 }, [1, 0]],
    ['a timeout too long', flow({ timeout: PEER_MAX_TIMEOUT + 1 }), PEER_FIXED, { status: OK_STATUS, timeout: PEER_MAX_TIMEOUT }, [0, 1]],
    [
      'both',
      flow({ status: OK_STATUS | BAD_BIT, timeout: 0xffff_ffff }),
      PEER_FIXED,
      { status: OK_STATUS, timeout: PEER_MAX_TIMEOUT },
      [1, 1],
    ],
    ['no status and no timeout', { ...flow(), status: undefined, timeout: undefined }, PEER_PASS, undefined, [0, 0]],
  ];

  it.each(rows)('%s', (_name, e, verdict, fixed, [stripped, capped]) => {
    for (const at of [0, REC_WORDS]) {
      const c = check();
      const { r, x } = written(e, at, 2);
      const before = new Int32Array(r.w);
      const out = recordBuf(1);
      expect(c.check(r, at, x, out)).toBe(verdict);
      expect(r.w).toEqual(before);
      expect([c.counters.statusStripped, c.counters.timeoutCapped]).toEqual([stripped, capped]);
      if (fixed === undefined) {
        // Nothing copied.
        expect(out.w).toEqual(new Int32Array(REC_WORDS));
        continue;
      }
      expect(out.w[W_STATUS]! >>> 0).toBe(fixed.status);
      expect(out.w[W_TIMEOUT]! >>> 0).toBe(fixed.timeout);
      expect(readEntryRecord(out, 0, c.fixedExtras)).toEqual({ ...e, ...fixed });
    }
  });

  it('fixes in place when the copy goes to the record itself at word 0, and copies from another word of it', () => {
    const e = flow({ status: OK_STATUS | BAD_BIT });
    const own = written(e);
    expect(check().check(own.r, 0, own.x, own.r)).toBe(PEER_FIXED);
    expect(readEntryRecord(own.r, 0, own.x)).toEqual({ ...e, status: OK_STATUS });
    const two = written(e, REC_WORDS, 2);
    expect(check().check(two.r, REC_WORDS, two.x, two.r)).toBe(PEER_FIXED);
    expect(readEntryRecord(two.r, 0, two.x)).toEqual({ ...e, status: OK_STATUS });
  });

  it('rejects what the local filter rejects, and counts it by rule', () => {
    const c = check();
    const udp = flow({
      orig: { ...flow().orig, proto: IPPROTO.UDP },
      reply: { ...flow().reply, proto: IPPROTO.UDP },
      protoinfo: undefined,
      status: OK_STATUS | BAD_BIT,
    });
    const { r, x } = written(udp);
    expect(c.check(r, 0, x, recordBuf(1))).toBe(PEER_REJECT);
    expect(c.counters.filtered.protocol).toBe(1);
    expect(c.counters.statusStripped).toBe(0);
  });

  it('fixes an entry kept whole in a copy of its extras, and hands on the extras of any other', () => {
    const c = check();
    const whole = flow({ orig: { ...flow().orig, zone: 3 }, status: OK_STATUS | BAD_BIT, timeout: PEER_MAX_TIMEOUT + 5 });
    const w = written(whole);
    expect(w.x?.whole).toBeDefined();
    const out = recordBuf(1);
    expect(c.check(w.r, 0, w.x, out)).toBe(PEER_FIXED);
    expect(c.fixedExtras?.whole).toEqual({ ...whole, status: OK_STATUS, timeout: PEER_MAX_TIMEOUT });
    expect(w.x?.whole).toEqual(whole);
    expect(readEntryRecord(out, 0, c.fixedExtras)).toEqual({ ...whole, status: OK_STATUS, timeout: PEER_MAX_TIMEOUT });
    // One rule only: the other field of the whole entry stays.
    const statusOnly = written({ ...whole, timeout: 10 });
    expect(c.check(statusOnly.r, 0, statusOnly.x, out)).toBe(PEER_FIXED);
    expect(c.fixedExtras?.whole).toEqual({ ...whole, status: OK_STATUS, timeout: 10 });
    const timeoutOnly = written({ ...whole, status: OK_STATUS });
    expect(c.check(timeoutOnly.r, 0, timeoutOnly.x, out)).toBe(PEER_FIXED);
    expect(c.fixedExtras?.whole).toEqual({ ...whole, status: OK_STATUS, timeout: PEER_MAX_TIMEOUT });
    const noStatus = written({ ...whole, status: undefined, timeout: PEER_MAX_TIMEOUT + 1 });
    expect(c.check(noStatus.r, 0, noStatus.x, out)).toBe(PEER_FIXED);
    expect(c.fixedExtras?.whole).toEqual({ ...whole, status: undefined, timeout: PEER_MAX_TIMEOUT });
    expect(c.fixedExtras?.whole?.status).toBeUndefined();
    // A record in the words: its own extras, not the last whole copy.
    const plain = written(flow({ helper: 'ftp', status: OK_STATUS | BAD_BIT }));
    expect(c.check(plain.r, 0, plain.x, out)).toBe(PEER_FIXED);
    expect(c.fixedExtras).toBe(plain.x);
  });

  it('holds every expectation by default', () => {
    const c = new PeerEntryCheck(compileFilter({ protocols: { ignore: [] }, addresses: { ignore: [] }, tcpStates: { ignore: [] } }, []));
    const x: ExpectEntry = {
      family: AF_INET,
      master: flow().orig,
      tuple: flow().reply,
      mask: flow().reply,
      timeout: 3,
      helper: 'ftp',
    };
    expect(c.checkExpect(x)).toBe(true);
    expect(c.counters.expectFiltered).toBe(0);
  });
});

describe('agedForCommit on a record without a timeout', () => {
  it('is the record itself, scratch or not', () => {
    const { timeout: _t, ...rest } = flow();
    const bare: ConntrackEntry = rest;
    const { r, x } = written(bare);
    const view = new EntryRecord(r.w, r.b, 0, x);
    const sb = recordBuf(1);
    const scratch = new EntryRecord(sb.w, sb.b, 0, undefined);
    expect(agedForCommit(view, 100_000, scratch)).toBe(view);
    expect(agedForCommit(view, 100_000)).toBe(view);
    expect(view.entry()).toEqual(bare);
  });
});
