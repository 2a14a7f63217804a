// Netlink half of `npm run fuzz`: random and mutated ctnetlink messages
// through every decoder the kernel link has (parseNetlink, decodeConntrack,
// decodeConntrackRecord, decodeExpect) and through ConntrackEvents.onData,
// the event socket's reader. Invariants per input:
// - no decoder throws;
// - decodeConntrackRecord agrees with decodeConntrack: REC_OK means the
//   object decoder accepts the message and its entry makes the very same
//   record with no extras (test/unit/ct-record.test.ts), also when the
//   message is decoded in place inside a larger buffer;
// - onData accounts for every message parseNetlink finds, and for the
//   malformed header it stops at: one counter each, and a handler call for
//   each event it counts.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EntryCompactor } from '../../dist/cache/compact.js';
import { ConntrackEvents } from '../../dist/kernel/conntrack-events.js';
import {
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  IPCTNL_MSG_EXP_DELETE,
  IPCTNL_MSG_EXP_NEW,
  NFNL_SUBSYS_CTNETLINK,
  NFNL_SUBSYS_CTNETLINK_EXP,
  NLA_F_NESTED,
  NLM_F_CREATE,
  NLM_F_EXCL,
} from '../../dist/kernel/constants.js';
import { decodeConntrack, decodeExpect, encodeConntrack, encodeExpect } from '../../dist/kernel/ct-codec.js';
import { decodeConntrackRecord, REC_OK, REC_PUNT, REC_WORDS, recordBuf, writeEntryRecord } from '../../dist/kernel/ct-record.js';
import { FakeKernel } from '../../dist/kernel/fake-kernel.js';
import { NlWriter, parseNetlink } from '../../dist/kernel/netlink-codec.js';
import { entry, expectation, hexOf, makeRng, mutateBytes } from './gen.mjs';

const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
const EXP_NEW = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW;
const EXP_DELETE = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_DELETE;
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'ctnetlink');

/** Real kernel messages captured by scripts/capture-fixtures.mjs. */
function fixtures() {
  try {
    return readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.hex'))
      .sort()
      .map((f) => Buffer.from(readFileSync(join(FIXTURES, f), 'utf8').replace(/\s+/g, ''), 'hex'));
  } catch {
    return [];
  }
}

function encoded(rng) {
  const w = new NlWriter(1024);
  if (rng.chance(0.85)) {
    const e = entry(rng);
    const type = rng.chance(0.8) ? CT_NEW : CT_DELETE;
    const flags = type === CT_NEW && rng.chance(0.5) ? NLM_F_CREATE | NLM_F_EXCL : 0;
    w.begin(type, flags, rng.u32(), e.family, 0, rng.chance(0.1) ? rng.u32() : 0);
    encodeConntrack(w, e, { readOnly: true, layout: rng.chance(0.5) ? 'event' : 'dump' });
  } else {
    const x = expectation(rng);
    w.begin(rng.chance(0.7) ? EXP_NEW : EXP_DELETE, rng.chance(0.5) ? NLM_F_CREATE : 0, rng.u32(), x.family);
    encodeExpect(w, x, { readOnly: rng.chance(0.5) });
  }
  w.end();
  return w.finish();
}

/** Random attributes, nested up to `depth`, types biased to the ones the decoders know. */
function attrs(rng, depth) {
  const parts = [];
  const n = rng.int(5);
  for (let i = 0; i < n; i++) {
    const type = rng.chance(0.85) ? rng.int(28) : rng.int(0x4000);
    const nested = depth > 0 && rng.chance(0.4);
    const body = nested ? attrs(rng, depth - 1) : rng.bytes(rng.pick([0, 1, 2, 4, 8, 16, rng.int(40)]));
    const len = 4 + body.length;
    const b = Buffer.alloc((len + 3) & ~3);
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(type | (nested ? NLA_F_NESTED : 0), 2);
    body.copy(b, 4);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

function randomMessage(rng) {
  const body = Buffer.concat([Buffer.from([rng.pick([2, 10, 0, rng.int(256)]), 0, 0, 0]), attrs(rng, 4)]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(rng.pick([CT_NEW, CT_DELETE, EXP_NEW, EXP_DELETE, rng.int(0x10000)]), 4);
  h.writeUInt16LE(rng.pick([0, NLM_F_CREATE, NLM_F_CREATE | NLM_F_EXCL]), 6);
  h.writeUInt32LE(rng.u32(), 8);
  h.writeUInt32LE(rng.chance(0.9) ? 0 : rng.u32(), 12);
  return Buffer.concat([h, body]);
}

const pad4 = (b) => (b.length % 4 === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]));

/** One input: its bytes and how it was made. */
function generate(rng, corpus) {
  const one = () => {
    const r = rng.int(100);
    if (r < 10) return { kind: 'random-bytes', buf: rng.bytes(rng.int(400)) };
    if (r < 25) return { kind: 'random-attrs', buf: randomMessage(rng) };
    if (r < 35) return { kind: 'valid', buf: rng.chance(0.2) && corpus.length > 0 ? rng.pick(corpus) : encoded(rng) };
    const base = rng.chance(0.3) && corpus.length > 0 ? rng.pick(corpus) : encoded(rng);
    // Past the 16-byte header most of the time, so the attribute decoders see the damage.
    const buf = mutateBytes(rng, base, corpus, 4, rng.chance(0.8) ? 16 : 0);
    // Mostly with nlmsg_len made to match again, so the damage reaches the attribute decoders, not only the framing.
    if (buf.length >= 16 && rng.chance(0.7)) buf.writeUInt32LE(buf.length, 0);
    return { kind: 'mutated', buf };
  };
  if (!rng.chance(0.15)) return one();
  // A batch, as one recv hands the event socket several messages.
  const n = 2 + rng.int(3);
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(one().buf);
  return { kind: 'batch', buf: Buffer.concat(parts.map((p, i) => (i < n - 1 ? pad4(p) : p))) };
}

export function fuzzNetlink({ seed, count, onFailure }) {
  const rng = makeRng(seed ^ 0x6e65746c);
  const corpus = fixtures();
  const compactor = new EntryCompactor();
  const stats = {
    inputs: 0,
    byKind: {},
    messages: 0,
    parseErrors: {},
    record: { ok: 0, punt: 0 },
    conntrack: { ok: 0, errors: {} },
    expect: { ok: 0, errors: {} },
    events: { conntrack: 0, expect: 0, decodeErrors: 0, unknown: 0 },
    fixtures: corpus.length,
  };
  const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);
  const delivered = { ct: 0, exp: 0 };
  const events = new ConntrackEvents({ transportFactory: new FakeKernel().openSocket, expectations: true });
  events.start({
    onEvent: () => delivered.ct++,
    onRecordEvent: () => delivered.ct++,
    onExpectEvent: () => delivered.exp++,
    onOverrun: () => {},
    onDecodeError: () => {},
  });
  const rec = recordBuf(2);
  const inPlace = recordBuf(1);
  const want = recordBuf(1);
  const sameWords = (a, at, b, bt) => {
    for (let i = 0; i < REC_WORDS; i++) if (a.w[at + i] !== b.w[bt + i]) return false;
    return true;
  };

  for (let i = 0; i < count; i++) {
    const input = generate(rng, corpus);
    const buf = input.buf;
    stats.inputs++;
    bump(stats.byKind, input.kind);
    const fail = (what, detail) => onFailure({ target: 'netlink', index: i, kind: input.kind, what, detail, hex: hexOf(buf) });
    try {
      const parsed = parseNetlink(buf);
      if (parsed.error) bump(stats.parseErrors, parsed.error.code);
      for (const m of parsed.messages) {
        stats.messages++;
        const isCt = m.type === CT_NEW || m.type === CT_DELETE;
        const d = decodeConntrack(m);
        if (d.ok) stats.conntrack.ok++;
        else bump(stats.conntrack.errors, d.error.code);
        const x = decodeExpect(m);
        if (x.ok) stats.expect.ok++;
        else bump(stats.expect.errors, x.error.code);
        if (!isCt) continue;
        rec.w.fill(-1);
        const got = decodeConntrackRecord(m.payload, rec, REC_WORDS);
        const framed = Buffer.concat([Buffer.alloc(12, 0xa5), m.payload, Buffer.alloc(12, 0x5a)]);
        const got2 = decodeConntrackRecord(framed, inPlace, 0, 12, 12 + m.payload.length);
        if (got2 !== got) fail('record decoder differs in place', `${got} alone, ${got2} inside a larger buffer`);
        if (got === REC_PUNT) {
          stats.record.punt++;
          continue;
        }
        if (got !== REC_OK) {
          fail('record decoder returned an unknown verdict', String(got));
          continue;
        }
        stats.record.ok++;
        if (!sameWords(rec, REC_WORDS, inPlace, 0)) fail('record decoder differs in place', 'different words');
        if (!d.ok) {
          fail('REC_OK but decodeConntrack refuses the message', `${d.error.code}: ${d.error.reason}`);
          continue;
        }
        want.w.fill(0);
        const extras = writeEntryRecord(d.value, want, 0, (v) => compactor.entry(v));
        if (extras === false) fail('REC_OK but the decoded entry makes no record', '');
        else if (extras !== undefined) fail('REC_OK but the decoded entry needs extras', Object.keys(extras).join(','));
        else if (!sameWords(rec, REC_WORDS, want, 0)) fail('REC_OK record differs from the object decoder', '');
      }
      const c = events.counters;
      const before = c.new + c.update + c.destroy + c.expectNew + c.expectUpdate + c.expectDestroy;
      const errs0 = c.decodeErrors;
      const unknown0 = c.unknown;
      const ct0 = delivered.ct;
      const exp0 = delivered.exp;
      const ctCount0 = c.new + c.update + c.destroy;
      events.onData(buf, 0, buf.length);
      const after = c.new + c.update + c.destroy + c.expectNew + c.expectUpdate + c.expectDestroy;
      const accounted = after - before + (c.decodeErrors - errs0) + (c.unknown - unknown0);
      const expected = parsed.messages.length + (parsed.error ? 1 : 0);
      stats.events.conntrack += c.new + c.update + c.destroy - ctCount0;
      stats.events.expect += after - before - (c.new + c.update + c.destroy - ctCount0);
      stats.events.decodeErrors += c.decodeErrors - errs0;
      stats.events.unknown += c.unknown - unknown0;
      if (accounted !== expected) {
        fail('onData did not count every message', `${accounted} counted, parseNetlink finds ${expected} (messages + error)`);
      }
      if (delivered.ct - ct0 !== c.new + c.update + c.destroy - ctCount0) {
        fail('onData counted conntrack events it did not deliver', `${delivered.ct - ct0} delivered`);
      }
      if (delivered.exp - exp0 !== after - before - (c.new + c.update + c.destroy - ctCount0)) {
        fail('onData counted expectation events it did not deliver', `${delivered.exp - exp0} delivered`);
      }
    } catch (err) {
      fail('exception escaped', err instanceof Error ? (err.stack ?? err.message) : String(err));
    }
  }
  events.close();
  return stats;
}
