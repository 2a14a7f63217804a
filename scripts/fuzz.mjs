#!/usr/bin/env node
// `npm run fuzz`: untrusted input through the code that reads it, against
// the built dist/ (npm run build first after changing src/).
//
//   node --expose-gc scripts/fuzz.mjs [--seed N] [--datagrams N] [--netlink N] [--json]
//
// Datagrams (scripts/fuzz/datagrams.mjs) go through a running SyncNode,
// netlink messages (scripts/fuzz/netlink.mjs) through the kernel link's
// decoders and the event socket's reader; each file says what it checks.
// Defaults: 1,000,000 of each and a random seed, printed. The same seed and
// counts repeat a run exactly; every failure names its seed, target, case
// index and input bytes. Memory is sampled before and after, after a GC
// (--expose-gc, which the npm script passes): what the heap and Buffers
// retain may grow by at most --max-retained-growth-mib (64), the RSS by at
// most --max-rss-growth-mib (512). The RSS bound is loose on purpose: V8 and
// malloc keep freed pages (a clean million-case run ends ~190 MiB above its
// start with ~9 MiB more retained), so only the retained figure can tell a
// leak from the allocator's high-water mark.
// Exit 0: no failure; 1: failures (listed); 2: usage error.
import { fuzzDatagrams } from './fuzz/datagrams.mjs';
import { fuzzNetlink } from './fuzz/netlink.mjs';

const MAX_LISTED = 20;

function usage(msg) {
  console.error(`fuzz: ${msg}`);
  console.error(
    'usage: node --expose-gc scripts/fuzz.mjs [--seed N] [--datagrams N] [--netlink N] [--max-retained-growth-mib N] [--max-rss-growth-mib N] [--json]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    seed: undefined,
    datagrams: 1_000_000,
    netlink: 1_000_000,
    maxRetainedGrowthMiB: 64,
    maxRssGrowthMiB: 512,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = argv[++i];
      if (v === undefined || !/^\d+$/.test(v)) usage(`${a} needs a non-negative integer`);
      return Number(v);
    };
    if (a === '--seed') opts.seed = num() >>> 0;
    else if (a === '--datagrams') opts.datagrams = num();
    else if (a === '--netlink') opts.netlink = num();
    else if (a === '--max-rss-growth-mib') opts.maxRssGrowthMiB = num();
    else if (a === '--max-retained-growth-mib') opts.maxRetainedGrowthMiB = num();
    else if (a === '--json') opts.json = true;
    else usage(`unknown argument ${a}`);
  }
  opts.seed ??= (Math.random() * 0x1_0000_0000) >>> 0;
  return opts;
}

const MiB = 1024 * 1024;
function memory() {
  globalThis.gc?.();
  const m = process.memoryUsage();
  // Buffers live outside the V8 heap: both together are what the process holds on to.
  return { rss: m.rss, heap: m.heapUsed + m.external };
}

const opts = parseArgs(process.argv.slice(2));
const failures = [];
let failureCount = 0;
const onFailure = (f) => {
  failureCount++;
  if (failures.length < MAX_LISTED) failures.push({ seed: opts.seed, ...f });
};

const { rss: rssStart, heap: heapStart } = memory();
const t0 = performance.now();
const datagrams = opts.datagrams > 0 ? fuzzDatagrams({ seed: opts.seed, count: opts.datagrams, onFailure }) : undefined;
const t1 = performance.now();
const netlink = opts.netlink > 0 ? fuzzNetlink({ seed: opts.seed, count: opts.netlink, onFailure }) : undefined;
const t2 = performance.now();
const { rss: rssEnd, heap: heapEnd } = memory();
const growth = (rssEnd - rssStart) / MiB;
const retained = (heapEnd - heapStart) / MiB;
if (retained > opts.maxRetainedGrowthMiB) {
  onFailure({
    target: 'memory',
    what: 'retained memory (heap + Buffers after GC) grew beyond the bound',
    detail: `${retained.toFixed(1)} MiB, bound ${opts.maxRetainedGrowthMiB} MiB`,
  });
}
if (growth > opts.maxRssGrowthMiB) {
  onFailure({
    target: 'memory',
    what: 'RSS grew beyond the bound',
    detail: `${growth.toFixed(1)} MiB (from ${(rssStart / MiB).toFixed(1)} to ${(rssEnd / MiB).toFixed(1)} MiB), bound ${opts.maxRssGrowthMiB} MiB`,
  });
}

const summary = {
  seed: opts.seed,
  datagrams,
  netlink,
  seconds: { datagrams: +((t1 - t0) / 1000).toFixed(1), netlink: +((t2 - t1) / 1000).toFixed(1) },
  rssMiB: { start: +(rssStart / MiB).toFixed(1), end: +(rssEnd / MiB).toFixed(1), gc: typeof globalThis.gc === 'function' },
  retainedMiB: { start: +(heapStart / MiB).toFixed(1), end: +(heapEnd / MiB).toFixed(1) },
  failures: failureCount,
  listed: failures,
};

const reproduce = `node --expose-gc scripts/fuzz.mjs --seed ${opts.seed} --datagrams ${opts.datagrams} --netlink ${opts.netlink}`;
if (opts.json) {
  console.log(JSON.stringify({ ...summary, reproduce }, (_k, v) => (typeof v === 'bigint' ? String(v) : v), 2));
} else {
  /** Counters as `name n, ...`, largest first; nested objects flattened to `outer.inner`. */
  const flat = (o, pre = '') =>
    Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? flat(v, `${pre}${k}.`) : [[`${pre}${k}`, v]]));
  const line = (o) =>
    flat(o)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  console.log(`fuzz seed ${opts.seed}`);
  if (datagrams) {
    console.log(`datagrams: ${opts.datagrams} cases, ${datagrams.datagrams} received by the target in all (peer traffic included), ${summary.seconds.datagrams} s; ${datagrams.unencodable} forged sets the encoder refused (regenerated)`);
    for (const s of datagrams.scenes) {
      console.log(`  scene "${s.name}": ${s.datagrams} datagrams, ${s.receivedBytes} bytes in, ${s.sentBytes} bytes out`);
      console.log(`    cases: ${line(s.byCategory)}`);
      for (const [cat, o] of Object.entries(s.outcomes)) console.log(`    ${cat}: ${line(o)}`);
      const f = s.final;
      console.log(
        `    end: ${f.externalEntries}/${f.externalLimit} external entries (${f.externalRefused} refused: cache full) from ${f.origins} origins, ${f.peers} peers (${f.tracked} ids tracked), ${f.bulksSent} bulks sent in ${f.fakeSeconds} fake s, ${f.epochRollovers} epoch rollovers, ${f.peerRestarts} peer restarts, ${f.pruned} peers pruned; peer entries ${line(f.peerEntries)}`,
      );
    }
  }
  if (netlink) {
    console.log(`netlink: ${netlink.inputs} inputs, ${netlink.messages} messages, ${summary.seconds.netlink} s (${netlink.fixtures} kernel fixtures in the corpus)`);
    console.log(`  inputs: ${line(netlink.byKind)}`);
    console.log(`  parseNetlink errors: ${line(netlink.parseErrors) || 'none'}`);
    console.log(`  decodeConntrackRecord: REC_OK ${netlink.record.ok}, REC_PUNT ${netlink.record.punt}`);
    console.log(`  decodeConntrack: ok ${netlink.conntrack.ok}; ${line(netlink.conntrack.errors)}`);
    console.log(`  decodeExpect: ok ${netlink.expect.ok}; ${line(netlink.expect.errors)}`);
    console.log(`  ConntrackEvents.onData: ${line(netlink.events)}`);
  }
  console.log(
    `RSS ${summary.rssMiB.start} MiB at start, ${summary.rssMiB.end} MiB at end${summary.rssMiB.gc ? ' (after GC)' : ' (no --expose-gc: without GC)'}; heap and Buffers retained ${summary.retainedMiB.start} → ${summary.retainedMiB.end} MiB`,
  );
  if (failureCount === 0) {
    console.log('no failures');
  } else {
    console.log(`${failureCount} failure(s)${failureCount > failures.length ? `, the first ${failures.length} listed` : ''}:`);
    for (const f of failures) {
      const where = f.target === 'memory' ? '' : ` ${f.scene ? `scene "${f.scene}" ` : ''}case ${f.index} (${f.kind})`;
      console.log(`- [${f.target}]${where}: ${f.what}${f.detail ? `: ${f.detail}` : ''}`);
      if (f.hex) console.log(`  input: ${f.hex}`);
    }
    console.log(`reproduce: ${reproduce}`);
  }
}
process.exit(failureCount === 0 ? 0 : 1);
