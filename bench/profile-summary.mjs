#!/usr/bin/env node
// bench/profile-summary: the top self-time functions and source files of
// V8 .cpuprofile files (node --cpu-prof; `node bench/run.mjs --cpu-prof DIR`
// writes one per ctsyncd process). Idle and GC are listed separately.
// --window S keeps only the S seconds with the most busy samples (e.g. the
// replication burst, without the start-up and the idle tail); --from S
// --to S a time range (seconds after the profile start); --timeline S prints
// the busy share per S seconds, to find the range of a phase.
//   node bench/profile-summary.mjs FILE_OR_DIR... [--top 25] [--window S | --from S --to S] [--timeline S]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args.splice(i, 2)[1]) : def;
};
const TOP = opt('--top', 25);
const WINDOW = opt('--window', 0) * 1e6;
const FROM = opt('--from', NaN) * 1e6;
const TO = opt('--to', NaN) * 1e6;
const STEP = opt('--timeline', 0) * 1e6;
const files = [];
for (const a of args) {
  if (statSync(a).isDirectory()) {
    for (const f of readdirSync(a, { recursive: true })) if (String(f).endsWith('.cpuprofile')) files.push(join(a, String(f)));
  } else files.push(a);
}
if (files.length === 0) {
  console.error('usage: node bench/profile-summary.mjs FILE_OR_DIR... [--top N]');
  process.exit(2);
}

const short = (url) => {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const i = u.indexOf('/dist/');
  if (i >= 0) return u.slice(i + 1);
  const j = u.indexOf('/node_modules/');
  if (j >= 0) return u.slice(j + 1);
  return u.startsWith('node:') ? u : relative(process.cwd(), u);
};

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // Sample i lasted timeDeltas[i + 1] (V8 convention: deltas precede samples).
  const dt = p.timeDeltas;
  const idleId = p.nodes.find((n) => n.callFrame.functionName === '(idle)')?.id;
  let from = 0;
  let to = p.samples.length;
  const at = new Float64Array(p.samples.length + 1);
  for (let i = 0; i < p.samples.length; i++) at[i + 1] = at[i] + (dt[i + 1] ?? 0);
  if (STEP > 0) {
    const busyPer = [];
    for (let i = 0; i < p.samples.length; i++) {
      const b = Math.floor(at[i] / STEP);
      busyPer[b] = (busyPer[b] ?? 0) + (p.samples[i] === idleId ? 0 : (dt[i + 1] ?? 0));
    }
    console.log(`\n${file}: busy share per ${STEP / 1e6} s`);
    console.log(
      [...busyPer].map((v, b) => `${((b * STEP) / 1e6).toFixed(1)}s ${Math.round((100 * (v ?? 0)) / STEP)}%`).join('  '),
    );
  }
  if (!Number.isNaN(FROM) || !Number.isNaN(TO)) {
    while (from < p.samples.length && at[from] < (Number.isNaN(FROM) ? 0 : FROM)) from++;
    to = from;
    while (to < p.samples.length && at[to] < (Number.isNaN(TO) ? Infinity : TO)) to++;
    console.log(`\n${file}: range ${(at[from] / 1e6).toFixed(2)}–${(at[to] / 1e6).toFixed(2)} s`);
  } else if (WINDOW > 0) {
    // Two pointers over sample times: the window with the most non-idle time.
    const t = new Float64Array(p.samples.length + 1);
    for (let i = 0; i < p.samples.length; i++) t[i + 1] = t[i] + (dt[i + 1] ?? 0);
    let best = -1;
    let busy = 0;
    let a = 0;
    for (let b = 0; b < p.samples.length; b++) {
      if (p.samples[b] !== idleId) busy += dt[b + 1] ?? 0;
      while (t[b + 1] - t[a] > WINDOW) {
        if (p.samples[a] !== idleId) busy -= dt[a + 1] ?? 0;
        a++;
      }
      if (busy > best) {
        best = busy;
        from = a;
        to = b + 1;
      }
    }
    console.log(`\n${file}: window ${(t[from] / 1e6).toFixed(2)}–${(t[to] / 1e6).toFixed(2)} s after the profile start`);
  }
  for (let i = from; i < to; i++) {
    const us = dt[i + 1] ?? 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + us);
  }
  let total = 0;
  const fn = new Map();
  const byFile = new Map();
  let idle = 0;
  let gc = 0;
  let program = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cf = n.callFrame;
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    if (cf.functionName === '(garbage collector)') gc += us;
    if (cf.functionName === '(program)') program += us;
    const name = `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    const f = short(cf.url);
    byFile.set(f, (byFile.get(f) ?? 0) + us);
  }
  const busy = total - idle;
  const ms = (us) => (us / 1000).toFixed(0).padStart(7);
  const pct = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  console.log(`\n${file}`);
  console.log(
    `  profiled ${ms(total)} ms, busy ${ms(busy)} ms (idle ${ms(idle)} ms); GC ${ms(gc)} ms ${pct(gc)}; (program) ${ms(program)} ms ${pct(program)}`,
  );
  console.log('  self time by function (% of busy):');
  for (const [k, v] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${ms(v)} ms ${pct(v)}  ${k}`);
  console.log('  self time by file:');
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, Math.min(TOP, 15))) {
    console.log(`  ${ms(v)} ms ${pct(v)}  ${k}`);
  }
}
