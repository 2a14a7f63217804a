#!/usr/bin/env node
// bench/record-table: the record table (src/cache/record-table.ts) alone, N
// distinct keys: insert each after a find that misses (as the caches do),
// then find each once. Prints µs per entry for both passes and the slowest
// single insert, which is where a table that grows in one pass stops the
// daemon (the index rebuilt at each power of two). After `npm run build`.
//   node bench/record-table.mjs [N=2200000] [runs=2]
import { RecordTable } from '../dist/cache/record-table.js';
import { recordBuf, recordHash } from '../dist/kernel/ct-record.js';

const N = Number(process.argv[2] ?? 2_200_000);
const RUNS = Number(process.argv[3] ?? 2);
const src = recordBuf(1).w;
const key = (i) => {
  src.fill(0);
  src[0] = i;
  src[1] = i * 7 + 3;
  src[2] = 0x0a630001;
  src[3] = i ^ 0x55;
};
for (let run = 0; run < RUNS; run++) {
  const t = new RecordTable(1024);
  let worst = 0;
  let worstAt = -1;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    key(i);
    const a = performance.now();
    const h = recordHash(src, 0);
    if (t.find(src, 0, h) < 0) t.insert(src, 0, undefined, h);
    const d = performance.now() - a;
    if (d > worst) {
      worst = d;
      worstAt = i;
    }
  }
  const ins = performance.now() - t0;
  const t1 = performance.now();
  let found = 0;
  for (let i = 0; i < N; i++) {
    key(i);
    if (t.find(src, 0) >= 0) found++;
  }
  const fnd = performance.now() - t1;
  if (found !== N) throw new Error(`found ${found} of ${N}`);
  console.log(
    `run ${run + 1}: insert ${((ins * 1000) / N).toFixed(3)} µs/entry, slowest insert ${worst.toFixed(1)} ms (entry ${worstAt}); find ${((fnd * 1000) / N).toFixed(3)} µs/entry`,
  );
}
