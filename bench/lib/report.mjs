// Medians, ratios (ctsyncd / conntrackd) and the targets of issue 13 (which
// tightened issue 7's), as a
// plain-text table for the terminal and a Markdown section for BENCHMARKS.md.
// One table per transport: a row per metric, a column per N, each cell
// "ratio (ctsyncd / conntrackd)"; a phase that timed out counts as +∞.

/** Median of the numbers (+Infinity included: a timed-out trial). */
function med(xs) {
  const s = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const K = (n) =>
  n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);

/**
 * key: record field; phase: its entry in record.timeouts; agg 'max' for
 * counts; check(ratio, ours, theirs, n, group) → true/false where the issue
 * sets a target at this N, undefined elsewhere.
 */
const MAIN = [
  {
    key: 'replicationS',
    phase: 'replication',
    label: 'replication: first insert → fw2 external cache full (s)',
    target: '≤ 1.0 at 100k and 1M, 0 lost',
    check: (q, _a, _b, n, g) => (n === 100_000 || n === 1_000_000 ? q <= 1 && g.lostOurs === 0 : undefined),
  },
  { key: 'lost', label: 'lost entries (worst trial)', agg: 'max', target: '0', check: (_q, a) => a === 0, noRatio: true },
  {
    key: 'cpuPerEntryUs',
    label: 'CPU per entry, both daemons (µs)',
    target: '≤ 1.0 at 100k, ≤ 0.7 at 1M',
    check: (q, _a, _b, n) => (n === 100_000 ? q <= 1 : n === 1_000_000 ? q <= 0.7 : undefined),
  },
  {
    key: 'rssInternalB',
    label: 'RSS per entry, fw1: internal cache (B)',
    target: '≤ 0.5 at 1M',
    check: (q, _a, _b, n) => (n === 1_000_000 ? q <= 0.5 : undefined),
  },
  {
    key: 'rssExternalB',
    label: 'RSS per entry, fw2: external cache (B)',
    target: '≤ 0.5 at 1M',
    check: (q, _a, _b, n) => (n === 1_000_000 ? q <= 0.5 : undefined),
  },
  {
    key: 'entriesPerDatagram',
    label: 'entries per datagram on fw1 sync0',
    target: 'ctsyncd ≥ 25',
    check: (_q, a, _b, n) => (n >= 100_000 ? a >= 25 : undefined),
  },
  {
    key: 'commitS',
    phase: 'commit',
    label: 'commit: `-c` on fw2 → N in fw2 kernel (s)',
    target: '≤ 0.4 at 100k',
    check: (q, _a, _b, n) => (n === 100_000 ? q <= 0.4 : undefined),
  },
  {
    key: 'failoverS',
    phase: 'failover',
    label: 'failover: notify primary (each daemon\'s notify, see the notes) → N in fw2 kernel (s)',
    target: '≤ 0.5',
    check: (q) => q <= 0.5,
  },
  {
    key: 'resyncS',
    phase: 'resync',
    label: 'resync: empty fw2 restarted → external cache full (s)',
    target: '≤ 1.0 at 100k and 1M',
    check: (q, _a, _b, n) => (n === 100_000 || n === 1_000_000 ? q <= 1 : undefined),
  },
  { key: 'resyncLost', label: 'entries missing when a resync timed out (worst trial)', agg: 'max', noRatio: true, target: '', optional: true },
];

const LOSS = [
  {
    key: 'replicationS',
    phase: 'replication',
    label: 'replication under loss (s)',
    target: '≤ 1.0, 0 lost',
    check: (q, _a, _b, _n, g) => q <= 1 && g.lostOurs === 0,
  },
  { key: 'lost', label: 'lost entries (worst trial)', agg: 'max', target: '0', check: (_q, a) => a === 0, noRatio: true },
  { key: 'lossDroppedPct', label: 'sync datagrams dropped (%)', noRatio: true, target: '' },
  { key: 'cpuPerEntryUs', label: 'CPU per entry, both daemons (µs)', target: '' },
];

const DETAILS = [
  ['injectorS', 'injector: N creates (s)'],
  ['startCpuS', 'CPU of both daemons, exec → ready (s)'],
  ['cpuFw1S', 'CPU fw1, sender (s)'],
  ['cpuFw2S', 'CPU fw2, receiver (s)'],
  ['sysFw1S', '  of which in the kernel, fw1 (s)'],
  ['sysFw2S', '  of which in the kernel, fw2 (s)'],
  ['helperThreadsS', 'CPU of helper threads, both (JIT, GC) (s)'],
  ['rssFw1MB', 'RSS fw1 after replication (MiB)'],
  ['rssFw2MB', 'RSS fw2 after replication (MiB)'],
  ['datagrams', 'packets sent on fw1 sync0'],
  ['ownDatagrams', 'datagrams sent, daemon counter'],
  ['overruns', 'fw1 event socket overruns'],
  ['commitDaemonS', 'commit inside the daemon (ctsyncd stats) (s)'],
  ['commitCpuS', 'commit: CPU of the fw2 daemon, kernel inserts included (s)'],
  ['failoverScriptS', 'failover script, all four steps (s)'],
  ['resyncUpS', 'resync: restart → answering (conntrackd: and `-n` done) (s)'],
  ['resyncCpuS', 'resync: CPU of both daemons, restart → full (s)'],
];

function values(rs, m) {
  return rs.map((r) => {
    if (m.key === 'lossDroppedPct') return r.lossSeen ? (100 * r.lossDropped) / r.lossSeen : undefined;
    const v = r[m.key];
    if (v === undefined && m.phase && r.timeouts?.[m.phase] !== undefined) return Infinity;
    return v;
  });
}

/** How many trials gave a value (a timeout counts). */
function measured(rs, m) {
  return values(rs, m).filter((x) => typeof x === 'number' && !Number.isNaN(x)).length;
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
    const k = `${r.transport}|${r.lossPct ?? 0}|${r.n}`;
    if (!groups.has(k)) groups.set(k, { transport: r.transport, loss: r.lossPct ?? 0, n: r.n, ctsyncd: [], conntrackd: [] });
    groups.get(k)[r.daemon].push(r);
  }
  for (const g of groups.values()) {
    const all = [...g.ctsyncd, ...g.conntrackd];
    const loads = all.map((r) => r.load1);
    g.load = loads.length ? `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}` : '';
    g.pairs = Math.min(g.ctsyncd.length, g.conntrackd.length);
    const lostOurs = Math.max(0, ...g.ctsyncd.map((r) => r.lost ?? 0));
    g.cells = new Map();
    for (const m of g.loss ? LOSS : MAIN) {
      const a = agg(g.ctsyncd, m);
      const b = agg(g.conntrackd, m);
      if (a === undefined && b === undefined) continue;
      const q = m.noRatio || a === undefined || b === undefined || b === 0 ? undefined : a / b;
      let ok;
      if (a !== undefined && m.check && (q !== undefined || m.noRatio)) ok = m.check(q, a, b, g.n, { lostOurs });
      g.cells.set(m, { a, b, q, ok, na: measured(g.ctsyncd, m), nb: measured(g.conntrackd, m), pairs: g.pairs });
    }
    g.details = [];
    for (const [key, label] of DETAILS) {
      const a = med(g.ctsyncd.map((r) => r[key]));
      const b = med(g.conntrackd.map((r) => r[key]));
      if (a !== undefined || b !== undefined) g.details.push({ key, label, a, b });
    }
    g.errors = all.flatMap((r) => r.errors.map((e) => `${r.daemon} pair ${r.pair + 1}: ${e.split('\n')[0]}`));
  }
  return { groups: [...groups.values()] };
}

function fmt(x) {
  if (x === undefined) return '-';
  if (x === Infinity) return 'timeout';
  const ax = Math.abs(x);
  if (ax === 0) return '0';
  if (ax >= 100) return x.toFixed(0);
  if (ax >= 10) return x.toFixed(1);
  if (ax >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function ratioText(c) {
  if (c.q === undefined) return '';
  if (c.a === Infinity) return '∞';
  if (c.b === Infinity) return '0';
  return c.q.toFixed(2);
}

function cellText(c, m) {
  if (!c) return '';
  // Fewer trials than pairs gave a value: an earlier phase of the others failed.
  const of = (x, k) => (k < c.pairs && k > 0 ? `${fmt(x)} [${k} of ${c.pairs}]` : fmt(x));
  const pair = `${of(c.a, c.na)} / ${of(c.b, c.nb)}`;
  return m.noRatio ? pair : `**${ratioText(c)}** (${pair})`;
}

function verdictText(cells, ns) {
  const parts = [];
  for (const n of ns) {
    const c = cells[n];
    if (c?.ok === undefined) continue;
    parts.push(`${c.ok ? 'met' : 'MISSED'}${ns.length > 1 ? ` at ${K(n)}` : ''}`);
  }
  if (parts.length === 0) return '';
  if (parts.every((p) => p.startsWith('met'))) return 'met';
  if (parts.every((p) => p.startsWith('MISSED'))) return 'MISSED';
  return parts.join(', ');
}

/** The tables: one per transport and kind (main, loss). */
function tables(summary) {
  const out = [];
  const kinds = new Map();
  for (const g of summary.groups) {
    const k = `${g.transport}|${g.loss}`;
    if (!kinds.has(k)) kinds.set(k, { transport: g.transport, loss: g.loss, groups: [] });
    kinds.get(k).groups.push(g);
  }
  for (const t of kinds.values()) {
    t.groups.sort((x, y) => x.n - y.n);
    const ns = t.groups.map((g) => g.n);
    const rows = [];
    for (const m of t.loss ? LOSS : MAIN) {
      const cells = {};
      for (const g of t.groups) if (g.cells.has(m)) cells[g.n] = g.cells.get(m);
      if (Object.keys(cells).length === 0) continue;
      if (m.optional && Object.values(cells).every((c) => !c.a && !c.b)) continue;
      rows.push({ m, cells, verdict: verdictText(cells, ns) });
    }
    out.push({ ...t, ns, rows });
  }
  return out;
}

/** sections: further tables ({ text, markdown }: burst, rate), after the main ones. */
export function formatReport(summary, { command, started, finished, options, notes = [], sections = [] }) {
  const md = [];
  const lines = [];
  const date = started.toISOString().replace('T', ' ').slice(0, 16);
  const mins = ((finished - started) / 60_000).toFixed(1);
  md.push(`### ${date} UTC: \`sudo ${command}\``, '');
  if (summary.groups.length === 0) {
    md.push(
      'Burst and rate trials (one daemon each, fresh namespaces, alternating ctsyncd, conntrackd). ' +
        'Load = 1-minute load average at the start and end of each trial (the benchmark\'s own processes included; 2 cores). ' +
        `The run took ${mins} min.`,
      '',
    );
  } else md.push(
    `Cells: **ctsyncd / conntrackd** (ctsyncd value / conntrackd value), medians of ${options.pairs} alternating ` +
      `pair(s) (ctsyncd, conntrackd, ctsyncd, …; \`timeout\` = a trial ran out of its bound and counts as +∞). ` +
      `Load = 1-minute load average when each trial started (the benchmark's own processes included; 2 cores). ` +
      `The run took ${mins} min.`,
    '',
  );
  for (const note of notes) md.push(note, '');
  lines.push(...notes);
  for (const t of tables(summary)) {
    const title = `${t.transport}${t.loss ? `, ${t.loss}% loss` : ''}`;
    md.push(`| ${title} | target | ${t.ns.map((n) => `N = ${K(n)}`).join(' | ')} | |`);
    md.push(`|---|---|${t.ns.map(() => '---').join('|')}|---|`);
    lines.push(`== ${title} ==  (ratio = ctsyncd / conntrackd; ctsyncd / conntrackd values)`);
    for (const row of t.rows) {
      const cells = t.ns.map((n) => cellText(row.cells[n], row.m));
      md.push(`| ${row.m.label} | ${row.m.target} | ${cells.join(' | ')} | ${row.verdict} |`);
      lines.push(`${row.m.label}  [${row.m.target || '-'}]  ${row.verdict}`);
      for (const n of t.ns) if (row.cells[n]) lines.push(`    N=${K(n).padEnd(5)} ${cellText(row.cells[n], row.m).replace(/\*\*/g, '')}`);
    }
    md.push(`| load average | | ${t.groups.map((g) => g.load).join(' | ')} | |`, '');
    lines.push(`load average: ${t.groups.map((g) => `N=${K(g.n)} ${g.load}`).join(', ')}`, '');
  }
  for (const sec of sections) {
    md.push(sec.markdown);
    lines.push(sec.text);
  }
  if (summary.groups.length === 0) return { text: lines.join('\n'), markdown: md.join('\n') };
  md.push('<details><summary>details (medians; ctsyncd / conntrackd)</summary>', '');
  const detailKeys = [...new Set(summary.groups.flatMap((g) => g.details.map((d) => d.label)))];
  const cols = summary.groups.map((g) => `${g.transport}${g.loss ? ` ${g.loss}% loss` : ''} ${K(g.n)}`);
  md.push(`| quantity | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`);
  for (const label of detailKeys) {
    const cells = summary.groups.map((g) => {
      const d = g.details.find((x) => x.label === label);
      return d ? `${fmt(d.a)} / ${fmt(d.b)}` : '';
    });
    md.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  md.push('', '</details>', '');
  for (const g of summary.groups) {
    lines.push(`details ${g.transport}${g.loss ? ` ${g.loss}% loss` : ''} N=${K(g.n)} (medians): ctsyncd / conntrackd`);
    for (const d of g.details) lines.push(`  ${d.label.padEnd(62)} ${fmt(d.a).padStart(9)} / ${fmt(d.b)}`);
  }
  const errors = summary.groups.flatMap((g) => g.errors.map((e) => `${g.transport}${g.loss ? ` ${g.loss}% loss` : ''} N=${K(g.n)} ${e}`));
  if (errors.length) {
    md.push('Errors:', '', ...errors.map((e) => `- ${e}`), '');
    lines.push('', 'errors:', ...errors.map((e) => `  ${e}`));
  }
  return { text: lines.join('\n'), markdown: md.join('\n') };
}

// ---------------------------------------------------------------------------
// burst and rate (their own records: metric 'burst' or 'rate')

const MiB = 2 ** 20;

function loadRange(rs) {
  const loads = rs.flatMap((r) => [r.load1, r.load1After]).filter((x) => typeof x === 'number');
  return loads.length ? `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}` : '';
}

function byTransport(records) {
  const m = new Map();
  for (const r of records) {
    if (!m.has(r.transport)) m.set(r.transport, []);
    m.get(r.transport).push(r);
  }
  return m;
}

function ratioOf(a, b) {
  if (a === undefined || b === undefined || b === 0) return '';
  if (a === Infinity) return '∞';
  if (b === Infinity) return '0';
  return (a / b).toFixed(2);
}

/**
 * burst: per transport and variant, in how many trials fw1's event socket
 * overran, and the medians of CPU per entry and replication time (a timed-out
 * replication counts as +∞).
 */
export function formatBurst(records) {
  const md = [];
  const lines = [];
  for (const [transport, rs] of byTransport(records)) {
    const b = rs[0].n;
    const buf = rs[0].eventBufferConfiguredBytes / MiB;
    const title = `${transport}, burst of B = ${K(b)} entries, event buffer ${buf} MiB`;
    md.push(`| ${title} | ctsyncd | conntrackd | ctsyncd / conntrackd |`, '|---|---|---|---|');
    lines.push(`== ${title} ==  (ctsyncd | conntrackd | ratio)`);
    for (const variant of ['fresh', 'warm']) {
      const of = (daemon) => rs.filter((r) => r.daemon === daemon && r.variant === variant);
      const a = of('ctsyncd');
      const c = of('conntrackd');
      if (a.length + c.length === 0) continue;
      const overran = (xs) => {
        const known = xs.filter((r) => r.overran !== undefined);
        return `${known.filter((r) => r.overran).length} of ${known.length}${known.length < xs.length ? ` (${xs.length - known.length} failed)` : ''}`;
      };
      const medOf = (xs, key) =>
        med(xs.map((r) => (r[key] === undefined && key === 'replicationS' && r.timeouts?.replication ? Infinity : r[key])));
      const rows = [
        [`${variant}: trials in which the event socket overran`, overran(a), overran(c), ''],
      ];
      for (const [key, label] of [
        ['cpuPerEntryUs', `${variant}: CPU per entry, both daemons (µs, median)`],
        ['replicationS', `${variant}: replication of the burst (s, median)`],
      ]) {
        const x = medOf(a, key);
        const y = medOf(c, key);
        rows.push([label, fmt(x), fmt(y), ratioOf(x, y)]);
      }
      if (variant === 'warm') {
        const x = med(a.map((r) => r.eventBufferBeforeBytes / MiB));
        const y = med(c.map((r) => r.eventBufferBeforeBytes / MiB));
        rows.push(['warm: event buffer the burst met (MiB, median; grown by warm-up overruns)', fmt(x), fmt(y), '']);
      }
      for (const row of rows) {
        md.push(`| ${row.join(' | ')} |`);
        lines.push(`  ${row[0].padEnd(76)} ${row[1].padStart(10)} | ${row[2].padStart(10)} | ${row[3]}`);
      }
    }
    md.push(`| load average (start and end of each trial) | | | ${loadRange(rs)} |`, '');
    lines.push(`  load average: ${loadRange(rs)}`, '');
  }
  return { text: lines.join('\n'), markdown: md.join('\n') };
}

/**
 * rate: per transport, the highest rate each daemon held (every trial at it:
 * no overrun, lag < 1 s, nothing lost, the rate offered), and every step.
 */
export function formatRate(records) {
  const md = [];
  const lines = [];
  for (const [transport, rs] of byTransport(records)) {
    const rates = [...new Set(rs.map((r) => r.rate))].sort((x, y) => x - y);
    const secs = rs[0].seconds;
    const buf = rs[0].eventBufferConfiguredBytes / MiB;
    const logged = rs.some((r) => r.flowlog);
    const title = `${transport}, new entries at a steady rate for ${secs} s, event buffer ${buf} MiB${logged ? ', every new event also logged (ctsyncd: its flow log; conntrackd: ulogd2 beside it)' : ''}`;
    const highest = {};
    const step = {};
    for (const daemon of ['ctsyncd', 'conntrackd']) {
      step[daemon] = {};
      let best = 0;
      let allHeld = true;
      for (const rate of rates) {
        const xs = rs.filter((r) => r.daemon === daemon && r.rate === rate);
        if (xs.length === 0) continue;
        const held = xs.every((r) => r.held === true);
        const worst = Math.max(...xs.map((r) => r.maxLagS ?? Infinity));
        const ovr = xs.reduce((s, r) => s + (r.overruns ?? 0), 0);
        const why = xs.find((r) => r.held !== true);
        const reason = !why
          ? ''
          : why.errors.length
            ? ', error'
            : why.stopped
              ? ', timed out'
              : why.offeredRate < 0.95 * rate
                ? `, offered ${Math.round(why.offeredRate)}/s`
                : why.lost
                  ? `, ${why.lost} lost`
                  : why.flowLost
                    ? `, ${why.flowLost} lines not logged`
                    : '';
        // With a flow log: CPU per entry of everything that ran (ulogd2's included), the median trial's.
        const cpu = logged ? `, ${fmt(med(xs.map((r) => r.cpuPerEntryUs ?? Number.NaN)))} µs CPU/entry` : '';
        step[daemon][rate] = `${held ? 'held' : 'NOT held'} (lag ${fmt(worst)} s, ${ovr} overrun${ovr === 1 ? '' : 's'}${reason}${cpu})`;
        if (held && allHeld) best = rate;
        else allHeld = false;
      }
      highest[daemon] = { best, allHeld, tried: Object.keys(step[daemon]).length };
    }
    const show = (h) => (h.tried === 0 ? '-' : h.best === 0 ? `< ${rates[0]}` : `${h.best}${h.allHeld ? ' (all held)' : ''}`);
    // A daemon that held every rate tried may hold more: the ratio is then a bound.
    const [a, c] = [highest.ctsyncd, highest.conntrackd];
    let q = a.best && c.best ? (a.best / c.best).toFixed(2) : '';
    if (q && a.allHeld && c.allHeld) q = `${q} (both held every rate tried)`;
    else if (q && a.allHeld) q = `≥ ${q}`;
    else if (q && c.allHeld) q = `≤ ${q}`;
    md.push(`| ${title} | ctsyncd | conntrackd | ctsyncd / conntrackd |`, '|---|---|---|---|');
    md.push(`| highest rate held (entries/s) | ${show(highest.ctsyncd)} | ${show(highest.conntrackd)} | **${q}** |`);
    lines.push(`== ${title} ==  (ctsyncd | conntrackd | ratio)`);
    lines.push(`  highest rate held (entries/s): ${show(highest.ctsyncd)} | ${show(highest.conntrackd)} | ${q}`);
    for (const rate of rates) {
      const a = step.ctsyncd[rate] ?? 'not run';
      const b = step.conntrackd[rate] ?? 'not run';
      md.push(`| ${rate}/s | ${a} | ${b} | |`);
      lines.push(`  ${String(rate).padStart(7)}/s: ${a} | ${b}`);
    }
    md.push(`| load average (start and end of each trial) | | | ${loadRange(rs)} |`, '');
    lines.push(`  load average: ${loadRange(rs)}`, '');
  }
  return { text: lines.join('\n'), markdown: md.join('\n') };
}
