// Medians, ratios (ctsyncd / conntrackd) and the targets of issue 7, as a
// plain-text table for the terminal and a Markdown section for BENCHMARKS.md.

/** Median of the numbers; a timed-out trial counts as +Infinity. */
function med(xs) {
  const s = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const K = (n) => (n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

/**
 * key: record field; lower: smaller is better; check(ratio, ours, theirs, n,
 * group): true/false where the issue sets a target at this N, else undefined.
 */
const MAIN = [
  {
    key: 'replicationS',
    label: 'replication, first insert → fw2 external full (s)',
    timeout: 'replicationTimeoutS',
    target: '≤ 1.0 at 100k, 0 lost',
    check: (q, _a, _b, n, g) => (n === 100_000 ? q <= 1 && g.lostOurs === 0 : undefined),
  },
  { key: 'lost', label: 'lost entries (worst trial)', agg: 'max', target: '0', check: (_q, a) => a === 0, noRatio: true },
  {
    key: 'cpuPerEntryUs',
    label: 'CPU per entry, both daemons (µs)',
    target: '≤ 1.0',
    check: (q) => q <= 1,
  },
  {
    key: 'rssInternalB',
    label: 'RSS per entry, fw1 (internal cache) (B)',
    target: '≤ 1.0 at 100k, 1M',
    check: (q, _a, _b, n) => (n >= 100_000 ? q <= 1 : undefined),
  },
  {
    key: 'rssExternalB',
    label: 'RSS per entry, fw2 (external cache) (B)',
    target: '≤ 1.0 at 100k, 1M',
    check: (q, _a, _b, n) => (n >= 100_000 ? q <= 1 : undefined),
  },
  {
    key: 'entriesPerDatagram',
    label: 'entries per datagram, fw1 sync0 tx',
    lower: false,
    target: 'ours ≥ 10 at 100k',
    check: (_q, a, _b, n) => (n === 100_000 ? a >= 10 : undefined),
  },
  { key: 'commitS', label: 'commit `-c` → all N in fw2 kernel (s)', target: '≤ 0.5', check: (q) => q <= 0.5 },
  { key: 'failoverS', label: 'failover, primary-backup.sh primary → N in kernel (s)', target: '≤ 0.5', check: (q) => q <= 0.5 },
  { key: 'resyncS', label: 'resync, empty fw2 restarted → external full (s)', target: '≤ 1.0', check: (q) => q <= 1 },
];

const LOSS = [
  {
    key: 'replicationS',
    label: 'replication under loss (s)',
    timeout: 'replicationTimeoutS',
    target: '≤ 1.0, 0 lost',
    check: (q, _a, _b, _n, g) => q <= 1 && g.lostOurs === 0,
  },
  { key: 'lost', label: 'lost entries under loss (worst trial)', agg: 'max', target: '0', check: (_q, a) => a === 0, noRatio: true },
  { key: 'lossDroppedPct', label: 'datagrams dropped (% of sync datagrams)', target: '', noRatio: true, lower: false },
];

const DETAILS = [
  ['injectorS', 'injector, N creates (s)'],
  ['cpuFw1S', 'CPU fw1 (s)'],
  ['cpuFw2S', 'CPU fw2 (s)'],
  ['rssFw1MB', 'RSS fw1 after (MiB)'],
  ['rssFw2MB', 'RSS fw2 after (MiB)'],
  ['datagrams', 'datagrams on fw1 sync0'],
  ['ownMessages', 'ctsyncd sender: messages'],
  ['ownDatagrams', 'datagrams sent, daemon counter'],
  ['overruns', 'fw1 event socket overruns'],
  ['kernelResyncs', 'fw1 kernel resyncs'],
  ['commitDaemonS', 'ctsyncd commit inside the daemon (s)'],
  ['failoverScriptS', 'failover script, all steps (s)'],
  ['resyncUpS', 'resync: restart → answering (conntrackd: and -n done) (s)'],
];

function values(rs, m) {
  return rs.map((r) => {
    if (m.key === 'lossDroppedPct') return r.lossSeen ? (100 * r.lossDropped) / r.lossSeen : undefined;
    const v = r[m.key];
    if (v === undefined && m.timeout && r[m.timeout] !== undefined) return Infinity;
    return v;
  });
}

function agg(rs, m) {
  const xs = values(rs, m);
  if (m.agg === 'max') {
    const f = xs.filter((x) => typeof x === 'number');
    return f.length ? Math.max(...f) : undefined;
  }
  return med(xs);
}

export function summarize(records) {
  const groups = new Map();
  for (const r of records) {
    const k = `${r.transport}|${r.lossPct ? 1 : 0}|${r.n}`;
    if (!groups.has(k)) groups.set(k, { transport: r.transport, loss: r.lossPct, n: r.n, ctsyncd: [], conntrackd: [] });
    groups.get(k)[r.daemon].push(r);
  }
  const rows = [];
  for (const g of groups.values()) {
    const defs = g.loss ? LOSS : MAIN;
    const loads = [...g.ctsyncd, ...g.conntrackd].map((r) => r.load1);
    const load = loads.length ? `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}` : '';
    const lostOurs = Math.max(0, ...g.ctsyncd.map((r) => r.lost ?? 0));
    const pairs = Math.min(g.ctsyncd.length, g.conntrackd.length);
    for (const m of defs) {
      const a = agg(g.ctsyncd, m);
      const b = agg(g.conntrackd, m);
      if (a === undefined && b === undefined) continue;
      const q = m.noRatio || a === undefined || b === undefined || b === 0 ? undefined : a / b;
      let ok;
      if (a !== undefined && (q !== undefined || m.noRatio) && m.check) ok = m.check(q, a, b, g.n, { lostOurs });
      rows.push({ ...g, m, a, b, q, ok, load, pairs });
    }
    const details = [];
    for (const [key, label] of DETAILS) {
      const a = med(g.ctsyncd.map((r) => r[key]));
      const b = med(g.conntrackd.map((r) => r[key]));
      if (a === undefined && b === undefined) continue;
      details.push({ key, label, a, b });
    }
    g.details = details;
    g.load = load;
    g.pairs = pairs;
    g.errors = [...g.ctsyncd, ...g.conntrackd].flatMap((r) => r.errors.map((e) => `${r.daemon} pair ${r.pair + 1}: ${e}`));
  }
  return { groups: [...groups.values()], rows };
}

function fmt(x) {
  if (x === undefined) return '-';
  if (x === Infinity) return 'timeout';
  const ax = Math.abs(x);
  if (ax >= 100) return x.toFixed(0);
  if (ax >= 10) return x.toFixed(1);
  if (ax >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function verdict(ok) {
  return ok === undefined ? '' : ok ? 'met' : 'MISSED';
}

export function formatReport(summary, { command, started, finished, options }) {
  const lines = [];
  const md = [];
  const date = started.toISOString().replace('T', ' ').slice(0, 16);
  const mins = ((finished - started) / 60_000).toFixed(1);
  md.push(`### ${date} UTC: \`sudo ${command}\``, '');
  md.push(
    `${options.pairs} alternating pair(s) per row (ctsyncd, conntrackd, ctsyncd, …), medians; ratio = ctsyncd / conntrackd. ` +
      `Load = 1-minute load average at the start of each trial (min–max). Run took ${mins} min.`,
    '',
  );
  for (const transport of [...new Set(summary.groups.map((g) => g.transport))]) {
    const rows = summary.rows.filter((r) => r.transport === transport);
    const head = `| ${transport} | N | ctsyncd | conntrackd | ratio | target | | load |`;
    md.push(head, '|---|---|---|---|---|---|---|---|');
    lines.push(`== ${transport} ==`);
    lines.push(
      `${'metric'.padEnd(56)} ${'N'.padStart(5)} ${'ctsyncd'.padStart(9)} ${'conntrackd'.padStart(10)} ${'ratio'.padStart(7)}  target`,
    );
    const order = [...MAIN, ...LOSS];
    const sorted = [...rows].sort((x, y) => {
      const ox = order.indexOf(x.m) + (x.loss ? 100 : 0);
      const oy = order.indexOf(y.m) + (y.loss ? 100 : 0);
      return ox - oy || x.n - y.n;
    });
    for (const r of sorted) {
      const label = r.loss ? `${r.m.label.replace(' under loss', '')} at ${r.loss}% loss` : r.m.label;
      const ratio =
        r.q === undefined ? '' : r.q === Infinity ? '∞ (ours timed out)' : r.b === Infinity ? '0 (theirs timed out)' : r.q.toFixed(2);
      md.push(`| ${label} | ${K(r.n)} | ${fmt(r.a)} | ${fmt(r.b)} | ${ratio} | ${r.m.target} | ${verdict(r.ok)} | ${r.load} |`);
      lines.push(
        `${label.slice(0, 56).padEnd(56)} ${K(r.n).padStart(5)} ${fmt(r.a).padStart(9)} ${fmt(r.b).padStart(10)} ${ratio.padStart(7)}  ${r.m.target} ${verdict(r.ok)}`,
      );
    }
    md.push('');
    lines.push('');
  }
  for (const g of summary.groups) {
    lines.push(`details ${g.transport}${g.loss ? ` ${g.loss}% loss` : ''} N=${K(g.n)} (medians):  ctsyncd | conntrackd`);
    for (const d of g.details) lines.push(`  ${d.label.padEnd(58)} ${fmt(d.a).padStart(9)} ${fmt(d.b).padStart(10)}`);
  }
  lines.push('');
  // Details: medians that explain the rows above.
  md.push('<details><summary>details (medians)</summary>', '');
  md.push('| transport | N | quantity | ctsyncd | conntrackd |', '|---|---|---|---|---|');
  for (const g of summary.groups) {
    for (const d of g.details) {
      md.push(`| ${g.transport}${g.loss ? ` ${g.loss}% loss` : ''} | ${K(g.n)} | ${d.label} | ${fmt(d.a)} | ${fmt(d.b)} |`);
    }
  }
  md.push('', '</details>', '');
  const errors = summary.groups.flatMap((g) => g.errors.map((e) => `${g.transport} N=${K(g.n)}${g.loss ? ' loss' : ''} ${e}`));
  if (errors.length) {
    md.push('Errors:', '', ...errors.map((e) => `- ${e.split('\n')[0]}`), '');
    lines.push('errors:', ...errors.map((e) => `  ${e.split('\n')[0]}`));
  }
  return { text: lines.join('\n'), markdown: md.join('\n') };
}
