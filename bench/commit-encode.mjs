#!/usr/bin/env node
// bench/commit-encode: commit's JavaScript half without the kernel. Fills an
// ExternalCache with N masqueraded TCP entries, then, per round, takes the
// commit order (ExternalCache.commitOrder) and encodes every record as a
// CT_NEW request in 1024-message chunks, as commitExternal does. Round 0 is
// a fresh process (V8 compiling the encoder); its first chunk is timed on its
// own. No root needed. Run after `npm ci`:
//   node --max-semi-space-size=2 --no-concurrent-recompilation bench/commit-encode.mjs [N] [rounds]
import { COMMIT_FORM } from '../dist/cache/commit.js';
import { ExternalCache } from '../dist/cache/external-cache.js';
import { IPS } from '../dist/kernel/constants.js';
import { encodeRequestRecord } from '../dist/kernel/ct-codec.js';
import { NlWriter } from '../dist/kernel/netlink-codec.js';

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 4);
const CHUNK = 1024;

function entry(i) {
  const src = `10.99.${(i >> 8) & 255}.${i & 255}`;
  const nport = 1024 + ((i >> 1) % 60000);
  return {
    family: 2,
    orig: { src, dst: '10.98.0.1', proto: 6, sport: 1024 + (i >> 16), dport: 443 },
    reply: { src: '10.98.0.1', dst: i % 2 ? '10.97.0.1' : '10.97.0.2', proto: 6, sport: 443, dport: nport },
    status: 0x6 | 0x10 | 0x80 | 0x100,
    timeout: 7200,
    mark: 0,
    protoinfo: { tcp: { state: 3 } },
  };
}

const cache = new ExternalCache({ limit: N + 1 });
for (let i = 0; i < N; i++) cache.applyRemote('fw1', 1, i + 1, 'new', entry(i));
const form = { ...COMMIT_FORM, statusSet: COMMIT_FORM.statusSet | IPS.CONFIRMED };
const w = new NlWriter();
const ms = (a, b) => (Number(b - a) / 1e6).toFixed(1);
for (let round = 0; round < ROUNDS; round++) {
  const t0 = process.hrtime.bigint();
  const o = cache.commitOrder();
  const t1 = process.hrtime.bigint();
  let firstChunk = 0n;
  let bytes = 0;
  for (let i = 0; i < o.slots.length; i += CHUNK) {
    w.reset();
    const last = Math.min(o.slots.length, i + CHUNK);
    for (let j = i; j < last; j++) {
      const r = cache.currentRecord(o.slots[j], o.gens[j]);
      w.begin(0x100, 0x601, j, 2);
      encodeRequestRecord(w, r, form, true);
      w.end();
    }
    bytes += w.finish().length;
    if (i === 0) firstChunk = process.hrtime.bigint();
  }
  const t2 = process.hrtime.bigint();
  console.log(
    `round ${round}: order ${ms(t0, t1)} ms, encode ${ms(t1, t2)} ms (first chunk ${ms(t1, firstChunk)} ms), ${(bytes / N).toFixed(0)} B per request`,
  );
}
