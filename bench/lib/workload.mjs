// The workload: N established TCP connections created in fw1's kernel by a
// batched ctnetlink injector (the daemon's own ConntrackLink, 1024 creates per
// sendmsg, as bench/kernel-insert.mjs). Only test addresses are used:
// sources 10.99.0.0/17 (32,768 addresses × up to 32 source ports = 1,048,576
// distinct entries for a burst; a paced stream may use up to 256 source ports,
// 8,388,608 entries), all to 10.99.200.1:443; the sync link lives in
// 10.99.201-250.0/24 and its traffic is not tracked.
import { ConntrackLink } from '../../dist/kernel/conntrack-link.js';

export const MAX_ENTRIES = 1 << 20;
/** Entries a paced stream (the rate metric) may create: 256 source ports per address (120k/s for 60 s fits). */
export const STREAM_MAX_ENTRIES = 1 << 23;
const SLICE = 65_536;

/** Established TCP entry i (0 ≤ i < STREAM_MAX_ENTRIES). */
export function entry(i) {
  const src = `10.99.${(i >> 8) & 127}.${i & 255}`;
  const sport = 20_000 + (i >> 15);
  return {
    family: 2,
    orig: { src, dst: '10.99.200.1', proto: 6, sport, dport: 443 },
    reply: { src: '10.99.200.1', dst: src, proto: 6, sport: 443, dport: sport },
    // SEEN_REPLY | ASSURED | CONFIRMED
    status: 0x2 | 0x4 | 0x8,
    timeout: 7200,
    protoinfo: { tcp: { state: 3 } },
  };
}

/**
 * Creates entries first..first+n-1 in the kernel of the namespace at
 * netnsPath. onStart() is called right before the first sendmsg. With rate,
 * paced (below; progress.sent counts the creates done so far). Resolves with
 * the injector's own duration; throws if any create failed.
 */
export async function inject(netnsPath, n, { chunkSize = 1024, onStart, rate, first = 0, progress } = {}) {
  if (first + n > (rate ? STREAM_MAX_ENTRIES : MAX_ENTRIES)) {
    throw new Error(`at most ${rate ? STREAM_MAX_ENTRIES : MAX_ENTRIES} entries`);
  }
  const link = new ConntrackLink({ netns: netnsPath });
  try {
    if (rate) return await paced(link, first, n, rate, onStart, progress);
    // Built in slices so a million entries never sit in memory at once.
    const slices = [];
    for (let a = first; a < first + n; a += SLICE) slices.push([a, Math.min(first + n, a + SLICE)]);
    const build = ([a, b]) => {
      const items = new Array(b - a);
      for (let i = a; i < b; i++) items[i - a] = { op: 'create', entry: entry(i) };
      return items;
    };
    let next = build(slices[0]);
    let failed = 0;
    const failures = {};
    onStart?.();
    const t0 = performance.now();
    for (let s = 0; s < slices.length; s++) {
      const items = next;
      const res = await link.batch(items, { chunkSize });
      if (s + 1 < slices.length) next = build(slices[s + 1]);
      failed += res.failed;
      for (const [k, v] of Object.entries(res.failures)) failures[k] = (failures[k] ?? 0) + v;
    }
    const seconds = (performance.now() - t0) / 1000;
    if (failed > 0) throw new Error(`injector: ${failed} of ${n} creates failed ${JSON.stringify(failures)}`);
    return { seconds };
  } finally {
    link.close();
  }
}

/**
 * At most `rate` creates per second, each sent as soon as it is due (a
 * sendmsg per due group, typically one or a few entries), the way traffic
 * creates them one at a time. Yields with setImmediate in between, so this
 * keeps one CPU of the bench process busy.
 */
async function paced(link, first, n, rate, onStart, progress = {}) {
  let sent = 0;
  let failed = 0;
  progress.sent = 0;
  onStart?.();
  const t0 = performance.now();
  while (sent < n) {
    // The harness's bound: stop early (what was sent is in progress.sent).
    if (progress.stop) break;
    const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    if (due > sent) {
      const items = [];
      for (let i = sent; i < due; i++) items.push({ op: 'create', entry: entry(first + i) });
      const res = await link.batch(items);
      failed += res.failed;
      sent = due;
      progress.sent = sent;
    } else {
      await new Promise((r) => setImmediate(r));
    }
  }
  if (failed > 0) throw new Error(`injector: ${failed} of ${n} creates failed`);
  return { seconds: (performance.now() - t0) / 1000, sent };
}
